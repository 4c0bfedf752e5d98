//! Who a request is, and whether it may use the signer it asks for: the one decision between
//! a request's credentials and a KMS call, with the HTTP status each refusal carries.
//!
//! The statuses follow their HTTP meaning (RFC 9110 §15.5.2 and §15.5.4, RFC 6750 §3):
//! - **401** when the request carries no credential the server recognises: no credential at
//!   all, or a bearer token that is malformed or matches no client (or is not the
//!   `--token-file` token). The answer carries `WWW-Authenticate: Bearer realm="keyrite"`,
//!   with `error="invalid_token"` when a token was presented, so the client knows to fix or
//!   renew its credential.
//! - **403** when the request comes from an identity the server recognises that may not use
//!   this signer: an access-list client not allowed it, or a client certificate that chains to
//!   the client CA (the TLS layer verified it) that the access list does not name. Presenting
//!   the same credential again cannot succeed; someone must change the access list.
//!
//! A certificate that verified is always reported as `auth: mtls`, with its subject and
//! fingerprint, whether or not the access list names it, so a refused certificate can be
//! found in the audit log.

use super::{Peer, Service, constant_time_eq};
use http::StatusCode;

/// The realm of every challenge.
const REALM: &str = "keyrite";

/// The `Authorization` header, as far as authentication is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization` header, or one with another scheme (`Basic …`), which this server
    /// does not support: as RFC 6750 §3.1 says, a challenge without an error code.
    Absent,
    /// `Bearer <token>`, the scheme matched case-insensitively.
    Token(&'a str),
    /// `Bearer` with no token, a token that is not a b64token (RFC 6750 §2.1), or a header
    /// that is not visible ASCII.
    Malformed,
}

impl<'a> Bearer<'a> {
    pub fn parse(header: Option<&'a http::HeaderValue>) -> Bearer<'a> {
        let Some(value) = header else { return Bearer::Absent };
        let Ok(value) = value.to_str() else { return Bearer::Malformed };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Bearer::Absent;
        }
        let token = rest.trim_matches(' ');
        let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/".contains(c);
        let body = token.trim_end_matches('=');
        if body.is_empty() || !body.chars().all(b64token) {
            return Bearer::Malformed;
        }
        Bearer::Token(token)
    }

    fn presented(self) -> bool {
        self != Bearer::Absent
    }
}

/// Who made a request, as the audit log and the per-client limit name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The access list's client name; else the certificate subject; else the peer's IP.
    pub client: String,
    /// `mtls`, `bearer` or `none`.
    pub auth: &'static str,
}

/// A refused request.
#[derive(Debug)]
pub struct Denied {
    pub status: StatusCode,
    pub outcome: &'static str,
    /// Why, for the client and for the audit log's `reason`. Never a credential.
    pub message: String,
    /// The `WWW-Authenticate` challenge of a 401.
    pub challenge: Option<String>,
    /// Who was refused, when a credential identified someone.
    pub caller: Option<Caller>,
}

impl Denied {
    /// 401, with a challenge; `error` is RFC 6750's error code, when a token was presented.
    fn unauthorized(message: String, error: Option<&str>, caller: Option<Caller>) -> Denied {
        let challenge = match error {
            Some(code) => format!("Bearer realm=\"{REALM}\", error=\"{code}\", error_description=\"{message}\""),
            None => format!("Bearer realm=\"{REALM}\""),
        };
        Denied {
            status: StatusCode::UNAUTHORIZED,
            outcome: "unauthorized",
            message,
            challenge: Some(challenge),
            caller,
        }
    }

    fn forbidden(message: String, caller: Caller) -> Denied {
        Denied { status: StatusCode::FORBIDDEN, outcome: "forbidden", message, challenge: None, caller: Some(caller) }
    }
}

/// A 401 for the token a request presented: malformed, or recognised by nothing.
fn bad_token(bearer: Bearer<'_>, what: &str, caller: Option<Caller>) -> Denied {
    let message = match bearer {
        Bearer::Malformed => "the Authorization header is not `Bearer <token>`".to_owned(),
        _ => format!("the bearer token {what}"),
    };
    Denied::unauthorized(message, Some("invalid_token"), caller)
}

