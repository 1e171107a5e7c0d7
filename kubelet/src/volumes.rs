//! The volumes whose files the kubelet writes: `configMap`, `secret`, `downwardAPI` and
//! `projected` (configMap, secret, downwardAPI and serviceAccountToken sources), as the
//! kubelet's volume plugins make them.
//!
//! [`desired`] reads what each volume should hold from the watched objects (and asks the API
//! for service account tokens, bound to the pod); [`write_atomic`] puts it in the volume's directory the way
//! Kubernetes' AtomicWriter does: the files go to a fresh `..<timestamp>` directory, a
//! `..data` symlink is swapped to it with one rename, and each top-level name is a symlink
//! through `..data`. A reader sees the old set or the new one, never a mix. Secrets and
//! projected volumes live on tmpfs (never on disk); the kubelet rewrites a volume when what it
//! should hold changes: its ConfigMaps and Secrets come from watches (objects.rs) that wake
//! the pod's worker on every change.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, Pod, ResourceFieldSelector, ServiceAccount, Volume,
};
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;
use tinykube_machinery::quantity::Quantity;

use crate::objects::{Objects, Source, Subscriber};

/// One file of a volume: its path inside the volume, contents and mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// What a volume should hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    pub files: Vec<File>,
    /// On tmpfs (secrets, projected volumes), never on disk.
    pub memory: bool,
    /// The pod's fsGroup: the files' group (and readable by it).
    pub group: Option<u32>,
}

/// The written volumes of a pod, by volume name.
pub type Desired = BTreeMap<String, Content>;

/// Whether the kubelet writes the files of `v`.
pub fn is_written(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.secret.is_some()
        || v.downward_api.is_some()
        || v.projected.is_some()
}

/// Tokens the kubelet holds for a pod's projected volumes, renewed at 80 % of their life.
#[derive(Default)]
pub struct Tokens {
    held: BTreeMap<(String, String), (Vec<u8>, Instant)>,
}

const DEFAULT_MODE: i32 = 0o644;

fn failed(volume: &str, why: impl std::fmt::Display) -> String {
    format!("MountVolume.SetUp failed for volume {volume:?} : {why}")
}

/// A path inside a volume: relative, no `..`, not empty (Kubernetes validates the same).
fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        && !p.starts_with("..")
}

/// The files of `data` (key → bytes), picked and renamed by `items` when given.
fn key_files(
    volume: &str,
    what: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
    mode: i32,
) -> Result<Vec<File>, String> {
    let mut out = Vec::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.push(File {
                    path: k.clone(),
                    data: v.clone(),
                    mode: mode as u32,
                });
            }
        }
        Some(items) => {
            for i in items {
                let Some(v) = data.get(&i.key) else {
                    if optional {
                        continue;
                    }
                    return Err(failed(
                        volume,
                        format!("{what} references non-existent config key: {}", i.key),
                    ));
                };
                out.push(File {
                    path: i.path.clone(),
                    data: v.clone(),
                    mode: i.mode.unwrap_or(mode) as u32,
                });
            }
        }
    }
    Ok(out)
}

/// Where [`desired`] reads from: the API (for tokens), the watched ConfigMaps and Secrets,
/// and the pod asking (told of their changes).
pub struct Reads<'a> {
    pub client: &'a Client,
    pub objects: &'a Objects,
    pub uid: &'a str,
    pub sub: &'a Subscriber,
    /// How long a first read of an object may wait for its watch's list.
    pub wait: Duration,
}

/// The files a ConfigMap or Secret reference gives a volume.
#[allow(clippy::too_many_arguments)]
async fn keyed(
    reads: &Reads<'_>,
    ns: &str,
    volume: &str,
    source: Source,
    name: &str,
    items: Option<&Vec<KeyToPath>>,
    optional: Option<bool>,
    mode: i32,
) -> Result<Vec<File>, String> {
    let optional = optional == Some(true);
    let what = match source {
        Source::ConfigMap => "configMap",
        Source::Secret => "secret",
    };
    let keys = reads
        .objects
        .get(source, ns, name, reads.uid, reads.sub, reads.wait)
        .await
        .map_err(|e| failed(volume, e))?;
    match keys {
        Some(data) => key_files(volume, what, &data, items, optional, mode),
        None if optional => Ok(Vec::new()),
        None => Err(failed(
            volume,
            format!("{} {name:?} not found", source.noun()),
        )),
    }
}

