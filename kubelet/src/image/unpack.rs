//! Safe unpacking of OCI image layers (the job of containerd's `archive.Apply`).
//!
//! # How layers are stored
//!
//! Every layer is unpacked once, into its own directory (keyed by chain id by the store),
//! and containers later stack those directories as overlayfs lowerdirs. To apply layer N,
//! [`apply_layer`] mounts an overlay with the parents' directories as lowers, layer N's
//! (empty) directory as upper and a scratch work dir, and unpacks the tar stream into the
//! merged mount: symlinks left by earlier layers resolve exactly as they will in the
//! container, and deletions become overlayfs whiteouts in the upper by themselves (removing
//! a lower file leaves a 0/0 character device; a directory created where a lower entry was
//! removed is marked opaque). The first layer has no parents and is unpacked straight into
//! its directory. This is containerd's mount-based apply on Linux.
//!
//! # Safety
//!
//! Layers are untrusted input. [`apply_tar`] never creates, changes or removes anything
//! outside `root`, whatever the names, link targets and symlinks in the archive:
//!
//! - Entry names are cleaned lexically first (`.`, empty components and leading `/` dropped,
//!   `..` clamped at the root, as Go's `filepath.Clean("/" + name)` does).
//! - Every lookup of an existing directory goes through `openat2(RESOLVE_IN_ROOT)` relative
//!   to a descriptor of `root`, so `..`, absolute symlinks (`var/run -> /run` means
//!   `<root>/run`) and chains of symlinks are all resolved as if `root` were `/`.
//! - The last component is always created, opened or removed with `*at` calls relative to
//!   the resolved parent's descriptor, without following it (`O_NOFOLLOW`,
//!   `AT_SYMLINK_NOFOLLOW`, `RESOLVE_NO_SYMLINKS`). A symlink's target is stored verbatim —
//!   it may point anywhere, but it is never followed on the host.
//! - Hard link targets are resolved in `root` the same way; a link to a symlink links the
//!   symlink itself. Hard links to directories are refused (the kernel forbids them).
//!
//! # Tar semantics
//!
//! - A later entry replaces an earlier one at the same path (`rm -rf` then create), except
//!   that a directory entry over an existing directory merges: the contents stay and the
//!   entry's metadata is applied. (A directory entry over a symlink to a directory replaces
//!   the symlink, as in docker and containerd.)
//! - Missing parent directories are created (mode 0755, owned by the caller) one component
//!   at a time, each resolved inside `root`; a dangling symlink on the way is followed the
//!   way the kernel would, creating its target inside `root`.
//! - `.wh.NAME` removes NAME (recursively; a symlink is removed, not followed).
//!   `.wh..wh..opq` makes its directory opaque: everything in it that this same archive did
//!   not write is removed (in the overlay case this leaves whiteouts for the lower entries).
//!   Other `.wh..wh.*` names (aufs metadata) are ignored. Whiteout files are never created,
//!   and entries *below* a `.wh.*` component are skipped with a warning.
//! - An entry for the root itself (`./`) is ignored: the root's own metadata belongs to the
//!   store. PAX global headers are ignored. Any entry type other than file, directory,
//!   symlink, hard link, character/block device and fifo is refused: [`apply_tar`] returns
//!   [`UnpackError::Refused`] (as containerd does).
//! - Metadata: owner first (changing it clears set-id bits and file capabilities), then
//!   xattrs from PAX `SCHILY.xattr.*` records, then the full mode including
//!   setuid/setgid/sticky (not for symlinks), then atime/mtime (PAX `mtime`/`atime` with
//!   sub-second precision when present; atime defaults to mtime). Directory times are set
//!   at the very end, after their contents are written. Hard link entries only add a name:
//!   they never change the shared inode's metadata.
//! - Xattrs in overlayfs's private namespaces (`trusted.overlay.*`, `user.overlay.*`) are
//!   skipped with a warning, so a layer cannot forge whiteouts, redirects or metacopy files
//!   for the overlay it will be part of; `user.*` xattrs are skipped on anything but regular
//!   files and directories (the kernel forbids them); `EOPNOTSUPP` is ignored with a warning.
//!
//! # Errors
//!
//! The first failure stops the apply and is returned with the entry's index (1-based, in
//! archive order), its name and what failed; whatever was unpacked so far stays, and the
//! caller throws the layer directory away.

mod sys;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use sha2::{Digest, Sha256};
use tar::EntryType;

