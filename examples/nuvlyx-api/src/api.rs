//! The Nuvlyx external API: one route per row of the scope table.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_pat::{AuthLayer, Authenticated, TokenConfig};
use tower_pat_leak_reports::LeakReports;
use tower_pat_utoipa::{BearerSecurity, ScopedRoute};
use utoipa::openapi::{OpenApi, Server};
use utoipa::Modify;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::store::Store;

/// Which token called, as every handler reports it.
fn caller(who: &Authenticated) -> Value {
    json!({ "id": who.token_id().to_string(), "name": who.name(), "store": who.owner().as_str() })
}

/// One handler: its OpenAPI operation, and its answer with the caller
/// added.
macro_rules! handler {
    ($name:ident, $method:ident, $path:literal, $summary:literal, $body:expr) => {
        #[utoipa::path(
            $method,
            path = $path,
            summary = $summary,
            tag = "external",
            responses((status = 200, description = "Demo data, with the calling token's id, name and store under `token`.", body = Object))
        )]
        async fn $name(who: Authenticated) -> Json<Value> {
            let mut v: Value = $body;
            v["token"] = caller(&who);
            Json(v)
        }
    };
}

handler!(
    list_products,
    get,
    "/api/v1/external/products",
    "Lists products and their variations.",
    json!({ "products": [
        { "id": "prd_1", "name": "Antivirus Pro — 1 year", "variations": ["1 PC", "3 PCs"] },
        { "id": "prd_2", "name": "Office Suite license", "variations": ["Home", "Business"] }
    ]})
);
handler!(
    create_product,
    post,
    "/api/v1/external/products",
    "Creates a product (as a draft).",
    json!({ "created": { "id": "prd_3", "status": "draft" } })
);
handler!(
    get_inventory,
    get,
    "/api/v1/external/inventory",
    "Shows stock levels.",
    json!({ "inventory": [
        { "product": "prd_1", "in_stock": 42 }, { "product": "prd_2", "in_stock": 7 }
    ]})
);
handler!(
    upload_licenses,
    post,
    "/api/v1/external/inventory/licenses",
    "Uploads license keys.",
    json!({ "uploaded": 0, "note": "demo: nothing stored" })
);
handler!(
    list_orders,
    get,
    "/api/v1/external/orders",
    "Lists orders and their status.",
    json!({ "orders": [
        { "id": "ord_1001", "status": "paid", "total": "19.90" },
        { "id": "ord_1002", "status": "delivered", "total": "7.50" }
    ]})
);
handler!(
    create_order,
    post,
    "/api/v1/external/orders",
    "Creates an order.",
    json!({ "created": { "id": "ord_1003", "status": "pending" } })
);
handler!(
    list_customers,
    get,
    "/api/v1/external/customers",
    "Lists customers.",
    json!({ "customers": [ { "id": "cus_1", "email": "ada@example.com" } ] })
);
handler!(
    create_customer,
    post,
    "/api/v1/external/customers",
    "Creates a customer (coming soon: no token can hold `customers:write` yet).",
    json!({ "created": { "id": "cus_2" } })
);
handler!(
    get_wallet,
    get,
    "/api/v1/external/wallet",
    "Shows the wallet balance.",
    json!({ "wallet": { "balance": "120.00", "currency": "EUR" } })
);
handler!(
    top_up_wallet,
    post,
    "/api/v1/external/wallet/topups",
    "Tops up the wallet.",
    json!({ "topped_up": "0.00", "note": "demo: no money moved" })
);
handler!(
    list_webhooks,
    get,
    "/api/v1/external/webhooks",
    "Lists webhook subscriptions.",
    json!({ "webhooks": [ { "id": "wh_1", "url": "https://example.com/hook" } ] })
);
handler!(
    create_webhook,
    post,
    "/api/v1/external/webhooks",
    "Creates a webhook subscription.",
    json!({ "created": { "id": "wh_2" } })
);

/// The protected routes, each documented with the scope it requires
/// (one declaration for both), with the checks built from `auth` (which is
/// not applied here). `customers:write` is "coming soon": no token can
/// hold it yet.
pub fn routes(auth: &AuthLayer) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_products).require_scopes(auth, ["products:read"]))
        .routes(routes!(create_product).require_scopes(auth, ["products:write"]))
        .routes(routes!(get_inventory).require_scopes(auth, ["inventory:read"]))
        .routes(routes!(upload_licenses).require_scopes(auth, ["inventory:write"]))
        .routes(routes!(list_orders).require_scopes(auth, ["orders:read"]))
        .routes(routes!(create_order).require_scopes(auth, ["orders:write"]))
        .routes(routes!(list_customers).require_scopes(auth, ["customers:read"]))
        .routes(routes!(create_customer).require_scopes(auth, ["customers:write"]))
        .routes(routes!(get_wallet).require_scopes(auth, ["wallet:read"]))
        .routes(routes!(top_up_wallet).require_scopes(auth, ["wallet:write"]))
        .routes(routes!(list_webhooks).require_scopes(auth, ["webhooks:manage"]))
        .routes(routes!(create_webhook).require_scopes(auth, ["webhooks:manage"]))
}

/// The OpenAPI document's own parts: title, version, the bearer scheme
/// with the scope table.
fn describe(api: &mut OpenApi, config: &TokenConfig) {
    api.info.title = "Nuvlyx external API".into();
    api.info.version = "1.0.0".into();
    api.info.description = Some(
        "The Nuvlyx store API for bots and integrations, authenticated with personal access tokens \
         (Settings → API Tokens). Served by the tower-pat demo."
            .into(),
    );
    api.info.license = None;
    api.info.contact = None;
    api.servers = Some(vec![Server::new("https://127.0.0.1:8443")]);
    BearerSecurity::new(config).modify(api);
}

/// The whole application: the protected routes behind `auth`; the
/// OpenAPI document at `/openapi.json` and the leak-report endpoint at
/// `/leak-reports/github`, both outside it (the scanner signs its
/// reports instead); and, for load tests, an unprotected twin of
/// `GET orders` when `twin` is set.
pub fn app(auth: AuthLayer, config: &TokenConfig, leaks: LeakReports<Store>, twin: bool) -> Router {
    let (protected, mut api) = routes(&auth).split_for_parts();
    describe(&mut api, config);
    let api = Arc::new(api);
    let app = protected
        .layer(auth)
        .route(
            "/openapi.json",
            get(move || async move { Json(api.as_ref().clone()) }),
        )
        .route_service("/leak-reports/github", leaks);
    if twin {
        app.route("/unprotected/orders", get(unprotected_orders))
    } else {
        app
    }
}

async fn unprotected_orders() -> Json<Value> {
    let mut v = json!({ "orders": [
        { "id": "ord_1001", "status": "paid", "total": "19.90" },
        { "id": "ord_1002", "status": "delivered", "total": "7.50" }
    ]});
    v["token"] = json!({ "id": "none", "name": "none", "store": "none" });
    Json(v)
}

/// The plain-HTTP listener's application: every request, whatever its
/// target or token, gets the auth layer's HTTPS-required answer (403,
/// never a redirect), without running any handler. `auth` must not be
/// told the connection is secure (no `TlsConnection` here). A well-formed
/// token seen here travelled in clear: the layer checks its secret against
/// the store off the response path, and reports (WARN, and `token.exposed`
/// to its event sink) only a live token's, once a day per token; a flood of
/// made-up tokens reports nothing.
pub fn plain_http_app(auth: AuthLayer) -> Router {
    Router::new()
        .fallback(|| async { (StatusCode::FORBIDDEN, "HTTPS required") })
        .layer(auth)
}
