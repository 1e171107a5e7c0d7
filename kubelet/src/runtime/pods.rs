//! The node's pods on disk and the operations on them: make and tear down a pod's sandbox
//! (network namespace wired by CNI, UTS/IPC namespaces, /etc files, volumes), start a
//! container through its shim, stop it, and read back what runs (the runtime state the pod
//! worker plans from, and what a restarted kubelet adopts).
//!
//! ```text
//! <root>/pods/<uid>/pod.json                       the pod as it was when its sandbox was made
//! <root>/pods/<uid>/network.json                   netns and IP: written last, marks the sandbox ready
//! <root>/pods/<uid>/sandbox/                       ns-uts, ns-ipc, hosts, hostname, resolv.conf
//! <root>/pods/<uid>/volumes/<name>/                emptyDir volumes
//! <root>/pods/<uid>/containers/<name>/<n>/         bundle (config.json), container.json, exit.json
//! <root>/containers/<id>/                          libcontainer's state
//! <log-dir>/<ns>_<pod>_<uid>/<name>/<n>.log        CRI logs
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cgroups;
use super::crilog::now_rfc3339_nano;
use super::plan::{Instance, InstanceState, Observed};
use super::sandbox::{DnsConfig, Sandbox};
use super::shim::{self, ExitRecord, ShimArgs};
use super::spec::{container_spec, BindMount, ImageConfig, Inputs, SpecError};
use crate::image::rootfs::{is_mountpoint, mount_rootfs, remove_rootfs};
use crate::image::{ImageRecord, Store};
use crate::network::cni::{self, Attachment, Cni, NetworkConfigList, PortMapping};
use crate::network::netns;
use crate::volumes::{self, Desired};

/// Exit code recorded for a container whose shim vanished without recording its exit (as
/// Kubernetes' `ContainerStatusUnknown`).
pub const LOST_EXIT_CODE: i32 = 137;

/// How the node's pods are run.
pub struct RuntimeConfig {
    /// The kubelet's root dir (`--root-dir`).
    pub root: PathBuf,
    /// Where CRI logs go (`/var/log/pods`).
    pub log_dir: PathBuf,
    /// Where pods' cgroups go: the driver and the parent of all pods (`tinykube`).
    pub cgroups: cgroups::Layout,
    /// The kubelet binary (re-executed as the shim).
    pub exe: PathBuf,
    pub cni: Cni,
    pub network: NetworkConfigList,
    pub dns: DnsConfig,
    pub node_name: String,
    pub node_ip: String,
    /// Pods' network namespaces are `<prefix>-<uid>` in /run/netns (`--pod-netns-prefix`).
    pub netns_prefix: String,
    pub pids_limit: Option<i64>,
    pub log_max_size: u64,
    pub log_max_files: usize,
}

/// One started container instance, as recorded by the kubelet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub attempt: u32,
    /// The image as the spec names it.
    pub image: String,
    /// The image's config digest and `repo@digest` (status' imageID).
    pub image_id: String,
    pub image_ref: String,
    pub stop_signal: String,
    /// The container's init process and the shim, with their start times (so a reused pid
    /// is never mistaken for them). None until the shim reported.
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub pid_start: Option<u64>,
    #[serde(default)]
    pub shim_pid: Option<i32>,
    #[serde(default)]
    pub shim_start: Option<u64>,
    #[serde(default)]
    pub started_at: Option<String>,
    /// The host file bound at the container's terminationMessagePath (None: no path).
    #[serde(default)]
    pub termination_log: Option<PathBuf>,
    /// terminationMessagePolicy FallbackToLogsOnError: a failed container that wrote no
    /// message shows the tail of its log instead.
    #[serde(default)]
    pub fallback_to_logs: bool,
    /// The instance's CRI log.
    #[serde(default)]
    pub log: Option<PathBuf>,
}

/// A container instance and, once it ended, its exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceStatus {
    pub record: ContainerRecord,
    pub exit: Option<ExitRecord>,
    /// Once it ended, its termination message (status' `terminated.message`).
    pub message: Option<String>,
}

/// The most of a termination message file read (Kubernetes'
/// MaxContainerTerminationMessageLength), and of a log's tail in its place (the last 80
/// lines, at most 2 KiB).
const MAX_TERMINATION_MESSAGE: u64 = 4 << 10;
const MAX_MESSAGE_LOG_LINES: usize = 80;
const MAX_MESSAGE_LOG_BYTES: usize = 2 << 10;

