//! kubectl's describe output machinery: the PrefixWriter (levels of two spaces) feeding Go's
//! text/tabwriter (minwidth 0, padding 2, spaces), and the small formatters every describer
//! shares (labels, annotations, dates, ages, quantities).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::tabwriter::TabWriter;

/// Text written at indentation levels, aligned like Go's tabwriter when finished.
#[derive(Default)]
pub struct W {
    /// Text since the last flush.
    buf: String,
    /// Text already aligned (each flush aligns on its own, as tabwriter.Flush does).
    done: String,
}

impl W {
    /// `Write(level, text)`: the text after `level` times two spaces.
    pub fn w(&mut self, level: usize, text: &str) {
        for _ in 0..level {
            self.buf.push_str("  ");
        }
        self.buf.push_str(&escape(text));
    }

    /// `WriteLine(text)`: the text and a newline, no indentation.
    pub fn line(&mut self, text: &str) {
        self.buf.push_str(&escape(text));
        self.buf.push('\n');
    }

    /// Ends the current alignment: later lines are aligned among themselves.
    pub fn flush(&mut self) {
        let text = std::mem::take(&mut self.buf);
        self.done.push_str(&tabwrite(&text));
    }

    /// The text as written, tabs and all (kubectl's PrefixWriter straight onto a buffer).
    pub fn raw(self) -> String {
        self.done + &self.buf
    }

    pub fn finish(mut self) -> String {
        self.flush();
        self.done
    }
}

/// `w!(w, level, "fmt", args...)`: PrefixWriter.Write with a format.
macro_rules! w {
    ($w:expr, $level:expr, $($arg:tt)*) => {
        $w.w($level, &format!($($arg)*))
    };
}
pub(crate) use w;

/// What kubectl's printers.WriteEscaped does: terminal control characters are shown escaped.
fn escape(text: &str) -> String {
    if !text.contains('\x1b') && !text.contains('\r') {
        return text.to_string();
    }
    text.replace('\x1b', "^[").replace('\r', "\\r")
}

/// kubectl's describe tabwriter over `text` (minwidth 0, padding 2).
pub fn tabwrite(text: &str) -> String {
    TabWriter::describe().format(text)
}

pub fn st(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

pub fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

pub fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// A string map (labels, annotations, selectors), sorted by key.
pub fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// printLabelsMultilineWithIndent: `Title:\tk=v` and continuation lines, or `<none>`.
pub fn labels_multiline(w: &mut W, indent: &str, title: &str, inner: &str, labels: &Value) {
    w!(w, 0, "{indent}{title}:{inner}");
    let labels = string_map(labels);
    if labels.is_empty() {
        w.line("<none>");
        return;
    }
    for (i, (k, v)) in labels.iter().enumerate() {
        // Continuation lines start with the inner indent only (visible where the text is
        // not tab-aligned, as in `rollout history --revision`).
        if i != 0 {
            w!(w, 0, "{inner}");
        }
        w!(w, 0, "{k}={v}\n");
    }
}

pub fn labels(w: &mut W, title: &str, labels: &Value) {
    labels_multiline(w, "", title, "\t", labels);
}

const MAX_ANNOTATION_LEN: usize = 140;
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// printAnnotationsMultiline: long or multi-line values go on their own lines, shortened.
pub fn annotations(w: &mut W, title: &str, annotations: &Value) {
    w!(w, 0, "{title}:\t");
    let mut map = string_map(annotations);
    map.remove(LAST_APPLIED);
    if map.is_empty() {
        w.line("<none>");
        return;
    }
    for (i, (k, v)) in map.iter().enumerate() {
        if i != 0 {
            w.w(0, "\t");
        }
        let value = v.strip_suffix('\n').unwrap_or(v);
        if value.len() + k.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            w!(w, 0, "{k}:\n");
            for s in value.split('\n') {
                w!(w, 0, "\t  {}\n", shorten(s, MAX_ANNOTATION_LEN - 2));
            }
        } else {
            w!(w, 0, "{k}: {value}\n");
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() > max {
        // Go slices bytes; stay on a character boundary.
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}

/// `<none>` for an empty string (stringOrNone).
pub fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "<none>"
    } else {
        s
    }
}

/// Go's time.RFC1123Z in the local time zone: `Mon, 02 Jan 2006 15:04:05 -0700`.
/// A missing time prints as Go's zero time.
pub fn date(v: &Value) -> String {
    match parse_time(v) {
        Some(t) => t
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        None => "Mon, 01 Jan 0001 00:00:00 +0000".to_string(),
    }
}

pub fn parse_time(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok())
}

/// translateTimestampSince: the age of a time, or `<unknown>`.
pub fn since(v: &Value) -> String {
    match parse_time(v) {
        Some(t) => {
            let d = jiff::Timestamp::now().duration_since(t);
            human_duration(d.as_secs())
        }
        None => "<unknown>".to_string(),
    }
}

/// Kubernetes' duration.HumanDuration (`5s`, `3m20s`, `2d3h`).
pub use tinykube_machinery::duration::human as human_duration;

pub use tinykube_machinery::Quantity;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_and_annotations() {
        let mut w = W::default();
        labels(
            &mut w,
            "Labels",
            &json!({"run": "boot", "pod-template-hash": "abc"}),
        );
        annotations(&mut w, "Annotations", &json!({}));
        w!(w, 0, "Status:\t{}\n", "Running");
        assert_eq!(
            w.finish(),
            "Labels:       pod-template-hash=abc\n              run=boot\nAnnotations:  <none>\nStatus:       Running\n"
        );
    }

    #[test]
    fn durations() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (302, "5m2s"),
            (300, "5m"),
            (700, "11m"),
            (4 * 3600 + 120, "4h2m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (20 * 86400, "20d"),
        ] {
            assert_eq!(human_duration(secs), want);
        }
    }

    #[test]
    fn dates_in_go_format() {
        // The time zone is the machine's; the shape is RFC1123Z's.
        let d = date(&json!("2026-11-24T23:22:09Z"));
        assert_eq!(d.len(), "Tue, 24 Nov 2026 23:22:09 +0000".len(), "{d}");
        assert_eq!(
            date(&Value::Null),
            "Mon, 01 Jan 0001 00:00:00 +0000".to_string()
        );
    }
}
