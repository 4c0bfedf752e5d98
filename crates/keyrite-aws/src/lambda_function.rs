//! `aws_lambda_function`: the signer function, packaged deterministically from a template.
//!
//! The function gets its whole configuration from the environment keyrite sets: the KMS key
//! (`KMS_KEY_ID`), the address it must sign for (`EXPECTED_ADDRESS`, normally
//! `${key.address}`) and the signing mode (`SIGNING_MODE`). The expected address therefore
//! comes from keyrite's own derivation, never from a request.
//!
//! The package is built deterministically (see [`crate::package`]), so the recorded
//! `code_sha256` is a fingerprint of the template: a different live value means the signer
//! code was replaced out of band. Reserved concurrency doubles as a circuit breaker: 0 stops
//! all signing at once.
//!
//! Two kinds of template: the Node.js signers (`aws-lambda-signer`, or a directory) on
//! `nodejs20.x` / `nodejs22.x`, and the Rust signer (`rust-signer`, the default on
//! `provided.al2023`), whose `bootstrap` is the `keyrite-lambda-signer` executable built with
//! keyrite; `architecture` must then be the executable's own.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode, Runtime};
use futures_util::TryFutureExt;
use serde_json::{Value as Json, json};

use super::{Aws, api_error, unless_gone, until_visible};
use crate::manifest::{Attrs, Block, Validation};
use crate::package;
use crate::provider::Schema;
use crate::provider::{
    AttrSpec, Created, DeleteOptions, Deleted, Kind, Live, Occupant, Op, ProviderError, Result, map_attr, map_json,
    str_attr, tag_delta,
};

pub struct LambdaFunction;

/// The runtime of the Rust signer's `bootstrap`: Amazon Linux 2023, glibc 2.34.
pub const RUST_RUNTIME: &str = "provided.al2023";

const X86_64: &str = "x86_64";

const ATTRS: &[AttrSpec] = &[
    AttrSpec::replace("name"),
    AttrSpec::update("runtime"),
    AttrSpec::update("architecture"),
    AttrSpec::update("handler"),
    AttrSpec::update("role"),
    AttrSpec::update("memory_mb"),
    AttrSpec::update("timeout_seconds"),
    AttrSpec::update("environment"),
    AttrSpec::update("layers"),
    AttrSpec::update("reserved_concurrency"),
    AttrSpec::update("code_sha256"),
    AttrSpec::update("tags"),
    AttrSpec::state_only("template"),
    AttrSpec::state_only("template_base"),
];

