//! `tkctl version`: the client's and the server's version.

use crate::client::{get_json, Ctx, Res};

pub async fn version(ctx: &Ctx) -> Res<u8> {
    println!("Client Version: v{}", env!("CARGO_PKG_VERSION"));
    let v = get_json(ctx, "/version").await?;
    println!(
        "Server Version: {}",
        v["gitVersion"].as_str().unwrap_or("unknown")
    );
    Ok(0)
}
