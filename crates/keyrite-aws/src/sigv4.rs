//! SigV4-signed requests to the endpoints keyrite deploys with AWS_IAM auth (Function URLs
//! and API Gateway stages), for the live self-test.

use aws_credential_types::provider::ProvideCredentials as _;

use crate::Aws;

/// Credentials and region for SigV4-signing endpoint requests.
pub struct SigV4 {
    pub credentials: aws_credential_types::Credentials,
    pub region: String,
}

impl SigV4 {
    /// The credentials the SDK's chain gives `aws`'s clients, when it gives any.
    pub async fn of(aws: &Aws) -> Option<SigV4> {
        let credentials = aws.sdk_config.credentials_provider()?.provide_credentials().await.ok()?;
        Some(SigV4 { credentials, region: aws.region.clone() })
    }

    /// The SigV4 headers for a POST of `body` to `url`, for `service` (`lambda`,
    /// `execute-api`).
    pub fn headers(
        &self,
        url: &str,
        host: Option<&str>,
        body: &[u8],
        service: &str,
    ) -> Result<Vec<(String, String)>, String> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let identity = self.credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let mut headers = vec![("content-type", "application/json")];
        if let Some(h) = host {
            headers.push(("host", h));
        }
        let signable = SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
        Ok(instructions.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
    }
}
