//! The processes a run starts (fake backend, proxies, nginx) and what `/proc` says about them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

// === /proc ===

/// Resident memory of `pid` in bytes (`VmRSS`).
pub(crate) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_kb(pid, "VmRSS:").map(|kb| kb * 1024)
}

fn status_kb(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, 100 on Linux).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The fields of `/proc/<pid>/stat` after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU seconds (user + system) `pid` has used so far.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let fields = stat_fields(pid).with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
        bail!("/proc/{pid}/stat has no utime/stime");
    };
    Ok((user + system) / ticks_per_second())
}

/// CPU seconds of `pid` and its direct children (nginx's master and workers).
pub(crate) fn tree_cpu_seconds(pid: u32) -> f64 {
    let mut total = cpu_seconds(pid).unwrap_or(0.0);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let parent = stat_fields(child).and_then(|f| f.get(1).and_then(|p| p.parse().ok()));
            if parent == Some(pid) {
                total += cpu_seconds(child).unwrap_or(0.0);
            }
        }
    }
    total
}

/// Busy CPU seconds of the whole machine so far (every CPU, from `/proc/stat`).
pub(crate) fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    // cpu user nice system idle iowait irq softirq steal ...
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    busy / ticks_per_second()
}

/// The machine's 1-minute load average.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

// === ports ===

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `addr` accepts TCP connections, or `child` exits, or 20 s pass.
async fn wait_for_port(
    addr: &str,
    child: &mut Child,
    name: &str,
    log: &Path,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name} exited ({status}) before listening on {addr}; its log {}:\n{}",
                log.display(),
                tail(log)
            );
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!(
                "{name} does not listen on {addr} after 20 s; its log {}:\n{}",
                log.display(),
                tail(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

// === children ===

/// A process the run started; stopped (SIGTERM, then SIGKILL) when dropped or stopped.
pub(crate) struct Proc {
    pub(crate) name: String,
    child: Child,
    pub(crate) pid: u32,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // On an error path: let nginx's master stop its workers before `kill_on_drop` kills it.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status();
            for _ in 0..50 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Proc {
    async fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Proc> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child.id().with_context(|| format!("{name} has no pid"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            pid,
        })
    }

    /// CPU seconds of the process and its children so far.
    pub(crate) fn cpu(&self) -> f64 {
        tree_cpu_seconds(self.pid)
    }

    /// Sends SIGTERM and waits up to 5 s, then kills. Returns the CPU seconds it used.
    pub(crate) async fn stop(mut self) -> f64 {
        let cpu = self.cpu();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        eprintln!(
            "sc-bench: stopped {} (it used {cpu:.1} CPU seconds)",
            self.name
        );
        cpu
    }
}

/// Starts `sc-bench fake-backend` (this very binary) on a free port.
pub(crate) async fn start_fake(dir: &Path) -> anyhow::Result<(Proc, String)> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["fake-backend", "--port", &port.to_string()]);
    let log = dir.join("fake-backend.log");
    let mut proc = Proc::spawn("fake backend", command, &log).await?;
    wait_for_port(&addr, &mut proc.child, "the fake backend", &log).await?;
    Ok((proc, addr))
}

/// A running proxy and its two ports.
pub(crate) struct Proxy {
    pub(crate) proc: Proc,
    pub(crate) grpc: String,
    pub(crate) control: String,
}

/// The proxy binary next to this workspace's release build.
pub(crate) fn default_proxy_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target/release/spark-connect-proxy")
}

/// Starts `bin` in front of `backend` with a configuration written to `dir`.
///
/// Each instance runs in its own directory `dir/name` and keeps its session store (`store`:
/// `embedded`, the proxy's default, or `memory`) there, so instances never share sessions.
pub(crate) async fn start_proxy(
    bin: &Path,
    dir: &Path,
    name: &str,
    backend: &str,
    store: &str,
) -> anyhow::Result<Proxy> {
    let grpc = format!("127.0.0.1:{}", free_port()?);
    let control = format!("127.0.0.1:{}", free_port()?);
    let home = dir.join(name);
    std::fs::create_dir_all(&home)?;
    let config = home.join("proxy.yaml");
    let store_path = home.join("sessions.redb");
    std::fs::write(
        &config,
        format!(
            "backend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: \"{backend}\"\n\
             load_policy:\n  type: ROUND_ROBIN\n\
             server:\n  listen_addr: \"{grpc}\"\n  shutdown_grace: 1s\n\
             control:\n  listen_addr: \"{control}\"\n\
             store:\n  type: {store}\n  path: \"{}\"\n\
             log_level: warn\n",
            store_path.display()
        ),
    )?;
    let mut command = Command::new(bin);
    command.arg("--config-file").arg(&config).current_dir(&home);
    let log = home.join("proxy.log");
    let mut proc = Proc::spawn(name, command, &log).await.with_context(|| {
        format!(
            "cannot run the proxy {}; build it with `cargo build --release -p spark-connect-proxy` or pass --proxy-bin",
            bin.display()
        )
    })?;
    wait_for_port(&grpc, &mut proc.child, name, &log).await?;
    wait_for_port(&control, &mut proc.child, name, &log).await?;
    Ok(Proxy {
        proc,
        grpc,
        control,
    })
}

