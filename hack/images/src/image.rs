//! Images and indexes: their config and manifest JSON, byte-stable.
//!
//! JSON is written compactly with keys in a fixed order and no timestamps from the build (the
//! config's `created` is the epoch), so the same layers and settings always give the same
//! digests.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{media_types, sha256_digest, Entry, Layer};

/// The `created` time written into image configs.
pub const CREATED: &str = "1970-01-01T00:00:00Z";

/// Which family of media types an image or index uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// OCI image spec: `application/vnd.oci.image.manifest.v1+json`, `…index.v1+json`,
    /// `…config.v1+json`, `…layer.v1.tar+gzip`.
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2: `application/vnd.docker.distribution.manifest.v2+json`,
    /// `…manifest.list.v2+json`, `application/vnd.docker.container.image.v1+json`,
    /// `…rootfs.diff.tar.gzip`.
    Docker,
}

impl Format {
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            Format::Oci => media_types::OCI_MANIFEST,
            Format::Docker => media_types::DOCKER_MANIFEST,
        }
    }

    pub fn index_media_type(self) -> &'static str {
        match self {
            Format::Oci => media_types::OCI_INDEX,
            Format::Docker => media_types::DOCKER_MANIFEST_LIST,
        }
    }

    pub fn config_media_type(self) -> &'static str {
        match self {
            Format::Oci => media_types::OCI_CONFIG,
            Format::Docker => media_types::DOCKER_CONFIG,
        }
    }
}

/// The runtime settings of an image config (its `config` object). Empty fields are omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub user: Option<String>,
    /// Ports such as `8080/tcp`.
    pub exposed_ports: Vec<String>,
    /// `NAME=value` strings.
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub volumes: Vec<String>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

/// A platform, as in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
}

