//! Byte-level readers for the routing fields of Spark Connect messages, and gRPC framing.
//!
//! A router needs a handful of fields (`session_id`, `user_context.user_id`, an operation id)
//! out of a request that may carry a large plan. These readers walk the top-level fields of the
//! encoded message, skip every length-delimited payload they do not need in O(1), descend only into
//! `user_context`, and borrow the strings from the input: no allocation, no decoding of the rest.
//!
//! Malformed input (truncated varints or payloads, bad wire types, field number 0, invalid UTF-8 in
//! a string the reader needs) yields a [`WireError`]; nothing here panics on any input.

use crate::RpcMethod;

/// Length of the gRPC message prefix: one compression-flag byte and a big-endian `u32` length.
pub const GRPC_HEADER_LEN: usize = 5;

/// What went wrong while reading protobuf or gRPC framing bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ended inside a field.
    #[error("protobuf message is truncated (field {field} runs past the end of the message)")]
    Truncated {
        /// The field being read when the input ended (0 when inside a tag).
        field: u32,
    },
    /// A varint was longer than ten bytes.
    #[error("protobuf message has a malformed varint")]
    BadVarint,
    /// A tag used a wire type that does not exist or is deprecated (groups).
    #[error("protobuf field {field} uses unsupported wire type {wire_type}")]
    BadWireType {
        /// The field number of the offending tag.
        field: u32,
        /// The wire type found.
        wire_type: u8,
    },
    /// A tag carried field number 0, which protobuf forbids.
    #[error("protobuf message has a field number of 0")]
    ZeroField,
    /// A field the router needs is a string whose bytes are not UTF-8.
    #[error("protobuf string field {field} is not valid UTF-8")]
    BadUtf8 {
        /// The field number of the string.
        field: u32,
    },
    /// A field the router needs has the wrong wire type (e.g. a number where a string belongs).
    #[error(
        "protobuf field {field} has wire type {wire_type} where a length-delimited value belongs"
    )]
    UnexpectedType {
        /// The field number.
        field: u32,
        /// The wire type found.
        wire_type: u8,
    },
    /// The gRPC compression flag held a value other than 0 or 1.
    #[error("gRPC message has an invalid compression flag {0}")]
    BadCompressionFlag(u8),
}

/// One top-level field of an encoded message, with its payload borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: the payload bytes.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl FieldValue<'_> {
    const fn wire_type(&self) -> u8 {
        match self {
            FieldValue::Varint(_) => 0,
            FieldValue::Fixed64(_) => 1,
            FieldValue::Bytes(_) => 2,
            FieldValue::Fixed32(_) => 5,
        }
    }
}

/// An iterator over the top-level fields of an encoded protobuf message.
///
/// Yields `(field_number, value)` pairs in the order they appear; after the first error it yields
/// that error and then stops.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// Iterates over the top-level fields of `message` without decoding nested messages.
pub fn fields(message: &[u8]) -> Fields<'_> {
    Fields {
        rest: message,
        failed: false,
    }
}

fn read_varint(buf: &mut &[u8]) -> Result<u64, WireError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let Some((&byte, tail)) = buf.split_first() else {
            return Err(WireError::Truncated { field: 0 });
        };
        *buf = tail;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::BadVarint)
}

fn take<'a>(buf: &mut &'a [u8], len: usize, field: u32) -> Result<&'a [u8], WireError> {
    if buf.len() < len {
        return Err(WireError::Truncated { field });
    }
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Ok(head)
}

