//! One engine: its child process (in its own process group), its log, its readiness probe, and
//! stopping it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use sc_backend_api::{Backend, DeathCause, PostMortem};
use sc_proto::spark::connect as pb;
use tokio::process::{Child, Command};
use tonic::transport::Endpoint;

use crate::ports::Reservation;

/// The lines of an engine's log quoted in a start-up error.
pub(crate) const ERROR_LOG_LINES: usize = 30;

/// A running (or exited, not yet noticed) engine.
#[derive(Debug)]
pub(crate) struct Engine {
    /// What the router sees.
    pub(crate) backend: Backend,
    /// The key (profile and share-level key) the engine serves; `warm:<profile>` while warm.
    pub(crate) key: String,
    /// The profile it runs.
    pub(crate) profile: String,
    /// How long it may have no sessions before the router stops it.
    pub(crate) idle_timeout: Duration,
    /// Ordering of `list`.
    pub(crate) seq: u64,
    /// The engine's `server.log`.
    pub(crate) log: PathBuf,
    /// The engine's directory.
    pub(crate) dir: PathBuf,
    /// The child process.
    pub(crate) process: Process,
    /// The port and the `max_engines` slot it holds until it is forgotten.
    pub(crate) reservation: Reservation,
}

impl Engine {
    /// Whether the process is still running.
    pub(crate) fn is_running(&self) -> bool {
        self.process.exit_status().is_none()
    }

    /// The same (warm, unshared) engine, now serving `key`.
    pub(crate) fn assign(self: Arc<Self>, key: &str) -> Arc<Engine> {
        match Arc::try_unwrap(self) {
            Ok(mut engine) => {
                engine.key = key.to_owned();
                Arc::new(engine)
            }
            // Held elsewhere too (it never is): it keeps its warm key, which only its slot's
            // tidying reads.
            Err(shared) => shared,
        }
    }
}

// === impl Process ===

/// A child process that leads its own process group. Dropping it kills the whole group, so an
/// engine never outlives the provider that started it.
#[derive(Debug)]
pub(crate) struct Process {
    child: Mutex<Child>,
    /// The process id, which is also the process group id.
    pgid: Option<Pid>,
    exited: Mutex<Option<ExitStatus>>,
}

impl Process {
    /// Starts `argv` in `dir` with `env`, its output appended to `log`, in a new process group.
    pub(crate) fn spawn(
        argv: &[String],
        env: &[(String, String)],
        dir: &Path,
        log: &Path,
    ) -> std::io::Result<Process> {
        let Some((program, args)) = argv.split_first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the command is empty",
            ));
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let err = out.try_clone()?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn()?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        Ok(Process {
            child: Mutex::new(child),
            pgid,
            exited: Mutex::new(None),
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> Option<i32> {
        self.pgid.map(Pid::as_raw)
    }

    /// The exit status once the process has exited; `None` while it runs.
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        let mut exited = self.exited.lock().unwrap_or_else(|e| e.into_inner());
        if exited.is_none() {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            match child.try_wait() {
                Ok(Some(status)) => *exited = Some(status),
                Ok(None) => {}
                // The status cannot be read (already reaped): the process is gone.
                Err(_) => *exited = Some(ExitStatus::default()),
            }
        }
        *exited
    }

    /// Sends `signal` to the whole process group; a group that is gone already is fine.
    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            match killpg(pgid, signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => {
                    tracing::debug!(pgid = pgid.as_raw(), %signal, error = %e, "cannot signal engine");
                }
            }
        }
    }

    /// Waits until the process exits or `timeout` passes; true when it exited.
    async fn wait_for_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exit_status().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM to the group, up to `grace` to exit, then SIGKILL. Returns an error when the
    /// process survives even SIGKILL for a few seconds.
    pub(crate) async fn terminate(&self, grace: Duration) -> Result<(), String> {
        if self.exit_status().is_none() {
            self.signal(Signal::SIGTERM);
            if !self.wait_for_exit(grace).await {
                tracing::warn!(
                    pid = self.pid(),
                    grace = ?grace,
                    "engine did not exit after SIGTERM; sending SIGKILL"
                );
            }
        }
        // Also takes down whatever the leader left behind in its group.
        self.signal(Signal::SIGKILL);
        if self.wait_for_exit(Duration::from_secs(5)).await {
            Ok(())
        } else {
            Err(format!(
                "process {} is still running after SIGKILL",
                self.pid().unwrap_or_default()
            ))
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let running = self
            .exited
            .get_mut()
            .map(|exited| exited.is_none())
            .unwrap_or(true);
        if running {
            self.signal(Signal::SIGKILL);
        }
    }
}

// === post-mortems ===

