//! One measurement each: unary latency and throughput, streaming throughput, time to first
//! response, control-plane session creation, binding many sessions, and a slow reader's stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::client::{self, Client, Session, Unary};
use crate::procs;

/// p50, p90 and p99 of a set of durations, in microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
}

impl Percentiles {
    pub(crate) fn of(mut samples: Vec<Duration>) -> Percentiles {
        samples.sort_unstable();
        let at = |q: f64| {
            if samples.is_empty() {
                return f64::NAN;
            }
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1].as_secs_f64() * 1e6
        };
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
        }
    }
}

/// Sequential unary calls on one connection and one session, after `warmup` unmeasured ones.
pub(crate) async fn unary_latency(
    addr: &str,
    kind: Unary,
    warmup: usize,
    calls: usize,
) -> anyhow::Result<Percentiles> {
    let mut client = client::connect(addr).await?;
    let session = Session::new();
    for _ in 0..warmup {
        client::unary(&mut client, kind, &session).await?;
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        client::unary(&mut client, kind, &session).await?;
        samples.push(start.elapsed());
    }
    client::release(&mut client, &session).await;
    Ok(Percentiles::of(samples))
}

/// Calls per second with `clients` clients, each on its own connection and session, calling
/// back to back for `duration`.
pub(crate) async fn unary_throughput(
    addr: &str,
    kind: Unary,
    clients: usize,
    warmup: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let mut prepared = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut client = client::connect(addr).await?;
        let session = Session::new();
        for _ in 0..warmup {
            client::unary(&mut client, kind, &session).await?;
        }
        prepared.push((client, session));
    }
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = prepared
        .into_iter()
        .map(|(mut client, session)| {
            tokio::spawn(async move {
                let (mut ok, mut failed, mut first_error) = (0u64, 0u64, None);
                while Instant::now() < deadline {
                    match client::unary(&mut client, kind, &session).await {
                        Ok(()) => ok += 1,
                        Err(status) => {
                            failed += 1;
                            first_error.get_or_insert(status);
                        }
                    }
                }
                client::release(&mut client, &session).await;
                (ok, failed, first_error)
            })
        })
        .collect();
    let (mut ok, mut failed, mut first_error) = (0u64, 0u64, None);
    for task in tasks {
        let (o, f, e) = task.await?;
        ok += o;
        failed += f;
        if first_error.is_none() {
            first_error = e;
        }
    }
    let elapsed = start.elapsed();
    if let Some(status) = first_error {
        bail!("{failed} of {} calls failed, first: {status}", ok + failed);
    }
    Ok(ok as f64 / elapsed.as_secs_f64())
}

/// What a streaming measurement gave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Streamed {
    /// Batch bytes received, all streams together.
    pub(crate) bytes: u64,
    pub(crate) elapsed: Duration,
}

