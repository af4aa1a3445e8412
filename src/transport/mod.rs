//! HTTPS policy: deciding whether a request arrived over TLS.
//!
//! By default the auth layer refuses — never redirects — any request not
//! known to have arrived over TLS, before it looks at the token. Only the
//! **server** can know that, so a request counts as HTTPS when:
//!
//! 1. it carries the [`TlsConnection`] extension, which your TLS-serving code
//!    inserts (see below), or
//! 2. it came from a configured trusted proxy (its [`PeerAddr`], or axum's
//!    `ConnectInfo<SocketAddr>` with the `axum` feature) and the one header
//!    that proxy is configured to set ([`ProxyHeader`]) says `https` for
//!    the hop the proxy received. The headers are ignored from anyone else,
//!    so a client cannot spoof them.
//!
//! The request target's scheme never counts: over a cleartext connection a
//! client can send the absolute form `GET https://host/path HTTP/1.1` (or an
//! HTTP/2 `:scheme` of `https`), and that says nothing about the connection.
//!
//! Under axum, mark the router you serve on the TLS listener; the same router
//! served without the marker refuses the request:
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
//! use axum::{body::Body, routing::get, Extension, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_pat::transport::TlsConnection;
//! use tower_pat::{AuthLayer, MemoryStore};
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .layer(AuthLayer::new(MemoryStore::new(), your_token_config()));
//! let https_app = app.clone().layer(Extension(TlsConnection)); // on the TLS listener
//!
//! let req = || Request::get("/").body(Body::empty()).unwrap();
//! // Over TLS: the token is checked (none here, so 401).
//! assert_eq!(https_app.oneshot(req()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! // Not known to be TLS: refused before any token check, never redirected.
//! let plain = app.clone().oneshot(req()).await.unwrap();
//! assert_eq!(plain.status(), StatusCode::FORBIDDEN);
//! assert!(plain.headers().get("location").is_none());
//! // A client-chosen `https://` request target proves nothing.
//! let absolute = Request::get("https://api.example/").body(Body::empty()).unwrap();
//! assert_eq!(app.oneshot(absolute).await.unwrap().status(), StatusCode::FORBIDDEN);
//! # }
//! ```
//!
//! With bare hyper, insert it per connection in the service you hand to
//! `serve_connection` after the rustls handshake:
//! `req.extensions_mut().insert(TlsConnection)` (see `examples/hyper.rs`).
//!
//! # Behind a TLS-terminating proxy
//!
//! Configure the proxy's addresses **and** the one header it sets, with
//! [`crate::auth::AuthLayerBuilder::trusted_proxies`]. Only that header is read; the
//! other is ignored even from the proxy, because a proxy that sets one
//! header usually passes the other through from the client untouched.
//!
//! - [`ProxyHeader::XForwardedProto`]: the last value of the
//!   comma-separated list (all `X-Forwarded-Proto` lines joined in order),
//!   which is what the nearest proxy set or appended. It must be exactly
//!   `https` (any case); anything else, including an empty or unreadable
//!   value, is plain HTTP.
//! - [`ProxyHeader::Forwarded`] (RFC 7239): the header is parsed in full
//!   (tokens, quoted strings with escapes, `;`-separated pairs,
//!   `,`-separated elements, all lines joined in order). The last element
//!   is the one the nearest proxy added; its `proto` must be `https`. A
//!   header that does not parse, an element with a repeated parameter (two
//!   `proto`s), or a last element without `proto` is refused: contradictory
//!   or ambiguous values are never guessed.
//!
//! Local development over plain HTTP needs the explicit
//! [`crate::auth::AuthLayerBuilder::allow_plain_http`] switch.

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

/// The header your TLS-terminating proxy sets to say which protocol the
/// client used. Only this header is read, and only from trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyHeader {
    /// `Forwarded: …;proto=https` (RFC 7239), for proxies configured to
    /// emit the standard header.
    Forwarded,
    /// `X-Forwarded-Proto: https`, as set by AWS ALB, Google Cloud Load
    /// Balancing, Heroku, Traefik and most NGINX setups.
    XForwardedProto,
}

