// A plaintext token has no `Display`: it cannot end up in a log by `{}`.
fn main() {
    let t = tower_pat::preset::nuvlyx_live().format().mint().token;
    println!("{}", t);
}
