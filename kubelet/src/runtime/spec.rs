//! The OCI runtime spec of a pod's container: a pure function of the PodSpec, the image's
//! config and what the kubelet prepared (rootfs, the pod's namespaces, mounts, cgroup).
//! Written as the JSON of `config.json` and checked by parsing it as oci-spec's `Spec`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use serde_json::{json, Value};
use tinykube_machinery::Quantity;

/// The parts of an image config a container needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value`.
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub stop_signal: String,
}

impl ImageConfig {
    /// From an image config blob (its `config` object).
    pub fn from_blob(blob: &[u8]) -> Self {
        let v: Value = serde_json::from_slice(blob).unwrap_or(Value::Null);
        let c = &v["config"];
        let list = |k: &str| -> Vec<String> {
            c[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = |k: &str| c[k].as_str().unwrap_or("").to_string();
        Self {
            entrypoint: list("Entrypoint"),
            cmd: list("Cmd"),
            env: list("Env"),
            working_dir: text("WorkingDir"),
            user: text("User"),
            stop_signal: text("StopSignal"),
        }
    }
}

/// A bind mount the kubelet prepared (a volume, /etc/hosts, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    pub destination: String,
    pub source: PathBuf,
    pub read_only: bool,
}

/// Everything besides the pod and the container that the spec depends on.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub rootfs: PathBuf,
    /// The pod's shared namespaces, by path (network, UTS and IPC).
    pub netns: PathBuf,
    /// `hostNetwork: true`: the node's network and UTS namespaces (no `netns`, no hostname).
    pub host_network: bool,
    /// A PID namespace to join (an ephemeral container's target's); None: a new one.
    pub pidns: Option<PathBuf>,
    pub utsns: Option<PathBuf>,
    pub ipcns: Option<PathBuf>,
    pub mounts: Vec<BindMount>,
    /// cgroupsPath for libcontainer (`/tinykube/pod<uid>/<container id>`).
    pub cgroups_path: String,
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
    /// Values of env vars from configMapKeyRef/secretKeyRef, resolved by the caller:
    /// (env var name → value). A name missing here has no value.
    pub resolved_env: BTreeMap<String, String>,
    /// The Services' variables ([`service_env`]).
    pub service_env: Vec<(String, String)>,
    /// `/etc/passwd` and `/etc/group` of the rootfs, to resolve a user name in the image.
    pub passwd: String,
    pub group: String,
    pub pids_limit: Option<i64>,
    /// Where Localhost seccomp profiles are (`<root-dir>/seccomp`, as the kubelet's).
    pub seccomp_dir: PathBuf,
}

/// The sysctls Kubernetes deems safe (namespaced, and isolated from the node): a pod may set
/// them without the node allowing more.
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// A sysctl name with `/` separators written with dots, as Kubernetes reads both.
fn sysctl_name(n: &str) -> String {
    if n.contains('/') {
        n.replace('/', ".")
    } else {
        n.to_string()
    }
}

/// Why the node refuses pod `pod` (Kubernetes' sysctl admission: reason and message), if it
/// asks for a sysctl that is not safe.
pub fn forbidden_sysctl(pod: &Pod) -> Option<String> {
    let sysctls = pod
        .spec
        .as_ref()?
        .security_context
        .as_ref()?
        .sysctls
        .as_ref()?;
    sysctls
        .iter()
        .map(|s| sysctl_name(&s.name))
        .find(|n| !SAFE_SYSCTLS.contains(&n.as_str()))
        .map(|n| format!("forbidden sysctl: \"{n}\" not allowlisted"))
}

