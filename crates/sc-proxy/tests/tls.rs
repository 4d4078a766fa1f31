//! TLS in the assembled proxy: TLS to a backend (its own CA and server name), client
//! certificates as identities (mTLS), the control plane over TLS, and certificate reload.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use sc_proxy::{Proxy, ProxyConfig};
use sc_testkit::tls::TestCa;
use sc_testkit::{config_req, spawn_backend, spawn_backend_tls};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn start(yaml: &str) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let config = ProxyConfig::from_yaml(yaml)
        .unwrap()
        .validate(&sc_proxy::builtins())
        .unwrap();
    let proxy = Proxy::bind(config).await.unwrap();
    let addrs = (proxy.grpc_addr().unwrap(), proxy.control_addr().unwrap());
    tokio::spawn(proxy.serve(std::future::pending()));
    addrs
}

async fn tls_client(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<sc_testkit::Client, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(sc_testkit::Client::new(channel))
}

#[tokio::test(flavor = "multi_thread")]
async fn backends_are_reached_over_tls_with_their_own_ca_and_server_name() {
    let dir = tempfile::tempdir().unwrap();
    let backend_ca = TestCa::new("backend CA");
    let (cert, key) = backend_ca.leaf("spark.internal", &["spark.internal"]);
    let (addr, state) = spawn_backend_tls("tls-backend", &cert, &key).await;
    let ca_file = write(dir.path(), "backend-ca.pem", &backend_ca.pem);
    let config = |server_name: &str| {
        format!(
            "store:\n  type: memory\nbackend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: https://{addr}\n        ca_file: {}\n        server_name: {server_name}\nserver:\n  listen_addr: 127.0.0.1:0\ncontrol:\n  listen_addr: 127.0.0.1:0\n",
            ca_file.display()
        )
    };
    let (grpc, _) = start(&config("spark.internal")).await;
    let mut c = sc_testkit::client(grpc).await;
    let resp = c.config(config_req("s", "u")).await.unwrap().into_inner();
    assert_eq!(resp.server_side_session_id, "tls-backend");
    assert_eq!(state.count("Config"), 1);

    // A name the certificate does not carry: the backend is unavailable, and says which.
    let (grpc, _) = start(&config("someone.else")).await;
    let mut c = sc_testkit::client(grpc).await;
    let err = c.config(config_req("s2", "u")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains("backend-0"), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_are_identities_and_the_control_plane_speaks_tls() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("proxy CA");
    let client_ca = TestCa::new("client CA");
    let (server_cert, server_key) = server_ca.leaf("localhost", &["localhost", "127.0.0.1"]);
    let (dave_cert, dave_key) = client_ca.leaf("dave", &["dave.client"]);
    let stranger_ca = TestCa::new("stranger CA");
    let (eve_cert, eve_key) = stranger_ca.leaf("eve", &["eve.client"]);
    let (backend, state) = spawn_backend("plain").await;
    let yaml = format!(
        "store:\n  type: memory\nbackend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: {backend}\nserver:\n  listen_addr: 127.0.0.1:0\n  tls:\n    enabled: true\n    cert_file: {}\n    key_file: {}\n    client_ca_file: {}\ncontrol:\n  listen_addr: 127.0.0.1:0\n  tls: true\nauth:\n  mtls:\n    groups: [engineers]\n  tokens:\n    - token: t0k3n\n      user: tina\n",
        write(dir.path(), "server.pem", &server_cert).display(),
        write(dir.path(), "server.key", &server_key).display(),
        write(dir.path(), "client-ca.pem", &client_ca.pem).display(),
    );
    let (grpc, control) = start(&yaml).await;

    // Dave's certificate makes him dave, whatever the request claims.
    let mut dave = tls_client(grpc, &server_ca.pem, Some((&dave_cert, &dave_key)))
        .await
        .unwrap();
    dave.config(config_req("d", "mallory")).await.unwrap();
    // (The proxy's health probes also reach the fake; look at the Config call.)
    let seen = state.seen();
    let config = seen.iter().rev().find(|s| s.method == "Config").unwrap();
    assert_eq!(config.user_id, "dave");

    // No certificate and no token: UNAUTHENTICATED. A certificate from an unknown CA: no handshake.
    let mut anonymous = tls_client(grpc, &server_ca.pem, None).await.unwrap();
    let err = anonymous.config(config_req("x", "u")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let eve = tls_client(grpc, &server_ca.pem, Some((&eve_cert, &eve_key))).await;
    let refused = match eve {
        Err(_) => true,
        Ok(mut c) => c.config(config_req("e", "u")).await.is_err(),
    };
    assert!(refused, "a certificate from an unknown CA was accepted");

    // The control plane over TLS (curl, trusting the proxy's CA).
    let ca_path = write(dir.path(), "proxy-ca.pem", &server_ca.pem);
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&ca_path)
        .args(["-H", "authorization: Bearer t0k3n", "-X", "POST"])
        .arg(format!(
            "https://localhost:{}/control/sessions",
            control.port()
        ))
        .output()
        .await
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        id.len(),
        36,
        "POST over TLS: {id} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = tokio::process::Command::new("curl")
        .args(["-sS", "-m", "5", "-X", "POST"])
        .arg(format!(
            "http://127.0.0.1:{}/control/sessions",
            control.port()
        ))
        .output()
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains('-'),
        "plaintext was served on the TLS control port"
    );
}

