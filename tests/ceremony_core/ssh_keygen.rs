//! Interoperability with the real `ssh-keygen -Y` (OpenSSH 9.2), both ways, for approvals.

use super::common;

use std::path::Path;

use common::{gen_key, public_line, ssh_keygen};
use keyrite::ceremony::allowed_signers::{self, AllowedSigner};
use keyrite::ceremony::approval::{self, Error, PLAN_NAMESPACE};
use keyrite::ceremony::keys;
use ssh_key::public::{Ed25519PublicKey, KeyData, SkEd25519};
use ssh_key::{Algorithm, HashAlg, LineEnding, PublicKey, Signature, SshSig};

const NOW: u64 = 1_790_000_000;
const PLAN: &[u8] = b"{\"changes\": [\"create kms key\"]}\n";

fn write_signers(dir: &Path, text: &str) -> (String, Vec<AllowedSigner>) {
    let path = dir.join("allowed_signers");
    std::fs::write(&path, text).unwrap();
    (path.to_str().unwrap().to_owned(), allowed_signers::parse("allowed_signers", text).unwrap())
}

/// `ssh-keygen -Y sign -n NAMESPACE -f KEY FILE`, returning FILE.sig's text.
fn keygen_sign(dir: &Path, key: &Path, namespace: &str, message: &[u8]) -> String {
    let file = dir.join("plan.json");
    std::fs::write(&file, message).unwrap();
    let _ = std::fs::remove_file(dir.join("plan.json.sig"));
    let out = ssh_keygen(&["-Y", "sign", "-n", namespace, "-f", key.to_str().unwrap(), file.to_str().unwrap()], b"");
    assert!(out.status.success(), "ssh-keygen -Y sign: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(dir.join("plan.json.sig")).unwrap()
}

/// `ssh-keygen -Y verify -f SIGNERS -I PRINCIPAL -n NAMESPACE -s SIG < MESSAGE`; returns the exit code.
fn keygen_verify(dir: &Path, signers: &str, principal: &str, namespace: &str, armored: &str, message: &[u8]) -> i32 {
    let sig = dir.join("theirs.sig");
    std::fs::write(&sig, armored).unwrap();
    let args = ["-Y", "verify", "-f", signers, "-I", principal, "-n", namespace, "-s", sig.to_str().unwrap()];
    ssh_keygen(&args, message).status.code().expect("ssh-keygen was killed")
}

#[test]
fn ssh_keygen_signatures_verify_here() {
    let dir = tempfile::tempdir().unwrap();
    let ed = gen_key(dir.path(), "ed", "ed25519", None, "");
    let ec = gen_key(dir.path(), "ec", "ecdsa", Some("256"), "");
    let text = format!("alice@example.com {}\nbob@example.com {}\n", public_line(&ed), public_line(&ec));
    let (_, signers) = write_signers(dir.path(), &text);
    for (key, who, alg) in [(&ed, "alice@example.com", "ssh-ed25519"), (&ec, "bob@example.com", "ecdsa-sha2-nistp256")]
    {
        let armored = keygen_sign(dir.path(), key, PLAN_NAMESPACE, PLAN);
        let v = approval::verify(&armored, PLAN, PLAN_NAMESPACE, &signers, NOW, None).unwrap();
        assert_eq!((v.principals, v.key_type.as_str()), (vec![who.to_owned()], alg));
        let fp = ssh_keygen(&["-l", "-E", "sha256", "-f", key.with_extension("pub").to_str().unwrap()], b"");
        assert!(String::from_utf8_lossy(&fp.stdout).contains(&v.fingerprint), "fingerprint as ssh-keygen -l prints it");
        assert!(approval::verify(&armored, PLAN, PLAN_NAMESPACE, &signers, NOW, Some(who)).is_ok());
        let other_bytes = approval::verify(&armored, b"another plan", PLAN_NAMESPACE, &signers, NOW, None);
        assert!(matches!(other_bytes, Err(Error::BadSignature { .. })), "{other_bytes:?}");
        let file_ns = keygen_sign(dir.path(), key, "file", PLAN);
        let wrong_ns = approval::verify(&file_ns, PLAN, PLAN_NAMESPACE, &signers, NOW, None);
        assert!(matches!(wrong_ns, Err(Error::WrongNamespace { ref found, .. }) if found == "file"), "{wrong_ns:?}");
    }
    // A key not in allowed_signers.
    let stranger = gen_key(dir.path(), "stranger", "ed25519", None, "");
    let armored = keygen_sign(dir.path(), &stranger, PLAN_NAMESPACE, PLAN);
    let r = approval::verify(&armored, PLAN, PLAN_NAMESPACE, &signers, NOW, None);
    assert!(matches!(r, Err(Error::UnknownKey { .. })), "{r:?}");
}

#[test]
fn signatures_made_here_pass_ssh_keygen_verify() {
    let dir = tempfile::tempdir().unwrap();
    let ed = gen_key(dir.path(), "ed", "ed25519", None, "");
    let ec = gen_key(dir.path(), "ec", "ecdsa", Some("256"), "");
    let text = format!("alice@example.com {}\nbob@example.com {}\n", public_line(&ed), public_line(&ec));
    let (signers_path, _) = write_signers(dir.path(), &text);
    for (key, who) in [(&ed, "alice@example.com"), (&ec, "bob@example.com")] {
        let private = keys::load_private_key(key, None).unwrap();
        let armored = approval::sign(&private, PLAN_NAMESPACE, PLAN).unwrap();
        assert_eq!(keygen_verify(dir.path(), &signers_path, who, PLAN_NAMESPACE, &armored, PLAN), 0);
        assert_eq!(keygen_verify(dir.path(), &signers_path, who, "file", &armored, PLAN), 255, "wrong namespace");
        assert_eq!(
            keygen_verify(dir.path(), &signers_path, who, PLAN_NAMESPACE, &armored, b"other"),
            255,
            "other bytes"
        );
        let not_theirs = if who.starts_with("alice") { "bob@example.com" } else { "alice@example.com" };
        assert_eq!(keygen_verify(dir.path(), &signers_path, not_theirs, PLAN_NAMESPACE, &armored, PLAN), 255);
    }
}

#[test]
fn passphrase_protected_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = gen_key(dir.path(), "locked", "ed25519", None, "secret");
    match keys::load_private_key(&key, None) {
        Err(keys::Error::PassphraseNeeded { path }) => assert_eq!(path, key),
        r => panic!("expected PassphraseNeeded, got {r:?}"),
    }
    assert!(matches!(keys::load_private_key(&key, Some("wrong")), Err(keys::Error::WrongPassphrase { .. })));
    let private = keys::load_private_key(&key, Some("secret")).unwrap();
    assert_eq!(private.public_key(), &keys::load_public_key(&key.with_extension("pub")).unwrap());
    let (signers_path, signers) = write_signers(dir.path(), &format!("carol@example.com {}\n", public_line(&key)));
    let armored = approval::sign(&private, PLAN_NAMESPACE, PLAN).unwrap();
    assert_eq!(keygen_verify(dir.path(), &signers_path, "carol@example.com", PLAN_NAMESPACE, &armored, PLAN), 0);
    assert!(approval::verify(&armored, PLAN, PLAN_NAMESPACE, &signers, NOW, None).is_ok());
}

