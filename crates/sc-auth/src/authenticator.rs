//! Turns credentials into an [`Identity`].

use std::collections::HashMap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sc_backend_api::{AuthMethod, Identity};
use sha2::{Digest, Sha256};

use crate::settings::{AuthSettings, JwtSettings};

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

struct JwtVerifier {
    keys: Vec<(Option<String>, DecodingKey, Vec<Algorithm>)>,
    validation: Validation,
    user_claim: String,
    groups_claim: String,
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

fn parse_algorithm(name: &str) -> Result<Algorithm, AuthError> {
    match name.to_ascii_uppercase().as_str() {
        "HS256" => Ok(Algorithm::HS256),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => Err(AuthError::Config(format!(
            "auth.jwt.algorithms: '{other}' is not supported; use HS256, RS256 or ES256"
        ))),
    }
}

fn read(path: &std::path::Path, key: &str) -> Result<Vec<u8>, AuthError> {
    std::fs::read(path)
        .map_err(|e| AuthError::Config(format!("{key}: cannot read {}: {e}", path.display())))
}

impl JwtVerifier {
    fn new(s: &JwtSettings) -> Result<Self, AuthError> {
        let algorithms = s
            .algorithms
            .iter()
            .map(|a| parse_algorithm(a))
            .collect::<Result<Vec<_>, _>>()?;
        if algorithms.is_empty() {
            return Err(AuthError::Config("auth.jwt.algorithms is empty".into()));
        }
        let mut keys = Vec::new();
        if let Some(path) = &s.key_file {
            let bytes = read(path, "auth.jwt.key_file")?;
            for alg in &algorithms {
                let key = match alg {
                    Algorithm::HS256 => Ok(DecodingKey::from_secret(trim_secret(&bytes))),
                    Algorithm::RS256 => DecodingKey::from_rsa_pem(&bytes),
                    _ => DecodingKey::from_ec_pem(&bytes),
                };
                match key {
                    Ok(key) => keys.push((None, key, vec![*alg])),
                    Err(_) if algorithms.len() > 1 => {}
                    Err(e) => {
                        return Err(AuthError::Config(format!(
                            "auth.jwt.key_file {} is not a {alg:?} key: {e}",
                            path.display()
                        )));
                    }
                }
            }
            if keys.is_empty() {
                return Err(AuthError::Config(format!(
                    "auth.jwt.key_file {} fits none of auth.jwt.algorithms",
                    path.display()
                )));
            }
        }
        if let Some(path) = &s.jwks_file {
            let bytes = read(path, "auth.jwt.jwks_file")?;
            let set: JwkSet = serde_json::from_slice(&bytes).map_err(|e| {
                AuthError::Config(format!(
                    "auth.jwt.jwks_file {} is not a JWKS document: {e}",
                    path.display()
                ))
            })?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk).map_err(|e| {
                    AuthError::Config(format!("auth.jwt.jwks_file: a key cannot be used: {e}"))
                })?;
                keys.push((jwk.common.key_id.clone(), key, algorithms.clone()));
            }
        }
        if keys.is_empty() {
            return Err(AuthError::Config(
                "auth.jwt needs key_file or jwks_file".into(),
            ));
        }
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = s.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        if let Some(iss) = &s.issuer {
            validation.set_issuer(&[iss]);
        }
        match &s.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(JwtVerifier {
            keys,
            validation,
            user_claim: s.user_claim.clone(),
            groups_claim: s.groups_claim.clone(),
        })
    }

    fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let rejected = |reason: String| AuthError::JwtRejected {
            fingerprint: fingerprint(token),
            reason,
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::InvalidToken(fingerprint(token)))?;
        let mut last = rejected("no configured key matches the token".into());
        for (kid, key, algorithms) in &self.keys {
            if kid.is_some() && header.kid.is_some() && kid != &header.kid {
                continue;
            }
            if !algorithms.contains(&header.alg) {
                continue;
            }
            let mut validation = self.validation.clone();
            validation.algorithms = algorithms.clone();
            match jsonwebtoken::decode::<serde_json::Value>(token, key, &validation) {
                Ok(data) => return self.identity(&data.claims).map_err(rejected),
                Err(e) => {
                    last = rejected(match e.kind() {
                        ErrorKind::ExpiredSignature => "it has expired (exp)".into(),
                        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
                        ErrorKind::InvalidIssuer => "wrong issuer (iss)".into(),
                        ErrorKind::InvalidAudience => "wrong audience (aud)".into(),
                        ErrorKind::InvalidSignature => "bad signature".into(),
                        ErrorKind::InvalidAlgorithm => "algorithm not allowed".into(),
                        ErrorKind::MissingRequiredClaim(c) => format!("claim '{c}' is missing"),
                        other => format!("{other:?}"),
                    });
                }
            }
        }
        Err(last)
    }

    fn identity(&self, claims: &serde_json::Value) -> Result<Identity, String> {
        let user = claims
            .get(&self.user_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                format!(
                    "claim '{}' (the user) is missing or not a string",
                    self.user_claim
                )
            })?;
        let groups = match claims.get(&self.groups_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(g)) => vec![g.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            user: user.to_owned(),
            groups,
            method: AuthMethod::Jwt,
        })
    }
}

