//! The node's content-addressed image store.
//!
//! ```text
//! <root>/blobs/sha256/<hex>     manifests, configs and compressed layers, by digest
//! <root>/layers/<hex>           each layer unpacked once, by chain id (overlayfs-ready)
//! <root>/images.json            image records: names, digests, layers, sizes, last use
//! <root>/rootfs/<id>/           a container's overlay: upper/, work/, merged/, image
//! <root>/tmp/                   downloads and unpacks in progress (emptied on open)
//! <root>/lock                   flock held while the records or the layer set change
//! ```
//!
//! Blobs and layers appear only by `rename` after their digests were checked, so a failed pull
//! leaves nothing behind but files in `tmp/`. Records are rewritten whole (temp file + rename)
//! under the lock, so the daemon and the `images` subcommands can share one store; readers keep a
//! cached copy and reload it when the file changes.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One layer of an image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LayerRecord {
    /// Digest of the compressed blob.
    pub digest: String,
    pub media_type: String,
    /// Compressed size.
    pub size: u64,
    /// Digest of the uncompressed tar, from the image config.
    pub diff_id: String,
    /// Identity of the unpacked directory: this layer on top of its parents.
    pub chain_id: String,
}

/// An image on the node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// The config digest: the image ID Kubernetes shows as `imageID`'s target.
    pub id: String,
    /// Canonical tagged names (`docker.io/library/busybox:latest`).
    pub names: Vec<String>,
    /// `repository@manifest-digest` for every repository it came from.
    pub repo_digests: Vec<String>,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub layers: Vec<LayerRecord>,
    /// Compressed size of config and layers (what `Pulled` events report).
    pub size: u64,
    /// Seconds since the epoch.
    pub created_at: i64,
    pub last_used: i64,
}

