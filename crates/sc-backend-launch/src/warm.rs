//! The warm pool: engines started ahead of demand and kept unassigned, per profile, so a new
//! key's first session takes one at once; each one taken is replaced in the background.

use std::collections::HashMap;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};

use tracing::{debug, info, warn};

use crate::Shared;
use crate::engine::Engine;

/// The warm engines of every profile.
#[derive(Debug, Default)]
pub(crate) struct WarmPool {
    /// Ready engines, oldest first.
    ready: Mutex<Vec<Arc<Engine>>>,
    /// Per profile: warm engines being launched.
    starting: Mutex<HashMap<String, usize>>,
}

impl WarmPool {
    /// Ready engines, over all profiles.
    pub(crate) fn ready(&self) -> usize {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Takes a ready, running engine of `profile`.
    pub(crate) fn take(&self, profile: &str) -> Option<Arc<Engine>> {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        let i = ready
            .iter()
            .position(|e| e.profile == profile && e.is_running())?;
        Some(ready.remove(i))
    }

    /// Removes the warm engines whose process ended, with how it ended.
    pub(crate) fn reap(&self) -> Vec<(Arc<Engine>, ExitStatus)> {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        let mut ended = Vec::new();
        ready.retain(|engine| match engine.process.exit_status() {
            Some(status) => {
                ended.push((engine.clone(), status));
                false
            }
            None => true,
        });
        ended
    }

    /// Every ready engine, taken out (at shutdown).
    pub(crate) fn drain(&self) -> Vec<Arc<Engine>> {
        std::mem::take(&mut *self.ready.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn count(&self, profile: &str) -> usize {
        let ready = self
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| e.profile == profile)
            .count();
        let starting = self
            .starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(profile)
            .copied()
            .unwrap_or(0);
        ready + starting
    }

    fn starting(&self, profile: &str, delta: isize) {
        let mut starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        let n = starting.entry(profile.to_owned()).or_default();
        *n = n.saturating_add_signed(delta);
    }
}

/// How the keys of warm engines start.
pub(crate) const WARM_KEY_PREFIX: &str = "warm|";

/// The key warm engines of `profile` are launched (and their failures counted) under.
fn warm_key(profile: &str) -> String {
    format!("{WARM_KEY_PREFIX}{profile}")
}

/// Launches, in the background, the warm engines each profile lacks. A launch that fails is
/// counted against the profile's warm key, so a profile whose engines cannot start stops being
/// refilled (its crash loop) instead of retrying without end.
pub(crate) fn refill(shared: &Arc<Shared>) {
    if shared.shut.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    for template in shared.templates.iter().filter(|t| t.warm_engines > 0) {
        let key = warm_key(&template.name);
        let missing = template
            .warm_engines
            .saturating_sub(shared.warm.count(&template.name));
        if missing == 0 {
            continue;
        }
        if let Err(e) = shared.may_launch(&key) {
            debug!(profile = %template.name, reason = %e, "not refilling the warm pool");
            continue;
        }
        for _ in 0..missing {
            shared.warm.starting(&template.name, 1);
            let weak = Arc::downgrade(shared);
            let profile = template.name.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                let Some(template) = shared.template(&profile).cloned() else {
                    return;
                };
                let launched = shared.launch(&key, &template).await;
                shared.warm.starting(&profile, -1);
                match launched {
                    Ok(engine) if shared.shut.load(std::sync::atomic::Ordering::Relaxed) => {
                        let _ = shared.terminate(&engine).await;
                    }
                    Ok(engine) => {
                        info!(engine = %engine.backend.id, profile, "warm engine ready");
                        shared
                            .warm
                            .ready
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(engine);
                    }
                    Err(e) => {
                        warn!(profile, error = %e, "a warm engine did not start");
                        shared.record_failure(&key, &e.to_string());
                    }
                }
            });
        }
    }
}
