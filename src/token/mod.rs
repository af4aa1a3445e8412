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
//! use tower_pat::{TokenDigest, TokenFormat};
//!
//! let format = tower_pat::preset::nuvlyx_live().format().clone();
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

mod format;
pub(crate) mod hex;
mod id;
mod plaintext;

pub use self::format::{Environment, FormatError, InvalidPrefix, TokenFormat};
pub use self::id::{ParseTokenIdError, TokenId};
pub use self::plaintext::{MintedToken, PlaintextToken};

pub(crate) const ID_LEN: usize = 8;
pub(crate) const SECRET_LEN: usize = 24;
const CRC_LEN: usize = 4;
pub(crate) const BODY_LEN: usize = ID_LEN + SECRET_LEN + CRC_LEN;
/// Number of hex characters after `{prefix}_{environment}_`.
pub(crate) const BODY_HEX_LEN: usize = BODY_LEN * 2;
