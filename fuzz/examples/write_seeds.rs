//! Writes the checked-in seed inputs of the fuzz targets (`fuzz/seeds/<target>/`): encoded real
//! requests of every method, a framed request, responses, and configuration files.
//!
//! `cargo +nightly run --manifest-path fuzz/Cargo.toml --example write_seeds`

use std::path::Path;

use prost::Message;
use sc_proto::spark::connect as pb;
use sc_proto::wire;

const SESSION: &str = "00112233-4455-6677-8899-aabbccddeeff";
const OPERATION: &str = "8f0ba5c1-3c1e-4a53-9b1e-3a2b0f6c7d11";

fn ctx(user: &str) -> Option<pb::UserContext> {
    Some(pb::UserContext {
        user_id: user.into(),
        user_name: user.into(),
        extensions: vec![prost_types::Any {
            type_url: "type.googleapis.com/example.Extension".into(),
            value: vec![8, 1],
        }],
    })
}

fn sql_plan(query: &str) -> Option<pb::Plan> {
    Some(pb::Plan {
        op_type: Some(pb::plan::OpType::Root(pb::Relation {
            common: None,
            rel_type: Some(pb::relation::RelType::Sql(pb::Sql {
                query: query.into(),
                ..Default::default()
            })),
        })),
    })
}