/// A content descriptor, as in manifests, indexes and `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<Platform>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// Describes `data` with this media type.
    pub fn of(media_type: &str, data: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(data),
            size: data.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// An image: layers (lowest first), runtime config and platform.
///
/// ```
/// use tinykube_images::{Entry, Image, Layer};
/// let mut image = Image::new(vec![Layer::new([Entry::file("hello", 0o644, "hi\n")])]);
/// image.config.cmd = Some(vec!["/hello".into()]);
/// assert!(image.digest().starts_with("sha256:"));
/// ```
#[derive(Debug, Clone)]
pub struct Image {
    pub layers: Vec<Layer>,
    pub config: ImageConfig,
    /// `amd64` by default.
    pub architecture: String,
    /// `linux` by default.
    pub os: String,
    pub variant: Option<String>,
    pub format: Format,
}

impl Image {
    /// A linux/amd64 OCI image of these layers with an empty config.
    pub fn new(layers: Vec<Layer>) -> Image {
        Image {
            layers,
            config: ImageConfig::default(),
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            format: Format::Oci,
        }
    }

    /// The same image with Docker schema 2 media types (same layers and config JSON, so the
    /// same config digest, but another manifest digest).
    pub fn docker(mut self) -> Image {
        self.format = Format::Docker;
        self
    }

    /// A linux/arm64/v8 image that must never be run here: one layer with `/ARM64-DUMMY`, and
    /// no shell. Indexes built by [`Index::multi_arch`] list it first, so a pull that ignores the
    /// platform picks it and fails visibly.
    pub fn arm64_dummy(format: Format) -> Image {
        let layer = Layer::new([Entry::file(
            "ARM64-DUMMY",
            0o644,
            "a linux/arm64 placeholder: this platform should not have been chosen\n",
        )]);
        let mut image = Image::new(vec![layer]);
        image.architecture = "arm64".into();
        image.variant = Some("v8".into());
        image.format = format;
        image.config.cmd = Some(vec!["/ARM64-DUMMY".into()]);
        image
    }

    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
        }
    }

    /// The image config JSON (the config blob).
    pub fn config_json(&self) -> Vec<u8> {
        let c = &self.config;
        let set = |items: &[String]| -> Option<BTreeMap<String, Empty>> {
            (!items.is_empty()).then(|| items.iter().map(|p| (p.clone(), Empty {})).collect())
        };
        let file = ConfigFile {
            created: CREATED,
            architecture: &self.architecture,
            variant: self.variant.as_deref(),
            os: &self.os,
            config: RuntimeConfig {
                user: c.user.as_deref(),
                exposed_ports: set(&c.exposed_ports),
                env: (!c.env.is_empty()).then_some(&c.env),
                entrypoint: c.entrypoint.as_ref(),
                cmd: c.cmd.as_ref(),
                volumes: set(&c.volumes),
                working_dir: c.working_dir.as_deref(),
                labels: (!c.labels.is_empty()).then_some(&c.labels),
                stop_signal: c.stop_signal.as_deref(),
            },
            rootfs: RootFs {
                kind: "layers",
                diff_ids: self.layers.iter().map(Layer::diff_id).collect(),
            },
        };
        serde_json::to_vec(&file).expect("an image config serializes")
    }

    pub fn config_descriptor(&self) -> Descriptor {
        Descriptor::of(self.format.config_media_type(), &self.config_json())
    }

    /// `sha256:<hex>` of the config JSON: the image ID Docker shows.
    pub fn config_digest(&self) -> String {
        sha256_digest(&self.config_json())
    }

    /// The manifest JSON, exactly as pushed and as stored in layouts.
    pub fn manifest_json(&self) -> Vec<u8> {
        let manifest = Manifest {
            schema_version: 2,
            media_type: self.format.manifest_media_type(),
            config: self.config_descriptor(),
            layers: self
                .layers
                .iter()
                .map(|l| self.layer_descriptor(l))
                .collect(),
        };
        serde_json::to_vec(&manifest).expect("a manifest serializes")
    }

    pub fn manifest_media_type(&self) -> &'static str {
        self.format.manifest_media_type()
    }

    /// The manifest's descriptor (no platform).
    pub fn manifest_descriptor(&self) -> Descriptor {
        Descriptor::of(self.manifest_media_type(), &self.manifest_json())
    }

    /// `sha256:<hex>` of the manifest: what a registry reports as the image's digest.
    pub fn digest(&self) -> String {
        sha256_digest(&self.manifest_json())
    }

    fn layer_descriptor(&self, l: &Layer) -> Descriptor {
        Descriptor {
            media_type: l.media_type(self.format).to_string(),
            digest: l.digest().to_string(),
            size: l.size(),
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    /// Every blob of the image, as (digest, bytes): layers, then the config.
    pub fn blobs(&self) -> Vec<(String, Bytes)> {
        let mut blobs: Vec<(String, Bytes)> = self
            .layers
            .iter()
            .map(|l| (l.digest().to_string(), l.blob_bytes()))
            .collect();
        let config = self.config_json();
        blobs.push((sha256_digest(&config), config.into()));
        blobs
    }
}

/// A multi-platform index (OCI image index or Docker manifest list) of images.
#[derive(Debug, Clone)]
pub struct Index {
    /// The images, in the order listed; each entry's platform comes from its image.
    pub images: Vec<Image>,
    pub format: Format,
}

impl Index {
    /// An OCI index of these images.
    pub fn new(images: Vec<Image>) -> Index {
        Index {
            images,
            format: Format::Oci,
        }
    }

    /// An index of `image` beside a linux/arm64 [dummy](Image::arm64_dummy), listed first; the
    /// index and the dummy take `image`'s format.
    pub fn multi_arch(image: Image) -> Index {
        let format = image.format;
        Index {
            images: vec![Image::arm64_dummy(format), image],
            format,
        }
    }

    /// The index JSON, exactly as pushed.
    pub fn json(&self) -> Vec<u8> {
        let index = IndexJson {
            schema_version: 2,
            media_type: self.format.index_media_type(),
            manifests: self
                .images
                .iter()
                .map(|i| Descriptor {
                    platform: Some(i.platform()),
                    ..i.manifest_descriptor()
                })
                .collect(),
        };
        serde_json::to_vec(&index).expect("an index serializes")
    }

    pub fn media_type(&self) -> &'static str {
        self.format.index_media_type()
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor::of(self.media_type(), &self.json())
    }

    /// `sha256:<hex>` of the index JSON.
    pub fn digest(&self) -> String {
        sha256_digest(&self.json())
    }
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct ConfigFile<'a> {
    created: &'a str,
    architecture: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    os: &'a str,
    config: RuntimeConfig<'a>,
    rootfs: RootFs<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RuntimeConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entrypoint: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cmd: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    volumes: Option<BTreeMap<String, Empty>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_signal: Option<&'a str>,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    diff_ids: Vec<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexJson<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<Descriptor>,
}
