// A plaintext token has no `Display`: it cannot end up in a log by `{}`.
fn main() {
    let t = tower_pat::TokenFormat::nuvlyx_live().mint().token;
    println!("{}", t);
}
