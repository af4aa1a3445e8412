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
