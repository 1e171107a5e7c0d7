//! Image names as Kubernetes users write them, and where to fetch them from.
//!
//! Names normalise the way the container runtimes do (`busybox` is
//! `docker.io/library/busybox:latest`). Registry hosts map to endpoints: mirrors first (like
//! containerd's `hosts.toml`), then the registry itself. Plain HTTP is used only for endpoints
//! that say `http://`, for loopback hosts and for registries listed as insecure.

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine;
use oci_client::Reference;

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageName {
    reference: Reference,
}

/// Why an image name was refused (Kubernetes calls this `InvalidImageName`).
#[derive(Debug, thiserror::Error)]
#[error("couldn't parse image name {name:?}: invalid reference format")]
pub struct InvalidImageName {
    pub name: String,
}

impl ImageName {
    pub fn parse(name: &str) -> Result<Self, InvalidImageName> {
        let invalid = || InvalidImageName { name: name.into() };
        if name.is_empty() || name.trim() != name {
            return Err(invalid());
        }
        let reference = Reference::try_from(name).map_err(|_| invalid())?;
        // The parser takes an upper-case first component for a registry host and then moves
        // it into the docker.io repository path; repositories must be lower case.
        if reference
            .repository()
            .bytes()
            .any(|b| b.is_ascii_uppercase())
        {
            return Err(invalid());
        }
        Ok(Self { reference })
    }

    /// The fully qualified name: `docker.io/library/busybox:latest`, or `repo@sha256:…` when
    /// the user pinned a digest (a tag beside a digest is informative only, as in containerd).
    pub fn canonical(&self) -> String {
        match (self.reference.tag(), self.reference.digest()) {
            (_, Some(d)) => format!("{}@{d}", self.repository_name()),
            (Some(t), None) => format!("{}:{t}", self.repository_name()),
            (None, None) => format!("{}:latest", self.repository_name()),
        }
    }

    /// `docker.io/library/busybox`.
    pub fn repository_name(&self) -> String {
        format!(
            "{}/{}",
            self.reference.registry(),
            self.reference.repository()
        )
    }

    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    pub fn repository(&self) -> &str {
        self.reference.repository()
    }

    pub fn tag(&self) -> Option<&str> {
        self.reference.tag()
    }

    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// The reference to request from `endpoint` (a mirror answers for the registry's names).
    pub fn at(&self, endpoint: &Endpoint) -> Reference {
        let mut r = self.reference.clone();
        if endpoint.host != self.reference.registry() {
            r.set_mirror_registry(endpoint.host.clone());
        }
        r
    }

    /// The same repository at a digest (after resolving an index to one platform).
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.reference.registry().into(),
            self.reference.repository().into(),
            digest.into(),
        )
    }
}

/// One place to fetch from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as the client dials it.
    pub host: String,
    /// Plain HTTP rather than HTTPS.
    pub plain_http: bool,
    /// This endpoint is a mirror (if it is unreachable, the next one is tried).
    pub mirror: bool,
}

impl Endpoint {
    /// `http://127.0.0.1:5000 (mirror)`, `https://registry-1.docker.io`: for messages.
    pub fn describe(&self) -> String {
        let scheme = if self.plain_http { "http" } else { "https" };
        let role = if self.mirror { " (mirror)" } else { "" };
        format!("{scheme}://{}{role}", self.host)
    }
}

/// The kubelet's registry settings.
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    /// Registry host → mirror endpoints (`http://127.0.0.1:5000`, `https://mirror.example`).
    pub mirrors: HashMap<String, Vec<String>>,
    /// Hosts reached over plain HTTP even though they are not loopback.
    pub insecure: Vec<String>,
}

impl RegistryConfig {
    /// Parses `HOST=URL[,URL…]`, the form of `--registry-mirror`.
    pub fn add_mirror_flag(&mut self, flag: &str) -> Result<(), String> {
        let (host, urls) = flag
            .split_once('=')
            .ok_or_else(|| format!("registry mirror {flag:?}: want HOST=URL[,URL...]"))?;
        let host = normalise_host(host.trim());
        let mut list = Vec::new();
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            parse_endpoint_url(url)?;
            list.push(url.to_string());
        }
        if host.is_empty() || list.is_empty() {
            return Err(format!("registry mirror {flag:?}: want HOST=URL[,URL...]"));
        }
        self.mirrors.entry(host).or_default().extend(list);
        Ok(())
    }

    /// Where to fetch `registry`'s images from, in order.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for url in self.mirrors.get(registry).into_iter().flatten() {
            if let Ok((host, plain_http)) = parse_endpoint_url(url) {
                let plain_http = plain_http || self.is_insecure(&host);
                out.push(Endpoint {
                    host,
                    plain_http,
                    mirror: true,
                });
            }
        }
        // Docker Hub's registry host, as containerd dials it for docker.io.
        let host = if registry == "docker.io" {
            "registry-1.docker.io".to_string()
        } else {
            registry.to_string()
        };
        let plain_http = self.is_insecure(&host);
        out.push(Endpoint {
            host,
            plain_http,
            mirror: false,
        });
        out
    }

    fn is_insecure(&self, host: &str) -> bool {
        is_loopback_host(host) || self.insecure.iter().any(|h| h == host)
    }
}

