//! The node's own certificates: a CA made on first start, a serving certificate renewed on every
//! start (so new addresses are always covered), client certificates for the admin, the kubelet
//! and the proxy, and the kubeconfig files that carry them.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A client identity the apiserver issues: the file stem, the user (CN) and groups (O).
pub struct ClientIdentity<'a> {
    pub file: &'a str,
    pub user: String,
    pub groups: Vec<String>,
}

pub struct Pki {
    dir: PathBuf,
    pub ca_pem: String,
    ca_key: KeyPair,
}

fn validity(params: &mut CertificateParams, years: i32) {
    let now = k8s_openapi::jiff::Zoned::now().with_time_zone(k8s_openapi::jiff::tz::TimeZone::UTC);
    let yesterday = now.yesterday().unwrap_or(now.clone());
    params.not_before = rcgen::date_time_ymd(
        yesterday.year() as i32,
        yesterday.month() as u8,
        yesterday.day() as u8,
    );
    params.not_after = rcgen::date_time_ymd(
        now.year() as i32 + years,
        now.month() as u8,
        now.day().min(28) as u8,
    );
}

/// Writes a file readable only by its owner (keys), replacing it atomically.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

impl Pki {
    /// Loads the CA from `dir`, making it on first start.
    pub fn load_or_create(dir: &Path) -> Result<Pki> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
        if crt.exists() && key.exists() {
            let ca_pem = fs::read_to_string(&crt)?;
            let ca_key = KeyPair::from_pem(&fs::read_to_string(&key)?).context("reading ca.key")?;
            return Ok(Pki {
                dir: dir.to_path_buf(),
                ca_pem,
                ca_key,
            });
        }
        let ca_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "tinykube-ca");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, 10);
        let cert = params.self_signed(&ca_key)?;
        write_private(&key, ca_key.serialize_pem().as_bytes())?;
        fs::write(&crt, cert.pem())?;
        tracing::info!(dir = %dir.display(), "created the cluster CA");
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca_pem: cert.pem(),
            ca_key,
        })
    }

    fn issue(&self, params: CertificateParams, stem: &str) -> Result<(String, String)> {
        let issuer = Issuer::from_ca_cert_pem(&self.ca_pem, &self.ca_key)?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        fs::write(self.dir.join(format!("{stem}.crt")), &cert_pem)?;
        write_private(&self.dir.join(format!("{stem}.key")), key_pem.as_bytes())?;
        Ok((cert_pem, key_pem))
    }

    /// A fresh serving certificate for every name and address clients may use.
    pub fn serving_cert(&self, dns: &[String], ips: &[IpAddr]) -> Result<(String, String)> {
        let mut params = CertificateParams::new(dns.to_vec())?;
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kube-apiserver");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut params, 10);
        self.issue(params, "apiserver")
    }

    /// The client certificate for `id`, issued once and kept while it names the same user.
    pub fn client_cert(&self, id: &ClientIdentity<'_>) -> Result<(String, String)> {
        let (crt, key) = (
            self.dir.join(format!("{}.crt", id.file)),
            self.dir.join(format!("{}.key", id.file)),
        );
        if let (Ok(c), Ok(k)) = (fs::read_to_string(&crt), fs::read_to_string(&key)) {
            if super::authn::subject_of_pem(&c).is_some_and(|(u, g)| u == id.user && g == id.groups)
            {
                return Ok((c, k));
            }
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, id.user.as_str());
        for g in &id.groups {
            dn.push(DnType::OrganizationName, g.as_str());
        }
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params, 10);
        self.issue(params, id.file)
    }

    /// Writes `<name>.kubeconfig` with context `tinykube` for the identity.
    pub fn write_kubeconfig(
        &self,
        name: &str,
        server: &str,
        user: &str,
        cert: &(String, String),
    ) -> Result<PathBuf> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: tinykube\ncontexts:\n- context:\n    cluster: tinykube\n    user: {user}\n  name: tinykube\ncurrent-context: tinykube\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {crt}\n    client-key-data: {key}\n",
            ca = b64(&self.ca_pem),
            crt = b64(&cert.0),
            key = b64(&cert.1),
        );
        let path = self.dir.join(format!("{name}.kubeconfig"));
        write_private(&path, text.as_bytes())?;
        Ok(path)
    }
}
