//! Pulling images over the OCI distribution protocol into the store.
//!
//! A pull resolves the name through the registry's endpoints (mirrors first), fetches the
//! manifest (choosing this platform from an index), the config and the layers — layers download
//! in parallel, and each is unpacked as soon as it and its parent are ready. Every manifest,
//! config and layer digest and every layer's diff_id is checked; nothing enters the store
//! before its check passed. Pulls of one image at the same time share one pull.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::reference::{Credentials, Endpoint, ImageName, RegistryConfig};
use super::store::{self, chain_ids, now_secs, ImageRecord, LayerRecord, Store};
use super::unpack;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPT: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];

/// Why a pull failed; the message is what users see in the `Failed` event.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PullError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Store(String),
}

impl PullError {
    /// The same kind of error with another message.
    fn with_message(&self, message: String) -> PullError {
        match self {
            PullError::NotFound(_) => PullError::NotFound(message),
            PullError::Unauthorized(_) => PullError::Unauthorized(message),
            PullError::Unreachable(_) => PullError::Unreachable(message),
            PullError::Invalid(_) => PullError::Invalid(message),
            PullError::Store(_) => PullError::Store(message),
        }
    }

    /// The message with its kind, as one endpoint's answer in a list of several.
    fn described(&self) -> String {
        match self {
            PullError::NotFound(m) => format!("not found: {m}"),
            PullError::Unauthorized(m) => format!("unauthorized: {m}"),
            PullError::Unreachable(m) => format!("unreachable: {m}"),
            PullError::Invalid(m) | PullError::Store(m) => m.clone(),
        }
    }

    /// Whether a mirror's answer lets the next endpoint be tried, as containerd's and CRI-O's
    /// mirrors do: the mirror lacks the name, or could not be asked. An authentication or a
    /// content (digest) error is final.
    fn gives_way(&self) -> bool {
        matches!(self, PullError::NotFound(_) | PullError::Unreachable(_))
    }
}

impl From<store::StoreError> for PullError {
    fn from(e: store::StoreError) -> Self {
        PullError::Store(e.to_string())
    }
}

fn classify(err: oci_client::errors::OciDistributionError, what: &str) -> PullError {
    use oci_client::errors::OciDistributionError as E;
    let mut msg = format!("{what}: {err}");
    // reqwest's message is only "error sending request for url (…)": the why (connection
    // refused, a TLS or DNS failure) is in its sources.
    if let E::RequestError(e) = &err {
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
    }
    match &err {
        E::ImageManifestNotFoundError(_) => PullError::NotFound(msg),
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    oci_client::errors::OciErrorCode::ManifestUnknown
                        | oci_client::errors::OciErrorCode::NameUnknown
                        | oci_client::errors::OciErrorCode::BlobUnknown
                )
            }) =>
        {
            PullError::NotFound(msg)
        }
        E::ServerError { code: 404, .. } => PullError::NotFound(msg),
        // A registry (or the proxy in front of it) that fails on its side: as unreachable.
        E::ServerError { code, .. } if *code >= 500 => PullError::Unreachable(msg),
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => PullError::Unauthorized(msg),
        E::RequestError(_) => PullError::Unreachable(msg),
        _ => PullError::Invalid(msg),
    }
}

/// What a finished pull reports.
#[derive(Clone, Debug)]
pub struct Pulled {
    pub image: ImageRecord,
    /// Time spent pulling (zero when another caller's pull was joined and already done).
    pub took: Duration,
}

type PullFuture = Shared<BoxFuture<'static, Result<Pulled, PullError>>>;

/// The image service: pulls into a store and shares concurrent pulls.
pub struct ImageService {
    store: Arc<Store>,
    config: RegistryConfig,
    /// Clients by (plain HTTP, credentials): oci-client remembers one credential and its
    /// tokens per registry, so pulls with other credentials need a client of their own.
    clients: Mutex<HashMap<(bool, String), Client>>,
    inflight: Mutex<HashMap<String, PullFuture>>,
}

fn client(protocol: ClientProtocol) -> Client {
    Client::new(ClientConfig {
        protocol,
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        max_concurrent_download: 8,
        ..Default::default()
    })
}

