//! Turns credentials into an [`Identity`].

use std::collections::HashMap;

use sc_backend_api::{AuthMethod, Identity};
use sha2::{Digest, Sha256};

use crate::jwt::JwtVerifier;
use crate::settings::AuthSettings;

/// Why a caller was not authenticated. Messages say what to send instead and never contain a
/// secret (tokens appear only as [`fingerprint`]s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all, and anonymous access is off.
    #[error(
        "no credentials: send `authorization: Bearer <token>` (PySpark: sc://host:port/;token=<token>) or a client certificate"
    )]
    Missing,
    /// The `authorization` header is not `Bearer <token>`.
    #[error("authorization header is not `Bearer <token>`")]
    Malformed,
    /// The token is neither a configured static token nor a valid JWT.
    #[error("token {0} is not valid")]
    InvalidToken(String),
    /// A JWT failed verification.
    #[error("token {fingerprint} was rejected: {reason}")]
    JwtRejected {
        /// The token's fingerprint.
        fingerprint: String,
        /// What failed (expired, not yet valid, wrong issuer, ...).
        reason: String,
    },
    /// A client certificate carries no usable subject.
    #[error("client certificate has no common name (CN) to use as the user name")]
    CertificateWithoutName,
    /// The configuration is wrong.
    #[error("invalid auth configuration: {0}")]
    Config(String),
}

/// A short, stable, non-reversible name for a token, safe to log.
pub fn fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    format!("sha256:{}", hex::encode(&digest[..6]))
}

/// Checks credentials against the configured methods.
pub struct Authenticator {
    tokens: HashMap<[u8; 32], Identity>,
    jwt: Option<JwtVerifier>,
    mtls: Option<Vec<String>>,
    anonymous: bool,
    admin_group: Option<String>,
    enabled: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("jwt", &self.jwt.is_some())
            .field("mtls", &self.mtls.is_some())
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

impl Authenticator {
    /// Builds the authenticator, reading key files. Errors name the key to fix.
    pub fn new(settings: &AuthSettings) -> Result<Self, AuthError> {
        let mut tokens = HashMap::new();
        for (i, entry) in settings.tokens.iter().enumerate() {
            let digest: [u8; 32] = match (&entry.token, &entry.sha256) {
                (Some(token), None) if !token.is_empty() => Sha256::digest(token.as_bytes()).into(),
                (None, Some(hexed)) => hex::decode(hexed.trim())
                    .ok()
                    .and_then(|v| <[u8; 32]>::try_from(v).ok())
                    .ok_or_else(|| {
                        AuthError::Config(format!("auth.tokens[{i}].sha256 is not 64 hex digits"))
                    })?,
                _ => {
                    return Err(AuthError::Config(format!(
                        "auth.tokens[{i}] needs exactly one of `token` or `sha256`"
                    )));
                }
            };
            if entry.user.is_empty() {
                return Err(AuthError::Config(format!("auth.tokens[{i}].user is empty")));
            }
            let identity = Identity {
                user: entry.user.clone(),
                groups: entry.groups.clone(),
                method: AuthMethod::Token,
            };
            if tokens.insert(digest, identity).is_some() {
                return Err(AuthError::Config(format!(
                    "auth.tokens[{i}] repeats an earlier token"
                )));
            }
        }
        let jwt = settings.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        Ok(Authenticator {
            tokens,
            jwt,
            mtls: settings.mtls.as_ref().map(|m| m.groups.clone()),
            anonymous: settings.anonymous,
            admin_group: settings.admin_group.clone(),
            enabled: settings.enabled(),
        })
    }

    /// Whether any method is configured (otherwise the proxy does not authenticate at all).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether client certificates are accepted as identities.
    pub fn accepts_certificates(&self) -> bool {
        self.mtls.is_some()
    }

    /// Whether anonymous access is on.
    pub fn allows_anonymous(&self) -> bool {
        self.anonymous
    }

    /// Whether the identity may act on every session.
    pub fn is_admin(&self, identity: &Identity) -> bool {
        self.admin_group
            .as_deref()
            .is_some_and(|group| identity.in_group(group))
    }

