//! tinykube's sample images: `library/busybox:latest` and
//! `google-samples/kubernetes-bootcamp:v1`/`:v2`, built from Debian's static busybox and the
//! static `bootcamp` binary of this workspace; `etcd` from Debian's etcd for the gRPC probe
//! example; and synthetic many-layer images for benchmarks.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::{Compression, Entry, Image, Layer};

/// The `PATH` every sample image sets (Docker's default).
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub const BUSYBOX_REPO: &str = "library/busybox";
pub const BOOTCAMP_REPO: &str = "google-samples/kubernetes-bootcamp";

/// Applets the images must have (tests and tutorials use them).
const REQUIRED_APPLETS: &[&str] = &[
    "sh", "wget", "nc", "sleep", "ls", "cat", "echo", "ps", "env", "hostname", "id",
];

/// The three sample images as (repository, tag, image): `library/busybox:latest`,
/// `google-samples/kubernetes-bootcamp:v1` and `:v2`. `busybox` must be a static busybox (Debian's
/// `busybox-static`), `bootcamp` the static build of the `bootcamp` crate. Both bootcamp tags
/// share the busybox layer (same digest as in the busybox image) and one app layer, and differ
/// only in `BOOTCAMP_VERSION`.
pub fn sample_images(busybox: &Path, bootcamp: &Path) -> Result<Vec<(String, String, Image)>> {
    let base = busybox_layer(busybox)?;
    let app = bootcamp_layer(bootcamp)?;
    Ok(vec![
        (BUSYBOX_REPO.into(), "latest".into(), busybox_image(&base)),
        (
            BOOTCAMP_REPO.into(),
            "v1".into(),
            bootcamp_image(&base, &app, 1),
        ),
        (
            BOOTCAMP_REPO.into(),
            "v2".into(),
            bootcamp_image(&base, &app, 2),
        ),
    ])
}

/// The busybox rootfs: `/bin/busybox`, a symlink to it for every applet `busybox --list-full`
/// names (e.g. `/bin/sh`, `/usr/bin/wget`), `/tmp` (1777), `/root` (0700), and `/etc/passwd` and
/// `/etc/group` with root and nobody. Entries are sorted by path, so parents come first.
pub fn busybox_layer(busybox: &Path) -> Result<Layer> {
    let binary = read_static_binary(busybox)?;
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running {} --list-full", busybox.display()))?;
    ensure!(
        out.status.success(),
        "{} --list-full: {}",
        busybox.display(),
        out.status
    );
    let applets: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        // Skip the initrd's `linuxrc` at the root, and busybox itself.
        .filter(|p| p.contains('/') && *p != "bin/busybox")
        .map(String::from)
        .collect();
    for want in REQUIRED_APPLETS {
        let found = applets.iter().any(|a| a.rsplit('/').next() == Some(want));
        ensure!(found, "{} has no `{want}` applet", busybox.display());
    }

    let mut entries = vec![
        Entry::dir("bin/", 0o755),
        Entry::file("bin/busybox", 0o755, binary),
        Entry::dir("dev/", 0o755),
        Entry::dir("etc/", 0o755),
        Entry::file("etc/group", 0o644, "root:x:0:\nnobody:x:65534:\n"),
        Entry::file(
            "etc/passwd",
            0o644,
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
        ),
        Entry::dir("home/", 0o755),
        Entry::dir("root/", 0o700),
        Entry::dir("sbin/", 0o755),
        Entry::dir("tmp/", 0o1777),
        Entry::dir("usr/", 0o755),
        Entry::dir("usr/bin/", 0o755),
        Entry::dir("usr/sbin/", 0o755),
        Entry::dir("var/", 0o755),
    ];
    let dirs: BTreeSet<String> = entries.iter().map(|e| e.path.clone()).collect();
    for applet in &applets {
        let parent = applet.rsplit_once('/').map(|(d, _)| format!("{d}/"));
        ensure!(
            parent.is_some_and(|p| dirs.contains(&p)),
            "busybox applet {applet} is outside the image's directories"
        );
        // Absolute, as `busybox --install -s` makes them.
        entries.push(Entry::symlink(applet.clone(), "/bin/busybox"));
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Layer::new(entries))
}

/// `library/busybox:latest`: the busybox layer, `PATH` set, `Cmd ["sh"]`.
pub fn busybox_image(base: &Layer) -> Image {
    let mut image = Image::new(vec![base.clone()]);
    image.config.env = vec![PATH_ENV.into()];
    image.config.cmd = Some(vec!["sh".into()]);
    image
}

/// The bootcamp app layer: `/bootcamp` and `/usr/bin/curl -> /bootcamp` (the binary is curl
/// when called as `curl`).
pub fn bootcamp_layer(bootcamp: &Path) -> Result<Layer> {
    let binary = read_static_binary(bootcamp)?;
    Ok(Layer::new([
        Entry::file("bootcamp", 0o755, binary),
        Entry::dir("usr/", 0o755),
        Entry::dir("usr/bin/", 0o755),
        Entry::symlink("usr/bin/curl", "/bootcamp"),
    ]))
}