/// `key="value"` lines, sorted, as the downward API writes labels and annotations.
fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of a downward API field of `pod`.
fn field(pod: &Pod, path: &str) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
    };
    Some(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(m.labels.as_ref()),
        "metadata.annotations" => format_map(m.annotations.as_ref()),
        "spec.nodeName" => spec?.node_name.clone().unwrap_or_default(),
        "spec.serviceAccountName" => spec?.service_account_name.clone().unwrap_or_default(),
        _ => {
            if let Some(k) = subscript("metadata.labels") {
                m.labels.as_ref()?.get(k).cloned().unwrap_or_default()
            } else if let Some(k) = subscript("metadata.annotations") {
                m.annotations.as_ref()?.get(k).cloned().unwrap_or_default()
            } else {
                return None;
            }
        }
    })
}

/// What the node can give a container whose limits leave a resource open: a limit that is
/// not set reads as the node's allocatable, as the kubelet's downward API fills it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocatable {
    pub cpu_millis: i128,
    pub memory: i128,
    pub ephemeral_storage: i128,
}

impl Allocatable {
    pub fn of(facts: &crate::node::HostFacts) -> Allocatable {
        Allocatable {
            cpu_millis: facts.cpus as i128 * 1000,
            memory: facts.memory_bytes as i128,
            ephemeral_storage: facts.ephemeral_bytes as i128,
        }
    }
}

