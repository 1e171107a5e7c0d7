//! Reading manifests as kubectl's `-f` does (files, directories, `-` for stdin; YAML with
//! `---` documents or JSON; `kind: List` expanded to its items) and finding where each object
//! lives on the server (the Kind table, then discovery).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::client::{get_json, Ctx, Res};
use crate::resources::{self, Kind};

/// One object read from a manifest, with the name kubectl uses for its source in messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    /// The file as named on the command line (`dir/app.yaml`), `STDIN` for `-`.
    pub source: String,
    pub obj: Value,
}

/// The extensions kubectl reads from a directory.
const EXTENSIONS: &[&str] = &["json", "yaml", "yml"];

/// Reads every `-f` argument. A path that does not exist ends everything (kubectl's
/// `the path "x" does not exist`); a document that cannot be decoded is one error among the
/// objects (returned as `Err` in place of that document).
pub fn read_all(files: &[String], recursive: bool) -> Res<Vec<Result<Doc, String>>> {
    if files.is_empty() {
        return Err("error: must specify one of -f and -k".into());
    }
    let mut out = Vec::new();
    for f in files {
        if f == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("error: reading STDIN: {e}"))?;
            out.extend(parse("STDIN", &text));
            continue;
        }
        let p = Path::new(f);
        if !p.exists() {
            return Err(format!("error: the path \"{f}\" does not exist").into());
        }
        if p.is_dir() {
            for file in dir_files(p, recursive)? {
                out.extend(read_file(&file)?);
            }
        } else {
            out.extend(read_file(p)?);
        }
    }
    Ok(out)
}

fn read_file(p: &Path) -> Res<Vec<Result<Doc, String>>> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| format!("error: reading \"{}\": {e}", p.display()))?;
    Ok(parse(&p.display().to_string(), &text))
}

/// The manifest files of a directory in lexical order (as Go's filepath.Walk), its
/// subdirectories too when `recursive`.
fn dir_files(dir: &Path, recursive: bool) -> Res<Vec<std::path::PathBuf>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("error: reading \"{}\": {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for e in entries {
        if e.is_dir() {
            if recursive {
                out.extend(dir_files(&e, true)?);
            }
        } else if e
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| EXTENSIONS.contains(&x))
        {
            out.push(e);
        }
    }
    Ok(out)
}

