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
}