/// The value of a `resourceFieldRef` for `container`: `limits.cpu`, `requests.memory`, … in
/// units of the divisor, rounded up (CPU counted in millicores, the rest in bytes), as
/// Kubernetes' `ExtractContainerResourceValue` gives it.
pub fn resource_field(
    container: &Container,
    selector: &ResourceFieldSelector,
    alloc: &Allocatable,
) -> Result<String, String> {
    let divisor = selector
        .divisor
        .as_ref()
        .and_then(|d| Quantity::parse(&d.0).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or_else(|| Quantity::parse("1").expect("1 is a quantity"));
    let resources = container.resources.as_ref();
    let (which, name) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource : {}", selector.resource))?;
    let set = match which {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => {
            return Err(format!(
                "unsupported container resource : {}",
                selector.resource
            ))
        }
    };
    let given = set
        .and_then(|m| m.get(name))
        .and_then(|q| Quantity::parse(&q.0).ok());
    let ceil = |n: i128, d: i128| if d <= 0 { 0 } else { (n + d - 1).div_euclid(d) };
    let value = match name {
        "cpu" => {
            let millis = match (given, which) {
                (Some(q), _) => q.milli_value(),
                (None, "limits") => alloc.cpu_millis,
                (None, _) => 0,
            };
            ceil(millis, divisor.milli_value())
        }
        "memory" | "ephemeral-storage" => {
            let bytes = match (given, which) {
                (Some(q), _) => q.value(),
                (None, "limits") if name == "memory" => alloc.memory,
                (None, "limits") => alloc.ephemeral_storage,
                (None, _) => 0,
            };
            ceil(bytes, divisor.value())
        }
        n if n.starts_with("hugepages-") => ceil(given.map_or(0, |q| q.value()), divisor.value()),
        _ => {
            return Err(format!(
                "unsupported container resource : {}",
                selector.resource
            ))
        }
    };
    Ok(value.to_string())
}

fn downward_files(
    volume: &str,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    mode: i32,
    alloc: &Allocatable,
) -> Result<Vec<File>, String> {
    let mut out = Vec::new();
    for i in items {
        let value = match (&i.field_ref, &i.resource_field_ref) {
            (Some(f), _) => field(pod, &f.field_path).ok_or_else(|| {
                failed(volume, format!("unsupported fieldPath: {}", f.field_path))
            })?,
            (_, Some(r)) => {
                let name = r.container_name.as_deref().unwrap_or_default();
                let container = crate::runtime::plan::find_container(pod, name)
                    .ok_or_else(|| failed(volume, format!("container {name} not found")))?;
                resource_field(&container, r, alloc).map_err(|e| failed(volume, e))?
            }
            _ => continue,
        };
        out.push(File {
            path: i.path.clone(),
            data: value.into_bytes(),
            mode: i.mode.unwrap_or(mode) as u32,
        });
    }
    Ok(out)
}

impl Tokens {
    /// A token for the pod's service account with `audience` and `seconds` of life, bound to
    /// the pod; the one held is reused until 80 % of its life has passed.
    async fn get(
        &mut self,
        client: &Client,
        pod: &Pod,
        volume: &str,
        path: &str,
        audience: Option<&str>,
        seconds: i64,
    ) -> Result<Vec<u8>, String> {
        let key = (volume.to_string(), path.to_string());
        if let Some((token, renew_at)) = self.held.get(&key) {
            if Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let request: TokenRequest = serde_json::from_value(json!({
            "spec": {
                "audiences": audience.map(|a| vec![a]).unwrap_or_default(),
                "expirationSeconds": seconds,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                   "name": pod.metadata.name, "uid": pod.metadata.uid}
            }
        }))
        .map_err(|e| failed(volume, e))?;
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        let issued = api
            .create_token_request(&sa, &PostParams::default(), &request)
            .await
            .map_err(|e| failed(volume, format!("failed to fetch token: {e}")))?;
        let token = issued
            .status
            .map(|s| s.token.into_bytes())
            .ok_or_else(|| failed(volume, "the token request was answered without a token"))?;
        let renew_at = Instant::now() + Duration::from_secs((seconds.max(600) as u64) * 8 / 10);
        self.held.insert(key, (token.clone(), renew_at));
        Ok(token)
    }
}

/// What each written volume of `pod` should hold now; Err is a FailedMount message (a missing
/// ConfigMap or Secret that is not optional, a missing key, a token that cannot be had).
pub async fn desired(
    reads: &Reads<'_>,
    pod: &Pod,
    tokens: &mut Tokens,
    alloc: &Allocatable,
) -> Result<Desired, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut out = Desired::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let name = v.name.as_str();
        let content = if let Some(s) = &v.config_map {
            let mode = s.default_mode.unwrap_or(DEFAULT_MODE);
            let files = keyed(
                reads,
                &ns,
                name,
                Source::ConfigMap,
                &s.name,
                s.items.as_ref(),
                s.optional,
                mode,
            )
            .await?;
            Content {
                files,
                memory: false,
                group: None,
            }
        } else if let Some(s) = &v.secret {
            let mode = s.default_mode.unwrap_or(DEFAULT_MODE);
            let secret_name = s.secret_name.clone().unwrap_or_default();
            let files = keyed(
                reads,
                &ns,
                name,
                Source::Secret,
                &secret_name,
                s.items.as_ref(),
                s.optional,
                mode,
            )
            .await?;
            Content {
                files,
                memory: true,
                group: None,
            }
        } else if let Some(d) = &v.downward_api {
            let mode = d.default_mode.unwrap_or(DEFAULT_MODE);
            let files = downward_files(
                name,
                pod,
                d.items.as_deref().unwrap_or_default(),
                mode,
                alloc,
            )?;
            Content {
                files,
                memory: false,
                group: None,
            }
        } else if let Some(p) = &v.projected {
            let mode = p.default_mode.unwrap_or(DEFAULT_MODE);
            let mut files = Vec::new();
            for source in p.sources.iter().flatten() {
                if let Some(s) = &source.config_map {
                    files.extend(
                        keyed(
                            reads,
                            &ns,
                            name,
                            Source::ConfigMap,
                            &s.name,
                            s.items.as_ref(),
                            s.optional,
                            mode,
                        )
                        .await?,
                    );
                }
                if let Some(s) = &source.secret {
                    files.extend(
                        keyed(
                            reads,
                            &ns,
                            name,
                            Source::Secret,
                            &s.name,
                            s.items.as_ref(),
                            s.optional,
                            mode,
                        )
                        .await?,
                    );
                }
                if let Some(d) = &source.downward_api {
                    files.extend(downward_files(
                        name,
                        pod,
                        d.items.as_deref().unwrap_or_default(),
                        mode,
                        alloc,
                    )?);
                }
                if let Some(t) = &source.service_account_token {
                    let seconds = t.expiration_seconds.unwrap_or(3600);
                    let token = tokens
                        .get(
                            reads.client,
                            pod,
                            name,
                            &t.path,
                            t.audience.as_deref(),
                            seconds,
                        )
                        .await?;
                    // Kubernetes writes the token readable by all in the volume's default
                    // mode; the volume itself is only in this pod.
                    files.push(File {
                        path: t.path.clone(),
                        data: token,
                        mode: mode as u32,
                    });
                }
            }
            Content {
                files,
                memory: true,
                group: None,
            }
        } else {
            continue;
        };
        if let Some(bad) = content.files.iter().find(|f| !safe_path(&f.path)) {
            return Err(failed(name, format!("invalid path {:?}", bad.path)));
        }
        let mut content = content;
        // fsGroup: the files belong to the group and it may read them, as Kubernetes'
        // SetVolumeOwnership leaves read-only volumes.
        if let Some(g) = fs_group(pod) {
            content.group = Some(g);
            for f in &mut content.files {
                f.mode |= 0o440;
            }
        }
        out.insert(name.to_string(), content);
    }
    Ok(out)
}

