//! What killed test processes leave behind, swept. A [`Node`](crate::node::Node) is named
//! `tk-e2e-<pid>-<n>` after the test process that started it: its network namespace has that
//! name, its pods' namespaces are `tk-e2e-<pid>-<n>-<uid>`, its kubelet's cgroups are
//! `tinykube-tk-e2e-<pid>-<n>` in every hierarchy, and `/run/tinykube-e2e/<name>` records
//! the process's start time and the node's temporary dirs. A test process killed by SIGKILL
//! (a CI timeout, ctrl-C) never runs its `Drop`s: all of that stays, with the node's daemons
//! and containers running. [`sweep`] removes it for every process that is gone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The prefix of nodes' names (and network namespaces).
pub const PREFIX: &str = "tk-e2e";
/// Where each running node records its owner's start time and its dirs.
pub const RECORD_DIR: &str = "/run/tinykube-e2e";
const NETNS_DIR: &str = "/run/netns";
/// Nodes' cgroup roots are `tinykube-<node name>` (the kubelet's `--cgroup-root`).
pub const CGROUP_PREFIX: &str = "tinykube-";

/// A name under [`PREFIX`] taken apart: `tk-e2e-<pid>-<n>[-<rest>]` gives the owning pid and
/// the node's name; None for any other name.
pub fn parse(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix(PREFIX)?.strip_prefix('-')?;
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let p = digits(rest);
    let pid = rest[..p].parse().ok()?;
    let after = rest[p..].strip_prefix('-')?;
    let n = digits(after);
    if n == 0 || !(after.len() == n || after[n..].starts_with('-')) {
        return None;
    }
    let node_len = PREFIX.len() + 1 + p + 1 + n;
    Some((pid, &name[..node_len]))
}

/// The start time of process `pid` (field 22 of /proc/PID/stat), None if there is none.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// A node's record: the start time of the process that made it and the dirs it made.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub start: Option<u64>,
    pub dirs: Vec<PathBuf>,
}

impl Record {
    fn parse(text: &str) -> Self {
        let mut r = Record::default();
        for l in text.lines() {
            if let Some(s) = l.strip_prefix("start ") {
                r.start = s.trim().parse().ok();
            } else if let Some(d) = l.strip_prefix("dir ") {
                r.dirs.push(PathBuf::from(d));
            }
        }
        r
    }

    fn read(node: &str) -> Self {
        Self::parse(&std::fs::read_to_string(Path::new(RECORD_DIR).join(node)).unwrap_or_default())
    }
}

/// Writes node `name`'s record for this process (its start time and `dirs`).
pub fn record(name: &str, dirs: &[&Path]) {
    let mut text = format!(
        "start {}\n",
        start_time(std::process::id()).expect("my own start time")
    );
    for d in dirs {
        text.push_str(&format!("dir {}\n", d.display()));
    }
    let _ = std::fs::create_dir_all(RECORD_DIR);
    let path = Path::new(RECORD_DIR).join(name);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("writing the node's record");
    std::fs::rename(&tmp, &path).expect("writing the node's record");
}

/// Removes node `name`'s record (its owner cleaned up itself).
pub fn forget(name: &str) {
    let _ = std::fs::remove_file(Path::new(RECORD_DIR).join(name));
}

/// Whether node `name`, made by process `pid`, belongs to a process that is gone: `pid` does
/// not run, or runs but started at another time than the recorded one (the number was reused).
/// `now` is `pid`'s start time if it runs. Conservative: a running `pid` without a record is
/// alive.
pub fn is_dead(now: Option<u64>, recorded: Option<u64>) -> bool {
    match (now, recorded) {
        (None, _) => true,
        (Some(now), Some(then)) => now != then,
        (Some(_), None) => false,
    }
}

/// The hierarchies' mount points (every cgroup v1 controller and the cgroup2 mount).
fn cgroup_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mount_point = unescape(pre.split(' ').nth(4)?);
            matches!(fstype, "cgroup" | "cgroup2").then_some(mount_point)
        })
        .map(PathBuf::from)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// mountinfo's octal escapes (`\040` for a space) undone.
fn unescape(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                out.push(d.iter().fold(0u8, |v, c| v.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The processes in cgroup dir `dir` and below.
fn cgroup_procs(dir: &Path, out: &mut BTreeSet<i32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            cgroup_procs(&e.path(), out);
        }
    }
}

/// Thaws cgroup dir `dir` and below (a frozen process never gets its SIGKILL).
fn thaw(dir: &Path) {
    let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
    let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            thaw(&e.path());
        }
    }
}

/// rmdir of `dir` and every cgroup below it, deepest first.
fn remove_cgroup(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = remove_cgroup(&e.path());
        }
    }
    std::fs::remove_dir(dir)
}

