//! `subPath` mounts of volumes that containers write to (emptyDir, hostPath), made safe as
//! Kubernetes' kubelet makes them (pkg/volume/util/subpath): a container may have left
//! symlinks in the volume, so the path is resolved with `openat2(RESOLVE_BENEATH)` from
//! the volume's root (nothing may lead out of it: an absolute link or a `..` that climbs
//! out is refused), missing directories are made one at a time the same way, and what was
//! resolved is bind-mounted through its file descriptor onto a kubelet-owned path
//! (`<pod>/volume-subpaths/<volume>/<container>/<n>`), which the container's spec binds.
//! Nothing between the check and the mount can swap the path.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// Opens `path` below `root` (an O_PATH descriptor), never leaving it.
fn open_beneath(root: &OwnedFd, path: &str) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(root.as_raw_fd(), path, how)?;
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `sub` of the volume at `volume`, made if missing (as directories) and resolved inside
/// the volume: an O_PATH descriptor of it.
pub fn resolve(volume: &Path, sub: &str) -> Result<OwnedFd, String> {
    let root = nix::fcntl::open(
        volume,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening volume {}: {e}", volume.display()))?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    let root = unsafe { OwnedFd::from_raw_fd(root) };
    let parts: Vec<&str> = sub
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let not_within = || {
        format!(
            "subpath {sub:?} not within volume path {:?}",
            volume.display().to_string()
        )
    };
    let mut current = open_beneath(&root, ".").map_err(|e| e.to_string())?;
    for k in 0..parts.len() {
        let prefix = parts[..=k].join("/");
        current = match open_beneath(&root, &prefix) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                // Made in the directory resolved so far (mkdirat follows nothing).
                match nix::sys::stat::mkdirat(
                    Some(current.as_raw_fd()),
                    parts[k],
                    Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(format!("creating subpath {sub:?}: {e}")),
                }
                open_beneath(&root, &prefix).map_err(|e| match e {
                    Errno::EXDEV => not_within(),
                    e => format!("subpath {sub:?}: {e}"),
                })?
            }
            Err(Errno::EXDEV) => return Err(not_within()),
            Err(e) => return Err(format!("subpath {sub:?}: {e}")),
        };
    }
    Ok(current)
}

/// Unmounts whatever is mounted at `target` (stacked mounts too).
fn unmount(target: &Path) -> Result<(), String> {
    loop {
        match nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(Errno::EINVAL | Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(format!("unmounting {}: {e}", target.display())),
        }
    }
}

/// Binds `sub` of the volume at `volume` (resolved by [`resolve`]) onto `target`, which
/// is made (a directory or an empty file, as the source is) and replaces an earlier bind.
pub fn bind(volume: &Path, sub: &str, target: &Path) -> Result<(), String> {
    let fd = resolve(volume, sub)?;
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let is_dir = fs::metadata(&source)
        .map_err(|e| format!("subpath {sub:?}: {e}"))?
        .is_dir();
    unmount(target)?;
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    if is_dir {
        fs::create_dir_all(target)
    } else {
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(target)
            .map(drop)
    }
    .map_err(|e| format!("{}: {e}", target.display()))?;
    nix::mount::mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("binding subpath {sub:?}: {e}"))
}

/// Unmounts every subPath bind under `dir` (`volume-subpaths` of a pod), so removing the
/// directory can never reach into a volume; an error if one stays mounted.
pub fn unbind_all(dir: &Path) -> Result<(), String> {
    // <volume>/<container>/<n>
    for v in fs::read_dir(dir).into_iter().flatten().flatten() {
        for c in fs::read_dir(v.path()).into_iter().flatten().flatten() {
            for m in fs::read_dir(c.path()).into_iter().flatten().flatten() {
                unmount(&m.path())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subpaths_stay_inside_their_volume() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("vol");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&volume).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), "host").unwrap();
        // Made when missing, as directories.
        let fd = resolve(&volume, "a/b/c").unwrap();
        assert!(volume.join("a/b/c").is_dir());
        let seen = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(seen, volume.join("a/b/c"));
        // Links that stay inside are followed.
        std::os::unix::fs::symlink("a/b", volume.join("inside")).unwrap();
        assert!(resolve(&volume, "inside/c").is_ok());
        // Links out of the volume, absolute or climbing, are refused, also half-way.
        std::os::unix::fs::symlink(&outside, volume.join("abs")).unwrap();
        std::os::unix::fs::symlink("../outside", volume.join("up")).unwrap();
        for sub in ["abs", "up", "up/secret", "abs/new/dir", "a/../../outside"] {
            let e = resolve(&volume, sub).unwrap_err();
            assert!(e.contains("not within volume path"), "{sub}: {e}");
        }
        assert!(!outside.join("new").exists());
    }

    #[test]
    fn a_bind_follows_what_was_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("vol");
        fs::create_dir_all(volume.join("data")).unwrap();
        fs::write(volume.join("data/f"), "x").unwrap();
        let target = dir.path().join("subpaths/vol/c/0");
        bind(&volume, "data", &target).unwrap();
        assert_eq!(fs::read_to_string(target.join("f")).unwrap(), "x");
        // Bound again (a restarted container): still one mount.
        bind(&volume, "data", &target).unwrap();
        unbind_all(&dir.path().join("subpaths")).unwrap();
        assert!(!target.join("f").exists());
        assert!(volume.join("data/f").exists());
    }
}