/// What [`apply_tar`] / [`apply_layer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries read (including whiteouts and skipped entries).
    pub entries: u64,
    /// Length of the uncompressed tar stream, trailing padding included.
    pub bytes: u64,
    /// `sha256:<hex>` of the uncompressed tar stream: compare with the image config's
    /// `rootfs.diff_ids`.
    pub diff_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("unsupported layer media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("unsupported layer compression {0} (only gzip and uncompressed layers are supported)")]
    UnsupportedCompression(&'static str),
    /// The stream could not be read or decompressed, or is not a valid tar archive.
    #[error("reading layer (after {entries} entries): {source}")]
    Read { entries: u64, source: io::Error },
    /// A filesystem operation for one entry failed.
    #[error("tar entry #{index} {path:?}: {what}: {source}")]
    Entry {
        index: u64,
        path: String,
        what: String,
        source: io::Error,
    },
    /// An entry that is refused by policy (unknown type, hard link to a directory, ...).
    #[error("tar entry #{index} {path:?}: {reason}")]
    Refused {
        index: u64,
        path: String,
        reason: String,
    },
    /// Preparing or tearing down the unpack target (opening the root, the overlay mount).
    #[error("{what}: {source}")]
    Setup { what: String, source: io::Error },
}

fn setup_err(what: impl Into<String>) -> impl FnOnce(Errno) -> UnpackError {
    let what = what.into();
    move |e| UnpackError::Setup {
        what,
        source: e.into(),
    }
}

/// Applies one uncompressed tar stream onto `root`: a directory that is the merged view of
/// the layer's parents (an overlay mount), or an empty directory for a first layer. Never
/// creates, changes or removes anything outside `root` (see the module docs for the exact
/// rules). The stream is read to its end, so the returned `diff_id` covers all of it.
pub fn apply_tar<R: Read>(tar: R, root: &Path) -> Result<UnpackStats, UnpackError> {
    let mut input = BufReader::with_capacity(
        128 * 1024,
        HashingReader {
            inner: tar,
            hasher: Sha256::new(),
            len: 0,
        },
    );
    let mut unpacker = Unpacker::new(root)?;
    let entries = unpacker.apply_archive(&mut input)?;
    unpacker.finish()?;
    // The archive ends at its first zero block; hash the rest (the second zero block and
    // the padding up to the record size) too, as the diff_id covers the whole stream.
    io::copy(&mut input, &mut io::sink())
        .map_err(|source| UnpackError::Read { entries, source })?;
    let hashed = input.into_inner();
    Ok(UnpackStats {
        entries,
        bytes: hashed.len,
        diff_id: format!("sha256:{}", hex::encode(hashed.hasher.finalize())),
    })
}

/// Applies one layer blob for the store.
///
/// - `compressed`: the layer blob as stored. The compression is detected from its first
///   bytes (gzip, including multi-member gzip, or none), as containerd does; zstd is
///   recognised and refused.
/// - `media_type`: the descriptor's media type; must be an OCI or Docker layer type
///   (`application/vnd.oci.image.layer.v1.tar[+gzip]`, their `nondistributable` variants,
///   `application/vnd.docker.image.rootfs.[foreign.]diff.tar[.gzip]`).
/// - `parents`: the directories of the layers below, **topmost first**. If empty, the
///   layer is unpacked straight into `upper`.
/// - `upper`: the layer's own directory (created if missing, normally empty).
/// - `work`: scratch space on the same filesystem as `upper` (created if missing; must be
///   empty). It holds the overlay's workdir and the temporary mountpoint, and is left as
///   it was found (empty, or absent if it was absent).
///
/// The overlay is mounted with `index=off,metacopy=off` (so every copied-up file carries
/// its data and the upper is self-contained), and always unmounted before returning, also
/// on error. At most ~200 parents fit in one mount's options (the kernel's own limit is 500
/// lowers). Nothing is fsync'ed: callers that need durability should `syncfs` the store.
pub fn apply_layer<R: Read + Send>(
    compressed: R,
    media_type: &str,
    parents: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<UnpackStats, UnpackError> {
    check_media_type(media_type)?;
    let tar = decompress(compressed)?;
    if parents.is_empty() {
        std::fs::create_dir_all(upper).map_err(|source| UnpackError::Setup {
            what: format!("creating {}", upper.display()),
            source,
        })?;
        return with_read_ahead(tar, |tar| apply_tar(tar, upper));
    }
    let mount = OverlayMount::mount(parents, upper, work)?;
    let applied = with_read_ahead(tar, |tar| apply_tar(tar, &mount.merged));
    let unmounted = mount.unmount();
    let stats = applied?;
    unmounted?;
    Ok(stats)
}

/// Runs `f` on a reader fed by a second thread that reads (and so decompresses) `src`
/// ahead: inflating is CPU work and writing files is filesystem work, and with the two on
/// different threads a layer unpacks in about the time of the slower one. Measured on the
/// 10-layer 50 MB benchmark image: see hack/bench/images.sh.
fn with_read_ahead<R: Read + Send, T>(mut src: R, f: impl FnOnce(&mut ChannelReader) -> T) -> T {
    const CHUNK: usize = 256 << 10;
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
    std::thread::scope(|scope| {
        scope.spawn(move || loop {
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0;
            let r = loop {
                match src.read(&mut buf[n..]) {
                    Ok(0) => break Ok(n),
                    Ok(k) => {
                        n += k;
                        if n == CHUNK {
                            break Ok(n);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            let last = !matches!(r, Ok(CHUNK));
            let item = r.map(|n| {
                buf.truncate(n);
                buf
            });
            // A closed channel means the consumer stopped (an error): stop reading too.
            let empty = matches!(&item, Ok(b) if b.is_empty());
            if (!empty && tx.send(item).is_err()) || last {
                break;
            }
        });
        // Dropped at the end of this closure, before the scope joins the reader thread.
        let mut reader = ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        };
        f(&mut reader)
    })
}

/// The consuming end of [`with_read_ahead`].
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The reader thread finished: end of stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------
// Media types and decompression

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

fn check_media_type(media_type: &str) -> Result<(), UnpackError> {
    const PLAIN_OR_GZIP: &[&str] = &[
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ];
    const ZSTD: &[&str] = &[
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    ];
    if PLAIN_OR_GZIP.contains(&media_type) {
        Ok(())
    } else if ZSTD.contains(&media_type) {
        Err(UnpackError::UnsupportedCompression("zstd"))
    } else {
        Err(UnpackError::UnsupportedMediaType(media_type.to_string()))
    }
}

/// A layer stream, decompressed according to its magic bytes.
enum Decompressed<R: Read> {
    Plain(R),
    Gzip(Box<flate2::read::MultiGzDecoder<R>>),
}

impl<R: Read> Read for Decompressed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decompressed::Plain(r) => r.read(buf),
            Decompressed::Gzip(r) => r.read(buf),
        }
    }
}

type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

fn decompress<R: Read>(mut r: R) -> Result<Decompressed<Sniffed<R>>, UnpackError> {
    let mut magic = vec![0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        match r.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(UnpackError::Read { entries: 0, source }),
        }
    }
    magic.truncate(n);
    if magic.starts_with(ZSTD_MAGIC) {
        return Err(UnpackError::UnsupportedCompression("zstd"));
    }
    let gzip = magic.starts_with(GZIP_MAGIC);
    let stream = io::Cursor::new(magic).chain(r);
    Ok(if gzip {
        Decompressed::Gzip(Box::new(flate2::read::MultiGzDecoder::new(stream)))
    } else {
        Decompressed::Plain(stream)
    })
}

/// Hashes (and counts) everything read through it: sits between the decompressor and the
/// tar parser, so the digest is the layer's diff_id.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------
// The overlay mount for layers with parents

/// Overlayfs refuses more lowers than this (`OVL_MAX_STACK`).
const MAX_LOWERS: usize = 500;

/// A temporary overlay mount at `<work>/m` with workdir `<work>/w`. Unmounted and cleaned
/// up by [`OverlayMount::unmount`], or, on early exit, by `Drop`.
struct OverlayMount {
    work: PathBuf,
    created_work: bool,
    ovl_work: PathBuf,
    merged: PathBuf,
    mounted: bool,
}

impl OverlayMount {
    fn mount(parents: &[PathBuf], upper: &Path, work: &Path) -> Result<Self, UnpackError> {
        if parents.len() > MAX_LOWERS {
            return Err(UnpackError::Setup {
                what: format!("mounting the overlay of {} parent layers", parents.len()),
                source: io::Error::other(format!("overlayfs allows at most {MAX_LOWERS}")),
            });
        }
        let io_setup = |what: String| move |source| UnpackError::Setup { what, source };
        std::fs::create_dir_all(upper)
            .map_err(io_setup(format!("creating {}", upper.display())))?;
        let created_work = !work.exists();
        std::fs::create_dir_all(work).map_err(io_setup(format!("creating {}", work.display())))?;
        let mut this = OverlayMount {
            work: work.to_path_buf(),
            created_work,
            ovl_work: work.join("w"),
            merged: work.join("m"),
            mounted: false,
        };
        // `this` cleans up whatever exists from here on.
        let not_empty = std::fs::read_dir(work)
            .map_err(io_setup(format!("reading {}", work.display())))?
            .next()
            .is_some();
        if not_empty {
            return Err(UnpackError::Setup {
                what: format!("using {} as the work dir", work.display()),
                source: io::Error::other("it is not empty"),
            });
        }
        for d in [&this.ovl_work, &this.merged] {
            std::fs::create_dir(d).map_err(io_setup(format!("creating {}", d.display())))?;
        }

        // Layers are named by descriptors (`/proc/self/fd/N`): short, so many layers fit in
        // the one page of mount options, and immune to `:` / `,` in paths.
        let open =
            |p: &Path| sys::open_dir(p).map_err(setup_err(format!("opening {}", p.display())));
        let lowers = parents
            .iter()
            .map(|p| open(p))
            .collect::<Result<Vec<_>, _>>()?;
        let upper_fd = open(upper)?;
        let work_fd = open(&this.ovl_work)?;
        let lowerdir = lowers
            .iter()
            .map(|fd| sys::proc_fd(fd.as_fd()))
            .collect::<Vec<_>>()
            .join(":");
        let base = format!(
            "lowerdir={lowerdir},upperdir={},workdir={}",
            sys::proc_fd(upper_fd.as_fd()),
            sys::proc_fd(work_fd.as_fd())
        );
        let flags =
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME;
        let mut result = Err(Errno::EINVAL);
        // Prefer self-contained uppers; fall back to the defaults on kernels that do not
        // know these options.
        for opts in [format!("{base},index=off,metacopy=off"), base] {
            if opts.len() >= 4096 {
                return Err(UnpackError::Setup {
                    what: format!("mounting the overlay of {} parent layers", parents.len()),
                    source: io::Error::other("too many layers for one page of mount options"),
                });
            }
            result = nix::mount::mount(
                Some("overlay"),
                &this.merged,
                Some("overlay"),
                flags,
                Some(opts.as_str()),
            );
            if result != Err(Errno::EINVAL) {
                break;
            }
        }
        result.map_err(setup_err(format!(
            "mounting an overlay of {} parent layers with upper {} at {}",
            parents.len(),
            upper.display(),
            this.merged.display()
        )))?;
        this.mounted = true;
        Ok(this)
    }

    /// Unmounts and removes the scratch directories.
    fn unmount(mut self) -> Result<(), UnpackError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), UnpackError> {
        if self.mounted {
            let mut result = Ok(());
            // EBUSY can be transient (a descriptor being closed on another thread); after
            // a few tries detach lazily rather than leak the mount.
            for attempt in 0..10 {
                result = nix::mount::umount2(&self.merged, MntFlags::empty());
                if result != Err(Errno::EBUSY) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10 << attempt.min(4)));
            }
            if result == Err(Errno::EBUSY) {
                tracing::warn!(mountpoint = %self.merged.display(), "overlay busy; detaching it");
                result = nix::mount::umount2(&self.merged, MntFlags::MNT_DETACH);
            }
            result.map_err(setup_err(format!("unmounting {}", self.merged.display())))?;
            self.mounted = false;
        }
        let mut first_err = None;
        let targets = [&self.ovl_work, &self.merged];
        for d in targets
            .into_iter()
            .chain(self.created_work.then_some(&self.work))
        {
            match std::fs::remove_dir_all(d) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    first_err.get_or_insert(UnpackError::Setup {
                        what: format!("removing {}", d.display()),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        self.created_work = false;
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!("cleaning up the layer overlay: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The unpacker

const WH_PREFIX: &[u8] = b".wh.";
const WH_META_PREFIX: &[u8] = b".wh..wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";

/// A directory inside the root, resolved: a descriptor and its canonical path relative to
/// the root (symlinks resolved), which is how paths written by this layer are remembered.
struct DirHandle {
    fd: OwnedFd,
    rel: PathBuf,
}

impl DirHandle {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
    fn raw(&self) -> Option<i32> {
        Some(self.fd.as_raw_fd())
    }
}

/// How many resolved directories to keep open between entries.
const DIR_CACHE: usize = 64;

struct Unpacker {
    root: OwnedFd,
    /// The root's own path as the kernel reports it, to turn descriptors into `rel` paths.
    root_path: PathBuf,
    /// Resolved directories by cleaned entry path (tars list siblings together). Emptied
    /// whenever anything is removed, so a cached resolution can never be stale.
    dirs: HashMap<Vec<u8>, Rc<DirHandle>>,
    /// Canonical paths this archive wrote, and all their ancestors: what an opaque
    /// whiteout keeps.
    written: HashSet<PathBuf>,
    /// Directory times, applied last.
    dir_times: Vec<(PathBuf, TimeSpec, TimeSpec)>,
    buf: Vec<u8>,
}

/// Identifies the entry being applied, for errors.
struct Ctx {
    index: u64,
    path: String,
}

impl Ctx {
    fn err(&self, what: impl Into<String>) -> impl FnOnce(Errno) -> UnpackError + '_ {
        let what = what.into();
        move |e| self.io_err(what, e.into())
    }
    fn io_err(&self, what: impl Into<String>, source: io::Error) -> UnpackError {
        UnpackError::Entry {
            index: self.index,
            path: self.path.clone(),
            what: what.into(),
            source,
        }
    }
    fn refuse(&self, reason: impl Into<String>) -> UnpackError {
        UnpackError::Refused {
            index: self.index,
            path: self.path.clone(),
            reason: reason.into(),
        }
    }
}

/// What an entry creates.
enum Kind {
    Dir,
    File,
    Symlink(Vec<u8>),
    HardLink(Vec<u8>),
    Node { kind: SFlag, dev: libc::dev_t },
}

/// Ownership, permissions, times and xattrs from the header and its PAX records.
struct Meta {
    mode: Mode,
    uid: Uid,
    gid: Gid,
    atime: TimeSpec,
    mtime: TimeSpec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Unpacker {
    fn new(root: &Path) -> Result<Self, UnpackError> {
        let fd = sys::open_dir(root).map_err(setup_err(format!("opening {}", root.display())))?;
        let root_path = sys::fd_path(fd.as_fd()).map_err(setup_err(format!(
            "finding the path of {} in /proc/self/fd",
            root.display()
        )))?;
        Ok(Unpacker {
            root: fd,
            root_path,
            dirs: HashMap::new(),
            written: HashSet::new(),
            dir_times: Vec::new(),
            buf: vec![0; 256 * 1024],
        })
    }

    fn apply_archive<R: Read>(&mut self, input: R) -> Result<u64, UnpackError> {
        let mut archive = tar::Archive::new(input);
        let mut count = 0;
        let entries = archive
            .entries()
            .map_err(|source| UnpackError::Read { entries: 0, source })?;
        for entry in entries {
            let mut entry = entry.map_err(|source| UnpackError::Read {
                entries: count,
                source,
            })?;
            count += 1;
            self.apply_entry(&mut entry, count)?;
        }
        Ok(count)
    }

    fn apply_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        index: u64,
    ) -> Result<(), UnpackError> {
        let raw_path = entry.path_bytes().into_owned();
        let ctx = Ctx {
            index,
            path: String::from_utf8_lossy(&raw_path).into_owned(),
        };
        let header = entry.header();
        let link = || {
            entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .filter(|l| !l.is_empty())
                .ok_or_else(|| ctx.refuse("link entry without a target"))
        };
        let kind = match header.entry_type() {
            EntryType::Directory => Kind::Dir,
            // Old (pre-POSIX) archives mark directories with a trailing slash only.
            EntryType::Regular if raw_path.ends_with(b"/") => Kind::Dir,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Kind::File,
            EntryType::Symlink => Kind::Symlink(link()?),
            EntryType::Link => Kind::HardLink(link()?),
            t @ (EntryType::Char | EntryType::Block) => {
                let num = |n: io::Result<Option<u32>>| {
                    n.map(Option::unwrap_or_default)
                        .map_err(|e| ctx.io_err("reading the device number", e))
                };
                let (major, minor) = (num(header.device_major())?, num(header.device_minor())?);
                let kind = if t == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                Kind::Node {
                    kind,
                    dev: nix::sys::stat::makedev(major.into(), minor.into()),
                }
            }
            EntryType::Fifo => Kind::Node {
                kind: SFlag::S_IFIFO,
                dev: 0,
            },
            EntryType::XGlobalHeader => {
                tracing::debug!(entry = index, "ignoring a PAX global header");
                return Ok(());
            }
            other => {
                return Err(ctx.refuse(format!(
                    "unsupported entry type {:?}",
                    other.as_byte() as char
                )))
            }
        };

        let comps = clean_path(&raw_path);
        let Some((&name, parent)) = comps.split_last() else {
            tracing::debug!(entry = index, "ignoring the entry for the root itself");
            return Ok(());
        };
        if parent.iter().any(|c| c.starts_with(WH_PREFIX)) {
            tracing::warn!(entry = index, path = %ctx.path,
                "skipping an entry below a whiteout name");
            return Ok(());
        }
        if name.starts_with(WH_PREFIX) {
            return self.whiteout(parent, name, &ctx);
        }

        let meta = Meta::read(entry, &ctx)?;
        let dir = self
            .dir(parent, true)
            .map_err(ctx.err("resolving the parent directory"))?
            .expect("created when missing");
        match kind {
            Kind::Dir => self.make_dir(&dir, parent, name, &meta, &ctx)?,
            Kind::File => self.write_file(&dir, name, entry, &meta, &ctx)?,
            Kind::Symlink(target) => self.make_symlink(&dir, name, &target, &meta, &ctx)?,
            Kind::HardLink(target) => self.make_hard_link(&dir, name, &target, &ctx)?,
            Kind::Node { kind, dev } => self.make_node(&dir, name, kind, dev, &meta, &ctx)?,
        }
        self.mark_written(dir.rel.join(OsStr::from_bytes(name)));
        Ok(())
    }

    /// Resolves the directory `comps` (a cleaned path) inside the root. With `create`,
    /// missing directories are made; without, a missing one is `Ok(None)`.
    fn dir(&mut self, comps: &[&[u8]], create: bool) -> nix::Result<Option<Rc<DirHandle>>> {
        let key = comps.join(&b'/');
        if let Some(d) = self.dirs.get(&key) {
            return Ok(Some(d.clone()));
        }
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        let fd = match sys::open_in_root(self.root.as_fd(), &key, flags) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if create => self.make_dirs(comps)?,
            Err(Errno::ENOENT | Errno::ENOTDIR) if !create => return Ok(None),
            Err(e) => return Err(e),
        };
        // Where the kernel resolved it to (through any symlinks), relative to the root.
        let rel = match sys::fd_path(fd.as_fd()) {
            Ok(p) => match p.strip_prefix(&self.root_path) {
                Ok(r) => r.to_path_buf(),
                Err(_) => PathBuf::from(OsStr::from_bytes(&key)),
            },
            Err(_) => PathBuf::from(OsStr::from_bytes(&key)),
        };
        let handle = Rc::new(DirHandle { fd, rel });
        self.cache_dir(key, handle.clone());
        Ok(Some(handle))
    }

    fn cache_dir(&mut self, key: Vec<u8>, handle: Rc<DirHandle>) {
        if self.dirs.len() >= DIR_CACHE {
            self.dirs.clear();
        }
        self.dirs.insert(key, handle);
    }

    /// `mkdir -p` inside the root: walks `comps` one at a time, following symlinks as the
    /// kernel would but with the root as `/` (each step is itself resolved with
    /// `RESOLVE_IN_ROOT`), and creates what is missing (mode 0755). This is the slow path,
    /// taken only when a parent is missing; it is what makes a dangling `var/run -> /run`
    /// create `<root>/run`.
    fn make_dirs(&mut self, comps: &[&[u8]]) -> nix::Result<OwnedFd> {
        // Linux's limit on symlinks followed in one lookup.
        const MAX_LINKS: usize = 40;
        let mut todo: std::collections::VecDeque<Vec<u8>> =
            comps.iter().map(|c| c.to_vec()).collect();
        let mut done: Vec<Vec<u8>> = Vec::new(); // canonical: real directories only
        let (mut links, mut retries) = (0, 0);
        while let Some(c) = todo.pop_front() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let here = sys::open_in_root_no_symlinks(
                self.root.as_fd(),
                &done.join(&b'/'),
                OFlag::O_PATH | OFlag::O_DIRECTORY,
            )?;
            match sys::open_beneath(here.as_fd(), &c, OFlag::O_PATH, Mode::empty()) {
                Ok(fd) => {
                    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
                    match file_type(&st) {
                        SFlag::S_IFDIR => done.push(c),
                        SFlag::S_IFLNK => {
                            links += 1;
                            if links > MAX_LINKS {
                                return Err(Errno::ELOOP);
                            }
                            let target = sys::readlink_fd(fd.as_fd())?;
                            if target.starts_with(b"/") {
                                done.clear();
                            }
                            for t in target.split(|&b| b == b'/').rev() {
                                todo.push_front(t.to_vec());
                            }
                        }
                        _ => return Err(Errno::ENOTDIR),
                    }
                }
                Err(Errno::ENOENT) => {
                    match nix::sys::stat::mkdirat(
                        Some(here.as_raw_fd()),
                        c.as_slice(),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        // Appeared meanwhile (only possible if something else writes in
                        // the root): look again, a bounded number of times.
                        Err(Errno::EEXIST) if retries < MAX_LINKS => {
                            retries += 1;
                            todo.push_front(c);
                            continue;
                        }
                        r => r?,
                    }
                    // Deterministic whatever the umask.
                    nix::sys::stat::fchmodat(
                        Some(here.as_raw_fd()),
                        c.as_slice(),
                        Mode::from_bits_truncate(0o755),
                        nix::sys::stat::FchmodatFlags::FollowSymlink,
                    )?;
                    done.push(c);
                }
                Err(e) => return Err(e),
            }
        }
        sys::open_in_root_no_symlinks(
            self.root.as_fd(),
            &done.join(&b'/'),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
        )
    }

    /// Runs `create`; if the name is taken, removes what is there and runs it again. With
    /// `merge_dirs`, an existing directory is kept instead (returns `Ok(None)`).
    fn create_replacing<T>(
        &mut self,
        dir: &DirHandle,
        name: &[u8],
        merge_dirs: bool,
        mut create: impl FnMut() -> nix::Result<T>,
    ) -> nix::Result<Option<T>> {
        match create() {
            Err(Errno::EEXIST) => {}
            r => return r.map(Some),
        }
        let st = nix::sys::stat::fstatat(dir.raw(), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if file_type(&st) == SFlag::S_IFDIR && merge_dirs {
            return Ok(None);
        }
        self.removed_something();
        sys::remove_all(dir.fd(), name)?;
        create().map(Some)
    }

    /// Forgets cached directory resolutions: after a removal they may be stale.
    fn removed_something(&mut self) {
        self.dirs.clear();
    }

    fn make_dir(
        &mut self,
        dir: &DirHandle,
        parent: &[&[u8]],
        name: &[u8],
        meta: &Meta,
        ctx: &Ctx,
    ) -> Result<(), UnpackError> {
        self.create_replacing(dir, name, true, || {
            nix::sys::stat::mkdirat(dir.raw(), name, Mode::from_bits_truncate(0o700))
        })
        .map_err(ctx.err("creating the directory"))?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
        let fd = sys::open_beneath(dir.fd(), name, flags, Mode::empty())
            .map_err(ctx.err("opening the directory"))?;
        nix::unistd::fchown(fd.as_raw_fd(), Some(meta.uid), Some(meta.gid))
            .map_err(ctx.err("changing the owner"))?;
        set_xattrs(Target::Fd(fd.as_fd()), true, meta, ctx)?;
        nix::sys::stat::fchmod(fd.as_raw_fd(), meta.mode).map_err(ctx.err("changing the mode"))?;
        let rel = dir.rel.join(OsStr::from_bytes(name));
        self.dir_times.push((rel.clone(), meta.atime, meta.mtime));
        // The next entries are most likely inside this directory.
        let mut key = parent.join(&b'/');
        if !key.is_empty() {
            key.push(b'/');
        }
        key.extend_from_slice(name);
        self.cache_dir(key, Rc::new(DirHandle { fd, rel }));
        Ok(())
    }

    fn write_file(
        &mut self,
        dir: &DirHandle,
        name: &[u8],
        entry: &mut tar::Entry<'_, impl Read>,
        meta: &Meta,
        ctx: &Ctx,
    ) -> Result<(), UnpackError> {
        let size = entry.size();
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let fd = self
            .create_replacing(dir, name, false, || {
                sys::open_beneath(dir.fd(), name, flags, Mode::from_bits_truncate(0o600))
            })
            .map_err(ctx.err("creating the file"))?
            .expect("never merged");
        let mut file = File::from(fd);
        let mut written = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ctx.io_err("reading the file's data from the layer", e)),
            };
            file.write_all(&self.buf[..n])
                .map_err(|e| ctx.io_err("writing the file", e))?;
            written += n as u64;
        }
        // The entry's reader just stops at the end of the stream: a short file means a
        // truncated layer.
        if written != size {
            return Err(ctx.io_err(
                "reading the file's data from the layer",
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("layer ends after {written} of {size} bytes"),
                ),
            ));
        }
        let fd = file.as_fd();
        nix::unistd::fchown(fd.as_raw_fd(), Some(meta.uid), Some(meta.gid))
            .map_err(ctx.err("changing the owner"))?;
        set_xattrs(Target::Fd(fd), true, meta, ctx)?;
        nix::sys::stat::fchmod(fd.as_raw_fd(), meta.mode).map_err(ctx.err("changing the mode"))?;
        nix::sys::stat::futimens(fd.as_raw_fd(), &meta.atime, &meta.mtime)
            .map_err(ctx.err("setting the times"))?;
        Ok(())
    }

    fn make_symlink(
        &mut self,
        dir: &DirHandle,
        name: &[u8],
        target: &[u8],
        meta: &Meta,
        ctx: &Ctx,
    ) -> Result<(), UnpackError> {
        self.create_replacing(dir, name, false, || {
            nix::unistd::symlinkat(target, dir.raw(), name)
        })
        .map_err(ctx.err("creating the symlink"))?;
        self.finish_special(dir, name, false, meta, ctx)
    }

    fn make_node(
        &mut self,
        dir: &DirHandle,
        name: &[u8],
        kind: SFlag,
        dev: libc::dev_t,
        meta: &Meta,
        ctx: &Ctx,
    ) -> Result<(), UnpackError> {
        self.create_replacing(dir, name, false, || {
            nix::sys::stat::mknodat(dir.raw(), name, kind, Mode::from_bits_truncate(0o600), dev)
        })
        .map_err(ctx.err("creating the special file"))?;
        self.finish_special(dir, name, true, meta, ctx)
    }

    /// Metadata for symlinks and device/fifo nodes, which must not be opened for I/O: by
    /// name relative to the parent, never following the name.
    fn finish_special(
        &mut self,
        dir: &DirHandle,
        name: &[u8],
        chmod: bool,
        meta: &Meta,
        ctx: &Ctx,
    ) -> Result<(), UnpackError> {
        let nofollow = AtFlags::AT_SYMLINK_NOFOLLOW;
        nix::unistd::fchownat(dir.raw(), name, Some(meta.uid), Some(meta.gid), nofollow)
            .map_err(ctx.err("changing the owner"))?;
        if !meta.xattrs.is_empty() {
            let fd = sys::open_beneath(dir.fd(), name, OFlag::O_PATH, Mode::empty())
                .map_err(ctx.err("opening for xattrs"))?;
            set_xattrs(Target::OPath(fd.as_fd()), false, meta, ctx)?;
        }
        if chmod {
            // A node we just created, not a symlink: nothing to follow.
            nix::sys::stat::fchmodat(
                dir.raw(),
                name,
                meta.mode,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(ctx.err("changing the mode"))?;
        }
        nix::sys::stat::utimensat(
            dir.raw(),
            name,
            &meta.atime,
            &meta.mtime,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(ctx.err("setting the times"))
    }

    fn make_hard_link(
        &mut self,
        dir: &DirHandle,
        name: &[u8],
        target: &[u8],
        ctx: &Ctx,
    ) -> Result<(), UnpackError> {
        let tcomps = clean_path(target);
        let Some((&tname, tparent)) = tcomps.split_last() else {
            return Err(ctx.refuse("hard link to the root directory"));
        };
        let what = format!(
            "resolving the hard link target {:?}",
            String::from_utf8_lossy(target)
        );
        let tdir = self
            .dir(tparent, false)
            .and_then(|d| d.ok_or(Errno::ENOENT))
            .map_err(ctx.err(what.clone()))?;
        let nofollow = AtFlags::AT_SYMLINK_NOFOLLOW;
        let tst = nix::sys::stat::fstatat(tdir.raw(), tname, nofollow).map_err(ctx.err(what))?;
        if file_type(&tst) == SFlag::S_IFDIR {
            return Err(ctx.refuse(format!(
                "hard link to a directory ({:?})",
                String::from_utf8_lossy(target)
            )));
        }
        // Already a link to the same inode (e.g. a link to itself): nothing to do.
        if let Ok(st) = nix::sys::stat::fstatat(dir.raw(), name, nofollow) {
            if (st.st_dev, st.st_ino) == (tst.st_dev, tst.st_ino) {
                return Ok(());
            }
        }
        // Flags 0: a symlink target is linked itself, never followed.
        self.create_replacing(dir, name, false, || {
            nix::unistd::linkat(tdir.raw(), tname, dir.raw(), name, AtFlags::empty())
        })
        .map_err(ctx.err("creating the hard link"))?;
        Ok(())
    }

    fn whiteout(&mut self, parent: &[&[u8]], name: &[u8], ctx: &Ctx) -> Result<(), UnpackError> {
        if name == WH_OPAQUE {
            let Some(dir) = self
                .dir(parent, false)
                .map_err(ctx.err("resolving the opaque directory"))?
            else {
                return Ok(());
            };
            self.removed_something();
            return self
                .clear_unwritten(dir.fd(), &dir.rel)
                .map_err(ctx.err("emptying the opaque directory"));
        }
        if name.starts_with(WH_META_PREFIX) {
            tracing::debug!(entry = ctx.index, path = %ctx.path, "ignoring aufs metadata");
            return Ok(());
        }
        let victim = &name[WH_PREFIX.len()..];
        if matches!(victim, b"" | b"." | b"..") {
            tracing::warn!(entry = ctx.index, path = %ctx.path, "ignoring a malformed whiteout");
            return Ok(());
        }
        let Some(dir) = self
            .dir(parent, false)
            .map_err(ctx.err("resolving the whiteout's directory"))?
        else {
            return Ok(());
        };
        self.removed_something();
        sys::remove_all(dir.fd(), victim).map_err(ctx.err("removing the whited-out path"))
    }

    /// The opaque whiteout: removes everything below `dir` that this archive did not write
    /// (descending into directories that hold something it wrote).
    fn clear_unwritten(&self, dir: BorrowedFd<'_>, rel: &Path) -> nix::Result<()> {
        for name in sys::read_dir_names(dir)? {
            let child = rel.join(OsStr::from_bytes(&name));
            if !self.written.contains(&child) {
                sys::remove_all(dir, &name)?;
                continue;
            }
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
            match sys::open_beneath(dir, &name, flags, Mode::empty()) {
                Ok(sub) => self.clear_unwritten(sub.as_fd(), &child)?,
                Err(Errno::ENOTDIR | Errno::ELOOP | Errno::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn mark_written(&mut self, mut path: PathBuf) {
        while self.written.insert(path.clone()) {
            if !path.pop() || path.as_os_str().is_empty() {
                break;
            }
        }
    }

    /// Sets directory times, now that nothing will be created in them any more.
    fn finish(&mut self) -> Result<(), UnpackError> {
        self.dirs.clear();
        for (rel, atime, mtime) in std::mem::take(&mut self.dir_times) {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
            let fd = match sys::open_in_root_no_symlinks(
                self.root.as_fd(),
                rel.as_os_str().as_bytes(),
                flags,
            ) {
                Ok(fd) => fd,
                // Removed or replaced by a later entry.
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => continue,
                Err(e) => return Err(setup_err(format!("opening directory {}", rel.display()))(e)),
            };
            nix::sys::stat::futimens(fd.as_raw_fd(), &atime, &mtime).map_err(setup_err(
                format!("setting the times of directory {}", rel.display()),
            ))?;
        }
        Ok(())
    }
}

impl Meta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>, ctx: &Ctx) -> Result<Self, UnpackError> {
        let h = entry.header();
        let field = |what: &str| {
            let what = format!("reading the {what} field");
            move |e| ctx.io_err(what, e)
        };
        let mode = h.mode().map_err(field("mode"))? & 0o7777;
        // PAX uid/gid records are already folded into the header by the tar crate.
        let id = |n: u64, what: &str| {
            u32::try_from(n).map_err(|_| ctx.refuse(format!("{what} {n} is out of range")))
        };
        let uid = id(h.uid().map_err(field("uid"))?, "uid")?;
        let gid = id(h.gid().map_err(field("gid"))?, "gid")?;
        let secs = i64::try_from(h.mtime().map_err(field("mtime"))?).unwrap_or(i64::MAX);
        let mut mtime = TimeSpec::new(secs, 0);
        let mut atime = None;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry
            .pax_extensions()
            .map_err(|e| ctx.io_err("reading PAX records", e))?
        {
            for ext in pax {
                let ext = ext.map_err(|e| ctx.io_err("reading PAX records", e))?;
                let (key, value) = (ext.key_bytes(), ext.value_bytes());
                match key {
                    b"mtime" => mtime = parse_pax_time(value).unwrap_or(mtime),
                    b"atime" => atime = parse_pax_time(value),
                    _ => {
                        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                            xattrs.push((name.to_vec(), value.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(Meta {
            mode: Mode::from_bits_truncate(mode as libc::mode_t),
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(gid),
            atime: atime.unwrap_or(mtime),
            mtime,
            xattrs,
        })
    }
}

/// Where to set xattrs: a descriptor open for I/O, or an `O_PATH` one (symlinks, nodes).
enum Target<'a> {
    Fd(BorrowedFd<'a>),
    OPath(BorrowedFd<'a>),
}

fn set_xattrs(
    target: Target<'_>,
    file_or_dir: bool,
    meta: &Meta,
    ctx: &Ctx,
) -> Result<(), UnpackError> {
    for (name, value) in &meta.xattrs {
        let shown = String::from_utf8_lossy(name);
        if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
            tracing::warn!(entry = ctx.index, path = %ctx.path, xattr = %shown,
                "skipping an overlayfs-private xattr");
            continue;
        }
        if !file_or_dir && name.starts_with(b"user.") {
            continue;
        }
        let r = match target {
            Target::Fd(fd) => sys::fsetxattr(fd, name, value),
            Target::OPath(fd) => sys::setxattr_o_path(fd, name, value),
        };
        match r {
            Ok(()) => {}
            Err(Errno::EOPNOTSUPP) => {
                tracing::warn!(entry = ctx.index, path = %ctx.path, xattr = %shown,
                    "xattr not supported here; skipped");
            }
            Err(e) => return Err(ctx.err(format!("setting xattr {shown}"))(e)),
        }
    }
    Ok(())
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Cleans an entry name the way `filepath.Clean("/" + name)` would: the components of a
/// relative path below the root, with no `.`, `..` or empty ones. Empty means the root.
fn clean_path(raw: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Parses a PAX time (`1700000000`, `1700000000.5`, `-1.25`).
fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    Some(if !neg {
        TimeSpec::new(secs, nanos)
    } else if nanos == 0 {
        TimeSpec::new(-secs, 0)
    } else {
        TimeSpec::new(-secs - 1, 1_000_000_000 - nanos)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use tar::Header;

    const MTIME: u64 = 1_600_000_000;

    /// Builds archives from raw headers: names are copied byte for byte (the tar crate's
    /// `set_path` would refuse `..` and absolute names, which is what we want to test).
    struct TarBuilder(tar::Builder<Vec<u8>>);

    impl TarBuilder {
        fn new() -> Self {
            TarBuilder(tar::Builder::new(Vec::new()))
        }

        #[allow(clippy::too_many_arguments)]
        fn raw(
            &mut self,
            kind: EntryType,
            name: &str,
            link: &str,
            data: &[u8],
            mode: u32,
            edit: impl FnOnce(&mut Header),
        ) -> &mut Self {
            let mut h = Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(MTIME);
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            edit(&mut h);
            h.set_cksum();
            self.0.append(&h, data).unwrap();
            self
        }
        fn file(&mut self, name: &str, data: &str) -> &mut Self {
            self.raw(EntryType::Regular, name, "", data.as_bytes(), 0o644, |_| {})
        }
        fn file_as(&mut self, name: &str, data: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
            self.raw(EntryType::Regular, name, "", data.as_bytes(), mode, |h| {
                h.set_uid(uid);
                h.set_gid(gid);
            })
        }
        fn dir(&mut self, name: &str) -> &mut Self {
            self.dir_mode(name, 0o755)
        }
        fn dir_mode(&mut self, name: &str, mode: u32) -> &mut Self {
            self.raw(EntryType::Directory, name, "", b"", mode, |_| {})
        }
        fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.raw(EntryType::Symlink, name, target, b"", 0o777, |_| {})
        }
        fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.raw(EntryType::Link, name, target, b"", 0o644, |_| {})
        }
        /// A PAX extended header describing the next entry.
        fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            let mut data = Vec::new();
            for (k, v) in records {
                let body = format!(" {k}=").into_bytes();
                let rest = body.len() + v.len() + 1;
                let mut len = rest + 1;
                while len.to_string().len() + rest != len {
                    len += 1;
                }
                data.extend_from_slice(len.to_string().as_bytes());
                data.extend_from_slice(&body);
                data.extend_from_slice(v);
                data.push(b'\n');
            }
            self.raw(EntryType::XHeader, "PaxHeader", "", &data, 0o644, |_| {})
        }
        fn build(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    /// An outer temp dir holding the unpack root, a sentinel file and a sibling directory.
    struct Fixture {
        outer: tempfile::TempDir,
        root: PathBuf,
    }

    impl Fixture {
        fn new() -> Self {
            let outer = tempfile::tempdir().unwrap();
            let root = outer.path().join("root");
            std::fs::create_dir(&root).unwrap();
            std::fs::write(outer.path().join("sentinel"), "sentinel").unwrap();
            std::fs::create_dir(outer.path().join("sibling")).unwrap();
            std::fs::write(outer.path().join("sibling/inner"), "inner").unwrap();
            Fixture { outer, root }
        }
        fn path(&self, p: &str) -> PathBuf {
            self.root.join(p)
        }
        fn apply(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
            apply_tar(tar, &self.root)
        }
        /// Everything in the outer dir except the root, with metadata.
        fn outside(&self) -> BTreeMap<PathBuf, String> {
            let mut out = snapshot(self.outer.path(), true);
            out.retain(|p, _| !p.starts_with("root/") && p != Path::new("root"));
            out.into_iter()
                .map(|(p, n)| (p, format!("{n:?}")))
                .collect()
        }
    }

    /// One filesystem object, for comparing trees.
    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Node {
        Dir {
            mode: u32,
            uid: u32,
            gid: u32,
        },
        File {
            mode: u32,
            uid: u32,
            gid: u32,
            data: Vec<u8>,
            mtime: i64,
            nlink: u64,
        },
        Symlink {
            target: PathBuf,
            uid: u32,
            gid: u32,
        },
        Other {
            mode: u32,
            rdev: u64,
            uid: u32,
            gid: u32,
        },
        /// Only with `identity`: inode details that must not change.
        Ident(u64, u64, i64, i64, u32),
    }

    /// Walks `dir` without following symlinks. With `identity`, records inode numbers,
    /// link counts and times too (for "nothing changed" checks).
    fn snapshot(dir: &Path, identity: bool) -> BTreeMap<PathBuf, Node> {
        fn walk(base: &Path, dir: &Path, identity: bool, out: &mut BTreeMap<PathBuf, Node>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                let rel = p.strip_prefix(base).unwrap().to_path_buf();
                let m = std::fs::symlink_metadata(&p).unwrap();
                let ft = m.file_type();
                let (mode, uid, gid) = (m.mode() & 0o7777, m.uid(), m.gid());
                let node = if ft.is_dir() {
                    Node::Dir { mode, uid, gid }
                } else if ft.is_file() {
                    Node::File {
                        mode,
                        uid,
                        gid,
                        data: std::fs::read(&p).unwrap(),
                        mtime: m.mtime(),
                        nlink: m.nlink(),
                    }
                } else if ft.is_symlink() {
                    Node::Symlink {
                        target: std::fs::read_link(&p).unwrap(),
                        uid,
                        gid,
                    }
                } else {
                    Node::Other {
                        mode: m.mode(),
                        rdev: m.rdev(),
                        uid,
                        gid,
                    }
                };
                if identity {
                    let id = Node::Ident(m.ino(), m.nlink(), m.mtime(), m.ctime(), m.mode());
                    out.insert(rel.join("#ident"), id);
                }
                out.insert(rel, node);
                if ft.is_dir() {
                    walk(base, &p, identity, out);
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(dir, dir, identity, &mut out);
        out
    }

    fn meta(p: &Path) -> std::fs::Metadata {
        std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn is_root() -> bool {
        nix::unistd::Uid::effective().is_root()
    }

    /// Inode, link count, mtime and content.
    type HostFile = Option<(u64, u64, i64, Vec<u8>)>;

    /// Host files the hostile archives aim at: identity and content must not change.
    fn host_state() -> Vec<(PathBuf, HostFile)> {
        [
            "/etc/passwd",
            "/etc/x",
            "/etc/y",
            "/x",
            "/run/x",
            "/tkfz_a",
            "/etc/tkfz_a",
        ]
        .iter()
        .map(|p| {
            let p = PathBuf::from(p);
            let s = std::fs::symlink_metadata(&p).ok().map(|m| {
                (
                    m.ino(),
                    m.nlink(),
                    m.mtime(),
                    std::fs::read(&p).unwrap_or_default(),
                )
            });
            (p, s)
        })
        .collect()
    }

    #[test]
    fn unpack_files_dirs_modes_owners_times_xattrs() {
        let fx = Fixture::new();
        let mut t = TarBuilder::new();
        t.dir_mode("./", 0o700) // the root itself: ignored
            .dir_mode("tmp/", 0o1777)
            .dir("bin/")
            .file_as("bin/su", "su", 0o4755, 1000, 1000)
            .file_as("bin/sg", "sg", 0o2711, 0, 50)
            .symlink("bin/sh", "/bin/busybox")
            .hardlink("bin/su2", "bin/su")
            .dir_mode("home/u/", 0o750)
            .raw(EntryType::Directory, "home/u/", "", b"", 0o750, |h| {
                h.set_uid(1000);
                h.set_gid(1001);
            })
            .file_as("home/u/f", "data", 0o640, 1000, 1001)
            .raw(EntryType::Fifo, "run/fifo", "", b"", 0o600, |_| {})
            .raw(EntryType::Char, "dev/null", "", b"", 0o666, |h| {
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
            })
            .pax(&[
                ("SCHILY.xattr.user.test", b"hello"),
                ("mtime", b"1600000000.25"),
                ("uid", b"4000000"),
            ])
            .file("xattr", "x")
            .pax(&[
                ("SCHILY.xattr.trusted.tk", b"on-link"),
                ("SCHILY.xattr.user.x", b"no"),
            ])
            .symlink("xlink", "xattr")
            .file("tmp/late", "written after tmp/'s entry");
        let tar = t.build();
        let root_mode = mode_of(&fx.root);
        let stats = fx.apply(&tar).unwrap();
        assert_eq!(stats.entries, 15, "PAX headers belong to their entry");
        assert_eq!(stats.bytes, tar.len() as u64);
        assert_eq!(
            stats.diff_id,
            format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
        );

        let mode = |p: &str| meta(&fx.path(p)).mode() & 0o7777;
        assert_eq!(mode_of(&fx.root), root_mode, "the root's entry is ignored");
        assert_eq!(mode("tmp"), 0o1777);
        assert_eq!(mode("bin/su"), 0o4755, "setuid survives the chown");
        assert_eq!(mode("bin/sg"), 0o2711);
        assert_eq!(
            (
                meta(&fx.path("bin/su")).uid(),
                meta(&fx.path("bin/su")).gid()
            ),
            (1000, 1000)
        );
        assert_eq!(meta(&fx.path("bin/sg")).gid(), 50);
        assert_eq!(
            std::fs::read_link(fx.path("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
        assert_eq!(
            meta(&fx.path("bin/su2")).ino(),
            meta(&fx.path("bin/su")).ino()
        );
        assert_eq!(meta(&fx.path("bin/su")).nlink(), 2);
        let home = meta(&fx.path("home/u"));
        assert_eq!(
            (home.mode() & 0o7777, home.uid(), home.gid()),
            (0o750, 1000, 1001)
        );
        assert_eq!(mode("home"), 0o755, "implicit parents are 0755");
        assert_eq!(read(&fx.path("home/u/f")), "data");
        assert!(meta(&fx.path("run/fifo")).file_type().is_fifo());
        let null = meta(&fx.path("dev/null"));
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
        assert_eq!(null.mode() & 0o7777, 0o666);

        let x = meta(&fx.path("xattr"));
        assert_eq!((x.mtime(), x.mtime_nsec()), (MTIME as i64, 250_000_000));
        assert_eq!(x.uid(), 4_000_000, "PAX uid");
        assert_eq!(
            sys::lgetxattr(&fx.path("xattr"), "user.test").unwrap(),
            b"hello"
        );
        assert_eq!(
            sys::lgetxattr(&fx.path("xlink"), "trusted.tk").unwrap(),
            b"on-link"
        );
        assert_eq!(
            sys::lgetxattr(&fx.path("xattr"), "trusted.tk"),
            None,
            "not via the link"
        );
        // Directory times are set after their contents.
        assert_eq!(meta(&fx.path("tmp")).mtime(), MTIME as i64);
        assert_eq!(meta(&fx.path("home/u")).mtime(), MTIME as i64);
        assert_eq!(meta(&fx.path("bin/sh")).mtime(), MTIME as i64);
    }

    fn mode_of(p: &Path) -> u32 {
        meta(p).mode() & 0o7777
    }

    #[test]
    fn unpack_hostile_names_stay_inside() {
        let fx = Fixture::new();
        let (outside, host) = (fx.outside(), host_state());
        let mut t = TarBuilder::new();
        t.file("../../etc/x", "1")
            .file("/etc/y", "2")
            .file("./../x", "3")
            .file("a/../../../b", "4")
            .file("../sentinel", "5")
            .dir("../../..")
            .dir("/")
            .file("//sibling///inner", "6");
        fx.apply(&t.build()).unwrap();
        assert_eq!(read(&fx.path("etc/x")), "1");
        assert_eq!(read(&fx.path("etc/y")), "2");
        assert_eq!(read(&fx.path("x")), "3");
        assert_eq!(read(&fx.path("b")), "4");
        assert_eq!(read(&fx.path("sentinel")), "5");
        assert_eq!(read(&fx.path("sibling/inner")), "6");
        assert_eq!(fx.outside(), outside);
        assert_eq!(host_state(), host);
    }

    #[test]
    fn unpack_symlink_to_host_root_is_resolved_in_root() {
        let fx = Fixture::new();
        let (outside, host) = (fx.outside(), host_state());
        let outer = fx.outer.path().to_str().unwrap().to_string();
        let mut t = TarBuilder::new();
        t.symlink("evil", "/")
            .file("evil/etc/passwd", "pwned")
            .symlink("up", "../../../../..")
            .file("up/x", "via up")
            .symlink("abs_outer", &outer)
            .file("abs_outer/sentinel", "in root")
            .symlink("sib", "../sibling")
            .file("sib/inner", "in root too");
        fx.apply(&t.build()).unwrap();
        assert_eq!(read(&fx.path("etc/passwd")), "pwned");
        assert_eq!(read(&fx.path("x")), "via up");
        let inside = format!("{}/sentinel", outer.trim_start_matches('/'));
        assert_eq!(read(&fx.path(&inside)), "in root");
        assert_eq!(read(&fx.path("sibling/inner")), "in root too");
        assert_eq!(std::fs::read_link(fx.path("evil")).unwrap(), Path::new("/"));
        assert_eq!(fx.outside(), outside);
        assert_eq!(host_state(), host);
    }

    #[test]
    fn unpack_absolute_and_chained_symlinks() {
        let fx = Fixture::new();
        let host = host_state();
        let mut t = TarBuilder::new();
        t.dir("run/")
            .dir("var/")
            .symlink("var/run", "/run")
            .file("var/run/x", "x")
            // Dangling: the target is created inside the root, as the kernel would resolve it.
            .symlink("var/lock", "/run/lock")
            .file("var/lock/y", "y")
            .dir("d/")
            .symlink("d/a", "../../..")
            .file("d/a/z", "z")
            .symlink("l1", "l2")
            .symlink("l2", "/l3")
            .symlink("l3", "../../real")
            .file("l1/f", "f");
        fx.apply(&t.build()).unwrap();
        assert_eq!(read(&fx.path("run/x")), "x");
        assert!(meta(&fx.path("var/run")).file_type().is_symlink());
        assert_eq!(read(&fx.path("run/lock/y")), "y");
        assert_eq!(read(&fx.path("z")), "z");
        assert_eq!(read(&fx.path("real/f")), "f");
        assert_eq!(host_state(), host);

        // A symlink loop is an error, not a hang.
        let mut t = TarBuilder::new();
        t.symlink("loop1", "loop2")
            .symlink("loop2", "loop1")
            .file("loop1/x", "x");
        let err = fx.apply(&t.build()).unwrap_err();
        assert!(matches!(err, UnpackError::Entry { index: 3, .. }), "{err}");
        assert!(err.to_string().contains("loop1/x"), "{err}");
    }

    #[test]
    fn unpack_hard_links_never_reach_host_files() {
        let fx = Fixture::new();
        let (outside, host) = (fx.outside(), host_state());
        let outer = fx.outer.path().to_str().unwrap().to_string();
        let sentinel = format!("{outer}/sentinel");
        let passwd_links = meta(Path::new("/etc/passwd")).nlink();

        for target in ["../../etc/passwd", "/etc/passwd", &sentinel, "../sentinel"] {
            let mut t = TarBuilder::new();
            t.hardlink("h", target);
            let err = fx.apply(&t.build()).unwrap_err();
            assert!(
                err.to_string().contains("hard link target"),
                "{target}: {err}"
            );
        }
        // Through symlinks that point outside: resolved in the root (and missing there).
        let mut t = TarBuilder::new();
        t.symlink("up", "../../../..")
            .hardlink("h", &format!("up{sentinel}"));
        assert!(fx.apply(&t.build()).is_err());
        let mut t = TarBuilder::new();
        t.symlink("etc", "/etc").hardlink("h", "etc/passwd");
        assert!(fx.apply(&t.build()).is_err());

        // A link to a symlink links the symlink itself, which is never followed.
        let mut t = TarBuilder::new();
        t.symlink("esc", &sentinel).hardlink("h2", "esc");
        fx.apply(&t.build()).unwrap();
        let h2 = meta(&fx.path("h2"));
        assert!(h2.file_type().is_symlink());
        assert_eq!(h2.ino(), meta(&fx.path("esc")).ino());

        // A target inside the root, reached by a hostile name: linked inside.
        let mut t = TarBuilder::new();
        t.file("etc2/passwd", "mine")
            .hardlink("h3", "../../../etc2/passwd")
            .hardlink("h3", "h3") // to itself: nothing to do
            .hardlink("h4", "/etc2/passwd");
        fx.apply(&t.build()).unwrap();
        assert_eq!(
            meta(&fx.path("h3")).ino(),
            meta(&fx.path("etc2/passwd")).ino()
        );
        assert_eq!(meta(&fx.path("etc2/passwd")).nlink(), 3);

        // Directories cannot be hard linked.
        let mut t = TarBuilder::new();
        t.dir("somedir/").hardlink("dirlink", "somedir");
        let err = fx.apply(&t.build()).unwrap_err();
        assert!(matches!(err, UnpackError::Refused { .. }), "{err}");

        assert_eq!(meta(Path::new("/etc/passwd")).nlink(), passwd_links);
        assert_eq!(fx.outside(), outside);
        assert_eq!(host_state(), host);
    }

    #[test]
    fn unpack_whiteouts_in_a_plain_directory() {
        let fx = Fixture::new();
        let mut t = TarBuilder::new();
        t.file("a", "a")
            .file("b", "b")
            .dir("d/")
            .file("d/x", "x")
            .file("d/y", "y")
            .dir("d/sub/")
            .file("d/sub/z", "z")
            .symlink("ln", "d")
            .dir("e/")
            .file("e/old", "old")
            .file("e/gone", "gone");
        fx.apply(&t.build()).unwrap();

        let mut t = TarBuilder::new();
        t.file(".wh.a", "")
            .dir("d/")
            .file("d/new", "new")
            .dir("d/sub/")
            .file("d/.wh..wh..opq", "")
            .file("d/later", "later")
            .file(".wh.ln", "")
            .file("ln2/.wh.whatever", "") // the parent is missing: nothing to do
            .file(".wh..wh.plnk", "") // aufs metadata: ignored
            .file(".wh.nothing", "")
            .symlink("eln", "e")
            .file("eln/.wh.gone", "") // resolved through the symlink
            .file(".wh.x/inside", ""); // below a whiteout name: skipped
        let stats = fx.apply(&t.build()).unwrap();
        assert_eq!(stats.entries, 13);
        assert!(!fx.path("a").exists());
        assert_eq!(read(&fx.path("b")), "b");
        let names = |p: &str| {
            let mut v: Vec<String> = std::fs::read_dir(fx.path(p))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            names("d"),
            ["later", "new", "sub"],
            "opaque keeps what this layer wrote"
        );
        assert!(
            names("d/sub").is_empty(),
            "below a kept dir, old entries still go"
        );
        assert!(
            std::fs::symlink_metadata(fx.path("ln")).is_err(),
            "the link is removed"
        );
        assert!(fx.path("d").is_dir(), "not its target");
        assert!(!fx.path("ln2").exists());
        assert_eq!(names("e"), ["old"]);
        let all = snapshot(&fx.root, false);
        assert!(
            all.keys().all(|p| !p.to_string_lossy().contains(".wh.")),
            "{all:#?}"
        );
    }

    #[test]
    fn unpack_replace_semantics() {
        let fx = Fixture::new();
        let mut t = TarBuilder::new();
        t.file("p", "file")
            .symlink("p", "elsewhere")
            .dir("q/")
            .file("q/inner", "i")
            .file("q", "now a file")
            .file("r", "file")
            .dir_mode("r/", 0o711)
            .dir_mode("s/", 0o700)
            .file("s/keep", "k")
            .dir_mode("s/", 0o755)
            .symlink("t", "/somewhere")
            .file("t", "replaces the link, not its target")
            .file("u", "first")
            .file("u", "second");
        fx.apply(&t.build()).unwrap();
        assert_eq!(
            std::fs::read_link(fx.path("p")).unwrap(),
            Path::new("elsewhere")
        );
        assert_eq!(read(&fx.path("q")), "now a file");
        assert!(meta(&fx.path("r")).is_dir());
        assert_eq!(mode_of(&fx.path("r")), 0o711);
        assert_eq!(read(&fx.path("s/keep")), "k", "directories merge");
        assert_eq!(mode_of(&fx.path("s")), 0o755, "and take the later metadata");
        assert_eq!(read(&fx.path("t")), "replaces the link, not its target");
        assert!(!fx.path("somewhere").exists());
        assert_eq!(read(&fx.path("u")), "second");

        // A file where a parent should be: an error naming the entry.
        let mut t = TarBuilder::new();
        t.file("f", "f").file("f/g", "g");
        let err = fx.apply(&t.build()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("#2") && msg.contains("f/g") && msg.contains("parent"),
            "{msg}"
        );
    }

    #[test]
    fn unpack_long_names_pax_and_entry_types() {
        let fx = Fixture::new();
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(100));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(4);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        b.append_data(&mut h, &long, &b"long"[..]).unwrap(); // GNU long name
        let mut t = TarBuilder(b);
        let pax_path = format!("pax/{}", "p".repeat(200));
        t.pax(&[("path", pax_path.as_bytes())])
            .file("ignored-name", "pax")
            .pax(&[("linkpath", pax_path.as_bytes())])
            .symlink("paxlink", "ignored-target")
            .raw(
                EntryType::XGlobalHeader,
                "global",
                "",
                b"9 a=bcde\n",
                0o644,
                |_| {},
            )
            .raw(EntryType::Regular, "oldstyle-dir/", "", b"", 0o755, |_| {});
        fx.apply(&t.build()).unwrap();
        assert_eq!(read(&fx.path(&long)), "long");
        assert_eq!(read(&fx.path(&pax_path)), "pax");
        assert!(!fx.path("ignored-name").exists());
        assert_eq!(
            std::fs::read_link(fx.path("paxlink")).unwrap(),
            Path::new(&pax_path)
        );
        assert!(!fx.path("global").exists());
        assert!(fx.path("oldstyle-dir").is_dir());

        let mut t = TarBuilder::new();
        t.file("ok", "")
            .raw(EntryType::new(b'V'), "volume", "", b"", 0o644, |_| {});
        let err = fx.apply(&t.build()).unwrap_err();
        assert!(
            matches!(&err, UnpackError::Refused { index: 2, reason, .. } if reason.contains("'V'")),
            "{err}"
        );
    }

    #[test]
    fn unpack_hashes_whole_stream_and_detects_truncation() {
        let fx = Fixture::new();
        let mut t = TarBuilder::new();
        t.file("a", &"x".repeat(3000));
        let mut tar = t.build();
        tar.extend_from_slice(&[0; 10240]); // extra padding after the end of the archive
        let stats = fx.apply(&tar).unwrap();
        assert_eq!(stats.bytes, tar.len() as u64);
        assert_eq!(
            stats.diff_id,
            format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
        );

        let err = fx.apply(&tar[..512 + 1000]).unwrap_err();
        assert!(err.to_string().contains("1000 of 3000"), "{err}");
        let err = fx.apply(&tar[..300]).unwrap_err();
        assert!(matches!(err, UnpackError::Read { .. }), "{err}");
    }

    #[test]
    fn unpack_apply_layer_media_types_and_gzip() {
        use flate2::{write::GzEncoder, Compression};
        let dir = tempfile::tempdir().unwrap();
        let mut t = TarBuilder::new();
        t.file("a", "a").file("b", &"b".repeat(100_000));
        let tar = t.build();
        let gz = |data: &[u8]| {
            let mut e = GzEncoder::new(Vec::new(), Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        };
        // Two gzip members, as some tools write.
        let mut multi = gz(&tar[..700]);
        multi.extend(gz(&tar[700..]));
        let want = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
        for (i, (blob, mt)) in [
            (gz(&tar), "application/vnd.oci.image.layer.v1.tar+gzip"),
            (multi, "application/vnd.docker.image.rootfs.diff.tar.gzip"),
            (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
        ]
        .into_iter()
        .enumerate()
        {
            let upper = dir.path().join(format!("l{i}"));
            let work = dir.path().join(format!("w{i}"));
            let stats = apply_layer(&blob[..], mt, &[], &upper, &work).unwrap();
            assert_eq!(stats.diff_id, want, "{mt}");
            assert_eq!(read(&upper.join("a")), "a");
        }
        let e = apply_layer(&tar[..], "application/json", &[], dir.path(), dir.path());
        assert!(matches!(e, Err(UnpackError::UnsupportedMediaType(_))));
        let e = apply_layer(
            &tar[..],
            "application/vnd.oci.image.layer.v1.tar+zstd",
            &[],
            dir.path(),
            dir.path(),
        );
        assert!(matches!(
            e,
            Err(UnpackError::UnsupportedCompression("zstd"))
        ));
        let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0, 0];
        let e = apply_layer(
            &zstd[..],
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &[],
            dir.path(),
            dir.path(),
        );
        assert!(matches!(
            e,
            Err(UnpackError::UnsupportedCompression("zstd"))
        ));
    }

    /// Unmounts (lazily, so it works even while something is open) when dropped.
    struct TestMount(PathBuf);

    impl Drop for TestMount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, MntFlags::MNT_DETACH);
        }
    }

    fn mount_read_only(lowers: &[&Path], at: &Path) -> TestMount {
        std::fs::create_dir_all(at).unwrap();
        let lower = lowers
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(":");
        nix::mount::mount(
            Some("overlay"),
            at,
            Some("overlay"),
            MsFlags::MS_RDONLY,
            Some(format!("lowerdir={lower}").as_str()),
        )
        .unwrap();
        TestMount(at.to_path_buf())
    }

    fn is_whiteout(p: &Path) -> bool {
        let m = meta(p);
        m.file_type().is_char_device() && m.rdev() == 0
    }

    /// Comparable view of a tree: directory mtimes (which depend on when children were
    /// created) and link counts (overlayfs reports lower files' own) are left out.
    fn comparable(dir: &Path) -> BTreeMap<PathBuf, Node> {
        snapshot(dir, false)
            .into_iter()
            .map(|(p, n)| {
                let n = match n {
                    Node::File {
                        mode,
                        uid,
                        gid,
                        data,
                        mtime,
                        ..
                    } => Node::File {
                        mode,
                        uid,
                        gid,
                        data,
                        mtime,
                        nlink: 0,
                    },
                    n => n,
                };
                (p, n)
            })
            .collect()
    }

    #[test]
    fn unpack_layers_through_overlayfs() {
        if !is_root() {
            eprintln!("skipping: needs root for overlayfs");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let p = |s: &str| tmp.path().join(s);
        const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

        let mut t = TarBuilder::new();
        t.file("file", "one")
            .dir("dir/")
            .file("dir/a", "a")
            .file("dir/b", "b")
            .dir("dir/sub/")
            .file("dir/sub/c", "c")
            .dir("opq/")
            .file("opq/old", "old")
            .dir("opq/oldsub/")
            .file("opq/oldsub/x", "x")
            .file("f2d", "becomes a dir")
            .dir("d2f/")
            .file("d2f/inner", "inner")
            .symlink("link", "dir")
            .symlink("abs", "/dir")
            .file("keep", "keep")
            .dir("gone/")
            .dir("gone/deep/")
            .file("gone/deep/f", "f");
        let layer1 = t.build();
        let mut t = TarBuilder::new();
        t.file(".wh.file", "")
            .dir("opq/")
            .file("opq/.wh..wh..opq", "")
            .file("opq/new", "new")
            .dir_mode("f2d/", 0o750)
            .file("f2d/x", "x")
            .file("d2f", "now a file")
            .file("dir/.wh.a", "")
            .file("link/via_link", "through the relative link")
            .file("abs/via_abs", "through the absolute link")
            .file(".wh.gone", "")
            .hardlink("keep2", "keep")
            .file_as("suid", "s", 0o4755, 1000, 1000);
        let layer2 = t.build();
        let mut t = TarBuilder::new();
        t.file("file", "back")
            .file("opq/new2", "new2")
            .file("f2d/.wh.x", "")
            .dir("dir/")
            .file("dir/.wh..wh..opq", "");
        let layer3 = t.build();

        let (l1, l2, l3) = (p("l1"), p("l2"), p("l3"));
        apply_layer(&layer1[..], TAR, &[], &l1, &p("w1")).unwrap();
        let s2 = apply_layer(&layer2[..], TAR, std::slice::from_ref(&l1), &l2, &p("w2")).unwrap();
        assert_eq!(s2.entries, 13);
        // Work dirs left as found (absent), nothing mounted any more.
        assert!(!p("w2").exists());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(tmp.path().to_str().unwrap()), "{mounts}");

        // Layer 2's directory is in overlayfs format.
        assert!(is_whiteout(&l2.join("file")));
        assert!(is_whiteout(&l2.join("dir/a")));
        assert!(is_whiteout(&l2.join("gone")));
        assert!(is_whiteout(&l2.join("opq/old")));
        assert!(is_whiteout(&l2.join("opq/oldsub")));
        assert_eq!(read(&l2.join("opq/new")), "new");
        assert!(l2.join("f2d").is_dir());
        assert_eq!(
            sys::lgetxattr(&l2.join("f2d"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..]),
            "a directory replacing a lower file is opaque"
        );
        assert_eq!(read(&l2.join("d2f")), "now a file");
        assert_eq!(read(&l2.join("dir/via_link")), "through the relative link");
        assert_eq!(read(&l2.join("dir/via_abs")), "through the absolute link");
        assert!(
            !l2.join("link").exists() && !l2.join("dir/b").exists(),
            "only changes"
        );
        let l2_tree = snapshot(&l2, false);
        assert!(l2_tree
            .keys()
            .all(|p| !p.to_string_lossy().contains(".wh.")));

        // Layer 3 on top of both: parents topmost first.
        apply_layer(&layer3[..], TAR, &[l2.clone(), l1.clone()], &l3, &p("w3")).unwrap();

        // The merged views equal a flattened, docker-style apply of the same layers.
        let flat = p("flat");
        std::fs::create_dir(&flat).unwrap();
        for (n, layers) in [
            (2, [&layer1, &layer2].as_slice()),
            (3, &[&layer1, &layer2, &layer3]),
        ] {
            let flat = flat.join(n.to_string());
            std::fs::create_dir(&flat).unwrap();
            for l in layers {
                apply_tar(&l[..], &flat).unwrap();
            }
            let lowers: Vec<&Path> = [&l3, &l2, &l1][3 - n..]
                .iter()
                .map(|p| p.as_path())
                .collect();
            let mnt = p(&format!("mnt{n}"));
            let _m = mount_read_only(&lowers, &mnt);
            assert_eq!(comparable(&mnt), comparable(&flat), "{n} layers");
            if n == 2 {
                let mut names: Vec<_> = snapshot(&mnt, false).into_keys().collect();
                names.sort();
                let want = [
                    "abs",
                    "d2f",
                    "dir",
                    "dir/b",
                    "dir/sub",
                    "dir/sub/c",
                    "dir/via_abs",
                    "dir/via_link",
                    "f2d",
                    "f2d/x",
                    "keep",
                    "keep2",
                    "link",
                    "opq",
                    "opq/new",
                    "suid",
                ];
                assert_eq!(names, want.iter().map(PathBuf::from).collect::<Vec<_>>());
                assert_eq!(mode_of(&mnt.join("suid")), 0o4755);
                assert_eq!(mode_of(&mnt.join("f2d")), 0o750);
                assert_eq!(
                    meta(&mnt.join("keep2")).ino(),
                    meta(&mnt.join("keep")).ino()
                );
            } else {
                assert_eq!(read(&mnt.join("file")), "back");
                assert!(!mnt.join("f2d/x").exists());
                assert!(std::fs::read_dir(mnt.join("dir")).unwrap().next().is_none());
            }
        }
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const NAMES: &[&str] = &[
            "tkfz_a", "tkfz_b", "etc", "sentinel", "sibling", "root", "inner",
        ];
        const DOTS: &[&str] = &["..", ".", ""];
        const WHITEOUTS: &[&str] = &[
            ".wh.tkfz_a",
            ".wh..wh..opq",
            ".wh.sibling",
            ".wh..",
            ".wh.root",
            ".wh.etc",
        ];
        /// `{OUTER}` becomes the outer temp dir's absolute path.
        const TARGETS: &[&str] = &[
            "/",
            "..",
            "../..",
            "../../..",
            "/etc",
            "/etc/passwd",
            "tkfz_a",
            "../sibling",
            "../../sentinel",
            "tkfz_a/../../..",
            ".",
            "/proc/self/root",
            "tkfz_b/tkfz_a",
        ];
        const OUTER_TARGETS: &[&str] = &[
            "{OUTER}",
            "{OUTER}/sibling",
            "{OUTER}/sentinel",
            "{OUTER}/sibling/inner",
        ];

        #[derive(Debug, Clone)]
        enum Fuzz {
            File(String, u8),
            Dir(String),
            Symlink(String, String),
            HardLink(String, String),
            Fifo(String),
        }

        fn path() -> impl Strategy<Value = String> {
            let component = prop_oneof![
                8 => prop::sample::select(NAMES),
                3 => prop::sample::select(DOTS),
                1 => prop::sample::select(WHITEOUTS),
            ];
            (any::<bool>(), prop::collection::vec(component, 1..5)).prop_map(|(abs, cs)| {
                let p = cs.join("/");
                if abs {
                    format!("/{p}")
                } else {
                    p
                }
            })
        }

        fn target() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => prop::sample::select(TARGETS).prop_map(String::from),
                2 => prop::sample::select(OUTER_TARGETS).prop_map(String::from),
                2 => path(),
            ]
        }

        fn entry() -> impl Strategy<Value = Fuzz> {
            prop_oneof![
                3 => (path(), any::<u8>()).prop_map(|(p, b)| Fuzz::File(p, b)),
                2 => path().prop_map(Fuzz::Dir),
                3 => (path(), target()).prop_map(|(p, t)| Fuzz::Symlink(p, t)),
                2 => (path(), target()).prop_map(|(p, t)| Fuzz::HardLink(p, t)),
                1 => path().prop_map(Fuzz::Fifo),
            ]
        }

        fn host_names() -> Vec<String> {
            let mut v = Vec::new();
            for d in ["/", "/etc", "/tmp", "/run"] {
                if let Ok(rd) = std::fs::read_dir(d) {
                    for e in rd.flatten() {
                        let n = e.file_name().to_string_lossy().into_owned();
                        if n.starts_with("tkfz") {
                            v.push(format!("{d}/{n}"));
                        }
                    }
                }
            }
            v
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn unpack_fuzz_never_escapes_root(entries in prop::collection::vec(entry(), 1..24)) {
                let fx = Fixture::new();
                let outer = fx.outer.path().to_str().unwrap().to_string();
                let fill = |t: &str| t.replace("{OUTER}", &outer);
                let tar_of = |entries: &[Fuzz]| {
                    let mut t = TarBuilder::new();
                    for e in entries {
                        match e {
                            Fuzz::File(p, b) => t.file(p, &b.to_string()),
                            Fuzz::Dir(p) => t.dir(p),
                            Fuzz::Symlink(p, l) => t.symlink(p, &fill(l)),
                            Fuzz::HardLink(p, l) => t.hardlink(p, &fill(l)),
                            Fuzz::Fifo(p) => t.raw(EntryType::Fifo, p, "", b"", 0o644, |_| {}),
                        };
                    }
                    t.build()
                };
                let (outside, host, names) = (fx.outside(), host_state(), host_names());
                // Errors are fine (e.g. a file where a directory is needed); escapes are not.
                // The whole archive first (it stops at the first error), then every entry
                // as an archive of its own, so that later entries still run after errors.
                let _ = apply_tar(&tar_of(&entries)[..], &fx.root);
                for e in &entries {
                    let _ = apply_tar(&tar_of(std::slice::from_ref(e))[..], &fx.root);
                }
                prop_assert_eq!(fx.outside(), outside);
                prop_assert_eq!(host_state(), host);
                prop_assert_eq!(host_names(), names);
            }
        }
    }
}