/// The seccomp profile of container `c`: its own securityContext's, else the pod's; none
/// given is RuntimeDefault (tinykube confines by default, as the kubelet's SeccompDefault).
/// None: Unconfined.
pub fn seccomp(pod: &Pod, c: &Container, inputs: &Inputs) -> Result<Option<Value>, SpecError> {
    let profile = c
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| {
            pod.spec
                .as_ref()?
                .security_context
                .as_ref()?
                .seccomp_profile
                .as_ref()
        });
    match profile.map(|p| p.type_.as_str()) {
        Some("Unconfined") => Ok(None),
        Some("Localhost") => {
            let rel = profile
                .and_then(|p| p.localhost_profile.as_deref())
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    SpecError::Seccomp(
                        "localhostProfile must be set if seccompProfile type is Localhost.".into(),
                    )
                })?;
            let path = inputs.seccomp_dir.join(rel);
            let cannot = |why: String| {
                SpecError::Seccomp(format!(
                    "failed to generate seccomp spec opts: cannot load seccomp profile {:?}: {why}",
                    path.display().to_string()
                ))
            };
            if std::path::Path::new(rel).is_absolute() || rel.split('/').any(|p| p == "..") {
                return Err(cannot(
                    "the profile must be a path inside the seccomp directory".into(),
                ));
            }
            let data = std::fs::read(&path).map_err(|e| cannot(e.to_string()))?;
            let v: Value = serde_json::from_slice(&data).map_err(|e| cannot(e.to_string()))?;
            serde_json::from_value::<libcontainer::oci_spec::runtime::LinuxSeccomp>(v.clone())
                .map_err(|e| cannot(e.to_string()))?;
            Ok(Some(v))
        }
        _ => Ok(Some(seccomp_profile())),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("container has no command: the image has no entrypoint or cmd and the pod gives none")]
    NoCommand,
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    #[error("invalid spec: {0}")]
    Invalid(String),
    /// The pod's security policy refuses the container (runAsNonRoot), in Kubernetes' words.
    #[error("{0}")]
    Refused(String),
    /// A Localhost seccomp profile that cannot be read.
    #[error("{0}")]
    Seccomp(String),
}

/// Kubernetes' (containerd's) default capability set for containers.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability (for privileged containers and `add: [ALL]`).
const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths masked from containers (containerd's defaults).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths read-only in containers (containerd's defaults).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The RuntimeDefault seccomp profile, as a deny list: syscalls that are dangerous in a
/// container (kernel modules, keyrings, clocks, reboot, namespaces and mounts, BPF, perf,
/// handle-based opens, ptrace of other processes' memory) fail with EPERM; `clone` may not
/// make a user namespace; `clone3` answers ENOSYS so libc falls back to `clone`. Docker's and
/// containerd's profile is an allow list of ~350 syscalls with the same effect on these.
const DENIED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fanotify_init",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "personality",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "_sysctl",
    "syslog",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

const CLONE_NEWUSER: u64 = 0x1000_0000;

fn seccomp_profile() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": DENIED_SYSCALLS, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM},
            {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM,
             "args": [{"index": 0, "value": CLONE_NEWUSER, "valueTwo": CLONE_NEWUSER, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS},
        ]
    })
}

/// Kubernetes' rule for what runs: `command` replaces the image's entrypoint (and drops its
/// cmd), `args` replaces its cmd; `$(VAR)` in either is expanded from the container's env.
pub fn command_line(
    container: &Container,
    image: &ImageConfig,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, SpecError> {
    let expand = |v: &Vec<String>| v.iter().map(|s| expand_vars(s, env)).collect::<Vec<_>>();
    let command = container.command.as_ref().filter(|c| !c.is_empty());
    let args = container.args.as_ref().filter(|a| !a.is_empty());
    let out = match (command, args) {
        (Some(c), Some(a)) => [expand(c), expand(a)].concat(),
        (Some(c), None) => expand(c),
        (None, Some(a)) => [image.entrypoint.clone(), expand(a)].concat(),
        (None, None) => [image.entrypoint.clone(), image.cmd.clone()].concat(),
    };
    if out.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(out)
}

/// Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`,
/// anything else is left as written.
pub fn expand_vars(s: &str, env: &BTreeMap<String, String>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            match b[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = s[i + 2..].find(')') {
                        let name = &s[i + 2..i + 2 + end];
                        if let Some(v) = env.get(name) {
                            out.push_str(v);
                            i += 3 + end;
                            continue;
                        }
                    }
                }
                _ => {}
            }
        }
        let ch = s[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The variables Kubernetes gives every container for the Services it can reach, as Docker
/// links had them: the `kubernetes` Service of `default` always, and with
/// `enableServiceLinks` (the default) every Service of the pod's namespace that has a cluster
/// IP: `WEB_SERVICE_HOST`, `WEB_SERVICE_PORT`, `WEB_SERVICE_PORT_<NAME>`, `WEB_PORT`,
/// `WEB_PORT_8080_TCP`, `…_PROTO`, `…_PORT`, `…_ADDR`. A Service of the pod's namespace wins
/// over `default`'s of the same name.
pub fn service_env(
    services: &[k8s_openapi::api::core::v1::Service],
    namespace: &str,
    links: bool,
) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<String, &k8s_openapi::api::core::v1::Service> = BTreeMap::new();
    for s in services {
        let ns = s.metadata.namespace.as_deref().unwrap_or_default();
        let name = s.metadata.name.clone().unwrap_or_default();
        let ip = s.spec.as_ref().and_then(|sp| sp.cluster_ip.as_deref());
        if matches!(ip, None | Some("") | Some("None")) {
            continue;
        }
        let wanted = (ns == namespace && links) || (ns == "default" && name == "kubernetes");
        if wanted && (ns == namespace || !chosen.contains_key(&name)) {
            chosen.insert(name, s);
        }
    }
    let mut out = Vec::new();
    for (name, s) in chosen {
        let spec = s.spec.as_ref().expect("checked above");
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let prefix = name.to_uppercase().replace('-', "_");
        let ports = spec.ports.as_deref().unwrap_or_default();
        out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        let Some(first) = ports.first() else { continue };
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for p in ports {
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                let n = n.to_uppercase().replace('-', "_");
                out.push((format!("{prefix}_SERVICE_PORT_{n}"), p.port.to_string()));
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.clone().unwrap_or_else(|| "TCP".into())
        };
        out.push((
            format!("{prefix}_PORT"),
            format!("{}://{ip}:{}", proto(first).to_lowercase(), first.port),
        ));
        for p in ports {
            let stem = format!("{prefix}_PORT_{}_{}", p.port, proto(p).to_uppercase());
            out.push((
                stem.clone(),
                format!("{}://{ip}:{}", proto(p).to_lowercase(), p.port),
            ));
            out.push((format!("{stem}_PROTO"), proto(p).to_lowercase()));
            out.push((format!("{stem}_PORT"), p.port.to_string()));
            out.push((format!("{stem}_ADDR"), ip.clone()));
        }
    }
    out
}