impl<'a> Fields<'a> {
    fn next_field(&mut self) -> Result<(u32, FieldValue<'a>), WireError> {
        let tag = read_varint(&mut self.rest)?;
        let field = u32::try_from(tag >> 3).map_err(|_| WireError::BadVarint)?;
        let wire_type = (tag & 0x7) as u8;
        if field == 0 {
            return Err(WireError::ZeroField);
        }
        let value = match wire_type {
            0 => FieldValue::Varint(read_varint(&mut self.rest).map_err(|e| with_field(e, field))?),
            1 => {
                let b = take(&mut self.rest, 8, field)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                FieldValue::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let len = read_varint(&mut self.rest).map_err(|e| with_field(e, field))?;
                let len = usize::try_from(len).map_err(|_| WireError::Truncated { field })?;
                FieldValue::Bytes(take(&mut self.rest, len, field)?)
            }
            5 => {
                let b = take(&mut self.rest, 4, field)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                FieldValue::Fixed32(u32::from_le_bytes(a))
            }
            other => {
                return Err(WireError::BadWireType {
                    field,
                    wire_type: other,
                });
            }
        };
        Ok((field, value))
    }
}

fn with_field(e: WireError, field: u32) -> WireError {
    match e {
        WireError::Truncated { .. } => WireError::Truncated { field },
        other => other,
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, FieldValue<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let item = self.next_field();
        self.failed = item.is_err();
        Some(item)
    }
}

fn as_str(field: u32, value: FieldValue<'_>) -> Result<&str, WireError> {
    match value {
        FieldValue::Bytes(b) => std::str::from_utf8(b).map_err(|_| WireError::BadUtf8 { field }),
        other => Err(WireError::UnexpectedType {
            field,
            wire_type: other.wire_type(),
        }),
    }
}

/// The routing fields of one Spark Connect request message, borrowed from its bytes.
///
/// Empty strings are reported as `None`: proto3 does not tell an empty string from an absent one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestFields<'a> {
    /// Field 1 of every request: the client's session id (a UUID string).
    pub session_id: Option<&'a str>,
    /// `user_context.user_id` (field 2, then 1).
    pub user_id: Option<&'a str>,
    /// `user_context.user_name` (field 2, then 2).
    pub user_name: Option<&'a str>,
    /// The operation id, for ExecutePlan, Interrupt, ReattachExecute and ReleaseExecute.
    pub operation_id: Option<&'a str>,
    /// CloneSession's `new_session_id`.
    pub new_session_id: Option<&'a str>,
    /// ReleaseExecute's `release_all` (field 5) is set: the operation is finished with.
    pub release_all: bool,
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Reads the routing fields of a request message of `method` from its encoded bytes.
///
/// Only the top level and `user_context` are walked; a field that occurs twice takes its last value,
/// as protobuf prescribes for singular fields.
pub fn read_request_fields(
    method: RpcMethod,
    message: &[u8],
) -> Result<RequestFields<'_>, WireError> {
    let op_field = method.operation_id_field();
    let new_session_field = method.new_session_id_field();
    let mut out = RequestFields::default();
    for item in fields(message) {
        let (field, value) = item?;
        match field {
            1 => out.session_id = non_empty(as_str(1, value)?),
            2 => {
                let FieldValue::Bytes(ctx) = value else {
                    return Err(WireError::UnexpectedType {
                        field,
                        wire_type: value.wire_type(),
                    });
                };
                for inner in fields(ctx) {
                    match inner? {
                        (1, v) => out.user_id = non_empty(as_str(1, v)?),
                        (2, v) => out.user_name = non_empty(as_str(2, v)?),
                        _ => {}
                    }
                }
            }
            f if Some(f) == op_field => out.operation_id = non_empty(as_str(f, value)?),
            f if Some(f) == new_session_field => out.new_session_id = non_empty(as_str(f, value)?),
            // Oneofs: the member that comes last wins.
            5 if method == RpcMethod::Interrupt => out.operation_id = None,
            5 if method == RpcMethod::ReleaseExecute => out.release_all = true,
            6 if method == RpcMethod::ReleaseExecute => out.release_all = false,
            _ => {}
        }
    }
    Ok(out)
}

/// Reads a string field at the top level of a message; `None` when absent or empty.
pub fn read_string_field(message: &[u8], wanted: u32) -> Result<Option<&str>, WireError> {
    let mut found = None;
    for item in fields(message) {
        let (field, value) = item?;
        if field == wanted {
            found = non_empty(as_str(field, value)?);
        }
    }
    Ok(found)
}

