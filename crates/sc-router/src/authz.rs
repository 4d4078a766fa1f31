//! Who may do what: the one authorization decision, used by the gRPC path and the control plane
//! alike.
//!
//! A [`Caller`] is established by each plane from what it has: with authentication on, the
//! verified [`Identity`] (an admin when it is in the router's admin group); with it off, the
//! user the caller claims (a gRPC request's `user_context.user_id`, the control plane's
//! `x-spark-connect-user-id` header). The rule is then the same everywhere:
//!
//! * an admin may do anything;
//! * a session may be used, seen and closed by its owner;
//! * a session without an owner (created with authentication off and no user) is open to every
//!   caller that is not authenticated, and to admins only once authentication is on;
//! * a backend's Spark UI and logs may be seen by admins and by the users who may use a session
//!   on it (they show every query run there);
//! * acting on the proxy as a whole (draining backends, reloading, creating a session for
//!   somebody else) is for admins;
//! * with authentication off, a control-plane caller that claims no user is the operator (an
//!   admin): the proxy then listens on loopback only, and whoever reaches it runs it. (A gRPC
//!   request always names its user in `user_context`; one that leaves it empty is nobody in
//!   particular, not the operator.)
//!
//! A refusal writes one `permission_denied` audit line and answers
//! [`RouterError::PermissionDenied`] (for a session: nothing is said of it, not even whether it
//! exists) or [`RouterError::NotAdmin`].

use std::net::SocketAddr;

use sc_backend_api::Identity;
use tracing::warn;

use crate::RouterError;

/// Which plane a call came in on, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// The Spark Connect (gRPC) port.
    Grpc,
    /// The HTTP control plane.
    Control,
}

impl Plane {
    fn as_str(self) -> &'static str {
        match self {
            Plane::Grpc => "grpc",
            Plane::Control => "control",
        }
    }
}

/// Who makes a call, as the authorization decision sees it. Build one with
/// [`Router::caller`](crate::Router::caller).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    identity: Option<&'a Identity>,
    user: Option<&'a str>,
    admin: bool,
    plane: Plane,
    peer: Option<SocketAddr>,
}

/// What a caller wants to act on.
#[derive(Debug, Clone, Copy)]
pub enum Access<'a> {
    /// Use, see or close a session (live, or closed lately) owned by `owner`.
    Session {
        /// The session's id (for the audit line only).
        id: &'a str,
        /// Its owner; `None` when it has none.
        owner: Option<&'a str>,
    },
    /// See a backend's Spark UI or logs; `owners` are the owners of the sessions on it.
    Backend {
        /// The backend's id (for the error and the audit line).
        id: &'a str,
        /// The owner of each session bound to it (`None` for a session without one).
        owners: &'a [Option<String>],
        /// What the caller wants to see, e.g. `"the Spark UI"`.
        what: &'static str,
    },
    /// Act on the proxy as a whole; `action` says what, e.g. `"drain or undrain backends"`.
    Operate {
        /// What the caller wants to do, for the error and the audit line.
        action: &'static str,
    },
}

impl<'a> Caller<'a> {
    /// A caller as a plane establishes it: the verified `identity` when authentication is on
    /// (an admin when it is in `admin_group`), else the user it claims (the operator when it
    /// claims none).
    pub(crate) fn new(
        identity: Option<&'a Identity>,
        claimed_user: Option<&'a str>,
        admin_group: Option<&str>,
        plane: Plane,
    ) -> Self {
        let claimed_user = claimed_user.filter(|u| !u.is_empty());
        let (user, admin) = match identity {
            Some(identity) => (
                Some(identity.user.as_str()),
                admin_group.is_some_and(|g| identity.in_group(g)),
            ),
            None => (
                claimed_user,
                claimed_user.is_none() && plane == Plane::Control,
            ),
        };
        Caller {
            identity,
            user,
            admin,
            plane,
            peer: None,
        }
    }

    /// The same caller, coming from `peer` (named in audit lines).
    pub fn with_peer(mut self, peer: Option<SocketAddr>) -> Self {
        self.peer = peer;
        self
    }

