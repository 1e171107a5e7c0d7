//! `image load`: importing images from an OCI image layout archive or a `docker save`
//! tarball into the store (what `kind load` and `minikube image load` do).
//!
//! The archive is extracted into the store's tmp/ (entries are plain files; the tar crate's
//! `unpack_in` keeps them inside that directory), then every blob is checked against its
//! digest, layers are unpacked exactly as for a pull, and the images are recorded under the
//! names the archive gives them.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use oci_client::manifest::OciDescriptor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::pull::{self, PullError, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use super::reference::ImageName;
use super::store::{self, chain_ids, now_secs, ImageRecord, LayerRecord, Store};

const NAME_ANNOTATIONS: &[&str] = &[
    "io.containerd.image.name",
    "org.opencontainers.image.ref.name",
];

/// Imports every image in `archive`. Images with no usable name are recorded under `name`
/// (or by ID only when none is given).
pub fn load(
    store: &Store,
    archive: &Path,
    name: Option<&str>,
) -> Result<Vec<ImageRecord>, PullError> {
    let dir = store.temp_path("load");
    let result = (|| {
        fs::create_dir(&dir)
            .map_err(|e| PullError::Store(format!("creating {}: {e}", dir.display())))?;
        let f = File::open(archive)
            .map_err(|e| PullError::Invalid(format!("opening {}: {e}", archive.display())))?;
        let mut tar = tar::Archive::new(io::BufReader::new(maybe_gunzip(f)?));
        tar.set_preserve_permissions(false);
        tar.unpack(&dir).map_err(|e| {
            PullError::Invalid(format!("{} is not a tar archive: {e}", archive.display()))
        })?;
        if dir.join("index.json").is_file() {
            load_oci_layout(store, &dir, name)
        } else if dir.join("manifest.json").is_file() {
            load_docker_save(store, &dir, name)
        } else {
            Err(PullError::Invalid(format!(
                "{}: neither an OCI image layout (index.json) nor a docker save archive (manifest.json)",
                archive.display()
            )))
        }
    })();
    let _ = store::remove_any(&dir);
    result
}

fn maybe_gunzip(mut f: File) -> Result<Box<dyn Read>, PullError> {
    let mut magic = [0u8; 2];
    let n = f
        .read(&mut magic)
        .map_err(|e| PullError::Invalid(e.to_string()))?;
    use std::io::Seek;
    f.seek(io::SeekFrom::Start(0))
        .map_err(|e| PullError::Invalid(e.to_string()))?;
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    })
}

fn read_json(path: &Path) -> Result<(Vec<u8>, Value), PullError> {
    let bytes = fs::read(path)
        .map_err(|e| PullError::Invalid(format!("reading {}: {e}", path.display())))?;
    let v = serde_json::from_slice(&bytes)
        .map_err(|e| PullError::Invalid(format!("{} is not valid JSON: {e}", path.display())))?;
    Ok((bytes, v))
}

