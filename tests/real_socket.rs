//! End to end over a real TCP socket, real TLS (rustls) and a real HTTP
//! client (reqwest): the answers a bot would see.

#[cfg(feature = "tracing")]
#[path = "common/capture.rs"]
mod capture;
mod common;
#[path = "common/tls.rs"]
mod tls;

use common::Fixture;
use std::time::Duration;

#[tokio::test]
async fn https_client_sees_200_401_403_with_headers() {
    let f = Fixture::new();
    let (orders, _) = f.token(&["orders:read"]).await;
    let server = tls::serve_tls(f.app()).await;
    let client = tls::client(&server.ca_pem);
    let url = |p: &str| format!("https://localhost:{}{p}", server.addr.port());

    let ok = client
        .get(url("/orders"))
        .bearer_auth(&orders)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "orders");

    let none = client.get(url("/orders")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx""#
    );
    assert_eq!(none.headers()["content-type"], "application/problem+json");

    let bad = client
        .get(url("/orders"))
        .bearer_auth("nvl_live_0000")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(
        bad.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx", error="invalid_token""#
    );

    let denied = client
        .get(url("/wallet"))
        .bearer_auth(&orders)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    assert_eq!(
        denied.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx", error="insufficient_scope", scope="wallet:read wallet:write""#
    );
    let body: serde_json::Value = serde_json::from_str(&denied.text().await.unwrap()).unwrap();
    assert_eq!(body["status"], 403);
}

#[tokio::test]
async fn plain_http_on_a_real_socket_is_refused_and_not_redirected() {
    let f = Fixture::new();
    let (orders, _) = f.token(&["orders:read"]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = f.app();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = tls::plain_client();
    let res = client
        .get(format!("http://{addr}/orders"))
        .bearer_auth(&orders)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());
    // At most the background exposure check looked the token up (never
    // the request: `tests/events.rs` shows a hanging store does not delay
    // the 403).
    assert!(f.store.finds() <= 1, "{} lookups", f.store.finds());
}

#[tokio::test]
async fn trusted_proxy_forwarded_proto_over_a_real_socket() {
    let f = Fixture::new();
    let (orders, _) = f.token(&["orders:read"]).await;
    let app = common::app_with(f.builder().trusted_proxies(
        tower_pat::transport::ProxyHeader::XForwardedProto,
        ["127.0.0.1/32".parse().unwrap()],
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let client = tls::plain_client();
    let send = |proto: Option<&'static str>| {
        let mut req = client
            .get(format!("http://{addr}/orders"))
            .bearer_auth(&orders);
        if let Some(p) = proto {
            req = req.header("x-forwarded-proto", p);
        }
        req.send()
    };
    assert_eq!(send(Some("https")).await.unwrap().status(), 200);
    assert_eq!(send(Some("http")).await.unwrap().status(), 403);
    assert_eq!(send(None).await.unwrap().status(), 403);
}

/// Sends raw bytes on a plain TCP connection and returns the status code
/// of the response.
async fn raw_status(addr: std::net::SocketAddr, request: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Over cleartext, a client can name an `https://` request target in the
/// absolute form; the connection is still plain TCP and must be refused.
#[tokio::test(flavor = "current_thread")]
async fn absolute_form_https_target_over_plain_tcp_is_refused() {
    #[cfg(feature = "tracing")]
    let (log, _guard) = capture::capture_everything();
    let f = Fixture::new();
    let (orders, id) = f.token(&["orders:read"]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = f.app();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    for target in [
        format!("https://localhost:{}/orders", addr.port()),
        "https://api.nuvlyx.test/orders".to_owned(),
        "/orders".to_owned(),
    ] {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {orders}\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(raw_status(addr, &request).await, 403, "{target}");
    }
    // No request waited for the store; the token was checked once, in
    // the background, as an exposure (three sightings, one check).
    let started = std::time::Instant::now();
    while f.store.finds() == 0 && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        f.store.finds(),
        1,
        "one exposure check, no lookup on a request"
    );
    // The token travelled in clear and its secret is a live token's: the
    // host is told, by id, to revoke it.
    #[cfg(feature = "tracing")]
    {
        let exposed: Vec<String> = log
            .text()
            .lines()
            .filter(|l| {
                l.contains(" WARN ") && l.contains("secret verified") && l.contains(&id.to_string())
            })
            .map(str::to_owned)
            .collect();
        assert_eq!(exposed.len(), 1, "exposure lines in:\n{}", log.text());
    }
    let _ = id;
}
