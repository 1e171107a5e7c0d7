//! kubectl's JSONPath dialect (client-go `util/jsonpath`), as `-o jsonpath=`, `custom-columns`
//! and `--sort-by` use it: text outside braces is printed as is, `{...}` actions hold paths
//! (`.a.b`, `[0]`, `[1:3]`, `[*]`, `..`, `[?(@.x=="y")]`, unions `[0,1]`, quoted text
//! `{"\n"}`), and `{range ...}...{end}` repeats its body for each result.
//!
//! Hand-written because no Rust crate speaks this dialect: the JSONPath crates follow RFC 9535
//! (no templates, no text between expressions, no range/end, different printing of results).
//! Results print as Go prints them: strings bare, numbers and booleans as Go's fmt, maps and
//! lists as Go's encoding/json, several results of one action separated by a space.

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Param {
    value: i64,
    known: bool,
    derived: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    /// One action: `{...}`, or the operand of a filter or union.
    List(Vec<Node>),
    Field(String),
    Wildcard,
    Recursive,
    Array([Param; 3]),
    Union(Vec<Vec<Node>>),
    Filter {
        left: Vec<Node>,
        right: Vec<Node>,
        op: String,
    },
    Int(i64),
    Float(f64),
    Bool(bool),
    Identifier(String),
}

/// A parsed template.
#[derive(Clone, Debug)]
pub struct JsonPath {
    nodes: Vec<Node>,
    pub allow_missing_keys: bool,
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
}

