//! What the tkctl tests share: running tkctl or kubectl as the node's admin, comparing
//! tables without AGE, waiting for a condition.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tinykube_e2e::built_binary;
use tinykube_e2e::node::Node;

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `prog` (tkctl or kubectl) as the admin from the node's namespace.
pub fn cli(node: &Node, prog: &str, args: &[&str]) -> Output {
    let bin = if prog == "tkctl" {
        built_binary("tkctl")
    } else {
        prog.into()
    };
    Command::new(bin)
        .arg(format!(
            "--kubeconfig={}",
            node.apiserver.kubeconfig("admin").display()
        ))
        .args(args)
        .output()
        .expect("running the client")
}

pub fn tk(node: &Node, args: &[&str]) -> String {
    let out = cli(node, "tkctl", args);
    assert!(
        out.status.success(),
        "tkctl {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A table without its AGE column (the only thing allowed to differ between two clients).
pub fn without_age(table: &str) -> Vec<String> {
    let mut lines = table.lines();
    let Some(header) = lines.next() else {
        return vec![];
    };
    let age = header.find("AGE");
    let cut = |l: &str| match age {
        Some(i) if l.len() > i => {
            let end = l[i..].find("   ").map_or(l.len(), |e| i + e);
            format!("{}{}", &l[..i], l[end..].trim_start())
        }
        _ => l.to_string(),
    };
    std::iter::once(cut(header)).chain(lines.map(cut)).collect()
}

pub fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs a future on a fresh runtime (the caller's thread is in the node's namespace).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
