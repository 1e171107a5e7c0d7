//! `cluster-info`, `api-resources` (from the server's discovery) and `image load|ls` (the
//! node's image store, through the kubelet binary beside tkctl, as `minikube image` works on
//! the node).

use std::path::PathBuf;

use serde_json::Value;

use crate::commands::{get_json, Ctx, Res};
use crate::table;

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

#[derive(clap::Args)]
pub struct ApiResourcesArgs {
    /// Output format: wide or name.
    #[arg(short = 'o', long)]
    output: Option<String>,
    /// Only resources that are (true) or are not (false) namespaced.
    #[arg(long)]
    namespaced: Option<bool>,
    /// Only resources of this API group ("" for core).
    #[arg(long)]
    api_group: Option<String>,
    #[arg(long)]
    no_headers: bool,
    /// Sort by `name` or `kind`.
    #[arg(long)]
    sort_by: Option<String>,
}

/// One resource as discovery describes it.
#[derive(Debug, Clone, PartialEq)]
struct Resource {
    name: String,
    short: Vec<String>,
    group: String,
    version: String,
    namespaced: bool,
    kind: String,
    verbs: Vec<String>,
    categories: Vec<String>,
}

impl Resource {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// The resources of one APIResourceList (subresources left out).
fn resources_of(list: &Value, group: &str, version: &str) -> Vec<Resource> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    list["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !r["name"].as_str().unwrap_or("/").contains('/'))
        .map(|r| Resource {
            name: r["name"].as_str().unwrap_or("").to_string(),
            short: strings(&r["shortNames"]),
            group: group.to_string(),
            version: version.to_string(),
            namespaced: r["namespaced"].as_bool().unwrap_or(false),
            kind: r["kind"].as_str().unwrap_or("").to_string(),
            verbs: strings(&r["verbs"]),
            categories: strings(&r["categories"]),
        })
        .collect()
}

fn api_resource_rows(mut all: Vec<Resource>, a: &ApiResourcesArgs) -> Res<Vec<Vec<String>>> {
    all.retain(|r| {
        a.namespaced.is_none_or(|n| n == r.namespaced)
            && a.api_group.as_deref().is_none_or(|g| g == r.group)
    });
    match a.sort_by.as_deref() {
        None => all.sort_by(|x, y| (&x.group, &x.name).cmp(&(&y.group, &y.name))),
        Some("name") => all.sort_by(|x, y| x.name.cmp(&y.name)),
        Some("kind") => all.sort_by(|x, y| x.kind.cmp(&y.kind)),
        Some(other) => {
            return Err(format!(
                "error: --sort-by accepts only name or kind, got {other:?}"
            ))
        }
    }
    let wide = match a.output.as_deref() {
        None => false,
        Some("wide") => true,
        Some("name") => {
            return Ok(all
                .iter()
                .map(|r| {
                    vec![if r.group.is_empty() {
                        r.name.clone()
                    } else {
                        format!("{}.{}", r.name, r.group)
                    }]
                })
                .collect())
        }
        Some(o) => {
            return Err(format!(
                "error: --output {o} is not available; use wide or name"
            ))
        }
    };
    let mut rows = Vec::new();
    if !a.no_headers {
        let mut h = vec!["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"];
        if wide {
            h.extend(["VERBS", "CATEGORIES"]);
        }
        rows.push(h.into_iter().map(String::from).collect());
    }
    for r in &all {
        let mut row = vec![
            r.name.clone(),
            r.short.join(","),
            r.api_version(),
            r.namespaced.to_string(),
            r.kind.clone(),
        ];
        if wide {
            let mut verbs = r.verbs.clone();
            verbs.sort();
            row.push(verbs.join(","));
            row.push(r.categories.join(","));
        }
        rows.push(row);
    }
    Ok(rows)
}

pub async fn api_resources(ctx: &Ctx, a: ApiResourcesArgs) -> Res<u8> {
    let mut all = Vec::new();
    let core = get_json(ctx, "/api").await?;
    for v in core["versions"].as_array().into_iter().flatten() {
        let v = v.as_str().unwrap_or("v1");
        all.extend(resources_of(
            &get_json(ctx, &format!("/api/{v}")).await?,
            "",
            v,
        ));
    }
    let groups = get_json(ctx, "/apis").await?;
    for g in groups["groups"].as_array().into_iter().flatten() {
        let name = g["name"].as_str().unwrap_or("");
        let version = g["preferredVersion"]["version"].as_str().unwrap_or("v1");
        let list = get_json(ctx, &format!("/apis/{name}/{version}")).await?;
        all.extend(resources_of(&list, name, version));
    }
    let rows = api_resource_rows(all, &a)?;
    print!("{}", table::align(&rows));
    Ok(0)
}

#[derive(clap::Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    cmd: ImageCmd,
}