/// How the layer decides a request is secure.
#[derive(Debug, Clone, Default)]
pub(crate) struct TransportPolicy {
    pub(crate) allow_plain_http: bool,
    pub(crate) proxies: Option<(ProxyHeader, Vec<IpNet>)>,
}

static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

impl TransportPolicy {
    /// Whether the request arrived over TLS (or plain HTTP is allowed).
    pub(crate) fn is_secure<B>(&self, req: &Request<B>) -> bool {
        self.allow_plain_http || self.is_known_tls(req)
    }

    fn is_known_tls<B>(&self, req: &Request<B>) -> bool {
        if req.extensions().get::<TlsConnection>().is_some() {
            return true;
        }
        let Some((header, trusted)) = &self.proxies else {
            return false;
        };
        match peer_ip(req) {
            Some(ip) if trusted.iter().any(|net| net.contains(&ip)) => match header {
                ProxyHeader::Forwarded => forwarded_says_https(req.headers()),
                ProxyHeader::XForwardedProto => x_forwarded_proto_says_https(req.headers()),
            },
            _ => false,
        }
    }
}

impl TransportPolicy {
    /// The client's address: the peer's, or, when the peer is a trusted
    /// proxy, the nearest untrusted hop of the forwarding header that
    /// proxy sets ([`client_address`]). `None` when it is not known.
    pub(crate) fn client_ip<B>(&self, req: &Request<B>) -> Option<IpAddr> {
        let peer = peer_ip(req)?;
        match &self.proxies {
            Some((header, trusted)) => client_address(*header, trusted, peer, req.headers()),
            None => Some(peer),
        }
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client address of a request that came from `peer`, behind proxies
/// at `trusted` addresses that set `header`'s companion: `X-Forwarded-For`
/// for [`ProxyHeader::XForwardedProto`], `Forwarded: for=` for
/// [`ProxyHeader::Forwarded`]. IPv4-mapped IPv6 addresses count as IPv4.
///
/// - A peer that is not a trusted proxy is the client; its headers are
///   not read.
/// - Otherwise the hops are walked from the right (the nearest proxy's
///   entry) past every trusted address; the first untrusted one is the
///   client. If every hop is trusted, the leftmost is. Without the header,
///   the trusted peer itself is the client.
/// - A hop that is not an address (`unknown`, an obfuscated `_node`,
///   junk) or a header that does not parse ends the walk: the address is
///   not known (`None`), never guessed from hops further left, which the
///   client wrote.
#[doc(hidden)] // public for the fuzz target only
pub fn client_address(
    header: ProxyHeader,
    trusted: &[IpNet],
    peer: IpAddr,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<Option<IpAddr>> = match header {
        ProxyHeader::XForwardedProto => {
            let mut hops = Vec::new();
            for line in headers.get_all(&X_FORWARDED_FOR) {
                let text = line.to_str().ok()?;
                hops.extend(
                    text.split(',')
                        .map(|h| h.trim_matches([' ', '\t']))
                        .filter(|h| !h.is_empty())
                        .map(node_address),
                );
            }
            hops
        }
        ProxyHeader::Forwarded => forwarded_elements(headers)?
            .into_iter()
            .map(|e| e.for_node.as_deref().and_then(node_address))
            .collect(),
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = canonical(hop?);
        if !is_trusted(&client) {
            break;
        }
    }
    Some(client)
}

/// An address as a forwarding header writes it: `192.0.2.7`,
/// `192.0.2.7:443`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:443`.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || valid_port(after.strip_prefix(':')?)) {
            return None;
        }
        return v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (v4, port) = node.split_once(':')?;
    valid_port(port)
        .then(|| v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4))
        .flatten()
}