/// One HTTP/1.1 request to the control plane over TLS (trusting `ca_pem`, presenting
/// `identity` as the client certificate): (status, body).
async fn control_https(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    method: &str,
    path: &str,
) -> (u16, String) {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::rustls;

    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\naccept: application/json\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut response = Vec::new();
    // The server closes the connection after the response (with or without close_notify).
    let read = tls.read_to_end(&mut response).await;
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response ({read:?}): {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    (status, body.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_plane_over_tls_knows_callers_by_their_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("proxy CA");
    let client_ca = TestCa::new("client CA");
    let (server_cert, server_key) = server_ca.leaf("localhost", &["localhost", "127.0.0.1"]);
    let (dave_cert, dave_key) = client_ca.leaf("dave", &["dave.client"]);
    let (backend, _) = spawn_backend("plain").await;
    // Certificates are the only credential.
    let yaml = format!(
        "store:\n  type: memory\nbackend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: {backend}\nserver:\n  listen_addr: 127.0.0.1:0\n  tls:\n    enabled: true\n    cert_file: {}\n    key_file: {}\n    client_ca_file: {}\ncontrol:\n  listen_addr: 127.0.0.1:0\n  tls: true\nauth:\n  mtls:\n    groups: [engineers]\n",
        write(dir.path(), "server.pem", &server_cert).display(),
        write(dir.path(), "server.key", &server_key).display(),
        write(dir.path(), "client-ca.pem", &client_ca.pem).display(),
    );
    let (_, control) = start(&yaml).await;
    let dave = Some((dave_cert.as_str(), dave_key.as_str()));

    // Dave's certificate makes him dave: his session is his.
    let (status, body) =
        control_https(control, &server_ca.pem, dave, "POST", "/control/sessions").await;
    assert_eq!(status, 200, "POST with a client certificate: {body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["user_id"], "dave", "{body}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, body) = control_https(
        control,
        &server_ca.pem,
        dave,
        "GET",
        &format!("/control/sessions/{id}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let session: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["user_id"], "dave", "{body}");

    // No certificate and no token: 401, on creating and on looking.
    let (status, body) =
        control_https(control, &server_ca.pem, None, "POST", "/control/sessions").await;
    assert_eq!(status, 401, "POST without credentials: {body}");
    assert!(body.contains("UNAUTHENTICATED"), "{body}");
    let (status, body) = control_https(
        control,
        &server_ca.pem,
        None,
        "GET",
        &format!("/control/sessions/{id}"),
    )
    .await;
    assert_eq!(status, 401, "GET without credentials: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_certificate_is_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = TestCa::new("old CA");
    let new_ca = TestCa::new("new CA");
    let (old_cert, old_key) = old_ca.leaf("localhost", &["localhost"]);
    let (new_cert, new_key) = new_ca.leaf("localhost", &["localhost"]);
    let cert_file = write(dir.path(), "server.pem", &old_cert);
    let key_file = write(dir.path(), "server.key", &old_key);
    let (backend, _) = spawn_backend("plain").await;
    let yaml = format!(
        "store:\n  type: memory\nbackend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: {backend}\nserver:\n  listen_addr: 127.0.0.1:0\n  tls:\n    enabled: true\n    cert_file: {}\n    key_file: {}\ncontrol:\n  listen_addr: 127.0.0.1:0\n",
        cert_file.display(),
        key_file.display()
    );
    let (grpc, _) = start(&yaml).await;
    let mut old_client = tls_client(grpc, &old_ca.pem, None).await.unwrap();
    old_client.config(config_req("a", "u")).await.unwrap();
    assert!(
        tls_client(grpc, &new_ca.pem, None).await.is_err(),
        "the new CA is not trusted yet"
    );

    // Replace the files (key first, then the certificate); the proxy notices within seconds.
    std::fs::write(&key_file, &new_key).unwrap();
    std::fs::write(&cert_file, &new_cert).unwrap();
    let mut reloaded = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok(c) = tls_client(grpc, &new_ca.pem, None).await {
            reloaded = Some(c);
            break;
        }
    }
    let mut new_client = reloaded.expect("the new certificate was not served within 10 s");
    new_client.config(config_req("b", "u")).await.unwrap();
    // The connection made before the reload keeps working.
    old_client.config(config_req("a", "u")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn require_client_cert_refuses_clients_without_a_certificate_even_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("proxy CA");
    let client_ca = TestCa::new("client CA");
    let (server_cert, server_key) = server_ca.leaf("localhost", &["localhost", "127.0.0.1"]);
    let (dave_cert, dave_key) = client_ca.leaf("dave", &["dave.client"]);
    let (backend, state) = spawn_backend("plain").await;
    let yaml = format!(
        "store:\n  type: memory\nbackend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: {backend}\nserver:\n  listen_addr: 127.0.0.1:0\n  tls:\n    enabled: true\n    cert_file: {}\n    key_file: {}\n    client_ca_file: {}\n    require_client_cert: true\ncontrol:\n  listen_addr: 127.0.0.1:0\nauth:\n  mtls: {{}}\n  tokens:\n    - token: t0k3n\n      user: tina\n",
        write(dir.path(), "server.pem", &server_cert).display(),
        write(dir.path(), "server.key", &server_key).display(),
        write(dir.path(), "client-ca.pem", &client_ca.pem).display(),
    );
    let (grpc, _) = start(&yaml).await;

    // No certificate: no call gets through, not even with a valid token.
    let configs = || state.seen().iter().filter(|s| s.method == "Config").count();
    let before = configs();
    match tls_client(grpc, &server_ca.pem, None).await {
        Err(_) => {} // Refused during the handshake.
        Ok(mut c) => {
            let mut req = tonic::Request::new(config_req("x", "tina"));
            req.metadata_mut()
                .insert("authorization", "Bearer t0k3n".parse().unwrap());
            // The server ends the handshake when the client sends no certificate; the client
            // learns it as a broken connection (UNAVAILABLE, UNKNOWN or CANCELLED, by timing).
            let result = c.config(req).await;
            assert!(
                result.is_err(),
                "a client without a certificate was served: {result:?}"
            );
        }
    }
    assert_eq!(
        configs(),
        before,
        "the backend saw a call without a certificate"
    );

    // With a certificate from the client CA the call goes through, as that identity.
    let mut dave = tls_client(grpc, &server_ca.pem, Some((&dave_cert, &dave_key)))
        .await
        .unwrap();
    dave.config(config_req("d", "mallory")).await.unwrap();
    assert_eq!(configs(), before + 1);
    let seen = state.seen();
    let config = seen.iter().rev().find(|s| s.method == "Config").unwrap();
    assert_eq!(config.user_id, "dave");
}
