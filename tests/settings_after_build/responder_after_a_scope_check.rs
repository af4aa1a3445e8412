// A finished layer has no setters: its responder is fixed before any scope
// check exists.
use tower_pat::{response::EmptyBody, AuthLayer, Environment, MemoryStore, ScopeCatalog, TokenConfig, TokenFormat};

fn main() {
    let config = TokenConfig::new(
        TokenFormat::new("nvl", Environment::Live).unwrap(),
        ScopeCatalog::new().scope("orders:read", "Read orders."),
    );
    let auth = AuthLayer::new(MemoryStore::new(), config);
    let check = auth.require_scopes(["orders:read"]);
    let auth = auth.responder(EmptyBody).attach_rejections();
    let _ = (auth, check);
}
