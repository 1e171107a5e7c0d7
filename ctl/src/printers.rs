//! kubectl's printers besides the server's Tables: `-o yaml`, `-o custom-columns` and the
//! ordering of `--sort-by`.
//!
//! YAML is written here rather than with serde_yaml: kubectl's YAML is sigs.k8s.io/yaml's
//! (JSON turned into go-yaml v2 output), whose choices differ from serde_yaml's (keys in
//! go-yaml's "natural" order, timestamps and numbers-as-strings double-quoted, `|` blocks for
//! multi-line text, long text folded at column 80). The rules below follow go-yaml v2's
//! encoder and emitter.

use std::cmp::Ordering;

use serde_json::Value;

use crate::jsonpath::{go_sprint, JsonPath};

// ---------------------------------------------------------------------------------------
// YAML

const BEST_WIDTH: usize = 80;

/// go-yaml v2's key order: letters after other characters, runs of digits as numbers.
fn key_less(a: &str, b: &str) -> bool {
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.wrapping_mul(10).wrapping_add(ar[ai] as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.wrapping_mul(10).wrapping_add(br[bi] as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

fn sorted_keys(m: &serde_json::Map<String, Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_by(|a, b| {
        if key_less(a, b) {
            Ordering::Less
        } else if key_less(b, a) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    });
    keys
}

/// Would go-yaml read `s`, unquoted, as something else than a string (null, bool, number,
/// timestamp)?
fn resolves_to_non_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if SPECIAL.contains(&s) {
        return true;
    }
    let first = s.as_bytes()[0];
    if first == b'.' {
        return go_parse_float(s);
    }
    if !(first == b'+' || first == b'-' || first.is_ascii_digit()) {
        return false;
    }
    if is_timestamp(s) {
        return true;
    }
    let plain = s.replace('_', "");
    if go_parse_int(&plain) || is_yaml_float(&plain) {
        return true;
    }
    let bin = |d: &str| !d.is_empty() && d.chars().all(|c| c == '0' || c == '1');
    plain.strip_prefix("0b").is_some_and(bin) || plain.strip_prefix("-0b").is_some_and(bin)
}

/// strconv.ParseInt(s, 0, 64) (or ParseUint) succeeds.
fn go_parse_int(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (digits, radix) = if let Some(h) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(o) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        (o, 8)
    } else if let Some(b) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        (b, 2)
    } else if body.len() > 1 && body.starts_with('0') {
        (&body[1..], 8)
    } else {
        (body, 10)
    };
    !digits.is_empty() && u128::from_str_radix(digits, radix).is_ok_and(|v| v <= u64::MAX as u128)
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (m, e) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let mant_ok = match m.split_once('.') {
        Some(("", f)) => digits(f),
        Some((i, f)) => digits(i) && (f.is_empty() || digits(f)),
        None => digits(m),
    };
    let exp_ok = e.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mant_ok && exp_ok
}

fn go_parse_float(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || b".eE+-_".contains(&b))
        && {
            let lower = s.to_ascii_lowercase();
            lower.replace('_', "").parse::<f64>().is_ok()
        }
}

/// go-yaml's timestamps: `2006-1-2`, `2006-1-2T15:4:5[.9][Z|±07:00]`, `2006-1-2 15:4:5[.9]`.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let num = |t: &str, max: u32| {
        !t.is_empty() && t.len() <= 2 && t.bytes().all(|c| c.is_ascii_digit()) && {
            let v: u32 = t.parse().unwrap_or(99);
            v <= max
        }
    };
    let (date, time, tz_allowed) = match s[5..].find(['T', 't', ' ']) {
        Some(i) => {
            let sep = s.as_bytes()[5 + i];
            (&s[5..5 + i], Some(&s[6 + i..]), sep != b' ')
        }
        None => (&s[5..], None, false),
    };
    let Some((m, d)) = date.split_once('-') else {
        return false;
    };
    if !(num(m, 12) && num(d, 31) && m != "0" && m != "00" && d != "0" && d != "00") {
        return false;
    }
    let Some(time) = time else { return true };
    let (clock, zone) = if tz_allowed {
        match time.find(['Z', '+', '-']) {
            Some(i) => (&time[..i], Some(&time[i..])),
            None => return false,
        }
    } else {
        (time, None)
    };
    let zone_ok = match zone {
        None | Some("Z") => true,
        Some(z) => {
            let z = &z[1..];
            z.split_once(':')
                .is_some_and(|(h, m)| h.len() == 2 && num(h, 23) && m.len() == 2 && num(m, 59))
        }
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (clock, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    zone_ok
        && parts.len() == 3
        && num(parts[0], 23)
        && num(parts[1], 59)
        && num(parts[2], 59)
        && frac
            .is_none_or(|f| !f.is_empty() && f.len() <= 9 && f.bytes().all(|c| c.is_ascii_digit()))
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
fn is_base60_float(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, frac) = match t.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (t, None),
    };
    let mut parts = main.split(':');
    let head = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    head.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && head.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && !rest.is_empty()
        && rest.iter().all(|p| {
            let b = p.as_bytes();
            match b.len() {
                1 => b[0].is_ascii_digit(),
                2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
                _ => false,
            }
        })
        && frac.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
}

