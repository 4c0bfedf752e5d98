//! Helpers for the integration tests: running the real `ssh-keygen`, which must be installed
//! (Debian `openssh-client`); a missing one fails the test, never skips it.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs `ssh-keygen ARGS` with `stdin`, panicking with advice if it cannot be started.
pub fn ssh_keygen(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new("ssh-keygen")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen ({e}): install it with `apt-get install -y openssh-client`"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// `ssh-keygen -q -N PASSPHRASE -t TYPE [-b BITS] -C COMMENT -f DIR/NAME`; returns the private key path.
pub fn gen_key(dir: &Path, name: &str, key_type: &str, bits: Option<&str>, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    let p = path.to_str().unwrap();
    let mut args = vec!["-q", "-N", passphrase, "-t", key_type, "-C", name, "-f", p];
    if let Some(b) = bits {
        args.extend(["-b", b]);
    }
    let out = ssh_keygen(&args, b"");
    assert!(out.status.success(), "ssh-keygen key generation failed: {}", String::from_utf8_lossy(&out.stderr));
    path
}

/// The allowed_signers lines of the keys `DIR/NAME.pub`, as `NAME@example.com`, each limited
/// to `namespace` when one is given.
pub fn allowed_signers(dir: &Path, names: &[&str], namespace: Option<&str>) -> String {
    names
        .iter()
        .map(|name| {
            let public = std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap();
            let mut parts = public.split_whitespace();
            let (kind, key) = (parts.next().unwrap(), parts.next().unwrap());
            let options = namespace.map(|n| format!("namespaces=\"{n}\" ")).unwrap_or_default();
            format!("{name}@example.com {options}{kind} {key}\n")
        })
        .collect()
}

/// `ssh-keygen -Y sign -n NAMESPACE -f DIR/NAME FILE`, renamed to `FILE.<name>.sig`, which
/// keyrite collects beside the file.
pub fn sign_as(dir: &Path, name: &str, file: &Path, namespace: &str) -> PathBuf {
    let key = dir.join(name);
    let out = ssh_keygen(&["-Y", "sign", "-n", namespace, "-f", key.to_str().unwrap(), file.to_str().unwrap()], &[]);
    assert!(out.status.success(), "ssh-keygen -Y sign: {}", String::from_utf8_lossy(&out.stderr));
    let named = PathBuf::from(format!("{}.{name}.sig", file.display()));
    std::fs::rename(format!("{}.sig", file.display()), &named).unwrap();
    named
}

/// The `KEYTYPE BASE64 COMMENT` line of `KEY.pub`.
pub fn public_line(key: &Path) -> String {
    std::fs::read_to_string(key.with_extension("pub")).unwrap().trim().to_owned()
}

/// The Python with PyPI securesystemslib 1.6.0 that `scripts/install-emulator.sh` installs
/// (`.venv/ssl`), or `KEYRITE_SSL_PYTHON`. Missing, it fails the test with that advice.
pub fn ssl_python() -> String {
    let python = std::env::var("KEYRITE_SSL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/ssl/bin/python"));
    assert!(
        python.exists(),
        "securesystemslib is not installed at {}: run scripts/install-emulator.sh (scripts/test.sh does this)",
        python.display()
    );
    python.display().to_string()
}