impl Schema for LambdaFunction {
    fn name(&self) -> &'static str {
        "aws_lambda_function"
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["arn", "name"]
    }

    /// A function name or ARN.
    fn check_import(&self, given: &str) -> std::result::Result<(), String> {
        super::arn_of(given, "lambda", &["function:"], "a Lambda function")
    }

    fn import_id(&self, looked_up: &str, live: &Live) -> String {
        live.attrs.get("name").and_then(Json::as_str).unwrap_or(looked_up).to_owned()
    }

    /// An apply that puts the template over code keyrite did not write says so plainly.
    fn change_note(&self, before: &Attrs, desired: &Attrs) -> Option<String> {
        let (had, want) = (str_attr(before, "code_sha256"), str_attr(desired, "code_sha256"));
        let template = str_attr(desired, "template");
        if template.is_empty() || had == want {
            return None;
        }
        let was = str_attr(before, "template");
        Some(if template == package::RUST_SIGNER && was == template {
            format!(
                "the {template} bootstrap of this keyrite ({} {}) is not the one deployed (CodeSha256 {had}): the apply \
                 upgrades the signer code",
                package::RUST_SIGNER_BIN,
                env!("CARGO_PKG_VERSION")
            )
        } else if was == template {
            format!(
                "the template {template} is not what was deployed (a different keyrite, or an edit): the apply replaces the signer code"
            )
        } else {
            format!(
                "the apply REPLACES the function's current code (CodeSha256 {had}), which keyrite did not write, with the template {template}"
            )
        })
    }

    /// The function with its own code kept (`code: {keep: CodeSha256}`).
    fn declare(&self, live: &Live, refer: &dyn Fn(&str) -> Option<String>) -> Option<Json> {
        let a = &live.attrs;
        let environment: serde_json::Map<String, Json> = a
            .get("environment")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let v = v.as_str().unwrap_or_default();
                (k.clone(), json!(refer(v).unwrap_or_else(|| v.to_owned())))
            })
            .collect();
        let mut out = json!({
            "name": str_attr(a, "name"),
            "code": {"keep": str_attr(a, "code_sha256")},
            "runtime": str_attr(a, "runtime"),
            "handler": str_attr(a, "handler"),
            "role": crate::provider::declared_ref(a, "role", refer),
            "memory_mb": a.get("memory_mb").cloned().unwrap_or(json!(128)),
            "timeout_seconds": a.get("timeout_seconds").cloned().unwrap_or(json!(3)),
            "environment": environment,
        });
        let layers: Vec<Json> = a
            .get("layers")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(|l| json!(refer(l).unwrap_or_else(|| l.to_owned())))
            .collect();
        if !layers.is_empty() {
            out["layers"] = json!(layers);
        }
        if let Some(arch) = a.get("architecture").filter(|x| x.as_str() != Some(X86_64)) {
            out["architecture"] = arch.clone();
        }
        if let Some(n) = a.get("reserved_concurrency").filter(|n| !n.is_null()) {
            out["reserved_concurrency"] = n.clone();
        }
        if let Some(tags) = crate::provider::declared_tags(a, "tags") {
            out["tags"] = tags;
        }
        Some(out)
    }

    fn permissions(&self, op: Op) -> &'static [&'static str] {
        match op {
            Op::Read => &["lambda:GetFunction"],
            Op::Create => {
                &["lambda:CreateFunction", "lambda:TagResource", "lambda:PutFunctionConcurrency", "iam:PassRole"]
            }
            Op::Update => &[
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
                "lambda:PutFunctionConcurrency",
                "lambda:DeleteFunctionConcurrency",
                "lambda:TagResource",
                "lambda:UntagResource",
                "iam:PassRole",
            ],
            Op::Delete => &["lambda:DeleteFunction"],
        }
    }

    fn desired(&self, _name: &str, b: &mut Block<'_>, cx: &mut Validation) -> Attrs {
        let mut a = Attrs::new();
        let pos = b.pos();
        a.insert("name".into(), json!(b.required_string(cx, "name").unwrap_or_default()));
        // `code: {keep: <CodeSha256>}`: code keyrite did not write, managed without replacing it.
        let kept = match b.block(cx, "code") {
            Some(mut code) => {
                let sha = code.required_string(cx, "keep");
                code.finish(cx);
                if b.has("template") {
                    cx.error(
                        b.pos_of("template"),
                        "value",
                        format!("{}: give `template` or `code: {{keep: …}}`, not both", b.field_path("template")),
                    );
                }
                sha
            }
            None => None,
        };
        let runtime = if kept.is_some() {
            // Kept code runs on whatever runtime it was written for.
            let r = b.string(cx, "runtime").unwrap_or_else(|| "nodejs20.x".into());
            if r.is_empty() || !r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.') {
                cx.error(
                    b.pos_of("runtime"),
                    "value",
                    format!("{}: {r:?} is not a Lambda runtime", b.field_path("runtime")),
                );
            }
            r
        } else {
            b.choice(cx, "runtime", &["nodejs20.x", "nodejs22.x", RUST_RUNTIME]).unwrap_or_else(|| "nodejs20.x".into())
        };
        let native = runtime == RUST_RUNTIME;
        a.insert("runtime".into(), json!(runtime));
        let handler = if native { "bootstrap" } else { "index.handler" };
        a.insert("handler".into(), json!(b.string(cx, "handler").unwrap_or_else(|| handler.into())));
        let architecture = b.choice(cx, "architecture", &[X86_64, "arm64"]).unwrap_or_else(|| X86_64.into());
        a.insert("architecture".into(), json!(architecture));
        a.insert("role".into(), json!(b.required_string(cx, "role").unwrap_or_default()));
        a.insert("memory_mb".into(), json!(b.integer(cx, "memory_mb", 128..=10240).unwrap_or(256)));
        a.insert("timeout_seconds".into(), json!(b.integer(cx, "timeout_seconds", 1..=900).unwrap_or(10)));
        let mut env: BTreeMap<String, String> = b.string_map(cx, "environment").unwrap_or_default();
        // The template is configured by these; kept code has the environment it declares.
        let key = if kept.is_some() { b.string(cx, "key") } else { b.required_string(cx, "key") };
        if let Some(key) = key {
            env.insert("KMS_KEY_ID".into(), key);
        }
        let address =
            if kept.is_some() { b.string(cx, "expected_address") } else { b.required_string(cx, "expected_address") };
        if let Some(address) = address {
            env.insert("EXPECTED_ADDRESS".into(), address);
        }
        let mode_pos = b.pos_of("mode");
        let mode = b.choice(cx, "mode", &["eip191", "digest"]);
        if let Some(gate) = b.block(cx, "gate") {
            if mode.is_some() {
                cx.error(
                    mode_pos,
                    "value",
                    format!(
                        "{}: a quorum gate signs enrolment digests as they are (EIP-712); remove `mode`",
                        b.field_path("mode")
                    ),
                );
            }
            if !native || kept.is_some() {
                cx.error(
                    gate.pos(),
                    "value",
                    format!(
                        "{}: a quorum gate is keyrite's Rust signer: `runtime: {RUST_RUNTIME}` with its template",
                        b.field_path("gate")
                    ),
                );
            }
            gate_environment(gate, cx, &mut env);
        } else if kept.is_none() || mode.is_some() {
            env.insert("SIGNING_MODE".into(), mode.unwrap_or_else(|| "eip191".into()));
        }
        a.insert("environment".into(), map_json(&env));
        a.insert("layers".into(), json!(b.string_list(cx, "layers").unwrap_or_default()));
        a.insert(
            "reserved_concurrency".into(),
            b.integer(cx, "reserved_concurrency", 0..=1000).map_or(Json::Null, |n| json!(n)),
        );
        a.insert("tags".into(), map_json(&b.string_map(cx, "tags").unwrap_or_default()));
        if let Some(sha) = kept {
            a.insert("code_sha256".into(), json!(sha));
            a.insert("template".into(), json!(""));
            a.insert("template_base".into(), json!(""));
            return a;
        }
        let default = if native { package::RUST_SIGNER } else { "aws-lambda-signer" };
        let template = b.string(cx, "template").unwrap_or_else(|| default.into());
        // A built-in template runs on its own runtime (native or Node.js); a directory on the
        // one declared.
        let wants_native = match template.as_str() {
            package::RUST_SIGNER => Some(true),
            t if !t.contains('/') => Some(false),
            _ => None,
        };
        if let Some(wants_native) = wants_native.filter(|w| *w != native) {
            cx.error(
                b.pos_of("runtime"),
                "value",
                format!(
                    "{}: the template {template} runs on {}, not {runtime}",
                    b.field_path("runtime"),
                    if wants_native { RUST_RUNTIME } else { "nodejs20.x or nodejs22.x" }
                ),
            );
        }
        let base = cx.base_dir().to_path_buf();
        match package::function_package(&template, &base) {
            Ok(p) => {
                a.insert("code_sha256".into(), json!(p.sha256));
                if let Some(built) = p.architecture.filter(|built| *built != architecture) {
                    cx.error(
                        b.pos_of("architecture"),
                        "value",
                        format!(
                            "{}: the function is {architecture}, but {} is built for {built}: declare \
                             `architecture: {built}`, or set {} to a build for {architecture}",
                            b.field_path("architecture"),
                            package::rust_signer_path().display(),
                            package::RUST_SIGNER_ENV
                        ),
                    );
                }
            }
            Err(e) => cx.error(pos, "template", format!("{}: {e}", b.field_path("template"))),
        }
        a.insert("template".into(), json!(template));
        a.insert("template_base".into(), json!(base.display().to_string()));
        a
    }
}

