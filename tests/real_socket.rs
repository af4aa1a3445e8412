//! End to end over a real TCP socket, real TLS (rustls) and a real HTTP
//! client (reqwest): the answers a bot would see.

mod common;
#[path = "common/tls.rs"]
mod tls;

use common::Fixture;

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
    assert_eq!(f.store.finds(), 0);
}

#[tokio::test]
async fn trusted_proxy_forwarded_proto_over_a_real_socket() {
    let f = Fixture::new();
    let (orders, _) = f.token(&["orders:read"]).await;
    let app = common::app_with(f.layer().trusted_proxies(["127.0.0.1/32".parse().unwrap()]));
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
