//! The token format: minting, offline format checks and the plaintext type.
//!
//! A token is `{prefix}_{environment}_{72 lowercase hex}`, for example
//! `nvl_live_…`. The 72 hex characters encode 36 bytes:
//!
//! | bytes  | content                                                   |
//! |--------|-----------------------------------------------------------|
//! | 0..8   | token id — not secret, the store's lookup key             |
//! | 8..32  | secret — 192 bits from the operating system's CSPRNG      |
//! | 32..36 | CRC-32 (IEEE) of bytes 0..32, big-endian                  |
//!
//! The checksum lets [`TokenFormat::parse`] reject typos and junk without a
//! store call, and lets secret scanners recognise a real token. Only the
//! [`TokenDigest`] (SHA-256 of the whole token) is stored.
//!
//! ```
//! # fn your_token_config() -> tower_pat::TokenConfig {
//! #     // Your API's token format and scopes, here `nvl_live_…` tokens.
//! #     tower_pat::TokenConfig::new(
//! #         tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).unwrap(),
//! #         tower_pat::ScopeCatalog::new()
//! #             .scope("products:read", "List products.")
//! #             .scope("orders:read", "Read orders.")
//! #             .scope("orders:write", "Create orders.")
//! #             .scope("wallet:read", "Read the wallet balance."),
//! #     )
//! # }
//! use tower_pat::{token::TokenDigest, TokenFormat};
//!
//! let format = your_token_config().format().clone();
//! let minted = format.mint();
//! let token = minted.token.expose_secret();
//! assert!(token.starts_with("nvl_live_"));
//! assert_eq!(format.parse(token).unwrap(), minted.id);
//! assert!(minted.digest.verify(token));
//!
//! // A single changed character fails the checksum: no store is asked.
//! let mut typo = token.to_owned();
//! let last = typo.pop().unwrap();
//! typo.push(if last == '0' { '1' } else { '0' });
//! assert!(format.parse(&typo).is_err());
//! ```

mod digest;
pub(crate) mod format;
pub(crate) mod hex;
mod id;
mod plaintext;

pub use self::digest::TokenDigest;
#[allow(unused_imports)] // for the test kit and unit tests
pub(crate) use self::format::{Environment, TokenFormat};
pub use self::format::{FormatError, InvalidPrefix};
pub use self::id::TokenId;
pub use self::plaintext::{MintedToken, PlaintextToken};

pub(crate) const ID_LEN: usize = 8;
pub(crate) const SECRET_LEN: usize = 24;
const CRC_LEN: usize = 4;
pub(crate) const BODY_LEN: usize = ID_LEN + SECRET_LEN + CRC_LEN;
/// Number of hex characters after `{prefix}_{environment}_`.
pub(crate) const BODY_HEX_LEN: usize = BODY_LEN * 2;
