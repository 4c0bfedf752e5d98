//! Strict DER decoding of ECDSA signatures as returned by AWS KMS `Sign`.
//!
//! This walker is hand-written instead of using `ecdsa::der::Signature`
//! because keyrite needs (a) exact-length rules enforced at every level,
//! including rejecting bytes after the SEQUENCE, and (b) a distinct,
//! explainable error for every way an input can be malformed, so that a
//! `keyrite sig from-der` failure tells the operator precisely what is wrong.
//!
//! Accepted grammar (X.690 DER, short-form lengths only):
//! `30 L  02 Lr r-bytes  02 Ls s-bytes` with `L = 2 + Lr + 2 + Ls` equal to
//! the remaining input, `1 <= Lr, Ls <= 33`, each INTEGER minimal and
//! non-negative, and each value in `1..n`.

use k256::NonZeroScalar;

use super::error::{CryptoError, SigComponent};

/// ASN.1 universal tag of a constructed SEQUENCE.
const SEQUENCE_TAG: u8 = 0x30;
/// ASN.1 universal tag of an INTEGER.
const INTEGER_TAG: u8 = 0x02;
/// Set on a length byte that introduces a long-form length.
const LONG_FORM_BIT: u8 = 0x80;
/// Largest INTEGER content: 32 magnitude bytes plus one sign-padding 0x00.
const MAX_INTEGER_LEN: usize = 33;

/// Parses a strict DER ECDSA signature into big-endian, left-padded `r`
/// and `s`. The signature's `s` is returned as encoded (it may be high);
/// see [`super::normalize_low_s`].
///
/// # Errors
/// One distinct `CryptoError::Der*` variant per violated rule (see the module docs).
pub fn parse_der_signature(der: &[u8]) -> Result<([u8; 32], [u8; 32]), CryptoError> {
    let mut body = read_sequence_body(der)?;
    let r = read_integer(&mut body, SigComponent::R)?;
    let s = read_integer(&mut body, SigComponent::S)?;
    if !body.is_empty() {
        return Err(CryptoError::DerDataAfterIntegers { count: body.len() });
    }
    Ok((r, s))
}

/// Checks the outer SEQUENCE header and returns exactly its content bytes.
fn read_sequence_body(der: &[u8]) -> Result<&[u8], CryptoError> {
    let (&tag, rest) = der.split_first().ok_or(CryptoError::DerEmpty)?;
    if tag != SEQUENCE_TAG {
        return Err(CryptoError::DerNotSequence { found: tag });
    }
    let (&len_byte, content) = rest.split_first().ok_or(CryptoError::DerMissingSequenceLength)?;
    if len_byte & LONG_FORM_BIT != 0 {
        return Err(CryptoError::DerSequenceLongFormLength { found: len_byte });
    }
    let declared = usize::from(len_byte);
    match content.len().cmp(&declared) {
        std::cmp::Ordering::Less => Err(CryptoError::DerSequenceTruncated { declared, available: content.len() }),
        std::cmp::Ordering::Greater => Err(CryptoError::DerTrailingBytes { count: content.len() - declared }),
        std::cmp::Ordering::Equal => Ok(content),
    }
}

/// Reads one INTEGER from the front of `input`, advancing it, and returns
/// the validated value as a 32-byte big-endian scalar.
fn read_integer(input: &mut &[u8], component: SigComponent) -> Result<[u8; 32], CryptoError> {
    let (&tag, rest) = input.split_first().ok_or(CryptoError::DerMissingInteger { component })?;
    if tag != INTEGER_TAG {
        return Err(CryptoError::DerIntegerTag { component, found: tag });
    }
    let (&len_byte, rest) = rest.split_first().ok_or(CryptoError::DerIntegerTruncated { component })?;
    let len = integer_length(len_byte, component)?;
    if len > rest.len() {
        return Err(CryptoError::DerIntegerTruncated { component });
    }
    let (content, remaining) = rest.split_at(len);
    *input = remaining;
    check_minimal_non_negative(content, component)?;
    scalar_from_magnitude(content, component)
}

/// Validates an INTEGER length byte: short form, 1..=33.
fn integer_length(len_byte: u8, component: SigComponent) -> Result<usize, CryptoError> {
    if len_byte & LONG_FORM_BIT != 0 {
        return Err(CryptoError::DerIntegerLongFormLength { component, found: len_byte });
    }
    match usize::from(len_byte) {
        0 => Err(CryptoError::DerIntegerEmpty { component }),
        len if len > MAX_INTEGER_LEN => Err(CryptoError::DerIntegerTooLong { component, len }),
        len => Ok(len),
    }
}

