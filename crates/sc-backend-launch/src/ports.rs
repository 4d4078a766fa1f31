//! Engine slots and ports: how many engines run, and which ports they hold.

use std::collections::HashSet;
use std::net::TcpListener;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

use sc_backend_api::ProviderError;

/// The engines (running or starting) and their ports, shared by all starts.
#[derive(Debug, Default)]
pub(crate) struct Capacity {
    engines: usize,
    ports: HashSet<u16>,
    /// The last port given out of a range: the next search starts after it, so a port an engine
    /// just gave back is not handed out again at once (while the router may still hold
    /// handles, and clients connections, to the engine that had it).
    last: Option<u16>,
}

/// One engine's claim on a slot under `max_engines` and a port. Released when dropped or by
/// [`release`](Reservation::release), once.
#[derive(Debug)]
pub(crate) struct Reservation {
    capacity: Arc<Mutex<Capacity>>,
    port: u16,
    /// A second port, for the engine's Spark UI.
    ui_port: Option<u16>,
    released: Mutex<bool>,
}

impl Reservation {
    /// Claims a slot and a free port (two with `ui`: the second for the Spark UI): from
    /// `range` the first ports neither ours nor bound by anyone, else ports the operating system
    /// picks.
    pub(crate) fn claim(
        capacity: &Arc<Mutex<Capacity>>,
        max_engines: usize,
        host: &str,
        range: Option<&RangeInclusive<u16>>,
        ui: bool,
    ) -> Result<Reservation, ProviderError> {
        let mut cap = capacity.lock().unwrap_or_else(|e| e.into_inner());
        if cap.engines >= max_engines {
            return Err(ProviderError::StartFailed(format!(
                "{max_engines} engines are running or kept warm, the most allowed (backend_provider.spec.max_engines); wait for idle ones to stop or raise the limit"
            )));
        }
        let wanted = if ui { 2 } else { 1 };
        let mut ports: Vec<u16> = Vec::with_capacity(wanted);
        for _ in 0..wanted {
            let taken = |p: &u16| cap.ports.contains(p) || ports.contains(p);
            let port = match range {
                Some(range) => rotated(range, cap.last)
                    .find(|p| !taken(p) && can_bind(host, *p))
                    .ok_or_else(|| {
                        ProviderError::StartFailed(format!(
                            "no free port in backend_provider.spec.port_range {}-{}: every port is in use (each engine takes {wanted}); widen the range",
                            range.start(),
                            range.end()
                        ))
                    })?,
                None => (0..64)
                    .find_map(|_| free_port(host).filter(|p| !taken(p)))
                    .ok_or_else(|| {
                        ProviderError::StartFailed(format!(
                            "cannot find a free port on {host} (backend_provider.spec.host)"
                        ))
                    })?,
            };
            ports.push(port);
        }
        cap.engines += 1;
        cap.ports.extend(ports.iter().copied());
        if range.is_some() {
            cap.last = ports.last().copied();
        }
        Ok(Reservation {
            capacity: capacity.clone(),
            port: ports[0],
            ui_port: ports.get(1).copied(),
            released: Mutex::new(false),
        })
    }

    /// The port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The Spark UI's port, when one was claimed.
    pub(crate) fn ui_port(&self) -> Option<u16> {
        self.ui_port
    }

    /// Gives the slot and the port back (once; later calls do nothing).
    pub(crate) fn release(&self) {
        let mut released = self.released.lock().unwrap_or_else(|e| e.into_inner());
        if !*released {
            *released = true;
            let mut cap = self.capacity.lock().unwrap_or_else(|e| e.into_inner());
            cap.engines = cap.engines.saturating_sub(1);
            cap.ports.remove(&self.port);
            if let Some(ui_port) = self.ui_port {
                cap.ports.remove(&ui_port);
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

/// The ports of `range`, starting after `last` and wrapping around.
fn rotated(range: &RangeInclusive<u16>, last: Option<u16>) -> impl Iterator<Item = u16> {
    let start = last
        .filter(|p| range.contains(p) && p < range.end())
        .map_or(*range.start(), |p| p + 1);
    (start..=*range.end()).chain(*range.start()..start)
}

fn can_bind(host: &str, port: u16) -> bool {
    TcpListener::bind((host, port)).is_ok()
}

/// A port the operating system says is free now (the listener is dropped at once).
fn free_port(host: &str) -> Option<u16> {
    let listener = TcpListener::bind((host, 0)).ok()?;
    listener.local_addr().ok().map(|a| a.port())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn claims_slots_and_ports_until_released() {
        let cap = Arc::new(Mutex::new(Capacity::default()));
        // A port that is busy is skipped.
        let busy = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        let range = busy_port..=busy_port.saturating_add(20);
        let a = Reservation::claim(&cap, 2, "127.0.0.1", Some(&range), false).unwrap();
        assert_ne!(a.port(), busy_port);
        let b = Reservation::claim(&cap, 2, "127.0.0.1", Some(&range), true).unwrap();
        assert_ne!(a.port(), b.port());
        let ui = b.ui_port().unwrap();
        assert!(ui != a.port() && ui != b.port() && ui != busy_port);
        assert!(range.contains(&ui));
        let err = Reservation::claim(&cap, 2, "127.0.0.1", None, false).unwrap_err();
        assert!(err.to_string().contains("max_engines"), "{err}");
        a.release();
        a.release();
        let c = Reservation::claim(&cap, 2, "127.0.0.1", None, false).unwrap();
        assert_ne!(c.port(), b.port());
        drop((b, c));
        assert_eq!(cap.lock().unwrap().engines, 0);
        // Ports given back are not the next ones handed out.
        let wide = busy_port..=busy_port.saturating_add(20);
        let d = Reservation::claim(&cap, 2, "127.0.0.1", Some(&wide), false).unwrap();
        let given_back = d.port();
        d.release();
        let e = Reservation::claim(&cap, 2, "127.0.0.1", Some(&wide), false).unwrap();
        assert_ne!(e.port(), given_back);
        drop(e);
        assert_eq!(
            rotated(&(10..=12), Some(11)).collect::<Vec<_>>(),
            [12, 10, 11]
        );
        assert_eq!(
            rotated(&(10..=12), Some(12)).collect::<Vec<_>>(),
            [10, 11, 12]
        );
        assert_eq!(rotated(&(10..=12), None).collect::<Vec<_>>(), [10, 11, 12]);
        let full = busy_port..=busy_port;
        let err = Reservation::claim(&cap, 2, "127.0.0.1", Some(&full), false).unwrap_err();
        assert!(err.to_string().contains("port_range"), "{err}");
    }
}