/// `google-samples/kubernetes-bootcamp:v<version>`: busybox plus the app layer, serving
/// `… | v=<version>` on 8080.
pub fn bootcamp_image(base: &Layer, app: &Layer, version: u32) -> Image {
    let mut image = Image::new(vec![base.clone(), app.clone()]);
    let c = &mut image.config;
    c.env = vec![PATH_ENV.into(), format!("BOOTCAMP_VERSION={version}")];
    c.cmd = Some(vec!["/bootcamp".into()]);
    c.exposed_ports = vec!["8080/tcp".into()];
    c.labels.insert(
        "org.opencontainers.image.description".into(),
        "tinykube's stand-in for gcr.io/google-samples/kubernetes-bootcamp".into(),
    );
    image
}

/// `etcd:<tag>` laid out as `registry.k8s.io/etcd`, which the Kubernetes docs' gRPC probe
/// example runs: the busybox layer and `/usr/local/bin/etcd`. The etcd is Debian's (a
/// dynamically linked Go binary), so its layer also holds the loader and libraries `ldd`
/// names, at their paths.
pub fn etcd_image(base: &Layer, etcd: &Path) -> Result<Image> {
    let out = Command::new("ldd")
        .arg(etcd)
        .output()
        .context("running ldd (libc-bin)")?;
    ensure!(
        out.status.success(),
        "ldd {}: {}",
        etcd.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let mut files = vec![("usr/local/bin/etcd".to_string(), read(etcd)?)];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`.
        let lib = line.rsplit("=>").next().unwrap_or_default().trim();
        let lib = lib.split_whitespace().next().unwrap_or_default();
        if let Some(rel) = lib.strip_prefix('/') {
            files.push((rel.to_string(), read(Path::new(lib))?));
        }
    }
    let mut dirs = BTreeSet::new();
    for (path, _) in &files {
        let mut dir = Path::new(path).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(format!("{}/", d.display()));
            dir = d.parent();
        }
    }
    let mut entries: Vec<Entry> = dirs.into_iter().map(|d| Entry::dir(d, 0o755)).collect();
    entries.extend(
        files
            .into_iter()
            .map(|(path, data)| Entry::file(path, 0o755, data)),
    );
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let layer = Layer::with_compression(entries, Compression::Gzip(1));
    let mut image = Image::new(vec![base.clone(), layer]);
    let c = &mut image.config;
    c.env = vec![PATH_ENV.into()];
    c.cmd = Some(vec!["/usr/local/bin/etcd".into()]);
    c.exposed_ports = vec!["2379/tcp".into(), "2380/tcp".into()];
    Ok(image)
}

/// An image of `layers` layers holding `total_bytes` of pseudo-random (incompressible) data
/// between them, as `data/layer-NNNN.bin`; the same `seed` gives the same image. Layers are
/// gzipped at level 1 to keep building fast. It has no shell: put a busybox layer first to
/// run it.
pub fn many_layer_image(layers: usize, total_bytes: usize, seed: u64) -> Image {
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let per_layer = total_bytes.checked_div(layers).unwrap_or(0);
    let layers = (0..layers)
        .map(|i| {
            // The last layer takes the remainder.
            let size = if i + 1 == layers {
                total_bytes - per_layer * i
            } else {
                per_layer
            };
            let mut data = vec![0u8; size];
            for chunk in data.chunks_mut(8) {
                let r = rng.next().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            let entries = [
                Entry::dir("data/", 0o755),
                Entry::file(format!("data/layer-{i:04}.bin"), 0o644, data),
            ];
            Layer::with_compression(entries, Compression::Gzip(1))
        })
        .collect();
    let mut image = Image::new(layers);
    image.config.env = vec![PATH_ENV.into()];
    image.config.cmd = Some(vec!["sh".into()]);
    image
}

/// xorshift64: plenty for incompressible test data.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Reads an executable that must run in an empty rootfs: a 64-bit ELF with no program
/// interpreter (statically linked).
fn read_static_binary(path: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let u16_at = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u64_at = |at: usize| {
        data.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    ensure!(
        data.starts_with(b"\x7fELF\x02\x01"),
        "{} is not a little-endian 64-bit ELF executable",
        path.display()
    );
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        bail!("{}: truncated ELF header", path.display());
    };
    for i in 0..phnum as usize {
        let at = phoff as usize + i * phentsize as usize;
        const PT_INTERP: u32 = 3;
        let p_type = data
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
        ensure!(
            p_type != Some(PT_INTERP),
            "{} is dynamically linked; it would not run in the image (build it with \
             RUSTFLAGS=\"-C target-feature=+crt-static\" --target x86_64-unknown-linux-gnu)",
            path.display()
        );
    }
    Ok(data)
}
