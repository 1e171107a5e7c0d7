//! `config view|get-contexts|current-context|use-context|set-context`: they read or write the
//! kubeconfig files without the server.
//!
//! The files are those kubectl reads: `--kubeconfig`, else every file of `KUBECONFIG`, else
//! `~/.kube/config` (tkctl then falls back to the node's admin kubeconfig). Several files merge
//! as in kubectl: the first file to name a cluster, context or user wins, and the first
//! current-context set wins. A change is written to the file kubectl would write it to.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{json, Map, Value};

use crate::client::{kubeconfig_paths, Res};
use crate::table;

#[derive(clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    cmd: ConfigCmd,
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Display merged kubeconfig settings (secrets redacted unless --raw).
    View {
        /// Only the current context and what it uses.
        #[arg(long)]
        minify: bool,
        /// Show certificates, keys and tokens as they are.
        #[arg(long)]
        raw: bool,
        /// The merged files as one self-contained kubeconfig (implies --raw).
        #[arg(long)]
        flatten: bool,
        /// yaml (default) or json.
        #[arg(short = 'o', long, default_value = "yaml")]
        output: String,
    },
    /// Describe one or many contexts.
    GetContexts {
        names: Vec<String>,
        /// `name` prints only the names.
        #[arg(short = 'o', long)]
        output: Option<String>,
        #[arg(long)]
        no_headers: bool,
    },
    /// Display the current-context.
    CurrentContext,
    /// Set the current-context in a kubeconfig file.
    UseContext { name: String },
    /// Delete a context from the kubeconfig.
    DeleteContext { name: String },
    /// Delete a cluster from the kubeconfig.
    DeleteCluster { name: String },
    /// Delete a user from the kubeconfig.
    DeleteUser { name: String },
    /// Set a context entry (`--current` for the current one).
    SetContext {
        name: Option<String>,
        #[arg(long)]
        current: bool,
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
}

/// One kubeconfig file as read (a JSON value; YAML is read through serde_yaml).
struct File {
    path: PathBuf,
    doc: Value,
}

fn read(path: &Path) -> Res<File> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("error: loading config file \"{}\": {e}", path.display()))?;
    let doc: Value = if text.trim().is_empty() {
        json!({})
    } else {
        serde_yaml::from_str(&text)
            .map_err(|e| format!("error: loading config file \"{}\": {e}", path.display()))?
    };
    Ok(File {
        path: path.to_path_buf(),
        doc,
    })
}

fn named<'a>(doc: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    doc[list]
        .as_array()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
}

/// The merged view of several files, as kubectl builds it.
fn merge(files: &[File]) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Config"));
    out.insert("preferences".into(), json!({}));
    let current = files
        .iter()
        .filter_map(|f| f.doc["current-context"].as_str())
        .find(|c| !c.is_empty())
        .unwrap_or("");
    out.insert("current-context".into(), json!(current));
    for list in ["clusters", "contexts", "users"] {
        let mut merged: Vec<Value> = Vec::new();
        for f in files {
            for e in f.doc[list].as_array().into_iter().flatten() {
                if !merged.iter().any(|m| m["name"] == e["name"]) {
                    merged.push(e.clone());
                }
            }
        }
        merged.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        out.insert(
            list.into(),
            if merged.is_empty() {
                Value::Null
            } else {
                Value::Array(merged)
            },
        );
    }
    Value::Object(out)
}

/// Secrets replaced as `kubectl config view` shows them.
fn redact(v: &mut Value) {
    for (list, inner) in [("clusters", "cluster"), ("users", "user")] {
        for e in v[list].as_array_mut().into_iter().flatten() {
            if let Some(m) = e[inner].as_object_mut() {
                for (k, val) in m.iter_mut() {
                    if k.ends_with("-data") {
                        *val = json!("DATA+OMITTED");
                    } else if k == "token" || k == "password" {
                        *val = json!("REDACTED");
                    }
                }
            }
        }
    }
}

/// Only the current context, its cluster and its user.
fn minify(v: &mut Value) -> Res<()> {
    let current = v["current-context"].as_str().unwrap_or("").to_string();
    if current.is_empty() {
        return Err("error: current-context must exist in order to minify".into());
    }
    let ctx = named(v, "contexts", &current)
        .cloned()
        .ok_or_else(|| format!("error: cannot locate context {current}"))?;
    let keep = |v: &mut Value, list: &str, name: &str| {
        if let Some(a) = v[list].as_array_mut() {
            a.retain(|e| e["name"].as_str() == Some(name));
        }
    };
    keep(v, "contexts", &current);
    keep(
        v,
        "clusters",
        ctx["context"]["cluster"].as_str().unwrap_or(""),
    );
    keep(v, "users", ctx["context"]["user"].as_str().unwrap_or(""));
    Ok(())
}