/// The container's environment in order: the image's, then the container's (a later
/// definition of a name replaces an earlier one), then the Services' the container does not
/// define itself, with `$(VAR)` expanded from the container variables defined before it
/// and the Services'.
pub fn environment(
    pod: &Pod,
    container: &Container,
    image: &ImageConfig,
    inputs: &Inputs,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(e) = out.iter_mut().find(|(n, _)| *n == k) {
            e.1 = v;
        } else {
            out.push((k, v));
        }
    };
    for e in &image.env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        set(&mut out, k.into(), v.into());
    }
    let mut defined: BTreeMap<String, String> = inputs.service_env.iter().cloned().collect();
    let mut own: Vec<&str> = Vec::new();
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.iter().flatten()
    {
        let v = match (value, value_from) {
            (Some(v), _) => Some(expand_vars(v, &defined)),
            (None, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    field_value(pod, &f.field_path, inputs)
                } else {
                    inputs.resolved_env.get(name).cloned()
                }
            }
            (None, None) => Some(String::new()),
        };
        if let Some(v) = v {
            defined.insert(name.clone(), v.clone());
            own.push(name);
            set(&mut out, name.clone(), v);
        }
    }
    for (k, v) in &inputs.service_env {
        if !own.contains(&k.as_str()) {
            set(&mut out, k.clone(), v.clone());
        }
    }
    if !out.iter().any(|(k, _)| k == "HOSTNAME") {
        let host = pod.metadata.name.clone().unwrap_or_default();
        out.push(("HOSTNAME".into(), host));
    }
    out
}

fn field_value(pod: &Pod, path: &str, inputs: &Inputs) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    Some(match path {
        "metadata.name" => m.name.clone()?,
        "metadata.namespace" => m.namespace.clone()?,
        "metadata.uid" => m.uid.clone()?,
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| inputs.node_name.clone()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => inputs.pod_ip.clone(),
        "status.hostIP" => inputs.host_ip.clone(),
        p => {
            // metadata.labels['key'] / metadata.annotations['key']
            let (map, key) = if let Some(k) = p.strip_prefix("metadata.labels['") {
                (m.labels.as_ref(), k)
            } else if let Some(k) = p.strip_prefix("metadata.annotations['") {
                (m.annotations.as_ref(), k)
            } else {
                return None;
            };
            map?.get(key.strip_suffix("']")?)?.clone()
        }
    })
}

