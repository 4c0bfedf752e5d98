//! The manifest parser and validator: any bytes give a manifest or diagnostics, never a
//! panic, and every diagnostic has a position.
#![no_main]
use std::sync::LazyLock;

use keyrite_core::schema::{Schema, Schemas};
use libfuzzer_sys::fuzz_target;

/// Every kind keyrite ships, as the CLI registers them.
static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| {
    let aws = keyrite_aws::KINDS.iter().map(|k| *k as &'static dyn Schema);
    Schemas::new(aws.chain(keyrite_gcp::KINDS.iter().map(|k| *k as &'static dyn Schema)))
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = std::path::Path::new("fuzz.yaml");
    if let Err(diags) = keyrite_core::manifest::Manifest::parse(path, text, &SCHEMAS) {
        assert!(!diags.0.is_empty());
        assert!(diags.0.iter().all(|d| d.line >= 1 || d.code == "yaml"));
    }
});
