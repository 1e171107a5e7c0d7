//! What the tkctl tests share: running tkctl or kubectl as the node's admin, comparing
//! tables without AGE, waiting for a condition.
#![allow(dead_code)]

use tinykube_e2e::node::Node;

pub use tinykube_e2e::cli::{cli, eventually, text};

/// Runs tkctl and returns its stdout; fails the test if it fails.
pub fn tk(node: &Node, args: &[&str]) -> String {
    tinykube_e2e::cli::ok(node, "tkctl", args)
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

/// Runs a future on a fresh runtime (the caller's thread is in the node's namespace).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
