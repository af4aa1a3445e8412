//! The client address behind proxies, and allowlist and budget parsing,
//! on arbitrary bytes: never panics; an address found is one of the hops
//! the bytes hold or the peer, never a trusted hop when an untrusted one
//! is nearer; an allowlist that parses prints back to itself.
#![no_main]

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use tower_pat::limit::{IpAllowlist, RateLimit};
use tower_pat::transport::{client_address, ProxyHeader};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(list) = text.parse::<IpAllowlist>() {
        let again: IpAllowlist = list.to_string().parse().expect("a printed allowlist parses");
        assert_eq!(again, list);
    }
    if let Ok(limit) = text.parse::<RateLimit>() {
        assert_eq!(limit.to_string().parse::<RateLimit>().unwrap(), limit);
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()];
    let peer: IpAddr = "10.1.2.3".parse().unwrap();
    for (header, name) in [
        (ProxyHeader::XForwardedProto, "x-forwarded-for"),
        (ProxyHeader::Forwarded, "forwarded"),
    ] {
        let mut headers = HeaderMap::new();
        headers.append(HeaderName::from_static(name), value.clone());
        if let Some(ip) = client_address(header, &trusted, peer, &headers) {
            // Mapped addresses come back as IPv4.
            assert!(!matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()));
        }
        // From an untrusted peer the headers are never read.
        let outsider: IpAddr = "203.0.113.1".parse().unwrap();
        assert_eq!(client_address(header, &trusted, outsider, &headers), Some(outsider));
    }
});
