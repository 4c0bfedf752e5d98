//! Approvals. An approval is an SSHSIG signature (OpenSSH PROTOCOL.sshsig, SHA-512 as `ssh-keygen
//! -Y sign` uses) over the exact bytes of a plan file, in the fixed namespace [`PLAN_NAMESPACE`], so an
//! approver can make one with nothing but `ssh-keygen -Y sign -n keyrite-plan@v1 -f KEY FILE`, and
//! anyone can check one with `ssh-keygen -Y verify`. The SSHSIG encoding and the signature maths are
//! `ssh-key`'s; this module decides who signed (by the allowed_signers file), whether that signer's
//! options allow it, and how approvals are counted: by distinct principal, never by signature.
//!
//! Key types verified: `ssh-ed25519`, `ecdsa-sha2-nistp256`, and the FIDO types
//! `sk-ssh-ed25519@openssh.com` and `sk-ecdsa-sha2-nistp256@openssh.com` (ssh-key 0.6 verifies these
//! over PROTOCOL.u2f's `sha256(application) || flags || counter || sha256(data)`). For FIDO keys the
//! user-presence flag must be set, as sshd requires unless `no-touch-required`; `ssh-keygen -Y verify`
//! does not check it, so keyrite is the stricter of the two here. Other types (RSA, DSA, P-384/521)
//! are refused as unsupported: `ssh-key` is built without those features to keep the build small.

use std::collections::{BTreeMap, BTreeSet};

use ssh_key::{Algorithm, EcdsaCurve, HashAlg, LineEnding, PrivateKey, SshSig};
use thiserror::Error;

use crate::ceremony::allowed_signers::{self, AllowedSigner, Refusal};

/// The namespace of plan approvals; a signature made for any other namespace is not an approval.
pub const PLAN_NAMESPACE: &str = "keyrite-plan@v1";

/// PROTOCOL.u2f flag bit: the authenticator saw a touch.
const SK_USER_PRESENCE: u8 = 0x01;

#[derive(Debug, Error)]
pub enum Error {
    #[error("not an SSH signature (-----BEGIN SSH SIGNATURE-----): {0}")]
    Malformed(ssh_key::Error),
    #[error("signature is for namespace {found:?}, expected {expected:?}")]
    WrongNamespace { expected: String, found: String },
    #[error("signing key {fingerprint} is not in the allowed signers")]
    UnknownKey { fingerprint: String },
    #[error("unsupported key type {key_type} ({fingerprint})")]
    UnsupportedKeyType { key_type: String, fingerprint: String },
    #[error("signature by {fingerprint} does not verify over this message")]
    BadSignature { fingerprint: String },
    #[error("FIDO signature by {fingerprint} was made without user presence (no touch)")]
    NoUserPresence { fingerprint: String },
    #[error("key {fingerprint} is not allowed for principal {principal:?}")]
    PrincipalMismatch { principal: String, fingerprint: String },
    #[error("key {fingerprint}, allowed signers line {line}: {refusal}")]
    Refused { fingerprint: String, line: usize, refusal: Refusal },
    #[error("key {fingerprint} is listed only under principal patterns; name the principal to verify it")]
    NoPrincipal { fingerprint: String },
    #[error("cannot sign: {0}")]
    Sign(ssh_key::Error),
    #[error("threshold must be at least 1")]
    ZeroThreshold,
    #[error("threshold {required} cannot be met: the allowed signers name only {available} principals")]
    ImpossibleThreshold { required: usize, available: usize },
}

/// A verified approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who approved: the given principal, or every literal principal listed with the key (sorted).
    pub principals: Vec<String>,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub key_type: Algorithm,
}

/// Signs `message` in `namespace` with SHA-512 and returns the armored `-----BEGIN SSH SIGNATURE-----`
/// text, as `ssh-keygen -Y sign` writes it. The key must be decrypted (see `keys`).
pub fn sign(private: &PrivateKey, namespace: &str, message: &[u8]) -> Result<String, Error> {
    let sig = private.sign(namespace, HashAlg::Sha512, message).map_err(Error::Sign)?;
    sig.to_pem(LineEnding::LF).map_err(Error::Sign)
}