/// Lambda's limit on a function's environment: every name and value, together.
const ENVIRONMENT_LIMIT: usize = 4096;

/// `gate:`: the function is a recovery key's quorum gate ([`keyrite_core::gate`]). Its
/// approvers (an allowed_signers file), threshold and enrolment scope
/// ([`keyrite_core::manifest::GateSpec`]) become the environment the bootstrap reads, so
/// that drift sees any change to them as a change of the function's configuration, and
/// `SIGNING_MODE` is `gate`.
fn gate_environment(g: Block<'_>, cx: &mut Validation, env: &mut BTreeMap<String, String>) {
    // A gate even when the rest of its block is wrong, so that the slot checks judge it as one.
    env.insert("SIGNING_MODE".into(), "gate".into());
    let (path, pos) = (g.field_path("approvers"), g.pos());
    let Some(spec) = cx.gate_block(g) else { return };
    env.extend(spec.environment().map(|(k, v)| (k.to_owned(), v)));
    let size: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > ENVIRONMENT_LIMIT {
        cx.error(
            pos,
            "value",
            format!(
                "{path}: the gate's configuration makes the function's environment {size} bytes, over Lambda's \
                 {ENVIRONMENT_LIMIT}: list fewer approvers, or shorter key comments, in {}",
                spec.file.display()
            ),
        );
    }
}

