//! The signer contract every endpoint keyrite runs speaks (`keyrite serve`, the Rust Lambda),
//! as the Node templates speak it (`templates/shared/signer-core.mjs`): the request's hash
//! and `signerAddress`, and the answer's fields. One implementation, so that the Rust
//! endpoints cannot drift apart.
//!
//! Request: a JSON object with the 32-byte hash in the first of `userOpHash`, `useropHash`,
//! `hash`, `digest` that is present and not null: 0x-hex, base64 (standard or URL-safe,
//! padding optional), or 64 bare hex digits (as the Cloud KMS guide's callers send; base64
//! of 32 bytes is 43 or 44 characters, so the two never collide). An optional
//! `signerAddress` must be this signer's, in any case.
//!
//! Answer: `{"signature": "0x" r‖s‖v, "r", "s", "recid", "v", "address"}`.

use serde_json::{Value, json};

use crate::crypto::{self, Address};

/// Field names that may carry the hash, in order of precedence.
pub const HASH_FIELDS: [&str; 4] = ["userOpHash", "useropHash", "hash", "digest"];

/// Extracts the 32-byte hash from a request body, refusing another signer's address. The
/// error is the message the client gets with its 400.
pub fn parse_request(body: &[u8], expected: &Address) -> Result<[u8; 32], String> {
    if body.is_empty() {
        return Err("missing request body: send a JSON object".into());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let object = value.as_object().ok_or("body must be a JSON object")?;
    let (field, raw) = HASH_FIELDS
        .iter()
        .find_map(|f| object.get(*f).filter(|v| !v.is_null()).map(|v| (*f, v)))
        .ok_or_else(|| format!("missing hash: send the 32-byte hash in one of {}", HASH_FIELDS.join(", ")))?;
    let text = raw.as_str().ok_or_else(|| format!("{field} must be a string (0x-hex or base64)"))?;
    let digest = match crypto::parse_digest(text) {
        // 64 bare hex digits are hex: base64 of 32 bytes is never 64 characters long.
        Err(crypto::CryptoError::DigestBareHex) => crypto::parse_hex32(text),
        other => other,
    }
    .map_err(|e| format!("{field}: {e}"))?;
    if let Some(addr) = object.get("signerAddress").filter(|v| !v.is_null()) {
        let addr = addr.as_str().ok_or("signerAddress must be a string")?;
        if !addr.eq_ignore_ascii_case(&expected.to_string()) {
            return Err(format!("signerAddress {addr} is not this signer ({expected})"));
        }
    }
    Ok(digest)
}

/// The `signature` string of a signer endpoint's JSON answer, if it has one. Decoding,
/// length, low-s, v and the recovered address are checked separately
/// ([`crate::signing::check_rsv`]).
pub fn parse_response(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("signature")?.as_str().map(str::to_owned)
}

/// The contract's success body.
pub fn response_body(sig: &[u8; 65], address: &Address) -> Value {
    json!({
        "signature": format!("0x{}", hex::encode(sig)),
        "r": format!("0x{}", hex::encode(&sig[..32])),
        "s": format!("0x{}", hex::encode(&sig[32..64])),
        "recid": sig[64] - 27,
        "v": sig[64],
        "address": address.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> Address {
        "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23".parse().unwrap()
    }

    #[test]
    fn accepts_every_hash_field_in_hex_base64_and_bare_hex() {
        let hex = format!("0x{}", "ab".repeat(32));
        for field in HASH_FIELDS {
            let body = json!({field: hex, "signerAddress": "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23"}).to_string();
            assert_eq!(parse_request(body.as_bytes(), &addr()).unwrap(), [0xab; 32], "{field}");
        }
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode([0xab; 32]);
        assert_eq!(parse_request(json!({"digest": b64}).to_string().as_bytes(), &addr()).unwrap(), [0xab; 32]);
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb; 32]);
        assert_eq!(parse_request(json!({"hash": url_safe}).to_string().as_bytes(), &addr()).unwrap(), [0xfb; 32]);
        let bare = json!({"hash": "cd".repeat(32)}).to_string();
        assert_eq!(parse_request(bare.as_bytes(), &addr()).unwrap(), [0xcd; 32]);
        // A null field is absent, as the Node template reads it; so is a null signerAddress.
        let nulls = json!({"userOpHash": null, "hash": hex, "signerAddress": null}).to_string();
        assert_eq!(parse_request(nulls.as_bytes(), &addr()).unwrap(), [0xab; 32]);
    }

    #[test]
    fn refuses_bad_requests_with_clear_messages() {
        let err = |body: &str| parse_request(body.as_bytes(), &addr()).unwrap_err();
        assert!(err("").contains("missing request body"));
        assert!(err("{").contains("not valid JSON"));
        assert!(err("[]").contains("JSON object"));
        assert!(err("{}").contains("missing hash"));
        assert!(err(r#"{"hash": 5}"#).contains("hash must be a string"));
        assert!(err(&json!({"hash": format!("0x{}", "ab".repeat(31))}).to_string()).starts_with("hash:"));
        assert!(err(&json!({"hash": "ab".repeat(31)}).to_string()).starts_with("hash:"));
        assert!(err(r#"{"hash": "0x11", "signerAddress": 7}"#).starts_with("hash:"));
        let other = json!({"hash": format!("0x{}", "ab".repeat(32)), "signerAddress": "0x0000000000000000000000000000000000000001"}).to_string();
        assert!(err(&other).contains("is not this signer"));
        let typed = json!({"hash": format!("0x{}", "ab".repeat(32)), "signerAddress": 7}).to_string();
        assert!(err(&typed).contains("signerAddress must be a string"));
    }

    #[test]
    fn response_has_the_contract_fields() {
        let mut sig = [1u8; 65];
        sig[64] = 28;
        let body = response_body(&sig, &addr());
        assert_eq!(body["signature"].as_str().unwrap().len(), 2 + 130);
        assert_eq!((body["v"].as_u64(), body["recid"].as_u64()), (Some(28), Some(1)));
        assert_eq!(body["address"], addr().to_string());
    }
}