/// The pod's fsGroup, if it has one.
pub fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec
        .as_ref()?
        .security_context
        .as_ref()?
        .fs_group
        .map(|g| g as u32)
}

/// The files under `dir` (recursively), as `File`s with paths relative to `root`.
fn read_tree(root: &Path, dir: &Path, out: &mut Vec<File>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let meta = e.metadata()?;
        if meta.is_dir() {
            read_tree(root, &e.path(), out)?;
        } else {
            let rel = e
                .path()
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(File {
                path: rel,
                data: fs::read(e.path())?,
                mode: meta.permissions().mode() & 0o777,
            });
        }
    }
    Ok(())
}

/// The first component of a volume path: what gets a symlink at the top.
fn top(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// Refuses two files at one path, or a file where another needs a directory (`a` and `a/b`).
fn check_paths(files: &[File]) -> io::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for f in files {
        if !seen.insert(f.path.as_str()) {
            return Err(io::Error::other(format!("two files at {:?}", f.path)));
        }
    }
    for f in files {
        let parts: Vec<&str> = f.path.split('/').collect();
        for n in 1..parts.len() {
            let dir = parts[..n].join("/");
            if seen.contains(dir.as_str()) {
                return Err(io::Error::other(format!(
                    "{dir:?} is a file and a directory"
                )));
            }
        }
    }
    Ok(())
}

