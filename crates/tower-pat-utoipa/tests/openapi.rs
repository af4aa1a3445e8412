//! The OpenAPI document and the enforcement come from one declaration:
//! every operation documented with scopes refuses tokens without them,
//! and every operation documented without security lets anyone through.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::{Extension, Json};
use http::{Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::transport::TlsConnection;
use tower_pat::{AuthLayer, MemoryStore};
use tower_pat_utoipa::{BearerSecurity, ScopedRoute, SECURITY_SCHEME};
use utoipa::Modify;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Lists orders.
#[utoipa::path(get, path = "/orders", responses((status = 200, description = "Orders")))]
async fn list_orders() -> Json<Value> {
    Json(json!([]))
}

/// Creates an order.
#[utoipa::path(post, path = "/orders", responses((status = 201, description = "Created")))]
async fn create_order() -> (StatusCode, Json<Value>) {
    (StatusCode::CREATED, Json(json!({})))
}

/// Lists products or inventory.
#[utoipa::path(get, path = "/catalog", responses((status = 200, description = "Catalog")))]
async fn catalog() -> Json<Value> {
    Json(json!([]))
}

/// Refunds need both scopes (two checks chained).
#[utoipa::path(post, path = "/refunds", responses((status = 200, description = "Refunded")))]
async fn refund() -> Json<Value> {
    Json(json!({}))
}

/// Public.
#[utoipa::path(get, path = "/health", responses((status = 200, description = "Up")))]
async fn health() -> &'static str {
    "ok"
}

/// Token names: an owner has one live token per name.
static NAMES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct App {
    router: axum::Router,
    api: Value,
    tokens: TokenManager<MemoryStore>,
}

fn app() -> App {
    let store = MemoryStore::new();
    let config = nuvlyx::live();
    let auth = AuthLayer::builder(store.clone(), config.clone())
        .optional()
        .build();
    let (router, mut api) = OpenApiRouter::new()
        .routes(routes!(list_orders).require_scopes(&auth, ["orders:read"]))
        .routes(routes!(create_order).require_scopes(&auth, ["orders:write"]))
        .routes(routes!(catalog).require_any_scope(&auth, ["products:read", "inventory:read"]))
        .routes(
            routes!(refund)
                .require_scopes(&auth, ["orders:read"])
                .require_scopes(&auth, ["orders:write"]),
        )
        .routes(routes!(health))
        .split_for_parts();
    BearerSecurity::new(&config).modify(&mut api);
    let router = router.layer(auth).layer(Extension(TlsConnection));
    App {
        router,
        api: serde_json::to_value(&api).unwrap(),
        tokens: TokenManager::new(store, config),
    }
}

/// Every operation of the document: (method, path, its security).
fn operations(api: &Value) -> Vec<(Method, String, Option<Value>)> {
    let mut out = Vec::new();
    for (path, item) in api["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            out.push((method, path.clone(), op.get("security").cloned()));
        }
    }
    out
}

impl App {
    async fn status(&self, method: &Method, path: &str, token: Option<&str>) -> StatusCode {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Body::empty()).unwrap();
        self.router.clone().oneshot(req).await.unwrap().status()
    }

    async fn token(&self, scopes: &BTreeSet<String>) -> String {
        let created = self
            .tokens
            .create(NewToken::new(
                &format!(
                    "t{}",
                    NAMES.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                ),
                "shop",
                scopes,
            ))
            .await
            .unwrap();
        created.token.expose_secret().to_owned()
    }
}