impl Service {
    /// Who the caller is, and whether it may use `signer` (`None`: the server holds no such
    /// signer, and the route answers 404 once the caller is known).
    pub(super) fn authorize(&self, peer: &Peer, bearer: Bearer<'_>, signer: Option<&str>) -> Result<Caller, Denied> {
        let cert = peer.cert.as_deref();
        let token = match bearer {
            Bearer::Token(t) => Some(t),
            _ => None,
        };
        // A verified certificate identifies its holder even when nothing lets it sign.
        let cert_caller = cert.map(|c| Caller { client: c.subject.clone(), auth: "mtls" });
        let everything =
            self.token.as_deref().is_some_and(|t| token.is_some_and(|b| constant_time_eq(b.as_bytes(), t.as_bytes())));
        let Some(access) = &self.access else {
            return match (&self.token, everything) {
                (Some(_), false) if bearer.presented() => Err(bad_token(bearer, "is not this server's token", None)),
                (Some(_), false) => Err(Denied::unauthorized(
                    "this server needs a bearer token: Authorization: Bearer <token>".to_owned(),
                    None,
                    None,
                )),
                (_, true) => Ok(Caller { client: peer.name(), auth: "bearer" }),
                (None, false) => Ok(cert_caller.unwrap_or_else(|| Caller { client: peer.name(), auth: "none" })),
            };
        };
        // Every credential presented, in order of strength; the first that may use the signer wins.
        let mut known = Vec::new();
        if let Some(client) = cert.and_then(|c| access.by_certificate(c)) {
            known.push((client.name.as_str(), "mtls", Some(client)));
        }
        if let Some(client) = token.and_then(|b| access.by_token(b)) {
            known.push((client.name.as_str(), "bearer", Some(client)));
        }
        if everything {
            known.push(("bearer", "bearer", None));
        }
        let Some(first) = known.first() else {
            return Err(match (cert, bearer.presented()) {
                (_, true) => bad_token(bearer, "matches no client of the access list", cert_caller),
                (Some(c), false) => Denied::forbidden(
                    format!("client certificate {} (SHA-256 {}) is not in the access list", c.subject, c.sha256),
                    Caller { client: c.subject.clone(), auth: "mtls" },
                ),
                (None, false) => Denied::unauthorized(
                    "no credentials: present a client certificate or a bearer token".to_owned(),
                    None,
                    None,
                ),
            });
        };
        let first_caller = Caller { client: first.0.to_owned(), auth: first.1 };
        let Some(signer) = signer else {
            return Ok(first_caller);
        };
        match known.iter().find(|(_, _, client)| client.is_none_or(|c| c.may_use(signer))) {
            Some((name, auth, _)) => Ok(Caller { client: (*name).to_owned(), auth }),
            None => Err(Denied::forbidden(format!("client {} may not use signer {signer}", first.0), first_caller)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(text).unwrap()
    }

    #[test]
    fn reads_the_bearer_scheme_case_insensitively_and_refuses_what_is_not_a_token() {
        assert_eq!(Bearer::parse(None), Bearer::Absent);
        assert_eq!(Bearer::parse(Some(&header("Bearer abc-1.2_3~+/=="))), Bearer::Token("abc-1.2_3~+/=="));
        assert_eq!(Bearer::parse(Some(&header("bearer abc"))), Bearer::Token("abc"));
        assert_eq!(Bearer::parse(Some(&header("Basic dXNlcjpwdw=="))), Bearer::Absent);
        for bad in ["Bearer", "Bearer ", "Bearer a b", "Bearer ===", "Bearer tok\"en"] {
            assert_eq!(Bearer::parse(Some(&header(bad))), Bearer::Malformed, "{bad:?}");
        }
        let not_ascii = http::HeaderValue::from_bytes(b"Bearer \xff").unwrap();
        assert_eq!(Bearer::parse(Some(&not_ascii)), Bearer::Malformed);
    }

    #[test]
    fn a_challenge_names_the_error_only_when_a_token_was_presented() {
        let none = Denied::unauthorized("no credentials".into(), None, None);
        assert_eq!(none.challenge.as_deref(), Some("Bearer realm=\"keyrite\""));
        let bad = bad_token(Bearer::Token("x"), "matches no client of the access list", None);
        assert_eq!(
            bad.challenge.as_deref(),
            Some(
                "Bearer realm=\"keyrite\", error=\"invalid_token\", \
                 error_description=\"the bearer token matches no client of the access list\""
            )
        );
        assert_eq!((bad.status, bad.outcome), (StatusCode::UNAUTHORIZED, "unauthorized"));
        let forbidden = Denied::forbidden("no".into(), Caller { client: "ci".into(), auth: "bearer" });
        assert!(forbidden.challenge.is_none() && forbidden.status == StatusCode::FORBIDDEN);
    }
}
