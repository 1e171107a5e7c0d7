//! tkctl's module structure, checked from its sources: the verbs in `src/cmd/` use the
//! client and the shared modules but never each other; the client knows no verb; no shared
//! module uses a verb; and the modules import each other without a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module a source file is (`src/cmd/get.rs` → `cmd::get`, `src/client/mod.rs` →
/// `client`), grouped to the node the rules talk about: a verb, or a top-level module.
fn node_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [main] if main == "main" => "crate".into(),
        [cmd, verb, ..] if cmd == "cmd" => format!("cmd::{verb}"),
        [top, ..] => top.clone(),
        [] => unreachable!(),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level paths after each `crate::` in `code` (`crate::{a, b::c}` gives `a` and
/// `b::c`), comments left out.
fn crate_paths(code: &str) -> Vec<String> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `tinykube_crate::`, not ours
        }
        out.extend(expand(path_at(rest)));
    }
    out
}

/// The path or `{group}` that starts `s` (`cmd::{get, set}`, `client::Res`).
fn path_at(s: &str) -> String {
    let mut depth = 0;
    let mut end = s.len();
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':' || c == '{') => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    s[..end].to_string()
}

/// `a::{b, c::{d}}` → `a::b`, `a::c::d`.
fn expand(path: String) -> Vec<String> {
    let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = path.find('{') else {
        return vec![path];
    };
    let (prefix, group) = (&path[..open], &path[open + 1..path.len() - 1]);
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
        .into_iter()
        .filter(|s| !s.is_empty())
        .flat_map(|s| expand(format!("{prefix}{s}")))
        .collect()
}

/// The node a `crate::` path reaches (`cmd::get::GetArgs` → `cmd::get`, `client::Res` →
/// `client`, `self` of a group → the module itself).
fn target(path: &str, modules: &BTreeSet<String>) -> String {
    let segs: Vec<&str> = path.split("::").filter(|s| *s != "self").collect();
    match segs.as_slice() {
        ["cmd", verb, ..] => format!("cmd::{verb}"),
        [top, ..] if modules.contains(*top) => top.to_string(),
        _ => "crate".into(),
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    // The sources as cargo runs the test (it sets CARGO_MANIFEST_DIR): a binary built from
    // another checkout sharing the target dir must still read this one.
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let nodes: Vec<(String, PathBuf)> = files
        .iter()
        .map(|f| (node_of(&src, f), f.clone()))
        .collect();
    let modules: BTreeSet<String> = nodes
        .iter()
        .map(|(n, _)| n.split("::").next().unwrap().to_string())
        .collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (node, file) in nodes {
        let code = std::fs::read_to_string(&file).unwrap();
        let deps = g.entry(node.clone()).or_default();
        for p in crate_paths(&code) {
            let t = target(&p, &modules);
            if t != node {
                deps.insert(t);
            }
        }
    }
    g
}

#[test]
fn parses_use_groups() {
    let code = "use crate::client::{self, get_json};\nuse crate::{cmd::{get, set::X}, flags};\n// crate::verbose in a comment\nlet x = crate::resources::lookup(\"pods\");";
    assert_eq!(
        crate_paths(code),
        [
            "client::self",
            "client::get_json",
            "cmd::get",
            "cmd::set::X",
            "flags",
            "resources::lookup"
        ]
    );
}

#[test]
fn verbs_use_no_verb_and_only_the_entry_point_knows_them() {
    let g = graph();
    assert!(g.len() > 20, "the sources were found: {g:?}");
    let mut wrong = Vec::new();
    for (node, deps) in &g {
        for d in deps {
            // Only the entry point (`crate`, main.rs) knows the verbs and is known by none.
            let entry_only = d.starts_with("cmd::") || d == "crate";
            let bad = (entry_only && node != "crate") || (node == "client" && d != "verbose");
            if bad {
                wrong.push(format!("{node} uses {d}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn modules_have_no_import_cycle() {
    let g = graph();
    // Depth-first search with colours; a grey node met again closes a cycle.
    fn visit<'a>(
        n: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match colour.get(n) {
            Some(2) => return None,
            Some(1) => {
                let from = path.iter().position(|p| *p == n).unwrap();
                let mut cycle: Vec<String> = path[from..].iter().map(|s| s.to_string()).collect();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        colour.insert(n, 1);
        path.push(n);
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, colour, path) {
                return Some(c);
            }
        }
        path.pop();
        colour.insert(n, 2);
        None
    }
    let mut colour = BTreeMap::new();
    for n in g.keys() {
        if let Some(cycle) = visit(n, &g, &mut colour, &mut Vec::new()) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
}