fn normalise_host(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

/// `http://127.0.0.1:5000` → (`127.0.0.1:5000`, plain); a bare host means HTTPS.
fn parse_endpoint_url(url: &str) -> Result<(String, bool), String> {
    let (plain, rest) = if let Some(r) = url.strip_prefix("http://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (false, r)
    } else {
        (false, url)
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(format!(
            "registry endpoint {url:?}: want [http://|https://]HOST[:PORT]"
        ));
    }
    Ok((host.to_string(), plain))
}

/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Registry credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// A registry token used as a bearer token (`registrytoken` in dockerconfigjson).
    Bearer(String),
}

/// The credentials for `registry` in a `kubernetes.io/dockerconfigjson` secret's
/// `.dockerconfigjson` (or a legacy `.dockercfg`), matched as the kubelet does: by host, with
/// or without scheme and path, `index.docker.io`/`docker.io` alike.
pub fn credentials_from_docker_config(
    config: &[u8],
    registry: &str,
) -> Result<Option<Credentials>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| format!("invalid docker config: {e}"))?;
    let auths = v.get("auths").unwrap_or(&v);
    let Some(auths) = auths.as_object() else {
        return Err("invalid docker config: want an object of registries".into());
    };
    let want = normalise_host(registry);
    for (key, entry) in auths {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        if normalise_host(host) != want {
            continue;
        }
        let field = |k: &str| entry.get(k).and_then(|x| x.as_str()).unwrap_or("");
        if !field("registrytoken").is_empty() {
            return Ok(Some(Credentials::Bearer(field("registrytoken").into())));
        }
        let (mut username, mut password) =
            (field("username").to_string(), field("password").to_string());
        if !field("auth").is_empty() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(field("auth"))
                .map_err(|e| format!("invalid auth for {key}: {e}"))?;
            let raw = String::from_utf8(raw).map_err(|_| format!("invalid auth for {key}"))?;
            let (u, p) = raw
                .split_once(':')
                .ok_or_else(|| format!("invalid auth for {key}: want user:password"))?;
            (username, password) = (u.into(), p.into());
        }
        if !username.is_empty() {
            return Ok(Some(Credentials::Basic { username, password }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_as_in_kubernetes() {
        for (given, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
            (
                "gcr.io/google-samples/kubernetes-bootcamp:v1",
                "gcr.io/google-samples/kubernetes-bootcamp:v1",
            ),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            (
                "busybox:1.36@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "docker.io/library/busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ),
        ] {
            assert_eq!(ImageName::parse(given).unwrap().canonical(), want, "{given}");
        }
        for bad in [
            "",
            "UPPER/case",
            "busybox:",
            "a b",
            " busybox",
            "busybox@sha256:12",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn mirrors_come_first_and_loopback_is_plain_http() {
        let mut c = RegistryConfig::default();
        c.add_mirror_flag("gcr.io=http://127.0.0.1:5000").unwrap();
        c.add_mirror_flag("docker.io=http://127.0.0.1:5000,https://mirror.example")
            .unwrap();
        c.insecure.push("registry.lan:5000".into());
        let gcr = c.endpoints("gcr.io");
        assert_eq!(
            gcr,
            vec![
                Endpoint {
                    host: "127.0.0.1:5000".into(),
                    plain_http: true,
                    mirror: true
                },
                Endpoint {
                    host: "gcr.io".into(),
                    plain_http: false,
                    mirror: false
                },
            ]
        );
        let hub = c.endpoints("docker.io");
        assert_eq!(hub.len(), 3);
        assert_eq!(hub[1].host, "mirror.example");
        assert!(!hub[1].plain_http);
        assert_eq!(hub[2].host, "registry-1.docker.io");
        assert!(c.endpoints("registry.lan:5000")[0].plain_http);
        assert!(c.endpoints("localhost:5000")[0].plain_http);
        assert!(!c.endpoints("quay.io")[0].plain_http);
        assert!(c.add_mirror_flag("gcr.io").is_err());
        assert!(c.add_mirror_flag("gcr.io=http://x/y").is_err());
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:5000",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "10.0.0.1:5000",
            "gcr.io",
            "localhost.example:5000",
            "[2001:db8::1]:5000",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn docker_config_credentials() {
        let cfg = br#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
            "registry.example:5000": {"username": "u2", "password": "p2"},
            "tok.example": {"registrytoken": "abc"}
        }}"#;
        let basic = |u: &str, p: &str| Credentials::Basic {
            username: u.into(),
            password: p.into(),
        };
        assert_eq!(
            credentials_from_docker_config(cfg, "docker.io").unwrap(),
            Some(basic("user", "pass"))
        );
        assert_eq!(
            credentials_from_docker_config(cfg, "registry.example:5000").unwrap(),
            Some(basic("u2", "p2"))
        );
        assert_eq!(
            credentials_from_docker_config(cfg, "tok.example").unwrap(),
            Some(Credentials::Bearer("abc".into()))
        );
        assert_eq!(credentials_from_docker_config(cfg, "gcr.io").unwrap(), None);
        // The legacy .dockercfg has no "auths" wrapper.
        let legacy = br#"{"gcr.io": {"auth": "YTpi"}}"#;
        assert_eq!(
            credentials_from_docker_config(legacy, "gcr.io").unwrap(),
            Some(basic("a", "b"))
        );
        assert!(credentials_from_docker_config(b"[]", "gcr.io").is_err());
        assert!(
            credentials_from_docker_config(br#"{"auths":{"gcr.io":{"auth":"!!"}}}"#, "gcr.io")
                .is_err()
        );
    }
}
