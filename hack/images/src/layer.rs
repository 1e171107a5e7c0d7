//! Layers: tar archives written byte for byte from a list of [`Entry`]s, then gzipped.
//!
//! The writer is deliberately dumb so tests can produce hostile archives exactly: paths and link
//! targets are written as given (no normalisation, `..` and absolute paths allowed), entries
//! stay in the order given, modes are written as given (sticky and setuid bits included), and
//! nothing comes from the build machine (mtime 0, uid/gid 0, no user or group names) unless set.
//! Headers are ustar; a path or link target longer than 100 bytes, and any record added with
//! [`Entry::pax`] or [`Entry::xattr`], goes in a PAX extended header before the entry.

use std::borrow::Cow;
use std::io::{self, Read, Write};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::GzBuilder;

use crate::{media_types, sha256_digest, Format};

const BLOCK: usize = 512;

/// What an [`Entry`] is.
#[derive(Debug, Clone)]
pub enum EntryKind {
    /// A directory (typeflag `5`).
    Dir,
    /// A regular file with its contents (typeflag `0`).
    File(Vec<u8>),
    /// A symbolic link to the target, written verbatim (typeflag `2`).
    Symlink(String),
    /// A hard link to an earlier entry's path, written verbatim (typeflag `1`).
    Hardlink(String),
    /// A character device (typeflag `3`).
    CharDevice { major: u32, minor: u32 },
    /// A block device (typeflag `4`).
    BlockDevice { major: u32, minor: u32 },
    /// A named pipe (typeflag `6`).
    Fifo,
    /// The escape hatch: this 512-byte header, then `data` padded to a block, written exactly as
    /// given. The entry's path, mode, owner and mtime are ignored, and the checksum is not
    /// recomputed: call [`tar::Header::set_cksum`] unless a bad checksum is the point. PAX
    /// records added to the entry are still written before it.
    Raw {
        header: Box<tar::Header>,
        data: Vec<u8>,
    },
}

/// One tar entry of a [`Layer`]. Build with the constructors, adjust with the `with`-style
/// methods:
///
/// ```
/// use tinykube_images::Entry;
/// let e = Entry::file("usr/bin/su", 0o4755, b"#!/bin/sh\n".to_vec())
///     .owner(0, 0)
///     .xattr("security.capability", b"\x01\x00\x00\x02".to_vec());
/// ```
#[derive(Debug, Clone)]
pub struct Entry {
    /// The path written into the archive, verbatim (OCI layers use relative paths such as
    /// `etc/passwd`; directories conventionally end in `/`).
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits written into the header as given, including setuid (04000), setgid
    /// (02000) and sticky (01000).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Modification time in seconds since the epoch (0 by default).
    pub mtime: u64,
    /// Extra PAX records written in an extended header before this entry, in order.
    pub pax: Vec<(String, Vec<u8>)>,
}

impl Entry {
    fn new(path: impl Into<String>, kind: EntryKind, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            pax: Vec::new(),
        }
    }

    /// A directory.
    pub fn dir(path: impl Into<String>, mode: u32) -> Entry {
        Entry::new(path, EntryKind::Dir, mode)
    }

    /// A regular file.
    pub fn file(path: impl Into<String>, mode: u32, data: impl Into<Vec<u8>>) -> Entry {
        Entry::new(path, EntryKind::File(data.into()), mode)
    }

    /// A symbolic link (mode 0777).
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry::new(path, EntryKind::Symlink(target.into()), 0o777)
    }

    /// A hard link to `target`, the path of an earlier entry (mode 0644).
    pub fn hardlink(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry::new(path, EntryKind::Hardlink(target.into()), 0o644)
    }

    /// A character device.
    pub fn char_device(path: impl Into<String>, mode: u32, major: u32, minor: u32) -> Entry {
        Entry::new(path, EntryKind::CharDevice { major, minor }, mode)
    }

    /// A block device.
    pub fn block_device(path: impl Into<String>, mode: u32, major: u32, minor: u32) -> Entry {
        Entry::new(path, EntryKind::BlockDevice { major, minor }, mode)
    }

    /// A named pipe.
    pub fn fifo(path: impl Into<String>, mode: u32) -> Entry {
        Entry::new(path, EntryKind::Fifo, mode)
    }

    /// The OCI whiteout deleting `path` from lower layers: an empty file `dir/.wh.name`.
    pub fn whiteout(path: &str) -> Entry {
        let path = path.trim_end_matches('/');
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (format!("{dir}/"), name),
            None => (String::new(), path),
        };
        Entry::file(format!("{dir}.wh.{name}"), 0o644, Vec::new())
    }

    /// The OCI opaque whiteout hiding everything lower layers put in directory `dir`:
    /// an empty file `dir/.wh..wh..opq`.
    pub fn opaque_whiteout(dir: &str) -> Entry {
        let dir = dir.trim_end_matches('/');
        let path = if dir.is_empty() {
            ".wh..wh..opq".to_string()
        } else {
            format!("{dir}/.wh..wh..opq")
        };
        Entry::file(path, 0o644, Vec::new())
    }

    /// The escape hatch: a header and data written exactly as given (see [`EntryKind::Raw`]).
    pub fn raw(header: tar::Header, data: impl Into<Vec<u8>>) -> Entry {
        let kind = EntryKind::Raw {
            header: Box::new(header),
            data: data.into(),
        };
        Entry::new(String::new(), kind, 0)
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }

    /// Sets the numeric owner.
    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Sets the modification time.
    pub fn mtime(mut self, mtime: u64) -> Entry {
        self.mtime = mtime;
        self
    }

    /// Adds an extended attribute, as the PAX record `SCHILY.xattr.<name>` (what Docker, Go's
    /// archive/tar and GNU tar write).
    pub fn xattr(self, name: &str, value: impl Into<Vec<u8>>) -> Entry {
        self.pax(format!("SCHILY.xattr.{name}"), value)
    }

    /// Adds any PAX record (e.g. `path` to override the header's name, `uid`, `mtime`).
    pub fn pax(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Entry {
        self.pax.push((key.into(), value.into()));
        self
    }
}