/// The rustls provider reqwest needs (oci-client is built without one of its own).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl ImageService {
    pub fn new(store: Arc<Store>, config: RegistryConfig) -> Arc<Self> {
        install_crypto_provider();
        Arc::new(Self {
            store,
            config,
            clients: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Pulls `name`, joining a pull of the same name already under way. `docker_configs` are
    /// the `.dockerconfigjson` contents of the pod's imagePullSecrets.
    pub async fn pull(
        self: &Arc<Self>,
        name: &ImageName,
        docker_configs: &[Vec<u8>],
    ) -> Result<Pulled, PullError> {
        let key = name.canonical();
        let fut = {
            let mut inflight = self.inflight.lock().unwrap();
            if let Some(f) = inflight.get(&key) {
                f.clone()
            } else {
                let this = self.clone();
                let name = name.clone();
                let configs = docker_configs.to_vec();
                let k = key.clone();
                let f = async move {
                    let r = this.pull_uncached(&name, &configs).await;
                    this.inflight.lock().unwrap().remove(&k);
                    r
                }
                .boxed()
                .shared();
                inflight.insert(key, f.clone());
                f
            }
        };
        fut.await
    }

    async fn pull_uncached(
        &self,
        name: &ImageName,
        docker_configs: &[Vec<u8>],
    ) -> Result<Pulled, PullError> {
        let started = Instant::now();
        let endpoints = self.config.endpoints(name.registry());
        // Each endpoint tried and its answer, for the error if none has the image.
        let mut tried: Vec<String> = Vec::new();
        let canonical = name.canonical();
        for ep in &endpoints {
            let result = match auth_for(docker_configs, &ep.host, name.registry()) {
                Ok(auth) => self.pull_from(name, ep, &auth).await,
                Err(e) => Err(e),
            };
            let e = match result {
                Ok(image) => {
                    return Ok(Pulled {
                        image,
                        took: started.elapsed(),
                    })
                }
                Err(e) => e,
            };
            let answer = e
                .described()
                .replace(&format!("fetching manifest of {canonical}: "), "");
            tried.push(format!("{}: {answer}", ep.describe()));
            // A mirror without the name, or unreachable, gives way to the next endpoint.
            if ep.mirror && e.gives_way() {
                tracing::info!(mirror = %ep.host, image = %name.canonical(), error = %e, "trying the next endpoint");
                continue;
            }
            if tried.len() == 1 {
                return Err(e);
            }
            return Err(e.with_message(format!("{canonical} (tried {})", tried.join("; "))));
        }
        // Only mirrors were configured and each gave way (endpoints() ends with the registry
        // itself, so this is not reached in practice).
        Err(PullError::Unreachable(format!(
            "{canonical} (tried {})",
            tried.join("; ")
        )))
    }

    fn client(&self, ep: &Endpoint, auth: &RegistryAuth) -> Client {
        let who = match auth {
            RegistryAuth::Anonymous => String::new(),
            RegistryAuth::Basic(u, p) => format!("basic\0{u}\0{p}"),
            RegistryAuth::Bearer(t) => format!("bearer\0{t}"),
        };
        self.clients
            .lock()
            .unwrap()
            .entry((ep.plain_http, who))
            .or_insert_with(|| {
                client(if ep.plain_http {
                    ClientProtocol::Http
                } else {
                    ClientProtocol::Https
                })
            })
            .clone()
    }

    async fn pull_from(
        &self,
        name: &ImageName,
        ep: &Endpoint,
        auth: &RegistryAuth,
    ) -> Result<ImageRecord, PullError> {
        let started = Instant::now();
        let client = &self.client(ep, auth);
        let reference = name.at(ep);
        let (mut bytes, mut digest) = client
            .pull_manifest_raw(&reference, auth, ACCEPT)
            .await
            .map_err(|e| classify(e, &format!("fetching manifest of {}", name.canonical())))?;
        verify_bytes(&bytes, &digest, "manifest")?;
        if let Some(want) = name.digest() {
            if want != digest {
                return Err(PullError::Invalid(format!(
                    "manifest digest mismatch: asked for {want}, registry sent {digest}"
                )));
            }
        }
        let mut manifest: Value = serde_json::from_slice(&bytes)
            .map_err(|e| PullError::Invalid(format!("invalid manifest: {e}")))?;
        let mut media_type = media_type_of(&manifest);
        if media_type == OCI_INDEX || media_type == DOCKER_LIST {
            let chosen = choose_platform(&manifest)?;
            let mut at = name.with_digest(&chosen);
            if ep.host != name.registry() {
                at.set_mirror_registry(ep.host.clone());
            }
            (bytes, digest) = client
                .pull_manifest_raw(&at, auth, ACCEPT)
                .await
                .map_err(|e| classify(e, "fetching platform manifest"))?;
            verify_bytes(&bytes, &digest, "manifest")?;
            if digest != chosen {
                return Err(PullError::Invalid(format!(
                    "manifest digest mismatch: index names {chosen}, registry sent {digest}"
                )));
            }
            manifest = serde_json::from_slice(&bytes)
                .map_err(|e| PullError::Invalid(format!("invalid manifest: {e}")))?;
            media_type = media_type_of(&manifest);
        }
        if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
            return Err(PullError::Invalid(format!(
                "unsupported manifest media type {media_type:?}"
            )));
        }
        let config_desc = descriptor(&manifest["config"])?;
        let layer_descs = manifest["layers"]
            .as_array()
            .ok_or_else(|| PullError::Invalid("manifest has no layers".into()))?
            .iter()
            .map(descriptor)
            .collect::<Result<Vec<_>, _>>()?;

        // The config: small, fetched into memory and checked.
        let config_bytes = if self.store.has_blob(&config_desc.digest) {
            self.store.read_blob(&config_desc.digest)?
        } else {
            let mut buf = Vec::with_capacity(config_desc.size.max(0) as usize);
            client
                .pull_blob(&reference, &config_desc, &mut buf)
                .await
                .map_err(|e| classify(e, "fetching image config"))?;
            verify_bytes(&buf, &config_desc.digest, "image config")?;
            buf
        };
        let config: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| PullError::Invalid(format!("invalid image config: {e}")))?;
        let diff_ids = diff_ids(&config)?;
        if diff_ids.len() != layer_descs.len() {
            return Err(PullError::Invalid(format!(
                "image config lists {} layers, manifest {}",
                diff_ids.len(),
                layer_descs.len()
            )));
        }
        let chains = chain_ids(&diff_ids);
        tracing::debug!(image = %name.canonical(), took = ?started.elapsed(), "manifest and config");

        // Layers: all downloads start now; unpacking follows in order as each arrives.
        let downloads: Vec<_> = layer_descs
            .iter()
            .zip(&chains)
            .map(|(d, chain)| {
                let needed = !self.store.has_layer(chain) && !self.store.has_blob(&d.digest);
                let fut = self.download(client, &reference, d.clone(), needed);
                tokio::spawn(fut)
            })
            .collect();
        let mut layers = Vec::with_capacity(layer_descs.len());
        let mut result = Ok(());
        for (i, task) in downloads.into_iter().enumerate() {
            let done = task
                .await
                .map_err(|e| PullError::Store(format!("download task: {e}")))
                .and_then(|r| r);
            if result.is_ok() {
                result = done;
            }
            if result.is_ok() {
                let t = Instant::now();
                result = self
                    .ensure_layer(&layer_descs[i], &diff_ids[i], &chains[..=i])
                    .await;
                tracing::debug!(layer = i, took = ?t.elapsed(), "unpacked");
            }
            layers.push(LayerRecord {
                digest: layer_descs[i].digest.clone(),
                media_type: layer_descs[i].media_type.clone(),
                size: layer_descs[i].size.max(0) as u64,
                diff_id: diff_ids[i].clone(),
                chain_id: chains[i].clone(),
            });
        }
        result?;

        self.store.put_blob(&config_desc.digest, &config_bytes)?;
        self.store.put_blob(&digest, &bytes)?;
        let size = config_desc.size.max(0) as u64 + layers.iter().map(|l| l.size).sum::<u64>();
        let now = now_secs();
        let record = ImageRecord {
            id: config_desc.digest.clone(),
            names: if name.digest().is_none() {
                vec![name.canonical()]
            } else {
                vec![]
            },
            repo_digests: vec![format!("{}@{digest}", name.repository_name())],
            manifest_digest: digest,
            manifest_media_type: media_type,
            layers,
            size,
            created_at: now,
            last_used: now,
        };
        Ok(self.store.record(record)?)
    }

    /// Fetches one layer blob into the store, checking its digest as it streams.
    fn download(
        &self,
        client: &Client,
        reference: &Reference,
        desc: OciDescriptor,
        needed: bool,
    ) -> impl std::future::Future<Output = Result<(), PullError>> + Send + 'static {
        let client = client.clone();
        let reference = reference.clone();
        let tmp = self.store.temp_path("layer-blob");
        let dest = self.store.blob_path(&desc.digest);
        async move {
            if !needed {
                return Ok(());
            }
            let dest = dest?;
            let r = async {
                let mut stream = client
                    .pull_blob_stream(&reference, &desc)
                    .await
                    .map_err(|e| classify(e, &format!("fetching layer {}", desc.digest)))?;
                let mut file = tokio::fs::File::create(&tmp)
                    .await
                    .map_err(|e| PullError::Store(format!("creating {}: {e}", tmp.display())))?;
                let mut n = 0u64;
                while let Some(chunk) = stream.next().await {
                    // The stream checks the digest itself and fails at its end on a mismatch.
                    let chunk = chunk.map_err(|e| {
                        PullError::Invalid(format!("fetching layer {}: {e}", desc.digest))
                    })?;
                    n += chunk.len() as u64;
                    file.write_all(&chunk)
                        .await
                        .map_err(|e| PullError::Store(format!("writing {}: {e}", tmp.display())))?;
                }
                file.flush()
                    .await
                    .map_err(|e| PullError::Store(format!("writing {}: {e}", tmp.display())))?;
                if desc.size >= 0 && n != desc.size as u64 {
                    return Err(PullError::Invalid(format!(
                        "layer {}: size mismatch: manifest says {}, got {n} bytes",
                        desc.digest, desc.size
                    )));
                }
                std::fs::rename(&tmp, &dest)
                    .map_err(|e| PullError::Store(format!("storing {}: {e}", dest.display())))
            }
            .await;
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            r
        }
    }

    /// Unpacks layer `chain.last()` on top of its parents unless it is already there.
    async fn ensure_layer(
        &self,
        desc: &OciDescriptor,
        diff_id: &str,
        chain: &[String],
    ) -> Result<(), PullError> {
        let chain_id = chain.last().expect("a layer").clone();
        if self.store.has_layer(&chain_id) {
            return Ok(());
        }
        let store = self.store.clone();
        let (desc, diff_id, chain) = (desc.clone(), diff_id.to_string(), chain.to_vec());
        tokio::task::spawn_blocking(move || unpack_layer(&store, &desc, &diff_id, &chain))
            .await
            .map_err(|e| PullError::Store(format!("unpack task: {e}")))?
    }
}

