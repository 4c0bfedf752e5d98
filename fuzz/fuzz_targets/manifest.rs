//! The manifest parser and validator: any bytes give a manifest or diagnostics, never a
//! panic, and every diagnostic has a position.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(diags) = keyrite::manifest::parse(std::path::Path::new("fuzz.yaml"), text) {
        assert!(!diags.0.is_empty());
        assert!(diags.0.iter().all(|d| d.line >= 1 || d.code == "yaml"));
    }
});