/// The termination message of an instance that ended, as Kubernetes' kubelet reads it: the
/// last 4 KiB of the file the container wrote at its terminationMessagePath; with
/// FallbackToLogsOnError, a failure that wrote nothing shows the end of its log.
fn termination_message(r: &ContainerRecord, exit: &ExitRecord) -> String {
    let fallback = r.fallback_to_logs && exit.exit_code != 0;
    let mut message = String::new();
    if let Some(path) = &r.termination_log {
        match read_last(path, MAX_TERMINATION_MESSAGE) {
            Ok(data) => message = String::from_utf8_lossy(&data).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return format!("Error on reading termination log {}: {e}", path.display());
            }
        }
    }
    if message.is_empty() && fallback {
        if let Some(log) = &r.log {
            let opts = crate::logs::LogOptions {
                tail_lines: Some(MAX_MESSAGE_LOG_LINES),
                ..Default::default()
            };
            match crate::logs::read(log, &opts) {
                Ok(data) => {
                    let tail = &data[data.len().saturating_sub(MAX_MESSAGE_LOG_BYTES)..];
                    message = String::from_utf8_lossy(tail).into_owned();
                }
                Err(e) => message = format!("Error on reading termination message from logs: {e}"),
            }
        }
    }
    message
}

/// The last `max` bytes of file `path`.
fn read_last(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut out = Vec::new();
    f.take(max).read_to_end(&mut out)?;
    Ok(out)
}

/// What the node has for one pod.
#[derive(Clone, Debug, Default)]
pub struct PodState {
    pub sandbox_ready: bool,
    pub pod_ip: Option<String>,
    /// Instances by container name, oldest first.
    pub containers: BTreeMap<String, Vec<InstanceStatus>>,
}

impl PodState {
    /// The latest instance of each container, as the planner sees it.
    pub fn observed(&self, now: jiff::Timestamp) -> Observed {
        let since = |t: &str| -> Duration {
            t.parse::<jiff::Timestamp>()
                .ok()
                .and_then(|t| Duration::try_from(now.duration_since(t)).ok())
                .unwrap_or_default()
        };
        let instances = self
            .containers
            .iter()
            .filter_map(|(name, list)| {
                let last = list.last()?;
                let state = match &last.exit {
                    None => InstanceState::Running,
                    Some(e) => InstanceState::Exited {
                        code: e.exit_code,
                        ago: since(&e.finished_at),
                        ran: since(&e.started_at).saturating_sub(since(&e.finished_at)),
                    },
                };
                Some((
                    name.clone(),
                    Instance {
                        attempt: last.record.attempt,
                        state,
                        image: last.record.image.clone(),
                        failed_probe: None,
                        started: true,
                    },
                ))
            })
            .collect();
        Observed {
            sandbox_ready: self.sandbox_ready,
            instances,
        }
    }

    /// The latest instance of container `name`.
    pub fn latest(&self, name: &str) -> Option<&InstanceStatus> {
        self.containers.get(name).and_then(|l| l.last())
    }

    /// Instances that run now.
    pub fn running(&self) -> impl Iterator<Item = &InstanceStatus> {
        self.containers
            .values()
            .flatten()
            .filter(|i| i.exit.is_none())
    }
}

/// How long an instance may go without its shim's report before it counts as left by a crash.
const UNREPORTED_GRACE: Duration = Duration::from_secs(120);

/// How long ago file `path` was last written (zero if that cannot be read).
fn age(path: &Path) -> Duration {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default()
}

/// A pod whose containers share one PID namespace (`shareProcessNamespace: true`).
pub fn share_process_namespace(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.share_process_namespace) == Some(true)
}

/// A pod in the node's network namespace (`hostNetwork: true`).
pub fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network) == Some(true)
}

/// The pod's network: its namespace (empty for the node's own) and IP.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkRecord {
    netns: String,
    pod_ip: String,
}

/// Why a container did not start: its waiting reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError {
    pub reason: &'static str,
    pub message: String,
}

impl StartError {
    fn config(message: impl Into<String>) -> Self {
        Self {
            reason: "CreateContainerConfigError",
            message: message.into(),
        }
    }
    fn create(message: impl Into<String>) -> Self {
        Self {
            reason: "CreateContainerError",
            message: message.into(),
        }
    }
}

/// The kubelet's pods on this node.
pub struct PodRuntime {
    pub cfg: RuntimeConfig,
    pub store: Arc<Store>,
}

/// The one-plugin network that brings up the pod's loopback (run as a network of its own, as
/// container runtimes do).
fn loopback_network() -> NetworkConfigList {
    NetworkConfigList {
        cni_version: "1.0.0".into(),
        name: "cni-loopback".into(),
        plugins: vec![serde_json::json!({"type": "loopback"})],
    }
}

fn write_json(path: &Path, v: &impl Serialize) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec(v).map_err(io::Error::other)?)?;
    fs::rename(tmp, path)
}

fn read_json<T: for<'a> Deserialize<'a>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// The start time of process `pid` (clock ticks since boot) if it lives and is not a zombie.
pub fn process_start(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether the recorded process still is the one that was started.
fn alive(pid: Option<i32>, start: Option<u64>) -> bool {
    match (pid, start) {
        (Some(p), Some(s)) if p > 0 => process_start(p) == Some(s),
        _ => false,
    }
}

/// A signal by the names images use (`SIGTERM`, `TERM`, `15`); SIGTERM when unknown.
pub fn parse_signal(s: &str) -> nix::sys::signal::Signal {
    use std::str::FromStr;
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).unwrap_or(nix::sys::signal::SIGTERM);
    }
    let name = if s.starts_with("SIG") {
        s.to_string()
    } else {
        format!("SIG{s}")
    };
    nix::sys::signal::Signal::from_str(&name.to_uppercase()).unwrap_or(nix::sys::signal::SIGTERM)
}