#[derive(clap::Subcommand)]
enum ImageCmd {
    /// Load an OCI image layout archive or a `docker save` tarball into the node.
    Load {
        file: PathBuf,
        /// The name for images that carry none.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the node's images.
    #[command(alias = "list")]
    Ls {
        #[arg(long)]
        no_trunc: bool,
    },
}

/// The kubelet binary: beside tkctl (a release build or an install), else on PATH.
fn kubelet_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("tinykube-kubelet")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("tinykube-kubelet"))
}

/// The node's image store lives on this machine (a single-node cluster): `image` runs the
/// kubelet's own `images` command on it (its data dir from TINYKUBE_KUBELET_DATA_DIR or the
/// default), so what it loads is what the kubelet starts pods from.
pub fn image(a: ImageArgs) -> Res<u8> {
    let mut cmd = std::process::Command::new(kubelet_binary());
    cmd.arg("images");
    match a.cmd {
        ImageCmd::Load { file, name } => {
            cmd.arg("load").arg(file);
            if let Some(n) = name {
                cmd.arg("--name").arg(n);
            }
        }
        ImageCmd::Ls { no_trunc } => {
            cmd.arg("ls");
            if no_trunc {
                cmd.arg("--no-trunc");
            }
        }
    }
    let status = cmd.status().map_err(|e| {
        format!(
            "error: running {}: {e} (is tinykube installed on this machine?)",
            kubelet_binary().display()
        )
    })?;
    Ok(status.code().unwrap_or(1).clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn discovered() -> Vec<Resource> {
        let core = json!({"resources": [
            {"name": "pods", "shortNames": ["po"], "namespaced": true, "kind": "Pod",
             "verbs": ["get", "create", "list"], "categories": ["all"]},
            {"name": "pods/log", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
            {"name": "nodes", "shortNames": ["no"], "namespaced": false, "kind": "Node", "verbs": ["get"]},
        ]});
        let apps = json!({"resources": [
            {"name": "deployments", "shortNames": ["deploy"], "namespaced": true, "kind": "Deployment", "verbs": ["get"]},
        ]});
        let mut all = resources_of(&core, "", "v1");
        all.extend(resources_of(&apps, "apps", "v1"));
        all
    }

    fn args(extra: &[&str]) -> ApiResourcesArgs {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            a: ApiResourcesArgs,
        }
        <P as clap::Parser>::parse_from(std::iter::once("x").chain(extra.iter().copied())).a
    }

    #[test]
    fn api_resources_as_kubectl_lists_them() {
        let rows = api_resource_rows(discovered(), &args(&[])).unwrap();
        let text = table::align(&rows);
        assert_eq!(
            text,
            "NAME          SHORTNAMES   APIVERSION   NAMESPACED   KIND\n\
             nodes         no           v1           false        Node\n\
             pods          po           v1           true         Pod\n\
             deployments   deploy       apps/v1      true         Deployment\n"
        );
        let names = api_resource_rows(discovered(), &args(&["-o", "name"])).unwrap();
        assert_eq!(
            names.concat(),
            ["nodes", "pods", "deployments.apps"].map(String::from)
        );
        let cluster = api_resource_rows(discovered(), &args(&["--namespaced=false"])).unwrap();
        assert_eq!(cluster.len(), 2);
        let wide = api_resource_rows(discovered(), &args(&["-o", "wide"])).unwrap();
        assert_eq!(wide[2][5], "create,get,list");
        assert_eq!(wide[2][6], "all");
        // An empty last cell keeps the padding before it (Go's tabwriter).
        let text = table::align(&wide);
        let header = text.lines().next().unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap().len(),
            header.find("CATEGORIES").unwrap()
        );
    }
}
