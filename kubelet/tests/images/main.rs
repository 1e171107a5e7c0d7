//! The image service against a real registry: pulls of the sample images, digests, mirrors,
//! auth, hostile layers, corrupted blobs, pull policies and back-off, load, GC.
//! Needs root (overlay mounts), Debian's docker-registry and busybox-static.

mod harness;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{bootcamp, busybox, client, free_port, registry, KillOnDrop, Node};
use tinykube_images::{Entry, Image, Index, Layer};
use tinykube_images::{RegistryOptions, TestRegistry};
use tinykube_kubelet::image::rootfs::{mount_rootfs, remove_rootfs};
use tinykube_kubelet::image::{BackOffPolicy, ImageManager, ImageName, PullError};

fn name(s: &str) -> ImageName {
    ImageName::parse(s).unwrap()
}

fn sh(root: &std::path::Path, script: &str) -> String {
    let out = Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sample_images_pull_through_a_mirror_share_layers_and_run() {
    let reg = registry();
    let samples = tinykube_images::sample_images(&busybox(), &bootcamp()).unwrap();
    let c = client(&reg);
    let mut pushed = Vec::new();
    for (repo, tag, image) in &samples {
        let digest = c.push_image(repo, tag, image).await.unwrap();
        assert_eq!(digest, image.digest());
        pushed.push(digest);
    }

    // The tutorial's exact names, through mirrors for gcr.io and docker.io.
    let mirror = format!("http://{}", reg.addr());
    let node = Node::new(&[format!("gcr.io={mirror}"), format!("docker.io={mirror}")]);
    let boot = node
        .service
        .pull(&name("gcr.io/google-samples/kubernetes-bootcamp:v1"), &[])
        .await
        .unwrap()
        .image;
    assert_eq!(boot.id, samples[1].2.config_digest());
    assert_eq!(boot.manifest_digest, pushed[1]);
    assert_eq!(boot.names, ["gcr.io/google-samples/kubernetes-bootcamp:v1"]);
    assert_eq!(
        boot.repo_digests,
        [format!(
            "gcr.io/google-samples/kubernetes-bootcamp@{}",
            pushed[1]
        )]
    );
    assert_eq!(boot.layers.len(), 2);
    let bb = node
        .service
        .pull(&name("busybox"), &[])
        .await
        .unwrap()
        .image;
    assert_eq!(bb.names, ["docker.io/library/busybox:latest"]);
    // busybox's only layer is bootcamp's base: unpacked once.
    assert_eq!(bb.layers[0].chain_id, boot.layers[0].chain_id);
    assert_eq!(node.count("layers"), 2);
    assert_eq!(node.count("tmp"), 0);

    // The unpacked image runs: a shell, and the bootcamp server answered by the image's curl.
    let root = mount_rootfs(node.store(), "c1", &boot).unwrap();
    assert_eq!(sh(&root, "echo hi > /tmp/x && cat /tmp/x"), "hi\n");
    let port = free_port();
    let server = KillOnDrop(
        Command::new("chroot")
            .arg(&root)
            .arg("/bootcamp")
            .env("PORT", port.to_string())
            .env("BOOTCAMP_VERSION", "1")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut answer = String::new();
    for _ in 0..100 {
        let out = Command::new("chroot")
            .arg(&root)
            .args(["/usr/bin/curl", "-s", &format!("localhost:{port}")])
            .output()
            .unwrap();
        answer = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        answer.starts_with("Hello Kubernetes bootcamp! | Running on: ")
            && answer.trim_end().ends_with("| v=1"),
        "{answer:?}"
    );
    drop(server);
    // The container's writes stay in its own upper dir, never in the shared layers.
    assert!(node.store().rootfs_dir("c1").join("upper/tmp/x").exists());
    for l in &boot.layers {
        assert!(!node.store().layer_dir(&l.chain_id).join("tmp/x").exists());
    }
    remove_rootfs(node.store(), "c1").unwrap();
    assert!(!node.store().rootfs_dir("c1").exists());

    // A second pull of a present image fetches only the manifest (blobs are there).
    let blob_gets = reg.gets("/blobs/");
    node.service.pull(&name("busybox"), &[]).await.unwrap();
    assert_eq!(reg.gets("/blobs/"), blob_gets);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_pulls_of_one_image_are_one_pull() {
    let reg = registry();
    let image = tinykube_images::many_layer_image(4, 4 << 20, 7);
    client(&reg).push_image("many", "v1", &image).await.unwrap();
    let node = Node::new(&[]);
    let n = name(&format!("{}/many:v1", reg.addr()));
    let pulls: Vec<_> = (0..4)
        .map(|_| {
            let s = node.service.clone();
            let n = n.clone();
            tokio::spawn(async move { s.pull(&n, &[]).await.unwrap().image.id })
        })
        .collect();
    for p in pulls {
        assert_eq!(p.await.unwrap(), image.config_digest());
    }
    // Each layer blob was fetched exactly once.
    for l in &image.layers {
        assert_eq!(reg.gets(l.digest()), 1, "layer {}", l.digest());
    }
    assert_eq!(node.count("layers"), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_manifests_and_indexes_pick_this_platform() {
    let reg = registry();
    let base = tinykube_images::busybox_layer(&busybox()).unwrap();
    let docker = tinykube_images::busybox_image(&base).docker();
    let c = client(&reg);
    let d = c.push_image("bb", "docker", &docker).await.unwrap();
    let index = Index::multi_arch(tinykube_images::busybox_image(&base));
    let i = c.push_index("bb", "multi", &index).await.unwrap();

    let node = Node::new(&[]);
    let img = node
        .service
        .pull(&name(&format!("{}/bb:docker", reg.addr())), &[])
        .await
        .unwrap()
        .image;
    assert_eq!(img.manifest_digest, d);
    assert_eq!(
        img.manifest_media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let multi = node
        .service
        .pull(&name(&format!("{}/bb:multi", reg.addr())), &[])
        .await
        .unwrap()
        .image;
    // The amd64 entry, not the arm64 dummy listed first.
    assert_eq!(multi.id, img.id);
    assert_ne!(multi.manifest_digest, i);
    let root = mount_rootfs(node.store(), "c2", &multi).unwrap();
    assert!(!root.join("ARM64-DUMMY").exists());
    assert_eq!(sh(&root, "echo ok"), "ok\n");
    remove_rootfs(node.store(), "c2").unwrap();

    // Pinning a digest works, and a wrong digest is refused.
    let pinned = node
        .service
        .pull(&name(&format!("{}/bb@{d}", reg.addr())), &[])
        .await
        .unwrap();
    assert_eq!(pinned.image.id, img.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupted_blobs_and_lying_configs_fail_and_store_nothing() {
    let reg = registry();
    let layer = Layer::new([Entry::file("data", 0o644, vec![7u8; 100_000])]);
    let good = Image::new(vec![layer.clone()]);
    client(&reg).push_image("app", "v1", &good).await.unwrap();
    // Flip bytes of the layer blob inside the registry's storage.
    let f = reg.blob_path(layer.digest());
    let mut bytes = fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&f, bytes).unwrap();

    let node = Node::new(&[]);
    let err = node
        .service
        .pull(&name(&format!("{}/app:v1", reg.addr())), &[])
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(layer.digest()) && msg.to_lowercase().contains("digest"),
        "{msg}"
    );
    assert!(node.store().list().unwrap().is_empty());
    assert_eq!(
        (
            node.count("blobs/sha256"),
            node.count("layers"),
            node.count("tmp")
        ),
        (0, 0, 0)
    );

    // A layer whose blob is fine but whose content is not the config's diff_id.
    let other = Layer::new([Entry::file("data", 0o644, "lies")]);
    let liar = Image::new(vec![
        other.with_diff_id(format!("sha256:{}", "0".repeat(64)))
    ]);
    client(&reg).push_image("liar", "v1", &liar).await.unwrap();
    let err = node
        .service
        .pull(&name(&format!("{}/liar:v1", reg.addr())), &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("diff_id mismatch"), "{err}");
    assert!(node.store().list().unwrap().is_empty());
    assert_eq!((node.count("layers"), node.count("tmp")), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_layers_stay_inside_and_whiteouts_apply() {
    let reg = registry();
    let base = tinykube_images::busybox_layer(&busybox()).unwrap();
    let mut dotdot = tinykube_images::tar::Header::new_gnu();
    dotdot.as_old_mut().name[..23].copy_from_slice(b"../../../../tk-escape-1");
    dotdot.set_size(4);
    dotdot.set_mode(0o644);
    dotdot.set_uid(0);
    dotdot.set_gid(0);
    dotdot.set_mtime(0);
    dotdot.set_entry_type(tinykube_images::tar::EntryType::Regular);
    dotdot.set_cksum();
    let hostile = Layer::new([
        Entry::raw(dotdot, "evil"),
        Entry::symlink("escape", "/"),
        Entry::file("escape/tmp/tk-escape-2", 0o644, "evil"),
        Entry::dir("var/", 0o755),
        Entry::symlink("var/run", "/run"),
        Entry::file("var/run/inside", 0o644, "ok"),
        Entry::file("etc/gone", 0o644, "x"),
        Entry::dir("opaque/", 0o755),
        Entry::file("opaque/old", 0o644, "x"),
    ]);
    let top = Layer::new([
        Entry::whiteout("etc/gone"),
        Entry::opaque_whiteout("opaque"),
        Entry::file("opaque/new", 0o644, "y"),
        Entry::file("bin/suid", 0o4755, "#!/bin/sh\n"),
    ]);
    let image = Image::new(vec![base, hostile, top]);
    client(&reg)
        .push_image("hostile", "v1", &image)
        .await
        .unwrap();
    let node = Node::new(&[]);
    let img = node
        .service
        .pull(&name(&format!("{}/hostile:v1", reg.addr())), &[])
        .await
        .unwrap()
        .image;
    for host in ["/tk-escape-1", "/tmp/tk-escape-2", "/run/inside"] {
        assert!(
            !std::path::Path::new(host).exists(),
            "{host} was written on the host"
        );
    }
    let root = mount_rootfs(node.store(), "c3", &img).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("tk-escape-1")).unwrap(),
        "evil"
    );
    assert_eq!(
        fs::read_to_string(root.join("tmp/tk-escape-2")).unwrap(),
        "evil"
    );
    assert_eq!(fs::read_to_string(root.join("run/inside")).unwrap(), "ok");
    assert!(!root.join("etc/gone").exists());
    assert!(root.join("etc/passwd").exists());
    let listing: HashSet<_> = fs::read_dir(root.join("opaque"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(listing, HashSet::from(["new".to_string()]));
    assert_eq!(
        fs::metadata(root.join("bin/suid")).unwrap().mode() & 0o7777,
        0o4755
    );
    // In the top layer's own directory the whiteout is overlayfs' 0/0 character device.
    let top_dir = node.store().layer_dir(&img.layers[2].chain_id);
    let wh = fs::symlink_metadata(top_dir.join("etc/gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    remove_rootfs(node.store(), "c3").unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_policies_events_and_back_off() {
    let reg = registry();
    let base = tinykube_images::busybox_layer(&busybox()).unwrap();
    client(&reg)
        .push_image("bb", "1.0", &tinykube_images::busybox_image(&base))
        .await
        .unwrap();
    let node = Node::new(&[]);
    let policy = BackOffPolicy {
        initial: Duration::from_millis(400),
        max: Duration::from_secs(2),
    };
    let m = ImageManager::new(node.service.clone(), policy);
    let present = format!("{}/bb:1.0", reg.addr());
    let missing = format!("{}/bb:nope", reg.addr());
    let reasons =
        |e: &[tinykube_kubelet::image::ImageEvent]| e.iter().map(|e| e.reason).collect::<Vec<_>>();

    // Never + absent.
    let r = m.ensure("pod-1", &present, "Never", &[]).await;
    let wait = r.result.unwrap_err();
    assert_eq!(wait.reason, "ErrImageNeverPull");
    assert_eq!(
        wait.message,
        format!("Container image {present:?} is not present with pull policy of Never")
    );

    // IfNotPresent pulls once, then finds it.
    let r = m.ensure("pod-1", &present, "IfNotPresent", &[]).await;
    assert!(r.result.is_ok());
    assert_eq!(reasons(&r.events), ["Pulling", "Pulled"]);
    let msg = &r.events[1].message;
    assert!(
        msg.starts_with(&format!("Successfully pulled image {present:?} in "))
            && msg.ends_with(" bytes."),
        "{msg}"
    );
    let r = m.ensure("pod-1", &present, "IfNotPresent", &[]).await;
    assert_eq!(reasons(&r.events), ["Pulled"]);
    assert_eq!(
        r.events[0].message,
        format!("Container image {present:?} already present on machine")
    );

    // A missing tag: ErrImagePull, then ImagePullBackOff inside the window, then a retry.
    let first_try = Instant::now();
    let r = m.ensure("pod-1", &missing, "IfNotPresent", &[]).await;
    let wait = r.result.unwrap_err();
    assert_eq!(wait.reason, "ErrImagePull");
    assert!(wait.message.contains("not found"), "{}", wait.message);
    assert_eq!(reasons(&r.events), ["Pulling", "Failed", "Failed"]);
    assert!(r.events[1]
        .message
        .starts_with(&format!("Failed to pull image {missing:?}: ")));
    let r = m.ensure("pod-1", &missing, "IfNotPresent", &[]).await;
    assert_eq!(r.result.unwrap_err().reason, "ImagePullBackOff");
    assert_eq!(reasons(&r.events), ["BackOff", "Failed"]);
    // Another pod has its own back-off.
    let r = m.ensure("pod-2", &missing, "IfNotPresent", &[]).await;
    assert_eq!(r.result.unwrap_err().reason, "ErrImagePull");
    // No timing margins: the kubelet asks again and again (as its pod workers do) until it
    // retries; a window is a lower bound, measured from before the failing pull began to
    // after the retry was let through.
    let (r, second_try, retried) = until_retried(&m, "pod-1", &missing).await;
    assert!(
        retried - first_try >= policy.initial,
        "retried after {:?}, inside the first window",
        retried - first_try
    );
    assert_eq!(r.result.unwrap_err().reason, "ErrImagePull");
    assert_eq!(reasons(&r.events)[0], "Pulling");
    // The window doubled: still backing off after the first interval.
    let r = m.ensure("pod-1", &missing, "IfNotPresent", &[]).await;
    assert_eq!(r.result.unwrap_err().reason, "ImagePullBackOff");
    let (r, _, retried) = until_retried(&m, "pod-1", &missing).await;
    assert!(
        retried - second_try >= policy.initial * 2,
        "retried after {:?}, inside the doubled window",
        retried - second_try
    );
    assert_eq!(r.result.unwrap_err().reason, "ErrImagePull");

    // A name that is not a reference.
    let r = m.ensure("pod-1", "Not A Name", "", &[]).await;
    assert_eq!(r.result.unwrap_err().reason, "InvalidImageName");
    assert!(matches!(
        node.service.pull(&name(&missing), &[]).await,
        Err(PullError::NotFound(_))
    ));
}

/// Asks for `image` every 20 ms while it is in back-off (10 s at most); returns the first
/// answer that is not ImagePullBackOff, with the instants before that call and after it.
async fn until_retried(
    m: &ImageManager,
    pod: &str,
    image: &str,
) -> (tinykube_kubelet::image::Ensured, Instant, Instant) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = Instant::now();
        let r = m.ensure(pod, image, "IfNotPresent", &[]).await;
        let at = Instant::now();
        if !matches!(&r.result, Err(w) if w.reason == "ImagePullBackOff") {
            return (r, before, at);
        }
        assert!(at < deadline, "{pod} stayed in back-off for {image}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Mirrors as containerd's hosts.toml: a mirror without the name, or unreachable, gives way to
/// the next endpoint and the pull ends at the image's own registry; an image in none of them
/// fails naming every endpoint and its answer; a mirror's authentication error is final.
#[tokio::test(flavor = "multi_thread")]
async fn mirrors_without_the_image_give_way_to_the_registry() {
    let upstream = registry();
    let mirror = registry();
    let base = tinykube_images::busybox_layer(&busybox()).unwrap();
    let image = tinykube_images::busybox_image(&base);
    let digest = client(&upstream)
        .push_image("team/bb", "v1", &image)
        .await
        .unwrap();
    let up = upstream.addr().to_string();
    // A port nothing listens on: an unreachable mirror.
    let dead = format!("127.0.0.1:{}", free_port());
    let node = Node::new(&[format!("{up}=http://{dead},http://{}", mirror.addr())]);

    // Through the dead mirror and the empty one to the registry itself.
    let blob_gets = upstream.gets("/blobs/");
    let pulled = node
        .service
        .pull(&name(&format!("{up}/team/bb:v1")), &[])
        .await
        .unwrap()
        .image;
    assert_eq!(pulled.manifest_digest, digest);
    assert_eq!(pulled.names, [format!("{up}/team/bb:v1")]);
    assert_eq!(
        mirror.gets("/v2/team/bb/manifests/v1"),
        1,
        "the mirror was asked first"
    );
    assert_eq!(upstream.gets("/v2/team/bb/manifests/v1"), 1);
    assert_eq!(
        upstream.gets("/blobs/"),
        blob_gets + 2,
        "config and layer come from the registry"
    );
    assert_eq!(mirror.gets("/blobs/"), 0);

    // In none of them: the error names each endpoint with its answer, in order.
    let err = node
        .service
        .pull(&name(&format!("{up}/team/bb:nope")), &[])
        .await
        .unwrap_err();
    let PullError::NotFound(msg) = &err else {
        panic!("want NotFound, got {err:?}");
    };
    let at = |needle: &str| {
        msg.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} is missing from {msg:?}"))
    };
    let (d, m, u) = (
        at(&format!("http://{dead} (mirror): unreachable: ")),
        at(&format!("http://{} (mirror): not found: ", mirror.addr())),
        at(&format!("http://{up}: not found: ")),
    );
    assert!(d < m && m < u, "{msg}");
    assert!(
        msg.starts_with(&format!("{up}/team/bb:nope (tried ")),
        "{msg}"
    );

    // The message a user sees in the Failed event and ErrImagePull.
    let m = ImageManager::new(node.service.clone(), BackOffPolicy::default());
    let r = m
        .ensure("pod-1", &format!("{up}/team/bb:nope"), "IfNotPresent", &[])
        .await;
    let wait = r.result.unwrap_err();
    assert_eq!(wait.reason, "ErrImagePull");
    assert!(
        wait.message.contains(&format!("http://{up}: not found")),
        "{}",
        wait.message
    );
    assert!(wait.message.contains(mirror.addr()), "{}", wait.message);

    // A mirror that wants credentials is final: its answer, not the registry's image.
    let locked = TestRegistry::start_opts(&RegistryOptions {
        auth: Some(("alice".into(), "s3cret".into())),
        storage: None,
        access_log: false,
    })
    .unwrap();
    let strict = Node::new(&[format!("{up}=http://{}", locked.addr())]);
    let err = strict
        .service
        .pull(&name(&format!("{up}/team/bb:v1")), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::Unauthorized(_)), "{err:?}");
    assert_eq!(
        upstream.gets("/v2/team/bb/manifests/v1"),
        1,
        "the registry was not asked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_secrets_authenticate() {
    let setup = registry();
    let base = tinykube_images::busybox_layer(&busybox()).unwrap();
    client(&setup)
        .push_image("private/bb", "v1", &tinykube_images::busybox_image(&base))
        .await
        .unwrap();
    let reg = TestRegistry::start_opts(&RegistryOptions {
        auth: Some(("alice".into(), "s3cret".into())),
        storage: Some(setup.into_storage()),
        access_log: false,
    })
    .unwrap();
    let node = Node::new(&[]);
    let n = name(&format!("{}/private/bb:v1", reg.addr()));
    let err = node.service.pull(&n, &[]).await.unwrap_err();
    assert!(matches!(err, PullError::Unauthorized(_)), "{err:?}");
    let wrong = format!(
        r#"{{"auths":{{"{}":{{"username":"alice","password":"nope"}}}}}}"#,
        reg.addr()
    );
    assert!(node.service.pull(&n, &[wrong.into_bytes()]).await.is_err());
    let auth = base64_encode("alice:s3cret");
    let right = format!(
        r#"{{"auths":{{"http://{}":{{"auth":"{auth}"}}}}}}"#,
        reg.addr()
    );
    let img = node.service.pull(&n, &[right.into_bytes()]).await.unwrap();
    assert_eq!(img.image.names, [n.canonical()]);
}

fn base64_encode(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn load_round_trips_oci_archives_and_docker_saves() {
    let base = tinykube_images::busybox_layer(&busybox()).unwrap();
    let mut image = tinykube_images::busybox_image(&base);
    image
        .layers
        .push(Layer::new([Entry::file("hello", 0o644, "loaded\n")]));
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("img.oci.tar");
    let docker = tmp.path().join("img.docker.tar");
    tinykube_images::write_oci_archive(&oci, &[("example.com/app:v1", &image)]).unwrap();
    tinykube_images::write_docker_save(&docker, &[("app:v2", &image)]).unwrap();

    let node = Node::new(&[]);
    let bin = env!("CARGO_BIN_EXE_tinykube-kubelet");
    let data = node.dir.path();
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // The store lives in <data-dir>/images: the CLI and this test share it.
    assert_eq!(
        run(&["images", "load", oci.to_str().unwrap()]),
        "Loaded image: example.com/app:v1\n"
    );
    assert_eq!(
        run(&["images", "load", docker.to_str().unwrap()]),
        "Loaded image: docker.io/library/app:v2\n"
    );
    let ls = run(&["images", "ls"]);
    let short = &image.config_digest()[7..20];
    assert!(
        ls.contains("docker.io/library/app") && ls.contains("example.com/app"),
        "{ls}"
    );
    assert_eq!(ls.matches(short).count(), 2, "{ls}");

    // One image, two names; it runs.
    let rec = node.store().get("example.com/app:v1").unwrap().unwrap();
    assert_eq!(rec.id, image.config_digest());
    assert_eq!(rec.names.len(), 2);
    let root = mount_rootfs(node.store(), "c4", &rec).unwrap();
    assert_eq!(sh(&root, "cat /hello"), "loaded\n");

    // In use: rm keeps it; after the container is gone, rm removes everything.
    let out = Command::new(bin)
        .args(["images", "rm", "example.com/app:v1", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    remove_rootfs(node.store(), "c4").unwrap();
    run(&["images", "rm", "example.com/app:v1"]);
    assert!(node.store().list().unwrap().is_empty());
    assert_eq!((node.count("layers"), node.count("blobs/sha256")), (0, 0));

    // A tampered archive is refused whole.
    let mut bytes = fs::read(&oci).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    fs::write(&oci, bytes).unwrap();
    let out = Command::new(bin)
        .args(["images", "load"])
        .arg(&oci)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(node.store().list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_collection_removes_unused_images_oldest_first() {
    let reg = registry();
    let c = client(&reg);
    let node = Node::new(&[]);
    let mut ids = Vec::new();
    for i in 0..3u8 {
        let image = Image::new(vec![Layer::new([Entry::file("n", 0o644, vec![i; 10])])]);
        c.push_image("gc", &format!("v{i}"), &image).await.unwrap();
        let rec = node
            .service
            .pull(&name(&format!("{}/gc:v{i}", reg.addr())), &[])
            .await
            .unwrap()
            .image;
        ids.push(rec);
    }
    // v0 is in use by a container.
    mount_rootfs(node.store(), "c5", &ids[0]).unwrap();
    // A threshold of 0% means "always above": everything unused goes.
    let removed = node.store().collect_garbage(0, 0).unwrap();
    let gone: HashSet<_> = removed.iter().map(|r| r.id.clone()).collect();
    assert_eq!(gone, HashSet::from([ids[1].id.clone(), ids[2].id.clone()]));
    assert_eq!(node.store().list().unwrap().len(), 1);
    assert_eq!(node.count("layers"), 1);
    // Far below a 100% threshold nothing goes.
    assert!(node.store().collect_garbage(100, 99).unwrap().is_empty());
    remove_rootfs(node.store(), "c5").unwrap();
}
