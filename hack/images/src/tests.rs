use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::*;

fn sample_entries() -> Vec<Entry> {
    vec![
        Entry::dir("tmp/", 0o1777),
        Entry::dir("usr/", 0o755),
        Entry::dir("usr/bin/", 0o755),
        Entry::file("usr/bin/su", 0o4755, b"#!/bin/sh\n".to_vec()).owner(0, 0),
        Entry::file("usr/bin/wall", 0o2755, "x").owner(0, 5),
        Entry::file("data", 0o600, "secret")
            .owner(1000, 1000)
            .mtime(1_700_000_000),
        Entry::symlink("usr/bin/sh", "/bin/busybox"),
        Entry::hardlink("usr/bin/su2", "usr/bin/su"),
        Entry::file("cap", 0o755, "").xattr("security.capability", vec![1, 0, 0, 2, 0xff]),
        Entry::file("../escape", 0o644, "out"),
        Entry::file("/etc/abs", 0o644, "abs"),
        Entry::whiteout("etc/removed"),
        Entry::opaque_whiteout("var/"),
        Entry::file(format!("{}/long", "d".repeat(150)), 0o644, "long"),
        Entry::symlink("longlink", format!("/{}", "t".repeat(120))),
        Entry::char_device("dev/null", 0o666, 1, 3),
        Entry::fifo("fifo", 0o644),
    ]
}

/// An entry read back: path, type, mode, uid, gid, mtime, link target, data, PAX records.
#[derive(Debug)]
struct ReadEntry {
    path: String,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    data: Vec<u8>,
    pax: BTreeMap<String, Vec<u8>>,
}

fn read_tar(tar: &[u8]) -> Vec<ReadEntry> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let mut pax = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for ext in exts {
                let ext = ext.unwrap();
                pax.insert(ext.key().unwrap().to_string(), ext.value_bytes().to_vec());
            }
        }
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(ReadEntry {
            path: String::from_utf8(e.path_bytes().to_vec()).unwrap(),
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            link: e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.to_vec()).unwrap()),
            data,
            pax,
        });
    }
    out
}

/// Every file of a tar, by path.
fn tar_files(tar: &[u8]) -> BTreeMap<String, Vec<u8>> {
    read_tar(tar)
        .into_iter()
        .filter(|e| e.kind == tar::EntryType::Regular)
        .map(|e| (e.path, e.data))
        .collect()
}

#[test]
fn same_entries_same_digests() {
    let a = Image::new(vec![Layer::new(sample_entries())]);
    let b = Image::new(vec![Layer::new(sample_entries())]);
    assert_eq!(a.layers[0].digest(), b.layers[0].digest());
    assert_eq!(a.layers[0].diff_id(), b.layers[0].diff_id());
    assert_eq!(a.config_digest(), b.config_digest());
    assert_eq!(a.digest(), b.digest());
    assert_eq!(
        Index::multi_arch(a.clone()).digest(),
        Index::multi_arch(b).digest()
    );
    // Anything different shows.
    let mut c = a.clone();
    c.config.env.push("X=1".into());
    assert_ne!(a.digest(), c.digest());
    assert_ne!(a.digest(), a.clone().docker().digest());
    assert_eq!(a.config_digest(), a.clone().docker().config_digest());
}

/// A tiny layer's digests, pinned: if this fails, the tar writer or the gzip encoder changed
/// (e.g. a flate2 version or backend switch through feature unification), and so did every
/// sample image digest. The workspace's flate2 uses the zlib-rs backend (the kubelet's SPDY
/// needs its preset dictionaries), for every crate alike.
#[test]
fn golden_digests() {
    let layer = Layer::new([
        Entry::dir("tmp/", 0o1777),
        Entry::file("hello", 0o644, "hello\n"),
    ]);
    assert_eq!(
        layer.diff_id(),
        "sha256:8ec06afad3bcca700401af1a341356942f8d26c91d8699dfe2ce27eafd12a383"
    );
    assert_eq!(
        layer.digest(),
        "sha256:af1790f8ab3ee52053053625c479857844a70b83011a7d8a4d49f5a83c6d5f0d"
    );
}

