//! `sc-bench run`: starts the fake backend, the proxy and nginx, takes every measurement in one
//! run with the targets interleaved round by round, and writes the Markdown report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::client::{Session, Unary};
use crate::fake::stream_query;
use crate::measure::{self, Percentiles};
use crate::procs::{self, Proxy};
use crate::report::{Machine, Results};

/// Options of `sc-bench run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Smaller sizes and shorter durations (about a minute and a half instead of several).
    #[arg(long)]
    quick: bool,
    /// A tiny run for CI (a few hundred calls, 1k sessions, 20 MB streamed, one round): exits 0
    /// when every target answered every call, non-zero otherwise. No timing is judged.
    #[arg(long)]
    smoke: bool,
    /// Also measure against a real Spark Connect server at HOST:PORT (direct, through a second
    /// proxy, through nginx).
    #[arg(long, value_name = "HOST:PORT")]
    spark: Option<String>,
    /// Where to write the Markdown report (it is printed either way).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Rounds of each side-by-side measurement; medians are reported (default 3, smoke 1).
    #[arg(long)]
    rounds: Option<usize>,
    /// The proxy binary (default: this workspace's target/release/spark-connect-proxy).
    #[arg(long, value_name = "FILE")]
    proxy_bin: Option<PathBuf>,
    /// An earlier build of the proxy to measure side by side with this one (target
    /// `baseline`), for before/after comparisons in one run.
    #[arg(long, value_name = "FILE")]
    baseline_bin: Option<PathBuf>,
    /// The nginx binary (default: `nginx` on PATH, else /usr/sbin/nginx).
    #[arg(long, value_name = "FILE")]
    nginx_bin: Option<PathBuf>,
    /// Leave nginx out (when it is not installed).
    #[arg(long)]
    no_nginx: bool,
    /// Leave out the session-scale and slow-reader memory measurements.
    #[arg(long)]
    no_scale: bool,
    /// The proxy's session store: `embedded` (its default, a redb file in the run's temporary
    /// directory) or `memory`.
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "memory"])]
    store: String,
    /// Bytes of batch data per streamed message from the fake backend.
    #[arg(long, default_value_t = 1 << 20)]
    chunk_bytes: usize,
    /// Total bytes the slow readers pull through the proxy (default 10 GB; --quick 200 MB;
    /// --smoke 20 MB).
    #[arg(long)]
    slow_total: Option<u64>,
}

/// How much of everything a mode does.
struct Sizes {
    rounds: usize,
    warmup: usize,
    calls: usize,
    duration: Duration,
    clients: Vec<usize>,
    /// Bytes of the one-stream measurement; the 16-stream one moves the same in total.
    stream_total: u64,
    ttfr_calls: usize,
    control_calls: usize,
    scale_steps: Vec<usize>,
    slow_total: u64,
    slow_pause: Duration,
    /// Rows of the real-Spark one-stream query; the 16-stream one reads the same in total.
    spark_rows: u64,
}

impl Sizes {
    fn of(args: &RunArgs) -> Sizes {
        let mut sizes = if args.smoke {
            Sizes {
                rounds: 1,
                warmup: 20,
                calls: 200,
                duration: Duration::from_millis(300),
                clients: vec![1, 4],
                stream_total: 20_000_000,
                ttfr_calls: 20,
                control_calls: 50,
                scale_steps: vec![1_000],
                slow_total: 20_000_000,
                slow_pause: Duration::from_millis(1),
                spark_rows: 100_000,
            }
        } else if args.quick {
            Sizes {
                rounds: 3,
                warmup: 100,
                calls: 1_000,
                duration: Duration::from_secs(1),
                clients: vec![1, 4, 16, 64],
                stream_total: 256 << 20,
                ttfr_calls: 100,
                control_calls: 300,
                scale_steps: vec![1_000, 10_000, 100_000],
                slow_total: 200_000_000,
                slow_pause: Duration::from_millis(10),
                spark_rows: 500_000,
            }
        } else {
            Sizes {
                rounds: 3,
                warmup: 200,
                calls: 2_000,
                duration: Duration::from_secs(3),
                clients: vec![1, 4, 16, 64],
                stream_total: 1 << 30,
                ttfr_calls: 300,
                control_calls: 1_000,
                scale_steps: vec![1_000, 10_000, 100_000, 1_000_000],
                slow_total: 10_000_000_000,
                slow_pause: Duration::from_millis(10),
                spark_rows: 2_000_000,
            }
        };
        if let Some(rounds) = args.rounds {
            sizes.rounds = rounds.max(1);
        }
        if let Some(total) = args.slow_total {
            sizes.slow_total = total;
        }
        sizes
    }

