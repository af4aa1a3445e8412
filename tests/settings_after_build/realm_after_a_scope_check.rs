// A finished layer has no setters: a scope check built from it cannot
// answer with other settings than the layer's.
use tower_pat::{AuthLayer, Environment, MemoryStore, ScopeCatalog, TokenConfig, TokenFormat};

fn main() {
    let config = TokenConfig::new(
        TokenFormat::new("nvl", Environment::Live).unwrap(),
        ScopeCatalog::new().scope("orders:read", "Read orders."),
    );
    let auth = AuthLayer::new(MemoryStore::new(), config);
    let check = auth.require_scopes(["orders:read"]);
    let auth = auth.realm("changed afterwards");
    let _ = (auth, check);
}
