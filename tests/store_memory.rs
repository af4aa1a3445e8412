//! `MemoryStore` (and `CachedStore` over it) pass the conformance suite.

mod conformance;

use tower_pat::MemoryStore;

struct Memory;

impl conformance::Harness for Memory {
    type Store = MemoryStore;
    async fn make() -> Option<MemoryStore> {
        Some(MemoryStore::new())
    }
    async fn dump(store: &MemoryStore) -> Vec<u8> {
        use tower_pat::store::TokenAdmin;
        format!("{:?}", store.list(None).await.unwrap()).into_bytes()
    }
    async fn flush(_: &MemoryStore) {}
}

tower_pat::conformance_tests!(Memory);