#[async_trait]
impl Kind<Aws> for LambdaFunction {
    /// `lambda:GetFunction`.
    async fn read(&self, cloud: &Aws, id: &str, _: &Attrs) -> Result<Option<Live>> {
        let Some(out) = unless_gone(get_function(cloud, id).await)? else {
            return Ok(None);
        };
        let c = out.configuration().ok_or_else(|| unexpected("lambda:GetFunction", "no Configuration"))?;
        let env: BTreeMap<String, String> = c
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let tags: BTreeMap<String, String> =
            out.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        let mut live = Live::default();
        live.attrs.insert("name".into(), json!(c.function_name().unwrap_or(id)));
        live.attrs.insert("runtime".into(), json!(c.runtime().map(|r| r.as_str()).unwrap_or_default()));
        let architecture = c.architectures().first().map_or(X86_64, |a| a.as_str());
        live.attrs.insert("architecture".into(), json!(architecture));
        live.attrs.insert("handler".into(), json!(c.handler().unwrap_or_default()));
        live.attrs.insert("role".into(), json!(c.role().unwrap_or_default()));
        live.attrs.insert("memory_mb".into(), json!(c.memory_size().unwrap_or_default()));
        live.attrs.insert("timeout_seconds".into(), json!(c.timeout().unwrap_or_default()));
        live.attrs.insert("environment".into(), map_json(&env));
        live.attrs.insert("layers".into(), json!(c.layers().iter().filter_map(|l| l.arn()).collect::<Vec<_>>()));
        live.attrs.insert(
            "reserved_concurrency".into(),
            out.concurrency().and_then(|c| c.reserved_concurrent_executions()).map_or(Json::Null, |n| json!(n)),
        );
        live.attrs.insert("code_sha256".into(), json!(c.code_sha256().unwrap_or_default()));
        live.attrs.insert("tags".into(), map_json(&tags));
        live.outputs = outputs(c.function_arn().unwrap_or_default(), c.function_name().unwrap_or(id));
        Ok(Some(live))
    }

    /// `lambda:CreateFunction` (with tags), `lambda:PutFunctionConcurrency`, and
    /// `iam:PassRole` on the role. Retries while the new role is not yet assumable.
    async fn create(&self, cloud: &Aws, desired: &Attrs) -> Result<Created> {
        if str_attr(desired, "template").is_empty() {
            return Err(ProviderError::Refused(format!(
                "function {} keeps code keyrite did not write (code: keep), so keyrite cannot create it: import it, or \
                 give a template",
                str_attr(desired, "name")
            )));
        }
        let code = build(desired)?;
        let name = str_attr(desired, "name");
        let out = until_visible(
            || {
                cloud
                    .lambda
                    .create_function()
                    .function_name(name)
                    .runtime(Runtime::from(str_attr(desired, "runtime")))
                    .architectures(Architecture::from(str_attr(desired, "architecture")))
                    .handler(str_attr(desired, "handler"))
                    .role(str_attr(desired, "role"))
                    .memory_size(int(desired, "memory_mb"))
                    .timeout(int(desired, "timeout_seconds"))
                    .environment(environment(desired))
                    .set_layers(Some(layers(desired)))
                    .set_tags(Some(map_attr(desired, "tags").into_iter().collect()))
                    .code(FunctionCode::builder().zip_file(Blob::new(code.bytes.clone())).build())
                    .send()
                    .map_err(|e| api_error("lambda:CreateFunction", e))
            },
            |e| e.code() == Some("InvalidParameterValueException") && e.to_string().contains("role"),
        )
        .await?;
        if let Some(n) = desired.get("reserved_concurrency").and_then(Json::as_i64) {
            cloud
                .lambda
                .put_function_concurrency()
                .function_name(name)
                .reserved_concurrent_executions(n as i32)
                .send()
                .await
                .map_err(|e| api_error("lambda:PutFunctionConcurrency", e))?;
        }
        Ok(Created { id: name.to_owned(), outputs: outputs(out.function_arn().unwrap_or_default(), name) })
    }

