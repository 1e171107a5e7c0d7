//! Service account tokens, as Kubernetes' TokenRequest API issues them and its service account
//! authenticator reads them: bound, expiring JWTs (ES256, signed by `sa.key`, a P-256 key the
//! apiserver makes on first start), with Kubernetes' claims:
//!
//! ```json
//! {"iss": "https://kubernetes.default.svc.cluster.local", "sub": "system:serviceaccount:ns:name",
//!  "aud": ["https://kubernetes.default.svc.cluster.local"], "exp": …, "iat": …, "nbf": …, "jti": "…",
//!  "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "name", "uid": "…"},
//!                    "pod": {"name": "p", "uid": "…"}, "node": {…}}}
//! ```
//!
//! A token authenticates while it has not expired, names this issuer and an audience of the
//! API, and its service account (and the pod it is bound to, if any) still exists with the same
//! uid: deleting the pod or the service account revokes its tokens at once.

use std::path::Path;

use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use k8s_openapi::api::authentication::v1::{
    BoundObjectReference, TokenRequest, TokenRequestStatus,
};
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, Container, DownwardAPIProjection, DownwardAPIVolumeFile, KeyToPath,
    ObjectFieldSelector, PodSpec, ProjectedVolumeSource, ServiceAccountTokenProjection, Volume,
    VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

use super::authn::User;
use crate::error::{ApiError, ApiResult, FieldError, Target};
use crate::registry::catalog::Catalog;
use crate::registry::{now, FieldValidation};

/// Kubernetes' default issuer, as kubeadm and k3s configure it.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// A token request's default lifetime (TokenRequestSpec's default) and the shortest allowed.
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 600;
/// Clock skew tolerated on `exp` and `nbf`, as Kubernetes' validator allows.
const LEEWAY: u64 = 60;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Private {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Private,
}