/// Why an engine whose process ended is gone: how it ended (exit status or signal) and the first
/// telling line of its log (an `OutOfMemoryError`, a port already in use, an exception).
pub(crate) fn post_mortem(id: &str, status: ExitStatus, log: &Path) -> PostMortem {
    use std::os::unix::process::ExitStatusExt as _;
    let signal = status.signal();
    let ended = match (signal, status.code()) {
        (Some(signal), _) => {
            let name = Signal::try_from(signal).map_or_else(|_| "?".to_owned(), |s| s.to_string());
            format!("was killed by signal {signal} ({name})")
        }
        (None, Some(code)) => format!("exited with status {code}"),
        (None, None) => "ended".to_owned(),
    };
    let text = tail(log, POST_MORTEM_LINES).unwrap_or_default();
    // A killed process says nothing itself: only an out-of-memory line explains it.
    let patterns: &[&str] = if signal.is_some() {
        &["OutOfMemoryError"]
    } else {
        &TELLING
    };
    let telling = patterns.iter().find_map(|pattern| {
        text.lines()
            .find(|line| line.contains(pattern))
            .map(|line| shorten_line(line.trim()))
    });
    let cause = match (&telling, signal) {
        (Some(line), _) if line.contains("OutOfMemoryError") => DeathCause::OutOfMemory,
        (_, Some(_)) => DeathCause::Killed,
        _ => DeathCause::Exited,
    };
    let reason = match telling {
        Some(line) => format!("engine {id} {ended}; its log says: {line}"),
        None => format!("engine {id} {ended}"),
    };
    PostMortem::new(
        cause,
        format!("{reason} (full log: GET /control/backends/{id}/logs)"),
    )
}

/// Lines of a dead engine's log searched for a telling one.
const POST_MORTEM_LINES: usize = 2000;

/// What makes a log line telling, most telling first.
const TELLING: [&str; 7] = [
    "OutOfMemoryError",
    "Address already in use",
    "BindException",
    "Exception in thread \"main\"",
    "Error: ",
    " ERROR ",
    "Exception",
];

fn shorten_line(line: &str) -> String {
    const MAX: usize = 300;
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_owned(),
    }
}

// === readiness ===

/// Whether the engine answers: its port accepts connections and a Spark Connect `Config` call
/// succeeds (the probe's session is released afterwards). With `warm_up`, a small query then
/// runs on its executors, so the first query of its first user does not pay for loading and
/// compiling Spark's query path (a few seconds on a cold JVM); its failure is only logged.
pub(crate) async fn probe(
    endpoint: &http::Uri,
    host: &str,
    port: u16,
    token: Option<&str>,
    timeout: Duration,
    warm_up: bool,
) -> Result<(), String> {
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(timeout.min(Duration::from_secs(2)), connect).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("port {port}: {e}")),
        Err(_) => return Err(format!("port {port}: connect timed out")),
    }
    let channel = Endpoint::from(endpoint.clone())
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let authorization = token
        .and_then(|t| tonic::metadata::AsciiMetadataValue::try_from(format!("Bearer {t}")).ok());
    let mut client = pb::spark_connect_service_client::SparkConnectServiceClient::with_interceptor(
        channel,
        move |mut request: tonic::Request<()>| {
            if let Some(value) = &authorization {
                request
                    .metadata_mut()
                    .insert("authorization", value.clone());
            }
            Ok(request)
        },
    );
    let session_id = uuid::Uuid::new_v4().to_string();
    let user_context = Some(pb::UserContext {
        user_id: "spark-connect-proxy".into(),
        user_name: "spark-connect-proxy".into(),
        extensions: vec![],
    });
    let config = pb::ConfigRequest {
        session_id: session_id.clone(),
        user_context: user_context.clone(),
        client_type: Some("spark-connect-proxy launcher".into()),
        operation: Some(pb::config_request::Operation {
            op_type: Some(pb::config_request::operation::OpType::GetOption(
                pb::config_request::GetOption {
                    keys: vec!["spark.app.name".into()],
                },
            )),
        }),
        ..Default::default()
    };
    let answer = tokio::time::timeout(timeout, client.config(config)).await;
    match answer {
        Ok(Ok(_)) => {}
        Ok(Err(status)) => return Err(format!("Config call: {}", status.message())),
        Err(_) => return Err("Config call timed out".into()),
    }
    if warm_up {
        let query = pb::ExecutePlanRequest {
            session_id: session_id.clone(),
            user_context: user_context.clone(),
            client_type: Some("spark-connect-proxy launcher".into()),
            plan: Some(pb::Plan {
                op_type: Some(pb::plan::OpType::Root(pb::Relation {
                    common: None,
                    rel_type: Some(pb::relation::RelType::Sql(pb::Sql {
                        query: "SELECT sum(id), count(DISTINCT id % 7) FROM range(0, 100000, 1, 4)"
                            .into(),
                        ..Default::default()
                    })),
                })),
            }),
            ..Default::default()
        };
        let ran = tokio::time::timeout(timeout, async {
            let mut stream = client
                .execute_plan(query)
                .await
                .map_err(|s| s.message().to_owned())?
                .into_inner();
            while stream
                .message()
                .await
                .map_err(|s| s.message().to_owned())?
                .is_some()
            {}
            Ok::<(), String>(())
        })
        .await;
        match ran {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(%endpoint, error = %e, "warming up an engine failed"),
            Err(_) => tracing::warn!(%endpoint, "warming up an engine timed out"),
        }
    }
    let release = pb::ReleaseSessionRequest {
        session_id,
        user_context,
        client_type: Some("spark-connect-proxy launcher".into()),
        ..Default::default()
    };
    // Best effort: a session left behind only costs the engine a little memory.
    let _ = tokio::time::timeout(Duration::from_secs(5), client.release_session(release)).await;
    Ok(())
}

