//! HTTPS only: plain HTTP is refused before the token is looked at, and a
//! forwarded scheme is believed from trusted proxies only.

mod common;

use axum::body::Body;
use common::*;
use http::{Request, StatusCode};
use tower_pat::response::{Rejection, RejectionKind};

#[tokio::test]
async fn plain_http_is_refused_before_the_token_is_looked_at() {
    let f = Fixture::new();
    let (t, id) = f.token(&["orders:read"]).await;
    let req = Request::get("http://api.nuvlyx.test/orders")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    let res = send(&f.app(), req).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get("location").is_none(), "never a redirect");
    let r = res.extensions().get::<Rejection>().unwrap().clone();
    assert_eq!(r.kind(), RejectionKind::InsecureTransport);
    assert_eq!(r.token_id(), Some(id), "the exposed token is identified");
    assert_eq!(f.store.finds(), 0);
    let body = json(res).await;
    assert_eq!(body["error"], "https_required");
    assert!(body["detail"].as_str().unwrap().contains("HTTPS"));
}

#[tokio::test]
async fn origin_form_request_without_tls_marker_is_plain_http() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let req = Request::get("/orders")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&f.app(), req).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tls_marker_extension_counts_as_https() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let mut req = Request::get("/orders")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(tower_pat::transport::TlsConnection);
    assert_eq!(send(&f.app(), req).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn forwarded_proto_from_untrusted_peer_is_ignored() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let app = app_with(f.builder().trusted_proxies(
        tower_pat::transport::ProxyHeader::XForwardedProto,
        ["10.0.0.0/8".parse().unwrap()],
    ));
    let mk = |peer: &str| {
        let mut req = Request::get("/orders")
            .header("authorization", format!("Bearer {t}"))
            .header("x-forwarded-proto", "https")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(tower_pat::transport::PeerAddr(peer.parse().unwrap()));
        req
    };
    assert_eq!(
        send(&app, mk("10.9.8.7:4000")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&app, mk("203.0.113.5:4000")).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn allow_plain_http_switch_accepts_http() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let app = app_with(f.builder().allow_plain_http());
    let req = Request::get("http://localhost/orders")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.status(), StatusCode::OK);
}