/// Unpacks the stored blob of layer `chain.last()` on top of its parents (already in the
/// store), checks its diff_id, and moves it into place. Blocking.
pub(crate) fn unpack_layer(
    store: &Store,
    desc: &OciDescriptor,
    diff_id: &str,
    chain: &[String],
) -> Result<(), PullError> {
    let chain_id = chain.last().expect("a layer");
    if store.has_layer(chain_id) {
        return Ok(());
    }
    let blob = store.blob_path(&desc.digest)?;
    let parents: Vec<PathBuf> = chain[..chain.len() - 1]
        .iter()
        .rev()
        .map(|c| store.layer_dir(c))
        .collect();
    let upper = store.temp_path("layer");
    let work = store.temp_path("work");
    let cleanup = |e: PullError| {
        let _ = store::remove_any(&upper);
        let _ = store::remove_any(&work);
        e
    };
    std::fs::create_dir(&upper)
        .and_then(|_| std::fs::create_dir(&work))
        .map_err(|e| cleanup(PullError::Store(format!("creating layer dir: {e}"))))?;
    let file = std::fs::File::open(&blob)
        .map_err(|e| cleanup(PullError::Store(format!("opening {}: {e}", blob.display()))))?;
    let digest = &desc.digest;
    let stats = unpack::apply_layer(
        std::io::BufReader::with_capacity(1 << 20, file),
        &desc.media_type,
        &parents,
        &upper,
        &work,
    )
    .map_err(|e| cleanup(PullError::Invalid(format!("unpacking layer {digest}: {e}"))))?;
    let _ = store::remove_any(&work);
    if stats.diff_id != diff_id {
        // The blob matched its digest but is not the layer the config describes.
        let _ = store::remove_any(&blob);
        return Err(cleanup(PullError::Invalid(format!(
            "layer {digest}: diff_id mismatch: image config says {diff_id}, content is {}",
            stats.diff_id
        ))));
    }
    store
        .adopt_layer(chain_id, &upper)
        .map_err(|e| cleanup(e.into()))
}