    /// Authenticates a caller from its `authorization` header value and the DER certificate it
    /// presented (the leaf), if any.
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        client_certificate: Option<&[u8]>,
    ) -> Result<Identity, AuthError> {
        if let Some(value) = authorization {
            let value = std::str::from_utf8(value).map_err(|_| AuthError::Malformed)?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(AuthError::Malformed)?;
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if let Some(identity) = self.tokens.get(&digest) {
                return Ok(identity.clone());
            }
            return match &self.jwt {
                Some(jwt) if token.matches('.').count() == 2 => jwt.verify(token),
                _ => Err(AuthError::InvalidToken(fingerprint(token))),
            };
        }
        if let (Some(groups), Some(der)) = (&self.mtls, client_certificate) {
            let (_, cert) = x509_parser::parse_x509_certificate(der)
                .map_err(|_| AuthError::CertificateWithoutName)?;
            let cn = cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .filter(|cn| !cn.is_empty())
                .ok_or(AuthError::CertificateWithoutName)?;
            return Ok(Identity {
                user: cn.to_owned(),
                groups: groups.clone(),
                method: AuthMethod::Mtls,
            });
        }
        if self.anonymous {
            return Ok(Identity::new("anonymous", AuthMethod::Anonymous));
        }
        Err(AuthError::Missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::TokenEntry;

    fn tokens() -> AuthSettings {
        AuthSettings {
            tokens: vec![
                TokenEntry {
                    token: Some("alice-secret".into()),
                    sha256: None,
                    user: "alice".into(),
                    groups: vec!["eng".into()],
                },
                TokenEntry {
                    token: None,
                    sha256: Some(hex::encode(Sha256::digest(b"bob-secret"))),
                    user: "bob".into(),
                    groups: vec!["admins".into()],
                },
            ],
            admin_group: Some("admins".into()),
            ..Default::default()
        }
    }

    #[test]
    fn static_tokens_map_to_users_and_groups() {
        let a = Authenticator::new(&tokens()).unwrap();
        let alice = a.authenticate(Some(b"Bearer alice-secret"), None).unwrap();
        assert_eq!(
            (alice.user.as_str(), alice.groups.as_slice()),
            ("alice", &["eng".to_string()][..])
        );
        let bob = a.authenticate(Some(b"Bearer bob-secret"), None).unwrap();
        assert!(a.is_admin(&bob) && !a.is_admin(&alice));
        let err = a.authenticate(Some(b"Bearer nope"), None).unwrap_err();
        assert!(err.to_string().contains("sha256:"), "{err}");
        assert!(!err.to_string().contains("nope"));
        assert_eq!(a.authenticate(None, None), Err(AuthError::Missing));
        assert_eq!(
            a.authenticate(Some(b"Basic x"), None),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer "), None),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            a.authenticate(Some(&[0xff, 0xfe]), None),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn anonymous_only_when_configured() {
        let a = Authenticator::new(&AuthSettings {
            anonymous: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            a.authenticate(None, None).unwrap().method,
            AuthMethod::Anonymous
        );
        assert!(
            !Authenticator::new(&AuthSettings::default())
                .unwrap()
                .enabled()
        );
    }

    #[test]
    fn bad_token_config_names_the_key() {
        let mut s = tokens();
        s.tokens[1].sha256 = Some("xyz".into());
        assert!(
            Authenticator::new(&s)
                .unwrap_err()
                .to_string()
                .contains("auth.tokens[1].sha256")
        );
        s.tokens[1].token = Some("t".into());
        assert!(
            Authenticator::new(&s)
                .unwrap_err()
                .to_string()
                .contains("exactly one")
        );
    }

    #[test]
    fn debug_output_shows_no_token() {
        let settings = tokens();
        let text = format!("{settings:?} {:?}", settings.tokens[0]);
        assert!(!text.contains("alice-secret"), "{text}");
        assert!(text.contains(&fingerprint("alice-secret")), "{text}");
        let digest = hex::encode(Sha256::digest(b"bob-secret"));
        assert!(!text.contains(&digest), "{text}");
        // Both forms of a token print the same fingerprint.
        assert!(text.contains(&fingerprint("bob-secret")), "{text}");
        assert!(text.contains("alice") && text.contains("eng"), "{text}");
        let a = Authenticator::new(&settings).unwrap();
        let text = format!("{a:?}");
        assert!(
            !text.contains("alice-secret") && !text.contains(&digest),
            "{text}"
        );
    }
}