#[test]
fn entries_are_written_exactly() {
    let layer = Layer::new(sample_entries());
    assert_eq!(sha256_digest(&layer.tar()), layer.diff_id());
    assert_eq!(sha256_digest(layer.blob()), layer.digest());
    let entries = read_tar(&layer.tar());
    let by_path: BTreeMap<&str, &ReadEntry> =
        entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let long = format!("{}/long", "d".repeat(150));
    assert_eq!(
        paths,
        [
            "tmp/",
            "usr/",
            "usr/bin/",
            "usr/bin/su",
            "usr/bin/wall",
            "data",
            "usr/bin/sh",
            "usr/bin/su2",
            "cap",
            "../escape",
            "/etc/abs",
            "etc/.wh.removed",
            "var/.wh..wh..opq",
            &long,
            "longlink",
            "dev/null",
            "fifo",
        ],
        "order and paths as given"
    );
    assert_eq!(by_path["tmp/"].mode, 0o1777);
    assert_eq!(by_path["tmp/"].kind, tar::EntryType::Directory);
    assert_eq!(by_path["usr/bin/su"].mode, 0o4755);
    assert_eq!(by_path["usr/bin/wall"].mode, 0o2755);
    assert_eq!(
        (by_path["usr/bin/wall"].uid, by_path["usr/bin/wall"].gid),
        (0, 5)
    );
    let data = by_path["data"];
    assert_eq!(
        (data.uid, data.gid, data.mtime, data.mode),
        (1000, 1000, 1_700_000_000, 0o600)
    );
    assert_eq!(data.data, b"secret");
    assert_eq!(by_path["tmp/"].mtime, 0);
    assert_eq!(by_path["usr/bin/sh"].link.as_deref(), Some("/bin/busybox"));
    assert_eq!(by_path["usr/bin/sh"].kind, tar::EntryType::Symlink);
    assert_eq!(by_path["usr/bin/su2"].kind, tar::EntryType::Link);
    assert_eq!(by_path["usr/bin/su2"].link.as_deref(), Some("usr/bin/su"));
    assert_eq!(
        by_path["cap"].pax.get("SCHILY.xattr.security.capability"),
        Some(&vec![1, 0, 0, 2, 0xff])
    );
    assert_eq!(
        by_path[long.as_str()].pax.get("path"),
        Some(&long.clone().into_bytes())
    );
    assert_eq!(
        by_path["longlink"].link.as_deref(),
        Some(&*format!("/{}", "t".repeat(120)))
    );
    assert_eq!(by_path["dev/null"].kind, tar::EntryType::Char);
    assert_eq!(by_path["fifo"].kind, tar::EntryType::Fifo);
    assert_eq!(by_path["../escape"].data, b"out");
}

#[test]
fn raw_headers_are_written_verbatim() {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..12].copy_from_slice(b"../../etc/x\0");
    h.set_size(3);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let bytes = *h.as_bytes();
    let layer = Layer::with_compression(
        [Entry::raw(h, "abc").pax("SCHILY.xattr.user.x", "y")],
        Compression::None,
    );
    let tar = layer.tar();
    // A PAX header, then the raw header exactly, then the data.
    assert_eq!(&tar[1024..1536], &bytes[..]);
    assert_eq!(&tar[1536..1539], b"abc");
    let entries = read_tar(&tar);
    assert_eq!(entries[0].path, "../../etc/x");
    assert_eq!(
        entries[0].pax.get("SCHILY.xattr.user.x"),
        Some(&b"y".to_vec())
    );
    assert_eq!(layer.media_type(Format::Oci), media_types::OCI_LAYER);
    assert_eq!(layer.blob(), &tar[..]);
}