fn is_terminator(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => matches!(
            c,
            ' ' | '\t' | '\r' | '\n' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}'
        ),
    }
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }
    fn next(&mut self) -> Option<char> {
        let c = self.rest().chars().next()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn backup(&mut self, c: Option<char>) {
        if let Some(c) = c {
            self.pos -= c.len_utf8();
        }
    }
    fn consume(&mut self) -> &'a str {
        let s = &self.input[self.start..self.pos];
        self.start = self.pos;
        s
    }

    /// Text up to the next `{`, then actions, to the end.
    fn parse_text(&mut self, root: &mut Vec<Node>) -> Result<(), String> {
        loop {
            if self.rest().starts_with('{') {
                if self.pos > self.start {
                    root.push(Node::Text(self.consume().to_string()));
                }
                self.pos += 1;
                self.consume();
                let mut action = Vec::new();
                self.parse_inside(&mut action)?;
                root.push(Node::List(action));
                continue;
            }
            if self.next().is_none() {
                break;
            }
        }
        if self.pos > self.start {
            root.push(Node::Text(self.consume().to_string()));
        }
        Ok(())
    }

    /// Nodes of one action until its `}`.
    fn parse_inside(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        loop {
            let rest = self.rest();
            if rest.starts_with('}') {
                self.pos += 1;
                self.consume();
                return Ok(());
            }
            if rest.starts_with("[?(") {
                self.parse_filter(cur)?;
                continue;
            }
            if rest.starts_with("..") {
                if cur.last() == Some(&Node::Recursive) {
                    return Err("invalid multiple recursive descent".into());
                }
                self.pos += 2;
                self.consume();
                cur.push(Node::Recursive);
                if self.peek().is_some_and(is_alnum) {
                    self.parse_field(cur);
                }
                continue;
            }
            match self.next() {
                None | Some('\r' | '\n') => return Err("unclosed action".into()),
                Some(' ' | '@' | '$') => {
                    self.consume();
                }
                Some('[') => self.parse_array(cur)?,
                Some(q @ ('"' | '\'')) => self.parse_quote(cur, q)?,
                Some('.') => self.parse_field(cur),
                Some(c) if c == '+' || c == '-' || c.is_ascii_digit() => {
                    self.backup(Some(c));
                    self.parse_number(cur)?;
                }
                Some(c) if is_alnum(c) => {
                    self.backup(Some(c));
                    loop {
                        let c = self.next();
                        if is_terminator(c) {
                            self.backup(c);
                            break;
                        }
                    }
                    let v = self.consume();
                    cur.push(match v {
                        "true" => Node::Bool(true),
                        "false" => Node::Bool(false),
                        _ => Node::Identifier(v.to_string()),
                    });
                }
                Some(c) => {
                    return Err(format!(
                        "unrecognized character in action: U+{:04X} {:?}",
                        c as u32, c
                    ))
                }
            }
        }
    }

    fn parse_field(&mut self, cur: &mut Vec<Node>) {
        self.consume();
        loop {
            let c = self.next();
            if c == Some('\\') {
                self.next();
            } else if is_terminator(c) {
                self.backup(c);
                break;
            }
        }
        let v = self.consume();
        cur.push(if v == "*" {
            Node::Wildcard
        } else {
            Node::Field(v.replace('\\', ""))
        });
    }

    fn parse_number(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        if matches!(self.peek(), Some('+' | '-')) {
            self.next();
        }
        loop {
            let c = self.next();
            if !matches!(c, Some(c) if c == '.' || c.is_ascii_digit()) {
                self.backup(c);
                break;
            }
        }
        let v = self.consume();
        if let Ok(i) = v.parse::<i64>() {
            cur.push(Node::Int(i));
        } else if let Ok(f) = v.parse::<f64>() {
            cur.push(Node::Float(f));
        } else {
            return Err(format!("cannot parse number {v}"));
        }
        Ok(())
    }

    fn parse_array(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated array".into()),
                Some(']') => break,
                _ => {}
            }
        }
        let all = self.consume();
        let mut text = &all[1..all.len() - 1];
        if text == "*" {
            text = ":";
        }
        let parts: Vec<&str> = text.split(',').collect();
        if parts.len() > 1 {
            let mut union = Vec::new();
            for p in parts {
                union.push(parse_action(&format!("[{}]", p.trim_matches(' ')))?);
            }
            cur.push(Node::Union(union));
            return Ok(());
        }
        if text.len() >= 2
            && text.starts_with('\'')
            && text.ends_with('\'')
            && !text[1..text.len() - 1].contains('\'')
        {
            cur.extend(parse_action(&format!(".{}", &text[1..text.len() - 1]))?);
            return Ok(());
        }
        cur.push(Node::Array(slice_params(text)?));
        Ok(())
    }

    fn parse_filter(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        self.pos += 3;
        self.consume();
        let (mut begin, mut end, mut pair) = (false, false, ' ');
        loop {
            let c = self.next();
            match c {
                None | Some('\n') => return Err("unterminated filter".into()),
                Some(q @ ('"' | '\'')) => {
                    if !begin {
                        begin = true;
                        pair = q;
                        continue;
                    }
                    let before = self.input[..self.pos - 1].chars().next_back();
                    if before != Some('\\') && q == pair {
                        end = true;
                    }
                }
                Some(')') if begin == end => break,
                _ => {}
            }
        }
        if self.next() != Some(']') {
            return Err("unclosed array expect ]".into());
        }
        let all = self.consume();
        let text = &all[..all.len() - 2];
        // Go: ^([^!<>=]+)([!<>=]+)(.+?)$
        let is_op = |c: char| matches!(c, '!' | '<' | '>' | '=');
        let split = text.find(is_op).filter(|&i| i > 0).and_then(|i| {
            let op_end = text[i..].find(|c| !is_op(c)).map(|e| i + e)?;
            Some((&text[..i], &text[i..op_end], &text[op_end..]))
        });
        cur.push(match split {
            None => Node::Filter {
                left: parse_action(text)?,
                right: vec![],
                op: "exists".into(),
            },
            Some((l, op, r)) => Node::Filter {
                left: parse_action(l)?,
                right: parse_action(r)?,
                op: op.to_string(),
            },
        });
        Ok(())
    }

    fn parse_quote(&mut self, cur: &mut Vec<Node>, q: char) -> Result<(), String> {
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated quoted string".into()),
                Some(c) if c == q => {
                    let before = self.input[..self.pos - 1].chars().next_back();
                    if before != Some('\\') {
                        break;
                    }
                }
                _ => {}
            }
        }
        let v = self.consume();
        let s = unquote(v).ok_or_else(|| format!("unquote string {v} error invalid syntax"))?;
        cur.push(Node::Text(s));
        Ok(())
    }
}