/// How a layer's tar is stored in its blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip at this level (0–9), with a fixed header: no file name, mtime 0, OS "unknown".
    Gzip(u32),
    /// The tar itself (media type `…layer.v1.tar`).
    None,
}

impl Default for Compression {
    /// gzip at level 6, zlib's default.
    fn default() -> Self {
        Compression::Gzip(6)
    }
}

/// A layer blob and what a manifest and image config say about it.
///
/// Cloning is cheap (the blob is reference-counted): share one `Layer` between images and the
/// layer has the same digest in both, as a base layer should.
#[derive(Debug, Clone)]
pub struct Layer {
    blob: Bytes,
    digest: String,
    diff_id: String,
    compression: Compression,
    media_type: Option<String>,
}

impl Layer {
    /// Writes `entries` as a tar in the order given and gzips it at the default level.
    pub fn new(entries: impl IntoIterator<Item = Entry>) -> Layer {
        Layer::with_compression(entries, Compression::default())
    }

    /// Writes `entries` as a tar in the order given, compressed as asked.
    pub fn with_compression(entries: impl IntoIterator<Item = Entry>, c: Compression) -> Layer {
        let mut tar = Vec::new();
        for entry in entries {
            write_entry(&mut tar, &entry).expect("writing to a Vec cannot fail");
        }
        finish(&mut tar).expect("writing to a Vec cannot fail");
        Layer::from_tar(tar, c)
    }

    /// A layer from tar bytes made elsewhere (e.g. a truncated archive, or one from `tar::Builder`).
    pub fn from_tar(tar: Vec<u8>, c: Compression) -> Layer {
        let diff_id = sha256_digest(&tar);
        let blob = match c {
            Compression::None => tar,
            Compression::Gzip(level) => gzip(&tar, level),
        };
        Layer {
            digest: sha256_digest(&blob),
            blob: blob.into(),
            diff_id,
            compression: c,
            media_type: None,
        }
    }

    /// Overrides the diff_id recorded in image configs (to test that pulls verify it).
    pub fn with_diff_id(mut self, diff_id: impl Into<String>) -> Layer {
        self.diff_id = diff_id.into();
        self
    }

    /// Overrides the media type written in manifests (e.g. an unknown or zstd type, to test
    /// rejection).
    pub fn with_media_type(mut self, media_type: impl Into<String>) -> Layer {
        self.media_type = Some(media_type.into());
        self
    }

    /// The blob as stored in a registry: the tar, gzipped unless [`Compression::None`].
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    pub(crate) fn blob_bytes(&self) -> Bytes {
        self.blob.clone()
    }

    /// `sha256:<hex>` of the blob (what manifests list).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// `sha256:<hex>` of the uncompressed tar (what image configs list in `rootfs.diff_ids`).
    pub fn diff_id(&self) -> &str {
        &self.diff_id
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.blob.len() as u64
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The uncompressed tar (decompressed on demand for gzip layers).
    pub fn tar(&self) -> Cow<'_, [u8]> {
        match self.compression {
            Compression::None => Cow::Borrowed(&self.blob),
            Compression::Gzip(_) => {
                let mut tar = Vec::new();
                flate2::read::GzDecoder::new(&self.blob[..])
                    .read_to_end(&mut tar)
                    .expect("a blob gzipped by this crate decompresses");
                Cow::Owned(tar)
            }
        }
    }

