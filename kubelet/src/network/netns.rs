//! Named network namespaces, as `ip netns` makes them: a bind mount of a namespace onto
//! `/run/netns/<name>` keeps it alive without a process in it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// Where named namespaces live (iproute2's directory, so `ip netns exec` works on them).
pub const NETNS_DIR: &str = "/run/netns";

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Makes /run/netns a shared mount point of its own (as iproute2 does), so namespaces mounted
/// there later also appear in mount namespaces that were copied from this one.
fn prepare_dir() -> io::Result<()> {
    fs::create_dir_all(NETNS_DIR)?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    if shared().is_err() {
        // Not a mount point yet: bind it onto itself first.
        mount(
            Some(NETNS_DIR),
            NETNS_DIR,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )?;
        shared()?;
    }
    Ok(())
}

/// Creates network namespace `name` (an existing one is kept) and returns its path.
pub fn create(name: &str) -> io::Result<PathBuf> {
    check_name(name)?;
    let target = path(name);
    if is_netns(&target) {
        return Ok(target);
    }
    prepare_dir()?;
    bind_new_namespace(CloneFlags::CLONE_NEWNET, &target, None)?;
    Ok(target)
}

/// Makes a new namespace of one kind (net, UTS or IPC) and bind-mounts it on `target` (a file
/// that is created), which keeps it alive with no process in it. A new UTS namespace gets
/// `hostname`.
pub fn bind_new_namespace(
    kind: CloneFlags,
    target: &Path,
    hostname: Option<&str>,
) -> io::Result<()> {
    let proc_name = match kind {
        CloneFlags::CLONE_NEWNET => "net",
        CloneFlags::CLONE_NEWUTS => "uts",
        CloneFlags::CLONE_NEWIPC => "ipc",
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "unsupported namespace kind",
            ))
        }
    };
    fs::File::create(target)?;
    let t = target.to_path_buf();
    let hostname = hostname.map(str::to_string);
    // unshare() changes only the calling thread's namespace: do it on a thread of its own,
    // which ends right after, so no other code ever runs inside the new namespace.
    let r = std::thread::spawn(move || -> io::Result<()> {
        unshare(kind)?;
        if let Some(h) = hostname {
            nix::unistd::sethostname(h)?;
        }
        mount(
            Some(format!("/proc/thread-self/ns/{proc_name}").as_str()),
            &t,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?;
    if let Err(e) = r {
        let _ = fs::remove_file(target);
        return Err(e);
    }
    Ok(())
}

/// Unmounts and removes a namespace file made by [`bind_new_namespace`] (missing is fine).
pub fn unbind_namespace(target: &Path) -> io::Result<()> {
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match fs::remove_file(target) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes network namespace `name` (missing is fine). The namespace itself goes when the
/// last process in it is gone.
pub fn delete(name: &str) -> io::Result<()> {
    check_name(name)?;
    unbind_namespace(&path(name))
}

/// Undoes [`prepare_dir`] once no namespace is left in /run/netns (as a clean uninstall
/// should); with namespaces still there nothing changes. The unmount is lazy: the mount is
/// shared, and a copy propagated into another mount namespace (a sandboxed systemd service's)
/// can be busy there, which made a plain unmount fail with EBUSY and leave it behind.
pub fn release_dir() {
    // Several binds may be stacked there (each unmount takes the top one off): all go, as
    // long as the directory stays empty.
    let mut unmounted = false;
    for _ in 0..8 {
        let empty = fs::read_dir(NETNS_DIR).is_ok_and(|mut d| d.next().is_none());
        if !empty || umount2(NETNS_DIR, MntFlags::MNT_DETACH).is_err() {
            break;
        }
        unmounted = true;
    }
    if unmounted {
        let _ = fs::remove_dir(NETNS_DIR);
    }
}

/// Whether `path` is a mounted namespace (nsfs: network, UTS, IPC alike).
#[allow(clippy::unnecessary_cast)] // fs_type_t is not i64 on every architecture
pub fn is_netns(path: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type().0 as i64 == NSFS_MAGIC)
}

fn check_name(name: &str) -> io::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid network namespace name {name:?}"),
        ))
    }
}