/// Reads `server_side_session_id` from an encoded response message of `method`.
pub fn read_server_side_session_id(
    method: RpcMethod,
    message: &[u8],
) -> Result<Option<&str>, WireError> {
    match method.response_server_side_session_id_field() {
        Some(field) => read_string_field(message, field),
        None => Ok(None),
    }
}

/// Re-encodes a request message with `user_context.user_id` and `user_name` replaced.
///
/// Every other top-level field is copied byte for byte, in its place; the other fields of
/// `user_context` (its extensions) are kept. When the message has no `user_context`, one is
/// inserted after `session_id`. Used when the proxy vouches for the caller's identity.
pub fn with_user(message: &[u8], user_id: &str, user_name: &str) -> Result<Vec<u8>, WireError> {
    // A message field that occurs more than once is merged, as protobuf does: the new context
    // keeps the other fields of every occurrence.
    let mut contexts = Vec::new();
    for item in fields(message) {
        if let (2, FieldValue::Bytes(ctx)) = item? {
            contexts.extend_from_slice(ctx);
        }
    }
    let mut out = Vec::with_capacity(message.len() + user_id.len() + user_name.len() + 8);
    let mut rest = message;
    let mut written = false;
    while !rest.is_empty() {
        let before = rest;
        let mut one = fields(rest);
        let (field, value) = match one.next() {
            Some(item) => item?,
            None => break,
        };
        rest = one.rest;
        let raw = &before[..before.len() - rest.len()];
        match (field, value) {
            (2, FieldValue::Bytes(_)) => {
                if !written {
                    write_user_context(&mut out, &contexts, user_id, user_name)?;
                    written = true;
                }
            }
            (2, other) => {
                return Err(WireError::UnexpectedType {
                    field: 2,
                    wire_type: other.wire_type(),
                });
            }
            _ => {
                if !written && field > 2 {
                    write_user_context(&mut out, &[], user_id, user_name)?;
                    written = true;
                }
                out.extend_from_slice(raw);
            }
        }
    }
    if !written {
        write_user_context(&mut out, &[], user_id, user_name)?;
    }
    Ok(out)
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn write_string(out: &mut Vec<u8>, field: u32, s: &str) {
    write_varint(out, (u64::from(field) << 3) | 2);
    write_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn write_user_context(
    out: &mut Vec<u8>,
    old: &[u8],
    user_id: &str,
    user_name: &str,
) -> Result<(), WireError> {
    let mut ctx = Vec::with_capacity(old.len() + user_id.len() + user_name.len() + 4);
    write_string(&mut ctx, 1, user_id);
    write_string(&mut ctx, 2, user_name);
    let mut rest = old;
    while !rest.is_empty() {
        let before = rest;
        let mut one = fields(rest);
        let (field, _) = match one.next() {
            Some(item) => item?,
            None => break,
        };
        rest = one.rest;
        if field != 1 && field != 2 {
            ctx.extend_from_slice(&before[..before.len() - rest.len()]);
        }
    }
    write_varint(out, (2 << 3) | 2);
    write_varint(out, ctx.len() as u64);
    out.extend_from_slice(&ctx);
    Ok(())
}

/// A parsed gRPC length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The message is compressed with the call's `grpc-encoding`.
    pub compressed: bool,
    /// Length of the message that follows the prefix.
    pub len: u32,
}

/// Parses the 5-byte gRPC length prefix at the start of `buf`, or `Ok(None)` if fewer than 5 bytes
/// are available yet.
pub fn frame_header(buf: &[u8]) -> Result<Option<FrameHeader>, WireError> {
    let Some(head) = buf.get(..GRPC_HEADER_LEN) else {
        return Ok(None);
    };
    let compressed = match head[0] {
        0 => false,
        1 => true,
        other => return Err(WireError::BadCompressionFlag(other)),
    };
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    Ok(Some(FrameHeader { compressed, len }))
}

/// Writes the gRPC length prefix for an uncompressed message of `len` bytes.
pub fn encode_frame_header(len: u32) -> [u8; GRPC_HEADER_LEN] {
    let l = len.to_be_bytes();
    [0, l[0], l[1], l[2], l[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spark::connect as pb;
    use prost::Message;

    fn ctx(user: &str) -> Option<pb::UserContext> {
        Some(pb::UserContext {
            user_id: user.into(),
            user_name: format!("{user}-name"),
            extensions: vec![],
        })
    }

    #[test]
    fn reads_execute_plan_fields_past_a_large_plan() {
        let req = pb::ExecutePlanRequest {
            session_id: "s-1".into(),
            user_context: ctx("alice"),
            operation_id: Some("op-9".into()),
            plan: Some(pb::Plan {
                op_type: Some(pb::plan::OpType::Root(pb::Relation {
                    common: None,
                    rel_type: Some(pb::relation::RelType::Sql(pb::Sql {
                        query: "select 1".repeat(100_000),
                        ..Default::default()
                    })),
                })),
            }),
            tags: vec!["t".into()],
            ..Default::default()
        };
        let bytes = req.encode_to_vec();
        let f = read_request_fields(RpcMethod::ExecutePlan, &bytes).unwrap();
        assert_eq!(f.session_id, Some("s-1"));
        assert_eq!(f.user_id, Some("alice"));
        assert_eq!(f.user_name, Some("alice-name"));
        assert_eq!(f.operation_id, Some("op-9"));
        assert_eq!(f.new_session_id, None);
    }

    #[test]
    fn reads_operation_ids_of_every_operation_method() {
        let reattach = pb::ReattachExecuteRequest {
            session_id: "s".into(),
            user_context: ctx("u"),
            operation_id: "op-r".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let f = read_request_fields(RpcMethod::ReattachExecute, &reattach).unwrap();
        assert_eq!(f.operation_id, Some("op-r"));

        let release = pb::ReleaseExecuteRequest {
            session_id: "s".into(),
            user_context: ctx("u"),
            operation_id: "op-x".into(),
            release: Some(pb::release_execute_request::Release::ReleaseAll(
                pb::release_execute_request::ReleaseAll {},
            )),
            ..Default::default()
        }
        .encode_to_vec();
        let f = read_request_fields(RpcMethod::ReleaseExecute, &release).unwrap();
        assert_eq!(f.operation_id, Some("op-x"));
        assert!(f.release_all);

        let interrupt = pb::InterruptRequest {
            session_id: "s".into(),
            user_context: ctx("u"),
            interrupt_type: pb::interrupt_request::InterruptType::OperationId as i32,
            interrupt: Some(pb::interrupt_request::Interrupt::OperationId("op-i".into())),
            ..Default::default()
        }
        .encode_to_vec();
        let f = read_request_fields(RpcMethod::Interrupt, &interrupt).unwrap();
        assert_eq!(f.operation_id, Some("op-i"));

        let by_tag = pb::InterruptRequest {
            session_id: "s".into(),
            interrupt: Some(pb::interrupt_request::Interrupt::OperationTag("tag".into())),
            ..Default::default()
        }
        .encode_to_vec();
        let f = read_request_fields(RpcMethod::Interrupt, &by_tag).unwrap();
        assert_eq!(f.operation_id, None);
        assert_eq!(f.user_id, None);
    }

    #[test]
    fn reads_clone_session_new_id() {
        let req = pb::CloneSessionRequest {
            session_id: "old".into(),
            user_context: ctx("bob"),
            new_session_id: Some("new".into()),
            ..Default::default()
        }
        .encode_to_vec();
        let f = read_request_fields(RpcMethod::CloneSession, &req).unwrap();
        assert_eq!((f.session_id, f.new_session_id), (Some("old"), Some("new")));
    }

    #[test]
    fn reads_server_side_session_id_of_every_response() {
        let ssid = "server-42".to_string();
        let cases: Vec<(RpcMethod, Vec<u8>)> = vec![
            (
                RpcMethod::ExecutePlan,
                pb::ExecutePlanResponse {
                    server_side_session_id: ssid.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                RpcMethod::AnalyzePlan,
                pb::AnalyzePlanResponse {
                    server_side_session_id: ssid.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                RpcMethod::Config,
                pb::ConfigResponse {
                    server_side_session_id: ssid.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                RpcMethod::AddArtifacts,
                pb::AddArtifactsResponse {
                    server_side_session_id: ssid.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                RpcMethod::ArtifactStatus,
                pb::ArtifactStatusesResponse {
                    server_side_session_id: ssid.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                RpcMethod::Interrupt,
                pb::InterruptResponse {
                    server_side_session_id: ssid.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                RpcMethod::ReleaseExecute,
                pb::ReleaseExecuteResponse {
                    server_side_session_id: ssid.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                RpcMethod::ReleaseSession,
                pb::ReleaseSessionResponse {
                    server_side_session_id: ssid.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                RpcMethod::FetchErrorDetails,
                pb::FetchErrorDetailsResponse {
                    server_side_session_id: ssid.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                RpcMethod::CloneSession,
                pb::CloneSessionResponse {
                    server_side_session_id: ssid.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            (
                RpcMethod::GetStatus,
                pb::GetStatusResponse {
                    server_side_session_id: ssid.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
        ];
        for (method, bytes) in cases {
            assert_eq!(
                read_server_side_session_id(method, &bytes).unwrap(),
                Some(ssid.as_str()),
                "{method}"
            );
        }
    }

    #[test]
    fn every_truncation_of_a_request_is_an_error_or_a_prefix_read() {
        let bytes = pb::ExecutePlanRequest {
            session_id: "session".into(),
            user_context: ctx("user"),
            operation_id: Some("op".into()),
            ..Default::default()
        }
        .encode_to_vec();
        for cut in 0..bytes.len() {
            // Must never panic; a cut inside a field is reported as truncation.
            let _ = read_request_fields(RpcMethod::ExecutePlan, &bytes[..cut]);
        }
        assert!(matches!(
            read_request_fields(RpcMethod::ExecutePlan, &bytes[..bytes.len() - 1]),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn malformed_input_is_rejected() {
        // Field 0.
        assert_eq!(
            read_request_fields(RpcMethod::Config, &[0x00, 0x01]),
            Err(WireError::ZeroField)
        );
        // Group wire type (3).
        assert!(matches!(
            read_request_fields(RpcMethod::Config, &[0x0b]),
            Err(WireError::BadWireType {
                field: 1,
                wire_type: 3
            })
        ));
        // Eleven-byte varint.
        assert_eq!(
            read_request_fields(
                RpcMethod::Config,
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
                ]
            ),
            Err(WireError::BadVarint)
        );
        // Length past the end.
        assert_eq!(
            read_request_fields(RpcMethod::Config, &[0x0a, 0x05, b'a']),
            Err(WireError::Truncated { field: 1 })
        );
        // Session id that is not UTF-8.
        assert_eq!(
            read_request_fields(RpcMethod::Config, &[0x0a, 0x02, 0xff, 0xfe]),
            Err(WireError::BadUtf8 { field: 1 })
        );
        // Session id as a varint.
        assert!(matches!(
            read_request_fields(RpcMethod::Config, &[0x08, 0x01]),
            Err(WireError::UnexpectedType { field: 1, .. })
        ));
        // Huge length varint.
        assert!(
            read_request_fields(RpcMethod::Config, &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err()
        );
        // Empty message: nothing set, not an error.
        assert_eq!(
            read_request_fields(RpcMethod::Config, &[]),
            Ok(RequestFields::default())
        );
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut bytes = vec![0x0a, 0x01, b's'];
        bytes.extend_from_slice(&[0xf8, 0x3e, 0x07]); // field 999 varint
        bytes.extend_from_slice(&[0x11, 1, 2, 3, 4, 5, 6, 7, 8]); // field 2? no: field 2 fixed64 is invalid for ctx
        let f = read_request_fields(RpcMethod::Config, &bytes[..6]).unwrap();
        assert_eq!(f.session_id, Some("s"));
        assert!(read_request_fields(RpcMethod::Config, &bytes).is_err());
    }

    #[test]
    fn user_context_is_rewritten_and_everything_else_kept() {
        let req = pb::ExecutePlanRequest {
            session_id: "s".into(),
            user_context: Some(pb::UserContext {
                user_id: "alice".into(),
                user_name: "Alice".into(),
                extensions: vec![prost_types::Any {
                    type_url: "x".into(),
                    value: vec![1, 2],
                }],
            }),
            operation_id: Some("op".into()),
            tags: vec!["a".into(), "b".into()],
            plan: Some(pb::Plan::default()),
            ..Default::default()
        };
        let out = with_user(&req.encode_to_vec(), "bob", "bob").unwrap();
        let back = pb::ExecutePlanRequest::decode(out.as_slice()).unwrap();
        let mut want = req.clone();
        want.user_context = Some(pb::UserContext {
            user_id: "bob".into(),
            user_name: "bob".into(),
            extensions: req.user_context.as_ref().unwrap().extensions.clone(),
        });
        assert_eq!(back, want);

        // Without a user context one is added.
        let bare = pb::ConfigRequest {
            session_id: "s".into(),
            ..Default::default()
        };
        let out = with_user(&bare.encode_to_vec(), "carol", "carol").unwrap();
        let back = pb::ConfigRequest::decode(out.as_slice()).unwrap();
        assert_eq!(back.user_context.unwrap().user_id, "carol");
        assert_eq!(back.session_id, "s");
        assert!(with_user(&[0x0a, 0x09], "u", "u").is_err());
        assert_eq!(
            pb::ConfigRequest::decode(with_user(&[], "u", "u").unwrap().as_slice())
                .unwrap()
                .user_context
                .unwrap()
                .user_id,
            "u"
        );
    }

    #[test]
    fn oneof_members_that_come_last_win() {
        // Interrupt: operation_id (6) then operation_tag (5): the tag wins.
        let f = read_request_fields(RpcMethod::Interrupt, &[0x32, 0x01, b'a', 0x2a, 0x01, b'b'])
            .unwrap();
        assert_eq!(f.operation_id, None);
        let f = read_request_fields(RpcMethod::Interrupt, &[0x2a, 0x01, b'b', 0x32, 0x01, b'a'])
            .unwrap();
        assert_eq!(f.operation_id, Some("a"));
        // ReleaseExecute: release_all (5) then release_until (6).
        let f = read_request_fields(
            RpcMethod::ReleaseExecute,
            &[0x2a, 0x00, 0x32, 0x02, 0x0a, 0x00],
        )
        .unwrap();
        assert!(!f.release_all);
    }

    #[test]
    fn repeated_user_contexts_are_merged() {
        // Two user_context occurrences, the second carrying an extension (field 999).
        let msg = [
            0x12, 0x03, 0x0a, 0x01, b'a', 0x12, 0x07, 0xba, 0x3e, 0x04, 0x0a, 0x02, b'x', b'y',
        ];
        let out = with_user(&msg, "u", "u").unwrap();
        let back = pb::ConfigRequest::decode(out.as_slice()).unwrap();
        let ctx = back.user_context.unwrap();
        assert_eq!((ctx.user_id.as_str(), ctx.extensions.len()), ("u", 1));
    }

    #[test]
    fn frame_headers() {
        assert_eq!(frame_header(&[0, 0, 0]).unwrap(), None);
        assert_eq!(
            frame_header(&[0, 0, 0, 1, 2, 9]).unwrap(),
            Some(FrameHeader {
                compressed: false,
                len: 258
            })
        );
        assert_eq!(
            frame_header(&[1, 0, 0, 0, 0])
                .unwrap()
                .map(|h| h.compressed),
            Some(true)
        );
        assert_eq!(
            frame_header(&[7, 0, 0, 0, 0]),
            Err(WireError::BadCompressionFlag(7))
        );
        assert_eq!(encode_frame_header(258), [0, 0, 0, 1, 2]);
    }
}