/// uid and gid: the container's securityContext, the pod's, else the image's User (a name
/// or number, `user[:group]`), else root.
pub fn user(
    pod: &Pod,
    container: &Container,
    image: &ImageConfig,
    inputs: &Inputs,
) -> Result<(u32, u32), SpecError> {
    let csc = container.security_context.as_ref();
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let run_as_user = csc
        .and_then(|c| c.run_as_user)
        .or(psc.and_then(|p| p.run_as_user));
    let run_as_group = csc
        .and_then(|c| c.run_as_group)
        .or(psc.and_then(|p| p.run_as_group));
    let (img_user, img_group) = match image.user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image.user.as_str(), None),
    };
    let lookup = |file: &str, name: &str| -> Option<(u32, u32)> {
        file.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == name)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
    };
    let (uid, mut gid) = match run_as_user {
        Some(u) => (
            u as u32,
            lookup_gid_of_uid(&inputs.passwd, u as u32).unwrap_or(0),
        ),
        None if img_user.is_empty() => (0, 0),
        None => match img_user.parse::<u32>() {
            Ok(u) => (u, lookup_gid_of_uid(&inputs.passwd, u).unwrap_or(0)),
            Err(_) => lookup(&inputs.passwd, img_user)
                .ok_or_else(|| SpecError::UnknownUser(img_user.into()))?,
        },
    };
    if let Some(g) = img_group.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(g) => g,
            Err(_) => inputs
                .group
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 3 && f[0] == g).then(|| f[2].parse().ok())?
                })
                .ok_or_else(|| SpecError::UnknownGroup(g.into()))?,
        };
    }
    if let Some(g) = run_as_group {
        gid = g as u32;
    }
    // runAsNonRoot, as Kubernetes' kubelet verifies it before it creates the container.
    let non_root = csc
        .and_then(|c| c.run_as_non_root)
        .or(psc.and_then(|p| p.run_as_non_root))
        == Some(true);
    if non_root {
        let who = format!(
            "(pod: \"{}\", container: {})",
            crate::lifecycle::pod_desc(pod),
            container.name
        );
        match run_as_user {
            Some(0) => {
                return Err(SpecError::Refused(format!(
                    "container's runAsUser breaks non-root policy {who}"
                )))
            }
            Some(_) => {}
            None if img_user.is_empty() || img_user.parse::<u32>() == Ok(0) => {
                return Err(SpecError::Refused(format!(
                    "container has runAsNonRoot and image will run as root {who}"
                )))
            }
            None if img_user.parse::<u32>().is_err() => {
                return Err(SpecError::Refused(format!(
                    "container has runAsNonRoot and image has non-numeric user ({img_user}), cannot verify user is non-root {who}"
                )))
            }
            None => {}
        }
    }
    Ok((uid, gid))
}

/// The groups besides the primary one: those the image's /etc/group lists the user in (as
/// containerd merges them), then the pod's fsGroup and supplementalGroups.
pub fn additional_gids(pod: &Pod, uid: u32, gid: u32, inputs: &Inputs) -> Vec<u32> {
    let name = inputs.passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
    });
    let mut out: Vec<u32> = Vec::new();
    if let Some(name) = name {
        for l in inputs.group.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse() {
                    out.push(g);
                }
            }
        }
    }
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    if let Some(g) = psc.and_then(|p| p.fs_group) {
        out.push(g as u32);
    }
    for g in psc
        .and_then(|p| p.supplemental_groups.as_ref())
        .into_iter()
        .flatten()
    {
        out.push(*g as u32);
    }
    let mut seen = std::collections::BTreeSet::from([gid]);
    out.retain(|g| seen.insert(*g));
    out
}

fn lookup_gid_of_uid(passwd: &str, uid: u32) -> Option<u32> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[3].parse().ok())?
    })
}

/// Capabilities after privileged / add / drop (`ALL` works in both, as in Kubernetes).
pub fn capabilities(container: &Container) -> Vec<String> {
    let sc = container.security_context.as_ref();
    if sc.and_then(|s| s.privileged) == Some(true) {
        return ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    }
    let norm = |c: &String| {
        let c = c.to_ascii_uppercase();
        if c.starts_with("CAP_") || c == "ALL" {
            c
        } else {
            format!("CAP_{c}")
        }
    };
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let add: Vec<String> = caps
        .and_then(|c| c.add.as_ref())
        .into_iter()
        .flatten()
        .map(norm)
        .collect();
    let drop: Vec<String> = caps
        .and_then(|c| c.drop.as_ref())
        .into_iter()
        .flatten()
        .map(norm)
        .collect();
    let mut set: Vec<String> = if add.iter().any(|c| c == "ALL") {
        ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect()
    } else {
        let mut s: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
        for a in add {
            if !s.contains(&a) {
                s.push(a);
            }
        }
        s
    };
    if drop.iter().any(|c| c == "ALL") {
        set.clear();
    } else {
        set.retain(|c| !drop.contains(c));
    }
    set
}

