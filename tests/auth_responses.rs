//! What a rejected caller sees: byte-identical 401s, problem+json bodies,
//! custom responders, and the typed rejection attached for layers above.

mod common;

use std::time::{Duration, SystemTime};

use axum::body::Body;
use common::*;
use http::{HeaderValue, StatusCode};
use tower_pat::admin::NewToken;
use tower_pat::{
    clock::ManualClock,
    response::{Rejection, RejectionKind},
    AuthLayer,
};

#[tokio::test]
async fn every_invalid_token_answer_is_byte_identical() {
    let clock = ManualClock::new(SystemTime::now());
    let f = Fixture::with_config(nuvlyx::live().with_clock(clock.clone()));
    let admin = f.admin.clone();
    let app = app_with(f.builder());
    let mk = |owner: &'static str, exp: Option<u64>| {
        let admin = admin.clone();
        let name = f.name("t");
        async move {
            let mut req = NewToken::new(&name, owner, ["orders:read"]);
            if let Some(s) = exp {
                req = req.expires_in(Duration::from_secs(s));
            }
            let c = admin.create(req).await.unwrap();
            (c.token.expose_secret().to_owned(), c.record.id)
        }
    };
    let (revoked, rid) = mk("demo-store", None).await;
    admin.revoke(rid).await.unwrap();
    let (expired, _) = mk("demo-store", Some(1)).await;
    let (suspended, _) = mk("bad-store", None).await;
    admin.suspend_owner("bad-store").await.unwrap();
    let (valid, _) = mk("demo-store", None).await;
    clock.advance(Duration::from_secs(5));

    let tokens = [
        ("malformed", "not-a-token".to_owned()),
        ("bad checksum", flip_last(&valid)),
        ("unknown", unknown_token()),
        ("wrong secret", with_other_secret(&valid)),
        ("revoked", revoked),
        ("expired", expired),
        ("suspended", suspended),
    ];
    let mut answers = Vec::new();
    for (what, token) in &tokens {
        let res = send(&app, bearer("/orders", token)).await;
        answers.push((what, parts(res).await));
    }
    let (first_name, first) = &answers[0];
    assert_eq!(first.0, StatusCode::UNAUTHORIZED);
    for (name, answer) in &answers[1..] {
        assert_eq!(answer, first, "{name} differs from {first_name}");
    }
}

#[tokio::test]
async fn bodies_are_problem_json() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let cases = [
        (https("/orders").body(Body::empty()).unwrap(), 401, None),
        (bearer("/orders", "nope"), 401, Some("invalid_token")),
        (bearer("/wallet", &t), 403, Some("insufficient_scope")),
    ];
    for (req, status, error) in cases {
        let res = send(&f.app(), req).await;
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert_eq!(res.headers()["cache-control"], "no-store");
        let body = json(res).await;
        assert_eq!(body["status"], status);
        assert!(
            body["type"].is_string() && body["title"].is_string() && body["detail"].is_string()
        );
        assert_eq!(body["error"].as_str(), error);
    }
}

#[tokio::test]
async fn custom_responder_changes_the_body_but_not_the_decision() {
    let f = Fixture::new();
    let layer = f
        .builder()
        .attach_rejections()
        .responder(|r: &Rejection| {
            let mut res = r.response(Body::from(format!(
                "{{\"code\":\"{}\"}}",
                r.status().as_u16()
            )));
            res.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            res
        })
        .build();
    let app = axum::Router::new()
        .route("/orders", axum::routing::get(|| async { "orders" }))
        .layer(layer);
    let res = send(&app, bearer("/orders", &unknown_token())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], INVALID);
    assert_eq!(kind(&res), RejectionKind::UnknownToken);
    assert_eq!(parts(res).await.2, br#"{"code":"401"}"#);
}

#[tokio::test]
async fn the_auth_layers_responder_answers_for_its_scope_checks_unless_overridden() {
    let f = Fixture::new();
    let (token, _) = f.token(&["orders:read"]).await;
    let auth = f
        .builder()
        .responder(|r: &Rejection| {
            r.response(Body::from(format!("custom {}", r.status().as_u16())))
        })
        .build();
    let app = axum::Router::new()
        .route(
            "/wallet",
            axum::routing::get(|| async { "wallet" })
                .route_layer(auth.require_scopes(["wallet:read"])),
        )
        .route(
            "/webhooks",
            axum::routing::get(|| async { "webhooks" }).route_layer(
                auth.require_scopes(["webhooks:manage"])
                    .responder(tower_pat::response::ProblemDetails),
            ),
        )
        .layer(auth);
    let res = send(&app, bearer("/wallet", &token)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx", error="insufficient_scope", scope="wallet:read""#
    );
    assert_eq!(parts(res).await.2, b"custom 403");
    let res = send(&app, bearer("/webhooks", &token)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn layers_with_the_same_realm_name_keep_their_own_settings() {
    // Two layers named alike, one attaching rejections: each keeps its own
    // (nothing is shared through a process-wide table).
    let f = Fixture::new();
    let attaching = f.builder().attach_rejections().build();
    let plain = f.layer();
    let app = |layer: AuthLayer| {
        axum::Router::new()
            .route("/orders", axum::routing::get(|| async { "orders" }))
            .layer(layer)
    };
    let a = send(&app(attaching), bearer("/orders", &unknown_token())).await;
    let b = send(&app(plain), bearer("/orders", &unknown_token())).await;
    assert!(a.extensions().get::<Rejection>().is_some());
    assert!(b.extensions().get::<Rejection>().is_none());
    assert_eq!(a.headers(), b.headers());
}

#[tokio::test]
async fn rejections_are_attached_to_responses_only_when_asked() {
    let f = Fixture::new();
    let (token, id) = f.token(&["orders:read"]).await;
    let router = |layer: AuthLayer| {
        let check = layer.require_scopes(["wallet:read"]);
        axum::Router::new()
            .route(
                "/wallet",
                axum::routing::get(|| async { "wallet" }).route_layer(check),
            )
            .layer(layer)
    };
    let attached = |res: &http::Response<Body>| res.extensions().get::<Rejection>().cloned();

    let plain = router(f.layer());
    let res = send(&plain, bearer("/wallet", &unknown_token())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], INVALID);
    assert!(attached(&res).is_none());
    let res = send(&plain, bearer("/wallet", &token)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(attached(&res).is_none());

    // Either order of the builders keeps both the realm and the setting.
    for layer in [
        f.builder().attach_rejections().build(),
        AuthLayer::builder(f.store.clone(), nuvlyx::live())
            .attach_rejections()
            .realm("nuvlyx")
            .build(),
    ] {
        let app = router(layer);
        let res = send(&app, bearer("/wallet", &unknown_token())).await;
        assert_eq!(res.headers()["www-authenticate"], INVALID);
        assert_eq!(attached(&res).unwrap().kind(), RejectionKind::UnknownToken);
        let res = send(&app, bearer("/wallet", &token)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let r = attached(&res).unwrap();
        assert_eq!(
            (r.kind(), r.token_id()),
            (RejectionKind::InsufficientScope, Some(id))
        );
        assert_eq!(r.realm(), "nuvlyx");
    }
}