/// The sha256 of a file, streamed.
fn file_digest(path: &Path) -> Result<(String, u64), PullError> {
    let mut f = File::open(path)
        .map_err(|e| PullError::Invalid(format!("opening {}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let n = io::copy(&mut f, &mut h)
        .map_err(|e| PullError::Invalid(format!("reading {}: {e}", path.display())))?;
    Ok((format!("sha256:{}", hex::encode(h.finalize())), n))
}

/// A blob file inside an OCI layout, by digest (never a path outside it).
fn layout_blob(dir: &Path, digest: &str) -> Result<PathBuf, PullError> {
    let hex = store::digest_hex(digest).map_err(|e| PullError::Invalid(e.to_string()))?;
    Ok(dir.join("blobs/sha256").join(hex))
}

fn load_oci_layout(
    store: &Store,
    dir: &Path,
    name: Option<&str>,
) -> Result<Vec<ImageRecord>, PullError> {
    let (_, index) = read_json(&dir.join("index.json"))?;
    let mut out = Vec::new();
    for entry in index["manifests"].as_array().cloned().unwrap_or_default() {
        let ref_name = NAME_ANNOTATIONS
            .iter()
            .find_map(|k| entry["annotations"][*k].as_str())
            .map(str::to_string);
        let names = image_names(ref_name.as_deref(), name)?;
        let mut digest = entry["digest"].as_str().unwrap_or("").to_string();
        let mut path = layout_blob(dir, &digest)?;
        let (mut bytes, mut manifest) = read_json(&path)?;
        verify(&bytes, &digest)?;
        let media = |m: &Value| {
            m["mediaType"]
                .as_str()
                .or(entry["mediaType"].as_str())
                .unwrap_or(OCI_MANIFEST)
                .to_string()
        };
        let mut media_type = media(&manifest);
        if media_type == OCI_INDEX
            || media_type == DOCKER_LIST
            || manifest.get("manifests").is_some()
        {
            let (os, arch) = pull::host_platform();
            digest = manifest["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["platform"]["os"] == os && m["platform"]["architecture"] == arch)
                .and_then(|m| m["digest"].as_str())
                .ok_or_else(|| {
                    PullError::NotFound(format!(
                        "no matching manifest for {os}/{arch} in the archive's index"
                    ))
                })?
                .to_string();
            path = layout_blob(dir, &digest)?;
            (bytes, manifest) = read_json(&path)?;
            verify(&bytes, &digest)?;
            media_type = manifest["mediaType"]
                .as_str()
                .unwrap_or(OCI_MANIFEST)
                .to_string();
        }
        let config: OciDescriptor = serde_json::from_value(manifest["config"].clone())
            .map_err(|e| PullError::Invalid(format!("manifest {digest}: {e}")))?;
        let layers: Vec<OciDescriptor> = serde_json::from_value(manifest["layers"].clone())
            .map_err(|e| PullError::Invalid(format!("manifest {digest}: {e}")))?;
        let blobs = std::iter::once(&config)
            .chain(&layers)
            .map(|d| Ok((d.clone(), layout_blob(dir, &d.digest)?)))
            .collect::<Result<Vec<_>, PullError>>()?;
        let record = import(store, &bytes, &digest, &media_type, &blobs, names, false)?;
        out.push(record);
    }
    if out.is_empty() {
        return Err(PullError::Invalid(
            "the archive's index.json lists no images".into(),
        ));
    }
    Ok(out)
}

fn load_docker_save(
    store: &Store,
    dir: &Path,
    name: Option<&str>,
) -> Result<Vec<ImageRecord>, PullError> {
    let (_, manifest) = read_json(&dir.join("manifest.json"))?;
    let entries = manifest
        .as_array()
        .ok_or_else(|| PullError::Invalid("manifest.json: want a list of images".into()))?;
    let mut out = Vec::new();
    for e in entries {
        let inside = |p: &str| -> Result<PathBuf, PullError> {
            if p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c == "..") {
                return Err(PullError::Invalid(format!(
                    "manifest.json names a path outside the archive: {p:?}"
                )));
            }
            Ok(dir.join(p))
        };
        let config_path = inside(e["Config"].as_str().unwrap_or(""))?;
        let (config_bytes, _) = read_json(&config_path)?;
        let config_digest = store::sha256_digest(&config_bytes);
        let mut blobs = vec![(
            OciDescriptor {
                media_type: "application/vnd.docker.container.image.v1+json".into(),
                digest: config_digest.clone(),
                size: config_bytes.len() as i64,
                ..Default::default()
            },
            config_path,
        )];
        for l in e["Layers"].as_array().into_iter().flatten() {
            let path = inside(l.as_str().unwrap_or(""))?;
            let (digest, size) = file_digest(&path)?;
            let gz = is_gzip(&path);
            blobs.push((
                OciDescriptor {
                    media_type: if gz {
                        "application/vnd.docker.image.rootfs.diff.tar.gzip"
                    } else {
                        "application/vnd.oci.image.layer.v1.tar"
                    }
                    .into(),
                    digest,
                    size: size as i64,
                    ..Default::default()
                },
                path,
            ));
        }
        // docker save carries no manifest: make the OCI manifest a registry would hold.
        let descriptor = |d: &OciDescriptor| json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size});
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_bytes.len()},
            "layers": blobs[1..].iter().map(|(d, _)| descriptor(d)).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        let digest = store::sha256_digest(&bytes);
        let mut names = Vec::new();
        for t in e["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
        {
            names.extend(image_names(Some(t), None)?);
        }
        if names.is_empty() {
            names = image_names(None, name)?;
        }
        out.push(import(
            store,
            &bytes,
            &digest,
            OCI_MANIFEST,
            &blobs,
            names,
            true,
        )?);
    }
    Ok(out)
}

fn is_gzip(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == [0x1f, 0x8b]
}

/// The canonical names for an archive's image: its own full reference if it has one, else
/// the user's `--name`.
fn image_names(own: Option<&str>, given: Option<&str>) -> Result<Vec<String>, PullError> {
    let full = own.filter(|n| n.contains('/') || n.contains(':'));
    match given.or(full) {
        Some(n) => {
            let parsed = ImageName::parse(n).map_err(|e| PullError::Invalid(e.to_string()))?;
            Ok(vec![parsed.canonical()])
        }
        None => Ok(vec![]),
    }
}

fn verify(bytes: &[u8], digest: &str) -> Result<(), PullError> {
    let got = store::sha256_digest(bytes);
    if got != digest {
        return Err(PullError::Invalid(format!(
            "digest mismatch: expected {digest}, got {got}"
        )));
    }
    Ok(())
}

/// Checks and stores one image's blobs (config first, then layers), unpacks its layers and
/// records it. `synthetic` marks a manifest made here (no registry digest to remember).
fn import(
    store: &Store,
    manifest: &[u8],
    manifest_digest: &str,
    media_type: &str,
    blobs: &[(OciDescriptor, PathBuf)],
    names: Vec<String>,
    synthetic: bool,
) -> Result<ImageRecord, PullError> {
    let (config, layers) = blobs
        .split_first()
        .ok_or_else(|| PullError::Invalid("empty image".into()))?;
    for (d, path) in blobs {
        let (got, size) = file_digest(path)?;
        if got != d.digest {
            return Err(PullError::Invalid(format!(
                "blob {}: digest mismatch: content is {got}",
                d.digest
            )));
        }
        if d.size >= 0 && size != d.size as u64 {
            return Err(PullError::Invalid(format!(
                "blob {}: size mismatch",
                d.digest
            )));
        }
    }
    let (config_bytes, config_json) = read_json(&config.1)?;
    let diff_ids: Vec<String> = config_json["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if diff_ids.len() != layers.len() {
        return Err(PullError::Invalid(format!(
            "image config lists {} layers, the archive {}",
            diff_ids.len(),
            layers.len()
        )));
    }
    let chains = chain_ids(&diff_ids);
    let mut records = Vec::new();
    for (i, (d, path)) in layers.iter().enumerate() {
        if !store.has_blob(&d.digest) {
            let copy = store.temp_path("blob");
            fs::copy(path, &copy)
                .map_err(|e| PullError::Store(format!("copying {}: {e}", path.display())))?;
            store.adopt_blob(&d.digest, &copy)?;
        }
        pull::unpack_layer(store, d, &diff_ids[i], &chains[..=i])?;
        records.push(LayerRecord {
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            size: d.size.max(0) as u64,
            diff_id: diff_ids[i].clone(),
            chain_id: chains[i].clone(),
        });
    }
    store.put_blob(&config.0.digest, &config_bytes)?;
    store.put_blob(manifest_digest, manifest)?;
    let repo_digests = if synthetic {
        vec![]
    } else {
        names
            .iter()
            .filter_map(|n| ImageName::parse(n).ok())
            .map(|n| format!("{}@{manifest_digest}", n.repository_name()))
            .collect()
    };
    let now = now_secs();
    let size = config.0.size.max(0) as u64 + records.iter().map(|l| l.size).sum::<u64>();
    Ok(store.record(ImageRecord {
        id: config.0.digest.clone(),
        names,
        repo_digests,
        manifest_digest: manifest_digest.to_string(),
        manifest_media_type: if media_type == DOCKER_MANIFEST {
            DOCKER_MANIFEST.into()
        } else {
            OCI_MANIFEST.into()
        },
        layers: records,
        size,
        created_at: now,
        last_used: now,
    })?)
}
