//! A browser's pass to the Spark UI pages behind the control plane.
//!
//! A link to `/control/backends/{id}/ui/` opens in a browser tab, which cannot send the bearer
//! token the API takes (the dashboard keeps the token in its own tab's `sessionStorage`).
//! `POST /control/ui-pass`, made with the token, answers a cookie that stands for the caller on
//! those pages and nowhere else:
//!
//! * its value is a random id the control plane maps to the caller's identity, never the token;
//! * `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it),
//!   `Path=/control/backends/`, an hour's `Max-Age`, and `Secure` when the control plane is
//!   served over TLS;
//! * only the UI's pages accept it, and they only read (GET and HEAD): every API route still
//!   needs the token or a client certificate.
//!
//! `DELETE /control/ui-pass` ends the pass (the dashboard's sign-out). With authentication off
//! the UI needs no pass and none is made.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, Method, header};
use dashmap::DashMap;
use sc_auth::Identity;

/// The cookie's name.
pub(crate) const COOKIE: &str = "sc_ui_pass";

/// How long a pass lasts.
const LIFETIME: Duration = Duration::from_secs(3600);

/// Passes kept at most; past this, expired ones are dropped and, if still full, new ones are
/// refused (a bound on what signed-in callers can make the proxy hold).
const MAX_PASSES: usize = 100_000;

/// The passes given out, by id.
#[derive(Debug, Default)]
pub struct UiPasses {
    passes: DashMap<String, Pass>,
}

#[derive(Debug)]
struct Pass {
    identity: Identity,
    expires: Instant,
}

impl UiPasses {
    /// A new pass for `identity`: its id, or `None` when too many are held.
    pub(crate) fn issue(&self, identity: Identity) -> Option<String> {
        let now = Instant::now();
        if self.passes.len() >= MAX_PASSES / 2 {
            self.passes.retain(|_, pass| pass.expires > now);
        }
        if self.passes.len() >= MAX_PASSES {
            return None;
        }
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.passes.insert(
            id.clone(),
            Pass {
                identity,
                expires: now + LIFETIME,
            },
        );
        Some(id)
    }

    /// Ends the pass the request carries, if any.
    pub(crate) fn revoke(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers) {
            self.passes.remove(id);
        }
    }

    /// The identity a request to a Spark UI page stands for by its pass, if it carries a live
    /// one and only reads.
    pub(crate) fn identity(&self, method: &Method, headers: &HeaderMap) -> Option<Identity> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let id = cookie(headers)?;
        let live = self
            .passes
            .get(id)
            .filter(|pass| pass.expires > Instant::now())
            .map(|pass| pass.identity.clone());
        if live.is_none() {
            self.passes
                .remove_if(id, |_, pass| pass.expires <= Instant::now());
        }
        live
    }
}

/// Whether `path` is one of the Spark UI pages a pass opens.
pub(crate) fn is_ui_page(path: &str) -> bool {
    path.strip_prefix("/control/backends/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(id, rest)| !id.is_empty() && (rest == "ui" || rest.starts_with("ui/")))
}

/// The `Set-Cookie` value that hands out pass `id` (`None` if `id` cannot be a header value;
/// the ids [`UiPasses::issue`] makes are hexadecimal).
pub(crate) fn set_cookie(id: &str, tls: bool) -> Option<HeaderValue> {
    let secure = if tls { "; Secure" } else { "" };
    let value = format!(
        "{COOKIE}={id}; Path=/control/backends/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        LIFETIME.as_secs()
    );
    HeaderValue::from_str(&value).ok()
}

/// The `Set-Cookie` value that clears the pass.
pub(crate) fn clear_cookie(tls: bool) -> HeaderValue {
    if tls {
        HeaderValue::from_static(
            "sc_ui_pass=; Path=/control/backends/; Max-Age=0; HttpOnly; SameSite=Strict; Secure",
        )
    } else {
        HeaderValue::from_static(
            "sc_ui_pass=; Path=/control/backends/; Max-Age=0; HttpOnly; SameSite=Strict",
        )
    }
}

/// The pass id in the request's cookies, if any.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then_some(value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sc_auth::AuthMethod;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_pass_stands_for_its_caller_on_reads_until_revoked() {
        let passes = UiPasses::default();
        let id = passes
            .issue(Identity::new("alice", AuthMethod::Token))
            .unwrap();
        assert_eq!(id.len(), 64);
        let headers = with_cookie(&format!("theme=dark; {COOKIE}={id}"));
        let who = passes.identity(&Method::GET, &headers).unwrap();
        assert_eq!(who.user, "alice");
        assert!(passes.identity(&Method::POST, &headers).is_none());
        assert!(
            passes
                .identity(&Method::GET, &with_cookie(&format!("{COOKIE}=x{id}")))
                .is_none()
        );
        passes.revoke(&headers);
        assert!(passes.identity(&Method::GET, &headers).is_none());
    }

    #[test]
    fn only_the_ui_pages_take_a_pass() {
        assert!(is_ui_page("/control/backends/engine-1/ui"));
        assert!(is_ui_page("/control/backends/engine-1/ui/jobs/"));
        assert!(!is_ui_page("/control/backends/engine-1/logs"));
        assert!(!is_ui_page("/control/backends/engine-1/uix"));
        assert!(!is_ui_page("/control/backends//ui/"));
        assert!(!is_ui_page("/control/sessions"));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped() {
        let value = set_cookie("abc", true).unwrap();
        let value = value.to_str().unwrap();
        for part in [
            "sc_ui_pass=abc",
            "Path=/control/backends/",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
        ] {
            assert!(value.contains(part), "{value}");
        }
        assert!(
            !set_cookie("abc", false)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("Secure")
        );
        assert!(
            clear_cookie(true)
                .to_str()
                .unwrap()
                .starts_with("sc_ui_pass=;")
        );
    }
}
