//! Reading containers' CRI log files back as `kubectl logs` shows them: records of one
//! stream joined across `P` parts into lines, `tailLines`, `sinceTime`, `timestamps` and
//! `limitBytes` applied as the kubelet applies them, over the rotated files oldest first.
//! (The kubelet's HTTPS `containerLogs` endpoint serves this, with follow.)

use std::path::{Path, PathBuf};

use crate::runtime::crilog::Stream;

/// What a client asks for (the query of `pods/log`).
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// Only the last this many lines.
    pub tail_lines: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<jiff::Timestamp>,
    /// Prefix each line with its RFC 3339 timestamp (nanoseconds).
    pub timestamps: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<usize>,
}

/// One line of a container's output, joined from its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The time of its first record, as written (`2026-11-25T08:00:00.123456789Z`).
    pub time: String,
    pub stream: Stream,
    /// The content, ending with `\n` unless the container never finished the line.
    pub content: Vec<u8>,
}

/// One record: `<time> <stream> <F|P> <content>`.
fn record(line: &[u8]) -> Option<(&str, Stream, bool, &[u8])> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some((time, stream, full, parts.next().unwrap_or(b"")))
}

/// The lines in CRI log data (malformed records are skipped; a line whose parts never got
/// their `F` ends the output unfinished).
pub fn parse(data: &[u8]) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    // A partial line per stream, by index into `out`.
    let mut open: [Option<usize>; 2] = [None, None];
    for raw in data.split(|b| *b == b'\n') {
        let Some((time, stream, full, content)) = record(raw) else {
            continue;
        };
        let slot = match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        let i = match open[slot] {
            Some(i) => i,
            None => {
                out.push(Line {
                    time: time.to_string(),
                    stream,
                    content: Vec::new(),
                });
                out.len() - 1
            }
        };
        out[i].content.extend_from_slice(content);
        if full {
            out[i].content.push(b'\n');
            open[slot] = None;
        } else {
            open[slot] = Some(i);
        }
    }
    out
}

/// The output for `lines` under `opts`.
pub fn render(lines: &[Line], opts: &LogOptions) -> Vec<u8> {
    let since = |l: &&Line| {
        opts.since
            .is_none_or(|s| l.time.parse::<jiff::Timestamp>().is_ok_and(|t| t >= s))
    };
    let selected: Vec<&Line> = lines.iter().filter(since).collect();
    let start = opts
        .tail_lines
        .map_or(0, |n| selected.len().saturating_sub(n));
    let mut out = Vec::new();
    for l in &selected[start..] {
        if opts.timestamps {
            out.extend_from_slice(l.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&l.content);
        if opts.limit_bytes.is_some_and(|n| out.len() >= n) {
            break;
        }
    }
    if let Some(n) = opts.limit_bytes {
        out.truncate(n);
    }
    out
}

/// A container instance's log files, oldest first (`<n>.log.K` … `<n>.log.1`, `<n>.log`).
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(usize, PathBuf)> = Vec::new();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    if let (Some(dir), Some(name)) = (path.parent(), name) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            if let Some(k) = f
                .strip_prefix(&name)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|k| k.parse::<usize>().ok())
            {
                rotated.push((k, e.path()));
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        out.push(path.to_path_buf());
    }
    out
}

/// Reads a container instance's logs (all its rotated files) under `opts`.
pub fn read(path: &Path, opts: &LogOptions) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    for f in files(path) {
        data.extend(std::fs::read(f)?);
    }
    Ok(render(&parse(&data), opts))
}

/// Reads a log as it grows (`logs -f`): whole records only, parts of a line held until its
/// `F` record, rotation followed (the open file is read to its end, then the path again
/// from its start).
pub struct Follower {
    path: PathBuf,
    file: Option<std::fs::File>,
    /// Bytes after the last newline read.
    pending: Vec<u8>,
    /// The unfinished line per stream (stdout, stderr).
    open: [Option<Line>; 2],
    timestamps: bool,
}

impl Follower {
    /// Follows `path` from `offset` (the end of what was already shown).
    pub fn new(path: &Path, offset: u64, timestamps: bool) -> Self {
        use std::io::Seek;
        let file = std::fs::File::open(path).ok().and_then(|mut f| {
            f.seek(std::io::SeekFrom::Start(offset)).ok()?;
            Some(f)
        });
        Self {
            path: path.to_path_buf(),
            file,
            pending: Vec::new(),
            open: [None, None],
            timestamps,
        }
    }

