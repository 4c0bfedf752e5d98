//! The manifest, as the core validates it (`keyrite_core::manifest`, re-exported here),
//! against every kind this build knows.

use std::path::Path;

pub use keyrite_core::manifest::*;

use crate::provider;

/// Reads and validates the manifest at `path` against every kind keyrite knows, and prints
/// its warnings.
pub fn load(path: &Path) -> anyhow::Result<Manifest> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read manifest {}: {e}", path.display()))?;
    let manifest = parse(path, &text)?;
    for w in &manifest.warnings {
        eprintln!("{}", w.as_warning());
    }
    Ok(manifest)
}

/// Validates manifest text against every kind keyrite knows.
pub fn parse(path: &Path, text: &str) -> Result<Manifest, Diagnostics> {
    Manifest::parse(path, text, provider::schemas())
}