/// `[start:end:step]` as client-go reads it (`[2]` is `[2:3]`).
fn slice_params(text: &str) -> Result<[Param; 3], String> {
    let invalid = || format!("invalid array index {text}");
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3 {
        return Err(invalid());
    }
    let number_like = |s: &str| {
        let d = s.strip_prefix('-').unwrap_or(s);
        d.chars().all(|c| c.is_ascii_digit())
    };
    if !parts.iter().all(|p| number_like(p)) {
        return Err(invalid());
    }
    let mut params = [Param {
        value: 0,
        known: false,
        derived: false,
    }; 3];
    for i in 0..3 {
        match parts.get(i) {
            Some(v) if !v.is_empty() => {
                params[i].known = true;
                params[i].value = v
                    .parse()
                    .map_err(|_| format!("array index {v} is not a number"))?;
            }
            Some(_) if i > 0 => params[i].known = false,
            _ if i == 1 => {
                params[1] = Param {
                    value: params[0].value + 1,
                    known: true,
                    derived: true,
                }
            }
            _ => {}
        }
    }
    Ok(params)
}

/// Go's strconv unquoting of `"..."` or `'...'` (escapes `\n`, `\t`, `\"`, `\xHH`, `\u....`).
fn unquote(s: &str) -> Option<String> {
    let q = s.chars().next()?;
    if s.len() < 2 || !s.ends_with(q) || !matches!(q, '"' | '\'') {
        return None;
    }
    let body = &s[1..s.len() - 1];
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let hex = |chars: &mut std::str::Chars, n: usize| {
            let h: String = chars.take(n).collect();
            u32::from_str_radix(&h, 16).ok().and_then(char::from_u32)
        };
        out.push(match e {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'v' => '\x0b',
            '\\' | '"' | '\'' => e,
            'x' => hex(&mut chars, 2)?,
            'u' => hex(&mut chars, 4)?,
            'U' => hex(&mut chars, 8)?,
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                char::from_u32(u32::from_str_radix(&format!("{e}{rest}"), 8).ok()?)?
            }
            _ => return None,
        });
    }
    Some(out)
}

fn parse_action(text: &str) -> Result<Vec<Node>, String> {
    let wrapped = format!("{{{text}}}");
    let mut p = Parser {
        input: &wrapped,
        pos: 0,
        start: 0,
    };
    let mut root = Vec::new();
    p.parse_text(&mut root)?;
    match root.into_iter().next() {
        Some(Node::List(n)) => Ok(n),
        _ => Ok(Vec::new()),
    }
}

/// `.a.b`, `a.b`, `{.a.b}` all as `{.a.b}` (kubectl's RelaxedJSONPathExpression, used by
/// custom-columns and --sort-by).
pub fn relaxed(expr: &str) -> Result<String, String> {
    if expr.is_empty() {
        return Ok(String::new());
    }
    let no_braces = |s: &str| !s.is_empty() && !s.contains(['{', '}']);
    let inner = expr
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .map(|s| s.strip_prefix('.').unwrap_or(s))
        .filter(|s| no_braces(s))
        .or_else(|| Some(expr.strip_prefix('.').unwrap_or(expr)).filter(|s| no_braces(s)))
        .ok_or("unexpected path string, expected a 'name1.name2' or '.name1.name2' or '{name1.name2}' or '{.name1.name2}'")?;
    Ok(format!("{{.{inner}}}"))
}