    /// `lambda:UpdateFunctionCode`, `lambda:UpdateFunctionConfiguration`,
    /// `lambda:PutFunctionConcurrency` / `lambda:DeleteFunctionConcurrency`,
    /// `lambda:TagResource` / `lambda:UntagResource`, as the changes need.
    async fn update(&self, cloud: &Aws, id: &str, desired: &Attrs, live: &Attrs, changed: &[String]) -> Result<Attrs> {
        let has = |a: &str| changed.iter().any(|c| c == a);
        if has("architecture") && !has("code_sha256") && str_attr(desired, "template").is_empty() {
            return Err(ProviderError::Refused(format!(
                "function {id} keeps its own code (code: keep), which is built for {}: keyrite cannot move code it did \
                 not write to {}; upload a build for it, then pin its CodeSha256",
                str_attr(live, "architecture"),
                str_attr(desired, "architecture")
            )));
        }
        if has("code_sha256") && str_attr(desired, "template").is_empty() {
            return Err(ProviderError::Refused(format!(
                "function {id} keeps its own code (code: keep, CodeSha256 {}), but it is now {}: keyrite never uploads \
                 code it did not write; restore the code, or pin the new CodeSha256 after reviewing it",
                str_attr(desired, "code_sha256"),
                str_attr(live, "code_sha256")
            )));
        }
        // The architecture is the code's: Lambda changes it only with the code.
        if has("code_sha256") || has("architecture") {
            let code = build(desired)?;
            retry_conflict(|| {
                cloud
                    .lambda
                    .update_function_code()
                    .function_name(id)
                    .architectures(Architecture::from(str_attr(desired, "architecture")))
                    .zip_file(Blob::new(code.bytes.clone()))
                    .send()
                    .map_err(|e| api_error("lambda:UpdateFunctionCode", e))
            })
            .await?;
        }
        if ["runtime", "handler", "role", "memory_mb", "timeout_seconds", "environment", "layers"]
            .iter()
            .any(|a| has(a))
        {
            retry_conflict(|| {
                cloud
                    .lambda
                    .update_function_configuration()
                    .function_name(id)
                    .runtime(Runtime::from(str_attr(desired, "runtime")))
                    .handler(str_attr(desired, "handler"))
                    .role(str_attr(desired, "role"))
                    .memory_size(int(desired, "memory_mb"))
                    .timeout(int(desired, "timeout_seconds"))
                    .environment(environment(desired))
                    .set_layers(Some(layers(desired)))
                    .send()
                    .map_err(|e| api_error("lambda:UpdateFunctionConfiguration", e))
            })
            .await?;
        }
        if has("reserved_concurrency") {
            match desired.get("reserved_concurrency").and_then(Json::as_i64) {
                Some(n) => {
                    cloud
                        .lambda
                        .put_function_concurrency()
                        .function_name(id)
                        .reserved_concurrent_executions(n as i32)
                        .send()
                        .await
                        .map_err(|e| api_error("lambda:PutFunctionConcurrency", e))?;
                }
                None => {
                    cloud
                        .lambda
                        .delete_function_concurrency()
                        .function_name(id)
                        .send()
                        .await
                        .map_err(|e| api_error("lambda:DeleteFunctionConcurrency", e))?;
                }
            }
        }
        let current = get_function(cloud, id).await?;
        let arn = current.configuration().and_then(|c| c.function_arn()).unwrap_or_default().to_owned();
        if has("tags") {
            let (set, unset) = tag_delta(desired, live);
            if !unset.is_empty() {
                cloud
                    .lambda
                    .untag_resource()
                    .resource(&arn)
                    .set_tag_keys(Some(unset))
                    .send()
                    .await
                    .map_err(|e| api_error("lambda:UntagResource", e))?;
            }
            if !set.is_empty() {
                cloud
                    .lambda
                    .tag_resource()
                    .resource(&arn)
                    .set_tags(Some(set.into_iter().collect()))
                    .send()
                    .await
                    .map_err(|e| api_error("lambda:TagResource", e))?;
            }
        }
        Ok(outputs(&arn, id))
    }

