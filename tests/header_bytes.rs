//! No panic on any header bytes, and never a 2xx for junk (property tests).

mod common;

use axum::body::Body;
use common::*;
use http::{HeaderValue, StatusCode};
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_authorization_bytes_never_panic_or_authenticate(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let Ok(value) = HeaderValue::from_bytes(&bytes) else { return Ok(()) };
        let f = Fixture::new();
        let app = f.app();
        let req = https("/orders").header("authorization", value).body(Body::empty()).unwrap();
        let res = runtime().block_on(send(&app, req));
        prop_assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn bearer_with_arbitrary_token_text_never_authenticates(token in "[ -~]{0,120}") {
        let f = Fixture::new();
        let app = f.app();
        let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) else { return Ok(()) };
        let req = https("/orders").header("authorization", value).body(Body::empty()).unwrap();
        let res = runtime().block_on(send(&app, req));
        prop_assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn nvl_shaped_junk_is_rejected_offline(body in "[0-9a-f]{72}") {
        let f = Fixture::new();
        let app = f.app();
        let res = runtime().block_on(send(&app, bearer("/orders", &format!("nvl_live_{body}"))));
        prop_assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        // 1 in 2^32 random bodies has a valid checksum and reaches the store.
        prop_assert!(f.store.finds() <= 1);
    }
}
