//! JSON Web Token verification: the keys of `auth.jwt` (a key file or a JWKS file), each bound
//! to one algorithm, and the checks of a token's signature and claims.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sc_backend_api::{AuthMethod, Identity};
use tracing::warn;

use crate::authenticator::{AuthError, fingerprint};
use crate::settings::JwtSettings;

/// One verification key and the single algorithm it verifies. A key never serves two algorithms:
/// that is what keeps a public key from doubling as an HMAC secret (algorithm confusion).
struct JwtKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithm: Algorithm,
}

/// Verifies JWTs against the keys and claims of `auth.jwt`.
pub(crate) struct JwtVerifier {
    keys: Vec<JwtKey>,
    algorithms: Vec<Algorithm>,
    validation: Validation,
    user_claim: String,
    groups_claim: String,
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

/// The label of the first PEM block in `bytes` (`PUBLIC KEY`, `CERTIFICATE`, ...), if any.
fn pem_label(bytes: &[u8]) -> Option<String> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let start = bytes.windows(BEGIN.len()).position(|w| w == BEGIN)? + BEGIN.len();
    let rest = &bytes[start..];
    let end = rest
        .windows(5)
        .position(|w| w == b"-----")
        .unwrap_or(rest.len())
        .min(64);
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Checks that `secret` can be an HS256 secret: not empty and not PEM (a public key or
/// certificate is public, so an HMAC keyed with it lets anyone sign tokens).
fn check_hs256_secret(secret: &[u8], source: &str) -> Result<(), AuthError> {
    if let Some(label) = pem_label(secret) {
        return Err(AuthError::Config(format!(
            "{source} holds a PEM {label}, which cannot be an HS256 secret: anyone who has it \
             could sign tokens; for HS256 use a random shared secret, for a public key set \
             auth.jwt.algorithms to [RS256] or [ES256]"
        )));
    }
    if secret.is_empty() {
        return Err(AuthError::Config(format!(
            "{source} is an empty HS256 secret; use a long random shared secret"
        )));
    }
    Ok(())
}

fn names(algorithms: &[Algorithm]) -> String {
    algorithms
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value from a token, shortened and escaped so that it is safe in messages and logs.
fn quoted(value: &str) -> String {
    format!("{:?}", value.chars().take(64).collect::<String>())
}

/// The reason shown for a failed JWT check.
fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "it has expired (exp)".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "wrong issuer (iss)".into(),
        ErrorKind::InvalidAudience => "wrong audience (aud)".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::InvalidAlgorithm => "algorithm not allowed".into(),
        ErrorKind::MissingRequiredClaim(c) => match c.as_str() {
            "iss" => "claim 'iss' is missing (the issuer, required by auth.jwt.issuer)".into(),
            "aud" => "claim 'aud' is missing (the audience, required by auth.jwt.audience)".into(),
            "exp" => "claim 'exp' is missing (tokens must expire)".into(),
            other => format!("claim '{other}' is missing"),
        },
        other => format!("{other:?}"),
    }
}

/// Whether a failure to decode with one key leaves the others worth trying: the key cannot
/// check this token. Any other failure comes after a good signature, so it is the answer.
fn try_next_key(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::Provider(_)
    )
}

/// The configured algorithm a JWKS key verifies, from its own key type: RSA → RS256, EC P-256
/// → ES256, oct → HS256. `Err` says why the key is not used.
fn jwk_algorithm(jwk: &Jwk, configured: &[Algorithm]) -> Result<Algorithm, String> {
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err("it is an encryption key (use: enc)".into());
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::EllipticCurve(p) => {
            return Err(format!("curve {:?} is not supported (only P-256)", p.curve));
        }
        AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
        _ => return Err("its key type is not supported (use RSA, EC P-256 or oct)".into()),
    };
    if !configured.contains(&algorithm) {
        return Err(format!(
            "it is a {algorithm:?} key and auth.jwt.algorithms is [{}]",
            names(configured)
        ));
    }
    match jwk.common.key_algorithm {
        Some(declared) if declared != KeyAlgorithm::from(algorithm) => Err(format!(
            "it declares alg {declared}, which is not supported for this key"
        )),
        _ => Ok(algorithm),
    }
}

