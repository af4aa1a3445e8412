//! The Nuvlyx external API: one route per row of the scope table.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_pat::{AuthLayer, Authenticated, TokenId};

/// Which token called, as every handler reports it.
fn caller(who: &Authenticated) -> Value {
    json!({ "id": who.token_id().to_string(), "name": who.name(), "store": who.owner().as_str() })
}

macro_rules! handler {
    ($name:ident, $body:expr) => {
        async fn $name(who: Authenticated) -> Json<Value> {
            let mut v: Value = $body;
            v["token"] = caller(&who);
            Json(v)
        }
    };
}

handler!(
    list_products,
    json!({ "products": [
        { "id": "prd_1", "name": "Antivirus Pro — 1 year", "variations": ["1 PC", "3 PCs"] },
        { "id": "prd_2", "name": "Office Suite license", "variations": ["Home", "Business"] }
    ]})
);
handler!(
    create_product,
    json!({ "created": { "id": "prd_3", "status": "draft" } })
);
handler!(
    get_inventory,
    json!({ "inventory": [
        { "product": "prd_1", "in_stock": 42 }, { "product": "prd_2", "in_stock": 7 }
    ]})
);
handler!(
    upload_licenses,
    json!({ "uploaded": 0, "note": "demo: nothing stored" })
);
handler!(
    list_orders,
    json!({ "orders": [
        { "id": "ord_1001", "status": "paid", "total": "19.90" },
        { "id": "ord_1002", "status": "delivered", "total": "7.50" }
    ]})
);
handler!(
    create_order,
    json!({ "created": { "id": "ord_1003", "status": "pending" } })
);
handler!(
    list_customers,
    json!({ "customers": [ { "id": "cus_1", "email": "ada@example.com" } ] })
);
handler!(create_customer, json!({ "created": { "id": "cus_2" } }));
handler!(
    get_wallet,
    json!({ "wallet": { "balance": "120.00", "currency": "EUR" } })
);
handler!(
    top_up_wallet,
    json!({ "topped_up": "0.00", "note": "demo: no money moved" })
);
handler!(
    list_webhooks,
    json!({ "webhooks": [ { "id": "wh_1", "url": "https://example.com/hook" } ] })
);
handler!(create_webhook, json!({ "created": { "id": "wh_2" } }));

/// The protected routes, with the scope checks built from `auth` (which
/// is not applied here).
pub fn routes(auth: &AuthLayer) -> Router {
    let r = |scope: &str| auth.require_scopes([scope]);
    Router::new()
        .route(
            "/api/v1/external/products",
            get(list_products)
                .route_layer(r("products:read"))
                .merge(post(create_product).route_layer(r("products:write"))),
        )
        .route(
            "/api/v1/external/inventory",
            get(get_inventory).route_layer(r("inventory:read")),
        )
        .route(
            "/api/v1/external/inventory/licenses",
            post(upload_licenses).route_layer(r("inventory:write")),
        )
        .route(
            "/api/v1/external/orders",
            get(list_orders)
                .route_layer(r("orders:read"))
                .merge(post(create_order).route_layer(r("orders:write"))),
        )
        .route(
            "/api/v1/external/customers",
            get(list_customers)
                .route_layer(r("customers:read"))
                // customers:write is "coming soon": no token can hold it.
                .merge(post(create_customer).route_layer(r("customers:write"))),
        )
        .route(
            "/api/v1/external/wallet",
            get(get_wallet).route_layer(r("wallet:read")),
        )
        .route(
            "/api/v1/external/wallet/topups",
            post(top_up_wallet).route_layer(r("wallet:write")),
        )
        .route(
            "/api/v1/external/webhooks",
            get(list_webhooks)
                .route_layer(r("webhooks:manage"))
                .merge(post(create_webhook).route_layer(r("webhooks:manage"))),
        )
}

/// The whole application: protected routes behind `auth`, plus (for load
/// tests) an unprotected twin of `GET orders` when `twin` is set.
pub fn app(auth: AuthLayer, twin: bool) -> Router {
    let app = routes(&auth).layer(auth);
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
/// target or token, gets the same HTTPS-required answer (never a redirect),
/// without running the auth layer or any handler. A well-formed token seen
/// here travelled in clear: its id is logged so it can be revoked.
pub fn plain_http_app() -> Router {
    let exposed = Arc::new(ExposureLog::default());
    Router::new().fallback(move |headers: HeaderMap| {
        let exposed = exposed.clone();
        async move {
            if let Ok(token) = tower_pat::bearer_token(&headers) {
                if let Ok(id) = tower_pat::preset::nuvlyx_live().format().parse_bytes(token) {
                    exposed.note(id);
                }
            }
            https_required()
        }
    })
}

/// The HTTPS-required answer: 403 with a problem+json body.
fn https_required() -> Response {
    let body = json!({
        "type": "https://www.rfc-editor.org/rfc/rfc6750#section-5.3",
        "title": "HTTPS required",
        "status": 403,
        "detail": "This API accepts requests over HTTPS only. If a token was sent over plain HTTP, revoke it.",
        "error": "https_required",
    });
    (
        StatusCode::FORBIDDEN,
        [
            (header::CONTENT_TYPE, "application/problem+json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Warns once per exposed token id, for the first 1,000 ids; past that, one
/// line says further exposures are not listed, so a flood of made-up tokens
/// cannot flood the log.
#[derive(Default)]
struct ExposureLog {
    seen: Mutex<HashSet<TokenId>>,
}

const MAX_LISTED_EXPOSURES: usize = 1_000;

impl ExposureLog {
    fn note(&self, id: TokenId) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() > MAX_LISTED_EXPOSURES || seen.contains(&id) {
            return;
        }
        seen.insert(id);
        if seen.len() > MAX_LISTED_EXPOSURES {
            tracing::warn!("more than {MAX_LISTED_EXPOSURES} distinct tokens seen over plain HTTP; further ones are not listed");
        } else {
            tracing::warn!(token_id = %id, "token received over plain HTTP: consider it exposed and revoke it (`tokens revoke {id}`)");
        }
    }
}
