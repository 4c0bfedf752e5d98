//! The AWS connection: SDK clients built from the standard AWS environment plus the
//! manifest's `provider.aws` block, and an interceptor that records every API call.
//!
//! Credentials, region and endpoints come from the SDK's default chain (environment,
//! profile, SSO, IMDS; `AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_<SERVICE>`). Settings in the manifest take precedence. The call log is
//! how keyrite proves that a converged apply makes no mutating calls.
//!
//! The crate is keyrite's AWS provider: the connection, the kinds ([`KINDS`]: KMS, IAM,
//! Lambda, API Gateway), each implementing the core's `Schema` and `Kind<Aws>`, the S3 state
//! backend ([`state_s3`]) and the function packages Lambda runs ([`package`]). It builds on
//! `keyrite-core` alone; it must not import another provider or the CLI.

pub mod api_gateway;
pub mod iam_role;
pub mod iam_role_policy;
pub mod invoke;
pub mod kms_alias;
pub mod kms_key;
pub mod lambda_function;
pub mod lambda_function_url;
pub mod lambda_layer;
pub mod package;
pub mod sigv4;
pub mod simulate;
pub mod state_s3;

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tokio::sync::OnceCell;

use crate::manifest::AwsConfig;
use crate::provider::{CallLog, Kind, ProviderError};
pub use crate::provider::{TRANSPORT, unless_gone};

// The core's layers under the names this crate's modules use.
pub(crate) use keyrite_core::{crypto, manifest, policy};
pub(crate) mod provider {
    pub use keyrite_core::provider::*;
    pub use keyrite_core::schema::*;
}

/// Every AWS kind, in the order `keyrite` lists kinds.
pub static KINDS: &[&dyn Kind<Aws>] = &[
    &kms_key::KmsKey,
    &kms_alias::KmsAlias,
    &iam_role::IamRole,
    &iam_role_policy::IamRolePolicy,
    &lambda_layer::LambdaLayer,
    &lambda_function::LambdaFunction,
    &lambda_function_url::LambdaFunctionUrl,
    &api_gateway::ApiGateway,
];

/// Who keyrite is talking to AWS as.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub account_id: String,
    pub arn: String,
    pub partition: String,
}

#[derive(Debug)]
struct CountCalls(Arc<CallLog>);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "keyrite-call-log"
    }

    // Once per operation (retries are not counted again), after the operation's metadata is
    // in the config bag (it is not yet at `read_before_execution` for client interceptors).
    fn read_before_serialization(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            let key = format!("{}.{}", meta.service(), meta.name());
            self.0.record(key);
        }
        Ok(())
    }
}

/// SDK clients and the caller's identity.
#[derive(Debug)]
pub struct Aws {
    pub kms: aws_sdk_kms::Client,
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub sdk_config: aws_types::SdkConfig,
    pub region: String,
    pub calls: Arc<CallLog>,
    identity: OnceCell<Identity>,
}

