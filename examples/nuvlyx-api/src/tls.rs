//! The demo's TLS certificate: a self-signed pair for localhost, made on
//! first start and kept private in the data directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::files;

/// Loads `cert.pem`/`key.pem` from the data directory, generating a
/// self-signed pair for localhost on first start.
pub fn load_or_create_cert(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    files::private_dir(dir)?;
    if files::is_regular(&cert)? && files::is_regular(&key)? {
        files::tighten(&key)?;
        return Ok((cert, key));
    }
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .context("generating a certificate")?;
    files::replace(
        &key,
        generated.signing_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    files::replace(&cert, generated.cert.pem().as_bytes(), 0o644)?;
    eprintln!("generated a self-signed certificate: {}", cert.display());
    Ok((cert, key))
}
