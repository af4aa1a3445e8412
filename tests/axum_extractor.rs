//! The `Authenticated` axum extractor (feature `axum`).

mod common;

use axum::routing::get;
use axum::Router;
use common::*;
use http::StatusCode;
use tower_pat::Authenticated;

#[tokio::test]
async fn extractor_gives_the_caller_to_the_handler() {
    let f = Fixture::new();
    let (t, id) = f.token(&["orders:read"]).await;
    let app = Router::new()
        .route(
            "/me",
            get(|who: Authenticated| async move {
                format!(
                    "{}|{}|{}|{}",
                    who.token_id(),
                    who.owner(),
                    who.name(),
                    who.scopes().to_space_separated()
                )
            }),
        )
        .layer(f.layer());
    let res = send(&app, bearer("/me", &t)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = String::from_utf8(parts(res).await.2).unwrap();
    assert_eq!(body, format!("{id}|demo-store|test token|orders:read"));
}

#[tokio::test]
async fn optional_extractor_is_none_without_the_layer() {
    let app = Router::new().route(
        "/maybe",
        get(|who: Option<Authenticated>| async move { format!("{}", who.is_some()) }),
    );
    let res = send(
        &app,
        https("/maybe").body(axum::body::Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(parts(res).await.2, b"false");
}

#[tokio::test]
async fn extractor_without_the_layer_is_a_500_not_a_pass() {
    let app = Router::new().route("/me", get(|_: Authenticated| async { "secret data" }));
    let res = send(&app, https("/me").body(axum::body::Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_ne!(parts(res).await.2, b"secret data");
}

/// A route that shows more to a known caller.
fn optional_app(f: &Fixture) -> Router {
    let auth = f.builder().optional().attach_rejections().build();
    Router::new()
        .route(
            "/products",
            get(|who: Option<Authenticated>| async move {
                match who {
                    Some(who) => format!("for {}", who.owner()),
                    None => "anonymous".to_owned(),
                }
            }),
        )
        .route(
            "/orders",
            get(|| async { "orders" }).route_layer(auth.require_scopes(["orders:read"])),
        )
        .layer(auth)
}

#[tokio::test]
async fn optional_layer_lets_a_request_without_credentials_through_anonymous() {
    let f = Fixture::new();
    let app = optional_app(&f);
    let res = send(
        &app,
        https("/products").body(axum::body::Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(parts(res).await.2, b"anonymous");
    assert_eq!(f.store.finds(), 0);
}

#[tokio::test]
async fn optional_layer_authenticates_a_valid_token() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let app = optional_app(&f);
    let res = send(&app, bearer("/products", &t)).await;
    assert_eq!(parts(res).await.2, b"for demo-store");
    assert_eq!(
        send(&app, bearer("/orders", &t)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn optional_layer_still_refuses_bad_credentials() {
    let f = Fixture::new();
    let (t, id) = f.token(&["orders:read"]).await;
    f.admin.revoke(id).await.unwrap();
    let app = optional_app(&f);
    for bad in [t.as_str(), "nvl_live_0000", "", "Basic abc"] {
        let req = https("/products")
            .header(
                "authorization",
                if bad.starts_with("Basic") {
                    bad.to_owned()
                } else {
                    format!("Bearer {bad}")
                },
            )
            .body(axum::body::Body::empty())
            .unwrap();
        let res = send(&app, req).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
        assert_eq!(
            res.headers()["www-authenticate"],
            r#"Bearer realm="nuvlyx", error="invalid_token""#
        );
    }
}

#[tokio::test]
async fn optional_layer_still_requires_https() {
    let f = Fixture::new();
    let app = optional_app(&f);
    let plain = http::Request::get("/products")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(send(&app, plain).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_scoped_route_behind_an_optional_layer_answers_401_missing_credentials() {
    let f = Fixture::new();
    let app = optional_app(&f);
    let res = send(
        &app,
        https("/orders").body(axum::body::Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx""#
    );
    let rejection = res
        .extensions()
        .get::<tower_pat::response::Rejection>()
        .unwrap();
    assert_eq!(
        rejection.kind(),
        tower_pat::response::RejectionKind::MissingCredentials
    );
}

/// Issue #22 (7): behind an optional layer, a handler that takes
/// `Authenticated` (not `Option<Authenticated>`) gets, for a request
/// without credentials, exactly what the layer sends for a missing token:
/// not the 500 that means "no layer here".
#[tokio::test]
async fn a_handler_requiring_a_token_behind_an_optional_layer_answers_as_the_layer() {
    let f = Fixture::new();
    let handler = get(|who: Authenticated| async move { format!("for {}", who.owner()) });
    let required = Router::new().route("/me", handler.clone()).layer(f.layer());
    let optional = Router::new()
        .route("/me", handler.clone())
        .layer(f.builder().optional().build());
    let anonymous = || https("/me").body(axum::body::Body::empty()).unwrap();
    let (want_status, want_headers, want_body) = parts(send(&required, anonymous()).await).await;
    let res = send(&optional, anonymous()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, headers, body) = parts(res).await;
    assert_eq!(
        (status, headers, body),
        (want_status, want_headers, want_body)
    );

    // A custom responder's answer, too.
    let custom = Router::new().route("/me", handler.clone()).layer(
        f.builder()
            .optional()
            .responder(|r: &tower_pat::response::Rejection| {
                http::Response::builder()
                    .status(418)
                    .header("x-why", r.kind().as_str())
                    .body(axum::body::Body::empty())
                    .unwrap()
            })
            .build(),
    );
    let res = send(&custom, anonymous()).await;
    assert_eq!(res.status().as_u16(), 418);
    assert_eq!(res.headers()["x-why"], "missing_credentials");

    // A valid token still reaches the handler; a handler answering 500
    // on its own is left alone.
    let (t, _) = f.token(&["orders:read"]).await;
    let res = send(&optional, bearer("/me", &t)).await;
    assert_eq!(parts(res).await.2, b"for demo-store");
    let failing = Router::new()
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "handler failed") }),
        )
        .layer(f.builder().optional().build());
    let res = send(
        &failing,
        https("/boom").body(axum::body::Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(parts(res).await.2, b"handler failed");
}