#[tokio::test]
async fn what_the_document_says_is_what_the_routes_enforce() {
    let app = app();
    let grantable: BTreeSet<String> = nuvlyx::scopes()
        .grantable()
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    let ops = operations(&app.api);
    assert_eq!(ops.len(), 5, "{ops:?}");
    for (method, path, security) in ops {
        let Some(security) = security else {
            // Documented as public: anyone gets through.
            assert!(
                app.status(&method, &path, None).await.is_success(),
                "{path}"
            );
            continue;
        };
        // Documented as protected: no token is 401.
        assert_eq!(
            app.status(&method, &path, None).await,
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let alternatives: Vec<BTreeSet<String>> = security
            .as_array()
            .unwrap()
            .iter()
            .map(|req| {
                req[SECURITY_SCHEME]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect()
            })
            .collect();
        for needed in &alternatives {
            // Exactly one documented alternative's scopes: let through.
            let token = app.token(needed).await;
            assert!(
                app.status(&method, &path, Some(&token)).await.is_success(),
                "{method} {path} with {needed:?}"
            );
            // Everything else, but one of those scopes missing: 403.
            for missing in needed {
                let mut scopes = grantable.clone();
                scopes.remove(missing);
                for other in &alternatives {
                    if other != needed && !other.contains(missing) {
                        for s in other {
                            scopes.remove(s);
                        }
                    }
                }
                let token = app.token(&scopes).await;
                assert_eq!(
                    app.status(&method, &path, Some(&token)).await,
                    StatusCode::FORBIDDEN,
                    "{method} {path} without {missing}"
                );
            }
        }
    }
}

#[test]
fn protected_operations_document_scopes_and_rejections_and_public_ones_do_not() {
    let api = app().api;
    let op = |path: &str, method: &str| api["paths"][path][method].clone();
    assert_eq!(
        op("/orders", "get")["security"],
        json!([{SECURITY_SCHEME: ["orders:read"]}])
    );
    assert_eq!(
        op("/orders", "post")["security"],
        json!([{SECURITY_SCHEME: ["orders:write"]}])
    );
    assert_eq!(
        op("/catalog", "get")["security"],
        json!([{SECURITY_SCHEME: ["products:read"]}, {SECURITY_SCHEME: ["inventory:read"]}]),
        "any of: one alternative each"
    );
    assert_eq!(
        op("/refunds", "post")["security"],
        json!([{SECURITY_SCHEME: ["orders:read", "orders:write"]}]),
        "two checks: both sets"
    );
    for (path, method) in [
        ("/orders", "get"),
        ("/catalog", "get"),
        ("/refunds", "post"),
    ] {
        let responses = &op(path, method)["responses"];
        for status in ["401", "403", "429", "503"] {
            assert_eq!(
                responses[status]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/TowerPatProblem",
                "{method} {path} {status}"
            );
        }
        assert!(
            responses["200"].is_object(),
            "the route's own responses stay"
        );
        for header in ["Retry-After", "RateLimit", "RateLimit-Policy"] {
            assert!(
                responses["429"]["headers"][header].is_object(),
                "{path}: 429 {header}"
            );
        }
        for header in ["RateLimit", "RateLimit-Policy"] {
            assert!(
                responses["200"]["headers"][header].is_object(),
                "{path}: 200 {header}"
            );
        }
    }
    assert!(op("/health", "get").get("security").is_none());
    assert!(op("/health", "get")["responses"].get("401").is_none());

    let scheme = &api["components"]["securitySchemes"][SECURITY_SCHEME];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "nvl_live_<72 lowercase hex>");
    let description = scheme["description"].as_str().unwrap();
    for entry in nuvlyx::scopes().entries() {
        assert!(
            description.contains(&format!(
                "| `{}` | {}",
                entry.scope.as_str(),
                entry.description
            )),
            "{description}"
        );
    }
    assert!(description.contains("(coming soon)"));
    assert_eq!(
        api["components"]["schemas"]["TowerPatProblem"]["required"],
        json!(["type", "title", "status", "detail"])
    );
}

#[test]
#[should_panic(expected = "order:read")]
fn a_route_scope_outside_the_catalog_is_refused_when_built() {
    let auth = AuthLayer::new(MemoryStore::new(), nuvlyx::live());
    let _: utoipa_axum::router::UtoipaMethodRouter =
        routes!(list_orders).require_scopes(&auth, ["order:read"]);
}
