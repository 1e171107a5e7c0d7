//! Writes OCI images reproducibly, for tinykube's sample images and for the kubelet's tests.
//!
//! - [`Layer`]s are tars written byte for byte from [`Entry`]s (hostile ones included: `..`,
//!   absolute paths, whiteouts, setuid modes, owners, xattrs, raw headers), gzipped with a fixed
//!   header. Same entries, same digest.
//! - An [`Image`] is layers plus an [`ImageConfig`]; it gives its config and manifest JSON in OCI
//!   or Docker schema 2 form ([`Format`]). An [`Index`] lists images by platform.
//! - [`Registry`] (or [`push`], [`push_index`]) uploads them unchanged over plain HTTP;
//!   [`TestRegistry`] runs a throwaway registry for tests.
//! - [`write_oci_layout`], [`write_oci_archive`] and [`write_docker_save`] put them on disk.
//! - [`sample_images`] builds `library/busybox:latest` and
//!   `google-samples/kubernetes-bootcamp:v1`/`:v2`; [`many_layer_image`] builds benchmark images.
//!
//! ```
//! use tinykube_images::{Entry, Image, Layer};
//! let layer = Layer::new([
//!     Entry::dir("tmp/", 0o1777),
//!     Entry::file("hello.sh", 0o755, "#!/bin/sh\necho hello\n"),
//!     Entry::symlink("bin/hello", "/hello.sh"),
//! ]);
//! let image = Image::new(vec![layer.clone()]);
//! assert_eq!(image.digest(), Image::new(vec![layer]).digest());
//! ```

mod image;
mod layer;
mod layout;
mod registry;
mod samples;
mod testreg;

pub use image::{Descriptor, Format, Image, ImageConfig, Index, Platform, CREATED};
pub use layer::{Compression, Entry, EntryKind, Layer};
pub use layout::{
    docker_save, write_docker_save, write_oci_archive, write_oci_layout, OciLayout, REF_NAME,
};
pub use registry::{push, push_index, Registry};
pub use samples::{
    bootcamp_image, bootcamp_layer, busybox_image, busybox_layer, etcd_image, many_layer_image,
    sample_images, BOOTCAMP_REPO, BUSYBOX_REPO, PATH_ENV,
};
/// The tar crate, for [`Entry::raw`] headers.
pub use tar;
pub use testreg::{RegistryOptions, TestRegistry, REGISTRY_BINARY};

use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The media types this crate writes.
pub mod media_types {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
}

#[cfg(test)]
mod tests;
