// A plaintext token has no `Display`: it cannot end up in a log by `{}`.
fn main() {
    let t = tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).unwrap().mint().token;
    println!("{}", t);
}
