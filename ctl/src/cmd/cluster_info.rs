//! `tkctl cluster-info`: where the control plane and the cluster services answer.

use crate::client::{get_json, Ctx, Res};

pub async fn cluster_info(ctx: &Ctx) -> Res<u8> {
    let server = ctx.server.trim_end_matches('/');
    println!("Kubernetes control plane is running at {server}");
    // Cluster services (kube-dns and the like) are listed as kubectl does.
    let services = get_json(
        ctx,
        "/api/v1/namespaces/kube-system/services?labelSelector=kubernetes.io%2Fcluster-service%3Dtrue",
    )
    .await?;
    for s in services["items"].as_array().into_iter().flatten() {
        let name = s["metadata"]["labels"]["kubernetes.io/name"]
            .as_str()
            .or(s["metadata"]["name"].as_str())
            .unwrap_or("");
        let port = &s["spec"]["ports"][0];
        let port_name = port["name"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| port["port"].to_string());
        println!(
            "{name} is running at {server}/api/v1/namespaces/kube-system/services/{}:{port_name}/proxy",
            s["metadata"]["name"].as_str().unwrap_or("")
        );
    }
    println!("\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.");
    Ok(0)
}
