//! A real DNS server for tests: Debian's `dnsmasq`, answering on loopback from a hosts file the
//! test rewrites.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`Dnsmasq::start`] waits for the server to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `dnsmasq` process on `127.0.0.1:<port>`, killed when dropped.
///
/// It answers only from the hosts file in its own folder (no upstream, no `/etc/hosts`), with
/// a TTL of 1 s, and re-reads the file whenever [`Dnsmasq::set_hosts`] rewrites it. Names under
/// `.test` that the file lacks get NXDOMAIN. The binary is `$SC_TEST_DNSMASQ`, else `dnsmasq`
/// on `PATH` or in `/usr/sbin` (Debian's `dnsmasq-base`; `scripts/test.sh` installs it).
#[derive(Debug)]
pub struct Dnsmasq {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    log_path: PathBuf,
    dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq on a free port with `hosts` (hosts-file lines, e.g. `127.0.0.2 spark.test`)
    /// and extra command-line options (e.g. `--srv-host=_spark._tcp.test,spark-0.test,15002`).
    pub fn start(hosts: &str, extra_args: &[&str]) -> Dnsmasq {
        Dnsmasq::start_on(free_dns_port(), hosts, extra_args)
    }

    /// [`Dnsmasq::start`] on a given port.
    pub fn start_on(port: u16, hosts: &str, extra_args: &[&str]) -> Dnsmasq {
        let dir = tempfile::Builder::new()
            .prefix("sc-dnsmasq-")
            .tempdir()
            .expect("create a folder for dnsmasq");
        std::fs::create_dir(dir.path().join("hosts")).expect("create dnsmasq's hosts folder");
        let mut dnsmasq = Dnsmasq {
            child: None,
            port,
            args: extra_args.iter().map(|s| s.to_string()).collect(),
            log_path: dir.path().join("dnsmasq.log"),
            dir,
        };
        dnsmasq.set_hosts(hosts);
        dnsmasq.spawn();
        dnsmasq
    }

    /// `127.0.0.1:<port>`, the nameserver to configure.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it answers on (UDP and TCP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Replaces the hosts file (atomically: written beside it, then renamed over it); dnsmasq
    /// notices at once and answers from the new records.
    pub fn set_hosts(&self, hosts: &str) {
        let staged = self.dir.path().join("records.staged");
        let mut text = hosts.to_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        std::fs::write(&staged, text).expect("write the staged hosts file");
        std::fs::rename(&staged, self.hosts_file()).expect("move the hosts file in place");
    }

    /// Stops the server (SIGKILL): queries go unanswered until [`Dnsmasq::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same records and options.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// What dnsmasq logged (queries included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn hosts_file(&self) -> PathBuf {
        self.dir.path().join("hosts").join("records")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open dnsmasq's log");
        let bin = dnsmasq_bin();
        let child = Command::new(&bin)
            .args([
                "--keep-in-foreground",
                "--log-facility=-",
                "--log-queries",
                "--pid-file=",
                &format!("--port={}", self.port),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--local=/test/",
                "--local-ttl=1",
                &format!("--hostsdir={}", self.dir.path().join("hosts").display()),
            ])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}; install Debian's dnsmasq-base (scripts/test.sh does) or set SC_TEST_DNSMASQ",
                    bin.display()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "dnsmasq exited at start ({status}); its log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not listen on 127.0.0.1:{} within {START_TIMEOUT:?}; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The folder dnsmasq reads its hosts file from.
    pub fn hosts_dir(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

fn dnsmasq_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SC_TEST_DNSMASQ").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("dnsmasq"))
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| Path::new("/usr/sbin/dnsmasq").to_path_buf())
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_dns_port() -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral TCP port");
        let port = tcp.local_addr().expect("local address").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}
