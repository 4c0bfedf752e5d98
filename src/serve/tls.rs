//! TLS for `keyrite serve`, with rustls: the server's certificate chain and key from PEM
//! files, and optionally client certificates verified against a CA (mTLS).
//!
//! The files are read again on SIGHUP ([`Tls::reload`]): new connections get the new
//! configuration, connections already open keep theirs, and a reload that fails (a missing
//! file, a key that does not match) keeps the configuration in use.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;

/// Where the PEM files are.
#[derive(Clone, Debug)]
pub struct Files {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates that client certificates must chain to; `None` asks for none.
    pub client_ca: Option<PathBuf>,
}

/// The TLS configuration new connections get.
pub struct Tls {
    files: Files,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    pub fn load(files: Files) -> anyhow::Result<Tls> {
        let config = config(&files)?;
        Ok(Tls { files, current: RwLock::new(Arc::new(config)) })
    }

    /// Reads the files again; on an error the configuration in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = Arc::new(config(&self.files)?);
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }

    /// True when clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }
}

fn config(files: &Files) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the certificate chain {}", files.cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", files.cert.display());
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read the private key {}", files.key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read the client CA {}", path.display()))?;
            for ca in cas {
                roots.add(ca).with_context(|| format!("{}: not a usable CA certificate", path.display()))?;
            }
            anyhow::ensure!(!roots.is_empty(), "{} holds no CA certificate", path.display());
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .with_context(|| format!("client CA {}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!("{} and {} do not make a certificate and its key", files.cert.display(), files.key.display())
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What a verified client certificate says of its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// The subject as RFC 4514 writes it, e.g. `CN=bundler,O=Acme`.
    pub subject: String,
    /// Subject alternative names, each with its type: `dns:bundler.internal`,
    /// `uri:spiffe://prod/bundler`, `email:ops@example.com`, `ip:10.0.0.7`.
    pub sans: Vec<String>,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub sha256: String,
}

impl ClientCert {
    /// Reads a certificate the TLS layer has already verified.
    pub fn from_der(der: &[u8]) -> anyhow::Result<ClientCert> {
        use x509_cert::der::Decode;
        use x509_cert::ext::pkix::SubjectAltName;
        use x509_cert::ext::pkix::name::GeneralName;
        let cert = x509_cert::Certificate::from_der(der).context("client certificate")?;
        let tbs = &cert.tbs_certificate;
        let mut sans = Vec::new();
        if let Some((_, SubjectAltName(names))) = tbs.get::<SubjectAltName>().context("subjectAltName")? {
            for name in names {
                match name {
                    GeneralName::DnsName(n) => sans.push(format!("dns:{}", n.as_str())),
                    GeneralName::UniformResourceIdentifier(n) => sans.push(format!("uri:{}", n.as_str())),
                    GeneralName::Rfc822Name(n) => sans.push(format!("email:{}", n.as_str())),
                    GeneralName::IpAddress(ip) => {
                        let bytes = ip.as_bytes();
                        let addr = match bytes.len() {
                            4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
                            16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
                            _ => None,
                        };
                        if let Some(addr) = addr {
                            sans.push(format!("ip:{addr}"));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(ClientCert { subject: tbs.subject.to_string(), sans, sha256: hex::encode(sha2::Sha256::digest(der)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_subject_every_san_and_the_fingerprint() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["bundler.internal".to_owned(), "10.0.0.7".to_owned()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI("spiffe://prod/bundler".try_into().unwrap()));
        params.subject_alt_names.push(rcgen::SanType::Rfc822Name("ops@example.com".try_into().unwrap()));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme");
        params.distinguished_name.push(rcgen::DnType::CommonName, "bundler");
        let cert = params.self_signed(&key).unwrap();
        let read = ClientCert::from_der(cert.der()).unwrap();
        assert_eq!(read.subject, "CN=bundler,O=Acme");
        assert_eq!(
            read.sans,
            ["dns:bundler.internal", "ip:10.0.0.7", "uri:spiffe://prod/bundler", "email:ops@example.com"]
        );
        assert_eq!(read.sha256, hex::encode(sha2::Sha256::digest(cert.der())));
        assert!(ClientCert::from_der(b"not a certificate").is_err());
    }

    #[test]
    fn a_key_that_is_not_the_certificates_fails_and_reload_keeps_the_old_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let key = rcgen::KeyPair::generate().unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
        let files = Files {
            cert: write("cert.pem", &cert.pem()),
            key: write("key.pem", &key.serialize_pem()),
            client_ca: None,
        };
        let tls = Tls::load(files.clone()).unwrap();
        assert!(!tls.mutual());
        let current = || tls.current.read().unwrap().clone();
        let first = current();
        write("key.pem", &other.serialize_pem());
        let err = format!("{:#}", tls.reload().unwrap_err());
        assert!(err.contains("do not make a certificate and its key"), "{err}");
        assert!(Arc::ptr_eq(&first, &current()), "a failed reload keeps the configuration in use");
        write("key.pem", &key.serialize_pem());
        tls.reload().unwrap();
        assert!(!Arc::ptr_eq(&first, &current()), "a reload that works replaces it");
        write("cert.pem", "");
        let err = format!("{:#}", Tls::load(files).err().unwrap());
        assert!(err.contains("holds no certificate"), "{err}");
    }
}
