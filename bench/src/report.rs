//! The figures of a run (every round kept, medians reported) and the Markdown report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::measure::{Percentiles, SlowReader};

/// The machine and what else ran on it.
#[derive(Debug, Default)]
pub(crate) struct Machine {
    cores: usize,
    cpu_model: String,
    kernel: String,
    rustc: String,
    date: String,
    pub(crate) proxy_version: String,
    pub(crate) nginx_version: Option<String>,
    pub(crate) elapsed: Duration,
    pub(crate) load: String,
    /// CPU seconds of the benchmark's own processes (load generator, fake, proxies, nginx).
    pub(crate) our_cpu: f64,
    /// CPU seconds everything else on the machine used meanwhile.
    pub(crate) other_cpu: f64,
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

impl Machine {
    pub(crate) fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            rustc: command_output("rustc", &["--version"]),
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            ..Default::default()
        }
    }
}

/// Every figure of a run by key (`section/metric/target`), one value per round.
#[derive(Debug)]
pub(crate) struct Results {
    mode: &'static str,
    rounds: usize,
    pub(crate) targets: Vec<&'static str>,
    pub(crate) spark: Option<String>,
    /// The proxy's session store.
    pub(crate) store: String,
    values: BTreeMap<String, Vec<f64>>,
    slow: Vec<(u64, usize, SlowReader)>,
    errors: Vec<String>,
}

impl Results {
    pub(crate) fn new(mode: &'static str, rounds: usize) -> Results {
        Results {
            mode,
            rounds,
            targets: Vec::new(),
            spark: None,
            store: String::new(),
            values: BTreeMap::new(),
            slow: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, key: &str, value: f64) {
        self.values.entry(key.to_owned()).or_default().push(value);
    }

    pub(crate) fn percentiles(&mut self, prefix: &str, target: &str, p: Percentiles) {
        self.push(&format!("{prefix}/p50/{target}"), p.p50);
        self.push(&format!("{prefix}/p90/{target}"), p.p90);
        self.push(&format!("{prefix}/p99/{target}"), p.p99);
    }

    pub(crate) fn slow(&mut self, total: u64, streams: usize, slow: SlowReader) {
        self.slow.push((total, streams, slow));
    }

    pub(crate) fn error(&mut self, target: &str, what: &str, error: &anyhow::Error) {
        let text = format!("{what} through {target}: {error:#}");
        eprintln!("sc-bench: ERROR {text}");
        self.errors.push(text);
    }

    /// The median over rounds.
    fn median(&self, key: &str) -> Option<f64> {
        let mut values = self.values.get(key)?.clone();
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        Some(if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        })
    }

    /// No errors, and every target has figures.
    pub(crate) fn all_answered(&self) -> bool {
        self.errors.is_empty()
            && self.targets.iter().all(|t| {
                let suffix = format!("/{t}");
                self.values.keys().any(|k| k.ends_with(&suffix))
            })
    }

    // === rendering ===