/// Enforces two's-complement DER rules on non-empty INTEGER content: no
/// sign bit, and a leading 0x00 only when the next byte's high bit is set.
fn check_minimal_non_negative(content: &[u8], component: SigComponent) -> Result<(), CryptoError> {
    match content {
        [first, ..] if first & 0x80 != 0 => Err(CryptoError::DerIntegerNegative { component }),
        [0x00, second, ..] if second & 0x80 == 0 => Err(CryptoError::DerIntegerNonMinimal { component }),
        _ => Ok(()),
    }
}

/// Left-pads a minimal, non-negative INTEGER to 32 bytes and checks it is
/// in `1..n`.
fn scalar_from_magnitude(content: &[u8], component: SigComponent) -> Result<[u8; 32], CryptoError> {
    let magnitude = match content {
        [0x00, rest @ ..] if !rest.is_empty() => rest,
        _ => content,
    };
    if magnitude.len() > 32 {
        return Err(CryptoError::DerIntegerOutOfRange { component });
    }
    let mut scalar = [0u8; 32];
    scalar[32 - magnitude.len()..].copy_from_slice(magnitude);
    if scalar == [0u8; 32] {
        return Err(CryptoError::DerIntegerZero { component });
    }
    if NonZeroScalar::try_from(&scalar[..]).is_err() {
        return Err(CryptoError::DerIntegerOutOfRange { component });
    }
    Ok(scalar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_support::{GROUP_ORDER_HEX, der_integer, der_signature, signing_key};
    use k256::ecdsa::Signature;
    use k256::ecdsa::signature::hazmat::PrehashSigner;

    /// Minimal content length of a DER INTEGER holding `value`.
    fn der_int_len(value: &[u8; 32]) -> usize {
        der_integer(value).len() - 2
    }

    /// A real RFC 6979 signature by key `key_seed` over `keccak256(msg_seed)`.
    fn real_signature(key_seed: u64, msg_seed: u64) -> ([u8; 32], [u8; 32]) {
        let prehash = crate::crypto::keccak256(&msg_seed.to_be_bytes());
        let signature: Signature = signing_key(key_seed).sign_prehash(&prehash).unwrap();
        let (r, s) = signature.split_bytes();
        (r.into(), s.into())
    }

    /// Searches deterministic signatures for one with an INTEGER of `len`
    /// content bytes in either `r` or `s`.
    fn find_signature_with_integer_len(len: usize, budget: u64) -> Option<([u8; 32], [u8; 32])> {
        (0..budget).map(|i| real_signature(1, i)).find(|(r, s)| der_int_len(r) == len || der_int_len(s) == len)
    }

    fn valid_der() -> Vec<u8> {
        let (r, s) = real_signature(1, 0);
        der_signature(&r, &s)
    }

    #[test]
    fn test_encoder_agrees_with_k256_der_encoding() {
        for i in 0..20 {
            let (r, s) = real_signature(2, i);
            let reference = Signature::from_scalars(r, s).unwrap().to_der();
            assert_eq!(der_signature(&r, &s), reference.as_bytes());
        }
    }

    #[test]
    fn integers_of_31_32_and_33_bytes_round_trip() {
        for len in [31, 32, 33] {
            let (r, s) =
                find_signature_with_integer_len(len, 3_000).unwrap_or_else(|| panic!("no {len}-byte integer found"));
            let der = der_signature(&r, &s);
            assert_eq!(parse_der_signature(&der), Ok((r, s)), "len {len}");
        }
    }

    #[test]
    fn integer_of_30_bytes_from_a_pinned_real_signature_round_trips() {
        // Found once by searching ~2^17 signatures of key seed 1 (too slow to
        // repeat in every test run); the assertions below re-derive it.
        let (r, s) = real_signature(1, PINNED_30_BYTE_MSG_SEED);
        assert!(der_int_len(&r) == 30 || der_int_len(&s) == 30);
        let der = der_signature(&r, &s);
        assert!(der.len() < 70);
        assert_eq!(parse_der_signature(&der), Ok((r, s)));
    }

    /// Message seed whose signature (key seed 1) has a 30-byte r or s.
    const PINNED_30_BYTE_MSG_SEED: u64 = 19_621;

    #[test]
    fn trailing_byte_is_rejected() {
        let mut der = valid_der();
        der.push(0x00);
        assert_eq!(parse_der_signature(&der), Err(CryptoError::DerTrailingBytes { count: 1 }));
    }

    #[test]
    fn wrong_total_length_is_rejected() {
        let mut der = valid_der();
        der[1] += 1;
        let available = der.len() - 2;
        assert_eq!(
            parse_der_signature(&der),
            Err(CryptoError::DerSequenceTruncated { declared: available + 1, available })
        );
        der[1] -= 2;
        assert_eq!(parse_der_signature(&der), Err(CryptoError::DerTrailingBytes { count: 1 }));
        let truncated = &valid_der()[..10];
        assert!(matches!(parse_der_signature(truncated), Err(CryptoError::DerSequenceTruncated { .. })));
    }

    #[test]
    fn empty_and_headless_inputs_are_rejected() {
        assert_eq!(parse_der_signature(&[]), Err(CryptoError::DerEmpty));
        assert_eq!(parse_der_signature(&[0x30]), Err(CryptoError::DerMissingSequenceLength));
        assert_eq!(
            parse_der_signature(&[0x30, 0x00]),
            Err(CryptoError::DerMissingInteger { component: SigComponent::R })
        );
    }

    #[test]
    fn wrong_tags_are_rejected() {
        let mut der = valid_der();
        der[0] = 0x31;
        assert_eq!(parse_der_signature(&der), Err(CryptoError::DerNotSequence { found: 0x31 }));
        let mut der = valid_der();
        der[2] = 0x03;
        assert_eq!(
            parse_der_signature(&der),
            Err(CryptoError::DerIntegerTag { component: SigComponent::R, found: 0x03 })
        );
        let mut der = valid_der();
        let s_tag = 4 + usize::from(der[3]);
        der[s_tag] = 0x04;
        assert_eq!(
            parse_der_signature(&der),
            Err(CryptoError::DerIntegerTag { component: SigComponent::S, found: 0x04 })
        );
    }

    #[test]
    fn zero_length_integer_is_rejected() {
        let (_, s) = real_signature(1, 0);
        let der = wrap_sequence(&[&[0x02, 0x00], &der_integer(&s)]);
        assert_eq!(parse_der_signature(&der), Err(CryptoError::DerIntegerEmpty { component: SigComponent::R }));
    }

    #[test]
    fn integer_of_34_bytes_is_rejected() {
        let (r, s) = real_signature(1, 0);
        let mut long_s = vec![0x02, 34, 0x00, 0x00];
        long_s.extend_from_slice(&s);
        let der = wrap_sequence(&[&der_integer(&r), &long_s]);
        assert_eq!(
            parse_der_signature(&der),
            Err(CryptoError::DerIntegerTooLong { component: SigComponent::S, len: 34 })
        );
    }

    #[test]
    fn non_minimal_leading_zero_is_rejected() {
        let mut r = [0x11u8; 32]; // high bit clear: no padding byte allowed
        r[0] = 0x7f;
        let (_, s) = real_signature(1, 0);
        let mut padded_r = vec![0x02, 33, 0x00];
        padded_r.extend_from_slice(&r);
        let der = wrap_sequence(&[&padded_r, &der_integer(&s)]);
        assert_eq!(parse_der_signature(&der), Err(CryptoError::DerIntegerNonMinimal { component: SigComponent::R }));
        // A zero value encoded with a padding byte is also non-minimal.
        let der = wrap_sequence(&[&[0x02, 0x02, 0x00, 0x00], &der_integer(&s)]);
        assert_eq!(parse_der_signature(&der), Err(CryptoError::DerIntegerNonMinimal { component: SigComponent::R }));
    }

    #[test]
    fn negative_integer_is_rejected() {
        let (r, s) = real_signature(1, 0);
        let mut negative_s = vec![0x02, 32];
        negative_s.extend_from_slice(&[0xff; 32]);
        let der = wrap_sequence(&[&der_integer(&r), &negative_s]);
        assert_eq!(parse_der_signature(&der), Err(CryptoError::DerIntegerNegative { component: SigComponent::S }));
        let der = wrap_sequence(&[&[0x02, 0x01, 0x80], &der_integer(&s)]);
        assert_eq!(parse_der_signature(&der), Err(CryptoError::DerIntegerNegative { component: SigComponent::R }));
    }

    #[test]
    fn zero_r_is_rejected() {
        let (_, s) = real_signature(1, 0);
        let der = wrap_sequence(&[&[0x02, 0x01, 0x00], &der_integer(&s)]);
        assert_eq!(parse_der_signature(&der), Err(CryptoError::DerIntegerZero { component: SigComponent::R }));
    }

    #[test]
    fn s_equal_to_or_above_n_is_rejected() {
        let (r, _) = real_signature(1, 0);
        let n: [u8; 32] = hex::decode(GROUP_ORDER_HEX).unwrap().try_into().unwrap();
        for s in [n, [0xff; 32]] {
            let der = der_signature(&r, &s);
            assert_eq!(
                parse_der_signature(&der),
                Err(CryptoError::DerIntegerOutOfRange { component: SigComponent::S })
            );
        }
        // 33 content bytes without a sign pad: a value >= 2^256.
        let mut huge = vec![0x02, 33, 0x01];
        huge.extend_from_slice(&[0u8; 32]);
        let der = wrap_sequence(&[&der_integer(&r), &huge]);
        assert_eq!(parse_der_signature(&der), Err(CryptoError::DerIntegerOutOfRange { component: SigComponent::S }));
    }

    #[test]
    fn n_minus_one_is_accepted() {
        let mut n_minus_1: [u8; 32] = hex::decode(GROUP_ORDER_HEX).unwrap().try_into().unwrap();
        n_minus_1[31] -= 1;
        let der = der_signature(&n_minus_1, &[0x01; 32]);
        assert_eq!(parse_der_signature(&der), Ok((n_minus_1, [0x01; 32])));
    }

    #[test]
    fn long_form_lengths_are_rejected() {
        let der = valid_der();
        let mut long_sequence = vec![0x30, 0x81, der[1]];
        long_sequence.extend_from_slice(&der[2..]);
        assert_eq!(parse_der_signature(&long_sequence), Err(CryptoError::DerSequenceLongFormLength { found: 0x81 }));
        let (r, s) = real_signature(1, 0);
        let r_int = der_integer(&r);
        let mut long_r = vec![0x02, 0x81];
        long_r.extend_from_slice(&r_int[1..]);
        let der = wrap_sequence(&[&long_r, &der_integer(&s)]);
        assert_eq!(
            parse_der_signature(&der),
            Err(CryptoError::DerIntegerLongFormLength { component: SigComponent::R, found: 0x81 })
        );
    }

    #[test]
    fn integer_overrunning_the_sequence_is_rejected() {
        let der = valid_der();
        let r_len = usize::from(der[3]);
        let mut short = der[..4 + r_len + 2].to_vec(); // r, then s header only
        short[1] = (short.len() - 2) as u8;
        assert_eq!(parse_der_signature(&short), Err(CryptoError::DerIntegerTruncated { component: SigComponent::S }));
    }

    #[test]
    fn missing_s_and_extra_element_are_rejected() {
        let (r, s) = real_signature(1, 0);
        let only_r = wrap_sequence(&[&der_integer(&r)]);
        assert_eq!(parse_der_signature(&only_r), Err(CryptoError::DerMissingInteger { component: SigComponent::S }));
        let three = wrap_sequence(&[&der_integer(&r), &der_integer(&s), &[0x05, 0x00]]);
        assert_eq!(parse_der_signature(&three), Err(CryptoError::DerDataAfterIntegers { count: 2 }));
    }

    #[test]
    fn every_truncation_is_rejected_and_no_mutation_panics() {
        let der = valid_der();
        for end in 0..der.len() {
            assert!(parse_der_signature(&der[..end]).is_err(), "prefix {end}");
        }
        for index in 0..der.len() {
            for value in 0..=u8::MAX {
                let mut mutated = der.clone();
                mutated[index] = value;
                let _ = parse_der_signature(&mutated);
            }
        }
    }

    #[test]
    fn every_error_message_is_distinct() {
        use std::collections::HashSet;
        let (r, s) = real_signature(1, 0);
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x31, 0x00],
            vec![0x30],
            vec![0x30, 0x81],
            vec![0x30, 0x05],
            [valid_der(), vec![0]].concat(),
            vec![0x30, 0x00],
            wrap_sequence(&[&[0x03, 0x00]]),
            wrap_sequence(&[&[0x02, 0x81]]),
            wrap_sequence(&[&[0x02, 0x05, 0x01]]),
            wrap_sequence(&[&[0x02, 0x00]]),
            wrap_sequence(&[&[0x02, 0x22]]),
            wrap_sequence(&[&[0x02, 0x02, 0x00, 0x01]]),
            wrap_sequence(&[&[0x02, 0x01, 0xff]]),
            wrap_sequence(&[&[0x02, 0x01, 0x00]]),
            der_signature(&[0xff; 32], &s),
            [wrap_sequence(&[&der_integer(&r), &der_integer(&s), &[0]])].concat(),
        ];
        let messages: HashSet<String> =
            cases.iter().map(|der| parse_der_signature(der).unwrap_err().to_string()).collect();
        assert_eq!(messages.len(), cases.len(), "{messages:#?}");
    }

    /// Wraps already-encoded elements in a short-form SEQUENCE.
    fn wrap_sequence(elements: &[&[u8]]) -> Vec<u8> {
        let body = elements.concat();
        let mut der = vec![SEQUENCE_TAG, u8::try_from(body.len()).unwrap()];
        der.extend_from_slice(&body);
        der
    }
}