#[test]
fn options_agree_with_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let key = gen_key(dir.path(), "ed", "ed25519", None, "");
    let private = keys::load_private_key(&key, None).unwrap();
    let armored = approval::sign(&private, PLAN_NAMESPACE, PLAN).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for (options, accepted) in [
        ("namespaces=\"keyrite-*\"", true),
        ("namespaces=\"file,!keyrite-plan@v1,keyrite-*\"", false),
        ("NAMESPACES=\"file\"", false),
        ("valid-after=\"20200101Z\",valid-before=\"29991231Z\"", true),
        ("valid-before=\"20200101Z\"", false),
        ("valid-after=\"29990101Z\"", false),
    ] {
        let (path, signers) = write_signers(dir.path(), &format!("a@x {options} {}\n", public_line(&key)));
        let theirs = keygen_verify(dir.path(), &path, "a@x", PLAN_NAMESPACE, &armored, PLAN) == 0;
        let ours = approval::verify(&armored, PLAN, PLAN_NAMESPACE, &signers, now, None);
        assert_eq!((theirs, ours.is_ok()), (accepted, accepted), "{options}: {ours:?}");
    }
}

#[test]
fn find_principals_agrees_with_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let key = gen_key(dir.path(), "ed", "ed25519", None, "");
    let other = gen_key(dir.path(), "other", "ed25519", None, "");
    let text = format!(
        "# approvers\nbob@x {}\ncarol@x,alice@x {}\n\ndave@x namespaces=\"file\" {}\n",
        public_line(&other),
        public_line(&key),
        public_line(&key)
    );
    let (path, signers) = write_signers(dir.path(), &text);
    let armored = keygen_sign(dir.path(), &key, PLAN_NAMESPACE, PLAN);
    std::fs::write(dir.path().join("s.sig"), &armored).unwrap();
    let sig = dir.path().join("s.sig");
    let out =
        ssh_keygen(&["-Y", "find-principals", "-f", &path, "-n", PLAN_NAMESPACE, "-s", sig.to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut theirs: Vec<String> =
        String::from_utf8_lossy(&out.stdout).lines().flat_map(|l| l.split(',')).map(str::to_owned).collect();
    theirs.sort();
    let ours = approval::verify(&armored, PLAN, PLAN_NAMESPACE, &signers, NOW, None).unwrap().principals;
    assert_eq!(ours, theirs);
    assert_eq!(ours, ["alice@x", "carol@x"]);
}

#[test]
fn duplicate_principal_counts_once_with_real_keys() {
    let dir = tempfile::tempdir().unwrap();
    let a1 = gen_key(dir.path(), "a1", "ed25519", None, "");
    let a2 = gen_key(dir.path(), "a2", "ecdsa", Some("256"), "");
    let b = gen_key(dir.path(), "b", "ed25519", None, "");
    let text = format!("alice@x {}\nalice@x {}\nbob@x {}\n", public_line(&a1), public_line(&a2), public_line(&b));
    let (_, signers) = write_signers(dir.path(), &text);
    let approve = |k: &Path| {
        approval::verify(&keygen_sign(dir.path(), k, PLAN_NAMESPACE, PLAN), PLAN, PLAN_NAMESPACE, &signers, NOW, None)
            .unwrap()
    };
    let alice_only = [approve(&a1), approve(&a1), approve(&a2)];
    let t = approval::tally(2, &signers, &alice_only).unwrap();
    assert_eq!((t.approved.len(), t.counted, t.met), (1, 1, false));
    assert_eq!(t.missing.into_iter().collect::<Vec<_>>(), ["bob@x"]);
    let t = approval::tally(2, &signers, &[&alice_only[..], &[approve(&b)]].concat()).unwrap();
    assert!(t.met && t.missing.is_empty());
}

#[test]
fn rsa_keys_are_refused_as_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = gen_key(dir.path(), "rsa", "rsa", Some("2048"), "");
    let (_, signers) = write_signers(dir.path(), &format!("r@x {}\n", public_line(&rsa)));
    let armored = keygen_sign(dir.path(), &rsa, PLAN_NAMESPACE, PLAN);
    let r = approval::verify(&armored, PLAN, PLAN_NAMESPACE, &signers, NOW, None);
    assert!(matches!(r, Err(Error::UnsupportedKeyType { ref key_type, .. }) if key_type == "ssh-rsa"), "{r:?}");
}