    /// The user the caller is, verified or claimed.
    pub fn user(&self) -> Option<&'a str> {
        self.user
    }

    /// The verified identity, when authentication is on.
    pub fn identity(&self) -> Option<&'a Identity> {
        self.identity
    }

    /// Whether the caller may do anything.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Where the call came from.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The key the per-user limits count under.
    pub(crate) fn limit_key(&self) -> &'a str {
        self.user.unwrap_or("anonymous")
    }

    /// Whether the caller may see `access`, without an audit line for a refusal (for filtering
    /// lists: a list shows what the caller may see and no more).
    pub fn may(&self, access: Access<'_>) -> bool {
        if self.admin {
            return true;
        }
        match access {
            Access::Session {
                owner: Some(owner), ..
            } => self.user == Some(owner),
            Access::Session { owner: None, .. } => self.identity.is_none(),
            // Whoever may use a session there may see what the engine shows of it.
            Access::Backend { id, owners, .. } => owners.iter().any(|owner| {
                self.may(Access::Session {
                    id,
                    owner: owner.as_deref(),
                })
            }),
            Access::Operate { .. } => false,
        }
    }

    /// The decision: `Ok` when the caller may, else the error to answer, after one
    /// `permission_denied` audit line.
    pub fn authorize(&self, access: Access<'_>) -> Result<(), RouterError> {
        if self.may(access) {
            return Ok(());
        }
        let user = self.user.unwrap_or("");
        let peer = self
            .peer
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        match access {
            Access::Session { id, .. } => {
                warn!(target: "audit", event = "permission_denied", plane = self.plane.as_str(), user, peer = %peer, session_id = id, "permission denied");
                Err(RouterError::PermissionDenied)
            }
            Access::Backend { id, what, .. } => {
                warn!(target: "audit", event = "permission_denied", plane = self.plane.as_str(), user, peer = %peer, backend = id, what, "permission denied");
                Err(RouterError::BackendForbidden {
                    id: id.to_owned(),
                    what,
                })
            }
            Access::Operate { action } => {
                warn!(target: "audit", event = "permission_denied", plane = self.plane.as_str(), user, peer = %peer, action, "permission denied");
                Err(RouterError::NotAdmin {
                    action,
                    authenticated: self.identity.is_some(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sc_backend_api::AuthMethod;

    fn session<'a>(owner: Option<&'a str>) -> Access<'a> {
        Access::Session { id: "s", owner }
    }

    const DRAIN: Access<'static> = Access::Operate { action: "drain" };

    #[test]
    fn the_same_rule_with_authentication_on_and_off() {
        let mut alice = Identity::new("alice", AuthMethod::Token);
        let mut root = Identity::new("root", AuthMethod::Token);
        root.groups.push("admins".into());
        alice.groups.push("analysts".into());
        let admins = Some("admins");
        for plane in [Plane::Grpc, Plane::Control] {
            // Authentication on: the identity decides, whatever is claimed.
            let verified = Caller::new(Some(&alice), Some("root"), admins, plane);
            assert_eq!(verified.user(), Some("alice"));
            assert!(verified.may(session(Some("alice"))));
            assert!(!verified.may(session(Some("bob"))));
            assert!(
                !verified.may(session(None)),
                "ownerless: admins only once auth is on"
            );
            assert!(!verified.may(DRAIN));
            let admin = Caller::new(Some(&root), None, admins, plane);
            assert!(
                admin.may(session(Some("bob"))) && admin.may(session(None)) && admin.may(DRAIN)
            );
            // Authentication off: the claimed user, under the same rule.
            let claimed = Caller::new(None, Some("alice"), admins, plane);
            assert!(claimed.may(session(Some("alice"))));
            assert!(!claimed.may(session(Some("bob"))));
            assert!(claimed.may(session(None)));
            assert!(!claimed.may(DRAIN));
        }
        // Claiming nothing on the control plane with authentication off is the operator.
        let operator = Caller::new(None, None, admins, Plane::Control);
        assert!(operator.is_admin() && operator.may(session(Some("bob"))) && operator.may(DRAIN));
        let operator = Caller::new(None, Some(""), None, Plane::Control);
        assert!(operator.is_admin());
        // A gRPC request always names its user; one that does not gets no more than anyone.
        let nobody = Caller::new(None, None, admins, Plane::Grpc);
        assert!(!nobody.is_admin() && !nobody.may(session(Some("bob"))));
        assert!(nobody.may(session(None)));
    }

    #[test]
    fn a_backend_is_open_to_admins_and_to_the_owners_of_its_sessions() {
        let alice = Identity::new("alice", AuthMethod::Token);
        let mut root = Identity::new("root", AuthMethod::Token);
        root.groups.push("admins".into());
        let owners = [Some("bob".to_owned()), Some("alice".to_owned())];
        let backend = |owners| Access::Backend {
            id: "engine-1",
            owners,
            what: "the Spark UI",
        };
        let admins = Some("admins");
        let caller = Caller::new(Some(&alice), None, admins, Plane::Control);
        assert!(caller.may(backend(&owners)));
        assert!(!caller.may(backend(&owners[..1])));
        assert!(!caller.may(backend(&[])));
        let e = caller.authorize(backend(&[])).unwrap_err().to_string();
        assert!(e.contains("engine-1") && e.contains("the Spark UI"), "{e}");
        assert!(Caller::new(Some(&root), None, admins, Plane::Control).may(backend(&[])));
        // Authentication off: the claimed user, the same rule; the operator sees all.
        assert!(Caller::new(None, Some("bob"), None, Plane::Control).may(backend(&owners)));
        assert!(!Caller::new(None, Some("carol"), None, Plane::Control).may(backend(&owners)));
        assert!(Caller::new(None, None, None, Plane::Control).may(backend(&[])));
    }

    #[test]
    fn refusals_say_what_and_why() {
        let alice = Identity::new("alice", AuthMethod::Token);
        let caller = Caller::new(Some(&alice), None, None, Plane::Control);
        let e = caller.authorize(session(Some("bob"))).unwrap_err();
        assert_eq!(e.to_string(), "permission denied for this session");
        let e = caller.authorize(DRAIN).unwrap_err().to_string();
        assert!(e.contains("auth.admin_group") && e.contains("drain"), "{e}");
        let claimed = Caller::new(None, Some("bob"), None, Plane::Control);
        let e = claimed.authorize(DRAIN).unwrap_err().to_string();
        assert!(e.contains("x-spark-connect-user-id"), "{e}");
    }
}
