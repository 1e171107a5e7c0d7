//! Compiles Kubernetes' own `generated.proto` files into a descriptor set the apiserver
//! embeds (`$OUT_DIR/kubernetes.pb`): the protobuf wire (`application/vnd.kubernetes.protobuf`)
//! is read and written through these descriptors, so no field table is written by hand.
//!
//! Beside it, `$OUT_DIR/patch-meta.json`: the markers Kubernetes' Go types carry and the .proto
//! comments keep (`+patchStrategy=merge`, `+patchMergeKey=name`, `+listType=map`,
//! `+listMapKey=name`, `+structType=atomic`, `+mapType=atomic`), by message and field ("" for
//! the message), for strategic merge patch, server-side apply and OpenAPI.
//!
//! And `$OUT_DIR/descriptions.json`: each message's and field's doc comment (the Go doc the
//! OpenAPI documents carry as `description`), by message and field ("" for the message).
//!
//! The .proto files come from the `k8s-rs-pb` crate, a build dependency whose library is empty
//! without a version feature (its dependencies are still built for the host). Cargo tells a
//! build script where its own package is but not where a dependency's sources are, so
//! `cargo metadata --locked` is asked (offline first: the build has every package already);
//! that answer holds for registry, git and vendored sources alike.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Kubernetes release whose definitions are compiled: the one k8s-openapi's `v1_33`
/// feature describes, so the protobuf and the JSON wire know the same fields.
const RELEASE: &str = "v1_33";
/// The trees of the crate that hold API types (not its test groups).
const TREES: &[&str] = &[
    "api",
    "apimachinery",
    "apiextensions_apiserver",
    "kube_aggregator",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let root = proto_root().join(RELEASE);
    let mut files = Vec::new();
    for tree in TREES {
        collect(&root, &root.join(tree), &mut files);
    }
    files.retain(|f| !f.contains("testapigroup"));
    files.sort();
    assert!(
        files.len() > 50,
        "only {} .proto files under {}",
        files.len(),
        root.display()
    );
    let mut compiler = protox::Compiler::new([&root]).expect("protox compiler");
    compiler.include_source_info(true).include_imports(true);
    compiler
        .open_files(&files)
        .unwrap_or_else(|e| panic!("compiling Kubernetes' .proto files: {e:?}"));
    let mut set = compiler.file_descriptor_set();
    let mut meta = serde_json::Map::new();
    let mut docs = serde_json::Map::new();
    for file in &mut set.file {
        let package = file.package.clone().unwrap_or_default();
        let Some(info) = file.source_code_info.take() else {
            continue;
        };
        for loc in &info.location {
            // [4, message]: a top-level message; [4, message, 2, field]: its field.
            let (m, f) = match loc.path[..] {
                [4, m] => (m, None),
                [4, m, 2, f] => (m, Some(f)),
                _ => continue,
            };
            let (Some(message), Some(comments)) =
                (file.message_type.get(m as usize), &loc.leading_comments)
            else {
                continue;
            };
            // "" is the message itself.
            let field = match f {
                Some(f) => match message.field.get(f as usize) {
                    Some(field) => field.name(),
                    None => continue,
                },
                None => "",
            };
            let name = format!("{package}.{}", message.name());
            let text = description(comments);
            if !text.is_empty() {
                docs.entry(name.clone())
                    .or_insert_with(|| serde_json::Value::Object(Default::default()))
                    .as_object_mut()
                    .expect("an object")
                    .insert(field.to_string(), text.into());
            }
            let markers = markers(comments);
            if !markers.is_empty() {
                meta.entry(name)
                    .or_insert_with(|| serde_json::Value::Object(Default::default()))
                    .as_object_mut()
                    .expect("an object")
                    .insert(field.to_string(), serde_json::Value::Object(markers));
            }
        }
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(
        out.join("kubernetes.pb"),
        prost::Message::encode_to_vec(&set),
    )
    .expect("writing the descriptor set");
    std::fs::write(
        out.join("descriptions.json"),
        serde_json::to_vec(&docs).expect("JSON"),
    )
    .expect("writing the descriptions");
    std::fs::write(
        out.join("patch-meta.json"),
        serde_json::to_vec(&meta).expect("JSON"),
    )
    .expect("writing the patch metadata");
}

/// A doc comment as Kubernetes' OpenAPI documents word it: markers (`+optional`) and what
/// follows a `---` line left out,
/// the lines of a paragraph joined by spaces, paragraphs by a blank line.
fn description(comments: &str) -> String {
    let mut paragraphs: Vec<String> = vec![String::new()];
    for line in comments.lines().map(str::trim) {
        // What follows `---` is for the type's authors, not its users.
        if line == "---" {
            break;
        }
        if line.starts_with('+') {
            continue;
        }
        if line.is_empty() {
            if !paragraphs.last().is_some_and(String::is_empty) {
                paragraphs.push(String::new());
            }
            continue;
        }
        let p = paragraphs.last_mut().expect("one paragraph");
        if !p.is_empty() {
            p.push(' ');
        }
        p.push_str(line);
    }
    paragraphs.retain(|p| !p.is_empty());
    paragraphs.join("\n\n")
}

/// The patch and list markers in a field's comment.
fn markers(comments: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for line in comments.lines() {
        let line = line.trim();
        for (marker, key) in [
            ("+patchStrategy=", "patchStrategy"),
            ("+patchMergeKey=", "patchMergeKey"),
            ("+listType=", "listType"),
            ("+structType=", "structType"),
            ("+mapType=", "mapType"),
        ] {
            if let Some(v) = line.strip_prefix(marker) {
                out.insert(key.into(), v.trim().into());
            }
        }
        if let Some(v) = line.strip_prefix("+listMapKey=") {
            let keys = out
                .entry("listMapKeys")
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let Some(a) = keys.as_array_mut() {
                a.push(v.trim().into());
            }
        }
    }
    out
}

/// `src/` of the k8s-rs-pb package this build resolved.
fn proto_root() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("Cargo.toml");
    let metadata = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.args([
            "metadata",
            "--locked",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(&manifest);
        if let Ok(target) = std::env::var("TARGET") {
            cmd.args(["--filter-platform", &target]);
        }
        if offline {
            cmd.arg("--offline");
        }
        cmd.output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.stdout)
    };
    let stdout = metadata(true)
        .or_else(|| metadata(false))
        .expect("cargo metadata failed");
    let v: serde_json::Value = serde_json::from_slice(&stdout).expect("cargo metadata JSON");
    let pkg = v["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "k8s-rs-pb")
        .expect("k8s-rs-pb in cargo metadata");
    let manifest = Path::new(pkg["manifest_path"].as_str().expect("manifest_path"));
    manifest.parent().expect("package dir").join("src")
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.file_name().is_some_and(|n| n == "generated.proto") {
            let rel = path.strip_prefix(root).expect("under root");
            files.push(rel.to_string_lossy().into_owned());
        }
    }
}
