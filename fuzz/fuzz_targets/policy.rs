//! IAM policy decoding and normalisation: any policy that parses is equivalent to itself
//! and has an empty diff with itself.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(policy) = keyrite_core::policy::Policy::from_text(text) {
        assert!(policy.equivalent(&policy));
        assert!(keyrite_core::policy::diff(&policy, &policy).is_empty());
    }
});