fn verify_bytes(bytes: &[u8], digest: &str, what: &str) -> Result<(), PullError> {
    store::digest_hex(digest).map_err(|e| PullError::Invalid(format!("{what}: {e}")))?;
    let got = store::sha256_digest(bytes);
    if got != digest {
        return Err(PullError::Invalid(format!(
            "{what} digest mismatch: expected {digest}, got {got}"
        )));
    }
    Ok(())
}

fn media_type_of(manifest: &Value) -> String {
    if let Some(m) = manifest["mediaType"].as_str() {
        return m.to_string();
    }
    // OCI allows the field to be absent: the shape tells.
    if manifest.get("manifests").is_some() {
        OCI_INDEX.into()
    } else {
        OCI_MANIFEST.into()
    }
}

fn descriptor(v: &Value) -> Result<OciDescriptor, PullError> {
    let d: OciDescriptor = serde_json::from_value(v.clone())
        .map_err(|e| PullError::Invalid(format!("invalid descriptor {v}: {e}")))?;
    store::digest_hex(&d.digest).map_err(|e| PullError::Invalid(e.to_string()))?;
    Ok(d)
}

/// The platform's OS/arch in OCI's words.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        a => a,
    };
    ("linux", arch)
}

/// The digest of this platform's manifest in an index.
fn choose_platform(index: &Value) -> Result<String, PullError> {
    let (os, arch) = host_platform();
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    entries
        .iter()
        .find(|m| m["platform"]["os"] == os && m["platform"]["architecture"] == arch)
        .and_then(|m| m["digest"].as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            PullError::NotFound(format!(
                "no matching manifest for {os}/{arch} in the manifest list entries"
            ))
        })
}