    fn mode(&self, args: &RunArgs) -> &'static str {
        if args.smoke {
            "smoke"
        } else if args.quick {
            "quick"
        } else {
            "full"
        }
    }
}

/// Where a measurement sends its calls.
#[derive(Debug, Clone)]
struct Target {
    name: &'static str,
    addr: String,
    /// The process in the middle (proxy, nginx), whose CPU time is charged per call and per GB.
    pid: Option<u32>,
}

impl Target {
    fn cpu(&self) -> Option<f64> {
        self.pid.map(procs::tree_cpu_seconds)
    }
}

/// The targets in the order of `round`: rotated each round so none always goes first.
fn in_order(targets: &[Target], round: usize) -> Vec<Target> {
    let mut order = targets.to_vec();
    let n = order.len();
    if n > 0 {
        order.rotate_left(round % n);
    }
    order
}

fn progress(text: &str) {
    eprintln!("sc-bench: {text}");
}

/// Runs everything; returns whether every target answered without errors.
pub(crate) async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let sizes = Sizes::of(&args);
    let dir = tempfile::Builder::new().prefix("sc-bench-").tempdir()?;
    let proxy_bin = args
        .proxy_bin
        .clone()
        .unwrap_or_else(procs::default_proxy_bin);
    let nginx_bin = if args.no_nginx {
        None
    } else {
        Some(
            args.nginx_bin
                .clone()
                .or_else(procs::find_nginx)
                .context("nginx is not installed: run bench/run.sh (it installs Debian's nginx), pass --nginx-bin, or --no-nginx")?,
        )
    };

    let mut results = Results::new(sizes.mode(&args), sizes.rounds);
    results.store = args.store.clone();
    let busy_before = procs::machine_busy_seconds();
    let own_before = procs::cpu_seconds(std::process::id()).unwrap_or(0.0);
    let load_before = procs::load_average();
    let started = Instant::now();
    let mut our_cpu = 0.0;

    let (fake, fake_addr) = procs::start_fake(dir.path()).await?;
    progress(&format!("fake backend on {fake_addr}"));
    let proxy =
        procs::start_proxy(&proxy_bin, dir.path(), "proxy", &fake_addr, &args.store).await?;
    progress(&format!(
        "proxy on {} (control {})",
        proxy.grpc, proxy.control
    ));
    let spark_proxy = match &args.spark {
        Some(spark) => Some(
            procs::start_proxy(&proxy_bin, dir.path(), "proxy-spark", spark, &args.store).await?,
        ),
        None => None,
    };
    let baseline = match &args.baseline_bin {
        Some(bin) => {
            Some(procs::start_proxy(bin, dir.path(), "baseline", &fake_addr, &args.store).await?)
        }
        None => None,
    };
    let spark_baseline = match (&args.baseline_bin, &args.spark) {
        (Some(bin), Some(spark)) => {
            Some(procs::start_proxy(bin, dir.path(), "baseline-spark", spark, &args.store).await?)
        }
        _ => None,
    };
    let mut backends = vec![fake_addr.as_str()];
    if let Some(spark) = &args.spark {
        backends.push(spark);
    }
    let nginx = match &nginx_bin {
        Some(bin) => {
            let nginx = procs::start_nginx(bin, dir.path(), &backends).await?;
            progress(&format!("nginx {} on {:?}", nginx.version, nginx.ports));
            Some(nginx)
        }
        None => None,
    };

    let mut machine = Machine::probe();
    machine.proxy_version = proxy_version(&proxy_bin);
    machine.nginx_version = nginx.as_ref().map(|n| n.version.clone());

    // === against the fake backend ===
    let mut targets = vec![
        Target {
            name: "direct",
            addr: fake_addr.clone(),
            pid: None,
        },
        Target {
            name: "proxy",
            addr: proxy.grpc.clone(),
            pid: Some(proxy.proc.pid),
        },
    ];
    if let Some(baseline) = &baseline {
        targets.push(Target {
            name: "baseline",
            addr: baseline.grpc.clone(),
            pid: Some(baseline.proc.pid),
        });
    }
    if let Some(nginx) = &nginx {
        targets.push(Target {
            name: "nginx",
            addr: nginx.ports[0].clone(),
            pid: Some(nginx.proc.pid),
        });
    }
    results.targets = targets.iter().map(|t| t.name).collect();
    side_by_side(
        "fake",
        &targets,
        Unary::Config,
        &sizes,
        &|total, streams| stream_query(total / streams as u64, args.chunk_bytes),
        "SELECT 1",
        &mut results,
    )
    .await;
    for round in 0..sizes.rounds {
        progress(&format!(
            "[fake round {}/{}] control-plane session creation",
            round + 1,
            sizes.rounds
        ));
        match measure::control_latency(&proxy.control, sizes.control_calls).await {
            Ok(p) => results.percentiles("fake/control", "proxy", p),
            Err(e) => results.error("proxy", "control-plane latency", &e),
        }
        match measure::control_rate(&proxy.control, 16, sizes.duration).await {
            Ok(rate) => results.push("fake/control/rate/proxy", rate),
            Err(e) => results.error("proxy", "control-plane rate", &e),
        }
    }

    // === against real Spark ===
    if let (Some(spark), Some(spark_proxy)) = (&args.spark, &spark_proxy) {
        let mut targets = vec![
            Target {
                name: "direct",
                addr: spark.clone(),
                pid: None,
            },
            Target {
                name: "proxy",
                addr: spark_proxy.grpc.clone(),
                pid: Some(spark_proxy.proc.pid),
            },
        ];
        if let Some(baseline) = &spark_baseline {
            targets.push(Target {
                name: "baseline",
                addr: baseline.grpc.clone(),
                pid: Some(baseline.proc.pid),
            });
        }
        if let Some(nginx) = &nginx {
            targets.push(Target {
                name: "nginx",
                addr: nginx.ports[1].clone(),
                pid: Some(nginx.proc.pid),
            });
        }
        results.spark = Some(spark.clone());
        let rows = sizes.spark_rows;
        side_by_side(
            "spark",
            &targets,
            Unary::SparkVersion,
            &sizes,
            &|_, streams| {
                format!(
                    "SELECT id, repeat('x', 100) AS s FROM range({})",
                    rows / streams as u64
                )
            },
            "SELECT id FROM range(10)",
            &mut results,
        )
        .await;
    }
    our_cpu += proxy.proc.stop().await;
    for p in [spark_proxy, baseline, spark_baseline]
        .into_iter()
        .flatten()
    {
        our_cpu += p.proc.stop().await;
    }

    // === scale and memory, each on a fresh proxy ===
    if !args.no_scale {
        let proxy = procs::start_proxy(
            &proxy_bin,
            dir.path(),
            "proxy-scale",
            &fake_addr,
            &args.store,
        )
        .await?;
        if let Err(e) = scale(&proxy, &sizes, &mut results).await {
            results.error("proxy", "session scale", &e);
        }
        our_cpu += proxy.proc.stop().await;

        let proxy = procs::start_proxy(
            &proxy_bin,
            dir.path(),
            "proxy-stream",
            &fake_addr,
            &args.store,
        )
        .await?;
        // The full run streams a tenth first: growth that does not follow the size is bounded.
        let totals = if args.smoke || args.quick {
            vec![sizes.slow_total]
        } else {
            vec![sizes.slow_total / 10, sizes.slow_total]
        };
        for total in totals {
            progress(&format!(
                "slow readers: {} MB through the proxy in 4 streams",
                total / 1_000_000
            ));
            let sql = stream_query(total / 4, args.chunk_bytes);
            match measure::slow_reader(proxy.proc.pid, &proxy.grpc, &sql, 4, sizes.slow_pause).await
            {
                Ok(slow) => results.slow(total, 4, slow),
                Err(e) => results.error("proxy", "slow-reader stream", &e),
            }
        }
        our_cpu += proxy.proc.stop().await;
    }

    if let Some(nginx) = nginx {
        our_cpu += nginx.proc.stop().await;
    }
    our_cpu += fake.stop().await;
    our_cpu += procs::cpu_seconds(std::process::id()).unwrap_or(0.0) - own_before;
    let busy = procs::machine_busy_seconds() - busy_before;
    machine.elapsed = started.elapsed();
    machine.load = format!(
        "{load_before} at the start, {} at the end",
        procs::load_average()
    );
    machine.other_cpu = (busy - our_cpu).max(0.0);
    machine.our_cpu = our_cpu;

    let report = results.render(&machine);
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("cannot write {}", out.display()))?;
        progress(&format!("report written to {}", out.display()));
    }
    let ok = results.all_answered();
    if !ok {
        progress("some measurements failed: see the errors above and in the report");
    }
    Ok(ok)
}