/// Finds nginx: `nginx` on PATH, else `/usr/sbin/nginx`.
pub(crate) fn find_nginx() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nginx"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/nginx");
        sbin.is_file().then_some(sbin)
    })
}

/// `nginx -v`'s version, e.g. `1.22.1`.
pub(crate) fn nginx_version(bin: &Path) -> Option<String> {
    let output = std::process::Command::new(bin).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.split("nginx/")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .map(str::to_owned)
}

fn version_at_least(version: &str, want: (u32, u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let have = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    have >= want
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// nginx and the port in front of each backend it was given.
pub(crate) struct Nginx {
    pub(crate) proc: Proc,
    pub(crate) ports: Vec<String>,
    pub(crate) version: String,
}

/// Starts nginx (not as a daemon) with one `grpc_pass` server per backend, buffers raised and
/// upstream connections kept alive, everything it writes under `dir/nginx`.
pub(crate) async fn start_nginx(
    bin: &Path,
    dir: &Path,
    backends: &[&str],
) -> anyhow::Result<Nginx> {
    let version = nginx_version(bin).unwrap_or_else(|| "unknown".to_owned());
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(&prefix)?;
    let p = prefix.display();
    // `http2 on;` replaced `listen ... http2` in 1.25.1.
    let new_http2 = version_at_least(&version, (1, 25, 1));
    let mut servers = String::new();
    let mut ports = Vec::new();
    for (i, backend) in backends.iter().enumerate() {
        let listen = format!("127.0.0.1:{}", free_port()?);
        let (listen_http2, http2_on) = if new_http2 {
            ("", "        http2 on;\n")
        } else {
            (" http2", "")
        };
        servers.push_str(&format!(
            "    upstream backend{i} {{\n        server {backend};\n        keepalive 64;\n        keepalive_requests 1000000;\n        keepalive_timeout 300s;\n    }}\n\
             \x20   server {{\n        listen {listen}{listen_http2};\n{http2_on}\
             \x20       location / {{\n            grpc_pass grpc://backend{i};\n            grpc_buffer_size 4m;\n            grpc_socket_keepalive on;\n            grpc_read_timeout 3600s;\n            grpc_send_timeout 3600s;\n        }}\n    }}\n"
        ));
        ports.push(listen);
    }
    let user = if running_as_root() {
        "user root;\n"
    } else {
        ""
    };
    let conf = format!(
        "{user}daemon off;\nmaster_process on;\nworker_processes auto;\n\
         error_log {p}/error.log warn;\npid {p}/nginx.pid;\n\
         events {{\n    worker_connections 4096;\n}}\n\
         http {{\n    access_log off;\n    client_body_temp_path {p}/client_body;\n    proxy_temp_path {p}/proxy;\n    fastcgi_temp_path {p}/fastcgi;\n    uwsgi_temp_path {p}/uwsgi;\n    scgi_temp_path {p}/scgi;\n\
         \x20   client_max_body_size 0;\n    keepalive_requests 1000000;\n    keepalive_timeout 300s;\n    http2_max_concurrent_streams 1024;\n    tcp_nodelay on;\n{servers}}}\n"
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let mut command = Command::new(bin);
    command.arg("-p").arg(&prefix).arg("-c").arg(&conf_path);
    if version_at_least(&version, (1, 19, 5)) {
        command.arg("-e").arg(prefix.join("error.log"));
    }
    let log = prefix.join("stderr.log");
    let mut proc = Proc::spawn("nginx", command, &log).await?;
    for port in &ports {
        wait_for_port(port, &mut proc.child, "nginx", &log).await?;
    }
    Ok(Nginx {
        proc,
        ports,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_versions() {
        assert!(version_at_least("1.26.3", (1, 25, 1)));
        assert!(!version_at_least("1.22.1", (1, 25, 1)));
        assert!(version_at_least("1.22.1", (1, 19, 5)));
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).is_ok_and(|b| b > 0));
        assert!(cpu_seconds(pid).is_ok());
    }
}
