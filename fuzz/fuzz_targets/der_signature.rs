//! The strict DER signature parser: accepted signatures re-encode to exactly the input, and
//! normalising s never yields a high s.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((r, s)) = keyrite_core::crypto::parse_der_signature(data) {
        let (low, _) = keyrite_core::crypto::normalize_low_s(s);
        assert!(!keyrite_core::crypto::normalize_low_s(low).1, "normalised s is still high");
        let sig = k256::ecdsa::Signature::from_scalars(r, s).expect("accepted scalars are in range");
        assert_eq!(sig.to_der().as_bytes(), data, "accepted DER is canonical");
    }
});
