//! The DNS provider against a real DNS server (Debian's dnsmasq, one per test on a free
//! loopback port, answering from a hosts file the test rewrites): records added and removed,
//! SRV records, NXDOMAIN, and a nameserver that stops answering.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sc_backend_api::{BackendProvider, ProviderStatus, Registry, Spec};
use sc_backend_dns::{DnsProvider, DnsSpec, TlsSpec};
use sc_e2e::Dnsmasq;

/// A guard against a hang, far above what any step takes (a refresh every 100 ms).
const PATIENCE: Duration = Duration::from_secs(20);

fn spec(dns: &Dnsmasq, name: &str, port: Option<u16>) -> DnsSpec {
    let mut spec = DnsSpec::new(name, 15002);
    spec.port = port;
    spec.refresh_interval = Duration::from_millis(100);
    spec.nameserver = Some(dns.addr());
    spec.timeout = Some(Duration::from_secs(1));
    spec
}

fn provider(dns: &Dnsmasq, name: &str) -> DnsProvider {
    DnsProvider::new("dns test", &spec(dns, name, Some(15002))).unwrap()
}

async fn ids(provider: &DnsProvider) -> Vec<String> {
    provider
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id.to_string())
        .collect()
}

async fn next_change(provider: &DnsProvider) {
    tokio::time::timeout(PATIENCE, provider.changed())
        .await
        .expect("changed() did not complete although the records changed");
}

/// Drives refreshes (through `changed`, as the router does) until `until` holds; `changed`
/// completing meanwhile is a failure: the set of backends must not change.
async fn refresh_without_change(provider: &DnsProvider, until: impl Fn(&DnsProvider) -> bool) {
    let watch = provider.changed();
    tokio::pin!(watch);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !until(provider) {
        tokio::select! {
            () = &mut watch => panic!("changed() completed, but the backends must stay as they were"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached; status {:?}",
            provider.status()
        );
    }
}

/// Asserts that the provider still lists only `id` while its status carries an error that
/// contains `needle`; returns the status.
async fn kept_while_failing(provider: &DnsProvider, id: &str, needle: &str) -> ProviderStatus {
    assert_eq!(ids(provider).await, [id]);
    let status = provider.status();
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains(needle)),
        "{status:?}"
    );
    status
}

#[tokio::test]
async fn addresses_added_and_removed_become_and_stop_being_backends() {
    let dns = Dnsmasq::start("127.0.0.2 spark.test", &[]);
    let provider = provider(&dns, "spark.test");
    let first = provider.list().await.unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].id.as_str(), "spark.test@127.0.0.2:15002");
    assert_eq!(first[0].endpoint.to_string(), "http://127.0.0.2:15002/");
    assert!(first[0].tls.is_none() && first[0].auth_token.is_none());

    // Nothing changes while the records stay: five refreshes and no completion.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), provider.changed())
            .await
            .is_err(),
        "changed() completed without a change"
    );

    dns.set_hosts("127.0.0.2 spark.test\n127.0.0.3 spark.test");
    next_change(&provider).await;
    assert_eq!(
        ids(&provider).await,
        ["spark.test@127.0.0.2:15002", "spark.test@127.0.0.3:15002"]
    );

    dns.set_hosts("127.0.0.3 spark.test");
    next_change(&provider).await;
    // The remaining address keeps its id.
    assert_eq!(ids(&provider).await, ["spark.test@127.0.0.3:15002"]);

    // IPv6 addresses too, in brackets.
    dns.set_hosts("127.0.0.3 spark.test\n::1 spark.test");
    next_change(&provider).await;
    let list = provider.list().await.unwrap();
    let ids: Vec<_> = list.iter().map(|b| b.id.to_string()).collect();
    assert_eq!(
        ids,
        ["spark.test@127.0.0.3:15002", "spark.test@[::1]:15002"]
    );
    assert_eq!(list[1].endpoint.to_string(), "http://[::1]:15002/");
    assert_eq!(provider.status().refresh_failures, 0);
    assert_eq!(provider.status().last_error, None);
}

