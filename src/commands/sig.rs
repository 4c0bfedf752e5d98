//! `keyrite sig`: DER → r‖s‖v and recovery, offline.

use anyhow::{Context, bail};

use super::Status;
use crate::crypto::{self, Address};
use crate::signer::{check_rsv, parse_hex};

pub fn from_der(der: &str, digest: &str, address: Option<&str>, pubkey: Option<&str>) -> anyhow::Result<Status> {
    let der = parse_hex(der).map_err(|e| anyhow::anyhow!("--der: {e}"))?;
    let digest = crypto::parse_hex32(digest).context("--digest")?;
    let sig = match (address, pubkey) {
        (_, Some(pk)) => {
            let bytes = parse_hex(pk).map_err(|e| anyhow::anyhow!("--pubkey: {e}"))?;
            let key = k256::PublicKey::from_sec1_bytes(&bytes)
                .or_else(|_| crypto::public_key_from_spki_der(&bytes))
                .map_err(|_| {
                    anyhow::anyhow!("--pubkey is neither a SEC1 point (33/65 bytes) nor an SPKI DER secp256k1 key")
                })?;
            crypto::signature_rsv(&key, &digest, &der)?
        }
        (Some(addr), None) => {
            let expected: Address = addr.parse().context("--address")?;
            let (r, s) = crypto::parse_der_signature(&der)?;
            let (s, _) = crypto::normalize_low_s(s);
            let candidate = |v: u8| {
                let mut sig = [0u8; 65];
                sig[..32].copy_from_slice(&r);
                sig[32..64].copy_from_slice(&s);
                sig[64] = v;
                sig
            };
            match [27u8, 28].into_iter().map(candidate).find(|sig| check_rsv(&expected, &digest, sig).is_ok()) {
                Some(sig) => sig,
                None => bail!("the signature does not recover to {expected} over this digest with either v"),
            }
        }
        (None, None) => bail!("give --address or --pubkey"),
    };
    println!("0x{}", hex::encode(sig));
    Ok(Status::Ok)
}

pub fn recover(digest: &str, signature: &str) -> anyhow::Result<Status> {
    let digest = crypto::parse_hex32(digest).context("--digest")?;
    let sig = parse_hex(signature).map_err(|e| anyhow::anyhow!("--signature: {e}"))?;
    let sig: [u8; 65] = sig
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("--signature must be 65 bytes (r‖s‖v), got {}", sig.len()))?;
    println!("{}", crypto::recover_address(&digest, &sig)?);
    Ok(Status::Ok)
}