fn supported(algorithm: &Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::Ed25519
            | Algorithm::SkEd25519
            | Algorithm::SkEcdsaSha2NistP256
            | Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 }
    )
}

/// Verifies an armored SSHSIG over `message`: the namespace must be `namespace`, the key must be in
/// `signers`, the signature must verify, and the matching line's options must allow `namespace` at
/// `now` (unix seconds). With `principal`, that principal must match the key's line (as
/// `ssh-keygen -Y verify -I` requires); without, every literal principal of the key's passing lines
/// is returned.
pub fn verify(
    armored: &str,
    message: &[u8],
    namespace: &str,
    signers: &[AllowedSigner],
    now: u64,
    principal: Option<&str>,
) -> Result<Verified, Error> {
    let sig = SshSig::from_pem(armored.trim().replace("\r\n", "\n")).map_err(Error::Malformed)?;
    if sig.namespace() != namespace {
        return Err(Error::WrongNamespace { expected: namespace.to_owned(), found: sig.namespace().to_owned() });
    }
    let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
    let lines: Vec<&AllowedSigner> = signers.iter().filter(|s| s.key.key_data() == sig.public_key()).collect();
    let Some(first) = lines.first() else {
        return Err(Error::UnknownKey { fingerprint });
    };
    let key_type = sig.public_key().algorithm();
    if !supported(&key_type) {
        return Err(Error::UnsupportedKeyType { key_type: key_type.as_str().to_owned(), fingerprint });
    }
    // Checks the key, the namespace again, and the signature over SSHSIG's signed data.
    first.key.verify(namespace, message, &sig).map_err(|_| Error::BadSignature { fingerprint: fingerprint.clone() })?;
    if matches!(key_type, Algorithm::SkEd25519 | Algorithm::SkEcdsaSha2NistP256) {
        // The signature bytes end with flags (1 byte) and counter (4 bytes).
        let flags = sig.signature_bytes().iter().rev().nth(4).copied().unwrap_or(0);
        if flags & SK_USER_PRESENCE == 0 {
            return Err(Error::NoUserPresence { fingerprint });
        }
    }

    let candidates: Vec<&AllowedSigner> = match principal {
        Some(p) => lines.iter().copied().filter(|l| l.matches_principal(p)).collect(),
        None => lines,
    };
    if candidates.is_empty() {
        return Err(Error::PrincipalMismatch { principal: principal.unwrap_or_default().to_owned(), fingerprint });
    }
    let mut refusal = None;
    let mut principals = BTreeSet::new();
    for line in &candidates {
        if let Err(r) = line.check_options(namespace, now) {
            refusal.get_or_insert((line.line, r));
        } else if let Some(p) = principal {
            principals.insert(p.to_owned());
        } else {
            principals.extend(line.literal_principals().map(str::to_owned));
        }
    }
    if principals.is_empty() {
        return Err(match refusal {
            Some((line, refusal)) => Error::Refused { fingerprint, line, refusal },
            None => Error::NoPrincipal { fingerprint },
        });
    }
    Ok(Verified { principals: principals.into_iter().collect(), fingerprint, key_type })
}

/// The distinct principals that approved: two signatures by one principal, or by two keys of one
/// principal, count once.
pub fn count(approvals: &[Verified]) -> BTreeSet<String> {
    approvals.iter().flat_map(|v| v.principals.iter().cloned()).collect()
}

/// Where a threshold stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub required: usize,
    /// Principals with a verified approval.
    pub approved: BTreeSet<String>,
    /// Principals of the allowed signers without one.
    pub missing: BTreeSet<String>,
    /// Approvals that count: the most principals that can each be credited to a different key. One
    /// key listed under two principals thus counts once, however many principals it names.
    pub counted: usize,
    pub met: bool,
}