/// The processes in network namespace `name` (`ip netns pids`).
fn netns_pids(name: &str) -> BTreeSet<i32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` runs (a zombie has ended: it only waits to be reaped).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s.get(i + 2..i + 3))
            .is_some_and(|st| st != "Z" && st != "X")
    })
}

/// Node `node`'s leftovers: its network namespaces (the node's and its pods'), its cgroup
/// dirs in every hierarchy.
fn leftovers(node: &str) -> (Vec<String>, Vec<PathBuf>) {
    let mut netns: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| parse(n).is_some_and(|(_, owner)| owner == node))
        .collect();
    // Pods' namespaces before the node's.
    netns.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let cgroups = cgroup_mounts()
        .into_iter()
        .map(|m| m.join(format!("{CGROUP_PREFIX}{node}")))
        .filter(|d| d.is_dir())
        .collect();
    (netns, cgroups)
}

/// Every node whose owner is gone, by name.
fn dead_nodes() -> BTreeSet<String> {
    let mut names = Vec::new();
    for dir in [Path::new(NETNS_DIR), Path::new(RECORD_DIR)] {
        names.extend(
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok()),
        );
    }
    for m in cgroup_mounts() {
        names.extend(
            std::fs::read_dir(m)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.strip_prefix(CGROUP_PREFIX).map(str::to_string)),
        );
    }
    names
        .iter()
        .filter_map(|n| parse(n))
        .filter(|(pid, node)| is_dead(start_time(*pid), Record::read(node).start))
        .map(|(_, node)| node.to_string())
        .collect()
}

/// Sweeps what every dead test process's nodes left (see the module docs): kills the
/// processes in their cgroups and network namespaces, unmounts what is mounted under their
/// dirs and removes the dirs, removes the cgroups and deletes the namespaces. Prints a line
/// for each thing swept; returns the names of the nodes swept.
pub fn sweep() -> Vec<String> {
    let nodes = dead_nodes();
    for node in &nodes {
        sweep_node(node);
    }
    nodes.into_iter().collect()
}

fn sweep_node(node: &str) {
    let (pid, _) = parse(node).expect("a node name");
    let say = |what: &str| eprintln!("swept leftover {what} of dead test process {pid}");
    let (netns, cgroups) = leftovers(node);
    // Kill until nothing is left (a dying kubelet or shim may still start something).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut killed = BTreeSet::new();
    loop {
        let mut pids = BTreeSet::new();
        for n in &netns {
            pids.extend(netns_pids(n));
        }
        for c in &cgroups {
            thaw(c);
            cgroup_procs(c, &mut pids);
        }
        pids.retain(|p| running(*p) && *p != std::process::id() as i32);
        if pids.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("sweeping node {node}: processes {pids:?} do not die");
            break;
        }
        for p in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        killed.extend(pids);
        std::thread::sleep(Duration::from_millis(50));
    }
    if !killed.is_empty() {
        say(&format!("processes {killed:?} of node {node}"));
    }
    let record = Record::read(node);
    // Mounts under the node's dirs (rootfs overlays, volumes, the pods' namespace files),
    // deepest first.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape).map(PathBuf::from))
        .filter(|m| record.dirs.iter().any(|d| m.starts_with(d)))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    for m in mounts {
        if nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH).is_ok() {
            say(&format!("mount {}", m.display()));
        }
    }
    for d in &record.dirs {
        if d.exists() && std::fs::remove_dir_all(d).is_ok() {
            say(&format!("dir {}", d.display()));
        }
    }
    for c in cgroups {
        match remove_cgroup(&c) {
            Ok(()) => say(&format!("cgroup {}", c.display())),
            Err(e) => eprintln!("sweeping node {node}: rmdir {}: {e}", c.display()),
        }
    }
    for n in netns {
        let out = Command::new("ip").args(["netns", "del", &n]).output();
        match out {
            Ok(o) if o.status.success() => say(&format!("netns {n}")),
            Ok(o) => eprintln!(
                "sweeping node {node}: ip netns del {n}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("sweeping node {node}: ip netns del {n}: {e}"),
        }
    }
    forget(node);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_nodes_and_their_pods() {
        assert_eq!(parse("tk-e2e-123-0"), Some((123, "tk-e2e-123-0")));
        assert_eq!(
            parse("tk-e2e-123-10-1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
            Some((123, "tk-e2e-123-10"))
        );
        for other in [
            "tk-1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "tk-e2e",
            "tk-e2e-",
            "tk-e2e-123",
            "tk-e2e-123-",
            "tk-e2e-x-0",
            "tk-e2e-123-0x",
            "tk-e2e-99999999999-0",
            "tk-e2ex-1-0",
            "tk-bench-proxy-1-0",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn dead_is_gone_or_reused_never_running_unrecorded() {
        assert!(is_dead(None, None));
        assert!(is_dead(None, Some(5)));
        assert!(is_dead(Some(7), Some(5)), "the pid was reused");
        assert!(!is_dead(Some(5), Some(5)));
        assert!(!is_dead(Some(5), None), "running, no record: left alone");
    }

    #[test]
    fn records_and_mountinfo_paths() {
        let r = Record::parse("start 42\ndir /tmp/a b\ndir /tmp/c\n");
        assert_eq!(r.start, Some(42));
        assert_eq!(r.dirs, [PathBuf::from("/tmp/a b"), PathBuf::from("/tmp/c")]);
        assert_eq!(unescape(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape(r"/x\"), r"/x\");
        assert!(start_time(std::process::id()).is_some());
    }
}
