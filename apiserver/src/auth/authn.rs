//! Who is calling: a client certificate signed by the cluster CA (CN = user, O = groups), or a
//! bearer token from the static token file. Anything else is anonymous.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    /// A user with these groups (and no uid), for tests.
    #[cfg(test)]
    pub fn of(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.name == "system:anonymous"
    }

    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }

    /// The node a `system:node:<name>` identity speaks for.
    pub fn node_name(&self) -> Option<&str> {
        if self.in_group("system:nodes") {
            self.name.strip_prefix("system:node:")
        } else {
            None
        }
    }
}

pub use tinykube_machinery::cert::subject_of_der;

pub fn subject_of_pem(pem: &str) -> Option<(String, Vec<String>)> {
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())?;
    subject_of_der(&der)
}

/// A verified client certificate's user. The TLS layer has checked it against the CA.
pub fn user_from_cert(der: &[u8]) -> Option<User> {
    let (name, mut groups) = subject_of_der(der)?;
    groups.push("system:authenticated".into());
    Some(User {
        name,
        uid: String::new(),
        groups,
    })
}

/// Static bearer tokens, in Kubernetes' token file format: `token,user,uid[,"group1,group2"]`.
#[derive(Default)]
pub struct Tokens {
    users: HashMap<String, User>,
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
                bail!(
                    "{}:{}: want token,user,uid[,\"groups\"]",
                    path.display(),
                    n + 1
                );
            }
            let mut groups: Vec<String> = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            groups.push("system:authenticated".into());
            users.insert(
                fields[0].clone(),
                User {
                    name: fields[1].clone(),
                    uid: fields[2].clone(),
                    groups,
                },
            );
        }
        Ok(Tokens { users })
    }

    pub fn user(&self, token: &str) -> Option<&User> {
        self.users.get(token)
    }
}

fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(
            &path,
            "# comment\nsecret1,alice,1,\"dev,ops\"\nsecret2,bob,2\n",
        )
        .unwrap();
        let t = Tokens::load(&path).unwrap();
        let alice = t.user("secret1").unwrap();
        assert_eq!(alice.name, "alice");
        assert!(
            alice.in_group("dev")
                && alice.in_group("ops")
                && alice.in_group("system:authenticated")
        );
        assert_eq!(
            t.user("secret2").unwrap().groups,
            vec!["system:authenticated"]
        );
        assert!(t.user("nope").is_none());
    }
}
