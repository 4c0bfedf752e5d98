//! Who may use which signer: the access list of `keyrite serve` (`--access FILE`).
//!
//! ```yaml
//! clients:
//!   bundler:                      # the name the audit log and rate limits use
//!     certificate:                # needs --client-ca; exactly one of:
//!       san: dns:bundler.internal #   a subject alternative name (dns:, uri:, email:, ip:)
//!       # subject: CN=bundler,O=Acme   the subject, as RFC 4514 writes it
//!       # sha256: 9f86d0…              the certificate's SHA-256 fingerprint
//!     signers: [treasury]
//!   ci:
//!     token_sha256: 2c26b4…       # SHA-256 of the bearer token; the token is not in the file
//!     signers: [ops]
//! ```
//!
//! A request may use a signer when a credential it presents (its verified client
//! certificate, its bearer token) names a client allowed that signer. The file holds no
//! secret: a token appears only as its SHA-256 (`printf %s "$TOKEN" | sha256sum`), and
//! presented tokens are hashed and compared in constant time.

use std::path::Path;

use sha2::Digest;

use super::tls::ClientCert;
use crate::manifest::yaml::{self, Node, Value};

/// How a client proves who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Subject(String),
    San(String),
    Fingerprint(String),
    TokenSha256([u8; 32]),
}

#[derive(Clone, Debug)]
pub struct Client {
    pub name: String,
    pub credential: Credential,
    pub signers: Vec<String>,
}

impl Client {
    pub fn may_use(&self, signer: &str) -> bool {
        self.signers.iter().any(|s| s == signer)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Access {
    pub clients: Vec<Client>,
}

impl Access {
    /// Reads the access list; `signers` are the names the server holds.
    pub fn load(path: &Path, signers: &[&str]) -> anyhow::Result<Access> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the access list {}: {e}", path.display()))?;
        Access::parse(&text, signers).map_err(|(pos, message)| anyhow::anyhow!("{}:{pos}: {message}", path.display()))
    }

    pub fn parse(text: &str, signers: &[&str]) -> Result<Access, (yaml::Pos, String)> {
        let root = yaml::parse(text).map_err(|e| (e.pos, e.message))?;
        let entries = mapping(&root, &["clients"])?;
        let Some((_, clients)) = entries.iter().find(|(k, _)| k.as_scalar() == Some("clients")) else {
            return Err((root.pos, "the access list needs `clients:`".into()));
        };
        let mut access = Access::default();
        for (name, body) in mapping(clients, &[])? {
            let name_text = name.as_scalar().unwrap_or_default().to_owned();
            let fields = mapping(body, &["certificate", "token_sha256", "signers"])?;
            let field = |key: &str| fields.iter().find(|(k, _)| k.as_scalar() == Some(key)).map(|(_, v)| v);
            let credential = match (field("certificate"), field("token_sha256")) {
                (Some(cert), None) => certificate(cert)?,
                (None, Some(token)) => Credential::TokenSha256(sha256_hex(token)?),
                (Some(_), Some(t)) => {
                    return Err((t.pos, format!("client {name_text}: give a certificate or a token_sha256, not both")));
                }
                (None, None) => {
                    return Err((body.pos, format!("client {name_text}: needs certificate: or token_sha256:")));
                }
            };
            let Some(list) = field("signers") else {
                return Err((body.pos, format!("client {name_text}: needs signers: [the signers it may use]")));
            };
            let Value::Seq(items) = &list.value else {
                return Err((list.pos, format!("signers must be a list of signer names, found {}", list.describe())));
            };
            if items.is_empty() {
                return Err((list.pos, format!("client {name_text}: signers is empty")));
            }
            let mut names = Vec::new();
            for item in items {
                let signer = item
                    .as_scalar()
                    .filter(|s| !item.is_null() && !s.is_empty())
                    .ok_or_else(|| (item.pos, format!("expected a signer name, found {}", item.describe())))?;
                if !signers.contains(&signer) {
                    return Err((
                        item.pos,
                        format!("this server has no signer {signer:?} (it serves {})", signers.join(", ")),
                    ));
                }
                names.push(signer.to_owned());
            }
            if let Some(other) = access.clients.iter().find(|c| c.credential == credential) {
                return Err((body.pos, format!("client {name_text} has the same credential as client {}", other.name)));
            }
            access.clients.push(Client { name: name_text, credential, signers: names });
        }
        Ok(access)
    }

    /// True when some client is known by its certificate (the server then needs a client CA).
    pub fn uses_certificates(&self) -> bool {
        self.clients.iter().any(|c| !matches!(c.credential, Credential::TokenSha256(_)))
    }

    /// The client a verified certificate identifies.
    pub fn by_certificate(&self, cert: &ClientCert) -> Option<&Client> {
        self.clients.iter().find(|c| match &c.credential {
            Credential::Subject(s) => *s == cert.subject,
            Credential::San(s) => cert.sans.iter().any(|san| san == s),
            Credential::Fingerprint(f) => *f == cert.sha256,
            Credential::TokenSha256(_) => false,
        })
    }

    /// The client a bearer token identifies; every token client is compared, in constant time.
    pub fn by_token(&self, token: &str) -> Option<&Client> {
        let presented: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for client in &self.clients {
            if let Credential::TokenSha256(hash) = &client.credential
                && super::constant_time_eq(hash, &presented)
                && found.is_none()
            {
                found = Some(client);
            }
        }
        found
    }
}

/// The entries of a mapping, refusing keys outside `allowed` (when given).
fn mapping<'a>(node: &'a Node, allowed: &[&str]) -> Result<&'a [(Node, Node)], (yaml::Pos, String)> {
    let Value::Map(entries) = &node.value else {
        return Err((node.pos, format!("expected a mapping, found {}", node.describe())));
    };
    if !allowed.is_empty()
        && let Some((key, _)) = entries.iter().find(|(k, _)| !allowed.contains(&k.as_scalar().unwrap_or_default()))
    {
        return Err((
            key.pos,
            format!("unknown field {:?} (expected one of {})", key.as_scalar().unwrap_or_default(), allowed.join(", ")),
        ));
    }
    Ok(entries)
}

