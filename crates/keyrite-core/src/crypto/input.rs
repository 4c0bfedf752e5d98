//! Parsing of 32-byte values typed by users or sent by the wallet platform.

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

use super::error::CryptoError;

/// Length of a digest / prehash in bytes.
const DIGEST_LEN: usize = 32;

/// Base64 decoding that accepts input with or without `=` padding.
const PADDING_INDIFFERENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
/// Standard alphabet (`+/`), padding optional.
const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, PADDING_INDIFFERENT);
/// URL-safe alphabet (`-_`), padding optional.
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, PADDING_INDIFFERENT);

/// Parses exactly 32 bytes of hex, with or without a `0x`/`0X` prefix.
/// Surrounding whitespace is ignored.
///
/// # Errors
/// [`CryptoError::InvalidHex`] or [`CryptoError::WrongLength`].
pub fn parse_hex32(s: &str) -> Result<[u8; 32], CryptoError> {
    let trimmed = s.trim();
    let digits = strip_hex_prefix(trimmed).unwrap_or(trimmed);
    exactly_32(hex::decode(digits)?)
}

/// Parses a 32-byte digest given as `0x`-prefixed hex or as base64
/// (standard or URL-safe alphabet, padded or not) — the wallet-platform
/// request contract. Surrounding whitespace is ignored.
///
/// Bare hex is refused with [`CryptoError::DigestBareHex`]: the prefix is
/// what distinguishes hex from base64 in the contract.
///
/// # Errors
/// [`CryptoError::InvalidHex`], [`CryptoError::DigestBareHex`],
/// [`CryptoError::DigestEncoding`] or [`CryptoError::WrongLength`].
pub fn parse_digest(s: &str) -> Result<[u8; 32], CryptoError> {
    let trimmed = s.trim();
    if let Some(digits) = strip_hex_prefix(trimmed) {
        return exactly_32(hex::decode(digits)?);
    }
    if looks_like_bare_hex_digest(trimmed) {
        return Err(CryptoError::DigestBareHex);
    }
    exactly_32(decode_base64_any(trimmed)?)
}

/// Removes a leading `0x` or `0X`.
fn strip_hex_prefix(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

/// 64 hex digits can only be a 48-byte base64 value, never a valid digest,
/// so such input is almost certainly hex missing its prefix.
fn looks_like_bare_hex_digest(s: &str) -> bool {
    s.len() == 2 * DIGEST_LEN && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Decodes base64 in the standard or URL-safe alphabet.
fn decode_base64_any(s: &str) -> Result<Vec<u8>, CryptoError> {
    BASE64_STANDARD.decode(s).or_else(|_| BASE64_URL_SAFE.decode(s)).map_err(|_| CryptoError::DigestEncoding)
}

/// Converts decoded bytes to a 32-byte array, reporting the actual length.
fn exactly_32(bytes: Vec<u8>) -> Result<[u8; 32], CryptoError> {
    let found = bytes.len();
    bytes.try_into().map_err(|_| CryptoError::WrongLength { expected: DIGEST_LEN, found })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

    /// A digest whose base64 forms use `+`, `/`, `-` and `_`.
    fn sample() -> [u8; 32] {
        let mut digest: [u8; 32] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        digest[0] = 0xfb; // base64 "+"/"-" region
        digest[1] = 0xff; // base64 "/"/"_" region
        digest
    }

    #[test]
    fn hex32_accepts_prefixed_bare_and_any_case() {
        let digest = sample();
        let lower = hex::encode(digest);
        assert_eq!(parse_hex32(&lower), Ok(digest));
        assert_eq!(parse_hex32(&format!("0x{lower}")), Ok(digest));
        assert_eq!(parse_hex32(&format!("0X{}", lower.to_uppercase())), Ok(digest));
        assert_eq!(parse_hex32(&format!(" 0x{lower}\n")), Ok(digest));
    }

    #[test]
    fn hex32_rejects_wrong_lengths_and_garbage() {
        assert_eq!(parse_hex32(&"ab".repeat(31)), Err(CryptoError::WrongLength { expected: 32, found: 31 }));
        assert_eq!(
            parse_hex32(&format!("0x{}", "ab".repeat(33))),
            Err(CryptoError::WrongLength { expected: 32, found: 33 })
        );
        assert!(matches!(parse_hex32("0xabc"), Err(CryptoError::InvalidHex(_))));
        assert!(matches!(parse_hex32(&format!("0x{}zz", "ab".repeat(31))), Err(CryptoError::InvalidHex(_))));
        assert_eq!(parse_hex32(""), Err(CryptoError::WrongLength { expected: 32, found: 0 }));
    }

    #[test]
    fn digest_accepts_hex_and_all_base64_variants() {
        let digest = sample();
        let encodings = [
            format!("0x{}", hex::encode(digest)),
            STANDARD.encode(digest),
            STANDARD_NO_PAD.encode(digest),
            URL_SAFE.encode(digest),
            URL_SAFE_NO_PAD.encode(digest),
        ];
        assert!(encodings[1].contains('+') && encodings[1].contains('/'));
        assert!(encodings[3].contains('-') && encodings[3].contains('_'));
        assert!(encodings[1].ends_with('='));
        for encoded in &encodings {
            assert_eq!(parse_digest(encoded), Ok(digest), "{encoded}");
        }
    }

    #[test]
    fn digest_rejects_31_and_33_bytes() {
        for len in [31usize, 33] {
            let bytes = vec![0x5a; len];
            let expected = Err(CryptoError::WrongLength { expected: 32, found: len });
            assert_eq!(parse_digest(&format!("0x{}", hex::encode(&bytes))), expected);
            assert_eq!(parse_digest(&STANDARD.encode(&bytes)), expected);
            assert_eq!(parse_digest(&URL_SAFE_NO_PAD.encode(&bytes)), expected);
        }
    }

    #[test]
    fn digest_rejects_garbage() {
        for garbage in ["", "not base64!", "0xnothex", "@@@@", "ab+/cd-_"] {
            assert!(parse_digest(garbage).is_err(), "{garbage:?} accepted");
        }
        assert_eq!(parse_digest("not base64!"), Err(CryptoError::DigestEncoding));
        assert_eq!(parse_digest(""), Err(CryptoError::WrongLength { expected: 32, found: 0 }));
    }

    #[test]
    fn digest_rejects_bare_hex_with_a_hint() {
        let bare = hex::encode(sample());
        assert_eq!(parse_digest(&bare), Err(CryptoError::DigestBareHex));
        assert!(CryptoError::DigestBareHex.to_string().contains("0x"));
    }

    #[test]
    fn digest_rejects_non_canonical_base64_trailing_bits() {
        // 43 unpadded chars carry 258 bits; the last 2 must be zero.
        let mut encoded = STANDARD_NO_PAD.encode(sample());
        encoded.pop();
        encoded.push('B'); // sets a trailing bit that no 32-byte value produces
        assert_eq!(parse_digest(&encoded), Err(CryptoError::DigestEncoding));
    }
}
