//! gRPC status mapping (feature `grpc`): rejections answered the way gRPC
//! clients (tonic, grpc-go…) understand them.
//!
//! gRPC clients expect HTTP 200 with a `grpc-status` header, not a bare 401
//! or 403. [`GrpcStatus`] is a responder producing a trailers-only gRPC
//! response:
//!
//! | rejection | `grpc-status` |
//! |---|---|
//! | missing / invalid / revoked / expired token, suspended owner | 16 `UNAUTHENTICATED` |
//! | missing scope, plain HTTP, address not allowed | 7 `PERMISSION_DENIED` |
//! | request budget spent, too many failed attempts | 8 `RESOURCE_EXHAUSTED` |
//! | store unavailable | 14 `UNAVAILABLE` |
//!
//! ```
//! # fn your_token_config() -> tower_pat::TokenConfig {
//! #     // Your API's token format and scopes, here `nvl_live_…` tokens.
//! #     tower_pat::TokenConfig::new(
//! #         tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).unwrap(),
//! #         tower_pat::ScopeCatalog::new()
//! #             .scope("products:read", "List products.")
//! #             .scope("orders:read", "Read orders.")
//! #             .scope("orders:write", "Create orders.")
//! #             .scope("wallet:read", "Read the wallet balance."),
//! #     )
//! # }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_pat::transport::TlsConnection;
//! use tower_pat::grpc::GrpcStatus;
//! use tower_pat::{AuthLayer, MemoryStore};
//!
//! // With tonic: Server::builder().layer(auth).add_service(...)
//! let auth = AuthLayer::builder(MemoryStore::new(), your_token_config()).responder(GrpcStatus).build();
//! let svc = auth.layer(service_fn(|_: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(()))
//! }));
//! let req = Request::post("/demo.Orders/List")
//!     .extension(TlsConnection) // set by the TLS listener
//!     .body(())
//!     .unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK); // gRPC errors travel in headers
//! assert_eq!(res.headers()["grpc-status"], "16"); // UNAUTHENTICATED
//! # }
//! ```

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::response::{Rejection, RejectionKind, Responder};

/// gRPC `UNAUTHENTICATED`.
pub(crate) const UNAUTHENTICATED: u16 = 16;
/// gRPC `PERMISSION_DENIED`.
pub(crate) const PERMISSION_DENIED: u16 = 7;
/// gRPC `RESOURCE_EXHAUSTED`.
pub(crate) const RESOURCE_EXHAUSTED: u16 = 8;
/// gRPC `UNAVAILABLE`.
pub(crate) const UNAVAILABLE: u16 = 14;

/// Responder for gRPC services: HTTP 200, `content-type: application/grpc`,
/// `grpc-status` and a percent-encoded `grpc-message`, empty body.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcStatus;

impl GrpcStatus {
    /// The gRPC status code this responder answers `rejection` with: 16
    /// `UNAUTHENTICATED`, 7 `PERMISSION_DENIED` (a missing scope, or plain
    /// HTTP) or 14 `UNAVAILABLE` (the store failed).
    pub fn code(rejection: &Rejection) -> u16 {
        match rejection.kind() {
            RejectionKind::InsufficientScope
            | RejectionKind::InsecureTransport
            | RejectionKind::AddressNotAllowed
            | RejectionKind::AddressUnknown => PERMISSION_DENIED,
            RejectionKind::RateLimited | RejectionKind::TooManyFailures => RESOURCE_EXHAUSTED,
            RejectionKind::StoreUnavailable(_) => UNAVAILABLE,
            _ => UNAUTHENTICATED,
        }
    }
}

impl<B: Default> Responder<B> for GrpcStatus {
    fn respond(&self, rejection: &Rejection) -> Response<B> {
        let mut res = Response::new(B::default());
        *res.status_mut() = StatusCode::OK;
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert(
            "grpc-status",
            HeaderValue::from(GrpcStatus::code(rejection)),
        );
        let message = percent_encode(&rejection.problem().detail);
        if let Ok(v) = HeaderValue::from_str(&message) {
            h.insert("grpc-message", v);
        }
        if let Some(v) = rejection.www_authenticate() {
            h.insert(WWW_AUTHENTICATE, v);
        }
        rejection.add_limit_headers(h);
        res
    }
}

/// gRPC's `Percent-Encoded` form of `grpc-message`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(super::percent_encode("a%b é"), "a%25b %C3%A9");
    }
}
