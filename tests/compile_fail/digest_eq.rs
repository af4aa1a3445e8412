// A digest cannot be compared with `==`: use `ct_eq` or `verify`.
fn main() {
    let a = tower_pat::token::TokenDigest::of("a");
    let b = tower_pat::token::TokenDigest::of("b");
    let _ = a == b;
}
