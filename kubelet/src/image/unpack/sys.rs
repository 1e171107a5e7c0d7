//! Small safe wrappers over the Linux syscalls the unpacker needs and `nix` 0.29 lacks in a
//! convenient, fd-owning form: `openat2` (scoped lookups), directory listing from a
//! borrowed fd, recursive removal with `*at` calls only, and extended attributes.
//!
//! Everything here works on directory file descriptors and single path components, so no
//! function in this module ever resolves a path through a symlink it did not mean to.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;

pub(super) type Result<T> = std::result::Result<T, Errno>;

/// Takes ownership of a descriptor a syscall has just returned.
fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open-like syscall, so it is a valid,
    // open descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn openat2(dir: BorrowedFd<'_>, path: &[u8], how: OpenHow) -> Result<OwnedFd> {
    // The kernel may ask us to retry a lookup that raced with a rename or mount elsewhere
    // (only possible with `..` under RESOLVE_IN_ROOT / RESOLVE_BENEATH).
    for _ in 0..64 {
        match nix::fcntl::openat2(dir.as_raw_fd(), path, how) {
            Err(Errno::EAGAIN) => continue,
            r => return r.map(own),
        }
    }
    Err(Errno::EAGAIN)
}

/// Opens a directory given by a trusted host path (the unpack root itself), as `O_PATH`.
pub(super) fn open_dir(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(own)
}

/// Opens `path` (relative; `..`, absolute paths and symlinks all stay inside) as if `root`
/// were `/`: `openat2(RESOLVE_IN_ROOT)`. Magic links (`/proc/*/fd/*`) are never followed.
/// An empty path means `root` itself.
pub(super) fn open_in_root(root: BorrowedFd<'_>, path: &[u8], flags: OFlag) -> Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, path, how)
}

/// Like [`open_in_root`] for a path already known to be free of symlinks (a canonical path
/// computed earlier): if a symlink turns up anywhere on it, fails with `ELOOP`.
pub(super) fn open_in_root_no_symlinks(
    root: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlag,
) -> Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS);
    openat2(root, path, how)
}

/// Opens (or, with `O_CREAT`, creates) the single component `name` in `dir`, never
/// following a symlink and never leaving `dir` (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`).
/// With `O_PATH | O_NOFOLLOW` a symlink itself is opened.
pub(super) fn open_beneath(
    dir: BorrowedFd<'_>,
    name: &[u8],
    flags: OFlag,
    mode: Mode,
) -> Result<OwnedFd> {
    let mut how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    if flags.contains(OFlag::O_CREAT) {
        how = how.mode(mode);
    }
    openat2(dir, name, how)
}

/// The path the kernel knows `fd` by (`readlink /proc/self/fd/N`).
pub(super) fn fd_path(fd: BorrowedFd<'_>) -> Result<PathBuf> {
    nix::fcntl::readlink(proc_fd(fd).as_str()).map(PathBuf::from)
}

/// `/proc/self/fd/N`: a magic link to whatever `fd` refers to, usable with path-based calls
/// (for `O_PATH` descriptors) and as an overlayfs layer path.
pub(super) fn proc_fd(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// The entries of directory `dir` (an `O_PATH` descriptor is fine), without `.` and `..`.
pub(super) fn read_dir_names(dir: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>> {
    let fd = open_beneath(
        dir,
        b".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )?;
    let mut d = Dir::from(fd)?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes `name` from `dir` and, if it is a directory, everything below it (`rm -rf`),
/// using only `*at` calls on descriptors: symlinks are removed, never followed. A missing
/// `name` is not an error.
pub(super) fn remove_all(dir: BorrowedFd<'_>, name: &[u8]) -> Result<()> {
    match nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        // Linux says EISDIR for a directory; POSIX allows EPERM.
        Err(Errno::EISDIR | Errno::EPERM) => {}
        Err(e) => return Err(e),
    }
    let sub = match open_beneath(dir, name, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    for child in read_dir_names(sub.as_fd())? {
        remove_all(sub.as_fd(), &child)?;
    }
    drop(sub);
    match nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

fn c_name(name: &[u8]) -> Result<std::ffi::CString> {
    std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)
}

/// `fsetxattr` on an fd opened for reading or writing (regular files, directories).
pub(super) fn fsetxattr(fd: BorrowedFd<'_>, name: &[u8], value: &[u8]) -> Result<()> {
    let name = c_name(name)?;
    // SAFETY: `name` is NUL-terminated and `value` is a valid slice for the given length.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// Sets an xattr on the object an `O_PATH` descriptor refers to (a symlink, device or fifo,
/// which cannot be opened for I/O safely). `setxattr` on `/proc/self/fd/N` follows the
/// magic link to exactly that inode — for a symlink, the link itself, not its target.
pub(super) fn setxattr_o_path(fd: BorrowedFd<'_>, name: &[u8], value: &[u8]) -> Result<()> {
    let path = c_name(proc_fd(fd).as_bytes())?;
    let name = c_name(name)?;
    // SAFETY: both strings are NUL-terminated; `value` is valid for `value.len()` bytes.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// `lgetxattr(path, name)`: `None` when the attribute is absent (or unsupported).
#[cfg(test)]
pub(super) fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = c_name(path.as_os_str().as_bytes()).ok()?;
    let n = c_name(name.as_bytes()).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: NUL-terminated strings; `buf` is valid for writes of `buf.len()` bytes.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = usize::try_from(r).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// Reads the target of the symlink an `O_PATH | O_NOFOLLOW` descriptor refers to.
pub(super) fn readlink_fd(fd: BorrowedFd<'_>) -> Result<Vec<u8>> {
    nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "").map(OsString::into_vec)
}
