//! The kubelet's cgroup tree (`/<cgroup-root>/pod<uid>/<container id>`) in both layouts: a
//! cgroup v2 unified mount, or v1 controller hierarchies under `/sys/fs/cgroup/<controller>`.
//! libcontainer makes and removes each container's leaf; the kubelet removes the parents.

use std::path::{Path, PathBuf};

const CGROUP_FS: &str = "/sys/fs/cgroup";

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
