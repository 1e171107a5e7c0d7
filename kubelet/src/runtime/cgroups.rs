//! The kubelet's cgroup tree, made by one of two drivers, as Kubernetes' kubelet does:
//!
//! - **cgroupfs** (hosts without systemd): `/<cgroup-root>/pod<uid>/<container id>`, in
//!   whichever layout the host has — a cgroup v2 unified mount, or v1 controller hierarchies
//!   under `/sys/fs/cgroup/<controller>`. libcontainer makes each container's leaf and its
//!   parents; the kubelet removes the parents.
//! - **systemd** (systemd as PID 1 with the unified hierarchy: most users' VMs): systemd owns
//!   the tree, so pods are slices and containers transient scopes that libcontainer asks systemd
//!   for over D-Bus, as runc's systemd driver does: `tinykube.slice/tinykube-pod<uid>.slice/
//!   tinykube-<id>.scope` (Kubernetes' `kubepods.slice/kubepods-pod<uid>.slice/
//!   cri-containerd-<id>.scope`; `-` in a name means nesting, so a name's own dashes become
//!   `_`). Limits are unit properties (MemoryMax, CPUQuota…); each scope is delegated. The
//!   kubelet stops a pod's slice when the pod goes.

use std::path::{Path, PathBuf};
use std::process::Command;

const CGROUP_FS: &str = "/sys/fs/cgroup";

/// The `--cgroup-driver` flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DriverFlag {
    /// systemd where it is PID 1 and the unified hierarchy is mounted, else cgroupfs.
    Auto,
    Cgroupfs,
    Systemd,
}

/// Who makes the pods' cgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Cgroupfs,
    Systemd,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Cgroupfs => "cgroupfs",
            Driver::Systemd => "systemd",
        }
    }
}

/// systemd is the init system (as `sd_booted()` tells it).
pub fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// `/sys/fs/cgroup` is the unified (cgroup v2 only) hierarchy.
pub fn unified() -> bool {
    nix::sys::statfs::statfs(CGROUP_FS)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The driver for `flag` on this host (`booted`: systemd is PID 1; `unified`: cgroup v2 only).
pub fn resolve(flag: DriverFlag, booted: bool, unified: bool) -> Result<Driver, String> {
    match flag {
        DriverFlag::Auto if booted && unified => Ok(Driver::Systemd),
        DriverFlag::Auto | DriverFlag::Cgroupfs => Ok(Driver::Cgroupfs),
        DriverFlag::Systemd if !booted => Err(
            "--cgroup-driver=systemd: systemd is not the init system here (no /run/systemd/system)"
                .into(),
        ),
        DriverFlag::Systemd if !unified => Err(
            "--cgroup-driver=systemd needs the unified cgroup v2 hierarchy at /sys/fs/cgroup \
             (systemd.unified_cgroup_hierarchy=1)"
                .into(),
        ),
        DriverFlag::Systemd => Ok(Driver::Systemd),
    }
}

/// Where pods and containers go: the driver and `--cgroup-root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub driver: Driver,
    /// `--cgroup-root` (`tinykube`; slashes nest).
    pub root: String,
}

/// The prefix of the containers' scopes (`tinykube-<id>.scope`).
const SCOPE_PREFIX: &str = "tinykube";

/// A cgroup name as a systemd unit name part: its dashes would mean nesting (Kubernetes'
/// `escapeSystemdCgroupName`).
fn escape(part: &str) -> String {
    part.replace('-', "_")
}

impl Layout {
    pub fn new(driver: Driver, root: &str) -> Self {
        Self {
            driver,
            root: root.trim_matches('/').to_string(),
        }
    }