impl Streamed {
    /// Megabytes (10^6 bytes) per second.
    pub(crate) fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

/// `streams` executions of `sql` at once, each on its own connection and session, read to the
/// end (sleeping `pause` after each message when given). `require_complete` fails the
/// measurement when a stream does not end with `ResultComplete`.
pub(crate) async fn streaming(
    addr: &str,
    streams: usize,
    sql: &str,
    pause: Option<Duration>,
    require_complete: bool,
) -> anyhow::Result<Streamed> {
    let mut prepared: Vec<(Client, Session)> = Vec::with_capacity(streams);
    for _ in 0..streams {
        let mut client = client::connect(addr).await?;
        let session = Session::new();
        // Bind the session (and warm the path) with a small execution first.
        client::execute(&mut client, &session, "SELECT 1", None).await?;
        prepared.push((client, session));
    }
    let start = Instant::now();
    let tasks: Vec<_> = prepared
        .into_iter()
        .map(|(mut client, session)| {
            let sql = sql.to_owned();
            tokio::spawn(async move {
                let result = client::execute(&mut client, &session, &sql, pause).await;
                client::release(&mut client, &session).await;
                result
            })
        })
        .collect();
    let mut bytes = 0;
    for task in tasks {
        let execution = task.await??;
        if require_complete && !execution.complete {
            bail!("a stream ended without ResultComplete");
        }
        bytes += execution.bytes;
    }
    Ok(Streamed {
        bytes,
        elapsed: start.elapsed(),
    })
}

/// Time to the first response message of `calls` sequential executions of `sql`.
pub(crate) async fn first_response(
    addr: &str,
    sql: &str,
    warmup: usize,
    calls: usize,
) -> anyhow::Result<Percentiles> {
    let mut client = client::connect(addr).await?;
    let session = Session::new();
    for _ in 0..warmup {
        client::execute(&mut client, &session, sql, None).await?;
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        samples.push(
            client::execute(&mut client, &session, sql, None)
                .await?
                .first,
        );
    }
    client::release(&mut client, &session).await;
    Ok(Percentiles::of(samples))
}

/// Sequential `POST /control/sessions` latency.
pub(crate) async fn control_latency(control: &str, calls: usize) -> anyhow::Result<Percentiles> {
    let http = reqwest::Client::new();
    for _ in 0..calls.min(20) {
        client::create_control_session(&http, control).await?;
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        client::create_control_session(&http, control).await?;
        samples.push(start.elapsed());
    }
    Ok(Percentiles::of(samples))
}

/// Sessions created per second through the control plane by `concurrency` callers.
pub(crate) async fn control_rate(
    control: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let http = http.clone();
            let control = control.to_owned();
            tokio::spawn(async move {
                let mut created = 0u64;
                while Instant::now() < deadline {
                    client::create_control_session(&http, &control).await?;
                    created += 1;
                }
                anyhow::Ok(created)
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        created += task.await??;
    }
    Ok(created as f64 / start.elapsed().as_secs_f64())
}

/// Binds `sessions` (one unary call each, `concurrency` at a time over a few connections).
/// Returns how long it took.
pub(crate) async fn bind_sessions(
    addr: &str,
    kind: Unary,
    sessions: Arc<Vec<Session>>,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(client::connect(addr).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let mut client = clients[i % clients.len()].clone();
            let sessions = sessions.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(session) = sessions.get(i) else {
                        return Ok::<_, tonic::Status>(());
                    };
                    client::unary(&mut client, kind, session).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?.context("binding a session failed")?;
    }
    Ok(start.elapsed())
}

/// Sequential unary latency over many bound sessions: call `i` uses session `i * 7919 mod n`,
/// so consecutive calls look up sessions far apart.
pub(crate) async fn spread_latency(
    addr: &str,
    kind: Unary,
    sessions: &[Session],
    warmup: usize,
    calls: usize,
) -> anyhow::Result<Percentiles> {
    anyhow::ensure!(!sessions.is_empty(), "no sessions to call");
    let mut client = client::connect(addr).await?;
    let pick = |i: usize| &sessions[i.wrapping_mul(7919) % sessions.len()];
    for i in 0..warmup {
        client::unary(&mut client, kind, pick(i)).await?;
    }
    let mut samples = Vec::with_capacity(calls);
    for i in warmup..warmup + calls {
        let start = Instant::now();
        client::unary(&mut client, kind, pick(i)).await?;
        samples.push(start.elapsed());
    }
    Ok(Percentiles::of(samples))
}

/// What the proxy used while slow readers pulled a large result through it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlowReader {
    pub(crate) baseline_rss: u64,
    pub(crate) peak_rss: u64,
    pub(crate) cpu_seconds: f64,
    pub(crate) streamed: Streamed,
}

/// `streams` slow readers pull `total` bytes (together) through the proxy `pid` at `addr`;
/// the proxy's resident memory is sampled every 100 ms.
pub(crate) async fn slow_reader(
    pid: u32,
    addr: &str,
    sql: &str,
    streams: usize,
    pause: Duration,
) -> anyhow::Result<SlowReader> {
    let baseline_rss = procs::rss_bytes(pid)?;
    let cpu_before = procs::cpu_seconds(pid)?;
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(baseline_rss));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(rss) = procs::rss_bytes(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let streamed = streaming(addr, streams, sql, Some(pause), true).await;
    stop.store(true, Ordering::Relaxed);
    sampler.await?;
    let streamed = streamed?;
    if let Ok(rss) = procs::rss_bytes(pid) {
        peak.fetch_max(rss, Ordering::Relaxed);
    }
    Ok(SlowReader {
        baseline_rss,
        peak_rss: peak.load(Ordering::Relaxed),
        cpu_seconds: procs::cpu_seconds(pid)? - cpu_before,
        streamed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let p = Percentiles::of(samples);
        assert_eq!((p.p50, p.p90, p.p99), (50.0, 90.0, 99.0));
    }
}