    /// The lines finished since the last call.
    pub fn poll(&mut self) -> Vec<u8> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        loop {
            let mut data = Vec::new();
            if let Some(f) = self.file.as_mut() {
                let _ = f.read_to_end(&mut data);
            }
            self.feed(&data, &mut out);
            // Rotated (or not there yet): the path names another file now.
            let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
            let ours = self
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map(|m| m.ino());
            if current.is_some() && current != ours {
                self.file = std::fs::File::open(&self.path).ok();
                continue;
            }
            return out;
        }
    }

    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(data);
        let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.pending.drain(..=end).collect();
        for raw in complete.split(|b| *b == b'\n') {
            let Some((time, stream, full, content)) = record(raw) else {
                continue;
            };
            let slot = match stream {
                Stream::Stdout => 0,
                Stream::Stderr => 1,
            };
            let line = self.open[slot].get_or_insert_with(|| Line {
                time: time.to_string(),
                stream,
                content: Vec::new(),
            });
            line.content.extend_from_slice(content);
            if full {
                let line = self.open[slot].take().expect("open line");
                if self.timestamps {
                    out.extend_from_slice(line.time.as_bytes());
                    out.push(b' ');
                }
                out.extend_from_slice(&line.content);
                out.push(b'\n');
            }
        }
    }
}

/// The log as shown now, and where following it goes on (the current file's length up to
/// its last whole record).
pub fn read_for_follow(path: &Path, opts: &LogOptions) -> std::io::Result<(Vec<u8>, u64)> {
    let mut data = Vec::new();
    let list = files(path);
    let mut offset = 0;
    for (i, f) in list.iter().enumerate() {
        let bytes = std::fs::read(f)?;
        if i + 1 == list.len() {
            let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |e| e + 1);
            offset = whole as u64;
            data.extend_from_slice(&bytes[..whole]);
        } else {
            data.extend(bytes);
        }
    }
    Ok((render(&parse(&data), opts), offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::crilog::CriLog;

    const LOG: &[u8] = b"2026-11-25T08:00:00.000000001Z stdout F one\n\
2026-11-25T08:00:01.000000000Z stderr P err-\n\
2026-11-25T08:00:01.500000000Z stdout F two\n\
2026-11-25T08:00:02.000000000Z stderr F part\n\
garbage line\n\
2026-11-25T08:00:03.000000000Z stdout F three\n\
2026-11-25T08:00:04.000000000Z stdout P unfinished";

    fn out(opts: LogOptions) -> String {
        String::from_utf8(render(&parse(LOG), &opts)).unwrap()
    }

    #[test]
    fn parts_of_a_stream_join_into_one_line() {
        assert_eq!(
            out(LogOptions::default()),
            "one\nerr-part\ntwo\nthree\nunfinished"
        );
    }

    #[test]
    fn tail_since_timestamps_and_limit() {
        let tail = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(out(tail), "three\nunfinished");
        let since = LogOptions {
            since: Some("2026-11-25T08:00:01.2Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(out(since), "two\nthree\nunfinished");
        let stamped = LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            since: None,
            limit_bytes: None,
        };
        assert_eq!(out(stamped), "2026-11-25T08:00:04.000000000Z unfinished");
        let limited = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(out(limited), "one\ner");
        let none = LogOptions {
            tail_lines: Some(0),
            ..Default::default()
        };
        assert_eq!(out(none), "");
    }

    #[test]
    fn rotated_files_are_read_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        // Small files, three kept: the oldest lines are gone, the rest read in order.
        let mut log = CriLog::open(&path, 64, 3).unwrap();
        for i in 0..20 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        drop(log);
        let files = files(&path);
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(files[0].to_string_lossy().ends_with("0.log.2"));
        let text = String::from_utf8(read(&path, &LogOptions::default()).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"line 19"));
        let numbers: Vec<u32> = lines
            .iter()
            .map(|l| l.trim_start_matches("line ").parse().unwrap())
            .collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        assert!(numbers[0] > 0, "rotation dropped nothing: {numbers:?}");
    }

    #[test]
    fn follower_emits_whole_lines_across_writes_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, b"2026-11-25T08:00:00Z stdout F old\n").unwrap();
        let (shown, offset) = read_for_follow(&path, &LogOptions::default()).unwrap();
        assert_eq!(shown, b"old\n");
        let mut f = Follower::new(&path, offset, false);
        assert!(f.poll().is_empty());
        let append = |bytes: &[u8]| {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            file.write_all(bytes).unwrap();
        };
        append(b"2026-11-25T08:00:01Z stdout P a");
        assert!(f.poll().is_empty(), "half a record is held back");
        append(b"b\n2026-11-25T08:00:02Z stderr F err\n2026-11-25T08:00:03Z stdout F cd\n");
        assert_eq!(f.poll(), b"err\nabcd\n");
        // Rotation: the file is renamed away and a new one starts.
        append(b"2026-11-25T08:00:04Z stdout F last-of-old\n");
        std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
        std::fs::write(&path, b"2026-11-25T08:00:05Z stdout F new\n").unwrap();
        assert_eq!(f.poll(), b"last-of-old\nnew\n");
    }
}