/// A Go type name, for error messages.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map[string]interface {}",
        Value::Array(_) => "[]interface {}",
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::Bool(_) => "bool",
        Value::Null => "<nil>",
    }
}

impl JsonPath {
    pub fn parse(template: &str) -> Result<JsonPath, String> {
        let mut p = Parser {
            input: template,
            pos: 0,
            start: 0,
        };
        let mut nodes = Vec::new();
        p.parse_text(&mut nodes)?;
        Ok(JsonPath {
            nodes,
            allow_missing_keys: true,
        })
    }

    /// The results of each action, in order (text nodes give their text).
    pub fn find(&self, data: &Value) -> Result<Vec<Vec<Value>>, String> {
        let mut out = Vec::new();
        self.find_in(&self.nodes, data, &mut out, 0)?;
        Ok(out)
    }

    fn find_in(
        &self,
        nodes: &[Node],
        data: &Value,
        out: &mut Vec<Vec<Value>>,
        depth: usize,
    ) -> Result<(), String> {
        let mut i = 0;
        while i < nodes.len() {
            match &nodes[i] {
                Node::List(action) if action.first() == Some(&Node::Identifier("range".into())) => {
                    let items = self.eval_list(vec![data.clone()], &action[1..])?;
                    // The body runs to the matching {end}.
                    let mut level = 0;
                    let mut end = None;
                    for (k, n) in nodes.iter().enumerate().skip(i + 1) {
                        match n {
                            Node::List(a)
                                if a.first() == Some(&Node::Identifier("range".into())) =>
                            {
                                level += 1
                            }
                            Node::List(a) if a.first() == Some(&Node::Identifier("end".into())) => {
                                if level == 0 {
                                    end = Some(k);
                                    break;
                                }
                                level -= 1;
                            }
                            _ => {}
                        }
                    }
                    let body = &nodes[i + 1..end.unwrap_or(nodes.len())];
                    for item in &items {
                        self.find_in(body, item, out, depth + 1)?;
                    }
                    // Without {end}, client-go goes on after the range with the rest.
                    i = end.unwrap_or(i);
                }
                Node::List(action) if action.first() == Some(&Node::Identifier("end".into())) => {
                    if depth == 0 {
                        return Err("not in range, nothing to end".into());
                    }
                }
                Node::List(action) => out.push(self.eval_list(vec![data.clone()], action)?),
                Node::Text(t) => out.push(vec![Value::String(t.clone())]),
                other => out.push(self.walk(vec![data.clone()], other)?),
            }
            i += 1;
        }
        Ok(())
    }

    fn eval_list(&self, mut cur: Vec<Value>, nodes: &[Node]) -> Result<Vec<Value>, String> {
        for n in nodes {
            cur = self.walk(cur, n)?;
        }
        Ok(cur)
    }

    fn walk(&self, input: Vec<Value>, node: &Node) -> Result<Vec<Value>, String> {
        let each = |v: Value| input.iter().map(|_| v.clone()).collect::<Vec<_>>();
        match node {
            Node::List(n) => self.eval_list(input, n),
            Node::Text(t) => Ok(vec![Value::String(t.clone())]),
            Node::Int(i) => Ok(each(Value::from(*i))),
            Node::Float(f) => Ok(each(Value::from(*f))),
            Node::Bool(b) => Ok(each(Value::Bool(*b))),
            Node::Field(name) => {
                let found: Vec<Value> = input
                    .iter()
                    .filter_map(|v| v.as_object().and_then(|o| o.get(name)).cloned())
                    .collect();
                if found.is_empty() && !input.is_empty() && !self.allow_missing_keys {
                    return Err(format!("{name} is not found"));
                }
                Ok(found)
            }
            Node::Wildcard => Ok(input.iter().flat_map(children).collect()),
            Node::Recursive => {
                let mut out = Vec::new();
                for v in &input {
                    recursive(v, &mut out);
                }
                Ok(out)
            }
            Node::Array(params) => eval_array(&input, params),
            Node::Union(lists) => {
                let mut out = Vec::new();
                for l in lists {
                    out.extend(self.eval_list(input.clone(), l)?);
                }
                Ok(out)
            }
            Node::Filter { left, right, op } => self.eval_filter(&input, left, right, op),
            Node::Identifier(name) => match name.as_str() {
                "range" | "end" => Ok(input),
                _ => Err(format!("unrecognized identifier {name}")),
            },
        }
    }

