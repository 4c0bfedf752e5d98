//! Envelopes made here verify with PyPI securesystemslib 1.6.0, run from the Python named by
//! KEYRITE_SSL_PYTHON (a venv with `pip install securesystemslib==1.6.0 cryptography`). An unset
//! variable or a Python without the package fails the test; it never skips.

use std::path::Path;
use std::process::{Command, Output};

use keyrite::ceremony::dsse::{self, Envelope, IN_TOTO_PAYLOAD_TYPE};
use ssh_key::PrivateKey;
use ssh_key::private::Ed25519Keypair;

fn python() -> String {
    super::common::ssl_python()
}

fn ed(seed: u8) -> PrivateKey {
    PrivateKey::new(Ed25519Keypair::from_seed(&[seed; 32]).into(), "").unwrap()
}

/// Runs tests/ssl_verify.py on `env` with `trusted` keys (keyed by dsse::keyid) and `threshold`.
fn ssl_verify(dir: &Path, env: &Envelope, trusted: &[&PrivateKey], threshold: usize) -> Output {
    let keys: serde_json::Map<String, serde_json::Value> = trusted
        .iter()
        .map(|k| (dsse::keyid(k.public_key()), dsse::securesystemslib_key(k.public_key()).unwrap()))
        .collect();
    std::fs::write(dir.join("envelope.json"), env.to_json()).unwrap();
    std::fs::write(dir.join("keys.json"), serde_json::Value::Object(keys).to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ceremony/ssl_verify.py");
    let python = python();
    Command::new(&python)
        .arg(script)
        .arg(dir.join("envelope.json"))
        .arg(dir.join("keys.json"))
        .arg(threshold.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"))
}

fn stdout_keyids(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "securesystemslib refused: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn securesystemslib_verifies_our_envelopes() {
    let dir = tempfile::tempdir().unwrap();
    let (op, witness, stranger) = (ed(1), ed(2), ed(3));
    let statement = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"plan.json","digest":{"sha256":"00"}}],"predicateType":"https://keyrite.dev/ceremony/v1","predicate":{}}"#;
    let mut env = Envelope::new(IN_TOTO_PAYLOAD_TYPE, statement);
    env.sign(&op).unwrap();
    let mut expected = vec![dsse::keyid(op.public_key())];
    assert_eq!(stdout_keyids(&ssl_verify(dir.path(), &env, &[&op, &stranger], 1)), expected);

    // A witness countersigns later; now 2-of-3 holds.
    env.sign(&witness).unwrap();
    expected.push(dsse::keyid(witness.public_key()));
    expected.sort();
    assert_eq!(stdout_keyids(&ssl_verify(dir.path(), &env, &[&op, &witness, &stranger], 2)), expected);
    let ours = env.verify_threshold(&[op.public_key().clone(), witness.public_key().clone()], 2).unwrap();
    assert_eq!(ours.into_iter().collect::<Vec<_>>(), expected);

    // Both refuse 3-of-3, and both refuse a tampered payload.
    let out = ssl_verify(dir.path(), &env, &[&op, &witness, &stranger], 3);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VerificationError"));
    let mut tampered = env.clone();
    tampered.payload = base64_of(b"{\"_type\":\"forged\"}");
    let out = ssl_verify(dir.path(), &tampered, &[&op, &witness], 1);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(tampered.verify(&[op.public_key().clone(), witness.public_key().clone()]).unwrap().is_empty());
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn the_python_is_the_pinned_securesystemslib() {
    let out = Command::new(python())
        .args(["-c", "import securesystemslib; print(securesystemslib.__version__)"])
        .output()
        .expect("cannot run KEYRITE_SSL_PYTHON");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.6.0", "{}", String::from_utf8_lossy(&out.stderr));
}
