//! The built-in load policies: ROUND_ROBIN, ONE_TO_ONE, MAX_SESSIONS, LEAST_SESSIONS and
//! ON_DEMAND, and [`register`], which adds them to a proxy's [`Registry`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sc_backend_api::{BackendLoad, LoadPolicy, Placement, ProviderError, Registry, Spec};
use serde::Deserialize;

/// Registers the built-in policies. Only MAX_SESSIONS takes parameters (`max_size`).
pub fn register(registry: &mut Registry) {
    registry
        .register_policy("ROUND_ROBIN", |params: &Spec| {
            no_params("ROUND_ROBIN", params)?;
            Ok(Arc::new(RoundRobin::default()) as Arc<dyn LoadPolicy>)
        })
        .register_policy("ONE_TO_ONE", |params: &Spec| {
            no_params("ONE_TO_ONE", params)?;
            Ok(Arc::new(OneToOne) as Arc<dyn LoadPolicy>)
        })
        .register_policy("LEAST_SESSIONS", |params: &Spec| {
            no_params("LEAST_SESSIONS", params)?;
            Ok(Arc::new(LeastSessions) as Arc<dyn LoadPolicy>)
        })
        .register_policy("ON_DEMAND", |params: &Spec| {
            no_params("ON_DEMAND", params)?;
            Ok(Arc::new(OnDemand) as Arc<dyn LoadPolicy>)
        })
        .register_policy("MAX_SESSIONS", max_sessions);
}

/// A policy without parameters refuses any, naming the one that takes them.
fn no_params(name: &str, params: &Spec) -> Result<(), ProviderError> {
    if params.is_empty() {
        Ok(())
    } else {
        Err(ProviderError::Config(format!(
            "{}: {name} takes no parameters (max_size applies only to MAX_SESSIONS, not {name}); remove them",
            params.key()
        )))
    }
}

/// `load_policy.params` of MAX_SESSIONS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaxSessionsParams {
    /// Sessions per backend: a number, or a string holding one (as the Go proxy's files write it).
    max_size: Option<NumberOrString>,
}

/// A number that may be written as a string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    String(String),
}

fn max_sessions(params: &Spec) -> Result<Arc<dyn LoadPolicy>, ProviderError> {
    let parsed: MaxSessionsParams = params.parse()?;
    let max = match parsed.max_size {
        None => {
            return Err(params.invalid(
                "max_size",
                "is required for MAX_SESSIONS, e.g. max_size: \"5\"",
            ));
        }
        Some(NumberOrString::Number(n)) => n,
        Some(NumberOrString::String(s)) => s.trim().parse::<u64>().map_err(|_| {
            params.invalid(
                "max_size",
                format!("'{s}' is not a whole number; write e.g. \"5\""),
            )
        })?,
    };
    if max == 0 {
        return Err(params.invalid("max_size", "must be at least 1"));
    }
    Ok(Arc::new(MaxSessions::new(
        usize::try_from(max).unwrap_or(usize::MAX),
    )))
}

