// A plaintext token cannot be compared with `==` (it would not be constant time).
fn main() {
    let f = tower_pat::preset::nuvlyx_live().format().clone();
    let a = f.mint().token;
    let b = f.mint().token;
    let _ = a == b;
}