#[test]
fn gzip_header_is_fixed() {
    let blob = Layer::new([Entry::file("a", 0o644, "a")]).blob().to_vec();
    assert_eq!(&blob[..3], &[0x1f, 0x8b, 8], "gzip, deflate");
    assert_eq!(blob[3], 0, "no flags: no file name, comment or extra field");
    assert_eq!(&blob[4..8], &[0, 0, 0, 0], "mtime 0");
    assert_eq!(blob[9], 255, "OS unknown");
}

#[test]
fn whiteout_names() {
    assert_eq!(Entry::whiteout("etc/foo").path, "etc/.wh.foo");
    assert_eq!(Entry::whiteout("foo/").path, ".wh.foo");
    assert_eq!(Entry::opaque_whiteout("").path, ".wh..wh..opq");
    assert_eq!(Entry::opaque_whiteout("a/b/").path, "a/b/.wh..wh..opq");
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn manifests_and_configs() {
    let layer = Layer::new(sample_entries());
    let mut image = Image::new(vec![
        layer.clone(),
        Layer::new([Entry::file("b", 0o644, "b")]),
    ]);
    image.config.cmd = Some(vec!["/bootcamp".into()]);
    image.config.env = vec![PATH_ENV.into()];
    image.config.exposed_ports = vec!["8080/tcp".into()];
    image.config.working_dir = Some("/work".into());
    image.config.user = Some("65534:65534".into());

    let config = json(&image.config_json());
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["created"], CREATED);
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"][0], layer.diff_id());
    assert_eq!(config["config"]["Cmd"][0], "/bootcamp");
    assert_eq!(
        config["config"]["ExposedPorts"]["8080/tcp"],
        serde_json::json!({})
    );
    assert_eq!(config["config"]["WorkingDir"], "/work");
    assert_eq!(config["config"]["User"], "65534:65534");
    assert!(config["config"].get("Entrypoint").is_none());

    let m = json(&image.manifest_json());
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], media_types::OCI_MANIFEST);
    assert_eq!(m["config"]["mediaType"], media_types::OCI_CONFIG);
    assert_eq!(m["config"]["digest"], image.config_digest());
    assert_eq!(m["config"]["size"], image.config_json().len());
    assert_eq!(m["layers"][0]["mediaType"], media_types::OCI_LAYER_GZIP);
    assert_eq!(m["layers"][0]["digest"], layer.digest());
    assert_eq!(m["layers"][0]["size"], layer.size());

    let d = json(&image.clone().docker().manifest_json());
    assert_eq!(d["mediaType"], media_types::DOCKER_MANIFEST);
    assert_eq!(d["config"]["mediaType"], media_types::DOCKER_CONFIG);
    assert_eq!(d["layers"][1]["mediaType"], media_types::DOCKER_LAYER_GZIP);

    for (index, media_type) in [
        (Index::multi_arch(image.clone()), media_types::OCI_INDEX),
        (
            Index::multi_arch(image.clone().docker()),
            media_types::DOCKER_MANIFEST_LIST,
        ),
    ] {
        let i = json(&index.json());
        assert_eq!(i["mediaType"], media_type);
        assert_eq!(i["manifests"][0]["platform"]["architecture"], "arm64");
        assert_eq!(i["manifests"][0]["platform"]["variant"], "v8");
        assert_eq!(i["manifests"][1]["platform"]["architecture"], "amd64");
        assert_eq!(i["manifests"][1]["platform"]["os"], "linux");
        assert_eq!(i["manifests"][1]["digest"], index.images[1].digest());
        assert_eq!(
            i["manifests"][1]["mediaType"],
            index.images[1].manifest_media_type()
        );
    }
}

