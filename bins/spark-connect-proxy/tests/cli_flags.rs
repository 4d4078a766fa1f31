//! The binary's command line against its configuration file: `--log-level` overrides the file's
//! `log_level`, and a file with an unknown key is refused with exit code 2 and the key's name.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sc_testkit::free_port;

/// Kills the child when the test ends, passing or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A configuration with a dead PREDEFINED backend, the memory store and free ports.
fn config(extra: &str) -> String {
    let (grpc, control) = (free_port(), free_port());
    format!(
        "{extra}store:\n  type: memory\nbackend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: 127.0.0.1:1\nserver:\n  listen_addr: 127.0.0.1:{grpc}\ncontrol:\n  listen_addr: 127.0.0.1:{control}\n"
    )
}

fn proxy(config_file: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spark-connect-proxy"));
    cmd.arg("--config-file")
        .arg(config_file)
        // The environment must not change the settings under test.
        .env_remove("SC_LOG_LEVEL")
        .env_remove("SC_CONFIG_FILE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Collects stderr on a thread; lines arrive on the channel as they are written.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stderr.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=end).collect();
                        if tx
                            .send(String::from_utf8_lossy(&line).trim_end().to_owned())
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
    });
    rx
}

#[test]
fn log_level_flag_overrides_the_files_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, config("log_level: error\n")).unwrap();

    let mut child = Killed(
        proxy(&path)
            .args(["--log-level", "debug", "--log-format", "text"])
            .spawn()
            .unwrap(),
    );
    let lines = stderr_lines(&mut child.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        match lines.recv_timeout(left) {
            Ok(line) => {
                let debug = line.contains(" DEBUG ");
                seen.push(line);
                if debug {
                    break true;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break false,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!(
                    "the proxy exited ({:?}) before logging at DEBUG:\n{}",
                    child.0.wait(),
                    seen.join("\n")
                )
            }
        }
    };
    assert!(
        found,
        "no DEBUG line within 10 s although --log-level debug was given:\n{}",
        seen.join("\n")
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the proxy is still running"
    );
}

#[test]
fn without_the_flag_the_files_log_level_holds() {
    // The counterpart: `log_level: error` alone keeps DEBUG (and INFO) lines out.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, config("log_level: error\n")).unwrap();
    let mut child = Killed(proxy(&path).spawn().unwrap());
    let lines = stderr_lines(&mut child.0);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the proxy is still running"
    );
    let seen: Vec<String> = lines.try_iter().collect();
    assert!(
        !seen
            .iter()
            .any(|l| l.contains(" DEBUG ") || l.contains(" INFO ")),
        "log_level: error let lower levels through:\n{}",
        seen.join("\n")
    );
}

#[test]
fn an_unknown_key_in_the_file_exits_with_code_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, config("log_levle: debug\n")).unwrap();
    let mut child = Killed(proxy(&path).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not exit on a bad configuration"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("log_levle"), "{stderr}");

    // A nested unknown key is named too.
    std::fs::write(
        &path,
        config("").replace("server:\n", "server:\n  listen_adress: x\n"),
    )
    .unwrap();
    let out = proxy(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("listen_adress"), "{stderr}");
}
