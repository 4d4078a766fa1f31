//! One resolution of the provider's name with hickory-resolver: the addresses (and ports) of the
//! Spark Connect servers it names.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};

use crate::DnsError;
use crate::spec::{Checked, Query};

/// One server found: its address and the name its certificate should carry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Found {
    pub(crate) addr: SocketAddr,
    /// The DNS name the address came from, without the final dot (the SRV target for SRV
    /// records).
    pub(crate) host: String,
}

/// Builds the resolver: the configured nameserver, or the system's. Spawns nothing: hickory
/// opens connections (and their tasks, owned by the resolver) on the first lookup.
pub(crate) fn resolver(checked: &Checked) -> Result<TokioResolver, DnsError> {
    let mut builder = match checked.nameserver {
        Some(addr) => {
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut server.connections {
                connection.port = addr.port();
            }
            let mut builder = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![server]),
                TokioRuntimeProvider::default(),
            );
            // Ask that server only: not /etc/hosts.
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        }
        None => {
            TokioResolver::builder_tokio().map_err(|e| DnsError::SystemConfig(e.to_string()))?
        }
    };
    let options: &mut ResolverOpts = builder.options_mut();
    if let Some(timeout) = checked.timeout {
        options.timeout = timeout;
    }
    // Every refresh asks the nameserver: the refresh interval is the user's freshness knob, and
    // a cached negative answer would hide a server that came back.
    options.cache_size = 0;
    builder
        .build()
        .map_err(|e| DnsError::SystemConfig(e.to_string()))
}

/// Resolves `query` once: every server, sorted by address, without duplicates.
pub(crate) async fn resolve(
    resolver: &TokioResolver,
    query: &Query,
) -> Result<Vec<Found>, DnsError> {
    let mut found = match query {
        Query::Addresses { name, port } => addresses(resolver, name)
            .await?
            .into_iter()
            .map(|ip| Found {
                addr: SocketAddr::new(ip, *port),
                host: display(name),
            })
            .collect(),
        Query::Srv { name } => srv(resolver, name).await?,
    };
    found.sort();
    found.dedup_by(|a, b| a.addr == b.addr);
    Ok(found)
}

/// The A and AAAA records of `name`, asked for at once. A family the name lacks is fine; a
/// failed query of either fails the whole lookup (a half answer would drain healthy servers).
async fn addresses(resolver: &TokioResolver, name: &Name) -> Result<Vec<IpAddr>, DnsError> {
    let (v4, v6) = tokio::join!(
        resolver.ipv4_lookup(name.clone()),
        resolver.ipv6_lookup(name.clone())
    );
    let text = display(name);
    let mut ips = Vec::new();
    let mut absent = None;
    for result in [v4, v6] {
        match result {
            Ok(lookup) => ips.extend(lookup.answers().iter().filter_map(|r| r.data.ip_addr())),
            Err(e) => {
                let e = DnsError::from_lookup(&text, "A or AAAA", &e);
                if !e.is_absent() {
                    return Err(e);
                }
                absent.get_or_insert(e);
            }
        }
    }
    if ips.is_empty() {
        return Err(absent.unwrap_or(DnsError::NoRecords {
            name: text,
            kind: "A or AAAA",
        }));
    }
    Ok(ips)
}

/// The SRV records of `name`, each target resolved to its addresses. A target that no longer
/// exists is left out; a target whose lookup fails fails the whole lookup.
async fn srv(resolver: &TokioResolver, name: &Name) -> Result<Vec<Found>, DnsError> {
    let lookup = resolver
        .srv_lookup(name.clone())
        .await
        .map_err(|e| DnsError::from_lookup(&display(name), "SRV", &e))?;
    // Target -> ports (a target may serve on several).
    let mut targets: BTreeMap<Name, Vec<u16>> = BTreeMap::new();
    for record in lookup.answers() {
        if let RData::SRV(srv) = &record.data
            && !srv.target.is_root()
            && srv.port != 0
        {
            targets
                .entry(srv.target.clone())
                .or_default()
                .push(srv.port);
        }
    }
    if targets.is_empty() {
        return Err(DnsError::NoRecords {
            name: display(name),
            kind: "SRV",
        });
    }
    let lookups = targets.keys().map(|target| addresses(resolver, target));
    let results = futures_util::future::join_all(lookups).await;
    let mut found = Vec::new();
    let mut first_absent = None;
    for ((target, ports), result) in targets.iter().zip(results) {
        match result {
            Ok(ips) => {
                for ip in ips {
                    for port in ports {
                        found.push(Found {
                            addr: SocketAddr::new(ip, *port),
                            host: display(target),
                        });
                    }
                }
            }
            Err(e) if e.is_absent() => {
                tracing::debug!(srv = %display(name), target = %display(target), error = %e, "SRV target has no addresses; left out");
                first_absent.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    if found.is_empty() {
        return Err(first_absent.unwrap_or(DnsError::NoRecords {
            name: display(name),
            kind: "SRV",
        }));
    }
    Ok(found)
}

/// A name as written for people: without the final dot.
pub(crate) fn display(name: &Name) -> String {
    name.to_utf8().trim_end_matches('.').to_owned()
}
