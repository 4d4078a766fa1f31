//! The control plane's OpenAPI 3.1 document, generated with `utoipa` from the handlers' own
//! types and `#[utoipa::path]` annotations, served at `GET /control/openapi.json`.
//!
//! Every error is documented with its JSON shape (the `ErrorBody` schema: `error`,
//! `code`) and the HTTP status each code comes with. With authentication on, the operations
//! that need it name the `bearer` security scheme (a client certificate works too, over TLS).

use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, OpenApi, RefOr, Schema, Type};
use utoipa::{OpenApi as _, ToResponse};

use crate::{ControlState, ErrorBody};

/// Where the document is served.
pub const PATH: &str = "/control/openapi.json";

/// The error codes (gRPC status names) errors carry, and the HTTP status each comes with.
pub const ERROR_CODES: [(&str, u16); 9] = [
    ("INVALID_ARGUMENT", 400),
    ("UNAUTHENTICATED", 401),
    ("PERMISSION_DENIED", 403),
    ("NOT_FOUND", 404),
    ("RESOURCE_EXHAUSTED", 429),
    ("INTERNAL", 500),
    ("UNIMPLEMENTED", 501),
    ("UNAVAILABLE", 503),
    ("FAILED_PRECONDITION", 400),
];

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Spark Connect proxy control plane",
        description = "Sessions, backends, health and metrics of the Spark Connect proxy. Errors are JSON objects `{\"error\", \"code\"}`: `error` says what went wrong and how to fix it, `code` is the gRPC status name matching the HTTP status.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "sessions", description = "Spark Connect sessions: created here, or bound from clients' own session ids"),
        (name = "backends", description = "The Spark Connect servers sessions are placed on"),
        (name = "proxy", description = "The proxy itself"),
        (name = "health", description = "Probes and metrics (no authentication)"),
    ),
    components(
        schemas(ErrorBody<'_>),
        responses(
            BadRequest,
            Unauthenticated,
            Forbidden,
            NotFound,
            PayloadTooLarge,
            TooManyRequests,
            Internal,
            NotImplemented,
            Unavailable
        )
    )
)]
struct ApiDoc;

/// The document before the routes are added: title, tags, the error schema.
pub(crate) fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// The schema of an error's `code`: one of [`ERROR_CODES`].
pub(crate) fn error_code() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "the gRPC status name: INVALID_ARGUMENT and FAILED_PRECONDITION (400), UNAUTHENTICATED (401), PERMISSION_DENIED (403), NOT_FOUND (404), RESOURCE_EXHAUSTED (413, 429), INTERNAL (500), UNIMPLEMENTED (501), UNAVAILABLE (503)",
        ))
        .enum_values(Some(ERROR_CODES.iter().map(|(code, _)| *code)))
        .build()
        .into()
}

/// Completes the document for this proxy: its version and, with authentication on, the
/// `bearer` scheme on every operation that needs it. (The engine profiles, which a reload may
/// change, are named per request by [`name_profiles`].)
pub(crate) fn finish(mut document: OpenApi, state: &ControlState) -> OpenApi {
    document.info.version = state.about.version.clone();
    if state.auth.is_none() {
        return document;
    }
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "a token of auth.tokens or a JWT; over TLS with auth.mtls, a client certificate instead",
                ))
                .build(),
        ),
    );
    let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            // The operations behind authentication are those that document its failure.
            if operation.responses.responses.contains_key("401") {
                operation.security = Some(vec![bearer.clone()]);
            }
        }
    }
    document
}

/// A session's `profile` is one of the provider's profiles, or none: a name the provider does
/// not have is refused (400), so the document says which names there are.
pub(crate) fn name_profiles(document: &mut OpenApi, profiles: &[String]) {
    let Some(RefOr::T(Schema::Object(request))) = document
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("CreateSession"))
    else {
        return;
    };
    let description = if profiles.is_empty() {
        "The engine profile to run the session on: this proxy's provider has none, so leave it out"
    } else {
        "The engine profile to run the session on, one of the provider's (its default when left out)"
    };
    let values = profiles
        .iter()
        .map(|name| serde_json::Value::String(name.clone()))
        .chain([serde_json::Value::Null]);
    let profile = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(description))
        .enum_values(Some(values))
        .build();
    request
        .properties
        .insert("profile".to_owned(), RefOr::T(Schema::Object(profile)));
}

/// An error response of the given description, with the error body.
macro_rules! error_response {
    ($name:ident, $description:literal) => {
        #[doc = $description]
        #[derive(ToResponse)]
        #[response(description = $description, content_type = "application/json")]
        #[allow(dead_code)]
        pub(crate) struct $name(ErrorBody<'static>);
    };
}

error_response!(
    BadRequest,
    "the request is not valid (INVALID_ARGUMENT, FAILED_PRECONDITION); the message names the problem"
);
error_response!(
    Unauthenticated,
    "authentication is on and the request carries no valid credentials (UNAUTHENTICATED)"
);
error_response!(
    Forbidden,
    "the caller may not do this, e.g. another user's session, or an admin's action (PERMISSION_DENIED)"
);
error_response!(NotFound, "no such session or backend (NOT_FOUND)");
error_response!(
    PayloadTooLarge,
    "the request body is larger than 64 KiB (RESOURCE_EXHAUSTED)"
);
error_response!(
    TooManyRequests,
    "a limit refused it, e.g. router.limits.max_sessions_per_user (RESOURCE_EXHAUSTED)"
);
error_response!(
    NotImplemented,
    "the proxy cannot do this as configured (UNIMPLEMENTED)"
);
error_response!(
    Internal,
    "the proxy is misconfigured for this, e.g. a provider that cannot start engines (INTERNAL)"
);
error_response!(
    Unavailable,
    "no backend can take the session now, or the session store is unreachable (UNAVAILABLE)"
);