fn proxy_version(bin: &std::path::Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Every side-by-side measurement, targets interleaved within each round. `stream_sql(total,
/// streams)` is the query each of `streams` streams runs to move `total` bytes together.
async fn side_by_side(
    backend: &str,
    targets: &[Target],
    kind: Unary,
    sizes: &Sizes,
    stream_sql: &(dyn Fn(u64, usize) -> String + Sync),
    small_sql: &str,
    results: &mut Results,
) {
    let fake = backend == "fake";
    for round in 0..sizes.rounds {
        let order = in_order(targets, round);
        let tag = format!("[{backend} round {}/{}]", round + 1, sizes.rounds);
        for t in &order {
            progress(&format!(
                "{tag} unary latency ({}), {}",
                kind.name(),
                t.name
            ));
            match measure::unary_latency(&t.addr, kind, sizes.warmup, sizes.calls).await {
                Ok(p) => results.percentiles(&format!("{backend}/unary"), t.name, p),
                Err(e) => results.error(t.name, "unary latency", &e),
            }
        }
        for &clients in &sizes.clients {
            for t in &order {
                progress(&format!(
                    "{tag} unary throughput, {clients} clients, {}",
                    t.name
                ));
                let cpu_before = t.cpu();
                let start = Instant::now();
                match measure::unary_throughput(&t.addr, kind, clients, 20, sizes.duration).await {
                    Ok(rate) => {
                        results.push(&format!("{backend}/tput/{clients}/{}", t.name), rate);
                        // The few warm-up calls are charged to the measured ones.
                        if let (Some(a), Some(b)) = (cpu_before, t.cpu()) {
                            let calls = rate * start.elapsed().as_secs_f64();
                            results.push(
                                &format!("{backend}/cpu_per_call/{clients}/{}", t.name),
                                (b - a) / calls * 1e6,
                            );
                        }
                    }
                    Err(e) => results.error(t.name, "unary throughput", &e),
                }
            }
        }
        for streams in [1usize, 16] {
            let sql = stream_sql(sizes.stream_total, streams);
            for t in &order {
                progress(&format!("{tag} streaming, {streams} streams, {}", t.name));
                let cpu_before = t.cpu();
                match measure::streaming(&t.addr, streams, &sql, None, fake).await {
                    Ok(s) => {
                        if let (Some(a), Some(b)) = (cpu_before, t.cpu()) {
                            results.push(
                                &format!("{backend}/cpu_per_gb/{streams}/{}", t.name),
                                (b - a) / (s.bytes as f64 / 1e9),
                            );
                        }
                        results.push(
                            &format!("{backend}/stream/{streams}/{}", t.name),
                            s.mb_per_s(),
                        );
                        results.push(
                            &format!("{backend}/stream_bytes/{streams}/{}", t.name),
                            s.bytes as f64,
                        );
                    }
                    Err(e) => results.error(t.name, "streaming", &e),
                }
            }
        }
        for t in &order {
            progress(&format!("{tag} time to first response, {}", t.name));
            match measure::first_response(&t.addr, small_sql, 10, sizes.ttfr_calls).await {
                Ok(p) => results.percentiles(&format!("{backend}/ttfr"), t.name, p),
                Err(e) => results.error(t.name, "time to first response", &e),
            }
        }
    }
}

/// Unary latency and proxy memory with 1k, 10k, 100k header-less sessions bound.
async fn scale(proxy: &Proxy, sizes: &Sizes, results: &mut Results) -> anyhow::Result<()> {
    let pid = proxy.proc.pid;
    // Warm the path (connections, pools, allocator) with one session before the baseline.
    measure::unary_latency(&proxy.grpc, Unary::Config, 0, 500).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = procs::rss_bytes(pid)?;
    results.push("scale/baseline_rss", baseline as f64);
    let mut bound: Vec<Session> = Vec::new();
    for &step in &sizes.scale_steps {
        let fresh: Vec<Session> = (bound.len()..step).map(|_| Session::new()).collect();
        let count = fresh.len();
        progress(&format!("scale: binding {count} sessions (to {step})"));
        let fresh = Arc::new(fresh);
        let took = measure::bind_sessions(&proxy.grpc, Unary::Config, fresh.clone(), 64).await?;
        bound.extend(fresh.iter().cloned());
        results.push(
            &format!("scale/{step}/bind_rate"),
            count as f64 / took.as_secs_f64(),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss = procs::rss_bytes(pid)?;
        results.push(&format!("scale/{step}/rss"), rss as f64);
        results.push(
            &format!("scale/{step}/per_session"),
            rss.saturating_sub(baseline) as f64 / step as f64,
        );
        for round in 0..sizes.rounds {
            progress(&format!(
                "scale: latency with {step} sessions, round {}/{}",
                round + 1,
                sizes.rounds
            ));
            let p: Percentiles = measure::spread_latency(
                &proxy.grpc,
                Unary::Config,
                &bound,
                sizes.warmup,
                sizes.calls,
            )
            .await?;
            results.percentiles(&format!("scale/{step}"), "proxy", p);
        }
    }
    Ok(())
}

/// Options of `sc-bench load`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs {
    /// The Spark Connect endpoint to load (`host:port`).
    #[arg(long)]
    addr: String,
    /// `unary` (Config calls) or `stream` (ExecutePlan of the fake's `bench:stream` query).
    #[arg(long, default_value = "unary", value_parser = ["unary", "stream"])]
    kind: String,
    /// Concurrent clients, each on its own connection and session.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// How long to keep loading (streams of `--stream-bytes` are started until this has passed).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Bytes per stream (stream).
    #[arg(long, default_value_t = 1 << 30)]
    stream_bytes: u64,
    /// Bytes per message (stream).
    #[arg(long, default_value_t = 1 << 20)]
    chunk_bytes: usize,
}

/// `sc-bench load`: one kind of load on one target, with its rate printed at the end.
pub(crate) async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.seconds);
    if args.kind == "unary" {
        let rate = measure::unary_throughput(&args.addr, Unary::Config, args.clients, 20, duration)
            .await?;
        println!("{rate:.0} calls/s with {} clients", args.clients);
    } else {
        let sql = stream_query(args.stream_bytes, args.chunk_bytes);
        let start = Instant::now();
        let mut bytes = 0u64;
        while start.elapsed() < duration {
            bytes += measure::streaming(&args.addr, args.clients, &sql, None, true)
                .await?
                .bytes;
        }
        println!(
            "{:.0} MB/s with {} streams",
            bytes as f64 / 1e6 / start.elapsed().as_secs_f64(),
            args.clients
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_targets_each_round() {
        let t = |name| Target {
            name,
            addr: String::new(),
            pid: None,
        };
        let targets = [t("a"), t("b"), t("c")];
        let names = |round| {
            in_order(&targets, round)
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(0), ["a", "b", "c"]);
        assert_eq!(names(1), ["b", "c", "a"]);
    }
}
