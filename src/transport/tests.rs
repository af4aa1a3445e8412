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

fn behind(header: ProxyHeader, trusted: &[&str]) -> TransportPolicy {
    TransportPolicy {
        allow_plain_http: false,
        proxies: Some((header, trusted.iter().map(|t| t.parse().unwrap()).collect())),
    }
}

#[test]
fn https_request_target_is_not_proof_of_tls() {
    let absolute = Request::builder()
        .uri("https://api.example/x")
        .body(())
        .unwrap();
    assert!(!TransportPolicy::default().is_secure(&absolute));
    let p = behind(ProxyHeader::XForwardedProto, &["10.0.0.0/8"]);
    assert!(!p.is_secure(&absolute));
}

#[test]
fn tls_marker_is_secure() {
    let mut r = req(&[], None);
    assert!(!TransportPolicy::default().is_secure(&r));
    r.extensions_mut().insert(TlsConnection);
    assert!(TransportPolicy::default().is_secure(&r));
}

/// Every case of the security review, plus the ones that already held:
/// (configured header, request headers, peer, expected).
#[test]
fn proxy_headers_table() {
    use ProxyHeader::{Forwarded as Fwd, XForwardedProto as Xfp};
    const PROXY: Option<&str> = Some("10.0.0.1:443");
    type Case<'a> = (ProxyHeader, &'a [(&'a str, &'a str)], Option<&'a str>, bool);
    let cases: &[Case] = &[
        // The configured header, from a trusted proxy.
        (Xfp, &[("x-forwarded-proto", "https")], PROXY, true),
        (Xfp, &[("x-forwarded-proto", "HTTPS")], PROXY, true),
        (Xfp, &[("x-forwarded-proto", "http")], PROXY, false),
        (
            Fwd,
            &[("forwarded", "for=192.0.2.60;proto=https;by=10.0.0.1")],
            PROXY,
            true,
        ),
        (
            Fwd,
            &[("forwarded", "for=\"[2001:db8::1]\";proto=\"HTTPS\"")],
            PROXY,
            true,
        ),
        (Fwd, &[("forwarded", "proto=https;")], PROXY, true),
        // Only the configured header is read: a client's `Forwarded`
        // passed through by a proxy that sets X-Forwarded-Proto.
        (
            Xfp,
            &[("forwarded", "proto=https"), ("x-forwarded-proto", "http")],
            PROXY,
            false,
        ),
        (Xfp, &[("forwarded", "proto=https")], PROXY, false),
        (Fwd, &[("x-forwarded-proto", "https")], PROXY, false),
        (
            Fwd,
            &[("x-forwarded-proto", "https"), ("forwarded", "proto=http")],
            PROXY,
            false,
        ),
        // Quoted strings are parsed: `;proto=https` inside one is data.
        (
            Fwd,
            &[("forwarded", "for=1.2.3.4;host=\"a;proto=https\";proto=http")],
            PROXY,
            false,
        ),
        (
            Fwd,
            &[("forwarded", "host=\"a,proto=https\";proto=http")],
            PROXY,
            false,
        ),
        (
            Fwd,
            &[("forwarded", "host=\"a\\\"b\";proto=https")],
            PROXY,
            true,
        ),
        // One `proto` per element: repeated or contradictory is refused.
        (
            Fwd,
            &[("forwarded", "proto=http;proto=https")],
            PROXY,
            false,
        ),
        (
            Fwd,
            &[("forwarded", "proto=https;proto=https")],
            PROXY,
            false,
        ),
        (
            Fwd,
            &[("forwarded", "proto=https;PROTO=https")],
            PROXY,
            false,
        ),
        // Client-first lists: the nearest proxy's element is the last.
        (Xfp, &[("x-forwarded-proto", "https, http")], PROXY, false),
        (Xfp, &[("x-forwarded-proto", "http, https")], PROXY, true),
        (Xfp, &[("x-forwarded-proto", "https,")], PROXY, false),
        (
            Fwd,
            &[("forwarded", "proto=https, proto=http")],
            PROXY,
            false,
        ),
        (
            Fwd,
            &[("forwarded", "proto=http, for=10.0.0.2;proto=https")],
            PROXY,
            true,
        ),
        (
            Fwd,
            &[("forwarded", "proto=https, for=10.0.0.2")],
            PROXY,
            false,
        ),
        // Two header lines are one list, in order.
        (
            Xfp,
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-proto", "http"),
            ],
            PROXY,
            false,
        ),
        (
            Xfp,
            &[
                ("x-forwarded-proto", "http"),
                ("x-forwarded-proto", "https"),
            ],
            PROXY,
            true,
        ),
        (
            Fwd,
            &[("forwarded", "proto=https"), ("forwarded", "proto=http")],
            PROXY,
            false,
        ),
        (
            Fwd,
            &[("forwarded", "proto=http"), ("forwarded", "proto=https")],
            PROXY,
            true,
        ),
        // A syntax error anywhere refuses.
        (Fwd, &[("forwarded", "proto=\"https")], PROXY, false),
        (Fwd, &[("forwarded", "proto=https garbage")], PROXY, false),
        (Fwd, &[("forwarded", "proto=")], PROXY, false),
        (Fwd, &[("forwarded", "=https")], PROXY, false),
        (
            Fwd,
            &[("forwarded", "proto=https"), ("forwarded", "for=\"x")],
            PROXY,
            false,
        ),
        // IPv4-mapped peers count as IPv4; untrusted or unknown peers
        // are never believed.
        (
            Xfp,
            &[("x-forwarded-proto", "https")],
            Some("[::ffff:10.1.2.3]:555"),
            true,
        ),
        (
            Xfp,
            &[("x-forwarded-proto", "https")],
            Some("192.0.2.1:555"),
            false,
        ),
        (
            Fwd,
            &[("forwarded", "proto=https")],
            Some("192.0.2.9:1"),
            false,
        ),
        (Xfp, &[("x-forwarded-proto", "https")], None, false),
        (Xfp, &[], PROXY, false),
        (Fwd, &[], PROXY, false),
    ];
    for (i, (header, headers, peer, expected)) in cases.iter().enumerate() {
        let policy = behind(*header, &["10.0.0.0/8"]);
        assert_eq!(
            policy.is_secure(&req(headers, *peer)),
            *expected,
            "case {i}: {header:?} {headers:?} from {peer:?}"
        );
    }
}