    fn eval_filter(
        &self,
        input: &[Value],
        left: &[Node],
        right: &[Node],
        op: &str,
    ) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for v in input {
            let Some(items) = v.as_array() else {
                return Err(format!(
                    "{} is not array or slice and cannot be filtered",
                    go_sprint(v)
                ));
            };
            for item in items {
                let lefts = self.eval_list(vec![item.clone()], left);
                if op == "exists" {
                    if lefts.is_ok_and(|l| !l.is_empty()) {
                        out.push(item.clone());
                    }
                    continue;
                }
                let lefts = lefts?;
                let l = match lefts.len() {
                    0 => continue,
                    1 => &lefts[0],
                    _ => return Err("can only compare one element at a time".into()),
                };
                let rights = self.eval_list(vec![item.clone()], right)?;
                let r = match rights.len() {
                    0 => continue,
                    1 => &rights[0],
                    _ => return Err("can only compare one element at a time".into()),
                };
                if compare(l, r, op)? {
                    out.push(item.clone());
                }
            }
        }
        Ok(out)
    }

    /// The template's output for `data`, as kubectl prints it.
    #[cfg(test)]
    pub fn execute(&self, data: &Value) -> Result<String, String> {
        let mut s = String::new();
        for results in self.find(data)? {
            s.push_str(&print_results(&results));
        }
        Ok(s)
    }
}

fn children(v: &Value) -> Vec<Value> {
    match v {
        Value::Object(o) => o.values().cloned().collect(),
        Value::Array(a) => a.clone(),
        Value::String(s) => s.bytes().map(Value::from).collect(),
        _ => vec![],
    }
}

/// `..`: every container with children, then its descendants (client-go's order).
fn recursive(v: &Value, out: &mut Vec<Value>) {
    let c = children(v);
    if !c.is_empty() {
        out.push(v.clone());
        for x in &c {
            recursive(x, out);
        }
    }
}

fn eval_array(input: &[Value], params: &[Param; 3]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for v in input {
        if v.is_null() {
            continue;
        }
        let Some(a) = v.as_array() else {
            return Err(format!("{} is not array or slice", go_type(v)));
        };
        let len = a.len() as i64;
        let mut p = *params;
        if !p[0].known {
            p[0].value = 0;
        }
        if p[0].value < 0 {
            p[0].value += len;
        }
        if !p[1].known {
            p[1].value = len;
        }
        if p[1].value < 0 || (p[1].value == 0 && p[1].derived) {
            p[1].value += len;
        }
        if p[1].value == p[0].value {
            return Ok(out);
        }
        if p[0].value >= len || p[0].value < 0 {
            return Err(format!(
                "array index out of bounds: index {}, length {len}",
                p[0].value
            ));
        }
        if p[1].value > len || p[1].value < 0 {
            return Err(format!(
                "array index out of bounds: index {}, length {len}",
                p[1].value - 1
            ));
        }
        if p[0].value > p[1].value {
            return Err(format!(
                "starting index {} is greater than ending index {}",
                p[0].value, p[1].value
            ));
        }
        let step = if p[2].known {
            if p[2].value <= 0 {
                return Err("step must be > 0".into());
            }
            p[2].value as usize
        } else {
            1
        };
        out.extend(
            a[p[0].value as usize..p[1].value as usize]
                .iter()
                .step_by(step)
                .cloned(),
        );
    }
    Ok(out)
}

