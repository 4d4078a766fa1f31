//! Fuzzes the readers a router runs on untrusted request bytes: `read_request_fields` for every
//! method, `read_server_side_session_id`, the field iterator and the gRPC length prefix.
//!
//! Beyond "never panics", every routing field read must agree with what prost decodes from the
//! same bytes, whenever prost accepts them.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::{Expected, borrowed_from, decode_with_prost, methods};
use libfuzzer_sys::fuzz_target;
use sc_proto::wire::{self, GRPC_HEADER_LEN, WireError};

fuzz_target!(|data: &[u8]| {
    check_fields_iterator(data);
    check_frame_header(data);
    // The body after a gRPC prefix, as the router sees it.
    let bodies = [Some(data), data.get(GRPC_HEADER_LEN..)];
    for message in bodies.into_iter().flatten() {
        for method in methods() {
            check_request(method, message);
            if let Ok(Some(ssid)) = wire::read_server_side_session_id(method, message) {
                assert!(!ssid.is_empty());
                assert!(borrowed_from(ssid, message));
            }
        }
    }
});

fn check_request(method: sc_proto::RpcMethod, message: &[u8]) {
    let ours = wire::read_request_fields(method, message);
    if let Ok(fields) = &ours {
        for s in [
            fields.session_id,
            fields.user_id,
            fields.user_name,
            fields.operation_id,
            fields.new_session_id,
        ]
        .into_iter()
        .flatten()
        {
            assert!(!s.is_empty(), "empty strings are reported as None");
            assert!(borrowed_from(s, message), "strings borrow from the input");
        }
    }
    let Some(expected) = decode_with_prost(method, message) else {
        return;
    };
    match ours {
        Ok(fields) => {
            let mut read = Expected::of(&fields);
            // Which oneof member prost kept is not a reader output; the fields are.
            read.other_variant = expected.other_variant;
            assert_eq!(
                read, expected,
                "{method}: the routing fields differ from prost's decoding"
            );
        }
        // prost skips deprecated groups in unknown fields; the readers refuse them.
        Err(WireError::BadWireType {
            wire_type: 3 | 4, ..
        }) => {}
        Err(e) => panic!("{method}: prost decodes the message but the reader fails: {e}"),
    }
}

fn check_fields_iterator(data: &[u8]) {
    let mut consumed_error = false;
    let mut count = 0usize;
    for item in wire::fields(data) {
        assert!(!consumed_error, "the iterator stops after its first error");
        count += 1;
        match item {
            Ok((field, _)) => assert_ne!(field, 0),
            Err(_) => consumed_error = true,
        }
    }
    // Every field takes at least two bytes (tag and value); an error ends the iteration.
    assert!(count <= data.len() / 2 + 1);
}

fn check_frame_header(data: &[u8]) {
    match wire::frame_header(data) {
        Ok(None) => assert!(data.len() < GRPC_HEADER_LEN),
        Ok(Some(header)) => {
            assert!(data[0] <= 1);
            assert_eq!(header.compressed, data[0] == 1);
            assert_eq!(
                header.len,
                u32::from_be_bytes([data[1], data[2], data[3], data[4]])
            );
            if !header.compressed {
                assert_eq!(
                    wire::encode_frame_header(header.len)[..],
                    data[..GRPC_HEADER_LEN]
                );
            }
        }
        Err(WireError::BadCompressionFlag(flag)) => assert_eq!(flag, data[0]),
        Err(e) => panic!("frame_header failed with an unexpected error: {e}"),
    }
}
