//! Fuzzes the redaction of Config responses (`sc_router::fuzzing::redact_config`), which hides
//! the backend token (`spark.connect.authenticate.token`) the proxy injects from a client that
//! reads Spark's configuration.
//!
//! Input layout (see `common::Chunked`): flags (bit 0: the body ends with OK trailers; bit 1: the
//! body is one message, framed here with its length prefix), a limit, frame lengths, then the
//! body. Properties:
//! * it never panics, and never waits (the body is in memory);
//! * no message it lets through holds the token's value: every pair with that key has no value
//!   or the redacted one;
//! * a body of whole, uncompressed ConfigResponse messages within the limit comes out as the
//!   same messages (prost's view) with only the token's value replaced, and the same trailers;
//! * anything else is replaced by INTERNAL, and nothing of it is let through.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::Chunked;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use sc_proto::spark::connect as pb;
use sc_proto::wire::{self, GRPC_HEADER_LEN};
use sc_router::fuzzing::{REDACTED, TOKEN_KEY, redact_config};

fuzz_target!(|data: &[u8]| {
    let Some(input) = Chunked::parse(data) else {
        return;
    };
    let trailers = input.flags & 1 == 1;
    let framed;
    let (body, chunks) = if input.flags & 2 == 2 {
        framed = frame(input.body);
        (framed.as_slice(), vec![framed.as_slice()])
    } else {
        (input.body, input.chunks.clone())
    };

    let out = redact_config(&chunks, trailers, input.limit)
        .expect("redacting an in-memory body never waits");
    let messages = messages_of(&out.data).expect("the redacted body is whole ConfigResponses");
    for message in &messages {
        for pair in &message.pairs {
            if pair.key == TOKEN_KEY {
                assert!(
                    pair.value.as_deref().is_none_or(|v| v == REDACTED),
                    "the token's value went through: {pair:?}"
                );
            }
        }
    }

    let within_limit = body.len() <= input.limit.saturating_add(GRPC_HEADER_LEN);
    match messages_of(body).filter(|_| within_limit) {
        Some(mut expected) => {
            for message in &mut expected {
                for pair in &mut message.pairs {
                    if pair.key == TOKEN_KEY && pair.value.is_some() {
                        pair.value = Some(REDACTED.to_owned());
                    }
                }
            }
            assert_eq!(messages, expected, "redaction changed more than the token");
            assert_eq!(out.status.as_deref(), trailers.then_some("0"));
        }
        None => {
            assert_eq!(out.status.as_deref(), Some("13"), "{out:?}");
            assert!(out.data.is_empty(), "a refused body leaked data: {out:?}");
        }
    }
});

/// `message` with its gRPC length prefix.
fn frame(message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut out = wire::encode_frame_header(len).to_vec();
    out.extend_from_slice(message);
    out
}

/// The ConfigResponses of a body of whole, uncompressed messages; `None` for anything else.
fn messages_of(mut body: &[u8]) -> Option<Vec<pb::ConfigResponse>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let header = wire::frame_header(body).ok().flatten()?;
        if header.compressed {
            return None;
        }
        let end = GRPC_HEADER_LEN + header.len as usize;
        out.push(pb::ConfigResponse::decode(body.get(GRPC_HEADER_LEN..end)?).ok()?);
        body = &body[end..];
    }
    Some(out)
}