/// Cycles through the available backends, one new session each.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl LoadPolicy for RoundRobin {
    fn name(&self) -> &str {
        "ROUND_ROBIN"
    }

    fn choose(&self, backends: &[BackendLoad<'_>]) -> Placement {
        let available: Vec<_> = backends.iter().filter(|b| b.available).collect();
        if available.is_empty() {
            return none_available(backends);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % available.len();
        Placement::Existing(available[i].id.clone())
    }
}

/// Every new session goes to its provider, which decides: a launching provider returns the
/// engine it runs for the session's share level (user, group, ...) or starts one.
#[derive(Debug, Default)]
pub struct OnDemand;

impl LoadPolicy for OnDemand {
    fn name(&self) -> &str {
        "ON_DEMAND"
    }

    fn choose(&self, _backends: &[BackendLoad<'_>]) -> Placement {
        Placement::StartNew
    }
}

/// One session per backend: a free backend if there is one, else a new one from the provider.
#[derive(Debug, Default)]
pub struct OneToOne;

impl LoadPolicy for OneToOne {
    fn name(&self) -> &str {
        "ONE_TO_ONE"
    }

    fn choose(&self, backends: &[BackendLoad<'_>]) -> Placement {
        match backends.iter().find(|b| b.available && b.sessions == 0) {
            Some(b) => Placement::Existing(b.id.clone()),
            None => Placement::StartNew,
        }
    }
}

/// Fills the least-loaded backend up to `max_size` sessions, then asks for a new backend.
#[derive(Debug)]
pub struct MaxSessions {
    max_size: usize,
}

impl MaxSessions {
    /// A policy that puts at most `max_size` sessions on one backend.
    pub fn new(max_size: usize) -> Self {
        MaxSessions { max_size }
    }
}

impl LoadPolicy for MaxSessions {
    fn name(&self) -> &str {
        "MAX_SESSIONS"
    }

    fn choose(&self, backends: &[BackendLoad<'_>]) -> Placement {
        match least_loaded(backends) {
            Some(b) if b.sessions < self.max_size => Placement::Existing(b.id.clone()),
            _ => Placement::StartNew,
        }
    }
}

/// Puts each new session on the available backend with the fewest sessions.
#[derive(Debug, Default)]
pub struct LeastSessions;

impl LoadPolicy for LeastSessions {
    fn name(&self) -> &str {
        "LEAST_SESSIONS"
    }

    fn choose(&self, backends: &[BackendLoad<'_>]) -> Placement {
        match least_loaded(backends) {
            Some(b) => Placement::Existing(b.id.clone()),
            None => none_available(backends),
        }
    }
}

fn least_loaded<'a>(backends: &'a [BackendLoad<'a>]) -> Option<&'a BackendLoad<'a>> {
    // min_by_key keeps the first of equals, so ties go to configuration order.
    backends
        .iter()
        .filter(|b| b.available)
        .min_by_key(|b| b.sessions)
}

fn none_available(backends: &[BackendLoad<'_>]) -> Placement {
    if backends.is_empty() {
        Placement::StartNew
    } else {
        Placement::Exhausted(format!(
            "none of the {} backends is available (all unhealthy or draining)",
            backends.len()
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sc_backend_api::BackendId;

    fn ids(n: usize) -> Vec<BackendId> {
        (0..n).map(|i| BackendId::new(format!("b{i}"))).collect()
    }

    fn loads<'a>(
        ids: &'a [BackendId],
        sessions: &[usize],
        available: &[bool],
    ) -> Vec<BackendLoad<'a>> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| BackendLoad {
                id,
                sessions: sessions[i],
                available: available[i],
            })
            .collect()
    }

    fn picked(p: Placement) -> String {
        match p {
            Placement::Existing(id) => id.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn round_robin_cycles_over_available_backends() {
        let ids = ids(3);
        let p = RoundRobin::default();
        let l = loads(&ids, &[0, 0, 0], &[true, false, true]);
        let got: Vec<_> = (0..4).map(|_| picked(p.choose(&l))).collect();
        assert_eq!(got, ["b0", "b2", "b0", "b2"]);
        let none = loads(&ids, &[0, 0, 0], &[false, false, false]);
        assert!(matches!(p.choose(&none), Placement::Exhausted(_)));
        assert_eq!(p.choose(&[]), Placement::StartNew);
    }

    #[test]
    fn one_to_one_takes_free_backends_then_asks_for_more() {
        let ids = ids(2);
        let p = OneToOne;
        assert_eq!(picked(p.choose(&loads(&ids, &[1, 0], &[true, true]))), "b1");
        assert_eq!(
            p.choose(&loads(&ids, &[1, 1], &[true, true])),
            Placement::StartNew
        );
        assert_eq!(
            p.choose(&loads(&ids, &[1, 0], &[true, false])),
            Placement::StartNew
        );
    }

    #[test]
    fn max_sessions_fills_least_loaded_up_to_max() {
        let ids = ids(2);
        let p = MaxSessions::new(2);
        assert_eq!(picked(p.choose(&loads(&ids, &[1, 0], &[true, true]))), "b1");
        assert_eq!(picked(p.choose(&loads(&ids, &[1, 1], &[true, true]))), "b0");
        assert_eq!(
            p.choose(&loads(&ids, &[2, 2], &[true, true])),
            Placement::StartNew
        );
        assert_eq!(
            p.choose(&loads(&ids, &[0, 0], &[false, false])),
            Placement::StartNew
        );
    }

    #[test]
    fn registered_policies_check_their_params() {
        let mut registry = Registry::new();
        register(&mut registry);
        let params = |v: serde_json::Value| Spec::from_json("load_policy.params", v);
        let none = params(serde_json::Value::Null);
        for name in registry.policy_names() {
            if name == "MAX_SESSIONS" {
                continue;
            }
            assert_eq!(registry.build_policy(name, &none).unwrap().name(), name);
            let e = registry
                .build_policy(name, &params(serde_json::json!({"max_size": 3})))
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("max_size applies only to MAX_SESSIONS"), "{e}");
        }
        for ok in [
            serde_json::json!({"max_size": 3}),
            serde_json::json!({"max_size": " 7 "}),
        ] {
            let p = registry.build_policy("max_sessions", &params(ok)).unwrap();
            assert_eq!(p.name(), "MAX_SESSIONS");
        }
        for (bad, why) in [
            (serde_json::Value::Null, "required"),
            (serde_json::json!({"max_size": 0}), "at least 1"),
            (
                serde_json::json!({"max_size": "lots"}),
                "not a whole number",
            ),
            (serde_json::json!({"max_sise": 1}), "max_sise"),
        ] {
            let e = registry
                .build_policy("MAX_SESSIONS", &params(bad))
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("load_policy.params") && e.contains(why), "{e}");
        }
    }

    #[test]
    fn least_sessions_prefers_fewest_then_order() {
        let ids = ids(3);
        let p = LeastSessions;
        assert_eq!(
            picked(p.choose(&loads(&ids, &[3, 1, 1], &[true, true, true]))),
            "b1"
        );
        assert_eq!(
            picked(p.choose(&loads(&ids, &[3, 1, 0], &[true, true, false]))),
            "b1"
        );
    }
}
