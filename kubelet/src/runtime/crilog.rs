//! Container logs in the CRI format the kubelet reads and `kubectl logs` shows:
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\n` — `F` ends a line, `P` is a
//! part of a line longer than the buffer (joined again by readers).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Longest line part written as one record (as containerd's 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Writes one container's log file, rotating it past `max_size` bytes and keeping
/// `max_files` files in all (the kubelet's containerLogMaxSize / containerLogMaxFiles).
pub struct CriLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: usize,
    pending: [Vec<u8>; 2],
    clock: fn() -> String,
}

/// Now, in RFC3339 with nanoseconds, UTC.
pub fn now_rfc3339_nano() -> String {
    format!("{:.9}", jiff::Timestamp::now())
}

impl CriLog {
    pub fn open(path: &Path, max_size: u64, max_files: usize) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            pending: [Vec::new(), Vec::new()],
            clock: now_rfc3339_nano,
        })
    }

    /// Appends output of `stream`: every complete line becomes an `F` record; a line part
    /// longer than [`MAX_LINE`] becomes `P` records; the rest waits for more.
    pub fn write(&mut self, stream: Stream, mut data: &[u8]) -> io::Result<()> {
        let i = stream as usize;
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let mut line = std::mem::take(&mut self.pending[i]);
                    line.extend_from_slice(&data[..nl]);
                    self.records(stream, &line, true)?;
                    data = &data[nl + 1..];
                }
                None => {
                    self.pending[i].extend_from_slice(data);
                    data = &[];
                    while self.pending[i].len() >= MAX_LINE {
                        let rest = self.pending[i].split_off(MAX_LINE);
                        let part = std::mem::replace(&mut self.pending[i], rest);
                        self.record(stream, &part, false)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes what is left of unfinished lines (the stream ended).
    pub fn finish(&mut self) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.pending[stream as usize]);
            if !rest.is_empty() {
                self.record(stream, &rest, true)?;
            }
        }
        self.file.flush()
    }

    fn records(&mut self, stream: Stream, line: &[u8], full: bool) -> io::Result<()> {
        let mut chunks = line.chunks(MAX_LINE).peekable();
        if chunks.peek().is_none() {
            return self.record(stream, b"", full);
        }
        while let Some(c) = chunks.next() {
            let last = chunks.peek().is_none();
            self.record(stream, c, full && last)?;
        }
        Ok(())
    }

    fn record(&mut self, stream: Stream, content: &[u8], full: bool) -> io::Result<()> {
        let ts = (self.clock)();
        let tag = if full { "F" } else { "P" };
        let mut rec = Vec::with_capacity(ts.len() + content.len() + 12);
        rec.extend_from_slice(ts.as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.name().as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(tag.as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(content);
        rec.push(b'\n');
        if self.size > 0 && self.size + rec.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&rec)?;
        self.size += rec.len() as u64;
        Ok(())
    }

    /// `0.log` → `0.log.1` → `0.log.2` …, dropping the oldest past `max_files`.
    fn rotate(&mut self) -> io::Result<()> {
        let name = |n: usize| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        let keep = self.max_files - 1;
        if keep == 0 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = fs::remove_file(name(keep));
        for n in (1..keep).rev() {
            let _ = fs::rename(name(n), name(n + 1));
        }
        fs::rename(&self.path, name(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(dir: &Path, max: u64, files: usize) -> CriLog {
        let mut l = CriLog::open(&dir.join("0.log"), max, files).unwrap();
        l.clock = || "2026-01-01T00:00:00.000000001Z".into();
        l
    }

    #[test]
    fn lines_become_records_and_long_ones_are_split() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = log(dir.path(), 1 << 30, 5);
        l.write(Stream::Stdout, b"hello\nwor").unwrap();
        l.write(Stream::Stderr, b"oops\n").unwrap();
        l.write(Stream::Stdout, b"ld\n\n").unwrap();
        let long = vec![b'x'; MAX_LINE + 10];
        l.write(Stream::Stdout, &long).unwrap();
        l.write(Stream::Stdout, b"y\nunfinished").unwrap();
        l.finish().unwrap();
        let text = fs::read_to_string(dir.path().join("0.log")).unwrap();
        let ts = "2026-01-01T00:00:00.000000001Z";
        let want = format!(
            "{ts} stdout F hello\n{ts} stderr F oops\n{ts} stdout F world\n{ts} stdout F \n\
             {ts} stdout P {}\n{ts} stdout F xxxxxxxxxxy\n{ts} stdout F unfinished\n",
            "x".repeat(MAX_LINE)
        );
        assert_eq!(text, want);
    }

    #[test]
    fn files_rotate_and_the_oldest_goes() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = log(dir.path(), 100, 3);
        for i in 0..10 {
            l.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["0.log", "0.log.1", "0.log.2"]);
        let current = fs::read_to_string(dir.path().join("0.log")).unwrap();
        assert!(current.ends_with("stdout F line 9\n"), "{current}");
        assert!(current.len() <= 100);
    }

    #[test]
    fn timestamps_are_rfc3339_nano_utc() {
        let ts = now_rfc3339_nano();
        assert!(
            ts.ends_with('Z') && ts.len() == "2026-01-01T00:00:00.000000000Z".len(),
            "{ts}"
        );
    }
}
