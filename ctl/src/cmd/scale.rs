//! `tkctl scale`: a new size through the scale subresource.

use serde_json::json;

use crate::client::{merge_patch, Ctx, Res};
use crate::resources;

#[derive(clap::Args)]
pub struct ScaleArgs {
    /// TYPE NAME or TYPE/NAME.
    args: Vec<String>,
    #[arg(long)]
    replicas: i32,
}

pub async fn scale(ctx: &Ctx, a: ScaleArgs) -> Res<u8> {
    let (kind, name) = resources::one(&a.args)?;
    if !matches!(kind.kind, "Deployment" | "ReplicaSet") {
        return Err(format!("error: cannot scale a {}", kind.singular).into());
    }
    let uri = format!("{}/scale", ctx.object_uri(kind, &name));
    merge_patch(ctx, &uri, json!({"spec": {"replicas": a.replicas}}))
        .await
        .map_err(|e| e.about(kind, &name))?;
    println!("{}.{}/{name} scaled", kind.singular, kind.group);
    Ok(0)
}