    /// The root's slice name without `.slice`: `tinykube`, `a-b` for `a/b`.
    fn slice_base(&self) -> String {
        self.root
            .split('/')
            .filter(|p| !p.is_empty())
            .map(escape)
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The pods' parent as a path relative to the cgroup mount(s).
    pub fn root_cgroup(&self) -> String {
        match self.driver {
            Driver::Cgroupfs => self.root.clone(),
            Driver::Systemd => slice_path(&format!("{}.slice", self.slice_base())),
        }
    }

    /// The root slice's unit name (systemd driver).
    pub fn root_slice(&self) -> Option<String> {
        (self.driver == Driver::Systemd).then(|| format!("{}.slice", self.slice_base()))
    }

    /// Pod `uid`'s slice unit name (systemd driver).
    pub fn pod_slice(&self, uid: &str) -> Option<String> {
        (self.driver == Driver::Systemd)
            .then(|| format!("{}-pod{}.slice", self.slice_base(), escape(uid)))
    }

    /// Pod `uid`'s cgroup, relative to the cgroup mount(s).
    pub fn pod_cgroup(&self, uid: &str) -> String {
        match self.pod_slice(uid) {
            None => format!("{}/pod{uid}", self.root),
            Some(slice) => slice_path(&slice),
        }
    }

    /// The `linux.cgroupsPath` of container `id` of pod `uid`: a path for cgroupfs,
    /// `slice:prefix:name` for systemd (runc's and libcontainer's systemd form).
    pub fn cgroups_path(&self, uid: &str, id: &str) -> String {
        match self.pod_slice(uid) {
            None => format!("/{}/pod{uid}/{id}", self.root),
            Some(slice) => format!("{slice}:{SCOPE_PREFIX}:{id}"),
        }
    }

    /// Container `id`'s transient scope (systemd driver).
    pub fn scope(&self, id: &str) -> Option<String> {
        (self.driver == Driver::Systemd).then(|| format!("{SCOPE_PREFIX}-{id}.scope"))
    }

    /// Container `id`'s cgroup, relative to the cgroup mount(s).
    pub fn container_cgroup(&self, uid: &str, id: &str) -> String {
        match self.scope(id) {
            None => format!("{}/pod{uid}/{id}", self.root),
            Some(scope) => format!("{}/{scope}", self.pod_cgroup(uid)),
        }
    }

    /// Removes pod `uid`'s cgroups: rmdir of the tree (cgroupfs), or stopping its slice, which
    /// stops any scope left in it (systemd).
    pub fn remove_pod(&self, uid: &str) {
        match self.pod_slice(uid) {
            None => remove_tree(&self.pod_cgroup(uid)),
            Some(slice) => stop_units(&[slice]),
        }
    }

    /// Removes every pod cgroup under the root, and the root.
    pub fn remove_all(&self) {
        match self.root_slice() {
            None => remove_tree(&self.root),
            Some(slice) => {
                stop_units(&[slice]);
                // Scopes that failed (an OOM kill) stay loaded until reset.
                reset_failed(&[format!("{SCOPE_PREFIX}-*.scope")]);
            }
        }
    }
}

/// A slice's cgroup path: `a-b-c.slice` lives at `a.slice/a-b.slice/a-b-c.slice`.
fn slice_path(slice: &str) -> String {
    let base = slice.strip_suffix(".slice").unwrap_or(slice);
    let mut out = Vec::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push(format!("{prefix}.slice"));
    }
    out.join("/")
}

/// `systemctl stop UNIT...` (waits for the jobs). systemd's D-Bus API through its own client:
/// the kubelet has no D-Bus client of its own (libcontainer's is private), and these calls
/// are rare (a pod's removal, cleanup).
pub fn stop_units(units: &[String]) {
    systemctl("stop", units);
}

/// `systemctl reset-failed UNIT...`: failed units (an OOM-killed scope) are unloaded.
pub fn reset_failed(units: &[String]) {
    systemctl("reset-failed", units);
}

fn systemctl(verb: &str, units: &[String]) {
    if units.is_empty() {
        return;
    }
    match Command::new("systemctl")
        .arg(verb)
        .args(units)
        .stdout(std::process::Stdio::null())
        .output()
    {
        Ok(out) if !out.status.success() => tracing::debug!(
            verb,
            ?units,
            stderr = %String::from_utf8_lossy(&out.stderr).trim(),
            "systemctl"
        ),
        Err(e) => tracing::warn!(verb, ?units, error = %e, "systemctl"),
        Ok(_) => {}
    }
}

/// Every directory that holds cgroup `rel` (a path like `tinykube/pod<uid>`), in whichever
/// hierarchies exist on this machine.
pub fn dirs(rel: &str) -> Vec<PathBuf> {
    let rel = rel.trim_start_matches('/');
    let mut out = vec![Path::new(CGROUP_FS).join(rel)];
    for e in std::fs::read_dir(CGROUP_FS).into_iter().flatten().flatten() {
        let p = e.path();
        // v1 hierarchies are directories (or symlinks such as cpu -> cpu,cpuacct) holding
        // a `cgroup.procs`; skip symlinks so a hierarchy is visited once.
        if e.file_type().is_ok_and(|t| t.is_dir()) && p.join("cgroup.procs").exists() {
            out.push(p.join(rel));
        }
    }
    out.retain(|d| d.is_dir());
    out
}

/// Removes cgroup `rel` and every cgroup below it, deepest first, in every hierarchy. A
/// cgroup that still has processes stays (rmdir fails with EBUSY).
pub fn remove_tree(rel: &str) {
    for dir in dirs(rel) {
        remove_dir_tree(&dir);
    }
}