    /// `lambda:GetFunction`: the function of this name, if it carries our tags.
    async fn adopt(&self, cloud: &Aws, desired: &Attrs, _: Option<&str>) -> Result<Option<String>> {
        let name = str_attr(desired, "name");
        let live = self.read(cloud, name, desired).await?;
        Ok(live.filter(|l| crate::provider::owned_by(desired, &map_attr(&l.attrs, "tags"))).map(|_| name.to_owned()))
    }

    /// `lambda:GetFunction`: a function of this name is ours only with this state's
    /// ownership tags.
    async fn occupant(&self, cloud: &Aws, desired: &Attrs, _: &str) -> Result<Occupant> {
        let name = str_attr(desired, "name");
        let Some(live) = self.read(cloud, name, desired).await? else { return Ok(Occupant::Free) };
        Ok(if crate::provider::owned_by(desired, &map_attr(&live.attrs, "tags")) {
            Occupant::Ours { id: name.to_owned(), why: format!("function {name} carries this state's ownership tags") }
        } else {
            let what = format!(
                "function {} (runtime {}, code {})",
                str_attr(&live.outputs, "arn"),
                str_attr(&live.attrs, "runtime"),
                str_attr(&live.attrs, "code_sha256")
            );
            Occupant::Foreign { id: name.to_owned(), what }
        })
    }

    /// `lambda:DeleteFunction`.
    async fn delete(&self, cloud: &Aws, id: &str, _: &Attrs, _: DeleteOptions) -> Result<Deleted> {
        unless_gone(
            cloud
                .lambda
                .delete_function()
                .function_name(id)
                .send()
                .await
                .map_err(|e| api_error("lambda:DeleteFunction", e)),
        )?;
        Ok(Deleted::Removed)
    }
}

/// Rebuilds the package and checks it is the one that was planned.
fn build(desired: &Attrs) -> Result<package::Package> {
    let code = package::function_package(str_attr(desired, "template"), Path::new(str_attr(desired, "template_base")))
        .map_err(|e| ProviderError::Refused(format!("cannot package the function: {e}")))?;
    let planned = str_attr(desired, "code_sha256");
    if code.sha256 != planned {
        return Err(ProviderError::Refused(format!(
            "the template {} changed since the plan (planned code_sha256 {planned}, now {}); plan again",
            str_attr(desired, "template"),
            code.sha256
        )));
    }
    Ok(code)
}

/// Lambda refuses a second update while one is in progress; wait it out, bounded.
async fn retry_conflict<T, F, Fut>(op: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    until_visible(op, |e| e.code() == Some("ResourceConflictException")).await
}

fn environment(desired: &Attrs) -> Environment {
    let vars: HashMap<String, String> = map_attr(desired, "environment").into_iter().collect();
    Environment::builder().set_variables(Some(vars)).build()
}

fn layers(desired: &Attrs) -> Vec<String> {
    desired
        .get("layers")
        .and_then(Json::as_array)
        .map(|l| l.iter().filter_map(Json::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn int(desired: &Attrs, name: &str) -> i32 {
    desired.get(name).and_then(Json::as_i64).unwrap_or_default() as i32
}

fn outputs(arn: &str, name: &str) -> Attrs {
    let mut out = Attrs::new();
    out.insert("arn".into(), json!(arn));
    out.insert("name".into(), json!(name));
    out
}

fn unexpected(operation: &'static str, message: &str) -> ProviderError {
    ProviderError::Unexpected { operation, message: message.to_owned() }
}

/// `lambda:GetFunction`.
async fn get_function(cloud: &Aws, id: &str) -> Result<aws_sdk_lambda::operation::get_function::GetFunctionOutput> {
    cloud.lambda.get_function().function_name(id).send().await.map_err(|e| api_error("lambda:GetFunction", e))
}