#[tokio::test]
async fn srv_records_give_their_targets_addresses_and_ports() {
    let dns = Dnsmasq::start(
        "127.0.0.2 spark-0.test\n127.0.0.3 spark-1.test",
        &[
            "--srv-host=_spark._tcp.test,spark-0.test,15002",
            "--srv-host=_spark._tcp.test,spark-1.test,15003",
        ],
    );
    let mut spec = spec(&dns, "_spark._tcp.test", None);
    spec.tls = Some(TlsSpec::default());
    let provider = DnsProvider::new("srv", &spec).unwrap();
    let list = provider.list().await.unwrap();
    let seen: Vec<_> = list
        .iter()
        .map(|b| {
            (
                b.id.to_string(),
                b.endpoint.to_string(),
                b.tls.as_ref().unwrap().server_name.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "_spark._tcp.test@127.0.0.2:15002".to_owned(),
                "https://127.0.0.2:15002/".to_owned(),
                "spark-0.test".to_owned()
            ),
            (
                "_spark._tcp.test@127.0.0.3:15003".to_owned(),
                "https://127.0.0.3:15003/".to_owned(),
                "spark-1.test".to_owned()
            ),
        ]
    );

    // A target that no longer resolves is left out; the other stays.
    dns.set_hosts("127.0.0.2 spark-0.test");
    next_change(&provider).await;
    assert_eq!(ids(&provider).await, ["_spark._tcp.test@127.0.0.2:15002"]);
    assert_eq!(provider.status().refresh_failures, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn nxdomain_keeps_the_last_backends_and_warns_once_per_streak() {
    let logs = Captured::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish(),
    );
    let dns = Dnsmasq::start("", &[]);
    let provider = provider(&dns, "spark.test");

    // No answer was ever had: listing fails, naming the name and what the server said.
    let e = provider.list().await.unwrap_err().to_string();
    assert!(
        e.contains("'spark.test' does not exist (NXDOMAIN)") && e.contains("dns test"),
        "{e}"
    );
    assert_eq!(provider.status().refresh_failures, 1);

    // The record appears: the next refresh finds it.
    dns.set_hosts("127.0.0.2 spark.test");
    next_change(&provider).await;
    assert_eq!(ids(&provider).await, ["spark.test@127.0.0.2:15002"]);
    assert_eq!(provider.status().last_error, None);
    let failures_before = provider.status().refresh_failures;

    // The record vanishes (NXDOMAIN): the last list stays, failures are counted.
    dns.set_hosts("");
    refresh_without_change(&provider, |p| {
        p.status().refresh_failures >= failures_before + 3
    })
    .await;
    kept_while_failing(&provider, "spark.test@127.0.0.2:15002", "NXDOMAIN").await;
    let text = logs.text();
    assert_eq!(
        text.matches("DNS resolution failed").count(),
        2,
        "one warning for the failure at start and one for this streak, not one per refresh:\n{text}"
    );
    assert!(text.contains("DNS resolution still failing"), "{text}");
}

#[tokio::test]
async fn a_nameserver_that_stops_answering_keeps_the_last_backends() {
    let mut dns = Dnsmasq::start("127.0.0.2 spark.test", &[]);
    let provider = provider(&dns, "spark.test");
    assert_eq!(ids(&provider).await, ["spark.test@127.0.0.2:15002"]);

    dns.stop();
    refresh_without_change(&provider, |p| p.status().refresh_failures >= 2).await;
    let status = kept_while_failing(
        &provider,
        "spark.test@127.0.0.2:15002",
        "no answer from the nameserver for 'spark.test'",
    )
    .await;

    // Back, with another record: the change is seen and the failure streak ends.
    dns.set_hosts("127.0.0.3 spark.test");
    dns.restart();
    next_change(&provider).await;
    assert_eq!(ids(&provider).await, ["spark.test@127.0.0.3:15002"]);
    let after = provider.status();
    assert_eq!(after.last_error, None);
    assert!(after.refresh_failures >= status.refresh_failures);
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_provider_leaves_no_task_running() {
    let dns = Dnsmasq::start("127.0.0.2 spark.test", &[]);
    let metrics = tokio::runtime::Handle::current().metrics();
    // Built through the registry, as the proxy does; building spawns nothing.
    let mut registry = Registry::new();
    sc_backend_dns::register(&mut registry);
    let spec = Spec::from_json(
        "backend_provider.spec",
        serde_json::json!({
            "name": "spark.test", "port": 15002, "nameserver": dns.addr(),
            "refresh_interval": "100ms", "timeout": "1s",
        }),
    );
    let provider = registry.build_provider("dns", "p", &spec).unwrap();
    assert_eq!(metrics.num_alive_tasks(), 0);
    assert_eq!(provider.list().await.unwrap().len(), 1);
    dns.set_hosts("127.0.0.3 spark.test");
    tokio::time::timeout(PATIENCE, provider.changed())
        .await
        .unwrap();
    // The resolver's connection task is alive while the provider is.
    assert!(metrics.num_alive_tasks() > 0);
    drop(provider);
    // Whatever the resolver ran is gone once the provider is (aborted tasks end at their next
    // poll, which a few turns of this runtime give them).
    for _ in 0..100 {
        if metrics.num_alive_tasks() == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(metrics.num_alive_tasks(), 0);
}

/// Log output captured for assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
