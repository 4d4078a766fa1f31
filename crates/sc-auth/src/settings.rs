//! The `auth` section of the proxy's configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::authenticator::fingerprint;

/// How callers prove who they are. With nothing configured, authentication is off.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Admit callers without credentials as user `anonymous`. Only for trusted networks: the
    /// proxy warns loudly at start-up when this is on.
    pub anonymous: bool,
    /// Static bearer tokens.
    pub tokens: Vec<TokenEntry>,
    /// JSON Web Tokens.
    pub jwt: Option<JwtSettings>,
    /// Client certificates (requires `server.tls` with `client_ca_file`).
    pub mtls: Option<MtlsSettings>,
    /// Members of this group may see and use every session.
    pub admin_group: Option<String>,
}

impl AuthSettings {
    /// Whether any way of authenticating is configured.
    pub fn enabled(&self) -> bool {
        self.anonymous || !self.tokens.is_empty() || self.jwt.is_some() || self.mtls.is_some()
    }
}

/// One static token. Its `Debug` output shows the token only as a [`fingerprint`].
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The token itself. Prefer `sha256` so the file holds no secret.
    #[serde(default)]
    pub token: Option<String>,
    /// Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub sha256: Option<String>,
    /// The user the token authenticates.
    pub user: String,
    /// The user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The fingerprint of a token is the start of its SHA-256, so both forms of one token
        // print the same thing, and neither prints the token or its whole digest.
        let hashed = self.sha256.as_deref().map(|h| {
            let prefix: String = h.trim().chars().take(12).collect();
            format!("sha256:{}", prefix.to_ascii_lowercase())
        });
        f.debug_struct("TokenEntry")
            .field("token", &self.token.as_deref().map(fingerprint))
            .field("sha256", &hashed)
            .field("user", &self.user)
            .field("groups", &self.groups)
            .finish()
    }
}

/// JWT verification.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// Accepted algorithms: `HS256`, `RS256`, `ES256`. HS256 cannot share `key_file` with RS256
    /// or ES256 (a public key must never double as the HMAC secret).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// A PEM public key (RS256, ES256) or a file holding the shared secret (HS256; not PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// A JWKS document (JSON); the token's `kid` selects the key. Each key verifies only the
    /// configured algorithm of its own type: RSA → RS256, EC P-256 → ES256, oct → HS256.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` (tokens without one are rejected).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud` (tokens without one are rejected).
    #[serde(default)]
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// The claim holding the user name.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim holding the groups (an array of strings, or one string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}

fn default_user_claim() -> String {
    "sub".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

/// Client-certificate identities.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MtlsSettings {
    /// Groups given to every certificate-authenticated user.
    pub groups: Vec<String>,
}