/// Go text/template's comparisons (eq, ne, lt, ...).
fn compare(l: &Value, r: &Value, op: &str) -> Result<bool, String> {
    use std::cmp::Ordering;
    let bad = || Err("incompatible types for comparison".to_string());
    let ord: Option<Ordering> = match (l, r) {
        (Value::Number(a), Value::Number(b)) => match (a.is_f64(), b.is_f64()) {
            (false, false) => a
                .as_i64()
                .zip(b.as_i64())
                .map(|(x, y)| x.cmp(&y))
                .or_else(|| a.as_u64().zip(b.as_u64()).map(|(x, y)| x.cmp(&y))),
            (true, true) => a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(x, y)| x.partial_cmp(&y)),
            _ => return bad(),
        },
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => {
            return match op {
                "==" => Ok(a == b),
                "!=" => Ok(a != b),
                _ => Err("invalid type for comparison".into()),
            }
        }
        (Value::Null, _) | (_, Value::Null) => return Err("invalid type for comparison".into()),
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => {
            return Err("invalid type for comparison".into())
        }
        _ => return bad(),
    };
    let Some(o) = ord else { return Ok(false) };
    match op {
        "==" => Ok(o == Ordering::Equal),
        "!=" => Ok(o != Ordering::Equal),
        "<" => Ok(o == Ordering::Less),
        ">" => Ok(o == Ordering::Greater),
        "<=" => Ok(o != Ordering::Greater),
        ">=" => Ok(o != Ordering::Less),
        _ => Err(format!("unrecognized filter operator {op}")),
    }
}

/// One action's results: maps and lists as Go's JSON, the rest as Go's fmt, space-separated.
pub fn print_results(results: &[Value]) -> String {
    results
        .iter()
        .map(|r| match r {
            Value::Object(_) | Value::Array(_) => go_json(r),
            Value::Null => "null".into(),
            other => go_sprint(other),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A float as Go writes it: fmt's %v and go-yaml use strconv's shortest 'g' (exponent below
/// -4 or from 6 up, two-digit exponent); encoding/json (`json`) plain decimals from 1e-6 up to
/// 1e21, else an exponent without padding.
pub fn go_format_float(f: f64, json: bool) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (lower, upper) = if json { (-6, 21) } else { (-4, 6) };
    if exp < lower || exp >= upper {
        let sign = if exp < 0 { '-' } else { '+' };
        if json {
            format!("{mant}e{sign}{}", exp.abs())
        } else {
            format!("{mant}e{sign}{:02}", exp.abs())
        }
    } else {
        // Plain decimal: Rust's Display is the shortest round trip, as Go's.
        format!("{f}")
    }
}

fn number_text(n: &serde_json::Number, json: bool) -> String {
    if n.is_f64() {
        go_format_float(n.as_f64().unwrap_or_default(), json)
    } else {
        n.to_string()
    }
}

/// Go's encoding/json: sorted keys, compact, `<>&` escaped.
pub fn go_json(v: &Value) -> String {
    let mut s = String::new();
    write_json(v, &mut s);
    s
}

/// Go's json.MarshalIndent(v, "", "    "), as kubectl's `-o json` prints objects.
pub fn go_json_indent(v: &Value) -> String {
    let mut s = String::new();
    write_json_indent(v, &mut s, 0);
    s
}

fn write_json_indent(v: &Value, s: &mut String, level: usize) {
    let pad = |s: &mut String, l: usize| {
        s.push('\n');
        s.push_str(&"    ".repeat(l));
    };
    match v {
        Value::Array(a) if !a.is_empty() => {
            s.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                pad(s, level + 1);
                write_json_indent(x, s, level + 1);
            }
            pad(s, level);
            s.push(']');
        }
        Value::Object(o) if !o.is_empty() => {
            s.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                pad(s, level + 1);
                json_string(k, s);
                s.push_str(": ");
                write_json_indent(x, s, level + 1);
            }
            pad(s, level);
            s.push('}');
        }
        other => write_json(other, s),
    }
}

fn write_json(v: &Value, s: &mut String) {
    match v {
        Value::Null => s.push_str("null"),
        Value::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => s.push_str(&number_text(n, true)),
        Value::String(t) => json_string(t, s),
        Value::Array(a) => {
            s.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                write_json(x, s);
            }
            s.push(']');
        }
        Value::Object(o) => {
            s.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                json_string(k, s);
                s.push(':');
                write_json(x, s);
            }
            s.push('}');
        }
    }
}

