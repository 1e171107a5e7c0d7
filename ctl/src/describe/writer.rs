//! kubectl's describe output machinery: the PrefixWriter (levels of two spaces) feeding Go's
//! text/tabwriter (minwidth 0, padding 2, spaces), and the small formatters every describer
//! shares (labels, annotations, dates, ages, quantities).

use std::collections::BTreeMap;

use serde_json::Value;

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

/// Go's text/tabwriter with minwidth 0, padding 2 and ' ' as the padding: cells end at tabs;
/// a column is aligned over the consecutive lines that have it; a line's last cell (after its
/// last tab) is never part of a column.
pub fn tabwrite(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let ends_with_newline = text.ends_with('\n');
    let body = if ends_with_newline {
        &text[..text.len() - 1]
    } else {
        text
    };
    let lines: Vec<Vec<&str>> = body.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, &mut out);
    if !ends_with_newline {
        // Go prints the last, unterminated line without a newline.
        out.pop();
    }
    out
}

fn width(cell: &str) -> usize {
    cell.chars().count()
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        // A column block starts here: print the lines before it.
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut w = 0;
        while this < line1 && column + 1 < lines[this].len() {
            w = w.max(width(lines[this][column]) + 2);
            this += 1;
        }
        widths.push(w);
        format_block(lines, line0, this, widths, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() {
                for _ in width(cell)..widths[j] {
                    out.push(' ');
                }
            }
        }
        out.push('\n');
    }
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

/// Kubernetes' duration.HumanDuration.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// A resource quantity: its value in nano units and the format it was written in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantity {
    pub nanos: i128,
    pub binary: bool,
}

impl Quantity {
    pub fn zero() -> Self {
        Quantity {
            nanos: 0,
            binary: false,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (num, suffix) = s.split_at(split);
        let (mult, binary): (i128, bool) = match suffix {
            "" => (1_000_000_000, false),
            "n" => (1, false),
            "u" => (1_000, false),
            "m" => (1_000_000, false),
            "k" => (1_000_000_000_000, false),
            "M" => (1_000_000_000_000_000, false),
            "G" => (1_000_000_000_000_000_000, false),
            "T" => (1_000_000_000_000_000_000_000, false),
            "P" => (1_000_000_000_000_000_000_000_000, false),
            "E" => (1_000_000_000_000_000_000_000_000_000, false),
            "Ki" => (1_000_000_000 << 10, true),
            "Mi" => (1_000_000_000 << 20, true),
            "Gi" => (1_000_000_000 << 30, true),
            "Ti" => (1_000_000_000 << 40, true),
            "Pi" => (1_000_000_000 << 50, true),
            "Ei" => (1_000_000_000 << 60, true),
            e if e.starts_with(['e', 'E']) => {
                let exp: u32 = e[1..].parse().ok()?;
                (1_000_000_000 * 10i128.checked_pow(exp)?, false)
            }
            _ => return None,
        };
        let neg = num.starts_with('-');
        let num = num.trim_start_matches(['+', '-']);
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut nanos = whole * mult;
        if !frac.is_empty() {
            let digits: i128 = frac.parse().ok()?;
            nanos += digits * mult / 10i128.pow(frac.len() as u32);
        }
        Some(Quantity {
            nanos: if neg { -nanos } else { nanos },
            binary,
        })
    }

    pub fn from_value(v: &Value) -> Self {
        match v {
            Value::String(s) => Quantity::parse(s).unwrap_or(Quantity::zero()),
            Value::Number(n) => Quantity {
                nanos: (n.as_f64().unwrap_or(0.0) * 1e9) as i128,
                binary: false,
            },
            _ => Quantity::zero(),
        }
    }

    pub fn add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos + other.nanos,
            binary: if self.nanos == 0 {
                other.binary
            } else {
                self.binary
            },
        }
    }

    /// MilliValue, rounded up like Go's.
    pub fn milli(&self) -> i128 {
        (self.nanos + 999_999).div_euclid(1_000_000)
    }

    /// Value, rounded up like Go's.
    pub fn value(&self) -> i128 {
        (self.nanos + 999_999_999).div_euclid(1_000_000_000)
    }

    /// The canonical form Kubernetes prints (`100m`, `2`, `128Mi`, `1500m`, `2k`).
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".into();
        }
        let neg = self.nanos < 0;
        let n = self.nanos.abs();
        let sign = if neg { "-" } else { "" };
        if self.binary && n % 1_000_000_000 == 0 {
            let v = n / 1_000_000_000;
            if v >= 1024 {
                let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
                let mut i = 0;
                let mut m = v;
                while i < 6 && m % 1024 == 0 && m >= 1024 {
                    m /= 1024;
                    i += 1;
                }
                return format!("{sign}{m}{}", suffixes[i]);
            }
        }
        // Decimal SI: the largest exponent (a multiple of 3) that keeps the mantissa whole.
        let suffixes = [
            (1_000_000_000_000_000_000_000_000_000i128, "E"),
            (1_000_000_000_000_000_000_000_000, "P"),
            (1_000_000_000_000_000_000_000, "T"),
            (1_000_000_000_000_000_000, "G"),
            (1_000_000_000_000_000, "M"),
            (1_000_000_000_000, "k"),
            (1_000_000_000, ""),
            (1_000_000, "m"),
            (1_000, "u"),
            (1, "n"),
        ];
        for (mult, suffix) in suffixes {
            if n % mult == 0 {
                return format!("{sign}{}{suffix}", n / mult);
            }
        }
        format!("{sign}{n}n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tabwriter_aligns_like_go() {
        let text = "Name:\tboot\nNamespace:\tdesceng\nIPs:\n  IP:\t10.244.0.7\nControlled By:\tReplicaSet/x\n";
        assert_eq!(
            tabwrite(text),
            "Name:       boot\nNamespace:  desceng\nIPs:\n  IP:           10.244.0.7\nControlled By:  ReplicaSet/x\n"
        );
        // Empty columns are two spaces wide; trailing cells are not padded.
        assert_eq!(
            tabwrite("  NS\tName\t\tCPU\n  a\tbb\t\tc\n"),
            "  NS  Name    CPU\n  a   bb      c\n"
        );
        // Go's example: the d's belong to another column than the b's.
        assert_eq!(
            tabwrite("a\tb\tc\naa\tbb\tcc\naaa\t\naaaa\tdddd\teeee\n"),
            "a     b   c\naa    bb  cc\naaa   \naaaa  dddd  eeee\n"
        );
    }

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
    fn quantities() {
        let q = |s| Quantity::parse(s).unwrap();
        assert_eq!(q("100m").canonical(), "100m");
        assert_eq!(q("0.5").canonical(), "500m");
        assert_eq!(q("2").canonical(), "2");
        assert_eq!(q("24683656Ki").canonical(), "24683656Ki");
        assert_eq!(q("1024Mi").canonical(), "1Gi");
        assert_eq!(q("64Mi").add(q("64Mi")).canonical(), "128Mi");
        assert_eq!(q("2000").canonical(), "2k");
        assert_eq!(q("1e3").canonical(), "1k");
        assert_eq!(q("250m").milli(), 250);
        assert_eq!(Quantity::zero().canonical(), "0");
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