    pub(crate) fn render(&self, machine: &Machine) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# sc-bench results ({} run)\n", self.mode);
        let _ = writeln!(
            out,
            "Medians of {} round(s); targets interleaved within each round. Ratios are to direct \
             (latency: higher is worse; throughput: lower is worse).\n",
            self.rounds
        );
        self.render_machine(&mut out, machine);
        let _ = writeln!(out, "## Against the fake backend\n");
        self.render_side_by_side(&mut out, "fake", "Config GetWithDefault");
        self.render_control(&mut out);
        if let Some(spark) = &self.spark {
            let _ = writeln!(out, "## Against a real Spark Connect server ({spark})\n");
            self.render_side_by_side(&mut out, "spark", "AnalyzePlan SparkVersion");
        }
        self.render_scale(&mut out);
        self.render_slow(&mut out);
        self.render_targets(&mut out);
        if !self.errors.is_empty() {
            let _ = writeln!(out, "## Errors\n");
            for e in &self.errors {
                let _ = writeln!(out, "* {e}");
            }
            let _ = writeln!(out);
        }
        out
    }

    fn render_machine(&self, out: &mut String, m: &Machine) {
        let _ = writeln!(out, "| machine | |\n| --- | --- |");
        let _ = writeln!(out, "| date | {} |", m.date);
        let _ = writeln!(out, "| CPU | {} × {} |", m.cores, m.cpu_model);
        let _ = writeln!(out, "| kernel | {} |", m.kernel);
        let _ = writeln!(out, "| rustc | {} |", m.rustc);
        let _ = writeln!(out, "| proxy | {} |", m.proxy_version);
        let _ = writeln!(
            out,
            "| nginx | {} |",
            m.nginx_version.as_deref().unwrap_or("not run")
        );
        let _ = writeln!(out, "| proxy session store | {} |", self.store);
        let _ = writeln!(out, "| run time | {:.0} s |", m.elapsed.as_secs_f64());
        let _ = writeln!(out, "| load average (1 min) | {} |", m.load);
        let _ = writeln!(
            out,
            "| CPU seconds: this benchmark / everything else on the machine | {:.0} / {:.0} |\n",
            m.our_cpu, m.other_cpu
        );
    }

    /// `value (ratio×)` for a target, or `—`.
    fn with_ratio(&self, key: &str, target: &str, digits: usize) -> String {
        let Some(v) = self.median(&format!("{key}/{target}")) else {
            return "—".to_owned();
        };
        match self.median(&format!("{key}/direct")) {
            Some(d) if target != "direct" && d > 0.0 => {
                format!("{v:.digits$} ({:.2}×)", v / d)
            }
            _ => format!("{v:.digits$}"),
        }
    }

    fn header(&self, out: &mut String, first: &str) {
        let _ = write!(out, "| {first} |");
        for t in &self.targets {
            let _ = write!(out, " {t} |");
        }
        let _ = write!(out, "\n| --- |");
        for _ in &self.targets {
            let _ = write!(out, " ---: |");
        }
        let _ = writeln!(out);
    }

    fn render_side_by_side(&self, out: &mut String, backend: &str, unary: &str) {
        let _ = writeln!(
            out,
            "### Sequential unary latency ({unary}, one connection, µs; ratio to direct)\n"
        );
        self.header(out, "percentile");
        for p in ["p50", "p90", "p99"] {
            let _ = write!(out, "| {p} |");
            for t in &self.targets {
                let _ = write!(
                    out,
                    " {} |",
                    self.with_ratio(&format!("{backend}/unary/{p}"), t, 0)
                );
            }
            let _ = writeln!(out);
        }
        for p in ["p50", "p99"] {
            let _ = write!(out, "| added at {p} |");
            for t in &self.targets {
                let added = self.added(&format!("{backend}/unary/{p}"), t);
                let _ = write!(
                    out,
                    " {} |",
                    added.map_or("—".to_owned(), |a| format!("{a:+.0}"))
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "\n### Concurrent unary throughput (calls/s; each client its own connection and session)\n"
        );
        self.header(out, "clients");
        for clients in self.keys_between(&format!("{backend}/tput/")) {
            let _ = write!(out, "| {clients} |");
            for t in &self.targets {
                let _ = write!(
                    out,
                    " {} |",
                    self.with_ratio(&format!("{backend}/tput/{clients}"), t, 0)
                );
            }
            let _ = writeln!(out);
        }
        self.render_cpu(out, backend, "cpu_per_call", "CPU µs per call of the process in the middle (user + system, all its threads and workers), same runs", 1);
        let _ = writeln!(
            out,
            "\n### Streaming throughput (MB/s of Arrow batch data; each stream its own connection)\n"
        );
        self.header(out, "streams");
        for streams in self.keys_between(&format!("{backend}/stream/")) {
            let _ = write!(out, "| {streams} |");
            for t in &self.targets {
                let _ = write!(
                    out,
                    " {} |",
                    self.with_ratio(&format!("{backend}/stream/{streams}"), t, 0)
                );
            }
            let _ = writeln!(out);
        }
        self.render_cpu(
            out,
            backend,
            "cpu_per_gb",
            "CPU seconds per GB of the process in the middle, same runs",
            2,
        );
        let bytes = self
            .median(&format!("{backend}/stream_bytes/1/direct"))
            .unwrap_or(0.0);
        let _ = writeln!(
            out,
            "\n(each measurement moves {:.0} MB in total)\n",
            bytes / 1e6
        );
        let _ = writeln!(
            out,
            "### Time to first response of ExecutePlan (µs; ratio to direct)\n"
        );
        self.header(out, "percentile");
        for p in ["p50", "p99"] {
            let _ = write!(out, "| {p} |");
            for t in &self.targets {
                let _ = write!(
                    out,
                    " {} |",
                    self.with_ratio(&format!("{backend}/ttfr/{p}"), t, 0)
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
    }

    /// A table of the middle processes' CPU cost, one row per `metric/<n>/`.
    fn render_cpu(
        &self,
        out: &mut String,
        backend: &str,
        metric: &str,
        title: &str,
        digits: usize,
    ) {
        let rows = self.keys_between(&format!("{backend}/{metric}/"));
        if rows.is_empty() {
            return;
        }
        let middles: Vec<&str> = self
            .targets
            .iter()
            .copied()
            .filter(|t| *t != "direct")
            .collect();
        let _ = writeln!(out, "\n{title}:\n");
        let _ = write!(out, "| n |");
        for t in &middles {
            let _ = write!(out, " {t} |");
        }
        let _ = write!(out, "\n| --- |");
        for _ in &middles {
            let _ = write!(out, " ---: |");
        }
        let _ = writeln!(out);
        for n in rows {
            let _ = write!(out, "| {n} |");
            for t in &middles {
                let v = self.median(&format!("{backend}/{metric}/{n}/{t}"));
                let _ = write!(
                    out,
                    " {} |",
                    v.map_or("—".to_owned(), |v| format!("{v:.digits$}"))
                );
            }
            let _ = writeln!(out);
        }
    }

    /// The distinct middle parts of keys `prefix<middle>/<target>`, numerically sorted.
    fn keys_between(&self, prefix: &str) -> Vec<u64> {
        let mut found: Vec<u64> = self
            .values
            .keys()
            .filter_map(|k| k.strip_prefix(prefix))
            .filter_map(|rest| rest.split('/').next())
            .filter_map(|m| m.parse().ok())
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    fn added(&self, key: &str, target: &str) -> Option<f64> {
        if target == "direct" {
            return None;
        }
        Some(self.median(&format!("{key}/{target}"))? - self.median(&format!("{key}/direct"))?)
    }

    fn render_control(&self, out: &mut String) {
        let (Some(p50), Some(p99)) = (
            self.median("fake/control/p50/proxy"),
            self.median("fake/control/p99/proxy"),
        ) else {
            return;
        };
        let rate = self.median("fake/control/rate/proxy").unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "### Session creation through the control plane (`POST /control/sessions`, proxy only)\n"
        );
        let _ = writeln!(
            out,
            "| latency p50 (µs) | latency p99 (µs) | sessions/s (16 concurrent callers) |\n| ---: | ---: | ---: |\n| {p50:.0} | {p99:.0} | {rate:.0} |\n"
        );
    }

    fn render_scale(&self, out: &mut String) {
        let steps = self.keys_between("scale/");
        if steps.is_empty() {
            return;
        }
        let baseline = self.median("scale/baseline_rss").unwrap_or(0.0);
        let _ = writeln!(
            out,
            "## Header-less sessions bound in the proxy\n\n\
             Sequential Config latency through the proxy, each call on a different bound session \
             (µs); proxy RSS (baseline {:.1} MiB after warm-up, before binding).\n",
            baseline / 1048576.0
        );
        let _ = writeln!(
            out,
            "| bound sessions | p50 | p90 | p99 | proxy RSS (MiB) | bytes per session | binding rate (sessions/s) |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for step in steps {
            let m = |what: &str| self.median(&format!("scale/{step}/{what}"));
            let _ = writeln!(
                out,
                "| {step} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} |",
                m("p50/proxy").unwrap_or(f64::NAN),
                m("p90/proxy").unwrap_or(f64::NAN),
                m("p99/proxy").unwrap_or(f64::NAN),
                m("rss").unwrap_or(f64::NAN) / 1048576.0,
                m("per_session").unwrap_or(f64::NAN),
                m("bind_rate").unwrap_or(f64::NAN),
            );
        }
        let _ = writeln!(out);
    }

    fn render_slow(&self, out: &mut String) {
        if self.slow.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "## Slow readers streaming through the proxy\n\n\
             Each reader sleeps after every message so it is slower than the backend; proxy RSS \
             sampled every 100 ms; CPU is the proxy's user + system time.\n"
        );
        let _ = writeln!(
            out,
            "| streamed | streams | MB/s | proxy RSS before (MiB) | peak (MiB) | growth per stream (MiB) | proxy CPU s | CPU s per GB |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for (total, streams, s) in &self.slow {
            let growth = s.peak_rss.saturating_sub(s.baseline_rss) as f64 / 1048576.0;
            let gb = s.streamed.bytes as f64 / 1e9;
            let _ = writeln!(
                out,
                "| {:.0} MB | {streams} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
                *total as f64 / 1e6,
                s.streamed.mb_per_s(),
                s.baseline_rss as f64 / 1048576.0,
                s.peak_rss as f64 / 1048576.0,
                growth / *streams as f64,
                s.cpu_seconds,
                s.cpu_seconds / gb,
            );
        }
        let _ = writeln!(out);
    }

    fn render_targets(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Targets of issue 13\n\n| target | measured | met |\n| --- | --- | --- |"
        );
        let yes = |ok: bool| if ok { "yes" } else { "**no**" };
        for backend in ["fake", "spark"] {
            for (what, key) in [
                ("unary latency", "unary"),
                ("time to first response", "ttfr"),
            ] {
                for p in ["p50", "p99"] {
                    let key = format!("{backend}/{key}/{p}");
                    if let (Some(ours), Some(nginx)) =
                        (self.added(&key, "proxy"), self.added(&key, "nginx"))
                    {
                        let _ = writeln!(
                            out,
                            "| {backend}: {what} added at {p} ≤ ½ of nginx's | proxy {ours:+.0} µs, nginx {nginx:+.0} µs | {} |",
                            yes(ours <= 0.5 * nginx.max(0.0))
                        );
                    }
                }
            }
            for clients in self.keys_between(&format!("{backend}/tput/")) {
                let rate = |t: &str| self.median(&format!("{backend}/tput/{clients}/{t}"));
                let cpu = |t: &str| self.median(&format!("{backend}/cpu_per_call/{clients}/{t}"));
                if let (Some(p), Some(n)) = (rate("proxy"), rate("nginx")) {
                    let _ = writeln!(
                        out,
                        "| {backend}: throughput with {clients} clients not below nginx's | {:.2}× nginx | {} |",
                        p / n,
                        yes(p >= n)
                    );
                }
                if let (Some(p), Some(n)) = (cpu("proxy"), cpu("nginx")) {
                    let _ = writeln!(
                        out,
                        "| {backend}: CPU per call with {clients} clients ≤ nginx's | {p:.0} vs {n:.0} µs | {} |",
                        yes(p <= n)
                    );
                }
            }
            for streams in self.keys_between(&format!("{backend}/stream/")) {
                let rate = |t: &str| self.median(&format!("{backend}/stream/{streams}/{t}"));
                let cpu = |t: &str| self.median(&format!("{backend}/cpu_per_gb/{streams}/{t}"));
                if streams == 1
                    && let (Some(d), Some(p)) = (rate("direct"), rate("proxy"))
                {
                    let _ = writeln!(
                        out,
                        "| {backend}: single-stream rate ≥ 0.95× direct | {:.2}× | {} |",
                        p / d,
                        yes(p >= 0.95 * d)
                    );
                }
                if streams > 1
                    && let (Some(p), Some(n)) = (rate("proxy"), rate("nginx"))
                {
                    let _ = writeln!(
                        out,
                        "| {backend}: {streams}-stream rate not below nginx's | {:.2}× nginx | {} |",
                        p / n,
                        yes(p >= n)
                    );
                }
                if let (Some(p), Some(n)) = (cpu("proxy"), cpu("nginx")) {
                    let _ = writeln!(
                        out,
                        "| {backend}: CPU per GB with {streams} streams ≤ nginx's | {p:.2} vs {n:.2} s | {} |",
                        yes(p <= n)
                    );
                }
            }
        }
        let steps = self.keys_between("scale/");
        if let (Some(first), Some(last)) = (steps.first(), steps.last()) {
            if let Some(per) = self.median(&format!("scale/{last}/per_session")) {
                let _ = writeln!(
                    out,
                    "| memory per idle bound session ≤ 1.5 KiB (at {last}) | {per:.0} bytes | {} |",
                    yes(per <= 1536.0)
                );
            }
            if let Some(rate) = self.median(&format!("scale/{last}/bind_rate")) {
                let _ = writeln!(
                    out,
                    "| binding at ≥ 20k sessions/s (to {last}) | {rate:.0}/s | {} |",
                    yes(rate >= 20_000.0)
                );
            }
            if first != last {
                let m = |s: &u64, p: &str| self.median(&format!("scale/{s}/{p}/proxy"));
                if let (Some(a50), Some(b50), Some(a99), Some(b99)) = (
                    m(first, "p50"),
                    m(last, "p50"),
                    m(first, "p99"),
                    m(last, "p99"),
                ) {
                    // "Within noise": p50 within 10 % (+10 µs), p99 within 25 % (+20 µs).
                    let flat = b50 <= a50 * 1.10 + 10.0 && b99 <= a99 * 1.25 + 20.0;
                    let _ = writeln!(
                        out,
                        "| latency flat from {first} to {last} sessions (p50 within 10 %, p99 within 25 %) | p50 {a50:.0} → {b50:.0} µs, p99 {a99:.0} → {b99:.0} µs | {} |",
                        yes(flat)
                    );
                }
            }
        }
        if let (Some((small_total, _, small)), Some((big_total, streams, big))) =
            (self.slow.first(), self.slow.last())
        {
            // Bounded: at most 8 MiB per stream (the stream window, router.stream_window, 2 MiB
            // by default, plus the message the client side holds and the frames in flight), and no
            // more for a larger result than for a smaller one (+ 25 %).
            let per_stream = |s: &SlowReader| {
                s.peak_rss.saturating_sub(s.baseline_rss) as f64 / 1048576.0 / *streams as f64
            };
            let bounded =
                per_stream(big) <= 8.0 && per_stream(big) <= 1.25 * per_stream(small) + 1.0;
            let sizes = if small_total == big_total {
                format!(
                    "{:.1} MiB per stream at {:.0} MB",
                    per_stream(big),
                    *big_total as f64 / 1e6
                )
            } else {
                format!(
                    "{:.1} MiB per stream at {:.0} MB, {:.1} MiB at {:.0} MB",
                    per_stream(small),
                    *small_total as f64 / 1e6,
                    per_stream(big),
                    *big_total as f64 / 1e6
                )
            };
            let _ = writeln!(
                out,
                "| streaming memory ≤ 8 MiB per stream, not growing with the result | {sizes} | {} |",
                yes(bounded)
            );
        }
        let _ = writeln!(out);
    }
}
