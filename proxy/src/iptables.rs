//! Running iptables: the backend the host uses (nf_tables or legacy), one
//! `iptables-restore --noflush` per sync, the jumps from the built-in chains, and cleanup.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::render::{is_ours, JUMPS};

/// One iptables backend's binaries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iptables {
    pub iptables: String,
    pub save: String,
    pub restore: String,
}

/// Splits a rule spec as a shell would (double quotes group words).
pub fn split_rule(spec: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for ch in spec.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn exists(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Iptables {
    fn backend(kind: &str) -> Self {
        Self {
            iptables: format!("iptables-{kind}"),
            save: format!("iptables-{kind}-save"),
            restore: format!("iptables-{kind}-restore"),
        }
    }

    /// The backend the host already uses: the one whose tables hold more rules (as
    /// kube-proxy and the iptables-wrapper decide), else the one `iptables` is.
    pub fn detect() -> Self {
        let candidates: Vec<Iptables> = ["nft", "legacy"]
            .into_iter()
            .map(Self::backend)
            .filter(|b| exists(&b.iptables))
            .collect();
        if candidates.is_empty() {
            return Self {
                iptables: "iptables".into(),
                save: "iptables-save".into(),
                restore: "iptables-restore".into(),
            };
        }
        let rules = |b: &Iptables| {
            Command::new(&b.save)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .filter(|l| l.starts_with("-A "))
                        .count()
                })
                .unwrap_or(0)
        };
        let counts: Vec<usize> = candidates.iter().map(rules).collect();
        if let Some(best) = counts.iter().max().filter(|m| **m > 0) {
            if counts.iter().filter(|c| *c == best).count() == 1 {
                let i = counts.iter().position(|c| c == best).expect("max");
                return candidates[i].clone();
            }
        }
        let default = Command::new("iptables")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("legacy"))
            .unwrap_or(false);
        let kind = if default { "legacy" } else { "nft" };
        candidates
            .iter()
            .find(|b| b.iptables.ends_with(kind))
            .unwrap_or(&candidates[0])
            .clone()
    }

    /// `iptables-restore --noflush` of `text`; the error carries iptables' own message.
    pub fn restore(&self, text: &str) -> Result<(), String> {
        let mut child = Command::new(&self.restore)
            .args(["--noflush", "-w", "5"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.restore))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(text.as_bytes())
            .map_err(|e| format!("{}: {e}", self.restore))?;
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{}: {e}", self.restore))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed: {}",
                self.restore,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The proxy's chains that exist now.
    pub fn our_chains(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for table in ["nat", "filter"] {
            let Ok(o) = Command::new(&self.save).args(["-t", table]).output() else {
                continue;
            };
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                if let Some(rest) = l.strip_prefix(':') {
                    let chain = rest.split_whitespace().next().unwrap_or("");
                    if is_ours(table, chain) {
                        out.insert((table.to_string(), chain.to_string()));
                    }
                }
            }
        }
        out
    }

    fn run(&self, args: &[String]) -> bool {
        Command::new(&self.iptables)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Makes sure the built-in chains jump into the proxy's (once each, first).
    pub fn ensure_jumps(&self) -> Result<(), String> {
        for (table, chain, spec) in JUMPS {
            let rule = split_rule(spec);
            let with = |op: &str| {
                let mut a: Vec<String> = vec![
                    "-w".into(),
                    "5".into(),
                    "-t".into(),
                    table.to_string(),
                    op.into(),
                    chain.to_string(),
                ];
                if op == "-I" {
                    a.push("1".into());
                }
                a.extend(rule.iter().cloned());
                a
            };
            if !self.run(&with("-C")) && !self.run(&with("-I")) {
                return Err(format!(
                    "{}: cannot add the jump to {table}/{chain}",
                    self.iptables
                ));
            }
        }
        Ok(())
    }

    /// Removes every jump, chain and rule the proxy made; the host's own rules stay.
    pub fn cleanup(&self) -> Result<(), String> {
        for (table, chain, spec) in JUMPS {
            let mut a: Vec<String> = vec![
                "-w".into(),
                "5".into(),
                "-t".into(),
                table.to_string(),
                "-D".into(),
                chain.to_string(),
            ];
            a.extend(split_rule(spec));
            while self.run(&a) {}
        }
        let chains = self.our_chains();
        if chains.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for table in ["filter", "nat"] {
            text.push_str(&format!("*{table}\n"));
            for (t, c) in &chains {
                if t == table {
                    text.push_str(&format!(":{c} - [0:0]\n"));
                }
            }
            for (t, c) in &chains {
                if t == table {
                    text.push_str(&format!("-X {c}\n"));
                }
            }
            text.push_str("COMMIT\n");
        }
        self.restore(&text)
    }
}