    /// The media type a manifest of this format gives the layer.
    pub fn media_type(&self, format: Format) -> &str {
        if let Some(mt) = &self.media_type {
            return mt;
        }
        match (format, self.compression) {
            (Format::Oci, Compression::Gzip(_)) => media_types::OCI_LAYER_GZIP,
            (Format::Oci, Compression::None) => media_types::OCI_LAYER,
            (Format::Docker, Compression::Gzip(_)) => media_types::DOCKER_LAYER_GZIP,
            (Format::Docker, Compression::None) => media_types::DOCKER_LAYER,
        }
    }
}

/// gzip with nothing from the environment in the header.
fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc: GzEncoder<Vec<u8>> = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::new(level));
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// A PAX record: `"<len> <key>=<value>\n"`, where `len` counts the whole record, itself included.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

fn pad<W: Write>(w: &mut W, len: usize) -> io::Result<()> {
    let rem = len % BLOCK;
    if rem != 0 {
        w.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

/// Copies `value` into a fixed-size header field, truncating (the full value then goes in PAX).
fn set_field(field: &mut [u8], value: &[u8]) -> bool {
    let n = value.len().min(field.len());
    field.fill(0);
    field[..n].copy_from_slice(&value[..n]);
    value.len() <= field.len()
}

/// Writes one entry (its PAX header first, if it needs one).
pub(crate) fn write_entry<W: Write>(w: &mut W, e: &Entry) -> io::Result<()> {
    let data: &[u8] = match &e.kind {
        EntryKind::File(data) => data,
        _ => &[],
    };
    write_entry_with(w, e, data)
}

/// Writes a regular file whose contents are borrowed (for layouts and archives of big blobs).
pub(crate) fn write_file<W: Write>(w: &mut W, path: &str, data: &[u8]) -> io::Result<()> {
    write_entry_with(w, &Entry::file(path, 0o644, Vec::new()), data)
}

/// Writes an entry with `data` as the contents of a regular file.
fn write_entry_with<W: Write>(w: &mut W, e: &Entry, data: &[u8]) -> io::Result<()> {
    let (ty, data, link): (_, &[u8], Option<&str>) = match &e.kind {
        EntryKind::Raw { header, data } => {
            write_pax(w, &e.path, e.mtime, &e.pax)?;
            w.write_all(header.as_bytes())?;
            w.write_all(data)?;
            return pad(w, data.len());
        }
        EntryKind::Dir => (tar::EntryType::Directory, &[], None),
        EntryKind::File(_) => (tar::EntryType::Regular, data, None),
        EntryKind::Symlink(t) => (tar::EntryType::Symlink, &[], Some(t)),
        EntryKind::Hardlink(t) => (tar::EntryType::Link, &[], Some(t)),
        EntryKind::CharDevice { .. } => (tar::EntryType::Char, &[], None),
        EntryKind::BlockDevice { .. } => (tar::EntryType::Block, &[], None),
        EntryKind::Fifo => (tar::EntryType::Fifo, &[], None),
    };
    let mut h = tar::Header::new_ustar();
    let mut pax = Vec::new();
    {
        let old = h.as_old_mut();
        if !set_field(&mut old.name, e.path.as_bytes()) {
            pax.push(("path".to_string(), e.path.as_bytes().to_vec()));
        }
        if let Some(link) = link {
            if !set_field(&mut old.linkname, link.as_bytes()) {
                pax.push(("linkpath".to_string(), link.as_bytes().to_vec()));
            }
        }
    }
    pax.extend(e.pax.iter().cloned());
    h.set_entry_type(ty);
    h.set_mode(e.mode);
    h.set_uid(e.uid);
    h.set_gid(e.gid);
    h.set_mtime(e.mtime);
    h.set_size(data.len() as u64);
    if let EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } = e.kind
    {
        h.set_device_major(major)?;
        h.set_device_minor(minor)?;
    }
    h.set_cksum();
    write_pax(w, &e.path, e.mtime, &pax)?;
    w.write_all(h.as_bytes())?;
    w.write_all(data)?;
    pad(w, data.len())
}

/// Writes a PAX extended header (typeflag `x`) holding `records`, if there are any.
fn write_pax<W: Write>(
    w: &mut W,
    path: &str,
    mtime: u64,
    records: &[(String, Vec<u8>)],
) -> io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let body: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
    let base = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let mut h = tar::Header::new_ustar();
    set_field(
        &mut h.as_old_mut().name,
        format!("PaxHeaders.0/{base}").as_bytes(),
    );
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_size(body.len() as u64);
    h.set_cksum();
    w.write_all(h.as_bytes())?;
    w.write_all(&body)?;
    pad(w, body.len())
}

/// Ends an archive: two zero blocks.
pub(crate) fn finish<W: Write>(w: &mut W) -> io::Result<()> {
    w.write_all(&[0u8; 2 * BLOCK])
}
