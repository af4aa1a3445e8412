//! [`PlaintextToken`]: a token's text, which exists once, at minting.

use std::fmt;

use zeroize::Zeroizing;

use super::TokenId;
use crate::token::TokenDigest;

/// The plaintext of a freshly minted token.
///
/// It exists once, at minting: show it to its owner and drop it. `Debug`
/// shows only the non-secret prefix; there is no `Display` and no
/// `PartialEq`; the memory is zeroized on drop.
pub struct PlaintextToken(Zeroizing<String>);

impl PlaintextToken {
    /// Takes ownership of a freshly minted token's text.
    pub(super) fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The token text, to hand to its owner exactly once.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// A non-secret preview (`nvl_live_a4f2…`): the prefix and the first
    /// four characters of the id, for listings and logs.
    pub fn preview(&self) -> String {
        preview_of(&self.0)
    }
}

fn preview_of(token: &str) -> String {
    let keep = token
        .rfind('_')
        .map_or(0, |i| i + 1)
        .saturating_add(4)
        .min(token.len());
    let head = token.get(..keep).unwrap_or("");
    format!("{head}…")
}

// `Zeroizing` wipes the text when the token is dropped.
impl zeroize::ZeroizeOnDrop for PlaintextToken {}

impl fmt::Debug for PlaintextToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlaintextToken({})", self.preview())
    }
}

/// A token straight out of [`TokenFormat::mint`](crate::token::TokenFormat::mint).
#[derive(Debug)]
#[non_exhaustive]
pub struct MintedToken {
    /// The plaintext, shown once.
    pub token: PlaintextToken,
    /// Its non-secret id.
    pub id: TokenId,
    /// SHA-256 of the plaintext: what the store keeps.
    pub digest: TokenDigest,
}

#[cfg(test)]
mod tests {
    fn live() -> crate::token::TokenFormat {
        crate::testing::live().format().clone()
    }

    #[test]
    fn plaintext_debug_shows_only_the_preview() {
        let m = live().mint();
        let shown = format!("{:?}", m.token);
        assert!(shown.starts_with("PlaintextToken(nvl_live_"));
        assert!(shown.len() < 40, "{shown}");
        assert!(!shown.contains(&m.token.expose_secret()[9..25]));
    }
}