/// Checks an OCI layout's files: every blob named by its digest, every manifest's blobs present.
fn check_layout(files: &BTreeMap<String, Vec<u8>>, want: &[(&str, &Image)]) {
    assert_eq!(json(&files["oci-layout"])["imageLayoutVersion"], "1.0.0");
    for (path, data) in files.iter().filter(|(p, _)| p.starts_with("blobs/sha256/")) {
        assert_eq!(
            format!("sha256:{}", &path[13..]),
            sha256_digest(data),
            "{path}"
        );
    }
    let blob = |digest: &Value| &files[&format!("blobs/sha256/{}", &digest.as_str().unwrap()[7..])];
    let index = json(&files["index.json"]);
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), want.len());
    for (desc, (name, image)) in manifests.iter().zip(want) {
        assert_eq!(desc["annotations"][REF_NAME], *name);
        assert_eq!(desc["digest"], image.digest());
        let manifest = json(blob(&desc["digest"]));
        blob(&manifest["config"]["digest"]);
        for (l, layer) in manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&image.layers)
        {
            assert_eq!(blob(&l["digest"]), layer.blob());
        }
    }
}

#[test]
fn oci_layout_and_archive() {
    let base = Layer::new(sample_entries());
    let one = Image::new(vec![base.clone()]);
    let two = Image::new(vec![base, Layer::new([Entry::file("x", 0o644, "x")])]).docker();
    let want: [(&str, &Image); 2] = [("one:latest", &one), ("example.com/two:v2", &two)];

    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(&dir.path().join("layout"), &want).unwrap();
    let mut files = BTreeMap::new();
    let root = dir.path().join("layout");
    for rel in ["oci-layout", "index.json"] {
        files.insert(rel.to_string(), std::fs::read(root.join(rel)).unwrap());
    }
    for e in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let rel = format!("blobs/sha256/{}", e.file_name().to_string_lossy());
        files.insert(rel, std::fs::read(e.path()).unwrap());
    }
    // oci-layout, index.json; the shared layer once, the other layer, 2 configs, 2 manifests.
    assert_eq!(files.len(), 2 + 6);
    check_layout(&files, &want);

    let archive = dir.path().join("images.tar");
    write_oci_archive(&archive, &want).unwrap();
    let tar = std::fs::read(&archive).unwrap();
    let from_archive = tar_files(&tar);
    assert_eq!(
        from_archive, files,
        "the archive holds the same files as the directory"
    );
    write_oci_archive(&dir.path().join("again.tar"), &want).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("again.tar")).unwrap(),
        tar,
        "reproducible"
    );

    // An index, too.
    let mut layout = OciLayout::new();
    let index = Index::multi_arch(one.clone());
    layout.add_index("multi", &index);
    let desc = &json(&layout.index_json())["manifests"][0];
    assert_eq!(desc["mediaType"], media_types::OCI_INDEX);
    assert_eq!(desc["digest"], index.digest());
    assert!(layout.blobs().contains_key(&index.images[0].digest()));
    assert!(layout.blobs().contains_key(&one.digest()));
}

#[test]
fn docker_save_archive() {
    let base = Layer::new(sample_entries());
    let one = Image::new(vec![base.clone()]);
    let two = Image::new(vec![
        base.clone(),
        Layer::new([Entry::file("x", 0o644, "x")]),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("save.tar");
    write_docker_save(
        &file,
        &[
            ("busybox:latest", &one),
            ("localhost:5000/two:v2", &two),
            ("busybox:again", &one),
        ],
    )
    .unwrap();
    let files = tar_files(&std::fs::read(&file).unwrap());

    let manifest = json(&files["manifest.json"]);
    let manifest = manifest.as_array().unwrap();
    assert_eq!(
        manifest.len(),
        2,
        "the same image twice is one entry with two tags"
    );
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["busybox:latest", "busybox:again"])
    );
    assert_eq!(
        manifest[1]["RepoTags"],
        serde_json::json!(["localhost:5000/two:v2"])
    );
    for (entry, image) in manifest.iter().zip([&one, &two]) {
        let config_name = entry["Config"].as_str().unwrap();
        let config = &files[config_name];
        assert_eq!(
            format!("sha256:{}", config_name.trim_end_matches(".json")),
            sha256_digest(config)
        );
        assert_eq!(config, &image.config_json());
        let diff_ids = &json(config)["rootfs"]["diff_ids"];
        let layers = entry["Layers"].as_array().unwrap();
        assert_eq!(layers.len(), image.layers.len());
        for (i, l) in layers.iter().enumerate() {
            let tar = &files[l.as_str().unwrap()];
            assert_eq!(sha256_digest(tar), diff_ids[i].as_str().unwrap());
        }
    }
    let layer_tars: BTreeSet<_> = files.keys().filter(|k| k.ends_with("/layer.tar")).collect();
    assert_eq!(layer_tars.len(), 2, "the shared layer is written once");
    let repos = json(&files["repositories"]);
    assert_eq!(repos["localhost:5000/two"]["v2"], base_id(&two));
    assert_eq!(repos["busybox"]["again"], base_id(&one));

    fn base_id(image: &Image) -> String {
        image.layers.last().unwrap().diff_id()[7..].to_string()
    }
}