/// An sk-ssh-ed25519@openssh.com SSHSIG built as a FIDO authenticator would (PROTOCOL.u2f), from a
/// software key, since no hardware token is at hand.
fn sk_signature(flags: u8, message: &[u8]) -> (PublicKey, String) {
    use ed25519_dalek::Signer as _;
    use sha2::{Digest, Sha256};
    let dalek = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let public = KeyData::SkEd25519(SkEd25519::new(Ed25519PublicKey(dalek.verifying_key().to_bytes()), "ssh:"));
    let data = SshSig::signed_data(PLAN_NAMESPACE, HashAlg::Sha512, message).unwrap();
    let counter = 1u32.to_be_bytes();
    let to_sign = [&Sha256::digest("ssh:")[..], &[flags], &counter, &Sha256::digest(&data)].concat();
    let raw = [&dalek.sign(&to_sign).to_bytes()[..], &[flags], &counter].concat();
    let sig = Signature::new(Algorithm::SkEd25519, raw).unwrap();
    let sig = SshSig::new(public.clone(), PLAN_NAMESPACE, HashAlg::Sha512, sig).unwrap();
    (PublicKey::from(public), sig.to_pem(LineEnding::LF).unwrap())
}

#[test]
fn fido_sk_ed25519_signature_verifies_here_and_in_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let (public, armored) = sk_signature(0x01, PLAN);
    let (path, signers) = write_signers(dir.path(), &format!("fido@x {}\n", public.to_openssh().unwrap()));
    assert_eq!(keygen_verify(dir.path(), &path, "fido@x", PLAN_NAMESPACE, &armored, PLAN), 0, "ssh-keygen accepts it");
    assert_eq!(keygen_verify(dir.path(), &path, "fido@x", PLAN_NAMESPACE, &armored, b"x"), 255);
    let v = approval::verify(&armored, PLAN, PLAN_NAMESPACE, &signers, NOW, None).unwrap();
    assert_eq!((v.principals, v.key_type), (vec!["fido@x".to_owned()], Algorithm::SkEd25519));
    // Without the user-presence flag, ssh-keygen -Y verify still accepts; keyrite does not.
    let (_, untouched) = sk_signature(0x00, PLAN);
    assert_eq!(keygen_verify(dir.path(), &path, "fido@x", PLAN_NAMESPACE, &untouched, PLAN), 0);
    let r = approval::verify(&untouched, PLAN, PLAN_NAMESPACE, &signers, NOW, None);
    assert!(matches!(r, Err(Error::NoUserPresence { .. })), "{r:?}");
}

#[test]
fn parser_reports_positions_for_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = gen_key(dir.path(), "ed", "ed25519", None, "");
    let line = public_line(&key);
    let blob = line.split(' ').nth(1).unwrap();
    let text = format!(
        "# approvers\nalice@x {line}\nbob@x ssh-foo {blob}\ncarol@x cert-authority {line}\ndan@x ecdsa-sha2-nistp256 {blob}\n"
    );
    let e = allowed_signers::parse("approvers.allowed_signers", &text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "approvers.allowed_signers:3:7: unknown key type \"ssh-foo\"\n\
         approvers.allowed_signers:4:9: cert-authority: certificates are not supported\n\
         approvers.allowed_signers:5:27: key blob is \"ssh-ed25519\" but the key type says \"ecdsa-sha2-nistp256\""
    );
}