#[test]
fn plain_http_switch_allows_everything() {
    let p = TransportPolicy {
        allow_plain_http: true,
        proxies: None,
    };
    assert!(p.is_secure(&req(&[], None)));
}

fn client(
    header: ProxyHeader,
    trusted: &[&str],
    peer: &str,
    headers: &[(&str, &str)],
) -> Option<String> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
    client_address(header, &trusted, peer.parse().unwrap(), &map).map(|ip| ip.to_string())
}

#[test]
fn client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
    use ProxyHeader::*;
    let spoof = [
        ("x-forwarded-for", "198.51.100.1"),
        ("forwarded", "for=198.51.100.1"),
    ];
    // Not behind a trusted proxy: the headers are the client's words.
    assert_eq!(
        client(XForwardedProto, &["10.0.0.0/8"], "203.0.113.5", &spoof).as_deref(),
        Some("203.0.113.5")
    );
    assert_eq!(
        client(Forwarded, &["10.0.0.0/8"], "203.0.113.5", &spoof).as_deref(),
        Some("203.0.113.5")
    );
    // A trusted proxy without the header is the client itself.
    assert_eq!(
        client(XForwardedProto, &["10.0.0.0/8"], "10.0.0.2", &[]).as_deref(),
        Some("10.0.0.2")
    );
    // IPv4-mapped peers count as IPv4.
    assert_eq!(
        client(XForwardedProto, &["10.0.0.0/8"], "::ffff:203.0.113.5", &[]).as_deref(),
        Some("203.0.113.5")
    );
}

