//! Messages far above gRPC's customary 4 MiB pass through the router at its default settings
//! (`router.max_message_size`, 128 MiB), both ways.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use sc_proto::spark::connect as pb;
use sc_router::RouterSettings;
use sc_router::policy::RoundRobin;
use sc_testkit::*;

const BIG: usize = 32 << 20;

#[tokio::test]
async fn thirty_two_mib_messages_pass_at_default_settings() {
    let (backend, state) = spawn_backend("fake").await;
    let router = router(
        &[backend.to_string()],
        Arc::new(RoundRobin::default()),
        RouterSettings::default(),
    )
    .await;
    let mut c = client(spawn_proxy(&router).await).await;

    // A 32 MiB response message.
    let mut stream = c
        .execute_plan(execute_req("s", "u", "op", &format!("big:1:{BIG}")))
        .await
        .unwrap()
        .into_inner();
    let mut received = 0;
    while let Some(response) = stream.message().await.unwrap() {
        if let Some(pb::execute_plan_response::ResponseType::ArrowBatch(batch)) =
            response.response_type
        {
            received += batch.data.len();
        }
    }
    assert_eq!(received, BIG);

    // A 32 MiB first request message (the one the router reads to route the call), and a
    // second one behind it.
    let artifact = |name: &str| artifact_req("s", "u", name, BIG);
    let added = c
        .add_artifacts(futures_util::stream::iter(vec![
            artifact("jars/a.jar"),
            artifact("jars/b.jar"),
        ]))
        .await
        .unwrap();
    assert_eq!(added.get_ref().artifacts.len(), 2);
    assert_eq!(state.count("AddArtifacts"), 1);
}