fn files(flag: Option<&Path>) -> Res<Vec<File>> {
    kubeconfig_paths(flag)
        .iter()
        .filter(|p| p.exists())
        .map(|p| read(p))
        .collect()
}

fn write(f: &File) -> Res<()> {
    std::fs::write(&f.path, crate::printers::yaml(&f.doc))
        .map_err(|e| format!("error: writing \"{}\": {e}", f.path.display()).into())
}

/// The file a change of current-context goes to: the first that sets one, else the first.
fn current_context_file(files: &mut [File]) -> Res<&mut File> {
    let i = files
        .iter()
        .position(|f| {
            f.doc["current-context"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        })
        .unwrap_or(0);
    files
        .get_mut(i)
        .ok_or_else(|| "error: no kubeconfig file to write to".into())
}

fn context_rows(
    merged: &Value,
    names: &[String],
    name_only: bool,
    no_headers: bool,
) -> Res<Vec<Vec<String>>> {
    let current = merged["current-context"].as_str().unwrap_or("");
    let mut rows = Vec::new();
    if !no_headers && !name_only {
        rows.push(
            ["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
                .map(String::from)
                .to_vec(),
        );
    }
    for n in names {
        if named(merged, "contexts", n).is_none() {
            return Err(format!("error: context {n} not found").into());
        }
    }
    for c in merged["contexts"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("");
        if !names.is_empty() && !names.iter().any(|n| n == name) {
            continue;
        }
        if name_only {
            rows.push(vec![name.to_string()]);
            continue;
        }
        let field = |k: &str| c["context"][k].as_str().unwrap_or("").to_string();
        rows.push(vec![
            if name == current { "*" } else { "" }.to_string(),
            name.to_string(),
            field("cluster"),
            field("user"),
            field("namespace"),
        ]);
    }
    Ok(rows)
}

pub fn config(flag: Option<&Path>, a: ConfigArgs) -> Res<u8> {
    let mut files = files(flag)?;
    let merged = merge(&files);
    match a.cmd {
        ConfigCmd::View {
            minify: min,
            raw,
            flatten,
            output,
        } => {
            let raw = raw || flatten;
            let mut v = merged;
            if min {
                minify(&mut v)?;
            }
            if !raw {
                redact(&mut v);
            }
            match output.as_str() {
                "yaml" => print!("{}", crate::printers::yaml(&v)),
                "json" => println!("{}", crate::jsonpath::go_json_indent(&v)),
                o => return Err(format!("error: unable to match a printer suitable for the output format \"{o}\", allowed formats are: json,yaml").into()),
            }
        }
        ConfigCmd::GetContexts {
            names,
            output,
            no_headers,
        } => {
            let name_only = match output.as_deref() {
                None => false,
                Some("name") => true,
                Some(o) => {
                    return Err(format!("error: output must be one of '' or 'name': {o}").into())
                }
            };
            print!(
                "{}",
                table::align(&context_rows(&merged, &names, name_only, no_headers)?)
            );
        }
        ConfigCmd::CurrentContext => match merged["current-context"].as_str() {
            Some(c) if !c.is_empty() => println!("{c}"),
            _ => return Err("error: current-context is not set".into()),
        },
        ConfigCmd::UseContext { name } => {
            if named(&merged, "contexts", &name).is_none() {
                return Err(format!("error: no context exists with the name: \"{name}\"").into());
            }
            let f = current_context_file(&mut files)?;
            f.doc["current-context"] = json!(name);
            write(f)?;
            println!("Switched to context \"{name}\".");
        }
        ConfigCmd::DeleteContext { name } => {
            if merged["current-context"].as_str() == Some(name.as_str()) {
                eprintln!("warning: this removed your active context, use \"kubectl config use-context\" to select a different one");
            }
            delete_entry(&mut files, "contexts", "context", &name)?;
        }
        ConfigCmd::DeleteCluster { name } => {
            delete_entry(&mut files, "clusters", "cluster", &name)?
        }
        ConfigCmd::DeleteUser { name } => delete_entry(&mut files, "users", "user", &name)?,
        ConfigCmd::SetContext {
            name,
            current,
            namespace,
            cluster,
            user,
        } => {
            let name = match (name, current) {
                (Some(n), false) => n,
                (None, true) => match merged["current-context"].as_str() {
                    Some(c) if !c.is_empty() => c.to_string(),
                    _ => return Err("error: no current context is set".into()),
                },
                _ => {
                    return Err(
                        "error: you must specify a non-empty context name or --current".into(),
                    )
                }
            };
            let at = files
                .iter()
                .position(|f| named(&f.doc, "contexts", &name).is_some());
            let existed = at.is_some();
            let f = match at {
                Some(i) => &mut files[i],
                None => files
                    .first_mut()
                    .ok_or("error: no kubeconfig file to write to")?,
            };
            if !f.doc["contexts"].is_array() {
                f.doc["contexts"] = json!([]);
            }
            let list = f.doc["contexts"].as_array_mut().unwrap();
            let entry = match list.iter().position(|e| e["name"] == json!(name)) {
                Some(i) => &mut list[i],
                None => {
                    list.push(json!({"name": name, "context": {}}));
                    list.last_mut().unwrap()
                }
            };
            for (k, v) in [
                ("namespace", namespace),
                ("cluster", cluster),
                ("user", user),
            ] {
                if let Some(v) = v {
                    entry["context"][k] = json!(v);
                }
            }
            write(f)?;
            let what = if existed { "modified" } else { "created" };
            println!("Context \"{name}\" {what}.");
        }
    }
    Ok(0)
}

/// Removes the entry `name` of `list` from the first file that has it.
fn delete_entry(files: &mut [File], list: &str, what: &str, name: &str) -> Res<()> {
    let first = files
        .first()
        .map(|f| f.path.display().to_string())
        .unwrap_or_default();
    let f = files
        .iter_mut()
        .find(|f| named(&f.doc, list, name).is_some())
        .ok_or_else(|| format!("error: cannot delete {what} {name}, not in {first}"))?;
    if let Some(a) = f.doc[list].as_array_mut() {
        a.retain(|e| e["name"].as_str() != Some(name));
        if a.is_empty() {
            f.doc[list] = Value::Null;
        }
    }
    write(f)?;
    println!("deleted {what} {name} from {}", f.path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, yaml: &str) -> File {
        File {
            path: PathBuf::from(name),
            doc: serde_yaml::from_str(yaml).unwrap(),
        }
    }

    fn two() -> Vec<File> {
        vec![
            file(
                "a",
                "current-context: dev\ncontexts:\n- name: dev\n  context: {cluster: c1, user: u1, namespace: web}\nclusters:\n- name: c1\n  cluster: {server: 'https://a', certificate-authority-data: QUJD}\nusers:\n- name: u1\n  user: {token: secret}\n",
            ),
            file(
                "b",
                "current-context: other\ncontexts:\n- name: dev\n  context: {cluster: shadowed}\n- name: ops\n  context: {cluster: c2, user: u2}\nclusters:\n- name: c2\n  cluster: {server: 'https://b'}\n",
            ),
        ]
    }

    #[test]
    fn files_merge_first_wins() {
        let m = merge(&two());
        assert_eq!(m["current-context"], "dev");
        assert_eq!(
            named(&m, "contexts", "dev").unwrap()["context"]["cluster"],
            "c1"
        );
        assert_eq!(m["contexts"].as_array().unwrap().len(), 2);
        assert_eq!(m["clusters"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn view_redacts_and_minifies() {
        let mut m = merge(&two());
        minify(&mut m).unwrap();
        redact(&mut m);
        assert_eq!(m["contexts"].as_array().unwrap().len(), 1);
        assert_eq!(
            m["clusters"][0]["cluster"]["certificate-authority-data"],
            "DATA+OMITTED"
        );
        assert_eq!(m["clusters"][0]["cluster"]["server"], "https://a");
        assert_eq!(m["users"][0]["user"]["token"], "REDACTED");
    }

    #[test]
    fn contexts_table_marks_the_current_one() {
        let rows = context_rows(&merge(&two()), &[], false, false).unwrap();
        let text = table::align(&rows);
        assert_eq!(
            text,
            "CURRENT   NAME   CLUSTER   AUTHINFO   NAMESPACE\n\
             *         dev    c1        u1         web\n\
             \x20         ops    c2        u2         \n"
        );
        assert!(context_rows(&merge(&two()), &["nope".into()], false, false).is_err());
    }

    #[test]
    fn use_context_writes_where_kubectl_would() {
        let mut f = two();
        f[0].doc.as_object_mut().unwrap().remove("current-context");
        assert_eq!(
            current_context_file(&mut f).unwrap().path,
            PathBuf::from("b")
        );
    }
}
