// A plaintext token cannot be compared with `==` (it would not be constant time).
fn main() {
    let f = tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).unwrap();
    let a = f.mint().token;
    let b = f.mint().token;
    let _ = a == b;
}
