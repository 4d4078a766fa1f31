//! Shared by the fuzz targets: the routing fields as `prost` decodes them, used as an oracle for
//! the byte-level readers in `sc_proto::wire`.

#![allow(dead_code)]

use prost::Message;
use sc_proto::RpcMethod;
use sc_proto::spark::connect as pb;

/// Every method the readers know, plus `Other` (a method of a newer client).
pub fn methods() -> impl Iterator<Item = RpcMethod> {
    RpcMethod::ALL.into_iter().chain([RpcMethod::Other])
}

/// The routing fields of a request, owned, as a full protobuf decoder sees them.
#[derive(Debug, PartialEq, Eq)]
pub struct Expected {
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub operation_id: Option<String>,
    pub new_session_id: Option<String>,
    pub release_all: bool,
    /// Interrupt's or ReleaseExecute's oneof holds the variant the readers do not read
    /// (`operation_tag`, `release_until`), which prost keeps when it comes last.
    pub other_variant: bool,
}

impl Expected {
    /// The same fields as read by `sc_proto::wire::read_request_fields`.
    pub fn of(fields: &sc_proto::wire::RequestFields<'_>) -> Expected {
        let own = |s: Option<&str>| s.map(str::to_owned);
        Expected {
            session_id: own(fields.session_id),
            user_id: own(fields.user_id),
            user_name: own(fields.user_name),
            operation_id: own(fields.operation_id),
            new_session_id: own(fields.new_session_id),
            release_all: fields.release_all,
            other_variant: false,
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn base(session_id: &str, ctx: &Option<pb::UserContext>) -> Expected {
    Expected {
        session_id: non_empty(session_id),
        user_id: ctx.as_ref().and_then(|c| non_empty(&c.user_id)),
        user_name: ctx.as_ref().and_then(|c| non_empty(&c.user_name)),
        operation_id: None,
        new_session_id: None,
        release_all: false,
        other_variant: false,
    }
}

/// Decodes `data` as the request message of `method` with prost; `None` for `Other` or when
/// prost refuses the bytes.
pub fn decode_with_prost(method: RpcMethod, data: &[u8]) -> Option<Expected> {
    Some(match method {
        RpcMethod::ExecutePlan => {
            let m = pb::ExecutePlanRequest::decode(data).ok()?;
            Expected {
                operation_id: m.operation_id.as_deref().and_then(non_empty),
                ..base(&m.session_id, &m.user_context)
            }
        }
        RpcMethod::AnalyzePlan => {
            let m = pb::AnalyzePlanRequest::decode(data).ok()?;
            base(&m.session_id, &m.user_context)
        }
        RpcMethod::Config => {
            let m = pb::ConfigRequest::decode(data).ok()?;
            base(&m.session_id, &m.user_context)
        }
        RpcMethod::AddArtifacts => {
            let m = pb::AddArtifactsRequest::decode(data).ok()?;
            base(&m.session_id, &m.user_context)
        }
        RpcMethod::ArtifactStatus => {
            let m = pb::ArtifactStatusesRequest::decode(data).ok()?;
            base(&m.session_id, &m.user_context)
        }
        RpcMethod::Interrupt => {
            let m = pb::InterruptRequest::decode(data).ok()?;
            let operation_id = match &m.interrupt {
                Some(pb::interrupt_request::Interrupt::OperationId(id)) => non_empty(id),
                _ => None,
            };
            Expected {
                operation_id,
                other_variant: matches!(
                    m.interrupt,
                    Some(pb::interrupt_request::Interrupt::OperationTag(_))
                ),
                ..base(&m.session_id, &m.user_context)
            }
        }
        RpcMethod::ReattachExecute => {
            let m = pb::ReattachExecuteRequest::decode(data).ok()?;
            Expected {
                operation_id: non_empty(&m.operation_id),
                ..base(&m.session_id, &m.user_context)
            }
        }
        RpcMethod::ReleaseExecute => {
            let m = pb::ReleaseExecuteRequest::decode(data).ok()?;
            Expected {
                operation_id: non_empty(&m.operation_id),
                release_all: matches!(
                    m.release,
                    Some(pb::release_execute_request::Release::ReleaseAll(_))
                ),
                other_variant: matches!(
                    m.release,
                    Some(pb::release_execute_request::Release::ReleaseUntil(_))
                ),
                ..base(&m.session_id, &m.user_context)
            }
        }
        RpcMethod::ReleaseSession => {
            let m = pb::ReleaseSessionRequest::decode(data).ok()?;
            base(&m.session_id, &m.user_context)
        }
        RpcMethod::FetchErrorDetails => {
            let m = pb::FetchErrorDetailsRequest::decode(data).ok()?;
            base(&m.session_id, &m.user_context)
        }
        RpcMethod::CloneSession => {
            let m = pb::CloneSessionRequest::decode(data).ok()?;
            Expected {
                new_session_id: m.new_session_id.as_deref().and_then(non_empty),
                ..base(&m.session_id, &m.user_context)
            }
        }
        RpcMethod::GetStatus => {
            let m = pb::GetStatusRequest::decode(data).ok()?;
            base(&m.session_id, &m.user_context)
        }
        RpcMethod::Other => return None,
    })
}

/// Whether `inner` is a sub-slice of `outer` (the readers borrow, never copy).
pub fn borrowed_from(inner: &str, outer: &[u8]) -> bool {
    let start = outer.as_ptr() as usize;
    let p = inner.as_ptr() as usize;
    p >= start && p + inner.len() <= start + outer.len()
}

/// A body cut into frames, read from a fuzz input laid out as: one byte of flags, one byte
/// choosing a size limit, one byte `n`, `n` frame lengths (one byte each), then the body. The
/// body is cut into frames of those lengths in turn (0 makes an empty frame); what is left after
/// the last one is the last frame.
pub struct Chunked<'a> {
    pub flags: u8,
    /// 16 to 4080 bytes, or `usize::MAX` (no limit) when the byte is 0.
    pub limit: usize,
    pub body: &'a [u8],
    pub chunks: Vec<&'a [u8]>,
}

impl<'a> Chunked<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&flags, rest) = data.split_first()?;
        let (&limit, rest) = rest.split_first()?;
        let (&n, rest) = rest.split_first()?;
        let lengths = rest.get(..usize::from(n))?;
        let body = rest.get(usize::from(n)..)?;
        let mut chunks = Vec::with_capacity(lengths.len() + 1);
        let mut left = body;
        for &len in lengths {
            let (chunk, after) = left.split_at(usize::from(len).min(left.len()));
            chunks.push(chunk);
            left = after;
        }
        chunks.push(left);
        Some(Chunked {
            flags,
            limit: match limit {
                0 => usize::MAX,
                l => usize::from(l) * 16,
            },
            body,
            chunks,
        })
    }
}