/// The objects in one file's text: JSON (one or more objects) when it starts with `{`, else
/// YAML documents; empty documents skipped, lists expanded.
pub fn parse(source: &str, text: &str) -> Vec<Result<Doc, String>> {
    let mut values: Vec<Result<Value, String>> = Vec::new();
    let decode_err =
        |e: &dyn std::fmt::Display| format!("error: unable to decode \"{source}\": {e}");
    if text.trim_start().starts_with('{') {
        for v in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            match v {
                Ok(v) => values.push(Ok(v)),
                Err(e) => {
                    values.push(Err(decode_err(&e)));
                    break;
                }
            }
        }
    } else {
        for d in serde_yaml::Deserializer::from_str(text) {
            match serde::Deserialize::deserialize(d).map(yaml_to_json) {
                Ok(v) => values.push(Ok(v)),
                Err(e) => {
                    values.push(Err(format!(
                        "error: error parsing {source}: error converting YAML to JSON: {e}"
                    )));
                    break;
                }
            }
        }
    }
    let mut out = Vec::new();
    for v in values {
        match v {
            Ok(v) => flatten(source, v, &mut out),
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

/// A YAML value as JSON: keys that are not strings become strings, as sigs.k8s.io/yaml does.
fn yaml_to_json(y: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().map(Value::from).unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(s) => Value::Array(s.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let k = match k {
                        Y::String(s) => s,
                        other => match yaml_to_json(other) {
                            Value::String(s) => s,
                            v => v.to_string(),
                        },
                    };
                    (k, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

/// Empty documents are skipped, `kind: List` (or any `…List` with items) gives its items, an
/// object without a kind is kubectl's decoding error.
fn flatten(source: &str, v: Value, out: &mut Vec<Result<Doc, String>>) {
    if v.is_null() || v.as_object().is_some_and(|m| m.is_empty()) {
        return;
    }
    let kind = v["kind"].as_str().unwrap_or("");
    if kind.is_empty() {
        out.push(Err(format!(
            "error: unable to decode \"{source}\": Object 'Kind' is missing in '{}'",
            crate::merge::go_json(&v)
        )));
        return;
    }
    if kind.ends_with("List") {
        if let Some(items) = v["items"].as_array() {
            for i in items {
                flatten(source, i.clone(), out);
            }
            return;
        }
    }
    out.push(Ok(Doc {
        source: source.to_string(),
        obj: v,
    }));
}

/// Where an object lives: its kind (from the table or discovery), namespace and name.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    /// Its namespace (None for cluster-scoped kinds).
    pub ns: Option<String>,
    pub name: String,
}

impl Target {
    /// The collection the object is created in.
    pub fn collection(&self) -> String {
        self.kind.path(self.ns.as_deref())
    }

    /// The object's own path.
    pub fn uri(&self) -> String {
        format!("{}/{}", self.collection(), self.name)
    }
}

/// Finds each manifest's kind on the server: the Kind table first, then the server's
/// discovery documents (cached per group/version).
#[derive(Default)]
pub struct Resolver {
    discovered: HashMap<String, Option<Value>>,
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

impl Resolver {
    /// The kind, namespace and name of `doc`'s object; the namespace comes from the object or
    /// `default_ns`, and differs from an explicit `-n` only with kubectl's error. Sets the
    /// namespace in the object (as kubectl does before sending or recording it).
    pub async fn resolve(
        &mut self,
        ctx: &Ctx,
        doc: &mut Doc,
        default_ns: &str,
        explicit_ns: Option<&str>,
    ) -> Res<Target> {
        let api_version = doc.obj["apiVersion"].as_str().unwrap_or("").to_string();
        let kind_name = doc.obj["kind"].as_str().unwrap_or("").to_string();
        let name = doc.obj["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let obj_ns = doc.obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };
        let kind = match resources::ALL
            .iter()
            .find(|k| k.kind == kind_name && k.group == group && k.version == version)
        {
            Some(k) => **k,
            None => self
                .discover(ctx, &group, &version, &kind_name)
                .await
                .ok_or_else(|| {
                    format!(
                        "error: resource mapping not found for name: \"{name}\" namespace: \"{obj_ns}\" from \"{}\": no matches for kind \"{kind_name}\" in version \"{api_version}\"\nensure CRDs are installed first",
                        doc.source
                    )
                })?,
        };
        let ns = if kind.namespaced {
            if let Some(explicit) = explicit_ns {
                if !obj_ns.is_empty() && obj_ns != explicit {
                    return Err(format!(
                        "error: the namespace from the provided object \"{obj_ns}\" does not match the namespace \"{explicit}\". You must pass '--namespace={obj_ns}' to perform this operation."
                    ).into());
                }
            }
            let ns = if obj_ns.is_empty() {
                default_ns.to_string()
            } else {
                obj_ns
            };
            if let Some(m) = doc.obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("namespace".into(), Value::String(ns.clone()));
            } else if let Some(o) = doc.obj.as_object_mut() {
                o.insert("metadata".into(), serde_json::json!({ "namespace": ns }));
            }
            Some(ns)
        } else {
            None
        };
        Ok(Target { kind, ns, name })
    }

    async fn discover(
        &mut self,
        ctx: &Ctx,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Option<Kind> {
        let uri = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        if !self.discovered.contains_key(&uri) {
            let list = get_json(ctx, &uri).await.ok();
            self.discovered.insert(uri.clone(), list);
        }
        let list = self.discovered.get(&uri)?.as_ref()?;
        let r = list["resources"]
            .as_array()?
            .iter()
            .find(|r| r["kind"] == kind && !r["name"].as_str().unwrap_or("/").contains('/'))?;
        Some(Kind {
            group: leak(group),
            version: leak(version),
            plural: leak(r["name"].as_str()?),
            singular: leak(&kind.to_ascii_lowercase()),
            kind: leak(kind),
            list_kind: leak(&format!("{kind}List")),
            short: &[],
            categories: &[],
            namespaced: r["namespaced"].as_bool().unwrap_or(true),
        })
    }
}

/// The objects of the manifests, each resolved to where it lives (or its error).
pub async fn objects(
    ctx: &Ctx,
    files: &[String],
    recursive: bool,
    verb: &str,
) -> Res<Vec<Res<(Doc, Target)>>> {
    let docs = read_all(files, recursive)?;
    if docs.is_empty() {
        return Err(format!("error: no objects passed to {verb}").into());
    }
    let explicit = ctx.ns_given.then(|| ctx.ns.clone());
    let mut resolver = Resolver::default();
    let mut out = Vec::new();
    for d in docs {
        out.push(match d {
            Ok(mut d) => resolver
                .resolve(ctx, &mut d, &ctx.ns, explicit.as_deref())
                .await
                .map(|t| (d, t)),
            Err(e) => Err(e.into()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objs(source: &str, text: &str) -> Vec<Value> {
        parse(source, text)
            .into_iter()
            .map(|d| d.unwrap().obj)
            .collect()
    }

    #[test]
    fn multi_document_yaml() {
        let text = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  ports:\n  - port: 80\n---\n# nothing\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: b\n  labels: {app: b, 1: one}\n";
        let docs = parse("m.yaml", text);
        assert_eq!(docs.len(), 2);
        let d: Vec<Doc> = docs.into_iter().map(Result::unwrap).collect();
        assert_eq!(d[0].source, "m.yaml");
        assert_eq!(d[0].obj["spec"]["ports"][0]["port"], json!(80));
        assert_eq!(d[1].obj["kind"], "Deployment");
        assert_eq!(
            d[1].obj["metadata"]["labels"],
            json!({"app": "b", "1": "one"})
        );
    }

    #[test]
    fn lists_expand_to_their_items() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: one}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: two}\n";
        let names: Vec<Value> = objs("l.yaml", text)
            .iter()
            .map(|o| o["metadata"]["name"].clone())
            .collect();
        assert_eq!(names, [json!("one"), json!("two")]);
    }

    #[test]
    fn json_objects_one_or_many() {
        let one =
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}}"#;
        assert_eq!(objs("a.json", one)[0]["data"]["k"], "v");
        let list = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}]}
            {"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#;
        let kinds: Vec<Value> = objs("b.json", list)
            .iter()
            .map(|o| o["kind"].clone())
            .collect();
        assert_eq!(kinds, [json!("Pod"), json!("Secret")]);
    }

    #[test]
    fn undecodable_documents_are_errors() {
        let docs = parse("k.yaml", "apiVersion: v1\nmetadata:\n  name: x\n");
        assert_eq!(
            docs,
            [Err(
                "error: unable to decode \"k.yaml\": Object 'Kind' is missing in '{\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"x\"}}'".to_string()
            )]
        );
        assert!(parse("bad.yaml", "a: [1\n")[0].is_err());
    }

    #[test]
    fn directories_hold_manifest_files_in_order() {
        let dir = std::env::temp_dir().join(format!("tkctl-manifest-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let cm = |n: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n");
        std::fs::write(dir.join("b.yml"), cm("b")).unwrap();
        std::fs::write(dir.join("a.yaml"), cm("a")).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
        std::fs::write(
            dir.join("sub/c.json"),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
        )
        .unwrap();
        let d = dir.display().to_string();
        let names = |recursive| -> Vec<(String, String)> {
            read_all(std::slice::from_ref(&d), recursive)
                .unwrap()
                .into_iter()
                .map(|r| {
                    let r = r.unwrap();
                    (r.source, r.obj["metadata"]["name"].as_str().unwrap().into())
                })
                .collect()
        };
        assert_eq!(
            names(false),
            [
                (format!("{d}/a.yaml"), "a".into()),
                (format!("{d}/b.yml"), "b".into())
            ]
        );
        assert_eq!(
            names(true).last().unwrap(),
            &(format!("{d}/sub/c.json"), "c".into())
        );
        let missing = format!("{d}/nope.yaml");
        assert_eq!(
            read_all(std::slice::from_ref(&missing), false).unwrap_err(),
            format!("error: the path \"{missing}\" does not exist").into()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