#[test]
fn x_forwarded_for_is_walked_from_the_right_past_trusted_hops() {
    use ProxyHeader::XForwardedProto as X;
    let t = &["10.0.0.0/8", "2001:db8:ffff::/48"];
    // The client wrote "1.1.1.1" itself; the proxy appended the real peer.
    let h = [("x-forwarded-for", "1.1.1.1, 203.0.113.7")];
    assert_eq!(client(X, t, "10.0.0.2", &h).as_deref(), Some("203.0.113.7"));
    // Two trusted hops, over two lines.
    let h = [
        ("x-forwarded-for", "1.1.1.1, 203.0.113.7"),
        ("x-forwarded-for", "10.1.1.1"),
    ];
    assert_eq!(client(X, t, "10.0.0.2", &h).as_deref(), Some("203.0.113.7"));
    // IPv6 forms, mapped addresses, ports.
    let h = [("x-forwarded-for", "[2001:db8::5]:4711, 2001:db8:ffff::1")];
    assert_eq!(client(X, t, "10.0.0.2", &h).as_deref(), Some("2001:db8::5"));
    let h = [("x-forwarded-for", "::ffff:198.51.100.9")];
    assert_eq!(
        client(X, t, "10.0.0.2", &h).as_deref(),
        Some("198.51.100.9")
    );
    let h = [("x-forwarded-for", "198.51.100.9:5555")];
    assert_eq!(
        client(X, t, "10.0.0.2", &h).as_deref(),
        Some("198.51.100.9")
    );
    // Every hop trusted: the leftmost.
    let h = [("x-forwarded-for", "10.9.9.9, 10.1.1.1")];
    assert_eq!(client(X, t, "10.0.0.2", &h).as_deref(), Some("10.9.9.9"));
    // Junk at the nearest untrusted position: unknown, not the hop beyond.
    for junk in [
        "1.1.1.1, unknown",
        "1.1.1.1, 203.0.113.300",
        "1.1.1.1, [2001:db8::1",
        "1.1.1.1, 1.2.3.4:port",
    ] {
        let h = [("x-forwarded-for", junk)];
        assert_eq!(client(X, t, "10.0.0.2", &h), None, "{junk}");
    }
    // Junk beyond the client does not matter.
    let h = [("x-forwarded-for", "garbage, 203.0.113.7")];
    assert_eq!(client(X, t, "10.0.0.2", &h).as_deref(), Some("203.0.113.7"));
}

#[test]
fn forwarded_for_is_walked_from_the_right_past_trusted_hops() {
    use ProxyHeader::Forwarded as F;
    let t = &["10.0.0.0/8"];
    let h = [("forwarded", "for=1.1.1.1, for=203.0.113.7;proto=https")];
    assert_eq!(client(F, t, "10.0.0.2", &h).as_deref(), Some("203.0.113.7"));
    let h = [
        ("forwarded", "for=\"[2001:db8:cafe::17]:4711\""),
        ("forwarded", "for=10.3.3.3;proto=https"),
    ];
    assert_eq!(
        client(F, t, "10.0.0.2", &h).as_deref(),
        Some("2001:db8:cafe::17")
    );
    for unknown in [
        "for=unknown",
        "for=_hidden",
        "proto=https",
        "for=1.1.1.1;for=2.2.2.2",
        "for=\"unterminated",
    ] {
        let h = [("forwarded", unknown)];
        assert_eq!(client(F, t, "10.0.0.2", &h), None, "{unknown}");
    }
    // X-Forwarded-For is not read when the proxy sets Forwarded.
    let h = [
        ("forwarded", "for=203.0.113.7"),
        ("x-forwarded-for", "198.51.100.1"),
    ];
    assert_eq!(client(F, t, "10.0.0.2", &h).as_deref(), Some("203.0.113.7"));
}
