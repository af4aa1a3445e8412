//! The Nuvlyx external API: one route per row of the scope table.

use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_pat::{require_scopes, AuthLayer, Authenticated};

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

/// The protected routes, without the auth layer.
pub fn routes() -> Router {
    let r = |scope: &str| require_scopes([scope]);
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
    let app = routes().layer(auth);
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

/// The plain-HTTP listener's application: every request gets the
/// HTTPS-required rejection (never a redirect); a token seen here is
/// reported as exposed.
pub fn plain_http_app(auth: AuthLayer) -> Router {
    Router::new()
        .fallback(|| async { "unreachable" })
        .layer(auth)
}

/// Parses `30s`, `15m`, `24h`, `30d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err =
        || format!("invalid duration {s:?}: use a number followed by s, m, h or d (e.g. 30d)");
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(err)?,
        "h" => n.checked_mul(3600).ok_or_else(err)?,
        "d" => n.checked_mul(86_400).ok_or_else(err)?,
        _ => return Err(err()),
    };
    if secs == 0 {
        return Err(err());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        for bad in [
            "",
            "d",
            "10",
            "10w",
            "-1d",
            "0s",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
