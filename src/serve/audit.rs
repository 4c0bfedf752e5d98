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

/// One signing request.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub time: String,
    pub client: String,
    pub peer: String,
    pub auth: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    pub signer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub outcome: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_request_id: Option<String>,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where entries go.
pub struct Audit {
    out: Mutex<Box<dyn Write + Send>>,
}

impl Audit {
    pub fn stderr() -> Audit {
        Audit { out: Mutex::new(Box::new(std::io::stderr())) }
    }

    /// Appends to `path`, creating it.
    pub fn file(path: &std::path::Path) -> std::io::Result<Audit> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Audit { out: Mutex::new(Box::new(file)) })
    }

    /// Writes one line. A write that fails is reported on stderr; the request is answered
    /// regardless.
    pub fn record(&self, entry: &Entry) {
        let Ok(mut line) = serde_json::to_string(entry) else { return };
        line.push('\n');
        let written = self.out.lock().map(|mut out| out.write_all(line.as_bytes()).and_then(|()| out.flush()));
        if !matches!(written, Ok(Ok(()))) {
            eprintln!("keyrite serve: cannot write the audit log");
        }
    }
}