fn diff_ids(config: &Value) -> Result<Vec<String>, PullError> {
    let ids = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or_else(|| PullError::Invalid("image config has no rootfs.diff_ids".into()))?;
    ids.iter()
        .map(|v| {
            let s = v.as_str().unwrap_or("");
            store::digest_hex(s)
                .map(|_| s.to_string())
                .map_err(|e| PullError::Invalid(format!("image config: {e}")))
        })
        .collect()
}

fn auth_for(configs: &[Vec<u8>], host: &str, registry: &str) -> Result<RegistryAuth, PullError> {
    for c in configs {
        for h in [host, registry] {
            match super::reference::credentials_from_docker_config(c, h) {
                Ok(Some(Credentials::Basic { username, password })) => {
                    return Ok(RegistryAuth::Basic(username, password))
                }
                Ok(Some(Credentials::Bearer(t))) => return Ok(RegistryAuth::Bearer(t)),
                Ok(Some(Credentials::Anonymous)) | Ok(None) => {}
                Err(e) => return Err(PullError::Unauthorized(e)),
            }
        }
    }
    Ok(RegistryAuth::Anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn index_picks_this_platform() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let (_, arch) = host_platform();
        let index = json!({"schemaVersion": 2, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d('a'), "size": 1, "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": OCI_MANIFEST, "digest": d('b'), "size": 1, "platform": {"os": "linux", "architecture": arch}},
        ]});
        assert_eq!(choose_platform(&index).unwrap(), d('b'));
        assert_eq!(media_type_of(&index), OCI_INDEX);
        let other = json!({"manifests": [{"digest": d('a'), "platform": {"os": "windows", "architecture": arch}}]});
        assert!(matches!(
            choose_platform(&other),
            Err(PullError::NotFound(_))
        ));
    }

    #[test]
    fn configs_name_their_layers() {
        let good = json!({"rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "1".repeat(64))]}});
        assert_eq!(diff_ids(&good).unwrap().len(), 1);
        assert!(diff_ids(&json!({"rootfs": {"diff_ids": ["sha256:../x"]}})).is_err());
        assert!(diff_ids(&json!({})).is_err());
    }
}