// === logs ===

/// The last `lines` lines of the file at `path`, reading backwards from its end in growing
/// blocks (at most 16 MiB), so a huge log costs no more than its tail.
pub(crate) fn tail(path: &Path, lines: usize) -> std::io::Result<String> {
    const MAX_READ: u64 = 16 * 1024 * 1024;
    if lines == 0 {
        return Ok(String::new());
    }
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut start = len;
    let mut block: u64 = 64 * 1024;
    // The bytes from `start` to the end of the file.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let from = start.saturating_sub(block);
        let mut chunk = vec![0u8; usize::try_from(start - from).unwrap_or(0)];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        start = from;
        let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let newlines = body.iter().filter(|&&b| b == b'\n').count();
        if newlines >= lines || start == 0 || len - start >= MAX_READ {
            break;
        }
        block = block.saturating_mul(2);
    }
    let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let mut seen = 0;
    let mut cut = 0;
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == lines {
                cut = i + 1;
                break;
            }
        }
    }
    Ok(String::from_utf8_lossy(&buf[cut..]).into_owned())
}

/// The last lines of a log for an error message; a note when there are none.
pub(crate) fn tail_for_error(path: &Path) -> String {
    match tail(path, ERROR_LOG_LINES) {
        Ok(text) if text.trim().is_empty() => format!("{} is empty", path.display()),
        Ok(text) => format!("last lines of {}:\n{}", path.display(), text.trim_end()),
        Err(e) => format!("cannot read {}: {e}", path.display()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn tail_reads_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.log");
        let mut f = File::create(&path).unwrap();
        for i in 0..100_000 {
            writeln!(f, "line {i}").unwrap();
        }
        drop(f);
        assert_eq!(
            tail(&path, 3).unwrap(),
            "line 99997\nline 99998\nline 99999\n"
        );
        assert_eq!(tail(&path, 0).unwrap(), "");
        let all = tail(&path, 1_000_000).unwrap();
        assert!(all.starts_with("line 0\n"));
        assert_eq!(all.lines().count(), 100_000);

        std::fs::write(&path, "a\nb").unwrap();
        assert_eq!(tail(&path, 1).unwrap(), "b");
        assert_eq!(tail(&path, 5).unwrap(), "a\nb");
        std::fs::write(&path, "").unwrap();
        assert_eq!(tail(&path, 5).unwrap(), "");
        assert!(tail_for_error(&path).contains("is empty"));
    }

    #[test]
    fn post_mortems_say_how_the_engine_ended_and_quote_its_log() {
        use std::os::unix::process::ExitStatusExt as _;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        std::fs::write(
            &log,
            "INFO starting\nWARN something mild\nTerminating due to java.lang.OutOfMemoryError: Java heap space\n",
        )
        .unwrap();
        let pm = post_mortem("engine-1", ExitStatus::from_raw(3 << 8), &log);
        assert_eq!(pm.cause, DeathCause::OutOfMemory);
        assert!(
            pm.reason.starts_with("engine engine-1 exited with status 3; its log says: Terminating due to java.lang.OutOfMemoryError: Java heap space"),
            "{}",
            pm.reason
        );
        assert!(pm.reason.contains("GET /control/backends/engine-1/logs"));

        std::fs::write(&log, "INFO fine\nERROR SparkContext: oops\n").unwrap();
        let pm = post_mortem("engine-2", ExitStatus::from_raw(9), &log);
        assert_eq!(pm.cause, DeathCause::Killed);
        assert!(
            pm.reason
                .starts_with("engine engine-2 was killed by signal 9 (SIGKILL) (full log"),
            "{}",
            pm.reason
        );

        std::fs::write(
            &log,
            "INFO x\njava.net.BindException: Address already in use\nException in thread \"main\" boom\n",
        )
        .unwrap();
        let pm = post_mortem("engine-3", ExitStatus::from_raw(1 << 8), &log);
        assert_eq!(pm.cause, DeathCause::Exited);
        assert!(
            pm.reason
                .contains("its log says: java.net.BindException: Address already in use"),
            "{}",
            pm.reason
        );
    }
}