impl JwtVerifier {
    /// Reads the keys of `auth.jwt`. Errors name the key to fix.
    pub(crate) fn new(s: &JwtSettings) -> Result<Self, AuthError> {
        let mut algorithms = Vec::new();
        for name in &s.algorithms {
            let algorithm = parse_algorithm(name)?;
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
        if algorithms.is_empty() {
            return Err(AuthError::Config("auth.jwt.algorithms is empty".into()));
        }
        let hs256 = algorithms.contains(&Algorithm::HS256);
        let asymmetric: Vec<Algorithm> = algorithms
            .iter()
            .copied()
            .filter(|a| *a != Algorithm::HS256)
            .collect();
        let mut keys = Vec::new();
        if let Some(path) = &s.key_file {
            if hs256 && !asymmetric.is_empty() {
                return Err(AuthError::Config(format!(
                    "auth.jwt.algorithms mixes HS256 with {} on one auth.jwt.key_file: the file \
                     would be both a public key and the HS256 secret, so anyone holding the public \
                     key could sign HS256 tokens; list only HS256 (key_file holds the shared \
                     secret) or only RS256/ES256 (key_file holds the public key), or put keys of \
                     both kinds in auth.jwt.jwks_file",
                    names(&asymmetric)
                )));
            }
            let bytes = read(path, "auth.jwt.key_file")?;
            if hs256 {
                let secret = trim_secret(&bytes);
                check_hs256_secret(secret, &format!("auth.jwt.key_file {}", path.display()))?;
                keys.push(JwtKey {
                    kid: None,
                    key: DecodingKey::from_secret(secret),
                    algorithm: Algorithm::HS256,
                });
            } else {
                let mut errors = Vec::new();
                for algorithm in &asymmetric {
                    let key = match algorithm {
                        Algorithm::RS256 => DecodingKey::from_rsa_pem(&bytes),
                        _ => DecodingKey::from_ec_pem(&bytes),
                    };
                    match key {
                        Ok(key) => keys.push(JwtKey {
                            kid: None,
                            key,
                            algorithm: *algorithm,
                        }),
                        Err(e) => errors.push(format!("not a {algorithm:?} key: {e}")),
                    }
                }
                if keys.is_empty() {
                    return Err(AuthError::Config(format!(
                        "auth.jwt.key_file {} fits none of auth.jwt.algorithms [{}] ({}); it \
                         needs a PEM public key of a listed type",
                        path.display(),
                        names(&asymmetric),
                        errors.join("; ")
                    )));
                }
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
            let mut skipped = Vec::new();
            let mut usable = 0;
            for (i, jwk) in set.keys.iter().enumerate() {
                let kid = jwk.common.key_id.clone();
                let name = kid
                    .as_deref()
                    .map_or_else(|| format!("#{i}"), |k| format!("'{k}'"));
                let algorithm = match jwk_algorithm(jwk, &algorithms) {
                    Ok(algorithm) => algorithm,
                    Err(why) => {
                        warn!(
                            jwks_file = %path.display(),
                            key = %name,
                            reason = %why,
                            "auth.jwt.jwks_file: a key is not used"
                        );
                        skipped.push(format!("key {name}: {why}"));
                        continue;
                    }
                };
                let key = DecodingKey::from_jwk(jwk).map_err(|e| {
                    AuthError::Config(format!(
                        "auth.jwt.jwks_file {}: key {name} cannot be used: {e}",
                        path.display()
                    ))
                })?;
                if algorithm == Algorithm::HS256 {
                    check_hs256_secret(
                        key.try_get_as_bytes().unwrap_or_default(),
                        &format!("auth.jwt.jwks_file {}: key {name}", path.display()),
                    )?;
                }
                keys.push(JwtKey {
                    kid,
                    key,
                    algorithm,
                });
                usable += 1;
            }
            if usable == 0 {
                return Err(AuthError::Config(format!(
                    "auth.jwt.jwks_file {} has no key usable with auth.jwt.algorithms [{}]{}; \
                     add a signing key of a listed type (RSA for RS256, EC P-256 for ES256, oct \
                     for HS256) or change auth.jwt.algorithms",
                    path.display(),
                    names(&algorithms),
                    if skipped.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", skipped.join("; "))
                    }
                )));
            }
        }
        if keys.is_empty() {
            return Err(AuthError::Config(
                "auth.jwt needs key_file or jwks_file".into(),
            ));
        }
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms.clone();
        validation.leeway = s.leeway.as_secs();
        validation.validate_nbf = true;
        // `set_issuer` and `set_audience` check the claims only when a token has them: require
        // them too, or a token without `iss` / `aud` would pass.
        let mut required = vec!["exp"];
        if let Some(iss) = &s.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match &s.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(JwtVerifier {
            keys,
            algorithms,
            validation,
            user_claim: s.user_claim.clone(),
            groups_claim: s.groups_claim.clone(),
        })
    }

    /// The identity a token proves, or why it proves none.
    pub(crate) fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let rejected = |reason: String| AuthError::JwtRejected {
            fingerprint: fingerprint(token),
            reason,
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::InvalidToken(fingerprint(token)))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(rejected(format!(
                "algorithm {:?} is not allowed (auth.jwt.algorithms is [{}])",
                header.alg,
                names(&self.algorithms)
            )));
        }
        // The token's `kid` selects among keys that have one; keys without a `kid` (the key
        // file, JWKS keys without one) are tried for every token.
        let candidates: Vec<&JwtKey> = self
            .keys
            .iter()
            .filter(|k| match (&k.kid, &header.kid) {
                (Some(kid), Some(wanted)) => kid == wanted,
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            let kid = header.kid.as_deref().unwrap_or_default();
            return Err(rejected(format!(
                "no configured key has kid {}",
                quoted(kid)
            )));
        }
        let mut last = None;
        for key in candidates.iter().filter(|k| k.algorithm == header.alg) {
            let mut validation = self.validation.clone();
            validation.algorithms = vec![key.algorithm];
            match jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation) {
                Ok(data) => return self.identity(&data.claims).map_err(rejected),
                Err(e) if try_next_key(e.kind()) => last = Some(reason(e.kind())),
                Err(e) => return Err(rejected(reason(e.kind()))),
            }
        }
        Err(rejected(last.unwrap_or_else(|| match &header.kid {
            Some(kid) => format!(
                "algorithm {:?} is not allowed for the key with kid {}",
                header.alg,
                quoted(kid)
            ),
            None => format!("no configured key is for algorithm {:?}", header.alg),
        })))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Authenticator;
    use crate::settings::AuthSettings;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
            // With auth.jwt.issuer / audience set, a token must carry iss / aud at all.
            (
                serde_json::json!({"email": "c", "aud": "spark", "exp": now() + 600}),
                "claim 'iss' is missing",
            ),
            (
                serde_json::json!({"email": "c", "iss": "https://issuer", "exp": now() + 600}),
                "claim 'aud' is missing",
            ),
        ];
        for (claims, want) in cases {
            let err = a
                .authenticate(Some(format!("Bearer {}", sign(claims)).as_bytes()), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
            assert!(err.contains("was rejected"), "{err}");
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

    // A 2048-bit RSA key for tests only, made once with
    // `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` and `openssl pkey -pubout`
    // (rcgen with ring cannot generate RSA keys).
    const RSA_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC7gkXz8Fy5eBtm
CVZmUZB2jtPjpPej1/WGc8r2OfqtZAgsVNTjm5RvqS8WuIvAyT1ttOrQR/htUwqd
BSv2BH7cYtBUHVVr2J4yrMxfOqxBlLBzzsqH+yGpqLRKgLlqFDauZQ1CCvfbnsmn
uMydp/FFRTg4dzr2CG2wrH/mDcytotJd3SccMskQuwrXr67hw9GyWT22vOuHi+6h
GhPyqVPVtveR1sKdm4UyMCX46QcwMoVxm4G5DsO1xRHRuyUoepc5fKp22T85LaiU
egiNSRjqVRkMpSTMwgd+Iv8jpKlpn6JTjprRmzrqaW0CVX85h2Pc2NNMNtCoMpEW
meSXnoc3AgMBAAECggEANi/IfV05vpNZ/5u1Ly5k/A38Z63VrrCLEIbH4W4R5ieh
QQZm2zurorUWmY9NO7IsIVcGAJi7zwQPbh7/fEICUzfvEk/Dzr2zwdsz2FVBUFZi
w6S/3JoTOU86gsk+S8x5nN4w/aPjysDRb7m0z96nl6gQPikejdkTsdm3wEi+nHKQ
0+JN5xFl27l1KsI5WAh2iNYAZHYP3VummBoeeOEaMA/TgMh67CmmfugZqHbbT74y
2Y2X4kltDRbo7StLdvrvrt6G42G+sFfJoKXJH8Cf7cneWypC3EKowts9ks2Tixg2
WRALEtFoEBjgFwojo5hfw1/ZboP5o5Uama8MrSzlcQKBgQDzzEzrvHlX2hEaFYJa
fTXdUHzaMHPOGN/DQ45A4RCMoj+zoP3VIZzFdomZ5jICsSn3WOg9quPH6xYbJdP6
xUIzgkUDPx0XlYLR/qlU1jwWVesRzaq8pZO2Cdn/dkgwq0o5gmZS2QS5FF1XL6q7
P52H/Fv5jwQUPAbRZz3h3ZTHGQKBgQDE5MJeoox8RNNRVcq1KHlEDEN0E6Qe/p9b
GPpYjMigsEvCgatrbYYq7fCIMxhKHVas//i18DkveV1+8xuk0lNEGhQX0PS/+cPD
nWgAdS97ohUqhm9C/M+2OwpQcPAWRqgdTpBEJchVLrFsdH2OJCrwVObr9ISiSVdB
/hZu8QEazwKBgDBXa003EwyDde6pIy7UMxEOO6N8BgpwzjXGuHdO6Vwpc94nZw2S
26Yf6gr1JSd5f6vHGk3YC9CBYeHCL3VDFexmwU5yfk9F2ynOiD8FN+bp5HGkSV2c
q1xmOa65Anl8DXy3yZhV5eTZD+UQ05bLd24WcRpb7GAiwutUwGV/7VdJAoGBAKm4
++exvOH+Ph51krgYfHfxDlBIAgiJuno/jMW6DdOeRKAVQNvo3GezFc2CJeT1Z1rX
h9/lhJXsy3B8RY8NkqM4y6s//0phFaRQ0m7alSTAsfgnTE91N+PA/wIaaIr7Oz2Q
FIH6A7eR+XUg8X4OpUjoFuq8q3xtNh931ISrkSU3AoGBAKLEwzIOAb06YMhft81C
Vfjrn0p/GkyOjdZ7mi1q9J4S64SyZNhXvW8OhCBQ6i/Ys2A5erNxcUo6NU4Im0SP
AGMiSLPilQ2sTpWMJEHgj0YrdAOGP1rfMIsBenv7Xeub6bMGc2c3Q4QItNyrpSB8
KxIAUJm9tUhaZ9caVwHoHJDP
-----END PRIVATE KEY-----
";
    const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu4JF8/BcuXgbZglWZlGQ
do7T46T3o9f1hnPK9jn6rWQILFTU45uUb6kvFriLwMk9bbTq0Ef4bVMKnQUr9gR+
3GLQVB1Va9ieMqzMXzqsQZSwc87Kh/shqai0SoC5ahQ2rmUNQgr3257Jp7jMnafx
RUU4OHc69ghtsKx/5g3MraLSXd0nHDLJELsK16+u4cPRslk9trzrh4vuoRoT8qlT
1bb3kdbCnZuFMjAl+OkHMDKFcZuBuQ7DtcUR0bslKHqXOXyqdtk/OS2olHoIjUkY
6lUZDKUkzMIHfiL/I6SpaZ+iU46a0Zs66mltAlV/OYdj3NjTTDbQqDKRFpnkl56H
NwIDAQAB
-----END PUBLIC KEY-----
";

    fn rsa_signing() -> EncodingKey {
        EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap()
    }

    /// JWT settings as a config file would give them: `algorithms` absent means the default.
    fn jwt_config(
        algorithms: Option<&[&str]>,
        key_file: Option<&std::path::Path>,
        jwks_file: Option<&std::path::Path>,
    ) -> AuthSettings {
        let mut jwt = serde_json::json!({"leeway": "0s"});
        if let Some(algorithms) = algorithms {
            jwt["algorithms"] = serde_json::json!(algorithms);
        }
        if let Some(path) = key_file {
            jwt["key_file"] = serde_json::json!(path);
        }
        if let Some(path) = jwks_file {
            jwt["jwks_file"] = serde_json::json!(path);
        }
        AuthSettings {
            jwt: Some(serde_json::from_value(jwt).unwrap()),
            ..Default::default()
        }
    }

    fn token(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, user: &str) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        encode(
            &header,
            &serde_json::json!({"sub": user, "exp": now() + 600}),
            key,
        )
        .unwrap()
    }

    fn bearer(a: &Authenticator, token: &str) -> Result<Identity, AuthError> {
        a.authenticate(Some(format!("Bearer {token}").as_bytes()), None)
    }

    fn write_jwks(path: &std::path::Path, keys: Vec<jsonwebtoken::jwk::Jwk>) {
        std::fs::write(path, serde_json::to_string(&JwkSet { keys }).unwrap()).unwrap();
    }

    #[test]
    fn rs256_with_a_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("rsa.pub.pem");
        std::fs::write(&public, RSA_PUBLIC_PEM).unwrap();
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ec_signing = EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap();
        for algorithms in [None, Some(&["RS256"][..])] {
            let a = Authenticator::new(&jwt_config(algorithms, Some(&public), None)).unwrap();
            let good = token(Algorithm::RS256, None, &rsa_signing(), "frank");
            assert_eq!(bearer(&a, &good).unwrap().user, "frank");
            // A forged signature: its first character changed (the last one also carries
            // padding bits, and some changes there are not valid base64 at all).
            let mut forged = good.clone();
            let at = forged.rfind('.').unwrap() + 1;
            let first = if forged[at..].starts_with('A') {
                "B"
            } else {
                "A"
            };
            forged.replace_range(at..=at, first);
            let err = bearer(&a, &forged).unwrap_err().to_string();
            assert!(err.contains("signature"), "{err}");
            // An ES256 token has no key to check it.
            let err = bearer(&a, &token(Algorithm::ES256, None, &ec_signing, "frank"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("ES256"), "{err}");
        }
        // An RSA key file that is not RSA for an RS256-only configuration names the key to fix.
        let wrong = dir.path().join("ec.pub.pem");
        std::fs::write(&wrong, ec.public_key_pem()).unwrap();
        let err = Authenticator::new(&jwt_config(Some(&["RS256"]), Some(&wrong), None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.jwt.key_file"), "{err}");
    }

    #[test]
    fn jwks_with_rsa_and_ec_keys_and_default_algorithms() {
        let dir = tempfile::tempdir().unwrap();
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ec_signing = EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap();
        let mut rsa_jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&rsa_signing(), Algorithm::RS256).unwrap();
        rsa_jwk.common.key_id = Some("rsa1".into());
        let mut ec_jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&ec_signing, Algorithm::ES256).unwrap();
        ec_jwk.common.key_id = Some("ec1".into());
        // Many JWKS documents leave `alg` out: the key type alone decides.
        ec_jwk.common.key_algorithm = None;
        let jwks = dir.path().join("jwks.json");
        write_jwks(&jwks, vec![rsa_jwk, ec_jwk]);

        let a = Authenticator::new(&jwt_config(None, None, Some(&jwks))).unwrap();
        for (alg, kid, key) in [
            (Algorithm::RS256, Some("rsa1"), &rsa_signing()),
            (Algorithm::ES256, Some("ec1"), &ec_signing),
            (Algorithm::RS256, None, &rsa_signing()),
            (Algorithm::ES256, None, &ec_signing),
        ] {
            let id = bearer(&a, &token(alg, kid, key, "gina"));
            assert_eq!(id.unwrap().user, "gina", "{alg:?} {kid:?}");
        }
        // The `kid` selects a key whose type does not fit the token's `alg`.
        let err = bearer(
            &a,
            &token(Algorithm::ES256, Some("rsa1"), &ec_signing, "gina"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not allowed for the key"), "{err}");
        let err = bearer(
            &a,
            &token(Algorithm::RS256, Some("ec1"), &rsa_signing(), "gina"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not allowed for the key"), "{err}");
        // An unknown `kid`.
        let err = bearer(
            &a,
            &token(Algorithm::RS256, Some("k9"), &rsa_signing(), "gina"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no configured key has kid"), "{err}");
        // HS256 is not configured at all.
        let err = bearer(
            &a,
            &token(
                Algorithm::HS256,
                None,
                &EncodingKey::from_secret(b"x"),
                "gina",
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("HS256 is not allowed"), "{err}");

        // With only ES256 configured, the RSA key is not used (and RS256 tokens fail).
        let a = Authenticator::new(&jwt_config(Some(&["ES256"]), None, Some(&jwks))).unwrap();
        assert!(bearer(&a, &token(Algorithm::ES256, Some("ec1"), &ec_signing, "g")).is_ok());
        assert!(
            bearer(
                &a,
                &token(Algorithm::RS256, Some("rsa1"), &rsa_signing(), "g")
            )
            .is_err()
        );
        // A JWKS without any key for the configured algorithms is a configuration error.
        let err = Authenticator::new(&jwt_config(Some(&["HS256"]), None, Some(&jwks)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auth.jwt.jwks_file") && err.contains("no key usable"),
            "{err}"
        );
    }

    #[test]
    fn hs256_with_a_public_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rsa = dir.path().join("rsa.pub.pem");
        std::fs::write(&rsa, RSA_PUBLIC_PEM).unwrap();
        let ec_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ec = dir.path().join("ec.pub.pem");
        std::fs::write(&ec, ec_pair.public_key_pem()).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["issuer".into()])
            .unwrap()
            .self_signed(&ec_pair)
            .unwrap();
        let certificate = dir.path().join("cert.pem");
        std::fs::write(&certificate, cert.pem()).unwrap();

        // HS256 next to an asymmetric algorithm on one key file.
        for (algorithms, file) in [
            (&["HS256", "RS256"][..], &rsa),
            (&["RS256", "HS256"][..], &rsa),
            (&["HS256", "ES256"][..], &ec),
            (&["HS256", "RS256", "ES256"][..], &ec),
        ] {
            let err = Authenticator::new(&jwt_config(Some(algorithms), Some(file), None))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("auth.jwt.algorithms")
                    && err.contains("auth.jwt.key_file")
                    && err.contains("only HS256"),
                "{algorithms:?}: {err}"
            );
        }
        // HS256 alone, with a public key or a certificate as the "secret".
        for (file, label) in [
            (&rsa, "PUBLIC KEY"),
            (&ec, "PUBLIC KEY"),
            (&certificate, "CERTIFICATE"),
        ] {
            let err = Authenticator::new(&jwt_config(Some(&["HS256"]), Some(file), None))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("auth.jwt.key_file") && err.contains(label) && err.contains("RS256"),
                "{err}"
            );
        }
        // An empty secret.
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = Authenticator::new(&jwt_config(Some(&["HS256"]), Some(&empty), None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auth.jwt.key_file") && err.contains("empty"),
            "{err}"
        );
        // An oct key in a JWKS holding a public key.
        let oct = jsonwebtoken::jwk::Jwk::from_encoding_key(
            &EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        let jwks = dir.path().join("jwks.json");
        write_jwks(&jwks, vec![oct]);
        let err = Authenticator::new(&jwt_config(Some(&["HS256", "RS256"]), None, Some(&jwks)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auth.jwt.jwks_file") && err.contains("PUBLIC KEY"),
            "{err}"
        );
    }

    #[test]
    fn hs256_tokens_signed_with_a_public_key_are_rejected_in_every_accepted_config() {
        let dir = tempfile::tempdir().unwrap();
        let ec_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ec_signing = EncodingKey::from_ec_pem(ec_pair.serialize_pem().as_bytes()).unwrap();
        let ec_public = ec_pair.public_key_pem();
        let cert = rcgen::CertificateParams::new(vec!["issuer".into()])
            .unwrap()
            .self_signed(&ec_pair)
            .unwrap()
            .pem();
        let mut files = Vec::new();
        for (name, pem) in [
            ("rsa.pub.pem", RSA_PUBLIC_PEM),
            ("ec.pub.pem", ec_public.as_str()),
            ("cert.pem", cert.as_str()),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            files.push((Some(path), None));
        }
        let mut rsa_jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&rsa_signing(), Algorithm::RS256).unwrap();
        rsa_jwk.common.key_algorithm = None;
        let ec_jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&ec_signing, Algorithm::ES256).unwrap();
        let jwks = dir.path().join("jwks.json");
        write_jwks(&jwks, vec![rsa_jwk, ec_jwk]);
        files.push((None, Some(jwks)));

        // Every public text an attacker may have, as sent and without trailing white space.
        let mut forged = Vec::new();
        for public in [RSA_PUBLIC_PEM, ec_public.as_str(), cert.as_str()] {
            for secret in [public, public.trim_end()] {
                let key = EncodingKey::from_secret(secret.as_bytes());
                forged.push(token(Algorithm::HS256, None, &key, "mallory"));
            }
        }
        let all = ["HS256", "RS256", "ES256"];
        let mut accepted = 0;
        for mask in 1..8_usize {
            let algorithms: Vec<&str> = (0..3)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| all[i])
                .collect();
            for (key_file, jwks_file) in &files {
                let settings =
                    jwt_config(Some(&algorithms), key_file.as_deref(), jwks_file.as_deref());
                let Ok(a) = Authenticator::new(&settings) else {
                    continue;
                };
                accepted += 1;
                for token in &forged {
                    assert!(
                        bearer(&a, token).is_err(),
                        "{algorithms:?} {key_file:?} {jwks_file:?} accepted a forged HS256 token"
                    );
                }
            }
        }
        // RS256 and/or ES256 with the matching key file or the JWKS file.
        assert!(accepted >= 6, "{accepted}");
    }
}
