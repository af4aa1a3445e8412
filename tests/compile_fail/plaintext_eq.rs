// A plaintext token cannot be compared with `==` (it would not be constant time).
fn main() {
    let f = tower_pat::TokenFormat::nuvlyx_live();
    let a = f.mint().token;
    let b = f.mint().token;
    let _ = a == b;
}
