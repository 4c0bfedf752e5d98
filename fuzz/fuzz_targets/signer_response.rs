//! The signer contract's two parsers: an endpoint's answer (self-test side) and a request
//! (serve side). Neither panics; a parsed request is always 32 bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(signature) = keyrite_core::contract::parse_response(data) {
        let _ = keyrite_core::signing::parse_hex(&signature);
    }
    let expected: keyrite_core::crypto::Address = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23".parse().unwrap();
    if let Ok(digest) = keyrite_core::contract::parse_request(data, &expected) {
        assert_eq!(digest.len(), 32);
    }
});