fn is_printable(c: char) -> bool {
    let u = c as u32;
    u == 0x0A
        || (0x20..=0x7E).contains(&u)
        || (0xA0..=0xD7FF).contains(&u)
        || ((0xE000..=0xFFFD).contains(&u) && u != 0xFEFF)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

struct Analysis {
    multiline: bool,
    plain: bool,
    single: bool,
    block: bool,
}

/// yaml_emitter_analyze_scalar, for block context.
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            multiline: false,
            plain: true,
            single: true,
            block: false,
        };
    }
    let c: Vec<char> = s.chars().collect();
    let mut block_ind = s.starts_with("---") || s.starts_with("...");
    let (mut line_breaks, mut special) = (false, false);
    let (mut lead_space, mut lead_break, mut trail_space, mut trail_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    let mut preceded_ws = true;
    for i in 0..c.len() {
        let followed_ws = i + 1 >= c.len() || c[i + 1] == ' ' || c[i + 1] == '\t';
        if i == 0 {
            match c[i] {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_ind = true,
                '?' | ':' | '-' if followed_ws => block_ind = true,
                _ => {}
            }
        } else {
            match c[i] {
                ':' if followed_ws => block_ind = true,
                '#' if preceded_ws => block_ind = true,
                _ => {}
            }
        }
        if !is_printable(c[i]) {
            special = true;
        }
        if c[i] == ' ' {
            lead_space |= i == 0;
            trail_space |= i + 1 == c.len();
            break_space |= prev_break;
            prev_space = true;
            prev_break = false;
        } else if is_break(c[i]) {
            line_breaks = true;
            lead_break |= i == 0;
            trail_break |= i + 1 == c.len();
            space_break |= prev_space;
            prev_space = false;
            prev_break = true;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_ws = matches!(c[i], ' ' | '\t' | '\0') || is_break(c[i]);
    }
    let mut a = Analysis {
        multiline: line_breaks,
        plain: true,
        single: true,
        block: true,
    };
    if lead_space || lead_break || trail_space || trail_break || line_breaks || block_ind {
        a.plain = false;
    }
    if trail_space {
        a.block = false;
    }
    if break_space {
        a.plain = false;
        a.single = false;
    }
    if space_break || special {
        a.plain = false;
        a.single = false;
        a.block = false;
    }
    a
}

#[derive(PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

fn style_of(s: &str, key: bool) -> Style {
    let a = analyze(s);
    let can_plain = !resolves_to_non_string(s) && !is_base60_float(s);
    let mut style = if s.contains('\n') {
        Style::Literal
    } else if can_plain {
        Style::Plain
    } else {
        Style::Double
    };
    if key && a.multiline {
        style = Style::Double;
    }
    if style == Style::Plain && (!a.plain || (s.is_empty() && key)) {
        style = Style::Single;
    }
    if style == Style::Single && !a.single {
        style = Style::Double;
    }
    if style == Style::Literal && (!a.block || key) {
        style = Style::Double;
    }
    style
}

struct Emitter {
    out: String,
    column: usize,
}

impl Emitter {
    fn put(&mut self, s: &str) {
        for c in s.chars() {
            self.out.push(c);
            if c == '\n' {
                self.column = 0;
            } else {
                self.column += 1;
            }
        }
    }
    /// A new line at `indent` (no empty line when one just ended).
    fn indent(&mut self, indent: usize) {
        if self.column > 0 || (!self.out.is_empty() && !self.out.ends_with('\n')) {
            self.put("\n");
        }
        self.put(&" ".repeat(indent));
    }

    fn scalar(&mut self, v: &Value, indent: usize, key: bool) {
        match v {
            Value::Null => self.put("null"),
            Value::Bool(b) => self.put(if *b { "true" } else { "false" }),
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or_default();
                let s = crate::jsonpath::go_format_float(f, false);
                self.put(match s.as_str() {
                    "+Inf" => ".inf",
                    "-Inf" => "-.inf",
                    "NaN" => ".nan",
                    other => other,
                })
            }
            Value::Number(n) => self.put(&n.to_string()),
            Value::String(s) => self.string(s, indent, key),
            Value::Array(_) => self.put("[]"),
            Value::Object(_) => self.put("{}"),
        }
    }

    fn string(&mut self, s: &str, indent: usize, key: bool) {
        let breaks = !key;
        let c: Vec<char> = s.chars().collect();
        match style_of(s, key) {
            Style::Plain => {
                let mut spaces = false;
                for i in 0..c.len() {
                    if c[i] == ' ' {
                        if breaks
                            && !spaces
                            && self.column > BEST_WIDTH
                            && c.get(i + 1) != Some(&' ')
                        {
                            self.indent(indent);
                        } else {
                            self.put(" ");
                        }
                        spaces = true;
                    } else {
                        self.put(c[i].encode_utf8(&mut [0; 4]));
                        spaces = false;
                    }
                }
            }
            Style::Single => {
                self.put("'");
                let mut spaces = false;
                for i in 0..c.len() {
                    if c[i] == ' ' {
                        if breaks
                            && !spaces
                            && self.column > BEST_WIDTH
                            && i > 0
                            && i + 1 < c.len()
                            && c.get(i + 1) != Some(&' ')
                        {
                            self.indent(indent);
                        } else {
                            self.put(" ");
                        }
                        spaces = true;
                    } else if is_break(c[i]) {
                        // Only lone \r and friends get here (text with \n is a block).
                        self.put(c[i].encode_utf8(&mut [0; 4]));
                        spaces = false;
                    } else {
                        if c[i] == '\'' {
                            self.put("'");
                        }
                        self.put(c[i].encode_utf8(&mut [0; 4]));
                        spaces = false;
                    }
                }
                self.put("'");
            }
            Style::Double => {
                self.put("\"");
                let mut spaces = false;
                for i in 0..c.len() {
                    let ch = c[i];
                    if !is_printable(ch)
                        || ch == '\u{FEFF}'
                        || is_break(ch)
                        || ch == '"'
                        || ch == '\\'
                    {
                        let esc = match ch {
                            '\0' => "\\0".to_string(),
                            '\x07' => "\\a".into(),
                            '\x08' => "\\b".into(),
                            '\t' => "\\t".into(),
                            '\n' => "\\n".into(),
                            '\x0b' => "\\v".into(),
                            '\x0c' => "\\f".into(),
                            '\r' => "\\r".into(),
                            '\x1b' => "\\e".into(),
                            '"' => "\\\"".into(),
                            '\\' => "\\\\".into(),
                            '\u{85}' => "\\N".into(),
                            '\u{A0}' => "\\_".into(),
                            '\u{2028}' => "\\L".into(),
                            '\u{2029}' => "\\P".into(),
                            c if (c as u32) <= 0xFF => format!("\\x{:02X}", c as u32),
                            c if (c as u32) <= 0xFFFF => format!("\\u{:04X}", c as u32),
                            c => format!("\\U{:08X}", c as u32),
                        };
                        self.put(&esc);
                        spaces = false;
                    } else if ch == ' ' {
                        if breaks && !spaces && self.column > BEST_WIDTH && i > 0 && i + 1 < c.len()
                        {
                            self.indent(indent);
                            if c.get(i + 1) == Some(&' ') {
                                self.put("\\");
                            }
                        } else {
                            self.put(" ");
                        }
                        spaces = true;
                    } else {
                        self.put(ch.encode_utf8(&mut [0; 4]));
                        spaces = false;
                    }
                }
                self.put("\"");
            }
            Style::Literal => {
                self.put("|");
                if c[0] == ' ' || is_break(c[0]) {
                    self.put("2");
                }
                let n = c.len();
                if !is_break(c[n - 1]) {
                    self.put("-");
                } else if n == 1 || is_break(c[n - 2]) {
                    self.put("+");
                }
                self.put("\n");
                let mut at_line_start = true;
                for &ch in &c {
                    if ch == '\n' {
                        self.put("\n");
                        at_line_start = true;
                    } else {
                        if at_line_start {
                            self.put(&" ".repeat(indent));
                            at_line_start = false;
                        }
                        self.put(ch.encode_utf8(&mut [0; 4]));
                    }
                }
            }
        }
    }

    /// A block mapping whose keys start at `indent`; the first key goes where the cursor is
    /// when `inline` (after `- `).
    fn mapping(&mut self, m: &serde_json::Map<String, Value>, indent: usize, inline: bool) {
        for (i, k) in sorted_keys(m).into_iter().enumerate() {
            if i > 0 || !inline {
                self.indent(indent);
            }
            self.string(k, indent + 2, true);
            self.put(":");
            let v = &m[k];
            match v {
                Value::Object(o) if !o.is_empty() => self.mapping(o, indent + 2, false),
                // Lists in mappings are not indented (go-yaml's "indentless" sequences).
                Value::Array(a) if !a.is_empty() => self.sequence(a, indent, false),
                _ => {
                    self.put(" ");
                    self.scalar(v, indent + 2, false);
                }
            }
        }
    }

    fn sequence(&mut self, a: &[Value], indent: usize, inline: bool) {
        for (i, v) in a.iter().enumerate() {
            if i > 0 || !inline {
                self.indent(indent);
            }
            self.put("- ");
            match v {
                Value::Object(o) if !o.is_empty() => self.mapping(o, indent + 2, true),
                Value::Array(x) if !x.is_empty() => self.sequence(x, indent + 2, true),
                _ => self.scalar(v, indent + 2, false),
            }
        }
    }
}