fn json_string(t: &str, s: &mut String) {
    s.push('"');
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                s.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
}

/// Go's fmt.Sprint of a decoded JSON value: `map[a:1 b:x]`, `[1 2]`, `<nil>`.
pub fn go_sprint(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_text(n, false),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_sprint).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(o) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, x)| format!("{k}:{}", go_sprint(x)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Go's strconv.Quote (as %q and %#v write strings).
pub fn go_quote(t: &str) -> String {
    let mut s = String::from("\"");
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '\x07' => s.push_str("\\a"),
            '\x08' => s.push_str("\\b"),
            '\x0c' => s.push_str("\\f"),
            '\x0b' => s.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                s.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Go's %#v of a decoded JSON value, as kubectl shows the object in a template error.
pub fn go_sharp_v(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_text(n, false),
        Value::String(s) => go_quote(s),
        Value::Array(a) => format!(
            "[]interface {{}}{{{}}}",
            a.iter().map(go_sharp_v).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "map[string]interface {{}}{{{}}}",
            o.iter()
                .map(|(k, x)| format!("{}:{}", go_quote(k), go_sharp_v(x)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// kubectl's message when a template fails on `data`.
pub fn execution_error(template: &str, err: &str, data: &Value) -> String {
    format!(
        "error: error executing jsonpath {}: Error executing template: {err}. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{template}\n\tobject given to jsonpath engine was:\n\t\t{}\n\n\n",
        go_quote(template),
        go_sharp_v(data)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "b", "labels": {"app.kubernetes.io/name": "web", "run": "b"}},
             "spec": {"ports": [{"nodePort": 30001, "port": 80}, {"nodePort": 30002}]},
             "status": {"podIP": "10.0.0.2", "addresses": [
                 {"type": "Hostname", "address": "vm"}, {"type": "InternalIP", "address": "192.0.2.2"}]}},
            {"metadata": {"name": "a"}, "status": {"podIP": "10.0.0.1", "ratio": 0.5, "ready": true}}
        ]})
    }

    fn run(t: &str) -> Result<String, String> {
        JsonPath::parse(t)?.execute(&pods())
    }

    #[test]
    fn paths_and_text() {
        assert_eq!(run("{.kind}").unwrap(), "List");
        assert_eq!(run("kind={.kind}!").unwrap(), "kind=List!");
        assert_eq!(run(".kind").unwrap(), ".kind");
        assert_eq!(run("{.items[*].metadata.name}").unwrap(), "b a");
        assert_eq!(run("{.items[0].spec.ports[0].nodePort}").unwrap(), "30001");
        assert_eq!(run("{.items[0].spec.ports[-1].nodePort}").unwrap(), "30002");
        assert_eq!(run("{.items[0:2].metadata.name}").unwrap(), "b a");
        assert_eq!(run("{.items[1:].metadata.name}").unwrap(), "a");
        assert_eq!(
            run("{.items[0,1].status.podIP}").unwrap(),
            "10.0.0.2 10.0.0.1"
        );
        assert_eq!(run("{.items[1]['metadata'].name}").unwrap(), "a");
        assert_eq!(
            run(r"{.items[0].metadata.labels.app\.kubernetes\.io/name}").unwrap(),
            "web"
        );
        assert_eq!(
            run("{.items[1].status.ratio} {.items[1].status.ready}").unwrap(),
            "0.5 true"
        );
        // Missing keys print nothing (kubectl's --allow-missing-template-keys=true).
        assert_eq!(
            run("{.items[*].spec.ports[0].port}|{.nope}").unwrap(),
            "80|"
        );
        assert_eq!(
            run("{.items[0].metadata.labels}").unwrap(),
            r#"{"app.kubernetes.io/name":"web","run":"b"}"#
        );
        assert_eq!(run("{..podIP}").unwrap(), "10.0.0.2 10.0.0.1");
        assert_eq!(run("{@.kind}{$.kind}").unwrap(), "ListList");
    }

    #[test]
    fn range_filters_quotes() {
        assert_eq!(
            run(r#"{range .items[*]}{.metadata.name}{"\t"}{.status.podIP}{"\n"}{end}"#).unwrap(),
            "b\t10.0.0.2\na\t10.0.0.1\n"
        );
        assert_eq!(
            run(r#"{.items[0].status.addresses[?(@.type=="InternalIP")].address}"#).unwrap(),
            "192.0.2.2"
        );
        assert_eq!(
            run("{.items[0].spec.ports[?(@.port)].nodePort}").unwrap(),
            "30001"
        );
        assert_eq!(
            run("{.items[0].spec.ports[?(@.nodePort>30001)].nodePort}").unwrap(),
            "30002"
        );
        assert_eq!(
            run("{range .items[*]}[{range .spec.ports[*]}{.nodePort},{end}]{end}").unwrap(),
            "[30001,30002,][]"
        );
        assert_eq!(run(r#"{'a\'b'}{"x"}"#).unwrap(), "a'bx");
    }

    #[test]
    fn errors_as_client_go() {
        assert_eq!(run("{.kind").unwrap_err(), "unclosed action");
        assert_eq!(run("{.items[0}").unwrap_err(), "unterminated array");
        assert_eq!(run("{.items[x]}").unwrap_err(), "invalid array index x");
        assert_eq!(
            run("{.items[5].metadata.name}").unwrap_err(),
            "array index out of bounds: index 5, length 2"
        );
        assert_eq!(
            run("{.items[0].status.addresses[?(@.type==Ready)]}").unwrap_err(),
            "unrecognized identifier Ready"
        );
        assert_eq!(run("{end}").unwrap_err(), "not in range, nothing to end");
        let mut strict = JsonPath::parse("{.metadata.nope}").unwrap();
        strict.allow_missing_keys = false;
        assert_eq!(
            strict.execute(&json!({"metadata": {}})).unwrap_err(),
            "nope is not found"
        );
        assert_eq!(
            execution_error("{.x[1]}", "boom", &json!({"a": [1, "b\"", null, true]})),
            "error: error executing jsonpath \"{.x[1]}\": Error executing template: boom. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{.x[1]}\n\tobject given to jsonpath engine was:\n\t\tmap[string]interface {}{\"a\":[]interface {}{1, \"b\\\"\", interface {}(nil), true}}\n\n\n"
        );
    }

    #[test]
    fn go_formatting() {
        assert_eq!(
            go_sprint(&json!({"b": [1, 2.5], "a": null})),
            "map[a:<nil> b:[1 2.5]]"
        );
        assert_eq!(
            go_json(&json!({"b": "<&>", "a": 1e21})),
            r#"{"a":1e+21,"b":"\u003c\u0026\u003e"}"#
        );
        assert_eq!(relaxed(".metadata.name").unwrap(), "{.metadata.name}");
        assert_eq!(relaxed("{.metadata.name}").unwrap(), "{.metadata.name}");
        assert_eq!(relaxed("metadata.name").unwrap(), "{.metadata.name}");
        assert!(relaxed("{a}{b}").is_err());
    }
}
