//! Who is calling: the identity an authenticator verified.

use serde::Serialize;

/// How an identity was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A static bearer token from configuration.
    Token,
    /// A signed JSON Web Token.
    Jwt,
    /// A client certificate (mutual TLS).
    Mtls,
    /// No credentials; allowed only when configured explicitly.
    Anonymous,
}

/// A verified caller: the user, their groups, and how they proved it.
///
/// The proxy's authentication layer puts one in every request's extensions; the router makes it
/// the session's owner and the `user_id` Spark sees, and providers receive it in
/// [`StartRequest`](crate::StartRequest) to place engines per user or group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The user name.
    pub user: String,
    /// Groups the user belongs to.
    pub groups: Vec<String>,
    /// How the identity was established.
    pub method: AuthMethod,
}

impl Identity {
    /// An identity with no groups.
    pub fn new(user: impl Into<String>, method: AuthMethod) -> Self {
        Identity {
            user: user.into(),
            groups: Vec::new(),
            method,
        }
    }

    /// Whether the identity belongs to `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}