impl PodRuntime {
    pub fn new(cfg: RuntimeConfig, store: Arc<Store>) -> Self {
        Self { cfg, store }
    }

    pub fn pods_dir(&self) -> PathBuf {
        self.cfg.root.join("pods")
    }

    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(uid)
    }

    pub fn state_root(&self) -> PathBuf {
        self.cfg.root.join("containers")
    }

    fn sandbox(&self, uid: &str) -> Sandbox {
        Sandbox::new(&self.pod_dir(uid).join("sandbox"))
    }

    /// The pod's cgroup (relative to the cgroup mounts).
    pub fn pod_cgroup(&self, uid: &str) -> String {
        self.cfg.cgroups.pod_cgroup(uid)
    }

    /// The name of pod `uid`'s network namespace in /run/netns.
    pub fn netns_name(&self, uid: &str) -> String {
        format!("{}-{uid}", self.cfg.netns_prefix)
    }

    /// Where instance `attempt` of container `name` keeps its records (and its shim its
    /// attach socket).
    pub fn instance_dir(&self, uid: &str, name: &str, attempt: u32) -> PathBuf {
        self.pod_dir(uid)
            .join("containers")
            .join(name)
            .join(attempt.to_string())
    }

    /// `<log-dir>/<ns>_<pod>_<uid>`.
    pub fn pod_log_dir(&self, pod: &Pod) -> PathBuf {
        let m = &pod.metadata;
        self.cfg.log_dir.join(format!(
            "{}_{}_{}",
            m.namespace.as_deref().unwrap_or("default"),
            m.name.as_deref().unwrap_or(""),
            m.uid.as_deref().unwrap_or("")
        ))
    }

    /// The UIDs of every pod with state on this node.
    pub fn pod_uids(&self) -> Vec<String> {
        fs::read_dir(self.pods_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    /// The pod as recorded when its sandbox was made.
    pub fn recorded_pod(&self, uid: &str) -> Option<Pod> {
        read_json(&self.pod_dir(uid).join("pod.json"))
    }

    /// Reads back what runs for pod `uid`. Repairs what a crash left half-done on the way: an
    /// instance whose shim never reported is removed (so it is started again), one whose
    /// shim and process vanished without an exit record gets one (`ContainerStatusUnknown`).
    pub fn observe(&self, uid: &str) -> PodState {
        let dir = self.pod_dir(uid);
        let net: Option<NetworkRecord> = read_json(&dir.join("network.json"));
        // A host-network pod's sandbox (no namespace of its own) is ready once recorded.
        let sandbox_ready = net
            .as_ref()
            .is_some_and(|n| n.netns.is_empty() || netns::is_netns(&netns::path(&n.netns)))
            && !self.sandbox(uid).pause_lost();
        let mut containers = BTreeMap::new();
        for c in fs::read_dir(dir.join("containers"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(name) = c.file_name().into_string() else {
                continue;
            };
            let mut attempts: Vec<u32> = fs::read_dir(c.path())
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
            attempts.sort_unstable();
            let mut list = Vec::new();
            for a in attempts {
                let idir = c.path().join(a.to_string());
                let Some(record) = read_json::<ContainerRecord>(&idir.join("container.json"))
                else {
                    let _ = self.discard_instance(&idir);
                    continue;
                };
                if record.pid.is_none() {
                    // Being started right now (this read may run beside the start, for
                    // `kubectl exec` or a target's namespace), or left by a crash: only an
                    // old one is undone. A new start of the same attempt undoes it too.
                    if age(&idir.join("container.json")) > UNREPORTED_GRACE {
                        let _ = self.discard_instance(&idir);
                    }
                    continue;
                }
                let exit_file = idir.join("exit.json");
                let mut exit = shim::read_exit(&exit_file);
                if exit.is_none()
                    && !alive(record.shim_pid, record.shim_start)
                    && !alive(record.pid, record.pid_start)
                {
                    // Read again: the shim may have written it as it exited.
                    exit = shim::read_exit(&exit_file).or_else(|| {
                        let lost = ExitRecord {
                            exit_code: LOST_EXIT_CODE,
                            signal: None,
                            started_at: record.started_at.clone().unwrap_or_default(),
                            finished_at: now_rfc3339_nano(),
                            oom_killed: false,
                        };
                        let _ = write_json(&exit_file, &lost);
                        Some(lost)
                    });
                }
                // Read once, when the end is first seen, and kept beside the exit.
                let message = exit.as_ref().map(|e| {
                    let kept = idir.join("message");
                    fs::read_to_string(&kept).unwrap_or_else(|_| {
                        let m = termination_message(&record, e);
                        let _ = fs::write(&kept, &m);
                        m
                    })
                });
                list.push(InstanceStatus {
                    record,
                    exit,
                    message,
                });
            }
            if !list.is_empty() {
                containers.insert(name, list);
            }
        }
        PodState {
            sandbox_ready,
            pod_ip: net.map(|n| n.pod_ip),
            containers,
        }
    }

    /// Removes every instance of pod `uid` whose shim never reported (before the pod's
    /// directory goes).
    fn discard_unreported(&self, uid: &str) {
        let containers = self.pod_dir(uid).join("containers");
        for c in fs::read_dir(containers).into_iter().flatten().flatten() {
            for i in fs::read_dir(c.path()).into_iter().flatten().flatten() {
                let r = read_json::<ContainerRecord>(&i.path().join("container.json"));
                if r.is_none_or(|r| r.pid.is_none()) {
                    let _ = self.discard_instance(&i.path());
                }
            }
        }
    }

    /// Removes an instance that never started (its rootfs, state and directory).
    fn discard_instance(&self, idir: &Path) -> io::Result<()> {
        if let Some(r) = read_json::<ContainerRecord>(&idir.join("container.json")) {
            self.release_instance(&r);
        }
        fs::remove_dir_all(idir)
    }

    /// Releases what a finished instance holds on the machine (its rootfs mount and
    /// libcontainer state); its records and logs stay for the status and `logs --previous`.
    pub fn release_instance(&self, r: &ContainerRecord) {
        let _ = remove_rootfs(&self.store, &r.id);
        let state = self.state_root().join(&r.id);
        if state.exists() {
            if let Ok(mut c) = libcontainer::container::Container::load(state.clone()) {
                let _ = c.delete(true);
            }
            let _ = fs::remove_dir_all(&state);
        }
    }

    fn attachment(&self, pod: &Pod, uid: &str, ifname: &str) -> Attachment {
        let ports = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.unwrap_or(0) > 0)
            .map(|p| PortMapping {
                host_port: p.host_port.unwrap_or(0) as u16,
                container_port: p.container_port as u16,
                protocol: p
                    .protocol
                    .clone()
                    .unwrap_or_else(|| "TCP".into())
                    .to_lowercase(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
            .collect();
        Attachment {
            container_id: uid.to_string(),
            netns: netns::path(&self.netns_name(uid)),
            ifname: ifname.into(),
            pod_namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            port_mappings: if ifname == "lo" { vec![] } else { ports },
        }
    }

    /// Makes the pod's sandbox: network namespace wired by CNI, UTS/IPC namespaces, /etc
    /// files and volumes. Whatever an earlier attempt left is torn down first. Returns the
    /// pod's IP.
    /// `cluster_dns`: the cluster DNS's address when the kubelet's flags name none (the
    /// kube-dns Service's).
    pub fn create_sandbox(
        &self,
        pod: &Pod,
        volumes: &Desired,
        cluster_dns: Option<String>,
    ) -> Result<String, String> {
        let uid = pod.metadata.uid.as_deref().ok_or("pod has no uid")?;
        let dir = self.pod_dir(uid);
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        // Secrets and tokens are in here: only root passes (Kubernetes keeps its pods
        // directory 0750).
        for d in [self.pods_dir(), dir.clone()] {
            fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o750))
                .map_err(|e| format!("restricting {}: {e}", d.display()))?;
        }
        write_json(&dir.join("pod.json"), pod).map_err(|e| format!("recording pod: {e}"))?;
        let _ = fs::remove_file(dir.join("network.json"));
        self.remove_network(pod, uid);
        let pod_ip = if host_network(pod) {
            // The node's own network (and so its IP): no namespace, no CNI.
            self.cfg.node_ip.clone()
        } else {
            netns::create(&self.netns_name(uid))
                .map_err(|e| format!("creating network namespace: {e}"))?;
            self.cfg
                .cni
                .add(&loopback_network(), &self.attachment(pod, uid, "lo"))
                .map_err(|e| format!("setting up the pod's loopback: {e}"))?;
            let result = self
                .cfg
                .cni
                .add(&self.cfg.network, &self.attachment(pod, uid, "eth0"))
                .map_err(|e| {
                    format!(
                        "plugin type=\"{}\" failed (add): {e}",
                        self.cfg.network.name
                    )
                })?;
            cni::pod_ip(&result).ok_or("the CNI result has no IP address")?
        };
        let mut dns = self.cfg.dns.clone();
        if dns.cluster_dns.is_none() {
            dns.cluster_dns = cluster_dns;
        }
        self.sandbox(uid)
            .create(pod, &pod_ip, &dns)
            .map_err(|e| format!("creating the pod's namespaces and files: {e}"))?;
        if share_process_namespace(pod) {
            self.sandbox(uid)
                .ensure_pause(&self.cfg.exe)
                .map_err(|e| format!("making the pod's process namespace: {e}"))?;
        }
        self.prepare_volumes(pod, uid, volumes)?;
        write_json(
            &dir.join("network.json"),
            &NetworkRecord {
                netns: if host_network(pod) {
                    String::new()
                } else {
                    self.netns_name(uid)
                },
                pod_ip: pod_ip.clone(),
            },
        )
        .map_err(|e| format!("recording the network: {e}"))?;
        Ok(pod_ip)
    }

    /// Gives back the network of a pod whose containers all finished for good (its IP and
    /// namespace; the records stay for the status and logs).
    pub fn release_network(&self, uid: &str) {
        let _ = fs::remove_file(self.pod_dir(uid).join("network.json"));
        self.sandbox(uid).stop_pause();
        if let Some(pod) = self.recorded_pod(uid) {
            self.remove_network(&pod, uid);
        }
        let state = self.observe(uid);
        for i in state.containers.values().flatten() {
            self.release_instance(&i.record);
        }
    }

    fn remove_network(&self, pod: &Pod, uid: &str) {
        let ns = self.netns_name(uid);
        if netns::is_netns(&netns::path(&ns)) {
            let _ = self
                .cfg
                .cni
                .del(&self.cfg.network, &self.attachment(pod, uid, "eth0"));
            let _ = self
                .cfg
                .cni
                .del(&loopback_network(), &self.attachment(pod, uid, "lo"));
        }
        let _ = netns::delete(&ns);
    }

    /// Rewrites the written volumes (configMap, secret, downwardAPI, projected) of a pod whose
    /// sandbox exists, where what they should hold changed.
    pub fn update_volumes(&self, uid: &str, volumes: &Desired) -> Result<(), String> {
        let vdir = self.pod_dir(uid).join("volumes");
        for (name, content) in volumes {
            let dir = vdir.join(name);
            if !dir.is_dir() {
                continue;
            }
            match volumes::write_atomic(&dir, &content.files, content.group) {
                Ok(true) => tracing::info!(uid, volume = %name, "volume updated"),
                Ok(false) => {}
                Err(e) => return Err(format!("volume {name:?}: {e}")),
            }
        }
        Ok(())
    }

    fn prepare_volumes(&self, pod: &Pod, uid: &str, written: &Desired) -> Result<(), String> {
        let vdir = self.pod_dir(uid).join("volumes");
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Some(content) = written.get(&v.name) {
                let p = vdir.join(&v.name);
                fs::create_dir_all(&p).map_err(|e| format!("volume {:?}: {e}", v.name))?;
                if content.memory && !is_mountpoint(&p) {
                    nix::mount::mount(
                        Some("tmpfs"),
                        &p,
                        Some("tmpfs"),
                        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                        Some("mode=0755"),
                    )
                    .map_err(|e| format!("volume {:?}: mounting tmpfs: {e}", v.name))?;
                }
                volumes::write_atomic(&p, &content.files, content.group)
                    .map_err(|e| format!("volume {:?}: writing its files: {e}", v.name))?;
            } else if volumes::is_written(v) {
                return Err(format!("volume {:?}: its contents were not read", v.name));
            } else if let Some(e) = &v.empty_dir {
                let p = vdir.join(&v.name);
                fs::create_dir_all(&p).map_err(|e| format!("volume {:?}: {e}", v.name))?;
                if e.medium.as_deref() == Some("Memory") && !is_mountpoint(&p) {
                    let size = e
                        .size_limit
                        .as_ref()
                        .and_then(super::spec::bytes)
                        .map(|b| format!(",size={b}"))
                        .unwrap_or_default();
                    nix::mount::mount(
                        Some("tmpfs"),
                        &p,
                        Some("tmpfs"),
                        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                        Some(format!("mode=0777{size}").as_str()),
                    )
                    .map_err(|e| format!("volume {:?}: mounting tmpfs: {e}", v.name))?;
                }
                // Writable by every user, as Kubernetes makes it; with an fsGroup, owned by
                // the group and setgid, so what containers make there is the group's.
                let group = volumes::fs_group(pod);
                let mode = if group.is_some() { 0o2777 } else { 0o777 };
                fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .and_then(|_| match group {
                        Some(g) => std::os::unix::fs::chown(&p, None, Some(g)),
                        None => Ok(()),
                    })
                    .map_err(|e| format!("volume {:?}: {e}", v.name))?;
            } else if let Some(h) = &v.host_path {
                let p = Path::new(&h.path);
                let kind = h.type_.as_deref().unwrap_or("");
                let check = match kind {
                    "DirectoryOrCreate" => fs::create_dir_all(p).map_err(|e| e.to_string()),
                    "FileOrCreate" => {
                        if let Some(d) = p.parent() {
                            let _ = fs::create_dir_all(d);
                        }
                        fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(p)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                    "Directory" if !p.is_dir() => Err("is not a directory".into()),
                    "File" if !p.is_file() => Err("is not a file".into()),
                    "Socket" | "CharDevice" | "BlockDevice" if !p.exists() => {
                        Err("does not exist".into())
                    }
                    _ => Ok(()),
                };
                check.map_err(|e| {
                    format!(
                        "MountVolume.SetUp failed for volume {:?} : hostPath type check failed: {} {e}",
                        v.name, h.path
                    )
                })?;
            } else {
                return Err(format!(
                    "volume {:?}: only emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes are supported by tinykube",
                    v.name
                ));
            }
        }
        Ok(())
    }

    /// The bind mounts of container `c`: its volumes, then the pod's /etc files.
    fn mounts(&self, pod: &Pod, uid: &str, c: &Container) -> Result<Vec<BindMount>, StartError> {
        let vdir = self.pod_dir(uid).join("volumes");
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
        let mut out = Vec::new();
        for (index, m) in c.volume_mounts.iter().flatten().enumerate() {
            let v = volumes
                .and_then(|vs| vs.iter().find(|v| v.name == m.name))
                .ok_or_else(|| {
                    StartError::config(format!("cannot find volume {:?} to mount", m.name))
                })?;
            let written = volumes::is_written(v);
            let mut source = if v.empty_dir.is_some() || written {
                vdir.join(&v.name)
            } else if let Some(h) = &v.host_path {
                PathBuf::from(&h.path)
            } else {
                return Err(StartError::config(format!(
                    "volume {:?} has an unsupported type",
                    v.name
                )));
            };
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                if Path::new(sub).is_absolute() || sub.split('/').any(|p| p == "..") {
                    return Err(StartError::config(format!(
                        "subPath {sub:?} must be a relative path without '..'"
                    )));
                }
                if written {
                    // A key of a ConfigMap or Secret: bound as it is now (a subPath mount
                    // sees no updates, as in Kubernetes).
                    source = fs::canonicalize(source.join(sub)).map_err(|e| {
                        StartError::config(format!("subPath {sub:?} of volume {:?}: {e}", v.name))
                    })?;
                } else {
                    // A directory containers write to: resolved without following anything
                    // out of the volume, and bound as resolved.
                    let target = self
                        .pod_dir(uid)
                        .join("volume-subpaths")
                        .join(&v.name)
                        .join(&c.name)
                        .join(index.to_string());
                    super::subpath::bind(&source, sub, &target).map_err(|e| {
                        tracing::warn!(container = %c.name, volume = %v.name, error = %e, "preparing a subPath");
                        StartError::config(format!(
                            "failed to prepare subPath for volumeMount {:?} of container {:?}",
                            m.name, c.name
                        ))
                    })?;
                    source = target;
                }
            }
            out.push(BindMount {
                destination: m.mount_path.clone(),
                source,
                // configMap, secret, downwardAPI and projected volumes are always read-only.
                read_only: m.read_only == Some(true) || written,
            });
        }
        let sandbox = self.sandbox(uid);
        for f in ["hosts", "hostname", "resolv.conf"] {
            let dest = format!("/etc/{f}");
            if !out.iter().any(|m| m.destination == dest) {
                out.push(BindMount {
                    destination: dest,
                    source: sandbox.etc(f),
                    read_only: false,
                });
            }
        }
        Ok(out)
    }

    /// The PID namespace container `name` joins: the pod's shared one
    /// (`shareProcessNamespace`), else an ephemeral container's target's (`kubectl debug
    /// --target`), which must run; None: one of its own.
    fn pidns(&self, pod: &Pod, uid: &str, name: &str) -> Result<Option<PathBuf>, StartError> {
        if share_process_namespace(pod) {
            return match self.sandbox(uid).pause() {
                Some(pid) => Ok(Some(PathBuf::from(format!("/proc/{pid}/ns/pid")))),
                None => Err(StartError::create("the pod's process namespace is gone")),
            };
        }
        self.target_pidns(pod, uid, name)
    }

    fn target_pidns(
        &self,
        pod: &Pod,
        uid: &str,
        name: &str,
    ) -> Result<Option<PathBuf>, StartError> {
        let target = super::plan::ephemeral_containers(pod)
            .into_iter()
            .find(|(c, _)| c.name == name)
            .and_then(|(_, t)| t);
        let Some(target) = target else {
            return Ok(None);
        };
        let state = self.observe(uid);
        let running = state
            .latest(&target)
            .filter(|i| i.exit.is_none() && alive(i.record.pid, i.record.pid_start))
            .and_then(|i| i.record.pid);
        match running {
            Some(pid) => Ok(Some(PathBuf::from(format!("/proc/{pid}/ns/pid")))),
            None => Err(StartError::create(format!(
                "the target container {target:?} is not running"
            ))),
        }
    }

    /// Prepares instance `attempt` of container `c` and starts its shim. Returns the record
    /// and the shim process (the caller waits for it).
    pub fn start_container(
        &self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
        image: &ImageRecord,
        resolved_env: BTreeMap<String, String>,
        service_env: Vec<(String, String)>,
    ) -> Result<(ContainerRecord, std::process::Child), StartError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let idir = self.instance_dir(&uid, &c.name, attempt);
        if idir.exists() {
            let _ = self.discard_instance(&idir);
        }
        fs::create_dir_all(&idir).map_err(|e| StartError::create(e.to_string()))?;
        let id = {
            let mut h = Sha256::new();
            h.update(format!("{uid}/{}/{attempt}/{}", c.name, now_rfc3339_nano()));
            hex::encode(h.finalize())
        };
        let config_blob = self
            .store
            .read_blob(&image.id)
            .map_err(|e| StartError::create(format!("reading image config: {e}")))?;
        let image_config = ImageConfig::from_blob(&config_blob);
        let mut record = ContainerRecord {
            id: id.clone(),
            name: c.name.clone(),
            attempt,
            image: c.image.clone().unwrap_or_default(),
            image_id: image.id.clone(),
            image_ref: image
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_else(|| image.id.clone()),
            stop_signal: image_config.stop_signal.clone(),
            pid: None,
            pid_start: None,
            shim_pid: None,
            shim_start: None,
            started_at: None,
            termination_log: None,
            fallback_to_logs: c.termination_message_policy.as_deref()
                == Some("FallbackToLogsOnError"),
            log: Some(
                self.pod_log_dir(pod)
                    .join(&c.name)
                    .join(format!("{attempt}.log")),
            ),
        };
        // The file the container may leave its termination message in (world-writable, as
        // Kubernetes makes it, so any user of the container can write it).
        let message_path = c.termination_message_path.clone().filter(|p| !p.is_empty());
        if message_path.is_some() {
            let path = idir.join("termination-log");
            fs::write(&path, b"")
                .and_then(|_| {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o666))
                })
                .map_err(|e| StartError::create(format!("termination message file: {e}")))?;
            record.termination_log = Some(path);
        }
        // Recorded before anything is made, so a crash at any point leaves a trail to undo.
        write_json(&idir.join("container.json"), &record)
            .map_err(|e| StartError::create(e.to_string()))?;
        let fail = |e: StartError| {
            self.release_instance(&record);
            let _ = fs::remove_dir_all(&idir);
            e
        };
        let rootfs = mount_rootfs(&self.store, &id, image)
            .map_err(|e| fail(StartError::create(format!("preparing rootfs: {e}"))))?;
        let mut mounts = self.mounts(pod, &uid, c).map_err(&fail)?;
        if let (Some(dest), Some(source)) = (message_path, record.termination_log.clone()) {
            mounts.push(BindMount {
                destination: dest,
                source,
                read_only: false,
            });
        }
        let net: Option<NetworkRecord> = read_json(&self.pod_dir(&uid).join("network.json"));
        let sandbox = self.sandbox(&uid);
        let inputs = Inputs {
            passwd: fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default(),
            group: fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default(),
            rootfs,
            netns: netns::path(&self.netns_name(&uid)),
            host_network: host_network(pod),
            pidns: self.pidns(pod, &uid, &c.name).map_err(&fail)?,
            utsns: Some(sandbox.uts()),
            ipcns: Some(sandbox.ipc()),
            mounts,
            cgroups_path: self.cfg.cgroups.cgroups_path(&uid, &id),
            pod_ip: net.map(|n| n.pod_ip).unwrap_or_default(),
            host_ip: self.cfg.node_ip.clone(),
            node_name: self.cfg.node_name.clone(),
            resolved_env,
            service_env,
            pids_limit: self.cfg.pids_limit,
            seccomp_dir: self.cfg.root.join("seccomp"),
        };
        let spec = container_spec(pod, c, &image_config, &inputs).map_err(|e| {
            fail(match e {
                SpecError::Seccomp(_) | SpecError::Invalid(_) => StartError::create(e.to_string()),
                _ => StartError::config(e.to_string()),
            })
        })?;
        fs::write(
            idir.join("config.json"),
            serde_json::to_vec(&spec).expect("spec serialises"),
        )
        .map_err(|e| fail(StartError::create(e.to_string())))?;
        let args = ShimArgs {
            id: id.clone(),
            bundle: idir.clone(),
            state_root: self.state_root(),
            log: record.log.clone().unwrap_or_default(),
            exit_file: idir.join("exit.json"),
            log_max_size: self.cfg.log_max_size,
            log_max_files: self.cfg.log_max_files,
            systemd_cgroup: self.cfg.cgroups.driver == cgroups::Driver::Systemd,
            stdin: c.stdin == Some(true),
            stdin_once: c.stdin_once == Some(true),
            tty: c.tty == Some(true),
        };
        let (report, child) = shim::spawn(&self.cfg.exe, &args)
            .map_err(|e| fail(StartError::create(format!("starting the shim: {e}"))))?;
        if let Some(e) = report.error {
            let mut child = child;
            let _ = child.wait();
            return Err(fail(StartError {
                reason: "RunContainerError",
                message: e,
            }));
        }
        record.pid = report.pid;
        record.pid_start = report.pid.and_then(process_start);
        record.shim_pid = Some(child.id() as i32);
        record.shim_start = process_start(child.id() as i32);
        record.started_at = report.started_at;
        write_json(&idir.join("container.json"), &record)
            .map_err(|e| StartError::create(e.to_string()))?;
        Ok((record, child))
    }

    /// Sends `signal` to a running instance's init process (no-op if it is gone).
    pub fn signal(&self, r: &ContainerRecord, signal: nix::sys::signal::Signal) {
        if alive(r.pid, r.pid_start) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(r.pid.unwrap_or(0)), signal);
        }
    }

    /// Whether the instance's exit is recorded (or nothing of it runs any more).
    pub fn has_exited(&self, uid: &str, r: &ContainerRecord) -> bool {
        self.instance_dir(uid, &r.name, r.attempt)
            .join("exit.json")
            .exists()
            || (!alive(r.shim_pid, r.shim_start) && !alive(r.pid, r.pid_start))
    }

    /// Tears the pod down: network (CNI DEL), namespaces, volumes, cgroups, rootfs mounts,
    /// logs and records. The containers must have stopped.
    pub fn remove_sandbox(&self, uid: &str) -> Result<(), String> {
        self.discard_unreported(uid);
        let state = self.observe(uid);
        for i in state.containers.values().flatten() {
            self.release_instance(&i.record);
        }
        let pod = self.recorded_pod(uid);
        if let Some(pod) = &pod {
            self.remove_network(pod, uid);
            let vdir = self.pod_dir(uid).join("volumes");
            for e in fs::read_dir(&vdir).into_iter().flatten().flatten() {
                if is_mountpoint(&e.path()) {
                    let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
                }
            }

            let _ = fs::remove_dir_all(self.pod_log_dir(pod));
        } else {
            let _ = netns::delete(&self.netns_name(uid));
        }
        // A subPath bind still in place would lead the removal into its volume.
        super::subpath::unbind_all(&self.pod_dir(uid).join("volume-subpaths"))?;
        self.sandbox(uid)
            .remove()
            .map_err(|e| format!("removing the pod's namespaces: {e}"))?;
        self.cfg.cgroups.remove_pod(uid);
        fs::remove_dir_all(self.pod_dir(uid))
            .or_else(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| format!("removing the pod's directory: {e}"))
    }

    /// Keeps the latest two instances of each container (the running one and the one before,
    /// for lastState and `logs --previous`); older ones go, with their logs.
    pub fn prune_instances(&self, pod: &Pod, state: &PodState) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        for (name, list) in &state.containers {
            for (n, i) in list.iter().enumerate() {
                if i.exit.is_some() {
                    self.release_instance(&i.record);
                }
                if n + 2 < list.len() {
                    let _ = fs::remove_dir_all(self.instance_dir(&uid, name, i.record.attempt));
                    let _ = fs::remove_file(
                        self.pod_log_dir(pod)
                            .join(name)
                            .join(format!("{}.log", i.record.attempt)),
                    );
                }
            }
        }
    }

    /// Kills everything of pod `uid` at once (SIGKILL to every process in its cgroup and
    /// every recorded shim), for `cleanup` and for orphans.
    pub fn kill_all(&self, uid: &str) {
        let state = self.observe(uid);
        for i in state.containers.values().flatten() {
            let r = &i.record;
            self.signal(r, nix::sys::signal::SIGKILL);
        }
        for pid in cgroups::procs(&self.pod_cgroup(uid)) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        self.sandbox(uid).stop_pause();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(dir: &Path, fallback: bool) -> ContainerRecord {
        ContainerRecord {
            id: "c1".into(),
            name: "app".into(),
            attempt: 0,
            image: "img:1".into(),
            image_id: "sha256:c".into(),
            image_ref: "img@sha256:m".into(),
            stop_signal: String::new(),
            pid: None,
            pid_start: None,
            shim_pid: None,
            shim_start: None,
            started_at: None,
            termination_log: Some(dir.join("termination-log")),
            fallback_to_logs: fallback,
            log: Some(dir.join("0.log")),
        }
    }

    fn exit(code: i32) -> ExitRecord {
        ExitRecord {
            exit_code: code,
            signal: None,
            started_at: String::new(),
            finished_at: String::new(),
            oom_killed: false,
        }
    }

    #[test]
    fn termination_messages_read_as_kubernetes_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let log: String = (1..=100)
            .map(|n| format!("2026-12-07T10:00:00.000000000Z stderr F line {n}\n"))
            .collect();
        fs::write(dir.path().join("0.log"), log).unwrap();
        // No file, or an empty one: nothing, unless a failure falls back to the log.
        assert_eq!(
            termination_message(&record(dir.path(), false), &exit(1)),
            ""
        );
        fs::write(dir.path().join("termination-log"), "").unwrap();
        assert_eq!(termination_message(&record(dir.path(), true), &exit(0)), "");
        let tail = termination_message(&record(dir.path(), true), &exit(2));
        assert!(tail.starts_with("line 21\n"), "{tail}");
        assert!(tail.ends_with("line 100\n"), "{tail}");
        // The file wins; only its last 4 KiB are kept.
        fs::write(dir.path().join("termination-log"), "x".repeat(5000) + "end").unwrap();
        let m = termination_message(&record(dir.path(), true), &exit(2));
        assert_eq!(m.len(), 4096);
        assert!(m.ends_with("end"));
    }
}
