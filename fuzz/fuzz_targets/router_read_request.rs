//! Fuzzes how the router reads and forwards a request body (`sc_router::fuzzing::read_request`):
//! `read_head` (the first message, read whole, its size checked), `readable` (gzip or deflate
//! inflated up to the limit) and `Upstream` (the rest forwarded, each later message's length
//! prefix held to the limit as the frames go by).
//!
//! Input layout (see `common::Chunked`): flags (bit 0: the body ends with trailers; bits 1-2:
//! `grpc-encoding` none, gzip, deflate or snappy), a limit, frame lengths, then the body.
//! Properties:
//! * it never panics, and never waits (the body is in memory);
//! * the outcome does not depend on how the body is cut into frames;
//! * when it succeeds, every byte is forwarded unchanged and in order, and the first message as
//!   read is within the limit (and, uncompressed, is the bytes after the first prefix);
//! * for an uncompressed first message, the outcome is what a plain walk over the prefixes of
//!   the whole body predicts: malformed prefix, first message too large, truncated, a later
//!   message too large (naming its size), or success.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::Chunked;
use libfuzzer_sys::fuzz_target;
use sc_proto::wire::{self, GRPC_HEADER_LEN};
use sc_router::RouterError;
use sc_router::fuzzing::{Request, read_request};

fuzz_target!(|data: &[u8]| {
    let Some(input) = Chunked::parse(data) else {
        return;
    };
    let trailers = input.flags & 1 == 1;
    let encoding =
        [None, Some("gzip"), Some("deflate"), Some("snappy")][usize::from((input.flags >> 1) & 3)];

    let chunked = read_request(&input.chunks, trailers, encoding, input.limit)
        .expect("reading an in-memory body never waits");
    let whole = read_request(&[input.body], trailers, encoding, input.limit)
        .expect("reading an in-memory body never waits");
    assert_eq!(
        outcome(&chunked),
        outcome(&whole),
        "the outcome depends on the frames"
    );

    if let Ok(request) = &chunked {
        assert_eq!(request.forwarded, input.body, "forwarded bytes differ");
        assert_eq!(request.trailers, trailers, "trailers lost or invented");
        assert!(request.message.len() <= input.limit);
    }
    if let Some(expected) = predict(input.body, input.limit) {
        match (&expected, &chunked) {
            (Expected::Ok(message), Ok(request)) => {
                assert!(!request.compressed);
                assert_eq!(&request.message, message);
            }
            (Expected::TooLarge(size), Err(RouterError::MessageTooLarge { size: got, limit })) => {
                assert_eq!(size, got);
                assert_eq!(*limit, input.limit);
            }
            (Expected::Truncated, Err(RouterError::Truncated(_)))
            | (Expected::Malformed, Err(RouterError::Malformed(_))) => {}
            (expected, got) => panic!("expected {expected:?}, got {:?}", outcome(got)),
        }
    }
});

/// The outcome as text, to compare two of them.
fn outcome(result: &Result<Request, RouterError>) -> String {
    match result {
        Ok(request) => format!("{request:?}"),
        Err(error) => format!("error: {error}"),
    }
}

#[derive(Debug)]
enum Expected {
    /// Success, with this first message.
    Ok(Vec<u8>),
    /// A message announcing this many bytes is refused.
    TooLarge(u64),
    Truncated,
    Malformed,
}

/// What reading `body` must give, by a plain walk over its length prefixes; `None` when the
/// first message is compressed (its outcome depends on inflating it).
fn predict(body: &[u8], limit: usize) -> Option<Expected> {
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    let header = match wire::frame_header(body) {
        Err(_) => return Some(Expected::Malformed),
        Ok(None) => return Some(Expected::Truncated),
        Ok(Some(header)) => header,
    };
    if u64::from(header.len) > limit {
        return Some(Expected::TooLarge(u64::from(header.len)));
    }
    let end = GRPC_HEADER_LEN + header.len as usize;
    let Some(message) = body.get(GRPC_HEADER_LEN..end) else {
        return Some(Expected::Truncated);
    };
    if header.compressed {
        return None;
    }
    // Later messages: only complete prefixes count; the flag byte is the backend's to judge.
    let mut at = end;
    while let Some(prefix) = body.get(at..at + GRPC_HEADER_LEN) {
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
        if u64::from(len) > limit {
            return Some(Expected::TooLarge(u64::from(len)));
        }
        at += GRPC_HEADER_LEN + len as usize;
    }
    Some(Expected::Ok(message.to_vec()))
}