/// Checks `approvals` against a `required`-of-n threshold over the principals of `signers`.
pub fn tally(required: usize, signers: &[AllowedSigner], approvals: &[Verified]) -> Result<Tally, Error> {
    let all = allowed_signers::distinct_principals(signers);
    if required == 0 {
        return Err(Error::ZeroThreshold);
    }
    if required > all.len() {
        return Err(Error::ImpossibleThreshold { required, available: all.len() });
    }
    let approved = count(approvals);
    let missing = all.difference(&approved).cloned().collect();
    let counted = distinct_key_principal_pairs(approvals);
    Ok(Tally { required, approved, missing, counted, met: counted >= required })
}

/// Maximum matching between signing keys and principals (Kuhn's augmenting paths; n is tiny).
fn distinct_key_principal_pairs(approvals: &[Verified]) -> usize {
    let mut by_key: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for v in approvals {
        by_key.entry(&v.fingerprint).or_default().extend(v.principals.iter().map(String::as_str));
    }
    let keys: Vec<Vec<&str>> = by_key.into_values().map(|s| s.into_iter().collect()).collect();
    fn augment<'a>(
        k: usize,
        keys: &[Vec<&'a str>],
        owner: &mut BTreeMap<&'a str, usize>,
        seen: &mut BTreeSet<&'a str>,
    ) -> bool {
        for &p in &keys[k] {
            if !seen.insert(p) {
                continue;
            }
            if owner.get(p).copied().is_none_or(|o| augment(o, keys, owner, seen)) {
                owner.insert(p, k);
                return true;
            }
        }
        false
    }
    let mut owner = BTreeMap::new();
    (0..keys.len()).filter(|&k| augment(k, &keys, &mut owner, &mut BTreeSet::new())).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceremony::allowed_signers::parse;
    use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData};
    use ssh_key::public::{Ed25519PublicKey, KeyData, SkEd25519};
    use ssh_key::{PublicKey, Signature};

    const NOW: u64 = 1_790_000_000;

    fn ed(seed: u8) -> PrivateKey {
        PrivateKey::new(Ed25519Keypair::from_seed(&[seed; 32]).into(), "").unwrap()
    }

    fn p256(seed: u8) -> PrivateKey {
        let secret = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
        let public = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
        let pair = EcdsaKeypair::NistP256 { public, private: secret.into() };
        PrivateKey::new(KeypairData::Ecdsa(pair), "").unwrap()
    }

    fn line(principals: &str, options: &str, key: &PublicKey) -> String {
        format!("{principals} {options} {}\n", key.to_openssh().unwrap())
    }

    fn signers(text: &str) -> Vec<AllowedSigner> {
        parse("test", text).unwrap()
    }

    /// A FIDO sk-ssh-ed25519 SSHSIG built as an authenticator would (PROTOCOL.u2f), from a software key.
    fn sk_sign(seed: u8, flags: u8, namespace: &str, msg: &[u8]) -> (PublicKey, String) {
        use ed25519_dalek::Signer as _;
        use sha2::{Digest, Sha256};
        let dalek = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let app = "ssh:";
        let public = KeyData::SkEd25519(SkEd25519::new(Ed25519PublicKey(dalek.verifying_key().to_bytes()), app));
        let data = SshSig::signed_data(namespace, HashAlg::Sha512, msg).unwrap();
        let counter = 7u32.to_be_bytes();
        let to_sign = [&Sha256::digest(app)[..], &[flags], &counter, &Sha256::digest(&data)].concat();
        let raw = [&dalek.sign(&to_sign).to_bytes()[..], &[flags], &counter].concat();
        let sig =
            SshSig::new(public.clone(), namespace, HashAlg::Sha512, Signature::new(Algorithm::SkEd25519, raw).unwrap());
        (PublicKey::from(public), sig.unwrap().to_pem(LineEnding::LF).unwrap())
    }

    #[test]
    fn sign_then_verify_ed25519_and_p256() {
        for key in [ed(1), p256(2)] {
            let s = signers(&line("alice@x", "", key.public_key()));
            let armored = sign(&key, PLAN_NAMESPACE, b"plan bytes").unwrap();
            assert!(armored.starts_with("-----BEGIN SSH SIGNATURE-----\n"));
            let v = verify(&armored, b"plan bytes", PLAN_NAMESPACE, &s, NOW, None).unwrap();
            assert_eq!(v.principals, ["alice@x"]);
            assert_eq!(v.fingerprint, key.public_key().fingerprint(HashAlg::Sha256).to_string());
            assert!(v.fingerprint.starts_with("SHA256:"));
            assert_eq!(v.key_type, key.algorithm());
        }
    }

    #[test]
    fn refuses_wrong_namespace_unknown_key_and_other_bytes() {
        let (key, other) = (ed(1), ed(2));
        let s = signers(&line("alice@x", "", key.public_key()));
        let armored = sign(&key, "file", b"m").unwrap();
        match verify(&armored, b"m", PLAN_NAMESPACE, &s, NOW, None) {
            Err(Error::WrongNamespace { expected, found }) => {
                assert_eq!((expected.as_str(), found.as_str()), (PLAN_NAMESPACE, "file"))
            }
            r => panic!("{r:?}"),
        }
        let by_other = sign(&other, PLAN_NAMESPACE, b"m").unwrap();
        match verify(&by_other, b"m", PLAN_NAMESPACE, &s, NOW, None) {
            Err(Error::UnknownKey { fingerprint }) => {
                assert_eq!(fingerprint, other.fingerprint(HashAlg::Sha256).to_string())
            }
            r => panic!("{r:?}"),
        }
        let good = sign(&key, PLAN_NAMESPACE, b"m").unwrap();
        assert!(verify(&good.replace('\n', "\r\n"), b"m", PLAN_NAMESPACE, &s, NOW, None).is_ok(), "CRLF armor");
        assert!(matches!(verify(&good, b"M", PLAN_NAMESPACE, &s, NOW, None), Err(Error::BadSignature { .. })));
        assert!(matches!(verify("not a sig", b"m", PLAN_NAMESPACE, &s, NOW, None), Err(Error::Malformed(_))));
        let cut = &good[..good.len() / 2];
        assert!(matches!(verify(cut, b"m", PLAN_NAMESPACE, &s, NOW, None), Err(Error::Malformed(_))));
    }

    #[test]
    fn line_options_are_enforced() {
        let key = ed(1);
        let armored = sign(&key, PLAN_NAMESPACE, b"m").unwrap();
        let check = |opts: &str| {
            verify(&armored, b"m", PLAN_NAMESPACE, &signers(&line("a@x", opts, key.public_key())), NOW, None)
        };
        assert!(check("namespaces=\"keyrite-*\"").is_ok());
        assert!(matches!(
            check("namespaces=\"file\""),
            Err(Error::Refused { line: 1, refusal: Refusal::Namespace { .. }, .. })
        ));
        assert!(matches!(
            check("valid-after=\"20300101\""),
            Err(Error::Refused { refusal: Refusal::NotYetValid { .. }, .. })
        ));
        assert!(matches!(
            check("valid-before=\"20200101\""),
            Err(Error::Refused { refusal: Refusal::Expired { .. }, .. })
        ));
    }

    #[test]
    fn a_key_under_several_principals_and_a_principal_hint() {
        let key = ed(1);
        let text = line("bob@x,alice@x", "", key.public_key())
            + &line("carol@x", "namespaces=\"file\"", key.public_key())
            + &line("*@y", "", key.public_key());
        let s = signers(&text);
        let armored = sign(&key, PLAN_NAMESPACE, b"m").unwrap();
        let v = verify(&armored, b"m", PLAN_NAMESPACE, &s, NOW, None).unwrap();
        assert_eq!(v.principals, ["alice@x", "bob@x"], "carol's line does not allow the namespace");
        assert_eq!(verify(&armored, b"m", PLAN_NAMESPACE, &s, NOW, Some("bob@x")).unwrap().principals, ["bob@x"]);
        assert_eq!(verify(&armored, b"m", PLAN_NAMESPACE, &s, NOW, Some("dan@y")).unwrap().principals, ["dan@y"]);
        assert!(matches!(
            verify(&armored, b"m", PLAN_NAMESPACE, &s, NOW, Some("carol@x")),
            Err(Error::Refused { line: 2, .. })
        ));
        assert!(matches!(
            verify(&armored, b"m", PLAN_NAMESPACE, &s, NOW, Some("eve@x")),
            Err(Error::PrincipalMismatch { .. })
        ));
        let only_pattern = signers(&line("*@y", "", key.public_key()));
        assert!(matches!(
            verify(&armored, b"m", PLAN_NAMESPACE, &only_pattern, NOW, None),
            Err(Error::NoPrincipal { .. })
        ));
    }

    #[test]
    fn fido_sk_ed25519_verifies_and_needs_user_presence() {
        let (public, armored) = sk_sign(9, SK_USER_PRESENCE, PLAN_NAMESPACE, b"plan");
        let s = signers(&line("fido@x", "", &public));
        let v = verify(&armored, b"plan", PLAN_NAMESPACE, &s, NOW, None).unwrap();
        assert_eq!((v.principals, v.key_type), (vec!["fido@x".to_owned()], Algorithm::SkEd25519));
        assert!(matches!(verify(&armored, b"plan!", PLAN_NAMESPACE, &s, NOW, None), Err(Error::BadSignature { .. })));
        let (_, untouched) = sk_sign(9, 0, PLAN_NAMESPACE, b"plan");
        assert!(matches!(
            verify(&untouched, b"plan", PLAN_NAMESPACE, &s, NOW, None),
            Err(Error::NoUserPresence { .. })
        ));
    }

    #[test]
    fn counting_is_by_distinct_principal_and_key() {
        let (a1, a2, b, shared) = (ed(1), ed(2), ed(3), ed(4));
        let text = line("alice@x", "", a1.public_key())
            + &line("alice@x", "", a2.public_key())
            + &line("bob@x", "", b.public_key())
            + &line("carol@x,dave@x", "", shared.public_key());
        let s = signers(&text);
        let approve = |k: &PrivateKey, msg: &[u8]| {
            verify(&sign(k, PLAN_NAMESPACE, msg).unwrap(), msg, PLAN_NAMESPACE, &s, NOW, None).unwrap()
        };
        // Alice twice with one key and once with her second key: one principal.
        let alice = [approve(&a1, b"p"), approve(&a1, b"p"), approve(&a2, b"p")];
        assert_eq!(count(&alice).into_iter().collect::<Vec<_>>(), ["alice@x"]);
        let t = tally(2, &s, &alice).unwrap();
        assert_eq!((t.counted, t.met), (1, false));
        assert_eq!(t.missing.into_iter().collect::<Vec<_>>(), ["bob@x", "carol@x", "dave@x"]);

        let with_bob = [&alice[..], &[approve(&b, b"p")]].concat();
        let t = tally(2, &s, &with_bob).unwrap();
        assert_eq!((t.counted, t.met, t.approved.len()), (2, true, 2));

        // One key listed for carol and dave names both, but counts as one approval.
        let shared_only = [approve(&shared, b"p")];
        assert_eq!(count(&shared_only).len(), 2);
        let t = tally(2, &s, &shared_only).unwrap();
        assert_eq!((t.counted, t.met), (1, false));

        assert!(matches!(tally(0, &s, &[]), Err(Error::ZeroThreshold)));
        assert!(matches!(tally(5, &s, &[]), Err(Error::ImpossibleThreshold { required: 5, available: 4 })));
    }

    #[test]
    fn unsupported_key_types_are_refused_clearly() {
        // End to end with an ssh-keygen RSA key: tests/ssh_keygen.rs.
        assert!(!supported(&Algorithm::Rsa { hash: None }));
        assert!(!supported(&Algorithm::Ecdsa { curve: EcdsaCurve::NistP384 }));
        assert!(supported(&Algorithm::SkEd25519));
    }
}