fn valid_port(p: &str) -> bool {
    (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
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
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The last value of the joined `X-Forwarded-Proto` list is `https`.
fn x_forwarded_proto_says_https(headers: &HeaderMap) -> bool {
    let Some(last_line) = headers.get_all(&X_FORWARDED_PROTO).iter().next_back() else {
        return false;
    };
    let Ok(text) = last_line.to_str() else {
        return false;
    };
    let last = text
        .rsplit(',')
        .next()
        .unwrap_or("")
        .trim_matches([' ', '\t']);
    last.eq_ignore_ascii_case("https")
}

/// The last element of the joined `Forwarded` list has exactly one `proto`,
/// and it is `https`. Any syntax error anywhere refuses.
fn forwarded_says_https(headers: &HeaderMap) -> bool {
    let Some(elements) = forwarded_elements(headers) else {
        return false;
    };
    matches!(elements.last(), Some(Element { proto: Some(p), .. }) if p.eq_ignore_ascii_case("https"))
}

/// The elements of all `Forwarded` lines, joined in order. `None` for a
/// syntax error anywhere, or a parameter repeated within an element.
fn forwarded_elements(headers: &HeaderMap) -> Option<Vec<Element>> {
    let mut all = Vec::new();
    for line in headers.get_all(http::header::FORWARDED) {
        all.extend(parse_forwarded(line.as_bytes())?);
    }
    Some(all)
}

/// What one `Forwarded` element says, of what the layer reads.
#[derive(Debug, Default, PartialEq, Eq)]
struct Element {
    proto: Option<String>,
    for_node: Option<String>,
}

/// Parses one `Forwarded` line into its elements. `None` for a syntax
/// error or a parameter repeated within an element.
fn parse_forwarded(line: &[u8]) -> Option<Vec<Element>> {
    let mut p = ForwardedParser { s: line, i: 0 };
    let mut elements = Vec::new();
    loop {
        p.skip_ows();
        match p.peek() {
            None => return Some(elements),
            // An empty list member (RFC 9110 list rules).
            Some(b',') => p.i += 1,
            Some(_) => {
                elements.push(p.element()?);
                p.skip_ows();
                match p.peek() {
                    None => return Some(elements),
                    Some(b',') => p.i += 1,
                    Some(_) => return None,
                }
            }
        }
    }
}

struct ForwardedParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl ForwardedParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// `forwarded-element`: pairs separated by `;`.
    fn element(&mut self) -> Option<Element> {
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let mut element = Element::default();
        loop {
            self.skip_ows();
            if matches!(self.peek(), Some(b';')) {
                self.i += 1;
                continue;
            }
            if matches!(self.peek(), None | Some(b',')) {
                return Some(element);
            }
            let name = self.token()?.to_ascii_lowercase();
            if self.peek() != Some(b'=') {
                return None;
            }
            self.i += 1;
            let value = if self.peek() == Some(b'"') {
                self.quoted()?
            } else {
                String::from_utf8(self.token()?.to_vec()).ok()?
            };
            if seen.contains(&name) {
                return None;
            }
            match name.as_slice() {
                b"proto" => element.proto = Some(value),
                b"for" => element.for_node = Some(value),
                _ => {}
            }
            seen.push(name);
            self.skip_ows();
            match self.peek() {
                Some(b';') => self.i += 1,
                None | Some(b',') => return Some(element),
                Some(_) => return None,
            }
        }
    }

    /// RFC 9110 `token`: at least one tchar.
    fn token(&mut self) -> Option<&[u8]> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }

    /// RFC 9110 `quoted-string`, with `\` escapes.
    fn quoted(&mut self) -> Option<String> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    if !(e == b'\t' || e == b' ' || e.is_ascii_graphic() || e >= 0x80) {
                        return None;
                    }
                    out.push(e);
                    self.i += 1;
                }
                b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => out.push(b),
                _ => return None,
            }
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests;