/// Writes `files` into `dir` atomically (Kubernetes' AtomicWriter), owned by `group` when
/// the pod has an fsGroup (directories then setgid, as Kubernetes leaves them); false when
/// it already held exactly these files.
pub fn write_atomic(dir: &Path, files: &[File], group: Option<u32>) -> io::Result<bool> {
    let data_link = dir.join("..data");
    let old = fs::read_link(&data_link).ok();
    if let Some(old) = &old {
        let mut have = Vec::new();
        if read_tree(&dir.join(old), &dir.join(old), &mut have).is_ok() {
            let mut want = files.to_vec();
            want.sort_by(|a, b| a.path.cmp(&b.path));
            have.sort_by(|a, b| a.path.cmp(&b.path));
            if want == have {
                return Ok(false);
            }
        }
    }
    check_paths(files)?;
    let stamp = jiff::Timestamp::now()
        .strftime("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let fresh = dir.join(&stamp);
    let written = (|| {
        let dir_mode = if group.is_some() { 0o2755 } else { 0o755 };
        let own = |p: &Path| match group {
            Some(g) => std::os::unix::fs::lchown(p, None, Some(g)),
            None => Ok(()),
        };
        fs::create_dir_all(&fresh)?;
        fs::set_permissions(&fresh, fs::Permissions::from_mode(dir_mode))?;
        own(&fresh)?;
        for f in files {
            let p = fresh.join(&f.path);
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent)?;
                let mut d = parent;
                while d != fresh {
                    fs::set_permissions(d, fs::Permissions::from_mode(dir_mode))?;
                    own(d)?;
                    d = d.parent().unwrap_or(fresh.as_path());
                }
            }
            fs::write(&p, &f.data)?;
            own(&p)?;
            // Never setuid, setgid or sticky (the apiserver refuses such modes too).
            fs::set_permissions(&p, fs::Permissions::from_mode(f.mode & 0o777))?;
        }
        Ok::<(), io::Error>(())
    })();
    if let Err(e) = written {
        // Nothing half-written stays behind to be retried over.
        let _ = fs::remove_dir_all(&fresh);
        return Err(e);
    }
    let tmp = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp);
    symlink(&stamp, &tmp)?;
    fs::rename(&tmp, &data_link)?;
    // The names users see: one symlink per top-level entry, through ..data.
    let wanted: std::collections::BTreeSet<&str> = files.iter().map(|f| top(&f.path)).collect();
    for name in &wanted {
        let link = dir.join(name);
        if fs::read_link(&link).is_err() {
            let _ = fs::remove_file(&link);
            symlink(Path::new("..data").join(name), &link)?;
        }
    }
    for e in fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            if name != "..data" && Some(Path::new(&name)) != Some(Path::new(&stamp)) {
                let p = e.path();
                if p.is_dir() && fs::read_link(&p).is_err() {
                    fs::remove_dir_all(&p)?;
                }
            }
            continue;
        }
        if !wanted.contains(name.as_str()) {
            fs::remove_file(e.path())?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_fields_as_the_docs_example_reads_them() {
        let c: Container = serde_json::from_value(json!({
            "name": "test-container",
            "resources": {
                "requests": {"memory": "32Mi", "cpu": "125m"},
                "limits": {"memory": "64Mi", "cpu": "250m"}
            }
        }))
        .unwrap();
        let alloc = Allocatable {
            cpu_millis: 2000,
            memory: 8 << 30,
            ephemeral_storage: 100 << 30,
        };
        let get = |resource: &str, divisor: Option<&str>| {
            let sel: ResourceFieldSelector = serde_json::from_value(json!({
                "resource": resource, "divisor": divisor,
            }))
            .unwrap();
            resource_field(&c, &sel, &alloc)
        };
        assert_eq!(get("requests.cpu", Some("1m")).unwrap(), "125");
        assert_eq!(get("limits.cpu", Some("1m")).unwrap(), "250");
        assert_eq!(
            get("limits.cpu", None).unwrap(),
            "1",
            "rounded up to a whole core"
        );
        assert_eq!(get("requests.memory", Some("1Mi")).unwrap(), "32");
        assert_eq!(get("limits.memory", None).unwrap(), "67108864");
        // Unset limits read as the node's allocatable; unset requests as zero.
        assert_eq!(get("limits.ephemeral-storage", Some("1Gi")).unwrap(), "100");
        assert_eq!(get("requests.ephemeral-storage", None).unwrap(), "0");
        let bare = Container::default();
        let sel = ResourceFieldSelector {
            resource: "limits.memory".into(),
            ..Default::default()
        };
        assert_eq!(
            resource_field(&bare, &sel, &alloc).unwrap(),
            (8u64 << 30).to_string()
        );
        assert_eq!(
            get("limits.gpu", None).unwrap_err(),
            "unsupported container resource : limits.gpu"
        );
    }

    fn file(path: &str, data: &str) -> File {
        File {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            mode: 0o644,
        }
    }

    #[test]
    fn atomic_writes_swap_the_whole_set() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(write_atomic(d, &[file("a", "1"), file("sub/b", "2")], None).unwrap());
        assert_eq!(fs::read_to_string(d.join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(d.join("sub/b")).unwrap(), "2");
        assert_eq!(fs::read_link(d.join("a")).unwrap(), Path::new("..data/a"));
        assert!(
            !write_atomic(d, &[file("sub/b", "2"), file("a", "1")], None).unwrap(),
            "unchanged"
        );
        let first = fs::read_link(d.join("..data")).unwrap();
        assert!(write_atomic(d, &[file("a", "3"), file("c", "4")], None).unwrap());
        assert_eq!(fs::read_to_string(d.join("a")).unwrap(), "3");
        assert_eq!(fs::read_to_string(d.join("c")).unwrap(), "4");
        assert!(!d.join("sub").exists(), "gone names go");
        assert!(!d.join(first).exists(), "the old set is removed");
        let entries: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            entries.len(),
            4,
            "a, c, ..data and one timestamped dir: {entries:?}"
        );
        // Conflicting paths write nothing.
        assert!(write_atomic(d, &[file("p", "1"), file("p/q", "2")], None).is_err());
        assert!(write_atomic(d, &[file("p", "1"), file("p", "2")], None).is_err());
        assert_eq!(fs::read_to_string(d.join("a")).unwrap(), "3");
        let mut odd = file("x", "5");
        odd.mode = 0o400;
        write_atomic(d, &[odd], None).unwrap();
        let mode = fs::metadata(d.join("x")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
    }

    #[test]
    fn an_fs_group_owns_what_is_written() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut secret = file("sub/key", "s");
        secret.mode = 0o440;
        write_atomic(d, &[secret], Some(4321)).unwrap();
        let f = fs::metadata(d.join("sub/key")).unwrap();
        assert_eq!((f.gid(), f.mode() & 0o7777), (4321, 0o440));
        let data = fs::canonicalize(d.join("..data")).unwrap();
        for dir in [data.clone(), data.join("sub")] {
            let m = fs::metadata(&dir).unwrap();
            assert_eq!(
                (m.gid(), m.mode() & 0o7777),
                (4321, 0o2755),
                "{}",
                dir.display()
            );
        }
    }

    #[test]
    fn paths_and_fields_as_kubernetes_writes_them() {
        assert!(safe_path("a/b"));
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "..data"] {
            assert!(!safe_path(bad), "{bad}");
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u",
                         "labels": {"b": "2", "a": "x\"y"}, "annotations": {"k": "v"}},
            "spec": {"nodeName": "n1", "containers": []}
        }))
        .unwrap();
        assert_eq!(
            field(&pod, "metadata.labels").unwrap(),
            "a=\"x\\\"y\"\nb=\"2\""
        );
        assert_eq!(field(&pod, "metadata.annotations['k']").unwrap(), "v");
        assert_eq!(field(&pod, "spec.nodeName").unwrap(), "n1");
        assert!(field(&pod, "status.podIP").is_none());
        let data = BTreeMap::from([("k1".to_string(), b"v1".to_vec())]);
        let items = vec![KeyToPath {
            key: "k1".into(),
            path: "dir/one".into(),
            mode: Some(0o600),
        }];
        let f = key_files("v", "configMap", &data, Some(&items), false, 0o644).unwrap();
        assert_eq!((f[0].path.as_str(), f[0].mode), ("dir/one", 0o600));
        let missing = vec![KeyToPath {
            key: "nope".into(),
            path: "x".into(),
            mode: None,
        }];
        assert_eq!(
            key_files("v", "configMap", &data, Some(&missing), false, 0o644).unwrap_err(),
            "MountVolume.SetUp failed for volume \"v\" : configMap references non-existent config key: nope"
        );
        assert!(
            key_files("v", "configMap", &data, Some(&missing), true, 0o644)
                .unwrap()
                .is_empty()
        );
    }
}