#[test]
fn many_layer_images() {
    let a = many_layer_image(3, 100_001, 7);
    assert_eq!(a.layers.len(), 3);
    assert_eq!(a.digest(), many_layer_image(3, 100_001, 7).digest());
    assert_ne!(a.digest(), many_layer_image(3, 100_001, 8).digest());
    let sizes: usize = a
        .layers
        .iter()
        .map(|l| tar_files(&l.tar()).values().map(Vec::len).sum::<usize>())
        .sum();
    assert_eq!(sizes, 100_001);
    // Incompressible: gzip gains nothing.
    assert!(a.layers[0].size() > 33_000);
    assert!(many_layer_image(0, 10, 1).layers.is_empty());
}

/// The sample images from the machine's static busybox (standing in for bootcamp too, since the
/// static bootcamp binary is built separately). Fails without busybox-static (CI installs it).
#[test]
fn sample_images_from_busybox() {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: this test needs busybox-static (apt-get install busybox-static)"
    );
    let images = sample_images(busybox, busybox).unwrap();
    let names: Vec<String> = images.iter().map(|(r, t, _)| format!("{r}:{t}")).collect();
    assert_eq!(
        names,
        [
            "library/busybox:latest",
            "google-samples/kubernetes-bootcamp:v1",
            "google-samples/kubernetes-bootcamp:v2"
        ]
    );
    let (busybox_img, v1, v2) = (&images[0].2, &images[1].2, &images[2].2);
    assert_eq!(busybox_img.layers.len(), 1);
    assert_eq!(v1.layers.len(), 2);
    assert_eq!(
        v1.layers[0].digest(),
        busybox_img.layers[0].digest(),
        "shared base layer"
    );
    assert_eq!(v1.layers[1].digest(), v2.layers[1].digest());
    assert_ne!(v1.digest(), v2.digest());
    assert!(v2.config.env.contains(&"BOOTCAMP_VERSION=2".to_string()));

    let entries = read_tar(&busybox_img.layers[0].tar());
    let by_path: BTreeMap<&str, &ReadEntry> =
        entries.iter().map(|e| (e.path.as_str(), e)).collect();
    assert_eq!(by_path["tmp/"].mode, 0o1777);
    assert_eq!(by_path["root/"].mode, 0o700);
    assert_eq!(by_path["bin/busybox"].mode, 0o755);
    for applet in [
        "bin/sh",
        "usr/bin/wget",
        "usr/bin/nc",
        "bin/sleep",
        "usr/bin/env",
        "usr/bin/id",
    ] {
        assert_eq!(
            by_path[applet].link.as_deref(),
            Some("/bin/busybox"),
            "{applet}"
        );
    }
    assert!(String::from_utf8_lossy(&by_path["etc/passwd"].data).contains("nobody:x:65534"));
    let app = read_tar(&v1.layers[1].tar());
    assert_eq!(app[0].path, "bootcamp");
    assert_eq!(app.last().unwrap().link.as_deref(), Some("/bootcamp"));

    // A dynamically linked binary is refused.
    let err = busybox_layer(Path::new("/bin/sh")).unwrap_err();
    assert!(format!("{err:#}").contains("dynamically linked"), "{err:#}");
}