fn certificate(node: &Node) -> Result<Credential, (yaml::Pos, String)> {
    let entries = mapping(node, &["subject", "san", "sha256"])?;
    let [(key, value)] = entries else {
        return Err((node.pos, "certificate: give exactly one of subject, san, sha256".into()));
    };
    let text = value
        .as_scalar()
        .filter(|t| !value.is_null() && !t.is_empty())
        .ok_or_else(|| (value.pos, format!("expected a string, found {}", value.describe())))?;
    Ok(match key.as_scalar() {
        Some("subject") => Credential::Subject(text.to_owned()),
        Some("san") => {
            if !["dns:", "uri:", "email:", "ip:"].iter().any(|p| text.starts_with(p)) {
                return Err((value.pos, format!("san {text:?} needs its type: dns:, uri:, email: or ip:")));
            }
            Credential::San(text.to_owned())
        }
        _ => Credential::Fingerprint(hex::encode(sha256_hex(value)?)),
    })
}

fn sha256_hex(node: &Node) -> Result<[u8; 32], (yaml::Pos, String)> {
    let text = node.as_scalar().unwrap_or_default().replace(':', "");
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| (node.pos, format!("expected a SHA-256 in hex (64 digits), found {}", node.describe())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNERS: [&str; 2] = ["treasury", "ops"];

    fn cert(subject: &str, sans: &[&str], sha256: &str) -> ClientCert {
        ClientCert {
            subject: subject.into(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            sha256: sha256.into(),
        }
    }

    #[test]
    fn matches_certificates_and_tokens_to_their_signers() {
        let token_hash = hex::encode(sha2::Sha256::digest(b"s3cret"));
        let fp = "ab".repeat(32);
        let text = format!(
            "clients:\n  bundler:\n    certificate:\n      san: dns:bundler.internal\n    signers: [treasury]\n  \
             auditor:\n    certificate: {{subject: \"CN=auditor,O=Acme\"}}\n    signers: [ops, treasury]\n  \
             pinned:\n    certificate: {{sha256: \"{}\"}}\n    signers: [ops]\n  \
             ci:\n    token_sha256: {token_hash}\n    signers: [ops]\n",
            fp.to_uppercase()
        );
        let access = Access::parse(&text, &SIGNERS).unwrap();
        assert!(access.uses_certificates());
        let bundler = access.by_certificate(&cert("CN=x", &["dns:bundler.internal"], "00")).unwrap();
        assert_eq!(bundler.name, "bundler");
        assert!(bundler.may_use("treasury") && !bundler.may_use("ops"));
        assert_eq!(access.by_certificate(&cert("CN=auditor,O=Acme", &[], "00")).unwrap().name, "auditor");
        assert_eq!(access.by_certificate(&cert("CN=y", &[], &fp)).unwrap().name, "pinned");
        assert!(access.by_certificate(&cert("CN=stranger", &["dns:other"], "00")).is_none());
        assert_eq!(access.by_token("s3cret").unwrap().name, "ci");
        assert!(access.by_token("s3cret ").is_none() && access.by_token("").is_none());
    }

    #[test]
    fn errors_point_at_the_line_and_column() {
        let err = |text: &str| {
            let (pos, message) = Access::parse(text, &SIGNERS).unwrap_err();
            format!("{pos}: {message}")
        };
        assert_eq!(
            err("clients:\n  a:\n    token_sha256: 00\n    signers: [ops]\n"),
            "3:19: expected a SHA-256 in hex (64 digits), found the number 00"
        );
        let hash = "ab".repeat(32);
        assert_eq!(
            err(&format!("clients:\n  a:\n    token_sha256: {hash}\n    signers: [ops, vault]\n")),
            "4:20: this server has no signer \"vault\" (it serves treasury, ops)"
        );
        assert_eq!(err("clients:\n  a:\n    signers: [ops]\n"), "3:5: client a: needs certificate: or token_sha256:");
        assert_eq!(
            err("clients:\n  a:\n    certificate: {san: bundler}\n    signers: [ops]\n"),
            "3:24: san \"bundler\" needs its type: dns:, uri:, email: or ip:"
        );
        assert_eq!(
            err("clients:\n  a:\n    certificate: {san: dns:a, subject: CN=a}\n    signers: [ops]\n"),
            "3:18: certificate: give exactly one of subject, san, sha256"
        );
        assert_eq!(
            err(&format!("clients:\n  a:\n    token_sha256: {hash}\n    signer: [ops]\n")),
            "4:5: unknown field \"signer\" (expected one of certificate, token_sha256, signers)"
        );
        assert_eq!(
            err(&format!(
                "clients:\n  a:\n    token_sha256: {hash}\n    signers: [ops]\n  b:\n    token_sha256: {hash}\n    signers: [ops]\n"
            )),
            "6:5: client b has the same credential as client a"
        );
        assert_eq!(err("servers: {}\n"), "1:1: unknown field \"servers\" (expected one of clients)");
    }
}