/// Memory, CPU and pids limits: CPU limit → CFS quota over a 100 ms period, CPU request →
/// shares (1024 per core, at least 2), memory limit → bytes.
pub fn resources(container: &Container, pids_limit: Option<i64>) -> Value {
    let r = container.resources.as_ref();
    let millis = |q: &ApiQuantity| quantity(q).map(|q| clamp(q.milli_value()));
    let limit_cpu = r
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("cpu"))
        .and_then(millis);
    let request_cpu = r
        .and_then(|r| r.requests.as_ref())
        .and_then(|l| l.get("cpu"))
        .and_then(millis)
        .or(limit_cpu);
    let memory = r
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .and_then(bytes);
    let mut out = json!({});
    let shares = request_cpu.map_or(2, |m| (m * 1024 / 1000).max(2));
    let mut cpu = json!({"shares": shares});
    if let Some(l) = limit_cpu {
        cpu["period"] = json!(100_000u64);
        cpu["quota"] = json!((l * 100_000 / 1000).max(1000));
    }
    out["cpu"] = cpu;
    if let Some(m) = memory {
        out["memory"] = json!({"limit": m});
    }
    if let Some(p) = pids_limit.filter(|p| *p > 0) {
        out["pids"] = json!({"limit": p});
    }
    out["devices"] = json!([{"allow": false, "access": "rwm"}]);
    out
}

type ApiQuantity = k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// An API quantity (the apiserver has validated it; one that still does not parse counts as
/// unset).
fn quantity(q: &ApiQuantity) -> Option<Quantity> {
    Quantity::parse(&q.0).ok()
}

