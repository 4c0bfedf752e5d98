//! The SPKI (DER) and PEM public-key parsers: a key that parses re-encodes to a key that
//! parses to the same address.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = keyrite_core::crypto::public_key_from_spki_der(data) {
        let again = keyrite_core::crypto::public_key_from_spki_der(&keyrite_core::crypto::spki_der(&key))
            .expect("re-encoded SPKI parses");
        assert_eq!(keyrite_core::crypto::evm_address(&key), keyrite_core::crypto::evm_address(&again));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keyrite_core::crypto::public_key_from_pem(text);
    }
});
