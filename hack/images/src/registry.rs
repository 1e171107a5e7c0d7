//! Pushing images and indexes to a registry over plain HTTP, byte for byte.
//!
//! Manifests go up with `push_manifest_raw`, exactly as [`Image::manifest_json`] wrote them, so
//! the registry's digest is the one computed here (`oci_client::Client::push` re-serializes and
//! would change it).

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::{Client, Reference};

use crate::{sha256_digest, Image, Index};

/// A registry reached over plain HTTP, such as `127.0.0.1:5000`, without credentials.
pub struct Registry {
    client: Client,
    addr: String,
}

impl Registry {
    /// A client for the registry at `addr` (`host:port`). Installs rustls' ring provider as the
    /// process default if none is installed yet (oci-client needs one even for plain HTTP).
    pub fn new(addr: &str) -> Registry {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            // One POST and one PUT per blob: the registry is on loopback.
            use_monolithic_push: true,
            ..Default::default()
        });
        Registry {
            client,
            addr: addr.to_string(),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn by_digest(&self, repo: &str, digest: &str) -> Reference {
        Reference::with_digest(self.addr.clone(), repo.into(), digest.into())
    }

    /// Uploads a blob unless the repository already has it; returns its digest.
    pub async fn push_blob(&self, repo: &str, data: impl Into<Bytes>) -> Result<String> {
        let data = data.into();
        let digest = sha256_digest(&data);
        let r = self.by_digest(repo, &digest);
        let exists = self
            .client
            .blob_exists(&r, &digest)
            .await
            .with_context(|| format!("checking for blob {digest} in {}/{repo}", self.addr))?;
        if !exists {
            self.client
                .push_blob(&r, data, &digest)
                .await
                .with_context(|| format!("pushing blob {digest} to {}/{repo}", self.addr))?;
        }
        Ok(digest)
    }

    /// Puts a manifest (or index) under `reference`, a tag or a digest, exactly as given;
    /// returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        body: Vec<u8>,
        media_type: &str,
    ) -> Result<String> {
        let digest = sha256_digest(&body);
        let r = if reference.starts_with("sha256:") {
            self.by_digest(repo, reference)
        } else {
            Reference::with_tag(self.addr.clone(), repo.into(), reference.into())
        };
        let content_type = media_type
            .parse()
            .with_context(|| format!("media type {media_type:?}"))?;
        self.client
            .push_manifest_raw(&r, body, content_type)
            .await
            .with_context(|| format!("pushing manifest to {}/{repo}:{reference}", self.addr))?;
        Ok(digest)
    }

    /// Pushes an image's blobs, then its manifest under `tag` (by digest only if `tag` is
    /// empty); returns the manifest digest.
    pub async fn push_image(&self, repo: &str, tag: &str, image: &Image) -> Result<String> {
        for (digest, data) in image.blobs() {
            let pushed = self.push_blob(repo, data).await?;
            ensure!(
                pushed == digest,
                "blob digest {pushed} differs from {digest}"
            );
        }
        let digest = image.digest();
        let reference = if tag.is_empty() { &digest } else { tag };
        self.push_manifest(
            repo,
            reference,
            image.manifest_json(),
            image.manifest_media_type(),
        )
        .await
    }

    /// Pushes every image of an index by digest, then the index under `tag`; returns the
    /// index digest.
    pub async fn push_index(&self, repo: &str, tag: &str, index: &Index) -> Result<String> {
        for image in &index.images {
            self.push_image(repo, "", image).await?;
        }
        let digest = index.digest();
        let reference = if tag.is_empty() { &digest } else { tag };
        self.push_manifest(repo, reference, index.json(), index.media_type())
            .await
    }
}

/// Pushes `image` to `registry` (e.g. `127.0.0.1:5000`) as `repo:tag` over plain HTTP; returns
/// the manifest digest.
pub async fn push(registry: &str, repo: &str, tag: &str, image: &Image) -> Result<String> {
    Registry::new(registry).push_image(repo, tag, image).await
}

/// Pushes `index` and its images to `registry` as `repo:tag`; returns the index digest.
pub async fn push_index(registry: &str, repo: &str, tag: &str, index: &Index) -> Result<String> {
    Registry::new(registry).push_index(repo, tag, index).await
}
