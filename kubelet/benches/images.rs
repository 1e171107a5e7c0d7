//! Image pull benchmark: the kubelet's pull + unpack against `skopeo copy` + `umoci unpack` of
//! the same images from the same real registry, side by side in one run, plus how fast an
//! image already on the node is ready for a container.
//!
//! Run with `hack/bench/images.sh` (installs skopeo, umoci, docker-registry, busybox-static and
//! builds the static bootcamp first).

#[path = "../tests/images/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::{bootcamp, busybox, client, registry, Node};
use tinykube_kubelet::image::rootfs::{mount_rootfs, remove_rootfs};
use tinykube_kubelet::image::{BackOffPolicy, ImageManager, ImageName};

const ROUNDS: usize = 7;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    if let Ok(filter) = std::env::var("TINYKUBE_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    for tool in ["skopeo", "umoci"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("{tool} is not installed: run hack/bench/images.sh (it installs it)");
            std::process::exit(1);
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reg = registry();
    let samples = tinykube_images::sample_images(&busybox(), &bootcamp()).unwrap();
    let bootcamp_image = &samples[1].2;
    let big = tinykube_images::many_layer_image(10, 50 << 20, 42);
    rt.block_on(async {
        let c = client(&reg);
        c.push_image("google-samples/kubernetes-bootcamp", "v1", bootcamp_image)
            .await
            .unwrap();
        c.push_image("bench/many", "v1", &big).await.unwrap();
    });
    let mb =
        |i: &tinykube_images::Image| i.layers.iter().map(|l| l.size()).sum::<u64>() as f64 / 1e6;
    println!(
        "images: bootcamp:v1 ({} layers, {:.1} MB compressed), many:v1 ({} layers, {:.1} MB compressed); {ROUNDS} rounds each, cold store every round",
        bootcamp_image.layers.len(),
        mb(bootcamp_image),
        big.layers.len(),
        mb(&big)
    );
    println!();
    println!(
        "{:<24} {:>14} {:>14} {:>22} {:>8}",
        "image", "kubelet p50", "kubelet max", "skopeo+umoci p50", "speedup"
    );

    for (repo, label) in [
        ("google-samples/kubernetes-bootcamp:v1", "bootcamp:v1"),
        ("bench/many:v1", "many (10 layers, 50MB)"),
    ] {
        let reference = format!("{}/{repo}", reg.addr());
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..ROUNDS {
            // tinykube: a fresh store, pull and unpack every layer.
            let node = Node::new(&[]);
            let name = ImageName::parse(&reference).unwrap();
            // Each side starts with no dirty pages of the other's last round to write back.
            nix::unistd::sync();
            let t = Instant::now();
            rt.block_on(node.service.pull(&name, &[])).unwrap();
            ours.push(t.elapsed());

            // skopeo copy into an OCI layout, then umoci unpack into a bundle.
            let dir = tempfile::tempdir().unwrap();
            let layout = format!("{}:img", dir.path().join("oci").display());
            nix::unistd::sync();
            let t = Instant::now();
            run(Command::new("skopeo").args([
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                &format!("docker://{reference}"),
                &format!("oci:{layout}"),
            ]));
            run(Command::new("umoci").args([
                "unpack",
                "--image",
                &layout,
                dir.path().join("bundle").to_str().unwrap(),
            ]));
            theirs.push(t.elapsed());
        }
        let (o, t) = (pct(&mut ours, 0.5), pct(&mut theirs, 0.5));
        println!(
            "{:<24} {:>14} {:>14} {:>22} {:>7.1}x",
            label,
            ms(o),
            ms(pct(&mut ours, 1.0)),
            ms(t),
            t.as_secs_f64() / o.as_secs_f64()
        );
    }

    // An image already on the node: what the kubelet does before each container start.
    let node = Node::new(&[]);
    let m = ImageManager::new(node.service.clone(), BackOffPolicy::default());
    let image = format!("{}/google-samples/kubernetes-bootcamp:v1", reg.addr());
    let first = rt.block_on(m.ensure("uid", &image, "IfNotPresent", &[]));
    let rec = first.result.unwrap();
    let mut ready = Vec::new();
    let mut mounts = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        let r = rt.block_on(m.ensure("uid", &image, "IfNotPresent", &[]));
        ready.push(t.elapsed());
        assert!(r.result.is_ok());
        if i < 50 {
            let id = format!("bench-{i}");
            let t = Instant::now();
            mount_rootfs(node.store(), &id, &rec).unwrap();
            mounts.push(t.elapsed());
            remove_rootfs(node.store(), &id).unwrap();
        }
    }
    println!();
    println!(
        "cached image ready (IfNotPresent, present): p50 {} / p99 {}   — goal < 5 ms",
        ms(pct(&mut ready, 0.5)),
        ms(pct(&mut ready, 0.99))
    );
    println!(
        "container rootfs (overlay mount of the cached image): p50 {} / p99 {}",
        ms(pct(&mut mounts, 0.5)),
        ms(pct(&mut mounts, 0.99))
    );
    println!();
    println!("anchors: goal >= 2x faster than skopeo copy + umoci unpack (Debian skopeo 1.9, umoci 0.4.7);");
    println!("         containerd pulls are the users' reference; pod startup SLO p99 <= 5 s includes the pull");
}
