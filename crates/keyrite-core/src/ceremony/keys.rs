//! An operator's own key. Approvals and envelopes are signed with an OpenSSH private key file
//! (`-----BEGIN OPENSSH PRIVATE KEY-----`, what `ssh-keygen` writes), decrypted with a passphrase
//! when it is encrypted. Asking for the passphrase is the caller's business: this module only says
//! that one is needed, so that a prompt, an environment variable or a test can supply it.
//! ssh-agent signing is not here: see the note at the end of this header.
//!
//! Why no ssh-agent client: the maintained `ssh-agent-client-rs` (1.1.x) is small itself, but it
//! turns on `ssh-key`'s `crypto` feature, which compiles the `rsa`, `p384` and `p521` stacks that
//! keyrite otherwise does not need; so it was left out of this core. If it is added later, an agent
//! approval is `SshSig::new(key_data, ns, HashAlg::Sha512, client.sign(&public_key,
//! &SshSig::signed_data(ns, HashAlg::Sha512, msg)?)?)`, and `approval::verify` accepts it unchanged.

use std::path::{Path, PathBuf};

use ssh_key::{PrivateKey, PublicKey};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is not an OpenSSH private key (expected -----BEGIN OPENSSH PRIVATE KEY-----){hint}", path.display())]
    NotOpenSsh { path: PathBuf, hint: &'static str },
    #[error("{} is not a valid OpenSSH key: {source}", path.display())]
    Invalid { path: PathBuf, source: ssh_key::Error },
    #[error("{} is encrypted: a passphrase is needed", path.display())]
    PassphraseNeeded { path: PathBuf },
    #[error("{}: wrong passphrase", path.display())]
    WrongPassphrase { path: PathBuf },
}

/// Reads and, if encrypted, decrypts the OpenSSH private key at `path`.
pub fn load_private_key(path: &Path, passphrase: Option<&str>) -> Result<PrivateKey, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    parse_private_key(&text, path, passphrase)
}

/// Parses an OpenSSH private key from `text`; `path` only labels errors. A passphrase given for an
/// unencrypted key is ignored.
pub fn parse_private_key(text: &str, path: &Path, passphrase: Option<&str>) -> Result<PrivateKey, Error> {
    let path = || path.to_owned();
    if !text.trim_start().starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let hint = if text.contains("-----BEGIN ") && text.contains("PRIVATE KEY-----") {
            "; convert it with `ssh-keygen -p -f FILE`, which rewrites it in OpenSSH format"
        } else {
            ""
        };
        return Err(Error::NotOpenSsh { path: path(), hint });
    }
    let key = PrivateKey::from_openssh(text).map_err(|source| Error::Invalid { path: path(), source })?;
    if !key.is_encrypted() {
        return Ok(key);
    }
    let passphrase = passphrase.ok_or_else(|| Error::PassphraseNeeded { path: path() })?;
    key.decrypt(passphrase).map_err(|source| match source {
        // A wrong passphrase shows as a failed check of the decrypted contents.
        ssh_key::Error::Crypto => Error::WrongPassphrase { path: path() },
        source => Error::Invalid { path: path(), source },
    })
}

/// Reads a one-line OpenSSH public key file (`ssh-ed25519 AAAA... comment`).
pub fn load_public_key(path: &Path) -> Result<PublicKey, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    PublicKey::from_openssh(text.trim()).map_err(|source| Error::Invalid { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::{LineEnding, private::Ed25519Keypair};

    fn key() -> PrivateKey {
        PrivateKey::new(Ed25519Keypair::from_seed(&[7; 32]).into(), "op@example").unwrap()
    }

    #[test]
    fn parses_an_unencrypted_key_and_ignores_a_passphrase() {
        let text = key().to_openssh(LineEnding::LF).unwrap();
        let p = Path::new("k");
        assert_eq!(parse_private_key(&text, p, None).unwrap().public_key(), key().public_key());
        assert_eq!(parse_private_key(&text, p, Some("x")).unwrap().public_key(), key().public_key());
    }

    #[test]
    fn refuses_what_is_not_an_openssh_key() {
        let e = parse_private_key(
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            Path::new("k"),
            None,
        );
        let e = e.unwrap_err();
        assert!(matches!(e, Error::NotOpenSsh { .. }));
        assert!(e.to_string().contains("ssh-keygen -p"), "{e}");
        assert!(matches!(parse_private_key("hello", Path::new("k"), None), Err(Error::NotOpenSsh { hint: "", .. })));
        let truncated =
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----\n";
        assert!(matches!(parse_private_key(truncated, Path::new("k"), None), Err(Error::Invalid { .. })));
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let e = load_private_key(Path::new("/nonexistent/keyrite-key"), None).unwrap_err();
        assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("/nonexistent/keyrite-key"), "{e}");
    }
}
