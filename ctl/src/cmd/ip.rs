//! `tkctl ip`: the node's address, like `minikube ip`.

use crate::client::{get_json, Ctx, Res};

pub async fn ip(ctx: &Ctx) -> Res<u8> {
    let nodes = get_json(ctx, "/api/v1/nodes").await?;
    let addr = nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| {
            n["status"]["addresses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str().map(str::to_string))
        .ok_or("error: the node has not registered an address yet")?;
    println!("{addr}");
    Ok(0)
}
