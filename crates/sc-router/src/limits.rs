//! Per-user and global limits: sessions per user, calls in flight per user and in total, and a
//! per-user request rate (token bucket).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::RouterError;

/// The `router.limits` section. Every limit is off when unset.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Sessions one user may hold at once.
    pub max_sessions_per_user: Option<usize>,
    /// Calls one user may have in flight at once.
    pub max_streams_per_user: Option<usize>,
    /// Calls in flight at once, all users together.
    pub max_streams_total: Option<usize>,
    /// Calls per second one user may start, on average.
    pub requests_per_second: Option<u32>,
    /// Calls one user may start in a burst (defaults to `requests_per_second`).
    pub burst: Option<u32>,
}

impl LimitSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (key, value) in [
            ("max_sessions_per_user", self.max_sessions_per_user),
            ("max_streams_per_user", self.max_streams_per_user),
            ("max_streams_total", self.max_streams_total),
        ] {
            if value == Some(0) {
                return Err(format!(
                    "router.limits.{key} must be at least 1 (leave it out for no limit)"
                ));
            }
        }
        if self.requests_per_second == Some(0) || self.burst == Some(0) {
            return Err(
                "router.limits.requests_per_second and router.limits.burst must be at least 1"
                    .into(),
            );
        }
        if self.burst.is_some() && self.requests_per_second.is_none() {
            return Err("router.limits.burst needs router.limits.requests_per_second".into());
        }
        Ok(())
    }
}

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    SessionsPerUser,
    StreamsPerUser,
    StreamsTotal,
    Rate,
}

impl Limit {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Limit::SessionsPerUser => "sessions_per_user",
            Limit::StreamsPerUser => "streams_per_user",
            Limit::StreamsTotal => "streams_total",
            Limit::Rate => "rate",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct UserUsage {
    sessions: AtomicUsize,
    streams: AtomicUsize,
}

/// The settings in force and the rate limiter built from them; replaced whole on reload.
struct Rules {
    settings: LimitSettings,
    rate: Option<DefaultKeyedRateLimiter<String>>,
}

impl Rules {
    fn new(settings: LimitSettings) -> Self {
        let rate = settings
            .requests_per_second
            .and_then(NonZeroU32::new)
            .map(|rps| {
                let burst = settings.burst.and_then(NonZeroU32::new).unwrap_or(rps);
                RateLimiter::keyed(Quota::per_second(rps).allow_burst(burst))
            });
        Rules { settings, rate }
    }
}

/// The live counters behind the limits. The counters outlive a reload of the settings, so
/// sessions and calls already admitted keep counting.
pub(crate) struct Limiter {
    rules: arc_swap::ArcSwap<Rules>,
    users: DashMap<String, Arc<UserUsage>>,
    streams: AtomicUsize,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("settings", &self.rules.load().settings)
            .finish_non_exhaustive()
    }
}

/// Holds one call's place in the stream counts until dropped.
#[derive(Debug)]
pub(crate) struct StreamPermit {
    user: Option<Arc<UserUsage>>,
    total: Option<Arc<Limiter>>,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        if let Some(user) = &self.user {
            user.streams.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(limiter) = &self.total {
            limiter.streams.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn exhausted(limit: Limit, message: String, retry: Option<Duration>) -> RouterError {
    RouterError::LimitExceeded {
        limit: limit.name(),
        message,
        retry_after: retry,
    }
}

impl Limiter {
    pub(crate) fn new(settings: LimitSettings) -> Self {
        Limiter {
            rules: arc_swap::ArcSwap::from_pointee(Rules::new(settings)),
            users: DashMap::new(),
            streams: AtomicUsize::new(0),
        }
    }

    /// Puts new settings in force (a configuration reload). Counts are kept; a lowered limit
    /// refuses new sessions and calls until usage is below it, and cuts nothing.
    pub(crate) fn reconfigure(&self, settings: LimitSettings) {
        self.rules.store(Arc::new(Rules::new(settings)));
    }

    /// The settings in force.
    pub(crate) fn settings(&self) -> LimitSettings {
        self.rules.load().settings.clone()
    }

    pub(crate) fn enabled(&self) -> bool {
        self.rules.load().settings != LimitSettings::default()
    }

    fn usage(&self, user: &str) -> Arc<UserUsage> {
        if let Some(u) = self.users.get(user) {
            return u.clone();
        }
        self.users.entry(user.to_owned()).or_default().clone()
    }

    /// Admits one call: checks the rate and takes a place in the stream counts.
    pub(crate) fn admit_call(self: &Arc<Self>, user: &str) -> Result<StreamPermit, RouterError> {
        let rules = self.rules.load();
        if let Some(rate) = &rules.rate
            && let Err(not_until) = rate.check_key(&user.to_owned())
        {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            return Err(exhausted(
                Limit::Rate,
                format!(
                    "user '{user}' is over the request rate of {}/s (router.limits.requests_per_second); retry in {} ms",
                    rules.settings.requests_per_second.unwrap_or(0),
                    wait.as_millis().max(1)
                ),
                Some(wait),
            ));
        }
        let mut permit = StreamPermit {
            user: None,
            total: None,
        };
        if let Some(max) = rules.settings.max_streams_total {
            if self.streams.fetch_add(1, Ordering::AcqRel) >= max {
                self.streams.fetch_sub(1, Ordering::AcqRel);
                return Err(exhausted(
                    Limit::StreamsTotal,
                    format!(
                        "the proxy already has {max} calls in flight (router.limits.max_streams_total); retry shortly"
                    ),
                    Some(Duration::from_secs(1)),
                ));
            }
            permit.total = Some(self.clone());
        }
        if let Some(max) = rules.settings.max_streams_per_user {
            let usage = self.usage(user);
            if usage.streams.fetch_add(1, Ordering::AcqRel) >= max {
                usage.streams.fetch_sub(1, Ordering::AcqRel);
                return Err(exhausted(
                    Limit::StreamsPerUser,
                    format!(
                        "user '{user}' already has {max} calls in flight (router.limits.max_streams_per_user); retry when one finishes"
                    ),
                    Some(Duration::from_secs(1)),
                ));
            }
            permit.user = Some(usage);
        }
        Ok(permit)
    }

    /// Takes a session slot for `user`, or refuses. Sessions are counted even with no limit
    /// set, so that a limit added by a reload sees the sessions that exist.
    pub(crate) fn admit_session(&self, user: &str) -> Result<(), RouterError> {
        let max = self
            .rules
            .load()
            .settings
            .max_sessions_per_user
            .unwrap_or(usize::MAX);
        let usage = self.usage(user);
        if usage.sessions.fetch_add(1, Ordering::AcqRel) >= max {
            usage.sessions.fetch_sub(1, Ordering::AcqRel);
            return Err(exhausted(
                Limit::SessionsPerUser,
                format!(
                    "user '{user}' already holds {max} sessions (router.limits.max_sessions_per_user); close one first (spark.stop() or DELETE /control/sessions/{{id}})"
                ),
                None,
            ));
        }
        Ok(())
    }

    /// Gives a session slot back.
    pub(crate) fn session_closed(&self, user: &str) {
        if let Some(usage) = self.users.get(user) {
            // Saturating: a session bound without a slot (a clone) never drives the count below 0.
            let _ = usage
                .sessions
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        }
    }
}
