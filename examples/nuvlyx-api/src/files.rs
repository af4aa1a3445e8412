//! The data directory's files, kept private to the user running the demo:
//! the directory 0700, the token database and the private key 0600, and
//! nothing written through a symbolic link planted in the directory.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context, Result};

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// Creates `dir` (0700) if needed, and takes group and other access away
/// from an existing one.
pub fn private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    set_mode(dir, 0o700)
}

/// Makes sure `path` is a regular file readable by its owner only (0600),
/// creating it empty if it does not exist (SQLite then creates its `-wal`
/// and `-shm` files with the same mode).
pub fn private_file(path: &Path) -> Result<()> {
    if !is_regular(path)? {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        options
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
    }
    set_mode(path, 0o600)
}

/// Whether `path` is a regular file. A symbolic link there is an error,
/// never followed.
pub fn is_regular(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(anyhow!(
            "{} is a symbolic link: refusing to use it (remove it to let the demo recreate the file)",
            path.display()
        )),
        Ok(m) => Ok(m.is_file()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Takes group and other access away from an existing private file.
pub fn tighten(path: &Path) -> Result<()> {
    set_mode(path, 0o600)
}

/// Writes `bytes` to `path` with `mode`: into a new temporary file in the
/// same directory (created exclusively, so a planted link is never
/// followed), then renamed over `path` (which replaces a link there, not
/// its target).
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| anyhow!("{e}"))?;
    let temp = dir.join(format!(".{name}.{:016x}.tmp", u64::from_ne_bytes(nonce)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&temp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = renamed {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> Result<()> {
    Ok(())
}
