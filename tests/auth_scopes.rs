//! Scope checks (`require_scopes`, `require_any_scope`): 403 naming the
//! missing scope, routes built against the catalog, fail-closed wiring.

mod common;

use axum::body::Body;
use common::*;
use http::StatusCode;
use tower_pat::{
    response::RejectionKind,
    scope::{ScopeError, ScopeMatch},
};

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope_naming_it() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let res = send(&f.app(), bearer("/wallet", &t)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx", error="insufficient_scope", scope="wallet:read wallet:write""#
    );
    assert_eq!(kind(&res), RejectionKind::InsufficientScope);
    let body = json(res).await;
    assert_eq!(
        body["required_scopes"],
        serde_json::json!(["wallet:read", "wallet:write"])
    );
}

#[tokio::test]
async fn all_of_needs_every_scope() {
    let f = Fixture::new();
    let (half, _) = f.token(&["wallet:read"]).await;
    let (both, _) = f.token(&["wallet:read", "wallet:write"]).await;
    assert_eq!(
        send(&f.app(), bearer("/wallet", &half)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&f.app(), bearer("/wallet", &both)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn any_of_accepts_one_matching_scope() {
    let f = Fixture::new();
    let (inv, _) = f.token(&["inventory:read"]).await;
    let (none, _) = f.token(&["orders:read"]).await;
    assert_eq!(
        send(&f.app(), bearer("/catalog", &inv)).await.status(),
        StatusCode::OK
    );
    let res = send(&f.app(), bearer("/catalog", &none)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx", error="insufficient_scope", scope="inventory:read products:read""#
    );
}

#[tokio::test]
async fn unknown_paths_stay_404_with_route_layer() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    assert_eq!(
        send(&f.app(), bearer("/nope", &t)).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn require_scopes_without_auth_layer_fails_closed() {
    // The check is built from a layer that is then never applied.
    let auth = Fixture::new().builder().attach_rejections().build();
    let app = axum::Router::new().route(
        "/orders",
        axum::routing::get(|| async { "orders" }).route_layer(auth.require_scopes(["orders:read"])),
    );
    let res = send(&app, https("/orders").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx""#
    );
    assert_eq!(kind(&res), RejectionKind::NotAuthenticated);
}

#[test]
fn a_route_requiring_a_scope_the_catalog_does_not_define_is_refused_when_built() {
    let auth = Fixture::new().layer();
    let typo = auth.try_require_scopes(["order:read"], ScopeMatch::All);
    assert!(
        matches!(&typo, Err(ScopeError::Unknown(s)) if s == "order:read"),
        "{typo:?}"
    );
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        auth.require_any_scope(["orders:read", "order:write"])
    }))
    .expect_err("an unknown scope must not build");
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("\"order:write\""), "{message}");
    // Malformed and empty lists are refused too.
    assert!(matches!(
        auth.try_require_scopes(["Orders"], ScopeMatch::All),
        Err(ScopeError::Invalid(_))
    ));
    assert!(matches!(
        auth.try_require_scopes(Vec::<String>::new(), ScopeMatch::Any),
        Err(ScopeError::Empty)
    ));
    // A scope routes may require before any token may hold it.
    let soon = auth.require_scopes(["customers:write"]);
    assert_eq!(soon.required().to_space_separated(), "customers:write");
}

/// Scope checks cannot disagree with their layer: every setting is made on
/// the builder, and a finished layer (the only thing a check is built from)
/// has no setter to change afterwards.
#[test]
fn a_finished_layer_has_no_setters() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/settings_after_build/*.rs");
}
