//! `tkctl expose`: a Service for a deployment, replica set, pod or service.

use serde_json::{json, Value};

use crate::client::{get_json, post, Ctx, Res};
use crate::resources;

#[derive(clap::Args)]
pub struct ExposeArgs {
    /// TYPE NAME or TYPE/NAME.
    args: Vec<String>,
    #[arg(long = "type")]
    type_: Option<String>,
    #[arg(long)]
    port: Option<i32>,
    #[arg(long)]
    target_port: Option<String>,
    #[arg(long)]
    name: Option<String>,
    #[arg(long, default_value = "TCP")]
    protocol: String,
}

pub async fn expose(ctx: &Ctx, a: ExposeArgs) -> Res<u8> {
    let (kind, name) = resources::one(&a.args)?;
    let obj = get_json(ctx, &ctx.object_uri(kind, &name))
        .await
        .map_err(|e| e.about(kind, &name))?;
    let (selector, template_ports) = match kind.kind {
        "Deployment" | "ReplicaSet" => (
            obj["spec"]["selector"]["matchLabels"].clone(),
            obj["spec"]["template"]["spec"]["containers"].clone(),
        ),
        "Pod" => (
            obj["metadata"]["labels"].clone(),
            obj["spec"]["containers"].clone(),
        ),
        "Service" => (obj["spec"]["selector"].clone(), Value::Null),
        other => return Err(format!("error: cannot expose a {other}").into()),
    };
    if selector.as_object().is_none_or(|m| m.is_empty()) {
        return Err(format!("error: couldn't retrieve selectors via --selector flag or introspection: the {} has no labels", kind.singular).into());
    }
    let port = a
        .port
        .or_else(|| {
            let first = if kind.kind == "Service" {
                obj["spec"]["ports"][0]["port"].as_i64()
            } else {
                template_ports[0]["ports"][0]["containerPort"].as_i64()
            };
            first.map(|p| p as i32)
        })
        .ok_or("error: couldn't find port via --port flag or introspection")?;
    let target: Value = match &a.target_port {
        Some(t) => t
            .parse::<i32>()
            .map(Value::from)
            .unwrap_or(Value::from(t.clone())),
        None => Value::from(port),
    };
    let svc_name = a.name.clone().unwrap_or(name.clone());
    let mut spec = json!({"selector": selector, "ports": [{"port": port, "protocol": a.protocol, "targetPort": target}]});
    if let Some(t) = &a.type_ {
        spec["type"] = json!(t);
    }
    let body = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": svc_name, "labels": obj["metadata"]["labels"].clone()},
        "spec": spec,
    });
    let uri = format!(
        "{}?fieldManager=kubectl-expose",
        resources::lookup("services").unwrap().path(Some(&ctx.ns))
    );
    post(ctx, &uri, body).await?;
    println!("service/{svc_name} exposed");
    Ok(0)
}
