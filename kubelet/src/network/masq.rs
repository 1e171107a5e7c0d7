//! Masquerade for pod traffic leaving the pod network, installed once for the whole pod CIDR
//! (not per pod, as the bridge plugin's `ipMasq` would: that costs a chain and ~50 ms per pod).
//! One `iptables-restore --noflush` writes the kubelet's own chain; a single jump from
//! POSTROUTING leads to it. Removal takes both away and leaves every other rule alone.

use std::io::Write;
use std::process::{Command, Stdio};

pub const CHAIN: &str = "TINYKUBE-POSTROUTING";

fn run(cmd: &mut Command, input: Option<&str>) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if let Some(text) = input {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(text.as_bytes())
            .map_err(|e| format!("{cmd:?}: {e}"))?;
    }
    drop(child.stdin.take());
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The `iptables-restore` input for the chain (pure, for tests).
pub fn rules(pod_cidr: &str) -> String {
    format!(
        "*nat\n:{CHAIN} - [0:0]\n\
         -A {CHAIN} -s {pod_cidr} ! -d {pod_cidr} -m comment --comment \"tinykube: masquerade pod traffic leaving the pod network\" -j MASQUERADE\n\
         COMMIT\n"
    )
}

/// Installs (or rewrites) the masquerade for `pod_cidr`. Idempotent.
pub fn install(pod_cidr: &str) -> Result<(), String> {
    run(
        Command::new("iptables-restore").arg("--noflush"),
        Some(&rules(pod_cidr)),
    )?;
    let jump = |op: &str| {
        run(
            Command::new("iptables").args(["-t", "nat", op, "POSTROUTING", "-j", CHAIN]),
            None,
        )
    };
    if jump("-C").is_err() {
        jump("-A")?;
    }
    Ok(())
}

/// Removes the jump and the chain (missing is fine).
pub fn remove() -> Result<(), String> {
    while run(
        Command::new("iptables").args(["-t", "nat", "-D", "POSTROUTING", "-j", CHAIN]),
        None,
    )
    .is_ok()
    {}
    let exists = run(
        Command::new("iptables").args(["-t", "nat", "-S", CHAIN]),
        None,
    )
    .is_ok();
    if exists {
        run(
            Command::new("iptables").args(["-t", "nat", "-F", CHAIN]),
            None,
        )?;
        run(
            Command::new("iptables").args(["-t", "nat", "-X", CHAIN]),
            None,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_rule_for_the_whole_pod_network() {
        let r = super::rules("10.244.0.0/24");
        assert!(r.starts_with("*nat\n:TINYKUBE-POSTROUTING - [0:0]\n"));
        assert!(r.contains("-s 10.244.0.0/24 ! -d 10.244.0.0/24"));
        assert_eq!(r.matches("-A ").count(), 1);
        assert!(r.ends_with("COMMIT\n"));
    }
}
