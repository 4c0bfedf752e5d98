//! The audit log of `keyrite serve`: one JSON line per signing request, to stderr or to
//! `--audit-log FILE` (appended). Fields:
//!
//! | field | what |
//! |---|---|
//! | `time` | when the answer was sent (RFC 3339, UTC) |
//! | `client` | who asked: the access list's client name; else the client certificate's subject; else the peer's IP address |
//! | `peer` | the peer's address and port |
//! | `auth` | how the request authenticated: `mtls` (a client certificate that chains to `--client-ca`, whether or not the access list names it), `bearer` (a token the server recognises), `none` |
//! | `cert_subject` | the verified client certificate's subject, RFC 4514 (absent without one) |
//! | `cert_sha256` | its SHA-256 fingerprint, lowercase hex, as an access list's `sha256:` names it |
//! | `signer` | the signer asked for (`-` when the server holds no such signer) |
//! | `digest` | the 32-byte hash the client sent, 0x-hex (absent when the body had none) |
//! | `mode` | `eip191` or `digest` |
//! | `address` | the address the signer signs as |
//! | `outcome` | as the metrics count it: `signed`, `bad_request`, `unauthorized`, `forbidden`, `not_found`, `rate_limited`, `kms_error`, `throttled` |
//! | `status` | the HTTP status sent |
//! | `kms_request_id` | the KMS request id, when KMS gives one (AWS) |
//! | `latency_ms` | from the request's arrival to its answer |
//! | `reason` | why a request was refused with 401 or 403 (`client certificate CN=… (SHA-256 …) is not in the access list`, `the bearer token matches no client of the access list`, `client ci may not use signer treasury`) |
//!
//! Never a token, a credential or a signature.

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;

/// One signing request, borrowed from the request's handler.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub time: String,
    pub client: &'a str,
    /// Its address and port, as a string (serde's form of a socket address in JSON).
    pub peer: std::net::SocketAddr,
    pub auth: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<&'a str>,
    pub signer: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<&'a str>,
    pub outcome: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_request_id: Option<&'a str>,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

/// Where entries go, and the buffer a line is made in (kept, so that a line costs no
/// allocation).
pub struct Audit {
    out: Mutex<(Vec<u8>, Box<dyn Write + Send>)>,
}

impl Audit {
    pub fn stderr() -> Audit {
        Audit { out: Mutex::new((Vec::new(), Box::new(std::io::stderr()))) }
    }

    /// Appends to `path`, creating it.
    pub fn file(path: &std::path::Path) -> std::io::Result<Audit> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Audit { out: Mutex::new((Vec::new(), Box::new(file))) })
    }

    /// Writes one line, whole, with one `write` (the file is opened to append), before the
    /// request is answered. A write that fails is reported on stderr; the request is
    /// answered regardless.
    pub fn record(&self, entry: &Entry<'_>) {
        let written = self.out.lock().map(|mut out| {
            let (line, out) = &mut *out;
            line.clear();
            serde_json::to_writer(&mut *line, entry).map_err(std::io::Error::from)?;
            line.push(b'\n');
            out.write_all(line).and_then(|()| out.flush())
        });
        if !matches!(written, Ok(Ok(()))) {
            eprintln!("keyrite serve: cannot write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn entry<'a>(client: &'a str, digest: Option<&'a str>) -> Entry<'a> {
        Entry {
            time: "2026-12-07T11:30:31.729Z".into(),
            client,
            peer: "127.0.0.1:50000".parse().unwrap(),
            auth: "mtls",
            cert_subject: Some("CN=bundler"),
            cert_sha256: None,
            signer: "treasury",
            digest,
            mode: Some("digest"),
            address: Some("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"),
            outcome: "signed",
            status: 200,
            kms_request_id: Some("abc"),
            latency_ms: 0.5,
            reason: None,
        }
    }

    #[test]
    fn each_entry_is_one_json_line_and_the_buffer_keeps_nothing_of_the_last() {
        let sink = Shared::default();
        let audit = Audit { out: Mutex::new((Vec::new(), Box::new(sink.clone()))) };
        let digest = format!("0x{}", "ab".repeat(32));
        audit.record(&entry("a-client-with-a-long-name", Some(&digest)));
        audit.record(&entry("b", None));
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(text.ends_with('\n'));
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(first["peer"], "127.0.0.1:50000");
        assert_eq!(first["digest"], digest.as_str());
        assert_eq!(first["cert_subject"], "CN=bundler");
        assert!(first.get("cert_sha256").is_none());
        assert_eq!(second["client"], "b");
        assert!(second.get("digest").is_none());
        let keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "time",
                "client",
                "peer",
                "auth",
                "cert_subject",
                "signer",
                "digest",
                "mode",
                "address",
                "outcome",
                "status",
                "kms_request_id",
                "latency_ms"
            ]
        );
    }
}