pub struct TokenIssuer {
    issuer: String,
    /// The audiences the API accepts (the issuer, unless configured).
    audiences: Vec<String>,
    key_id: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenIssuer {
    /// Loads `<dir>/sa.key`, making it on first start.
    pub fn load_or_create(dir: &Path, issuer: &str) -> Result<TokenIssuer> {
        let path = dir.join("sa.key");
        let key = if path.exists() {
            let pem = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            rcgen::KeyPair::from_pem(&pem).context("reading sa.key")?
        } else {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            super::pki::write_private(&path, key.serialize_pem().as_bytes())?;
            tracing::info!(path = %path.display(), "created the service account signing key");
            key
        };
        Self::from_key(&key, issuer)
    }

    fn from_key(key: &rcgen::KeyPair, issuer: &str) -> Result<TokenIssuer> {
        anyhow::ensure!(
            key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256,
            "sa.key must be an ECDSA P-256 key"
        );
        let public = key.public_key_raw();
        // Kubernetes' key id: the SHA-256 of the public key's DER, base64url.
        let spki = rcgen::PublicKeyData::subject_public_key_info(key);
        let digest = <sha2::Sha256 as sha2::Digest>::digest(spki);
        let key_id =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, digest);
        Ok(TokenIssuer {
            issuer: issuer.to_string(),
            audiences: vec![issuer.to_string()],
            key_id,
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            decoding: DecodingKey::from_ec_der(public),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .expect("an ES256 key signs any claims")
    }

    /// The claims of a token this issuer signed for the API, still within its lifetime.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = LEEWAY;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&self.audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }
}

/// Whether a bearer token is shaped as a JWT (three base64url parts), not a static token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

/// The user a service account token speaks for, if it is valid and what it is bound to still
/// exists.
pub async fn authenticate(c: &Catalog, issuer: &TokenIssuer, token: &str) -> Option<User> {
    let claims = issuer.verify(token)?;
    let k = &claims.kubernetes;
    let sa = c
        .serviceaccounts
        .get(Some(&k.namespace), &k.serviceaccount.name)
        .await
        .ok()?;
    if sa.metadata.uid.as_deref() != Some(k.serviceaccount.uid.as_str())
        || sa.metadata.deletion_timestamp.is_some()
    {
        return None;
    }
    if let Some(pod_ref) = &k.pod {
        let pod = c.pods.get(Some(&k.namespace), &pod_ref.name).await.ok()?;
        // A terminating pod keeps its tokens through its grace period (its preStop hooks may
        // call the API), as Kubernetes' validator allows.
        let gone = pod
            .metadata
            .deletion_timestamp
            .as_ref()
            .is_some_and(|t| t.0 < now().0);
        if pod.metadata.uid.as_deref() != Some(pod_ref.uid.as_str()) || gone {
            return None;
        }
    }
    // A token bound to a Node (only, not through a pod) ends with it.
    if let (None, Some(node_ref)) = (&k.pod, &k.node) {
        let node = c.nodes.get(None, &node_ref.name).await.ok()?;
        if node.metadata.uid.as_deref() != Some(node_ref.uid.as_str()) {
            return None;
        }
    }
    if let Some(secret_ref) = &k.secret {
        let secret = c
            .secrets
            .get(Some(&k.namespace), &secret_ref.name)
            .await
            .ok()?;
        if secret.metadata.uid.as_deref() != Some(secret_ref.uid.as_str()) {
            return None;
        }
    }
    let name = format!(
        "{}{}:{}",
        super::rbac::SERVICE_ACCOUNT_PREFIX,
        k.namespace,
        k.serviceaccount.name
    );
    if claims.sub != name {
        return None;
    }
    Some(User {
        name,
        uid: k.serviceaccount.uid.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", k.namespace),
            "system:authenticated".into(),
        ],
    })
}

fn invalid(problems: &[FieldError]) -> ApiError {
    let t = Target {
        group: "authentication.k8s.io",
        resource: "tokenrequests",
        kind: "TokenRequest",
        name: "",
    };
    ApiError::invalid("TokenRequest", &t, problems)
}

/// `POST …/serviceaccounts/<name>/token`: a token for the service account, bound to the
/// object the request names. A node may only ask for the service account of a pod it runs,
/// bound to that pod (Kubernetes' node authorizer and NodeRestriction).
pub async fn token_request(
    c: &Catalog,
    issuer: &TokenIssuer,
    user: &User,
    ns: &str,
    name: &str,
    body: &[u8],
    validation: FieldValidation,
) -> ApiResult<serde_json::Value> {
    let info = &crate::registry::kinds::serviceaccount::TOKEN_REQUEST;
    // The status is the answer's: client-go sends an empty one (a zero expirationTimestamp),
    // which the typed decoding would refuse as incomplete.
    let mut sent: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: {e}"
        ))
    })?;
    if let Some(m) = sent.as_object_mut() {
        m.remove("status");
    }
    let body = serde_json::to_vec(&sent).unwrap_or_default();
    let mut tr: TokenRequest = crate::registry::resource::decode_body(
        info,
        "TokenRequest",
        "authentication.k8s.io/v1",
        &body,
        validation,
    )?;
    let expiration = tr.spec.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION);
    let mut problems = Vec::new();
    if expiration < MIN_EXPIRATION {
        problems.push(FieldError::invalid(
            "spec.expirationSeconds",
            expiration,
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > 1 << 32 {
        problems.push(FieldError::invalid(
            "spec.expirationSeconds",
            expiration,
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if let Some(b) = &tr.spec.bound_object_ref {
        let kind = b.kind.as_deref().unwrap_or_default();
        if !matches!(kind, "Pod" | "Secret" | "Node") {
            problems.push(FieldError::not_supported(
                "spec.boundObjectRef.kind",
                kind,
                &["Pod", "Node", "Secret"],
            ));
        }
    }
    if !problems.is_empty() {
        return Err(invalid(&problems));
    }
    let sa = c.serviceaccounts.get(Some(ns), name).await?;
    let sa_uid = sa.metadata.uid.clone().unwrap_or_default();
    let mut private = Private {
        namespace: ns.to_string(),
        serviceaccount: Ref {
            name: name.to_string(),
            uid: sa_uid,
        },
        ..Default::default()
    };
    let bound = tr.spec.bound_object_ref.clone();
    if let Some(node) = user.node_name() {
        let on_node = match &bound {
            Some(BoundObjectReference {
                kind: Some(k),
                name: Some(pod),
                ..
            }) if k == "Pod" => c.pods.get(Some(ns), pod).await.ok().is_some_and(|p| {
                let spec = p.spec.unwrap_or_default();
                spec.node_name.as_deref() == Some(node)
                    && spec.service_account_name.as_deref().unwrap_or("default") == name
            }),
            _ => false,
        };
        if !on_node {
            let t = Target {
                group: "",
                resource: "serviceaccounts/token",
                kind: "",
                name,
            };
            return Err(ApiError::forbidden(
                &t,
                &format!("node {node:?} may only ask for tokens of its pods' service accounts, bound to the pod"),
            ));
        }
    }
    if let Some(b) = &bound {
        let kind = b.kind.as_deref().unwrap_or_default();
        let obj_name = b.name.clone().unwrap_or_default();
        let (uid, node) = match kind {
            "Pod" => {
                let p = c.pods.get(Some(ns), &obj_name).await.map_err(|e| {
                    ApiError::bad_request(format!(
                        "cannot bind token for Pod {obj_name:?}: {}",
                        e.message
                    ))
                })?;
                let spec = p.spec.unwrap_or_default();
                let runs_as = spec.service_account_name.as_deref().unwrap_or("default");
                if runs_as != name {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
                    )));
                }
                (p.metadata.uid, spec.node_name)
            }
            "Secret" => {
                let s = c.secrets.get(Some(ns), &obj_name).await.map_err(|e| {
                    ApiError::bad_request(format!(
                        "cannot bind token for Secret {obj_name:?}: {}",
                        e.message
                    ))
                })?;
                (s.metadata.uid, None)
            }
            _ => {
                let n = c.nodes.get(None, &obj_name).await.map_err(|e| {
                    ApiError::bad_request(format!(
                        "cannot bind token for Node {obj_name:?}: {}",
                        e.message
                    ))
                })?;
                (n.metadata.uid, None)
            }
        };
        let uid = uid.unwrap_or_default();
        if b.uid.as_deref().is_some_and(|u| !u.is_empty() && u != uid) {
            return Err(ApiError::conflict(
                &Target {
                    group: "",
                    resource: "serviceaccounts",
                    kind: "ServiceAccount",
                    name,
                },
                &format!("the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated", b.uid.as_deref().unwrap_or_default()),
            ));
        }
        let r = Ref {
            name: obj_name,
            uid,
        };
        match kind {
            "Pod" => {
                private.pod = Some(r);
                if let Some(node) = node {
                    if let Ok(n) = c.nodes.get(None, &node).await {
                        private.node = Some(Ref {
                            name: node,
                            uid: n.metadata.uid.unwrap_or_default(),
                        });
                    }
                }
            }
            "Secret" => private.secret = Some(r),
            _ => private.node = Some(r),
        }
    }
    let audiences = if tr.spec.audiences.is_empty() {
        vec![issuer.issuer().to_string()]
    } else {
        tr.spec.audiences.clone()
    };
    let issued = now();
    let iat = issued.0.as_second();
    let claims = Claims {
        iss: issuer.issuer().to_string(),
        sub: format!("{}{ns}:{name}", super::rbac::SERVICE_ACCOUNT_PREFIX),
        aud: audiences.clone(),
        exp: iat + expiration,
        iat,
        nbf: iat,
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes: private,
    };
    let token = issuer.sign(&claims);
    tr.metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(ns.to_string()),
        creation_timestamp: Some(issued),
        ..Default::default()
    };
    tr.spec.audiences = audiences;
    tr.spec.expiration_seconds = Some(expiration);
    let expires = k8s_openapi::jiff::Timestamp::from_second(iat + expiration)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    tr.status = Some(TokenRequestStatus {
        token,
        expiration_timestamp: Time(expires),
    });
    Ok(serde_json::to_value(&tr).unwrap_or_default())
}

/// Where a pod's service account credentials are mounted.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Kubernetes' ServiceAccount admission for a new pod's spec (the service account already
/// defaulted): unless the pod opts out (`automountServiceAccountToken: false`, or its service
/// account does — `sa_opts_out` — and the pod does not say `true`) or something is mounted at [`MOUNT_PATH`]
/// already, a `kube-api-access-<suffix>` projected volume — a bound token, the cluster CA and
/// the namespace — is added and mounted read-only there in every container. (Kubernetes also
/// refuses a pod whose service account does not exist yet; here such a pod is admitted, and
/// the kubelet cannot get its token until the account exists.)
pub fn inject_api_access(spec: &mut PodSpec, sa_opts_out: bool) {
    let mounts_it = |c: &Container| {
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == MOUNT_PATH)
    };
    // The pod's own setting wins over its service account's.
    if !spec.automount_service_account_token.unwrap_or(!sa_opts_out)
        || spec.containers.iter().any(mounts_it)
        || spec.init_containers.iter().flatten().any(mounts_it)
    {
        return;
    }
    let name = format!(
        "kube-api-access-{}",
        crate::registry::generic::random_suffix()
    );
    let projected = ProjectedVolumeSource {
        default_mode: Some(0o644),
        sources: Some(vec![
            VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    expiration_seconds: Some(3607),
                    path: "token".into(),
                    audience: None,
                }),
                ..Default::default()
            },
            VolumeProjection {
                config_map: Some(ConfigMapProjection {
                    name: crate::controllers::namespace::ROOT_CA_CONFIG_MAP.into(),
                    items: Some(vec![KeyToPath {
                        key: "ca.crt".into(),
                        path: "ca.crt".into(),
                        mode: None,
                    }]),
                    optional: None,
                }),
                ..Default::default()
            },
            VolumeProjection {
                downward_api: Some(DownwardAPIProjection {
                    items: Some(vec![DownwardAPIVolumeFile {
                        path: "namespace".into(),
                        field_ref: Some(ObjectFieldSelector {
                            api_version: Some("v1".into()),
                            field_path: "metadata.namespace".into(),
                        }),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            },
        ]),
    };
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: name.clone(),
        projected: Some(projected),
        ..Default::default()
    });
    let mount = VolumeMount {
        name,
        mount_path: MOUNT_PATH.into(),
        read_only: Some(true),
        ..Default::default()
    };
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        c.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(mount.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(issuer: &str, exp_in: i64) -> Claims {
        let now = now().0.as_second();
        Claims {
            iss: issuer.into(),
            sub: "system:serviceaccount:team:robot".into(),
            aud: vec![issuer.into()],
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "j".into(),
            kubernetes: Private {
                namespace: "team".into(),
                serviceaccount: Ref {
                    name: "robot".into(),
                    uid: "u1".into(),
                },
                ..Default::default()
            },
        }
    }

    #[test]
    fn tokens_verify_only_when_signed_here_for_the_api_and_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = TokenIssuer::load_or_create(dir.path(), DEFAULT_ISSUER).unwrap();
        let token = issuer.sign(&claims(DEFAULT_ISSUER, 600));
        assert!(looks_like_jwt(&token));
        assert_eq!(issuer.verify(&token).unwrap(), claims(DEFAULT_ISSUER, 600));
        // The key survives a restart.
        let again = TokenIssuer::load_or_create(dir.path(), DEFAULT_ISSUER).unwrap();
        assert!(again.verify(&token).is_some());
        // Expired beyond the leeway, another audience, another issuer, another key: refused.
        assert!(issuer
            .verify(&issuer.sign(&claims(DEFAULT_ISSUER, -120)))
            .is_none());
        let mut other_aud = claims(DEFAULT_ISSUER, 600);
        other_aud.aud = vec!["vault".into()];
        assert!(issuer.verify(&issuer.sign(&other_aud)).is_none());
        assert!(issuer
            .verify(&issuer.sign(&claims("https://elsewhere", 600)))
            .is_none());
        let stranger =
            TokenIssuer::load_or_create(tempfile::tempdir().unwrap().path(), DEFAULT_ISSUER)
                .unwrap();
        assert!(issuer
            .verify(&stranger.sign(&claims(DEFAULT_ISSUER, 600)))
            .is_none());
        // A tampered payload fails its signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut forged = claims(DEFAULT_ISSUER, 600);
        forged.kubernetes.serviceaccount.name = "admin".into();
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&forged).unwrap(),
        );
        assert!(issuer.verify(&parts.join(".")).is_none());
    }
}
