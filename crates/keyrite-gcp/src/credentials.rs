//! Who keyrite is on Google Cloud: the Application Default Credentials it finds, the
//! principal they stand for, and ID tokens for Cloud Run.
//!
//! A plan names the principal it will act as, and approvers approve it for that principal,
//! so the principal is read from the credentials themselves: a service account key's
//! `client_email`, an impersonation target, a user's own ID token (its `email` claim), or the
//! metadata server's default service account. Missing or rejected credentials are an error
//! with the command that fixes them, never a plan that silently called nothing.

use std::time::Duration;

use super::Gcp;
use crate::provider::{ProviderError, Result};

/// The hint for missing or rejected Google credentials.
pub use crate::provider::GOOGLE_LOGIN_HINT as LOGIN_HINT;

/// The principal Cloud KMS calls are made as, as IAM names members: `serviceAccount:…`,
/// `user:…`, or `anonymous` for a stand-in without credentials.
pub async fn principal(gcp: &Gcp) -> Result<String> {
    if gcp.anonymous() {
        return Ok("anonymous".into());
    }
    let refused = |what: String| ProviderError::Refused(format!("Google credentials: {what}; {LOGIN_HINT}"));
    let Some(adc) = adc_file() else {
        return metadata_email().await.map(|e| format!("serviceAccount:{e}")).map_err(|e| {
            refused(format!("no Application Default Credentials file, and no metadata server answered ({e})"))
        });
    };
    match adc["type"].as_str().unwrap_or_default() {
        "service_account" => match adc["client_email"].as_str() {
            Some(email) => Ok(format!("serviceAccount:{email}")),
            None => Err(refused("the service account key file has no client_email".into())),
        },
        "impersonated_service_account" => {
            let url = adc["service_account_impersonation_url"].as_str().unwrap_or_default();
            let email = url.rsplit('/').next().and_then(|s| s.split(':').next()).filter(|e| e.contains('@'));
            match email {
                Some(email) => Ok(format!("serviceAccount:{email}")),
                None => Err(refused(format!("cannot tell whom {url:?} impersonates"))),
            }
        }
        "authorized_user" => {
            use google_cloud_auth::credentials::idtoken;
            let credentials = idtoken::user_account::Builder::new(adc.clone())
                .build()
                .map_err(|e| refused(format!("the user credentials file is unusable: {e}")))?;
            let token = credentials.id_token().await.map_err(|e| {
                refused(format!("the user's refresh token was refused (expired or revoked?): {}", one_line(&e)))
            })?;
            match jwt_claim(&token, "email") {
                Some(email) => Ok(format!("user:{email}")),
                None => Err(refused("the user's ID token carries no email".into())),
            }
        }
        "external_account" => Ok(format!(
            "external_account:{}",
            adc["service_account_impersonation_url"].as_str().or(adc["audience"].as_str()).unwrap_or("unknown")
        )),
        other => Err(refused(format!("unsupported credentials type {other:?}"))),
    }
}

/// The first line of an error's text, for messages that must stay on one line.
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// A claim of a JWT's payload, read without checking its signature: for display only.
fn jwt_claim(token: &str, claim: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get(claim)?.as_str().map(str::to_owned)
}

/// The metadata server's default service account (`GCE_METADATA_HOST` overrides its
/// address), within 3 s.
async fn metadata_email() -> std::result::Result<String, String> {
    use http_body_util::BodyExt;
    let host = std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| "metadata.google.internal".into());
    let uri = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/email");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let request = http::Request::get(&uri)
        .header("Metadata-Flavor", "Google")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(3), client.request(request))
        .await
        .map_err(|_| format!("{host}: no answer within 3 s"))?
        .map_err(|e| format!("{host}: {e}"))?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    let email = String::from_utf8_lossy(&body).trim().to_owned();
    if status.is_success() && email.contains('@') { Ok(email) } else { Err(format!("{host}: HTTP {status}")) }
}

/// A Google-signed ID token for `audience`, from Application Default Credentials: a service
/// account key file, or the metadata server (Cloud Run, GCE, GKE). The token is only ever
/// sent in the request's `Authorization` header, never printed.
///
/// User credentials (`gcloud auth application-default login`) cannot mint a token for an
/// arbitrary audience; they get the user's own ID token, whose audience is gcloud's OAuth
/// client. Cloud Run accepts those from principals with `roles/run.invoker`, as it does for
/// `gcloud auth print-identity-token`.
pub async fn google_id_token(audience: &str) -> std::result::Result<String, String> {
    use google_cloud_auth::credentials::idtoken;
    let credentials = match idtoken::Builder::new(audience).build() {
        Ok(c) => c,
        Err(e) if e.is_not_supported() => match adc_file().filter(|j| j["type"] == "authorized_user") {
            Some(user) => idtoken::user_account::Builder::new(user).build().map_err(|e| e.to_string())?,
            None => return Err(e.to_string()),
        },
        Err(e) => return Err(e.to_string()),
    };
    credentials.id_token().await.map_err(|e| e.to_string())
}

/// The Application Default Credentials file, where ADC looks for it (AIP-4110):
/// `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's well-known file.
pub fn adc_file() -> Option<serde_json::Value> {
    let path = match std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?)
            .join(".config/gcloud/application_default_credentials.json"),
    };
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}