impl Aws {
    /// Builds clients from the environment, overridden by the manifest's settings. Nothing
    /// is sent yet; a missing region is reported by [`Aws::identity`], so that manifests
    /// without AWS resources need no AWS settings.
    pub async fn connect(settings: &AwsConfig, calls: Arc<CallLog>) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        // Bounded retries with exponential backoff for throttling, 5xx and transport errors,
        // and timeouts so that a hung connection becomes an error instead of a hang. The
        // standard AWS_MAX_ATTEMPTS / AWS_RETRY_MODE still win when set.
        if std::env::var_os("AWS_MAX_ATTEMPTS").is_none() && std::env::var_os("AWS_RETRY_MODE").is_none() {
            loader = loader.retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(6)
                    .with_initial_backoff(std::time::Duration::from_millis(100))
                    .with_max_backoff(std::time::Duration::from_secs(5)),
            );
        }
        loader = loader.timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .operation_attempt_timeout(std::time::Duration::from_secs(30))
                .operation_timeout(std::time::Duration::from_secs(120))
                .build(),
        );
        let sdk_config = loader.load().await;
        let region = sdk_config.region().map(|r| r.to_string()).unwrap_or_default();
        let kms = aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&sdk_config).interceptor(CountCalls(calls.clone())).build(),
        );
        let iam = aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(&sdk_config).interceptor(CountCalls(calls.clone())).build(),
        );
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&sdk_config).interceptor(CountCalls(calls.clone())).build(),
        );
        let lambda = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&sdk_config).interceptor(CountCalls(calls.clone())).build(),
        );
        let apigateway = aws_sdk_apigateway::Client::from_conf(
            aws_sdk_apigateway::config::Builder::from(&sdk_config).interceptor(CountCalls(calls.clone())).build(),
        );
        Aws { kms, iam, sts, lambda, apigateway, sdk_config, region, calls, identity: OnceCell::new() }
    }

    /// The KMS client `serve` signs with: the SDK configuration every command uses (credentials,
    /// region, endpoint, the bounded retries and the connect, attempt and operation timeouts),
    /// less two things a long-running signer pays for on every request and does not need:
    /// - stalled-stream protection, a throughput check on the request and response bodies
    ///   with a timer of its own. A Sign request and its answer are a few hundred bytes, and
    ///   the attempt timeout (30 s) already ends a stalled call;
    /// - the call-log interceptor, with which `apply` proves a converged run mutates
    ///   nothing; serve makes no calls that plan or apply count.
    ///
    /// Measured with `scripts/bench-serve.sh` (BENCHMARKS.md).
    pub fn serving_kms(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&self.sdk_config)
                .stalled_stream_protection(aws_sdk_kms::config::StalledStreamProtectionConfig::disabled())
                .build(),
        )
    }

    /// The caller's account and partition (`sts:GetCallerIdentity`, which needs no permission).
    pub async fn identity(&self) -> crate::provider::Result<&Identity> {
        self.identity
            .get_or_try_init(|| async {
                if self.region.is_empty() {
                    return Err(ProviderError::Refused(
                        "no AWS region: set provider.aws.region in the manifest, or AWS_REGION".into(),
                    ));
                }
                let out =
                    self.sts.get_caller_identity().send().await.map_err(|e| api_error("sts:GetCallerIdentity", e))?;
                let arn = out.arn().unwrap_or_default().to_owned();
                let partition = arn.split(':').nth(1).filter(|p| !p.is_empty()).unwrap_or("aws").to_owned();
                let account_id = out.account().unwrap_or_default().to_owned();
                if account_id.is_empty() {
                    return Err(ProviderError::Unexpected {
                        operation: "sts:GetCallerIdentity",
                        message: "no account id in response".into(),
                    });
                }
                Ok(Identity { account_id, arn, partition })
            })
            .await
    }
}

/// Turns an SDK error into a [`ProviderError`] that keeps the service's error code, with a
/// one-line message: the error's chain of causes by their `Display`, never a `Debug` dump
/// (`-v` adds the SDK's full context).
pub fn api_error<E, R>(operation: &'static str, err: aws_sdk_kms::error::SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    use aws_sdk_kms::error::SdkError;
    let verbose = |message: String| {
        if crate::provider::verbose() {
            format!("{message} [{}]", aws_smithy_types::error::display::DisplayErrorContext(&err))
        } else {
            message
        }
    };
    if let Some(cause) = credentials_error(&err) {
        let code = match cause {
            CredentialsError::CredentialsNotLoaded(_) => NO_CREDENTIALS,
            _ => CREDENTIALS_FAILED,
        };
        let message = verbose(crate::provider::error_chain(cause));
        return ProviderError::Api { operation, code: code.into(), message };
    }
    if matches!(err, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_)) {
        let message = verbose(crate::provider::error_chain(&err));
        return ProviderError::Api { operation, code: TRANSPORT.into(), message };
    }
    let code = err.code().unwrap_or("").to_owned();
    let message = verbose(match err.message() {
        Some(m) => m.to_owned(),
        None => crate::provider::error_chain(&err),
    });
    ProviderError::Api { operation, code: if code.is_empty() { "Error".into() } else { code }, message }
}

