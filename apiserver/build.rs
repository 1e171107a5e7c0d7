//! Compiles Kubernetes' own `generated.proto` files into a descriptor set the apiserver
//! embeds (`$OUT_DIR/kubernetes.pb`): the protobuf wire (`application/vnd.kubernetes.protobuf`)
//! is read and written through these descriptors, so no field table is written by hand.
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
    compiler.include_source_info(false).include_imports(true);
    compiler
        .open_files(&files)
        .unwrap_or_else(|e| panic!("compiling Kubernetes' .proto files: {e:?}"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(
        out.join("kubernetes.pb"),
        compiler.encode_file_descriptor_set(),
    )
    .expect("writing the descriptor set");
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
