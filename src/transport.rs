//! HTTPS policy: deciding whether a request arrived over TLS.
//!
//! By default the auth layer refuses — never redirects — any request not
//! known to have arrived over TLS, before it looks at the token. A request
//! is known to be secure when:
//!
//! 1. its URI scheme is `https` (HTTP/2 `:scheme`, absolute-form requests), or
//! 2. it carries the [`TlsConnection`] extension, which your TLS-serving code
//!    inserts (see below), or
//! 3. it came from a configured trusted proxy (its [`PeerAddr`], or axum's
//!    `ConnectInfo<SocketAddr>` with the `axum` feature) whose
//!    `Forwarded: proto=https` or `X-Forwarded-Proto: https` says so. The
//!    headers are ignored from anyone else, so a client cannot spoof them.
//!
//! Under axum, mark the router you serve on the TLS listener; the same router
//! served without the marker refuses the request:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use axum::{body::Body, routing::get, Extension, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_pat::transport::TlsConnection;
//! use tower_pat::{AuthLayer, MemoryStore};
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .layer(AuthLayer::new(MemoryStore::new()));
//! let https_app = app.clone().layer(Extension(TlsConnection)); // on the TLS listener
//!
//! let req = || Request::get("/").body(Body::empty()).unwrap();
//! // Over TLS: the token is checked (none here, so 401).
//! assert_eq!(https_app.oneshot(req()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! // Not known to be TLS: refused before any token check, never redirected.
//! let plain = app.oneshot(req()).await.unwrap();
//! assert_eq!(plain.status(), StatusCode::FORBIDDEN);
//! assert!(plain.headers().get("location").is_none());
//! # }
//! ```
//!
//! With bare hyper, insert it per connection in the service you hand to
//! `serve_connection` after the rustls handshake:
//! `req.extensions_mut().insert(TlsConnection)` (see `examples/hyper.rs`).
//!
//! Local development over plain HTTP needs the explicit
//! [`crate::AuthLayer::allow_plain_http`] switch.

use std::net::{IpAddr, SocketAddr};

use http::header::HeaderName;
use http::{HeaderMap, Request};
use ipnet::IpNet;

/// Request extension saying the connection is TLS. Insert it only in code
/// that serves a TLS listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsConnection;

/// Request extension with the peer's socket address, for trusted-proxy
/// checks when not using axum's `ConnectInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// How the layer decides a request is secure.
#[derive(Debug, Clone, Default)]
pub(crate) struct TransportPolicy {
    pub(crate) allow_plain_http: bool,
    pub(crate) trusted_proxies: Vec<IpNet>,
}

static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

impl TransportPolicy {
    /// Whether the request arrived over TLS (or plain HTTP is allowed).
    pub(crate) fn is_secure<B>(&self, req: &Request<B>) -> bool {
        self.allow_plain_http || is_known_tls(req, &self.trusted_proxies)
    }
}

fn is_known_tls<B>(req: &Request<B>, trusted: &[IpNet]) -> bool {
    if req.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
        return true;
    }
    if req.extensions().get::<TlsConnection>().is_some() {
        return true;
    }
    if trusted.is_empty() {
        return false;
    }
    match peer_ip(req) {
        Some(ip) if trusted.iter().any(|net| net.contains(&ip)) => {
            forwarded_proto_is_https(req.headers())
        }
        _ => false,
    }
}

fn peer_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    if let Some(PeerAddr(a)) = req.extensions().get::<PeerAddr>() {
        return Some(canonical(a.ip()));
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(a)) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(canonical(a.ip()));
    }
    None
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) count as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Reads the protocol the nearest proxy reported: the last element of the
/// last `Forwarded` header if present, else the last value of the last
/// `X-Forwarded-Proto` header.
fn forwarded_proto_is_https(headers: &HeaderMap) -> bool {
    if let Some(last) = headers.get_all(http::header::FORWARDED).iter().next_back() {
        let Ok(text) = last.to_str() else {
            return false;
        };
        let element = text.rsplit(',').next().unwrap_or("");
        return element.split(';').any(|pair| {
            let mut kv = pair.splitn(2, '=');
            let key = kv.next().unwrap_or("").trim();
            let value = kv.next().unwrap_or("").trim().trim_matches('"');
            key.eq_ignore_ascii_case("proto") && value.eq_ignore_ascii_case("https")
        });
    }
    match headers.get_all(&X_FORWARDED_PROTO).iter().next_back() {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|t| t.rsplit(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https")),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], peer: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut r = b.body(()).unwrap();
        if let Some(p) = peer {
            r.extensions_mut().insert(PeerAddr(p.parse().unwrap()));
        }
        r
    }

    fn policy(trusted: &[&str]) -> TransportPolicy {
        TransportPolicy {
            allow_plain_http: false,
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn https_uri_scheme_is_secure() {
        let r = Request::builder()
            .uri("https://api.example/x")
            .body(())
            .unwrap();
        assert!(policy(&[]).is_secure(&r));
    }

    #[test]
    fn tls_marker_is_secure() {
        let mut r = req(&[], None);
        assert!(!policy(&[]).is_secure(&r));
        r.extensions_mut().insert(TlsConnection);
        assert!(policy(&[]).is_secure(&r));
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let p = policy(&["10.0.0.0/8"]);
        let xfp = [("x-forwarded-proto", "https")];
        assert!(p.is_secure(&req(&xfp, Some("10.1.2.3:555"))));
        assert!(p.is_secure(&req(&xfp, Some("[::ffff:10.1.2.3]:555"))));
        assert!(!p.is_secure(&req(&xfp, Some("192.0.2.1:555"))));
        assert!(!p.is_secure(&req(&xfp, None)));
        let fwd = [("forwarded", "for=192.0.2.60;proto=https;by=10.0.0.1")];
        assert!(p.is_secure(&req(&fwd, Some("10.0.0.1:1"))));
        assert!(!p.is_secure(&req(&fwd, Some("192.0.2.9:1"))));
    }

    #[test]
    fn nearest_proxy_value_wins() {
        let p = policy(&["10.0.0.0/8"]);
        let spoofed = [("x-forwarded-proto", "https, http")];
        assert!(!p.is_secure(&req(&spoofed, Some("10.0.0.1:1"))));
        let fwd = [("forwarded", "proto=https, proto=http")];
        assert!(!p.is_secure(&req(&fwd, Some("10.0.0.1:1"))));
        let http = [("x-forwarded-proto", "http")];
        assert!(!p.is_secure(&req(&http, Some("10.0.0.1:1"))));
        let quoted = [("forwarded", "for=\"[2001:db8::1]\";proto=\"HTTPS\"")];
        assert!(p.is_secure(&req(&quoted, Some("10.0.0.1:1"))));
    }

    #[test]
    fn plain_http_switch_allows_everything() {
        let p = TransportPolicy {
            allow_plain_http: true,
            trusted_proxies: vec![],
        };
        assert!(p.is_secure(&req(&[], None)));
    }
}