/// `v` as kubectl's `-o yaml` prints it.
pub fn yaml(v: &Value) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
    };
    match v {
        Value::Object(o) if !o.is_empty() => e.mapping(o, 0, true),
        Value::Array(a) if !a.is_empty() => e.sequence(a, 0, true),
        _ => e.scalar(v, 0, false),
    }
    if !e.out.ends_with('\n') {
        e.out.push('\n');
    }
    e.out
}

// ---------------------------------------------------------------------------------------
// custom-columns

#[derive(Debug)]
pub struct Column {
    pub header: String,
    pub path: JsonPath,
}

/// `NAME:.metadata.name,IP:.status.podIP`.
pub fn parse_columns(spec: &str) -> Result<Vec<Column>, String> {
    if spec.is_empty() {
        return Err("error: custom-columns format specified but no custom columns given".into());
    }
    let mut cols = Vec::new();
    for part in spec.split(',') {
        let Some((header, path)) = part.split_once(':') else {
            return Err(format!(
                "error: unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>"
            ));
        };
        cols.push(column(header, path)?);
    }
    Ok(cols)
}

fn column(header: &str, path: &str) -> Result<Column, String> {
    let expr = crate::jsonpath::relaxed(path).map_err(|e| format!("error: {e}"))?;
    let path = JsonPath::parse(&expr).map_err(|e| format!("error: {e}"))?;
    Ok(Column {
        header: header.to_string(),
        path,
    })
}

