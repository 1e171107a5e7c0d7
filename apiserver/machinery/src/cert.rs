//! The user a client certificate names, as Kubernetes' x509 authenticator reads it: the
//! subject's common name is the user, each organization a group.

use x509_parser::prelude::{FromDer, X509Certificate};

/// The (user, groups) of a DER certificate's subject, or None without a readable common name.
pub fn subject_of_der(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, groups))
}

#[cfg(test)]
mod tests {
    #[test]
    fn garbage_names_nobody() {
        assert_eq!(super::subject_of_der(b"not a certificate"), None);
        assert_eq!(super::subject_of_der(&[]), None);
    }
}
