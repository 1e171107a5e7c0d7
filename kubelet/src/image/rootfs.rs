//! A container's root filesystem: the image's layers as read-only overlayfs lowers, with an
//! upper and work dir of the container's own.

use std::fs;
use std::path::PathBuf;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::store::{io_err, remove_any, ImageRecord, Result, Store, StoreError};

/// Mounts `image` for container `id` and returns the merged root. Mounting again for the
/// same id is harmless (the existing mount is kept).
pub fn mount_rootfs(store: &Store, id: &str, image: &ImageRecord) -> Result<PathBuf> {
    check_id(id)?;
    let dir = store.rootfs_dir(id);
    let merged = dir.join("merged");
    if is_mountpoint(&merged) {
        return Ok(merged);
    }
    for d in ["upper", "work", "merged"] {
        let p = dir.join(d);
        fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
    }
    // Written first, so image GC never removes an image whose rootfs is being set up.
    let marker = dir.join("image");
    fs::write(&marker, &image.id).map_err(io_err("writing", &marker))?;
    let lowers = image.lower_dirs(store);
    if let Some(missing) = lowers.iter().find(|l| !l.is_dir()) {
        return Err(StoreError::Other(format!(
            "image {} is incomplete: layer {} is missing",
            image.id,
            missing.display()
        )));
    }
    let lower = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let opts = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        dir.join("upper").display(),
        dir.join("work").display()
    );
    if opts.len() >= 4096 {
        return Err(StoreError::Other(format!(
            "image {} has too many layers for one overlay mount ({} bytes of options)",
            image.id,
            opts.len()
        )));
    }
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|e| io_err("mounting overlay at", &merged)(e.into()))?;
    Ok(merged)
}

/// Unmounts and deletes container `id`'s root filesystem (its writable layer goes with it).
pub fn remove_rootfs(store: &Store, id: &str) -> Result<()> {
    check_id(id)?;
    let dir = store.rootfs_dir(id);
    let merged = dir.join("merged");
    if is_mountpoint(&merged) {
        umount2(&merged, MntFlags::MNT_DETACH)
            .map_err(|e| io_err("unmounting", &merged)(e.into()))?;
    }
    remove_any(&dir)
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        || id.starts_with('.')
    {
        return Err(StoreError::Other(format!("invalid container id {id:?}")));
    }
    Ok(())
}

/// Whether `path` is a mount point (its device differs from its parent's, or it is listed in
/// mountinfo — overlay on the same filesystem keeps st_dev distinct, so the first test works).
pub fn is_mountpoint(path: &std::path::Path) -> bool {
    let (Ok(me), Some(Ok(parent))) = (
        fs::symlink_metadata(path),
        path.parent().map(fs::symlink_metadata),
    ) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    me.dev() != parent.dev()
}