/// One encoded request per method, named after it.
fn requests() -> Vec<(&'static str, Vec<u8>)> {
    let s = || SESSION.to_owned();
    let ssid = || Some("server-side-1".to_owned());
    vec![
        (
            "ExecutePlan",
            pb::ExecutePlanRequest {
                session_id: s(),
                user_context: ctx("alice"),
                operation_id: Some(OPERATION.into()),
                plan: sql_plan("SELECT id FROM range(10)"),
                client_type: Some("pyspark/4.0".into()),
                tags: vec!["etl".into()],
                client_observed_server_side_session_id: ssid(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "AnalyzePlan",
            pb::AnalyzePlanRequest {
                session_id: s(),
                user_context: ctx("alice"),
                client_observed_server_side_session_id: ssid(),
                analyze: Some(pb::analyze_plan_request::Analyze::SparkVersion(
                    pb::analyze_plan_request::SparkVersion {},
                )),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "Config",
            pb::ConfigRequest {
                session_id: s(),
                user_context: ctx("alice"),
                operation: Some(pb::config_request::Operation {
                    op_type: Some(pb::config_request::operation::OpType::Get(
                        pb::config_request::Get {
                            keys: vec!["spark.sql.shuffle.partitions".into()],
                        },
                    )),
                }),
                client_observed_server_side_session_id: ssid(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "AddArtifacts",
            pb::AddArtifactsRequest {
                session_id: s(),
                user_context: ctx("alice"),
                payload: Some(pb::add_artifacts_request::Payload::Batch(
                    pb::add_artifacts_request::Batch {
                        artifacts: vec![pb::add_artifacts_request::SingleChunkArtifact {
                            name: "jars/a.jar".into(),
                            data: Some(pb::add_artifacts_request::ArtifactChunk {
                                data: vec![0xCA, 0xFE].into(),
                                crc: 42,
                            }),
                        }],
                    },
                )),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "ArtifactStatus",
            pb::ArtifactStatusesRequest {
                session_id: s(),
                user_context: ctx("alice"),
                names: vec!["jars/a.jar".into()],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "Interrupt",
            pb::InterruptRequest {
                session_id: s(),
                user_context: ctx("alice"),
                interrupt_type: pb::interrupt_request::InterruptType::OperationId as i32,
                interrupt: Some(pb::interrupt_request::Interrupt::OperationId(
                    OPERATION.into(),
                )),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "ReattachExecute",
            pb::ReattachExecuteRequest {
                session_id: s(),
                user_context: ctx("alice"),
                operation_id: OPERATION.into(),
                last_response_id: Some("r7".into()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "ReleaseExecute",
            pb::ReleaseExecuteRequest {
                session_id: s(),
                user_context: ctx("alice"),
                operation_id: OPERATION.into(),
                release: Some(pb::release_execute_request::Release::ReleaseAll(
                    pb::release_execute_request::ReleaseAll {},
                )),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "ReleaseSession",
            pb::ReleaseSessionRequest {
                session_id: s(),
                user_context: ctx("alice"),
                allow_reconnect: true,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "FetchErrorDetails",
            pb::FetchErrorDetailsRequest {
                session_id: s(),
                user_context: ctx("alice"),
                error_id: "error-1".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "CloneSession",
            pb::CloneSessionRequest {
                session_id: s(),
                user_context: ctx("alice"),
                new_session_id: Some("ffeeddcc-bbaa-9988-7766-554433221100".into()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "GetStatus",
            pb::GetStatusRequest {
                session_id: s(),
                user_context: ctx("alice"),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ]
}

const CONFIGS: [(&str, &str); 4] = [
    (
        "go-proxy",
        "backend_provider:\n  name: manual spark\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: localhost:15002\nlog_level: debug\nload_policy:\n  type: MAX_SESSIONS\n  params:\n    max_size: \"5\"\nserver:\n  listen_addr: \"localhost:8080\"\n  tls:\n    enabled: false\n    cert_file: \"certs/server.crt\"\n    key_file: \"certs/server.key\"\n    server_name: \"example.com\"\n",
    ),
    (
        "docs-example",
        "backend_provider:\n  name: two local sparks\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: localhost:15002\n      - url: localhost:15003\nload_policy:\n  type: LEAST_SESSIONS\nserver:\n  listen_addr: 0.0.0.0:8080\ncontrol:\n  listen_addr: 0.0.0.0:8081\nlog_level: info\nauth:\n  anonymous: true\n",
    ),
    (
        "router-and-tokens",
        "backend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: https://spark-a:15002\n        id: a\n        server_name: spark-a\n      - url: sc://spark-b:15002\nload_policy:\n  name: ONE_TO_ONE\nserver:\n  listen_addr: 0.0.0.0:8080\n  shutdown_grace: 10s\ncontrol:\n  listen_addr: 127.0.0.1:8081\n  public_host: proxy.example.com\nrouter:\n  max_message_size: 134217728\n  connect_timeout: 5s\n  keepalive_interval: 30s\n  stream_window: 4194304\n  connection_window: 268435456\nauth:\n  admin_group: admins\n  tokens:\n    - token: s3cret\n      user: alice\n      groups: [admins]\n",
    ),
    ("empty", "{}\n"),
];

/// `message` with its gRPC length prefix (`compressed` sets the flag).
fn framed(message: &[u8], compressed: bool) -> Vec<u8> {
    let mut out = wire::encode_frame_header(message.len() as u32).to_vec();
    out[0] = u8::from(compressed);
    out.extend_from_slice(message);
    out
}

/// The `common::Chunked` layout: flags, limit byte, frame lengths, body.
fn chunked(flags: u8, limit: u8, lengths: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = vec![flags, limit, lengths.len() as u8];
    out.extend_from_slice(lengths);
    out.extend_from_slice(body);
    out
}

/// Seeds of `router_read_request` and `router_redact_config`.
fn write_router_seeds(seeds: &Path, requests: &[(&str, Vec<u8>)]) -> std::io::Result<()> {
    use std::io::Write as _;

    let dir = seeds.join("router_read_request");
    let find = |name: &str| {
        requests
            .iter()
            .find(|(m, _)| *m == name)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    let artifacts = find("AddArtifacts");
    let config = find("Config");
    // Two AddArtifacts messages and trailers, cut inside the second prefix; no limit.
    let mut two = framed(&artifacts, false);
    two.extend_from_slice(&framed(&artifacts, false));
    let cut = (artifacts.len() + 7) as u8;
    write(
        &dir,
        "AddArtifacts-two.bin",
        &chunked(1, 0, &[3, cut], &two),
    )?;
    // A later message announcing more than a 160-byte limit.
    let mut over = framed(&config, false);
    over.extend_from_slice(&wire::encode_frame_header(1000));
    over.extend_from_slice(&[0; 16]);
    write(
        &dir,
        "later-too-large.bin",
        &chunked(0, 10, &[2, 90], &over),
    )?;
    // A gzip-compressed first message (grpc-encoding: gzip).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&config)?;
    let gz = gz.finish()?;
    write(
        &dir,
        "Config-gzip.bin",
        &chunked(2, 0, &[1], &framed(&gz, true)),
    )?;
    // The same, deflated (grpc-encoding: deflate).
    let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zl.write_all(&config)?;
    let zl = zl.finish()?;
    write(
        &dir,
        "Config-deflate.bin",
        &chunked(4, 0, &[], &framed(&zl, true)),
    )?;

    let dir = seeds.join("router_redact_config");
    let response = pb::ConfigResponse {
        session_id: SESSION.into(),
        server_side_session_id: "server-side-1".into(),
        pairs: vec![
            pb::KeyValue {
                key: "spark.connect.authenticate.token".into(),
                value: Some("backend-secret".into()),
            },
            pb::KeyValue {
                key: "spark.sql.shuffle.partitions".into(),
                value: Some("200".into()),
            },
            pb::KeyValue {
                key: "spark.connect.authenticate.token".into(),
                value: None,
            },
        ],
        warnings: vec!["deprecated".into()],
    }
    .encode_to_vec();
    // Two framed responses with trailers, cut in three frames.
    let mut body = framed(&response, false);
    body.extend_from_slice(&framed(&response, false));
    write(&dir, "two-responses.bin", &chunked(1, 0, &[4, 60], &body))?;
    // One message, framed by the target (flag bit 1).
    write(&dir, "unframed.bin", &chunked(3, 0, &[], &response))?;
    Ok(())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let fields_dir = seeds.join("wire_request_fields");
    let user_dir = seeds.join("wire_with_user");
    for (method, bytes) in requests() {
        write(&fields_dir, &format!("{method}.pb"), &bytes)?;
        // The with_user layout: lengths of user_id and user_name, the names, the message.
        let mut framed = vec![3, 5];
        framed.extend_from_slice(b"bobrobert");
        framed.extend_from_slice(&bytes);
        write(&user_dir, &format!("{method}.bin"), &framed)?;
    }
    // A request as it arrives in a gRPC body: length prefix, then the message.
    let config = requests()
        .into_iter()
        .find(|(m, _)| *m == "Config")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let mut grpc = wire::encode_frame_header(config.len() as u32).to_vec();
    grpc.extend_from_slice(&config);
    write(&fields_dir, "Config.grpc", &grpc)?;
    // A response, for read_server_side_session_id.
    let response = pb::ExecutePlanResponse {
        session_id: SESSION.into(),
        server_side_session_id: "server-side-1".into(),
        operation_id: OPERATION.into(),
        response_id: "r1".into(),
        ..Default::default()
    };
    write(
        &fields_dir,
        "ExecutePlanResponse.pb",
        &response.encode_to_vec(),
    )?;
    // A request without user_context (the rewrite inserts one).
    let bare = pb::ConfigRequest {
        session_id: SESSION.into(),
        client_type: Some("rust".into()),
        ..Default::default()
    };
    let mut framed = vec![5, 0];
    framed.extend_from_slice(b"alice");
    framed.extend_from_slice(&bare.encode_to_vec());
    write(&user_dir, "Config-no-user-context.bin", &framed)?;

    write_router_seeds(&seeds, &requests())?;

    let config_dir = seeds.join("config_yaml");
    for (name, yaml) in CONFIGS {
        write(&config_dir, &format!("{name}.yaml"), yaml.as_bytes())?;
    }
    println!("seeds written under {}", seeds.display());
    Ok(())
}
