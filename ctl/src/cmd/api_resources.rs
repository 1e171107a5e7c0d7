//! `tkctl api-resources`: the resources of the server's discovery, as kubectl lists them.

use serde_json::Value;

use crate::client::{get_json, Ctx, Res};
use crate::table;

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
            return Err(format!("error: --sort-by accepts only name or kind, got {other:?}").into())
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
            return Err(format!("error: --output {o} is not available; use wide or name").into())
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