/// The code keyrite gives to a credential provider that failed (SSO token expired, a
/// profile that does not parse, a process that exits non-zero…).
pub use crate::provider::AWS_CREDENTIALS_FAILED as CREDENTIALS_FAILED;
/// The code keyrite gives to "no credentials anywhere in the chain".
pub use crate::provider::AWS_NO_CREDENTIALS as NO_CREDENTIALS;

/// The credentials error somewhere in an SDK error's chain of causes.
fn credentials_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a CredentialsError> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(c);
        }
        cause = e.source();
    }
    None
}

/// Reads an optional policy `document:` field: an inline mapping or a JSON string. The
/// document is checked as an IAM policy now, so a malformed statement is a manifest error
/// with a position rather than an API error halfway through an apply.
pub fn document_field(
    block: &mut crate::manifest::Block<'_>,
    cx: &mut crate::manifest::Validation,
    key: &str,
) -> Option<serde_json::Value> {
    let path = block.field_path(key);
    let node = block.get(key)?;
    let doc = match node.as_scalar() {
        Some(text) => match crate::policy::decode_policy_text(text) {
            Ok(doc) => {
                cx.scan_refs(text, node.pos);
                doc
            }
            Err(e) => {
                cx.error(node.pos, "policy", format!("{path}: {e}"));
                return None;
            }
        },
        None => cx.json(node),
    };
    if let Err(e) = crate::policy::Policy::parse(&doc) {
        cx.error(node.pos, "policy", format!("{path}: {e}"));
        return None;
    }
    Some(doc)
}

/// For `import:` ids: an ARN must be of `service`, with a resource starting with one of
/// `resources`; anything that is not an ARN is left to the read. `what` names the kind.
pub fn arn_of(given: &str, service: &str, resources: &[&str], what: &str) -> Result<(), String> {
    if !given.starts_with("arn:") {
        return Ok(());
    }
    let parts: Vec<&str> = given.splitn(6, ':').collect();
    let (found_service, resource) =
        (parts.get(2).copied().unwrap_or_default(), parts.get(5).copied().unwrap_or_default());
    if found_service == service && resources.iter().any(|r| resource.starts_with(r)) {
        return Ok(());
    }
    let found = match resource.split_once(['/', ':']) {
        Some((kind, _)) => format!("{found_service} {kind}"),
        None => found_service.to_owned(),
    };
    Err(format!("{given} is the ARN of a {found}, not of {what}"))
}

/// Checks an IPv4/IPv6 address or CIDR block, as `aws:SourceIp` accepts.
pub fn check_cidr(text: &str) -> Result<(), String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: std::net::IpAddr = addr.parse().map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix.map(str::parse::<u8>) {
        None => Ok(()),
        Some(Ok(p)) if p <= max => Ok(()),
        Some(_) => Err(format!("{text:?}: prefix length must be 0–{max}")),
    }
}

/// Checks the shape of an IAM principal ARN (or `${…}` reference, checked later).
pub fn check_principal(text: &str) -> Result<(), String> {
    if text.contains("${") || text == "*" || (text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())) {
        return Ok(());
    }
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" && !parts[1].is_empty() && parts[2] == "iam" && !parts[5].is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not an IAM principal ARN (arn:aws:iam::<account>:role/<name>, …:root, …) or account id"
        ))
    }
}

/// Retries `op` while `transient` says its error is the kind IAM's eventual consistency
/// produces (a principal created a moment ago is not visible yet), with bounded exponential
/// backoff: 0.5 s doubling to 8 s, at most ~45 s in all. Other errors return at once.
pub async fn until_visible<T, F, Fut>(op: F, transient: impl Fn(&ProviderError) -> bool) -> crate::provider::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = crate::provider::Result<T>>,
{
    let mut delay = std::time::Duration::from_millis(500);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(45);
    loop {
        match op().await {
            Err(e) if transient(&e) && tokio::time::Instant::now() + delay < deadline => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(8));
            }
            other => return other,
        }
    }
}
