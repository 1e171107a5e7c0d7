//! Compiles Kubernetes' own `generated.proto` files into a descriptor set the apiserver
//! embeds (`$OUT_DIR/kubernetes.pb`): the protobuf wire (`application/vnd.kubernetes.protobuf`)
//! is read and written through these descriptors, so no field table is written by hand.
//!
//! Beside it, `$OUT_DIR/patch-meta.json`: the markers Kubernetes' Go types carry and the .proto
//! comments keep (`+patchStrategy=merge`, `+patchMergeKey=name`, `+listType=map`,
//! `+listMapKey=name`), by message and field, for strategic merge patch.
//!
//! The .proto files come from the `k8s-rs-pb` crate (a build dependency; none of its Rust is
//! compiled). Cargo tells a build script where its own package is but not where a dependency's
//! sources are, so `cargo metadata` is asked; that answer holds for registry, git and vendored
//! sources alike.

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
    for file in &mut set.file {
        let package = file.package.clone().unwrap_or_default();
        let Some(info) = file.source_code_info.take() else {
            continue;
        };
        for loc in &info.location {
            // [4, message, 2, field]: a top-level message's field.
            let [4, m, 2, f] = loc.path[..] else {
                continue;
            };
            let (Some(message), Some(comments)) =
                (file.message_type.get(m as usize), &loc.leading_comments)
            else {
                continue;
            };
            let Some(field) = message.field.get(f as usize) else {
                continue;
            };
            let markers = markers(comments);
            if markers.is_empty() {
                continue;
            }
            let name = format!("{package}.{}", message.name());
            meta.entry(name)
                .or_insert_with(|| serde_json::Value::Object(Default::default()))
                .as_object_mut()
                .expect("an object")
                .insert(field.name().to_string(), serde_json::Value::Object(markers));
        }
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(
        out.join("kubernetes.pb"),
        prost::Message::encode_to_vec(&set),
    )
    .expect("writing the descriptor set");
    std::fs::write(
        out.join("patch-meta.json"),
        serde_json::to_vec(&meta).expect("JSON"),
    )
    .expect("writing the patch metadata");
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
        cmd.args(["metadata", "--format-version", "1", "--manifest-path"])
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