fn trim_secret(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
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
    use jsonwebtoken::{EncodingKey, Header, encode};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn hs256(dir: &std::path::Path) -> AuthSettings {
        let key = dir.join("secret");
        std::fs::write(&key, "jwt-shared-secret\n").unwrap();
        AuthSettings {
            jwt: Some(JwtSettings {
                algorithms: vec!["HS256".into()],
                key_file: Some(key),
                jwks_file: None,
                issuer: Some("https://issuer".into()),
                audience: Some("spark".into()),
                leeway: Duration::from_secs(5),
                user_claim: "email".into(),
                groups_claim: "groups".into(),
            }),
            ..Default::default()
        }
    }

    fn sign(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"jwt-shared-secret"),
        )
        .unwrap()
    }

    #[test]
    fn jwt_claims_are_checked() {
        let dir = std::env::temp_dir().join(format!("sc-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = Authenticator::new(&hs256(&dir)).unwrap();
        let good = serde_json::json!({"email": "carol@x", "groups": ["eng"], "iss": "https://issuer", "aud": "spark", "exp": now() + 600});
        let id = a
            .authenticate(
                Some(format!("Bearer {}", sign(good.clone())).as_bytes()),
                None,
            )
            .unwrap();
        assert_eq!((id.user.as_str(), id.method), ("carol@x", AuthMethod::Jwt));
        assert_eq!(id.groups, ["eng"]);

        let cases = [
            (
                serde_json::json!({"email": "c", "iss": "https://issuer", "aud": "spark", "exp": now() - 600}),
                "expired",
            ),
            (
                serde_json::json!({"email": "c", "iss": "https://issuer", "aud": "spark", "exp": now() + 600, "nbf": now() + 600}),
                "not valid yet",
            ),
            (
                serde_json::json!({"email": "c", "iss": "https://other", "aud": "spark", "exp": now() + 600}),
                "issuer",
            ),
            (
                serde_json::json!({"email": "c", "iss": "https://issuer", "aud": "web", "exp": now() + 600}),
                "audience",
            ),
            (
                serde_json::json!({"iss": "https://issuer", "aud": "spark", "exp": now() + 600}),
                "email",
            ),
            (
                serde_json::json!({"email": "c", "iss": "https://issuer", "aud": "spark"}),
                "exp",
            ),
        ];
        for (claims, want) in cases {
            let err = a
                .authenticate(Some(format!("Bearer {}", sign(claims)).as_bytes()), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
        // Within the clock skew an expired token still passes.
        let skewed = serde_json::json!({"email": "c", "iss": "https://issuer", "aud": "spark", "exp": now() - 2});
        assert!(
            a.authenticate(Some(format!("Bearer {}", sign(skewed)).as_bytes()), None)
                .is_ok()
        );
        // Wrong key.
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &good,
            &EncodingKey::from_secret(b"other"),
        )
        .unwrap();
        let err = a
            .authenticate(Some(format!("Bearer {forged}").as_bytes()), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("signature"), "{err}");
    }

    #[test]
    fn es256_with_a_key_file_and_with_a_jwks_file() {
        let dir = tempfile::tempdir().unwrap();
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let signing = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let public = dir.path().join("ec.pub.pem");
        std::fs::write(&public, pair.public_key_pem()).unwrap();
        let mut jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some("k1".into());
        let jwks = dir.path().join("jwks.json");
        std::fs::write(
            &jwks,
            serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap(),
        )
        .unwrap();

        let claims = serde_json::json!({"sub": "erin", "exp": now() + 600});
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        let token = encode(&header, &claims, &signing).unwrap();
        for (key_file, jwks_file) in [(Some(public.clone()), None), (None, Some(jwks.clone()))] {
            let a = Authenticator::new(&AuthSettings {
                jwt: Some(JwtSettings {
                    algorithms: vec!["ES256".into()],
                    key_file,
                    jwks_file,
                    issuer: None,
                    audience: None,
                    leeway: Duration::from_secs(0),
                    user_claim: "sub".into(),
                    groups_claim: "groups".into(),
                }),
                ..Default::default()
            })
            .unwrap();
            let id = a
                .authenticate(Some(format!("Bearer {token}").as_bytes()), None)
                .unwrap();
            assert_eq!(id.user, "erin");
            // An HS256 token signed with the public key's bytes (algorithm confusion) is refused.
            let forged = encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(pair.public_key_pem().as_bytes()),
            )
            .unwrap();
            assert!(
                a.authenticate(Some(format!("Bearer {forged}").as_bytes()), None)
                    .is_err()
            );
        }
    }
}
