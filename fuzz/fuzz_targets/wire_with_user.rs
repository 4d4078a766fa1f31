//! Fuzzes `sc_proto::wire::with_user`, which rewrites `user_context` in a client's request when
//! the proxy vouches for the caller's identity.
//!
//! Input layout: one byte for the length of `user_id`, one for `user_name` (each modulo 64),
//! those bytes (made UTF-8 lossily), then the request message. Properties:
//! * it never panics;
//! * when it returns `Ok`, the output reads back (for every method whose reader accepted the
//!   input) with the given user and every other routing field unchanged;
//! * it never makes a readable message unreadable, and applying it twice changes nothing;
//! * when prost decodes the input, it decodes the output to the same message with only
//!   `user_id` and `user_name` replaced.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::{Expected, methods};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use sc_proto::spark::connect as pb;
use sc_proto::wire;

fuzz_target!(|data: &[u8]| {
    let Some((user_id, user_name, message)) = split(data) else {
        return;
    };
    let Ok(out) = wire::with_user(message, &user_id, &user_name) else {
        return;
    };
    let given = |s: &str| (!s.is_empty()).then(|| s.to_owned());

    for method in methods() {
        let Ok(before) = wire::read_request_fields(method, message) else {
            continue;
        };
        let after = match wire::read_request_fields(method, &out) {
            Ok(fields) => Expected::of(&fields),
            Err(e) => panic!("{method}: with_user made a readable message unreadable: {e}"),
        };
        let expected = Expected {
            user_id: given(&user_id),
            user_name: given(&user_name),
            ..Expected::of(&before)
        };
        assert_eq!(
            after, expected,
            "{method}: with_user changed more than the user"
        );
    }

    let again = wire::with_user(&out, &user_id, &user_name);
    assert_eq!(again.as_ref(), Ok(&out), "with_user is idempotent");

    // A generic request shape: ConfigRequest keeps extensions and unknown fields comparable.
    if let Ok(mut original) = pb::ConfigRequest::decode(message) {
        let rewritten = match pb::ConfigRequest::decode(out.as_slice()) {
            Ok(m) => m,
            Err(e) => panic!("prost decodes the input but not with_user's output: {e}"),
        };
        let ctx = original.user_context.get_or_insert_with(Default::default);
        ctx.user_id = user_id.clone();
        ctx.user_name = user_name.clone();
        assert_eq!(rewritten, original, "with_user changed more than the user");
    }
});

/// Splits the input into a user id, a user name and the request message (see the layout above).
fn split(data: &[u8]) -> Option<(String, String, &[u8])> {
    let (&id_len, rest) = data.split_first()?;
    let (&name_len, rest) = rest.split_first()?;
    let (id_len, name_len) = (usize::from(id_len % 64), usize::from(name_len % 64));
    if rest.len() < id_len + name_len {
        return None;
    }
    let (id, rest) = rest.split_at(id_len);
    let (name, message) = rest.split_at(name_len);
    Some((
        String::from_utf8_lossy(id).into_owned(),
        String::from_utf8_lossy(name).into_owned(),
        message,
    ))
}