/// A custom-columns file: headers on the first line, paths on the second.
pub fn parse_columns_file(text: &str) -> Result<Vec<Column>, String> {
    let mut lines = text.lines();
    let headers: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let paths: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    if headers.len() != paths.len() {
        return Err(format!(
            "error: expected {} fields, found {}",
            headers.len(),
            paths.len()
        ));
    }
    headers
        .iter()
        .zip(paths)
        .map(|(h, p)| column(h, p))
        .collect()
}

/// One object's cells: every result (Go's fmt), joined by commas, `<none>` for nothing.
pub fn column_cells(cols: &[Column], obj: &Value) -> Result<Vec<String>, String> {
    cols.iter()
        .map(|c| {
            let found = c.path.find(obj).map_err(|e| format!("error: {e}"))?;
            if found.first().is_none_or(|f| f.is_empty()) {
                return Ok("<none>".to_string());
            }
            Ok(found
                .iter()
                .flatten()
                .map(go_sprint)
                .collect::<Vec<_>>()
                .join(","))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// --sort-by

/// How kubectl 1.31 and later order two strings: by value when both are quantities (`9` <
/// `10` < `500Mi` < `1Gi`), else byte by byte (`pod-10` < `pod-2`; the natural order of 1.30
/// is gone).
pub fn string_less(a: &str, b: &str) -> bool {
    use tinykube_machinery::Quantity;
    match (Quantity::parse(a), Quantity::parse(b)) {
        (Ok(x), Ok(y)) => x.nanos() < y.nanos(),
        _ => a < b,
    }
}

/// The value `--sort-by` compares for one object: the first result of the expression.
pub fn sort_value(path: &JsonPath, obj: &Value) -> Result<Option<Value>, String> {
    let found = path.find(obj)?;
    Ok(found.first().and_then(|f| f.first()).cloned())
}

/// kubectl's ordering of two sort values (missing ones first); the error names a value that
/// cannot be ordered (a map or a list).
pub fn sort_cmp(a: &Option<Value>, b: &Option<Value>) -> Result<Ordering, String> {
    let unsortable = |x: &Value| {
        format!(
            "unsortable type: {}",
            match x {
                Value::Array(_) => "[]interface {}",
                _ => "map[string]interface {}",
            }
        )
    };
    let less = |x: &Value, y: &Value| -> Result<bool, String> {
        Ok(match (x, y) {
            (Value::Object(_) | Value::Array(_), _) => return Err(unsortable(x)),
            (_, Value::Object(_) | Value::Array(_)) => return Err(unsortable(y)),
            (Value::Null, Value::Null) => false,
            (Value::Null, _) => true,
            (_, Value::Null) => false,
            (Value::Number(p), Value::Number(q)) => match (p.as_i64(), q.as_i64()) {
                (Some(p), Some(q)) => p < q,
                _ => p.as_f64().unwrap_or_default() < q.as_f64().unwrap_or_default(),
            },
            (Value::String(p), Value::String(q)) => string_less(p, q),
            (Value::Bool(p), Value::Bool(q)) => !p & q,
            _ => false,
        })
    };
    match (a, b) {
        (None, None) => Ok(Ordering::Equal),
        (None, _) => Ok(Ordering::Less),
        (_, None) => Ok(Ordering::Greater),
        (Some(x), Some(y)) => Ok(if less(x, y)? {
            Ordering::Less
        } else if less(y, x)? {
            Ordering::Greater
        } else {
            Ordering::Equal
        }),
    }
}

/// Why `--sort-by` could not order the objects.
#[derive(Debug, PartialEq)]
pub enum SortError {
    /// No object has the field.
    Missing,
    /// The field holds a map or a list.
    Unsortable(String),
    /// The expression failed on an object.
    Path(String),
}

/// Sorts `items` (stable) by the value of `path` in `object_of(item)`.
pub fn sort_by<T>(
    items: &mut Vec<T>,
    path: &JsonPath,
    object_of: impl Fn(&T) -> &Value,
) -> Result<(), SortError> {
    let mut keyed = Vec::new();
    for it in items.drain(..) {
        let k = sort_value(path, object_of(&it)).map_err(SortError::Path)?;
        keyed.push((k, it));
    }
    if !keyed.is_empty() && keyed.iter().all(|(k, _)| k.is_none()) {
        items.extend(keyed.into_iter().map(|(_, it)| it));
        return Err(SortError::Missing);
    }
    let mut err = None;
    keyed.sort_by(|(a, _), (b, _)| {
        sort_cmp(a, b).unwrap_or_else(|e| {
            err.get_or_insert(e);
            Ordering::Equal
        })
    });
    items.extend(keyed.into_iter().map(|(_, it)| it));
    match err {
        Some(e) => Err(SortError::Unsortable(e)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_as_kubectl() {
        let obj = json!({
            "kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "web", "creationTimestamp": "2026-11-25T12:04:35Z",
                         "labels": {"run": "web"}, "annotations": {}, "resourceVersion": "153"},
            "spec": {"ports": [{"port": 8080, "protocol": "TCP", "targetPort": 8080}],
                     "clusterIPs": ["10.0.0.1"], "selector": {"run": "web"}},
            "status": {"loadBalancer": {}, "ratio": 0.5, "on": "on", "empty": "", "nil": null,
                       "maxSurge": "25%", "msg": "a: b", "star": "*x", "tab": "a\tb"}
        });
        assert_eq!(
            yaml(&obj),
            r#"apiVersion: v1
kind: Service
metadata:
  annotations: {}
  creationTimestamp: "2026-11-25T12:04:35Z"
  labels:
    run: web
  name: web
  resourceVersion: "153"
spec:
  clusterIPs:
  - 10.0.0.1
  ports:
  - port: 8080
    protocol: TCP
    targetPort: 8080
  selector:
    run: web
status:
  empty: ""
  loadBalancer: {}
  maxSurge: 25%
  msg: 'a: b'
  nil: null
  "on": "on"
  ratio: 0.5
  star: '*x'
  tab: "a\tb"
"#
        );
    }

    #[test]
    fn yaml_blocks_folding_and_order() {
        let long = "word ".repeat(30).trim_end().to_string();
        let out = yaml(&json!({"a": {"msg": long, "text": "line1\nline2\n", "t2": "x\n\ny"}}));
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[1].starts_with("  msg: word word") && lines[1].len() > 80,
            "{out}"
        );
        assert!(lines[2].starts_with("    word"), "{out}");
        assert!(
            out.ends_with("  t2: |-\n    x\n\n    y\n  text: |\n    line1\n    line2\n"),
            "{out}"
        );
        let keys = json!({"a10": 1, "a9": 2, "B": 3, "_x": 4, "a": 5});
        assert_eq!(yaml(&keys), "_x: 4\nB: 3\na: 5\na9: 2\na10: 1\n");
        assert_eq!(
            yaml(&json!({"big": 1e6, "mid": 123456.0, "n": "y"})),
            // go-yaml v2 reads n and y as booleans: quoted.
            "big: 1e+06\nmid: 123456\n\"n\": \"y\"\n"
        );
    }

    #[test]
    fn quoting_rules() {
        for s in [
            "8080",
            "1.5",
            "0x1f",
            "true",
            "y",
            "null",
            "",
            "1:20",
            "2026-01-02",
            "1e3",
        ] {
            assert!(style_of(s, false) == Style::Double, "{s}");
        }
        for s in [
            "web",
            "25%",
            "10.0.0.1",
            "IfNotPresent",
            "a-b",
            "/dev/termination-log",
            "-x",
        ] {
            assert!(style_of(s, false) == Style::Plain, "{s}");
        }
        assert!(style_of("- x", false) == Style::Single);
        assert!(style_of("a #b", false) == Style::Single);
    }

    #[test]
    fn columns_and_sorting() {
        let cols =
            parse_columns("NAME:.metadata.name,IP:{.status.podIP},L:.metadata.labels").unwrap();
        let pod = json!({"metadata": {"name": "p", "labels": {"b": "2", "a": "1"}}});
        assert_eq!(
            column_cells(&cols, &pod).unwrap(),
            ["p", "<none>", "map[a:1 b:2]"]
        );
        assert!(parse_columns("A")
            .unwrap_err()
            .contains("expected <header>:<json-path-expr>"));
        let file = parse_columns_file("NAME  IP\n.metadata.name .status.podIP\n").unwrap();
        assert_eq!(file[1].header, "IP");
        // As kubectl 1.32 orders them (checked against it): bytes, quantities by value.
        assert!(string_less("pod-10", "pod-2"));
        assert!(string_less("web-7568b", "web-7k6p7"));
        assert!(
            string_less("9", "10") && string_less("10", "500Mi") && string_less("500Mi", "1Gi")
        );
        assert!(!string_less("1Gi", "500Mi"));
        let mut none = vec![json!({}), json!({})];
        assert_eq!(
            sort_by(&mut none, &JsonPath::parse("{.n}").unwrap(), |x| x),
            Err(SortError::Missing)
        );
        let mut maps = vec![json!({"n": {}}), json!({"n": {}})];
        assert_eq!(
            sort_by(&mut maps, &JsonPath::parse("{.n}").unwrap(), |x| x),
            Err(SortError::Unsortable(
                "unsortable type: map[string]interface {}".into()
            ))
        );
        let mut v = vec![
            json!({"n": "b10"}),
            json!({}),
            json!({"n": "b9"}),
            json!({"n": "a"}),
        ];
        sort_by(&mut v, &JsonPath::parse("{.n}").unwrap(), |x| x).unwrap();
        // Missing first, then bytes (kubectl 1.31+ dropped the natural order).
        assert_eq!(
            v,
            [
                json!({}),
                json!({"n": "a"}),
                json!({"n": "b10"}),
                json!({"n": "b9"})
            ]
        );
        let mut n = vec![json!({"r": 10}), json!({"r": 9})];
        sort_by(&mut n, &JsonPath::parse("{.r}").unwrap(), |x| x).unwrap();
        assert_eq!(n[0]["r"], 9);
    }
}
