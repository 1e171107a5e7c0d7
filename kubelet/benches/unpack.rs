//! Layer unpack throughput: 2000 files of 26 KB (half pseudo-random, half text: roughly as
//! compressible as real binaries) unpacked by `apply_tar` and `apply_layer`, beside the cost of
//! gunzip + sha256 alone; as root, also through overlayfs over the same files. Prints MB/s; no
//! assertions (it was an `#[ignore]`d unit test before).
//!
//! `cargo bench -p tinykube-kubelet --bench unpack` (set `UNPACK_BENCH_DIR` to unpack somewhere
//! else than `$TMPDIR`; `UNPACK_BENCH_DIR=/dev/shm` measures the unpacker rather than the disk).

use std::io::{Read, Write};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};
use tinykube_kubelet::image::unpack::{apply_layer, apply_tar, UnpackStats};

fn main() {
    let mut t = tar::Builder::new(Vec::new());
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut data = vec![0u8; 26_214];
    let mut total = 0;
    let append = |t: &mut tar::Builder<Vec<u8>>, kind: EntryType, name: &str, data: &[u8]| {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_path(name).unwrap();
        h.set_cksum();
        t.append(&h, data).unwrap();
    };
    for d in 0..40 {
        append(&mut t, EntryType::Directory, &format!("d{d}/"), b"");
        for f in 0..50 {
            for (i, b) in data.iter_mut().enumerate() {
                if i % 2 == 0 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *b = seed as u8;
                } else {
                    *b = b'a' + (i % 26) as u8;
                }
            }
            total += data.len();
            append(&mut t, EntryType::Regular, &format!("d{d}/f{f}"), &data);
        }
    }
    let tar = t.into_inner().unwrap();
    let mb = total as f64 / 1e6;
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let dir = match std::env::var_os("UNPACK_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let time = |what: &str, f: &mut dyn FnMut() -> UnpackStats| {
        let start = Instant::now();
        let stats = f();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{what}: {} entries, {mb:.1} MB of file data in {:.0} ms = {:.0} MB/s",
            stats.entries,
            secs * 1e3,
            mb / secs
        );
    };
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    time("apply_tar (uncompressed, in memory)", &mut || {
        apply_tar(&tar[..], &plain).unwrap()
    });
    let hash_only = || {
        let start = Instant::now();
        let mut r = flate2::read::MultiGzDecoder::new(&gz[..]);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        std::hint::black_box(hasher.finalize());
        start.elapsed().as_secs_f64()
    };
    println!("gunzip + sha256 alone: {:.0} ms", hash_only() * 1e3);
    let gz_dir = dir.path().join("gz");
    time("apply_layer (gzip, no parents)", &mut || {
        apply_layer(
            &gz[..],
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &[],
            &gz_dir,
            &dir.path().join("w"),
        )
        .unwrap()
    });
    if nix::unistd::Uid::effective().is_root() {
        let upper = dir.path().join("upper");
        time(
            "apply_layer (uncompressed, through overlayfs over the same files)",
            &mut || {
                apply_layer(
                    &tar[..],
                    "application/vnd.oci.image.layer.v1.tar",
                    std::slice::from_ref(&plain),
                    &upper,
                    &dir.path().join("w"),
                )
                .unwrap()
            },
        );
    }
}