fn clamp(v: i128) -> i64 {
    v.clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

/// A quantity of bytes as Kubernetes' `Value()` gives it: exact (`1Pi` is 2^50), fractions
/// rounded up (`500m` is 1 byte).
pub fn bytes(q: &ApiQuantity) -> Option<i64> {
    quantity(q).map(|q| clamp(q.value()))
}

/// The whole `config.json` for one container of a pod.
pub fn container_spec(
    pod: &Pod,
    container: &Container,
    image: &ImageConfig,
    inputs: &Inputs,
) -> Result<Value, SpecError> {
    let env = environment(pod, container, image, inputs);
    let env_map: BTreeMap<String, String> = env.iter().cloned().collect();
    let args = command_line(container, image, &env_map)?;
    let (uid, gid) = user(pod, container, image, inputs)?;
    let sc = container.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged) == Some(true);
    let caps = capabilities(container);
    let cwd = container
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(image.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let no_new_privs = !privileged && sc.and_then(|s| s.allow_privilege_escalation) != Some(true);
    let read_only_root = sc.and_then(|s| s.read_only_root_filesystem) == Some(true);
    let hostname = pod.metadata.name.clone().unwrap_or_default();

    let mut namespaces = vec![
        match &inputs.pidns {
            Some(p) => json!({"type": "pid", "path": p}),
            None => json!({"type": "pid"}),
        },
        json!({"type": "mount"}),
    ];
    if !inputs.host_network {
        namespaces.push(json!({"type": "network", "path": inputs.netns}));
        namespaces.push(match &inputs.utsns {
            Some(p) => json!({"type": "uts", "path": p}),
            None => json!({"type": "uts"}),
        });
    }
    namespaces.push(match &inputs.ipcns {
        Some(p) => json!({"type": "ipc", "path": p}),
        None => json!({"type": "ipc"}),
    });
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for m in &inputs.mounts {
        let mut options = vec!["rbind", "rprivate"];
        options.push(if m.read_only { "ro" } else { "rw" });
        mounts.push(json!({"destination": m.destination, "type": "bind", "source": m.source, "options": options}));
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": inputs.cgroups_path,
        "resources": resources(container, inputs.pids_limit),
    });
    if !privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        if let Some(profile) = seccomp(pod, container, inputs)? {
            linux["seccomp"] = profile;
        }
    }
    let sysctls: BTreeMap<String, String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (sysctl_name(&s.name), s.value.clone()))
        .collect();
    if !sysctls.is_empty() {
        linux["sysctl"] = json!(sysctls);
    }
    let mut user = json!({"uid": uid, "gid": gid});
    let gids = additional_gids(pod, uid, gid, inputs);
    if !gids.is_empty() {
        user["additionalGids"] = json!(gids);
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": container.tty == Some(true),
            "user": user,
            "args": args,
            "env": env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": no_new_privs,
        },
        "root": {"path": inputs.rootfs, "readonly": read_only_root},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    });
    if inputs.host_network {
        // The node's UTS namespace: the node's hostname, not one of the pod's.
        spec.as_object_mut().expect("an object").remove("hostname");
    }
    // The shape must be what libcontainer reads.
    serde_json::from_value::<libcontainer::oci_spec::runtime::Spec>(spec.clone())
        .map_err(|e| SpecError::Invalid(e.to_string()))?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-a", "containers": containers}
        }))
        .unwrap()
    }

    fn container(v: Value) -> Container {
        let mut v = v;
        v["name"] = json!("c");
        serde_json::from_value(v).unwrap()
    }

    fn inputs() -> Inputs {
        Inputs {
            rootfs: "/r".into(),
            netns: "/run/netns/p".into(),
            host_network: false,
            pidns: None,
            utsns: Some("/run/tinykube/ns/p/uts".into()),
            ipcns: None,
            mounts: vec![BindMount {
                destination: "/etc/hosts".into(),
                source: "/pods/u/etc-hosts".into(),
                read_only: false,
            }],
            cgroups_path: "/tinykube/podu-1/c1".into(),
            pod_ip: "10.244.0.9".into(),
            host_ip: "192.168.1.2".into(),
            node_name: "node-a".into(),
            resolved_env: BTreeMap::from([("FROM_CM".to_string(), "cm-value".to_string())]),
            service_env: vec![],
            passwd: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65533:nobody:/:/bin/false\n"
                .into(),
            group: "root:x:0:\nstaff:x:50:\n".into(),
            pids_limit: Some(1024),
            seccomp_dir: "/nonexistent/seccomp".into(),
        }
    }

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into(), "--port=80".into()],
            env: vec!["PATH=/bin".into(), "MODE=image".into()],
            ..Default::default()
        }
    }

    #[test]
    fn command_and_args_follow_kubernetes() {
        let env = BTreeMap::from([("PORT".to_string(), "8080".to_string())]);
        for (c, want) in [
            (json!({}), vec!["/entry", "serve", "--port=80"]),
            (
                json!({"args": ["run", "--port=$(PORT)"]}),
                vec!["/entry", "run", "--port=8080"],
            ),
            (json!({"command": ["/bin/sh"]}), vec!["/bin/sh"]),
            (
                json!({"command": ["/bin/sh", "-c"], "args": ["echo $(PORT) $$(PORT) $(NOPE)"]}),
                vec!["/bin/sh", "-c", "echo 8080 $(PORT) $(NOPE)"],
            ),
        ] {
            assert_eq!(
                command_line(&container(c.clone()), &image(), &env).unwrap(),
                want,
                "{c}"
            );
        }
        let empty = ImageConfig::default();
        assert_eq!(
            command_line(&container(json!({})), &empty, &env),
            Err(SpecError::NoCommand)
        );
    }

    #[test]
    fn service_variables_as_kubernetes_names_them() {
        let svc = |ns: &str, name: &str, ip: &str, ports: serde_json::Value| {
            serde_json::from_value::<k8s_openapi::api::core::v1::Service>(serde_json::json!({
                "metadata": {"name": name, "namespace": ns},
                "spec": {"clusterIP": ip, "ports": ports}}))
            .unwrap()
        };
        let services = [
            svc(
                "default",
                "kubernetes",
                "10.96.0.1",
                serde_json::json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
            ),
            svc(
                "shop",
                "web-front",
                "10.96.0.20",
                serde_json::json!([{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]),
            ),
            svc(
                "shop",
                "headless",
                "None",
                serde_json::json!([{"port": 80}]),
            ),
            svc(
                "other",
                "db",
                "10.96.0.30",
                serde_json::json!([{"port": 5432}]),
            ),
        ];
        let env = service_env(&services, "shop", true);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_ADDR"), Some("10.96.0.1"));
        assert_eq!(get("WEB_FRONT_SERVICE_HOST"), Some("10.96.0.20"));
        assert_eq!(get("WEB_FRONT_PORT"), Some("tcp://10.96.0.20:80"));
        assert_eq!(get("WEB_FRONT_PORT_53_UDP"), Some("udp://10.96.0.20:53"));
        assert_eq!(get("WEB_FRONT_PORT_53_UDP_PROTO"), Some("udp"));
        assert_eq!(get("WEB_FRONT_SERVICE_PORT_DNS"), Some("53"));
        assert_eq!(
            get("HEADLESS_SERVICE_HOST"),
            None,
            "no cluster IP, no variables"
        );
        assert_eq!(get("DB_SERVICE_HOST"), None, "another namespace's");
        // Without service links only the API's own remain.
        let env = service_env(&services, "shop", false);
        assert!(
            env.iter().all(|(k, _)| k.starts_with("KUBERNETES_")),
            "{env:?}"
        );
    }

    #[test]
    fn env_merges_image_and_container_and_resolves_fields() {
        let c = container(json!({"env": [
            {"name": "MODE", "value": "pod"},
            {"name": "A", "value": "a"},
            {"name": "B", "value": "$(A)-$(MODE)-$(LATER)"},
            {"name": "LATER", "value": "x"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}},
        ]}));
        let p = pod(json!([]));
        let env = environment(&p, &c, &image(), &inputs());
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/bin"));
        assert_eq!(get("MODE"), Some("pod"));
        assert_eq!(get("B"), Some("a-pod-$(LATER)"));
        assert_eq!(get("POD"), Some("web-1"));
        assert_eq!(get("IP"), Some("10.244.0.9"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("FROM_CM"), Some("cm-value"));
        assert_eq!(get("MISSING"), None);
        assert_eq!(get("HOSTNAME"), Some("web-1"));
        // Image variables keep their place; MODE is overridden in place.
        assert_eq!(env[0].0, "PATH");
        assert_eq!(env[1], ("MODE".to_string(), "pod".to_string()));
    }

    #[test]
    fn users_resolve_from_security_context_or_image() {
        let p = pod(json!([]));
        let img = |u: &str| ImageConfig {
            user: u.into(),
            ..image()
        };
        let c = container(json!({}));
        let i = inputs();
        assert_eq!(user(&p, &c, &img(""), &i).unwrap(), (0, 0));
        assert_eq!(user(&p, &c, &img("nobody"), &i).unwrap(), (65534, 65533));
        assert_eq!(user(&p, &c, &img("1000:50"), &i).unwrap(), (1000, 50));
        assert_eq!(user(&p, &c, &img("nobody:staff"), &i).unwrap(), (65534, 50));
        assert_eq!(
            user(&p, &c, &img("ghost"), &i),
            Err(SpecError::UnknownUser("ghost".into()))
        );
        let sc = container(json!({"securityContext": {"runAsUser": 65534, "runAsGroup": 7}}));
        assert_eq!(user(&p, &sc, &img("root"), &i).unwrap(), (65534, 7));
    }

    #[test]
    fn capabilities_default_add_drop_privileged() {
        let caps = |sc: Value| capabilities(&container(json!({"securityContext": sc})));
        let default = caps(json!({}));
        assert_eq!(default.len(), 14);
        assert!(
            default.contains(&"CAP_NET_RAW".to_string())
                && !default.contains(&"CAP_SYS_ADMIN".to_string())
        );
        let c =
            caps(json!({"capabilities": {"add": ["NET_ADMIN"], "drop": ["NET_RAW", "cap_kill"]}}));
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_NET_RAW".to_string()) && !c.contains(&"CAP_KILL".to_string()));
        assert_eq!(
            caps(json!({"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}})),
            Vec::<String>::new()
        );
        assert!(caps(json!({"privileged": true})).contains(&"CAP_SYS_ADMIN".to_string()));
    }

    #[test]
    fn resources_become_cgroup_limits() {
        let c = container(
            json!({"resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}}}),
        );
        let r = resources(&c, Some(100));
        assert_eq!(
            r["cpu"],
            json!({"shares": 256, "period": 100000, "quota": 50000})
        );
        assert_eq!(r["memory"]["limit"], 134217728);
        assert_eq!(r["pids"]["limit"], 100);
        let none = resources(&container(json!({})), None);
        assert_eq!(none["cpu"], json!({"shares": 2}));
        assert!(none.get("memory").is_none() && none.get("pids").is_none());
        // Kubernetes' Value() and MilliValue(): exact, fractions rounded up.
        for (memory, cpu, want_bytes, want_quota) in [
            ("1Pi", "2", 1i64 << 50, 200_000),
            ("1E", "0.5", 1_000_000_000_000_000_000, 50_000),
            ("500m", "1m", 1, 1000),
            ("1G", "1.5", 1_000_000_000, 150_000),
            ("64Ki", "100m", 65536, 10_000),
        ] {
            let r = resources(
                &container(json!({"resources": {"limits": {"memory": memory, "cpu": cpu}}})),
                None,
            );
            assert_eq!(r["memory"]["limit"], want_bytes, "{memory}");
            assert_eq!(r["cpu"]["quota"], want_quota, "{cpu}");
        }
    }

    #[test]
    fn the_spec_is_secure_by_default_and_parses() {
        let p = pod(json!([]));
        let c = container(json!({"workingDir": "/app"}));
        let s = container_spec(&p, &c, &image(), &inputs()).unwrap();
        assert_eq!(s["process"]["noNewPrivileges"], true);
        assert_eq!(s["process"]["cwd"], "/app");
        assert_eq!(s["hostname"], "web-1");
        assert_eq!(
            s["linux"]["maskedPaths"].as_array().unwrap().len(),
            MASKED_PATHS.len()
        );
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
        let ns = s["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&json!({"type": "network", "path": "/run/netns/p"})));
        assert!(ns.contains(&json!({"type": "uts", "path": "/run/tinykube/ns/p/uts"})));
        assert!(ns.contains(&json!({"type": "ipc"})));
        assert!(s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["destination"] == "/etc/hosts"));
        let privileged = container(json!({"securityContext": {"privileged": true}}));
        let s = container_spec(&p, &privileged, &image(), &inputs()).unwrap();
        assert_eq!(s["process"]["noNewPrivileges"], false);
        assert!(s["linux"].get("seccomp").is_none() && s["linux"].get("maskedPaths").is_none());
    }

    fn pod_with(sc: Value) -> Pod {
        let mut p = pod(json!([]));
        p.spec.as_mut().unwrap().security_context = Some(serde_json::from_value(sc).unwrap());
        p
    }

    #[test]
    fn run_as_non_root_refuses_root_in_kubernetes_words() {
        let img = |u: &str| ImageConfig {
            user: u.into(),
            ..image()
        };
        let i = inputs();
        let p = pod_with(json!({"runAsNonRoot": true}));
        let c = container(json!({}));
        let who = "(pod: \"web-1_default(u-1)\", container: c)";
        assert_eq!(
            user(&p, &c, &img(""), &i),
            Err(SpecError::Refused(format!(
                "container has runAsNonRoot and image will run as root {who}"
            )))
        );
        assert_eq!(
            user(&p, &c, &img("nobody"), &i),
            Err(SpecError::Refused(format!("container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root {who}")))
        );
        assert_eq!(user(&p, &c, &img("65534"), &i).unwrap(), (65534, 65533));
        let root = container(json!({"securityContext": {"runAsUser": 0}}));
        assert_eq!(
            user(&p, &root, &img("65534"), &i),
            Err(SpecError::Refused(format!(
                "container's runAsUser breaks non-root policy {who}"
            )))
        );
        // The container's own setting wins over the pod's.
        let allowed = container(json!({"securityContext": {"runAsNonRoot": false}}));
        assert_eq!(user(&p, &allowed, &img(""), &i).unwrap(), (0, 0));
    }

    #[test]
    fn groups_merge_the_image_the_fs_group_and_supplemental_groups() {
        let mut i = inputs();
        i.group = "root:x:0:\nstaff:x:50:nobody,other\nwheel:x:10:other\n".into();
        let p = pod_with(json!({"fsGroup": 2000, "supplementalGroups": [3000, 50]}));
        assert_eq!(additional_gids(&p, 65534, 65533, &i), vec![50, 2000, 3000]);
        let s = container_spec(
            &p,
            &container(json!({"securityContext": {"runAsUser": 65534}})),
            &image(),
            &i,
        )
        .unwrap();
        assert_eq!(
            s["process"]["user"]["additionalGids"],
            json!([50, 2000, 3000])
        );
    }

    #[test]
    fn seccomp_profiles_and_sysctls() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = inputs();
        i.seccomp_dir = dir.path().to_path_buf();
        std::fs::create_dir_all(dir.path().join("profiles")).unwrap();
        std::fs::write(
            dir.path().join("profiles/audit.json"),
            r#"{"defaultAction": "SCMP_ACT_LOG"}"#,
        )
        .unwrap();
        let c = container(json!({}));
        let unconfined = pod_with(json!({"seccompProfile": {"type": "Unconfined"}}));
        let s = container_spec(&unconfined, &c, &image(), &i).unwrap();
        assert!(s["linux"].get("seccomp").is_none());
        let local = container(
            json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}}}),
        );
        let s = container_spec(&unconfined, &local, &image(), &i).unwrap();
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_LOG");
        let missing = container(
            json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/nope.json"}}}),
        );
        let e = container_spec(&unconfined, &missing, &image(), &i).unwrap_err();
        assert!(
            matches!(&e, SpecError::Seccomp(m) if m.contains("cannot load seccomp profile") && m.contains("No such file")),
            "{e}"
        );
        let escape = container(
            json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "../../etc/passwd"}}}),
        );
        assert!(container_spec(&unconfined, &escape, &image(), &i).is_err());

        let safe = pod_with(
            json!({"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}, {"name": "kernel/shm_rmid_forced", "value": "1"}]}),
        );
        assert_eq!(forbidden_sysctl(&safe), None);
        let s = container_spec(&safe, &c, &image(), &i).unwrap();
        assert_eq!(
            s["linux"]["sysctl"],
            json!({"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "0"})
        );
        let unsafe_ = pod_with(json!({"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}));
        assert_eq!(
            forbidden_sysctl(&unsafe_).as_deref(),
            Some("forbidden sysctl: \"kernel.msgmax\" not allowlisted")
        );
    }
}
