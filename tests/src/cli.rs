//! Running the clients as a node's admin: tkctl (built beside the tests) or the installed
//! kubectl, and waiting for what they report.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::built_binary;
use crate::node::Node;

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `prog` (`tkctl` or `kubectl`) as the node's admin (call it from the node's namespace).
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
        .unwrap_or_else(|e| panic!("running {prog}: {e}"))
}

/// Runs `prog` and returns its stdout; fails the test if it fails.
pub fn ok(node: &Node, prog: &str, args: &[&str]) -> String {
    let out = cli(node, prog, args);
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The polling helper of blocking tests: polls `f` every 100 ms until it holds; fails the test
/// after `secs` with `what`. Async tests have [`crate::eventually`].
pub fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
