//! Images on disk: OCI image layouts (a directory or a tar of one, as `skopeo copy oci:` and
//! `oci-archive:` use) and `docker save` archives.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use bytes::Bytes;
use serde::Serialize;

use crate::layer::{finish, write_entry, write_file};
use crate::{media_types, Descriptor, Entry, Image, Index};

/// The annotation naming a manifest in a layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout being assembled: blobs by digest, and the named manifests of its
/// `index.json`. Blobs shared between images are stored once.
#[derive(Debug, Default, Clone)]
pub struct OciLayout {
    blobs: BTreeMap<String, Bytes>,
    manifests: Vec<Descriptor>,
}

impl OciLayout {
    pub fn new() -> OciLayout {
        OciLayout::default()
    }

    /// Adds an image under `name` (the `org.opencontainers.image.ref.name` annotation: a tag
    /// such as `v1`, or a whole reference such as `docker.io/library/busybox:latest`; none if
    /// empty).
    pub fn add_image(&mut self, name: &str, image: &Image) -> &mut OciLayout {
        let desc = self.add_image_blobs(image);
        self.add_ref(name, desc)
    }

    /// Adds an index and all its images under `name`.
    pub fn add_index(&mut self, name: &str, index: &Index) -> &mut OciLayout {
        for image in &index.images {
            self.add_image_blobs(image);
        }
        let json = index.json();
        let desc = Descriptor::of(index.media_type(), &json);
        self.blobs.insert(desc.digest.clone(), json.into());
        self.add_ref(name, desc)
    }

    fn add_image_blobs(&mut self, image: &Image) -> Descriptor {
        self.blobs.extend(image.blobs());
        let json = image.manifest_json();
        let desc = Descriptor::of(image.manifest_media_type(), &json);
        self.blobs.insert(desc.digest.clone(), json.into());
        desc
    }

    fn add_ref(&mut self, name: &str, mut desc: Descriptor) -> &mut OciLayout {
        if !name.is_empty() {
            desc.annotations.insert(REF_NAME.into(), name.into());
        }
        self.manifests.push(desc);
        self
    }

    /// The layout's `index.json`.
    pub fn index_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct IndexJson<'a> {
            schema_version: u32,
            media_type: &'a str,
            manifests: &'a [Descriptor],
        }
        serde_json::to_vec(&IndexJson {
            schema_version: 2,
            media_type: media_types::OCI_INDEX,
            manifests: &self.manifests,
        })
        .expect("index.json serializes")
    }

    /// The blobs, by digest.
    pub fn blobs(&self) -> &BTreeMap<String, Bytes> {
        &self.blobs
    }

    /// Writes the layout into `dir` (created if missing; an existing `index.json` is replaced).
    pub fn write_dir(&self, dir: &Path) -> Result<()> {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
        for (digest, data) in &self.blobs {
            let path = blobs.join(hex_of(digest));
            fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        }
        let write = |name: &str, data: &[u8]| {
            let path = dir.join(name);
            fs::write(&path, data).with_context(|| format!("writing {}", path.display()))
        };
        write("oci-layout", OCI_LAYOUT)?;
        write("index.json", &self.index_json())
    }

    /// Writes the layout as an uncompressed tar (an `oci-archive`), entries in a fixed order
    /// with mtime 0.
    pub fn write_archive<W: Write>(&self, w: &mut W) -> Result<()> {
        write_file(w, "oci-layout", OCI_LAYOUT)?;
        write_file(w, "index.json", &self.index_json())?;
        write_entry(w, &Entry::dir("blobs/", 0o755))?;
        write_entry(w, &Entry::dir("blobs/sha256/", 0o755))?;
        for (digest, data) in &self.blobs {
            write_file(w, &format!("blobs/sha256/{}", hex_of(digest)), data)?;
        }
        finish(w)?;
        Ok(())
    }
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn create(file: &Path) -> Result<BufWriter<File>> {
    let f = File::create(file).with_context(|| format!("creating {}", file.display()))?;
    Ok(BufWriter::new(f))
}

/// Writes an OCI image layout of `images` (name, image) into `dir`.
pub fn write_oci_layout(dir: &Path, images: &[(&str, &Image)]) -> Result<()> {
    let mut layout = OciLayout::new();
    for (name, image) in images {
        layout.add_image(name, image);
    }
    layout.write_dir(dir)
}

/// Writes an OCI archive (a tar of an OCI image layout) of `images` (name, image) to `file`.
pub fn write_oci_archive(file: &Path, images: &[(&str, &Image)]) -> Result<()> {
    let mut layout = OciLayout::new();
    for (name, image) in images {
        layout.add_image(name, image);
    }
    let mut w = create(file)?;
    layout.write_archive(&mut w)?;
    w.flush()
        .with_context(|| format!("writing {}", file.display()))
}

/// Writes a `docker save` archive of `images` (`repo:tag`, image) to `file`.
pub fn write_docker_save(file: &Path, images: &[(&str, &Image)]) -> Result<()> {
    let mut w = create(file)?;
    docker_save(&mut w, images)?;
    w.flush()
        .with_context(|| format!("writing {}", file.display()))
}

/// Writes a `docker save` archive in the classic format Docker (before 25) wrote and every
/// loader reads: `manifest.json` (`Config`, `RepoTags`, `Layers`), `repositories`, the config as
/// `<config hex>.json`, and each layer uncompressed as `<diff_id hex>/layer.tar` (with a
/// `VERSION` file). Layers shared between images are written once; the same image given twice
/// gets both tags.
pub fn docker_save<W: Write>(w: &mut W, images: &[(&str, &Image)]) -> Result<()> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct SaveManifest {
        config: String,
        repo_tags: Vec<String>,
        layers: Vec<String>,
    }
    let mut manifest: Vec<SaveManifest> = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut written = std::collections::BTreeSet::new();
    for (name, image) in images {
        let mut layers = Vec::new();
        for layer in &image.layers {
            let id = hex_of(layer.diff_id()).to_string();
            if written.insert(id.clone()) {
                write_entry(w, &Entry::dir(format!("{id}/"), 0o755))?;
                write_file(w, &format!("{id}/VERSION"), b"1.0")?;
                write_file(w, &format!("{id}/layer.tar"), &layer.tar())?;
            }
            layers.push(format!("{id}/layer.tar"));
        }
        let config = format!("{}.json", hex_of(&image.config_digest()));
        if written.insert(config.clone()) {
            write_file(w, &config, &image.config_json())?;
        }
        if let (Some((repo, tag)), Some(top)) = (split_tag(name), layers.last()) {
            let top = top.trim_end_matches("/layer.tar").to_string();
            repositories
                .entry(repo.into())
                .or_default()
                .insert(tag.into(), top);
        }
        match manifest.iter_mut().find(|m| m.config == config) {
            Some(m) if !name.is_empty() => m.repo_tags.push(name.to_string()),
            Some(_) => {}
            None => manifest.push(SaveManifest {
                config,
                repo_tags: (!name.is_empty())
                    .then(|| name.to_string())
                    .into_iter()
                    .collect(),
                layers,
            }),
        }
    }
    write_file(w, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    write_file(w, "repositories", &serde_json::to_vec(&repositories)?)?;
    finish(w)?;
    Ok(())
}

/// `repo:tag` → (`repo`, `tag`); `None` without a tag (a `:` before the last `/` is a port).
fn split_tag(name: &str) -> Option<(&str, &str)> {
    let (repo, tag) = name.rsplit_once(':')?;
    (!tag.contains('/') && !repo.is_empty()).then_some((repo, tag))
}