fn remove_dir_tree(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_dir_tree(&e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The pids of every process in cgroup `rel` and below (to kill what a lost shim left).
pub fn procs(rel: &str) -> Vec<i32> {
    fn walk(dir: &Path, out: &mut Vec<i32>) {
        if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    for d in dirs(rel) {
        walk(&d, &mut out);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The memory cgroup of process `pid` relative to the memory controller's mount: the unified
/// path (`0::/…`) on v2, the `memory` line on v1. With whether it is v2.
pub fn memory_cgroup_of(pid: i32) -> Option<(PathBuf, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mut v2 = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let rel = PathBuf::from(path.trim_start_matches('/'));
        if controllers.split(',').any(|c| c == "memory") {
            return Some((rel, false));
        }
        if controllers.is_empty() {
            v2 = Some(rel);
        }
    }
    // The unified hierarchy counts as the memory one only where it is mounted at the top
    // (v2 only); in the hybrid layout the v1 `memory` line above wins.
    v2.filter(|_| unified()).map(|p| (p, true))
}

/// `oom_kill` of a cgroup v2 dir's `memory.events` (hierarchical: it counts the kills in every
/// cgroup below too). None when the cgroup is gone.
pub fn oom_kills_v2(rel: &Path) -> Option<u64> {
    let events =
        std::fs::read_to_string(Path::new(CGROUP_FS).join(rel).join("memory.events")).ok()?;
    events
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// `oom_kill` of a v1 memory cgroup's `memory.oom_control`.
pub fn oom_kills_v1(rel: &Path) -> Option<u64> {
    let c = std::fs::read_to_string(
        Path::new(CGROUP_FS)
            .join("memory")
            .join(rel)
            .join("memory.oom_control"),
    )
    .ok()?;
    c.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_follow_the_host() {
        use DriverFlag::*;
        assert_eq!(resolve(Auto, true, true), Ok(Driver::Systemd));
        assert_eq!(resolve(Auto, true, false), Ok(Driver::Cgroupfs));
        assert_eq!(resolve(Auto, false, true), Ok(Driver::Cgroupfs));
        assert_eq!(resolve(Cgroupfs, true, true), Ok(Driver::Cgroupfs));
        assert_eq!(resolve(Systemd, true, true), Ok(Driver::Systemd));
        assert!(resolve(Systemd, false, true)
            .unwrap_err()
            .contains("not the init system"));
        assert!(resolve(Systemd, true, false)
            .unwrap_err()
            .contains("unified"));
    }

    #[test]
    fn cgroupfs_paths() {
        let l = Layout::new(Driver::Cgroupfs, "tinykube");
        assert_eq!(l.root_cgroup(), "tinykube");
        assert_eq!(l.pod_cgroup("u-1"), "tinykube/podu-1");
        assert_eq!(l.cgroups_path("u-1", "abc"), "/tinykube/podu-1/abc");
        assert_eq!(l.container_cgroup("u-1", "abc"), "tinykube/podu-1/abc");
        assert_eq!(l.pod_slice("u-1"), None);
        assert_eq!(l.scope("abc"), None);
    }

    #[test]
    fn systemd_names_as_kubernetes_forms_them() {
        let l = Layout::new(Driver::Systemd, "tinykube");
        assert_eq!(l.root_slice().as_deref(), Some("tinykube.slice"));
        assert_eq!(l.root_cgroup(), "tinykube.slice");
        let uid = "5d6f0c2e-1b2a-4c3d-9e8f-0a1b2c3d4e5f";
        assert_eq!(
            l.pod_slice(uid).as_deref(),
            Some("tinykube-pod5d6f0c2e_1b2a_4c3d_9e8f_0a1b2c3d4e5f.slice")
        );
        assert_eq!(
            l.pod_cgroup(uid),
            "tinykube.slice/tinykube-pod5d6f0c2e_1b2a_4c3d_9e8f_0a1b2c3d4e5f.slice"
        );
        assert_eq!(
            l.cgroups_path(uid, "abc"),
            "tinykube-pod5d6f0c2e_1b2a_4c3d_9e8f_0a1b2c3d4e5f.slice:tinykube:abc"
        );
        assert_eq!(
            l.container_cgroup(uid, "abc"),
            "tinykube.slice/tinykube-pod5d6f0c2e_1b2a_4c3d_9e8f_0a1b2c3d4e5f.slice/tinykube-abc.scope"
        );
        // A root with dashes (the tests' per-node roots) stays one slice; slashes nest.
        let t = Layout::new(Driver::Systemd, "tinykube-tk-lu-1");
        assert_eq!(t.root_cgroup(), "tinykube_tk_lu_1.slice");
        assert_eq!(
            t.pod_cgroup("u"),
            "tinykube_tk_lu_1.slice/tinykube_tk_lu_1-podu.slice"
        );
        let n = Layout::new(Driver::Systemd, "/a/b/");
        assert_eq!(n.root_cgroup(), "a.slice/a-b.slice");
        assert_eq!(n.pod_cgroup("u"), "a.slice/a-b.slice/a-b-podu.slice");
    }
}