impl ImageRecord {
    /// Unpacked layer directories, topmost first (the order of overlayfs' `lowerdir`).
    pub fn lower_dirs(&self, store: &Store) -> Vec<PathBuf> {
        self.layers
            .iter()
            .rev()
            .map(|l| store.layer_dir(&l.chain_id))
            .collect()
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Index {
    images: Vec<ImageRecord>,
}

struct Cache {
    index: Index,
    stamp: Option<(SystemTime, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("image records {path} are corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { what, path, source }
}

pub struct Store {
    root: PathBuf,
    cache: Mutex<Cache>,
}

/// `sha256:<hex>` → `<hex>`, refusing anything that is not a sha256 digest (digests become
/// file names, so they must never carry `/` or `..`).
pub fn digest_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(hex),
        _ => Err(StoreError::Other(format!(
            "unsupported digest {digest:?} (want sha256:<64 hex digits>)"
        ))),
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Chain IDs as the OCI image spec defines them: the first layer's is its diff_id, each next
/// one is `sha256(parent_chain_id + " " + diff_id)`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let id = match out.last() {
            None => d.clone(),
            Some(parent) => sha256_digest(format!("{parent} {d}").as_bytes()),
        };
        out.push(id);
    }
    out
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Store {
    /// Opens (creating) the store at `root` and empties its `tmp/`.
    pub fn open(root: &Path) -> Result<Self> {
        for d in ["blobs/sha256", "layers", "rootfs", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
        }
        let store = Self {
            root: root.to_path_buf(),
            cache: Mutex::new(Cache {
                index: Index::default(),
                stamp: None,
            }),
        };
        {
            // Leftovers of a pull that died (kill -9) are only ever in tmp/.
            let _lock = store.lock()?;
            let tmp = root.join("tmp");
            for e in fs::read_dir(&tmp).map_err(io_err("reading", &tmp))? {
                let p = e.map_err(io_err("reading", &tmp))?.path();
                let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
                remove_any(&p)?;
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    pub fn layer_dir(&self, chain_id: &str) -> PathBuf {
        let hex = chain_id.strip_prefix("sha256:").unwrap_or(chain_id);
        self.root.join("layers").join(hex)
    }

    pub fn has_layer(&self, chain_id: &str) -> bool {
        self.layer_dir(chain_id).is_dir()
    }

    pub fn rootfs_dir(&self, container_id: &str) -> PathBuf {
        self.root.join("rootfs").join(container_id)
    }

    /// A fresh path under tmp/ (same filesystem as blobs and layers, so rename is atomic).
    pub fn temp_path(&self, prefix: &str) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{prefix}-{:016x}", rand::random::<u64>()))
    }

    /// Stores `bytes` as a blob after checking that they are `digest`.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let path = self.blob_path(digest)?;
        if path.exists() {
            return Ok(());
        }
        let got = sha256_digest(bytes);
        if got != digest {
            return Err(StoreError::Other(format!(
                "digest mismatch: expected {digest}, got {got}"
            )));
        }
        let tmp = self.temp_path("blob");
        let mut f = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        f.write_all(bytes).map_err(io_err("writing", &tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io_err("storing", &path))
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        fs::read(&path).map_err(io_err("reading", &path))
    }

    /// Moves a verified file into place as blob `digest`.
    pub fn adopt_blob(&self, digest: &str, file: &Path) -> Result<()> {
        let path = self.blob_path(digest)?;
        fs::rename(file, &path).map_err(io_err("storing", &path))
    }

    /// Moves an unpacked, verified layer directory into place (another pull may have won the
    /// race for the same chain id; then ours is dropped).
    pub fn adopt_layer(&self, chain_id: &str, dir: &Path) -> Result<()> {
        let dest = self.layer_dir(chain_id);
        match fs::rename(dir, &dest) {
            Ok(()) => Ok(()),
            Err(_) if dest.is_dir() => remove_any(dir),
            Err(e) => Err(io_err("storing layer", &dest)(e)),
        }
    }

    /// The exclusive store lock (between processes; within one, the cache mutex).
    pub fn lock(&self) -> Result<Flock<File>> {
        let path = self.root.join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("opening", &path))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| io_err("locking", &path)(io::Error::from(e)))
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    fn stamp(&self) -> Option<(SystemTime, u64)> {
        let m = fs::metadata(self.index_path()).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    /// Reloads the records if another process changed them.
    fn refresh(&self, cache: &mut Cache) -> Result<()> {
        let stamp = self.stamp();
        if stamp.is_some() && stamp == cache.stamp {
            return Ok(());
        }
        let path = self.index_path();
        cache.index = match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| StoreError::Corrupt {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Index::default(),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        cache.stamp = stamp;
        Ok(())
    }

    /// All images.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let mut cache = self.cache.lock().unwrap();
        self.refresh(&mut cache)?;
        Ok(cache.index.images.clone())
    }

    /// The image a user's name stands for: a canonical tagged name, `repo@digest`, or an ID.
    pub fn get(&self, name: &str) -> Result<Option<ImageRecord>> {
        let mut cache = self.cache.lock().unwrap();
        self.refresh(&mut cache)?;
        Ok(cache
            .index
            .images
            .iter()
            .find(|i| {
                i.names.iter().any(|n| n == name)
                    || i.repo_digests.iter().any(|n| n == name)
                    || i.id == name
            })
            .cloned())
    }

    /// Changes the records under the store lock and writes them back atomically.
    pub fn update<T>(&self, f: impl FnOnce(&mut Vec<ImageRecord>) -> T) -> Result<T> {
        let _lock = self.lock()?;
        let mut cache = self.cache.lock().unwrap();
        cache.stamp = None;
        self.refresh(&mut cache)?;
        let out = f(&mut cache.index.images);
        let path = self.index_path();
        let tmp = self.temp_path("images");
        let bytes = serde_json::to_vec_pretty(&cache.index).expect("records serialise");
        fs::write(&tmp, bytes).map_err(io_err("writing", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("writing", &path))?;
        cache.stamp = self.stamp();
        Ok(out)
    }

    /// Records a pulled or loaded image. Its names move to it from any image that had them
    /// (a re-pushed tag), as in containerd.
    pub fn record(&self, mut image: ImageRecord) -> Result<ImageRecord> {
        self.update(|images| {
            for other in images.iter_mut() {
                other.names.retain(|n| !image.names.contains(n));
            }
            if let Some(existing) = images.iter_mut().find(|i| i.id == image.id) {
                for n in existing.names.drain(..) {
                    if !image.names.contains(&n) {
                        image.names.push(n);
                    }
                }
                for d in existing.repo_digests.drain(..) {
                    if !image.repo_digests.contains(&d) {
                        image.repo_digests.push(d);
                    }
                }
                image.created_at = existing.created_at;
                *existing = image.clone();
            } else {
                images.push(image.clone());
            }
            image
        })
    }

    /// Marks an image used now (image GC removes the least recently used first).
    pub fn touch(&self, id: &str) -> Result<()> {
        self.update(|images| {
            if let Some(i) = images.iter_mut().find(|i| i.id == id) {
                i.last_used = now_secs();
            }
        })
    }

    /// IDs of images some container's root filesystem is made of.
    pub fn images_in_use(&self) -> Result<HashSet<String>> {
        let dir = self.root.join("rootfs");
        let mut out = HashSet::new();
        for e in fs::read_dir(&dir).map_err(io_err("reading", &dir))? {
            let p = e.map_err(io_err("reading", &dir))?.path().join("image");
            if let Ok(id) = fs::read_to_string(&p) {
                out.insert(id.trim().to_string());
            }
        }
        Ok(out)
    }

    /// Removes images and then every blob and layer no remaining image needs. Images in use by
    /// a container are kept. Returns the removed records.
    pub fn remove_images(&self, ids: &HashSet<String>) -> Result<Vec<ImageRecord>> {
        let in_use = self.images_in_use()?;
        let removed = self.update(|images| {
            let (gone, kept): (Vec<_>, Vec<_>) = images
                .drain(..)
                .partition(|i| ids.contains(&i.id) && !in_use.contains(&i.id));
            *images = kept;
            gone
        })?;
        self.sweep()?;
        Ok(removed)
    }

    /// Deletes blobs and layers that no image references.
    pub fn sweep(&self) -> Result<u64> {
        let _lock = self.lock()?;
        let images = {
            let mut cache = self.cache.lock().unwrap();
            cache.stamp = None;
            self.refresh(&mut cache)?;
            cache.index.images.clone()
        };
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        for i in &images {
            blobs.insert(digest_hex(&i.id)?.to_string());
            blobs.insert(digest_hex(&i.manifest_digest)?.to_string());
            for l in &i.layers {
                blobs.insert(digest_hex(&l.digest)?.to_string());
                layers.insert(digest_hex(&l.chain_id)?.to_string());
            }
        }
        let mut freed = 0;
        for (dir, keep) in [("blobs/sha256", &blobs), ("layers", &layers)] {
            let dir = self.root.join(dir);
            for e in fs::read_dir(&dir).map_err(io_err("reading", &dir))? {
                let e = e.map_err(io_err("reading", &dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if !keep.contains(&name) {
                    freed += disk_usage(&e.path());
                    remove_any(&e.path())?;
                }
            }
        }
        Ok(freed)
    }

    /// Image garbage collection as the kubelet does it: when the store's filesystem is more
    /// than `high` percent full, unused images go, least recently used first, until it is below
    /// `low` percent. Returns the removed images.
    pub fn collect_garbage(&self, high: u8, low: u8) -> Result<Vec<ImageRecord>> {
        let usage = || -> Result<(u64, u64)> {
            let s = nix::sys::statvfs::statvfs(&self.root)
                .map_err(|e| io_err("statfs", &self.root)(io::Error::from(e)))?;
            let total = s.blocks() as u64 * s.fragment_size() as u64;
            let free = s.blocks_available() as u64 * s.fragment_size() as u64;
            Ok((total.saturating_sub(free), total))
        };
        let (used, total) = usage()?;
        if total == 0 || used * 100 < total * high as u64 {
            return Ok(Vec::new());
        }
        let target = total * low as u64 / 100;
        let mut need = used.saturating_sub(target);
        let in_use = self.images_in_use()?;
        let mut candidates: Vec<_> = self
            .list()?
            .into_iter()
            .filter(|i| !in_use.contains(&i.id))
            .collect();
        candidates.sort_by_key(|i| i.last_used);
        let sizes = self.exclusive_sizes()?;
        let mut chosen = HashSet::new();
        for c in candidates {
            if need == 0 {
                break;
            }
            need = need.saturating_sub(sizes.get(&c.id).copied().unwrap_or(c.size));
            chosen.insert(c.id);
        }
        self.remove_images(&chosen)
    }

    /// Bytes each image would free alone (its blobs plus layers no other image shares).
    fn exclusive_sizes(&self) -> Result<HashMap<String, u64>> {
        let images = self.list()?;
        let mut users: HashMap<&str, usize> = HashMap::new();
        for i in &images {
            for l in &i.layers {
                *users.entry(l.chain_id.as_str()).or_default() += 1;
            }
        }
        Ok(images
            .iter()
            .map(|i| {
                let own: u64 = i
                    .layers
                    .iter()
                    .filter(|l| users[l.chain_id.as_str()] == 1)
                    .map(|l| l.size * 2)
                    .sum();
                (i.id.clone(), own)
            })
            .collect())
    }
}

/// Bytes used by a file or a tree (not following symlinks).
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| disk_usage(&e.path()))
        .sum()
}

/// Removes a file or a whole tree; a missing path is fine.
pub fn remove_any(path: &Path) -> Result<()> {
    let r = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    r.map_err(io_err("removing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u8, names: &[&str], layers: &[u8]) -> ImageRecord {
        let d = |b: u8| format!("sha256:{}", hex::encode([b; 32]));
        let diff: Vec<String> = layers.iter().map(|&l| d(l)).collect();
        let chains = chain_ids(&diff);
        ImageRecord {
            id: d(id),
            names: names.iter().map(|s| s.to_string()).collect(),
            repo_digests: vec![],
            manifest_digest: d(id + 100),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            layers: diff
                .iter()
                .zip(chains)
                .map(|(diff_id, chain_id)| LayerRecord {
                    digest: diff_id.clone(),
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    size: 10,
                    diff_id: diff_id.clone(),
                    chain_id,
                })
                .collect(),
            size: 20,
            created_at: 1,
            last_used: 1,
        }
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = sha256_digest(b"a");
        let b = sha256_digest(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], sha256_digest(format!("{a} {b}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn digests_never_become_paths_outside_the_store() {
        assert!(digest_hex("sha256:../../etc/passwd").is_err());
        assert!(digest_hex(&format!("sha512:{}", "a".repeat(128))).is_err());
        assert!(digest_hex(&format!("sha256:{}", "a".repeat(63))).is_err());
        assert!(digest_hex(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }

    #[test]
    fn tags_move_and_unreferenced_content_is_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let one = record(1, &["docker.io/library/app:v1"], &[1, 2]);
        let two = record(2, &["docker.io/library/app:v1"], &[1, 3]);
        store.record(one.clone()).unwrap();
        // Blobs and layers for both images, plus an orphan layer.
        for r in [&one, &two] {
            for l in &r.layers {
                fs::create_dir_all(store.layer_dir(&l.chain_id)).unwrap();
                fs::write(store.blob_path(&l.digest).unwrap(), b"x").unwrap();
            }
        }
        fs::create_dir_all(store.layer_dir(&format!("sha256:{}", "f".repeat(64)))).unwrap();
        store.record(two.clone()).unwrap();
        // The tag moved: image one is dangling now.
        assert_eq!(
            store.get("docker.io/library/app:v1").unwrap().unwrap().id,
            two.id
        );
        assert!(store.get(&one.id).unwrap().unwrap().names.is_empty());

        // A second handle (another process) sees the change.
        let other = Store::open(dir.path()).unwrap();
        assert_eq!(other.list().unwrap().len(), 2);

        // One in use by a container survives removal.
        fs::create_dir_all(store.rootfs_dir("c1")).unwrap();
        fs::write(store.rootfs_dir("c1").join("image"), &one.id).unwrap();
        let ids: HashSet<String> = [one.id.clone(), two.id.clone()].into();
        let removed = store.remove_images(&ids).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].id, two.id);
        // Layer 1 (shared) and image one's layers stay; two's own layer and the orphan go.
        for l in &one.layers {
            assert!(store.has_layer(&l.chain_id));
            assert!(store.has_blob(&l.digest));
        }
        assert!(!store.has_layer(&two.layers[1].chain_id));
        assert!(!store.has_blob(&two.layers[1].digest));
        assert_eq!(fs::read_dir(dir.path().join("layers")).unwrap().count(), 2);
    }

    #[test]
    fn put_blob_checks_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = sha256_digest(b"hello");
        assert!(store.put_blob(&d, b"hellO").is_err());
        assert!(!store.has_blob(&d));
        store.put_blob(&d, b"hello").unwrap();
        assert_eq!(store.read_blob(&d).unwrap(), b"hello");
    }
}
