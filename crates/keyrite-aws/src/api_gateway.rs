//! `aws_api_gateway_rest_api`: a REST API in front of the signer function.
//!
//! One resource here is the whole signing route: the REST API with its resource policy, a
//! `/<path>` resource (or the API's root, `path: /`, where the console's "Create method" puts
//! it), `POST` with `AWS_IAM` authorization, an `AWS_PROXY` integration to the
//! function, the Lambda permission for `apigateway.amazonaws.com` (scoped to that route), a
//! deployment, and a stage with throttling. They are created and deleted together; a
//! half-built API is deleted again when a later step fails.
//!
//! The resource policy is account-scoped by default (`execute-api:Invoke` for the account
//! root), optionally narrowed to principals, source IPs and VPC endpoints. AWS returns the
//! policy backslash-escaped and with `execute-api:/…` expanded to full ARNs; some emulators
//! return it plain. Both are normalised before comparing by meaning.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_apigateway::types::{EndpointConfiguration, EndpointType, IntegrationType, Op, PatchOperation};
use serde_json::{Value as Json, json};

use super::{Aws, api_error, check_cidr, check_principal, document_field, unless_gone};
use crate::manifest::{Attrs, Block, Validation};
use crate::provider::Schema;
use crate::provider::{
    AttrSpec, Created, DeleteOptions, Deleted, Kind, Live, Op as Operation, ProviderError, Result, map_json, str_attr,
    tag_delta,
};

pub struct ApiGateway;

const ATTRS: &[AttrSpec] = &[
    AttrSpec::replace("path"),
    AttrSpec::replace("stage"),
    AttrSpec::update("name"),
    AttrSpec::update("function_arn"),
    AttrSpec::update("authorization"),
    AttrSpec::policy("policy"),
    AttrSpec::update("throttle_rate"),
    AttrSpec::update("throttle_burst"),
    AttrSpec::update("tags"),
];

impl Schema for ApiGateway {
    fn name(&self) -> &'static str {
        "aws_api_gateway_rest_api"
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["api_id", "arn", "execution_arn", "stage", "path", "stage_url"]
    }

    /// The REST API's id (as in `https://{id}.execute-api…`).
    fn check_import(&self, given: &str) -> std::result::Result<(), String> {
        if given.is_empty() || !given.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("{given:?} is not a REST API id (the 10 characters before .execute-api in its URL)"));
        }
        Ok(())
    }

    fn declare(&self, live: &Live, refer: &dyn Fn(&str) -> Option<String>) -> Option<Json> {
        let a = &live.attrs;
        let mut out = json!({
            "name": str_attr(a, "name"),
            "function": crate::provider::declared_ref(a, "function_arn", refer),
            "path": str_attr(a, "path"),
            "stage": str_attr(a, "stage"),
        });
        let rate = a.get("throttle_rate").and_then(Json::as_f64);
        let burst = a.get("throttle_burst").and_then(Json::as_i64);
        out["throttle"] = match (rate, burst) {
            (Some(rate), Some(burst)) if rate >= 1.0 && burst >= 1 && rate.fract() == 0.0 => {
                json!({"rate": rate as i64, "burst": burst})
            }
            _ => json!("none"),
        };
        if let Some(p) = a.get("policy").filter(|p| !p.is_null()) {
            out["policy"] = json!({"document": p});
        }
        if let Some(tags) = crate::provider::declared_tags(a, "tags") {
            out["tags"] = tags;
        }
        Some(out)
    }

    fn permissions(&self, op: Operation) -> &'static [&'static str] {
        match op {
            Operation::Read => &["apigateway:GET"],
            Operation::Create => {
                &["apigateway:POST", "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE", "lambda:AddPermission"]
            }
            Operation::Update => &["apigateway:PATCH", "apigateway:PUT", "apigateway:POST", "lambda:AddPermission"],
            Operation::Delete => &["apigateway:DELETE", "lambda:RemovePermission"],
        }
    }

    fn desired(&self, _name: &str, b: &mut Block<'_>, cx: &mut Validation) -> Attrs {
        let mut a = Attrs::new();
        let pos = b.pos();
        a.insert("name".into(), json!(b.required_string(cx, "name").unwrap_or_default()));
        a.insert("function_arn".into(), json!(b.required_string(cx, "function").unwrap_or_default()));
        let path = b.string(cx, "path").unwrap_or_else(|| "sign".into());
        if path != ROOT && (path.is_empty() || !path.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))) {
            cx.error(
                pos,
                "value",
                format!(
                    "{}: `/` (the API's root) or a single path segment of letters, digits, '-', '_' or '.', found {path:?}",
                    b.field_path("path")
                ),
            );
        }
        a.insert("path".into(), json!(path));
        let stage = b.string(cx, "stage").unwrap_or_else(|| "prod".into());
        if stage.is_empty() || !stage.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            cx.error(
                pos,
                "value",
                format!("{}: letters, digits, '-' and '_' only, found {stage:?}", b.field_path("stage")),
            );
        }
        a.insert("stage".into(), json!(stage));
        a.insert("authorization".into(), json!("AWS_IAM"));
        // `throttle: none` declares a stage without a throttle (as a hand-made one may be).
        let unthrottled = b.get("throttle").and_then(|n| n.as_scalar()) == Some("none");
        let (rate, burst) = match (unthrottled, if unthrottled { None } else { b.block(cx, "throttle") }) {
            (true, _) => (Json::Null, Json::Null),
            (false, Some(mut t)) => {
                let rate = t.integer(cx, "rate", 1..=10_000).unwrap_or(10);
                let burst = t.integer(cx, "burst", 1..=5_000).unwrap_or(20);
                t.finish(cx);
                (json!(rate as f64), json!(burst))
            }
            (false, None) => (json!(10.0), json!(20)),
        };
        a.insert("throttle_rate".into(), rate);
        a.insert("throttle_burst".into(), burst);
        a.insert("policy".into(), resource_policy(b, cx));
        a.insert("tags".into(), map_json(&b.string_map(cx, "tags").unwrap_or_default()));
        a
    }
}

#[async_trait]
impl Kind<Aws> for ApiGateway {
    /// `apigateway:GET` on the API, its resources, method, integration and stage.
    async fn read(&self, cloud: &Aws, id: &str, reference: &Attrs) -> Result<Option<Live>> {
        let Some(api) = unless_gone(
            cloud
                .apigateway
                .get_rest_api()
                .rest_api_id(id)
                .send()
                .await
                .map_err(|e| api_error("apigateway:GetRestApi", e)),
        )?
        else {
            return Ok(None);
        };
        let path = str_attr(reference, "path").to_owned();
        let stage = str_attr(reference, "stage").to_owned();
        let mut live = Live::default();
        live.attrs.insert("name".into(), json!(api.name().unwrap_or_default()));
        let policy = match api.policy() {
            Some(text) if !text.is_empty() => normalise_resources(
                crate::policy::decode_policy_text(text)
                    .map_err(|e| unexpected("apigateway:GetRestApi", &format!("policy: {e}")))?,
            ),
            _ => Json::Null,
        };
        live.attrs.insert("policy".into(), policy);
        // Tags from GetTags, which reflects TagResource everywhere (an emulator's GetRestApi
        // may show only the tags given at creation).
        let tags = cloud
            .apigateway
            .get_tags()
            .resource_arn(api_arn(cloud, id))
            .send()
            .await
            .map_err(|e| api_error("apigateway:GetTags", e))?;
        live.attrs.insert(
            "tags".into(),
            map_json(
                &tags
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<BTreeMap<_, _>>())
                    .unwrap_or_default(),
            ),
        );
        let resources = cloud
            .apigateway
            .get_resources()
            .rest_api_id(id)
            .limit(500)
            .send()
            .await
            .map_err(|e| api_error("apigateway:GetResources", e))?;
        let resource = resources.items().iter().find(|r| r.path() == Some(resource_path(&path).as_str()));
        live.attrs.insert("path".into(), json!(if resource.is_some() { path.as_str() } else { "" }));
        let (mut authorization, mut function_arn) = (String::new(), String::new());
        if let Some(resource_id) = resource.and_then(|r| r.id()) {
            if let Ok(m) =
                cloud.apigateway.get_method().rest_api_id(id).resource_id(resource_id).http_method("POST").send().await
            {
                authorization = m.authorization_type().unwrap_or_default().to_owned();
            }
            if let Ok(i) = cloud
                .apigateway
                .get_integration()
                .rest_api_id(id)
                .resource_id(resource_id)
                .http_method("POST")
                .send()
                .await
            {
                function_arn = function_from_uri(i.uri().unwrap_or_default());
            }
        }
        live.attrs.insert("authorization".into(), json!(authorization));
        live.attrs.insert("function_arn".into(), json!(function_arn));
        match cloud.apigateway.get_stage().rest_api_id(id).stage_name(&stage).send().await {
            Ok(s) => {
                let all = s.method_settings().and_then(|m| m.get("*/*"));
                live.attrs.insert("stage".into(), json!(stage));
                // No stage-wide method settings: no throttle.
                live.attrs.insert("throttle_rate".into(), all.map_or(Json::Null, |m| json!(m.throttling_rate_limit())));
                live.attrs
                    .insert("throttle_burst".into(), all.map_or(Json::Null, |m| json!(m.throttling_burst_limit())));
            }
            Err(e) => {
                let e = api_error("apigateway:GetStage", e);
                if !e.is_not_found() {
                    return Err(e);
                }
                live.attrs.insert("stage".into(), json!(""));
            }
        }
        live.outputs = outputs(cloud, id, &stage, &path).await?;
        Ok(Some(live))
    }

    /// `apigateway:POST`/`PUT`/`PATCH` to build the route, `lambda:AddPermission` for API
    /// Gateway, and `apigateway:DELETE` of the API again if a later step fails.
    async fn create(&self, cloud: &Aws, desired: &Attrs) -> Result<Created> {
        let policy = serde_json::to_string(&desired["policy"]).unwrap_or_default();
        let api = cloud
            .apigateway
            .create_rest_api()
            .name(str_attr(desired, "name"))
            .policy(policy)
            .endpoint_configuration(EndpointConfiguration::builder().types(EndpointType::Regional).build())
            .set_tags(Some(crate::provider::map_attr(desired, "tags").into_iter().collect()))
            .send()
            .await
            .map_err(|e| api_error("apigateway:CreateRestApi", e))?;
        let id = api.id().unwrap_or_default().to_owned();
        if let Err(e) = build_route(cloud, &id, desired).await {
            let _ = cloud.apigateway.delete_rest_api().rest_api_id(&id).send().await;
            return Err(e);
        }
        Ok(Created { outputs: outputs(cloud, &id, str_attr(desired, "stage"), str_attr(desired, "path")).await?, id })
    }

    /// `apigateway:PATCH` (name, policy, method, stage), `apigateway:PUT` (integration),
    /// `lambda:AddPermission`, `apigateway:POST` (a deployment, so changes take effect).
    async fn update(&self, cloud: &Aws, id: &str, desired: &Attrs, live: &Attrs, changed: &[String]) -> Result<Attrs> {
        let has = |a: &str| changed.iter().any(|c| c == a);
        let (stage, path) = (str_attr(desired, "stage"), str_attr(desired, "path"));
        let mut api_patch = Vec::new();
        if has("name") {
            api_patch.push(patch("/name", str_attr(desired, "name")));
        }
        if has("policy") {
            api_patch.push(patch("/policy", &serde_json::to_string(&desired["policy"]).unwrap_or_default()));
        }
        if !api_patch.is_empty() {
            cloud
                .apigateway
                .update_rest_api()
                .rest_api_id(id)
                .set_patch_operations(Some(api_patch))
                .send()
                .await
                .map_err(|e| api_error("apigateway:UpdateRestApi", e))?;
        }
        if has("authorization") || has("function_arn") {
            let resource_id = find_resource(cloud, id, path).await?;
            if has("authorization") {
                cloud
                    .apigateway
                    .update_method()
                    .rest_api_id(id)
                    .resource_id(&resource_id)
                    .http_method("POST")
                    .patch_operations(patch("/authorizationType", "AWS_IAM"))
                    .send()
                    .await
                    .map_err(|e| api_error("apigateway:UpdateMethod", e))?;
            }
            if has("function_arn") {
                integrate(cloud, id, &resource_id, desired).await?;
            }
        }
        if ["name", "policy", "authorization", "function_arn"].iter().any(|a| has(a)) {
            cloud
                .apigateway
                .create_deployment()
                .rest_api_id(id)
                .stage_name(stage)
                .send()
                .await
                .map_err(|e| api_error("apigateway:CreateDeployment", e))?;
        }
        if has("throttle_rate") || has("throttle_burst") {
            throttle(cloud, id, desired).await?;
        }
        if has("tags") {
            let arn = api_arn(cloud, id);
            let (set, unset) = tag_delta(desired, live);
            if !unset.is_empty() {
                cloud
                    .apigateway
                    .untag_resource()
                    .resource_arn(&arn)
                    .set_tag_keys(Some(unset))
                    .send()
                    .await
                    .map_err(|e| api_error("apigateway:UntagResource", e))?;
            }
            if !set.is_empty() {
                cloud
                    .apigateway
                    .tag_resource()
                    .resource_arn(&arn)
                    .set_tags(Some(set.into_iter().collect()))
                    .send()
                    .await
                    .map_err(|e| api_error("apigateway:TagResource", e))?;
            }
        }
        outputs(cloud, id, stage, path).await
    }

    /// `apigateway:GET` on the APIs: the one with this name and our tags. A half-built API
    /// is adopted too; the next apply finds what it lacks and plans it back.
    async fn adopt(&self, cloud: &Aws, desired: &Attrs, exclude: Option<&str>) -> Result<Option<String>> {
        let apis = cloud
            .apigateway
            .get_rest_apis()
            .limit(500)
            .send()
            .await
            .map_err(|e| api_error("apigateway:GetRestApis", e))?;
        let name = str_attr(desired, "name");
        Ok(apis
            .items()
            .iter()
            .filter(|a| a.name() == Some(name) && a.id() != exclude)
            .find(|a| {
                crate::provider::owned_by(
                    desired,
                    &a.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
                )
            })
            .and_then(|a| a.id())
            .map(str::to_owned))
    }

    /// `apigateway:DELETE` on the API, `lambda:RemovePermission`.
    async fn delete(&self, cloud: &Aws, id: &str, prior: &Attrs, _: DeleteOptions) -> Result<Deleted> {
        unless_gone(
            cloud
                .apigateway
                .delete_rest_api()
                .rest_api_id(id)
                .send()
                .await
                .map_err(|e| api_error("apigateway:DeleteRestApi", e)),
        )?;
        let function = str_attr(prior, "function_arn");
        unless_gone(
            cloud
                .lambda
                .remove_permission()
                .function_name(function)
                .statement_id(permission_sid(id))
                .send()
                .await
                .map_err(|e| api_error("lambda:RemovePermission", e)),
        )?;
        Ok(Deleted::Removed)
    }
}

/// Resource, method, integration, permission, deployment, stage throttling.
async fn build_route(cloud: &Aws, id: &str, desired: &Attrs) -> Result<()> {
    let resources = cloud
        .apigateway
        .get_resources()
        .rest_api_id(id)
        .send()
        .await
        .map_err(|e| api_error("apigateway:GetResources", e))?;
    let root = resources
        .items()
        .iter()
        .find(|r| r.path() == Some("/"))
        .and_then(|r| r.id())
        .ok_or_else(|| unexpected("apigateway:GetResources", "no root resource"))?;
    let path = str_attr(desired, "path");
    let created;
    let resource_id = if path == ROOT {
        root
    } else {
        created = cloud
            .apigateway
            .create_resource()
            .rest_api_id(id)
            .parent_id(root)
            .path_part(path)
            .send()
            .await
            .map_err(|e| api_error("apigateway:CreateResource", e))?;
        created.id().unwrap_or_default()
    };
    cloud
        .apigateway
        .put_method()
        .rest_api_id(id)
        .resource_id(resource_id)
        .http_method("POST")
        .authorization_type("AWS_IAM")
        .send()
        .await
        .map_err(|e| api_error("apigateway:PutMethod", e))?;
    integrate(cloud, id, resource_id, desired).await?;
    cloud
        .apigateway
        .create_deployment()
        .rest_api_id(id)
        .stage_name(str_attr(desired, "stage"))
        .send()
        .await
        .map_err(|e| api_error("apigateway:CreateDeployment", e))?;
    if desired.get("throttle_rate").is_some_and(Json::is_null) {
        return Ok(());
    }
    throttle(cloud, id, desired).await
}

/// The AWS_PROXY integration and the Lambda permission that lets this route invoke it.
async fn integrate(cloud: &Aws, id: &str, resource_id: &str, desired: &Attrs) -> Result<()> {
    let function = str_attr(desired, "function_arn");
    let uri = format!(
        "arn:{}:apigateway:{}:lambda:path/2015-03-31/functions/{function}/invocations",
        cloud.identity().await?.partition,
        cloud.region
    );
    cloud
        .apigateway
        .put_integration()
        .rest_api_id(id)
        .resource_id(resource_id)
        .http_method("POST")
        .r#type(IntegrationType::AwsProxy)
        .integration_http_method("POST")
        .uri(uri)
        .send()
        .await
        .map_err(|e| api_error("apigateway:PutIntegration", e))?;
    let source = format!("{}/*/POST/{}", execution_arn(cloud, id).await?, url_suffix(str_attr(desired, "path")));
    let added = cloud
        .lambda
        .add_permission()
        .function_name(function)
        .statement_id(permission_sid(id))
        .action("lambda:InvokeFunction")
        .principal("apigateway.amazonaws.com")
        .source_arn(source)
        .send()
        .await;
    match added {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = api_error("lambda:AddPermission", e);
            if e.code() == Some("ResourceConflictException") { Ok(()) } else { Err(e) }
        }
    }
}

async fn throttle(cloud: &Aws, id: &str, desired: &Attrs) -> Result<()> {
    let (Some(rate), Some(burst)) =
        (desired.get("throttle_rate").and_then(Json::as_f64), desired.get("throttle_burst").and_then(Json::as_i64))
    else {
        return Err(ProviderError::Refused(format!(
            "API {id}: keyrite does not remove a stage's throttle (`throttle: none`); remove it by hand, or declare one"
        )));
    };
    cloud
        .apigateway
        .update_stage()
        .rest_api_id(id)
        .stage_name(str_attr(desired, "stage"))
        .patch_operations(patch("/*/*/throttling/rateLimit", &rate.to_string()))
        .patch_operations(patch("/*/*/throttling/burstLimit", &burst.to_string()))
        .send()
        .await
        .map_err(|e| api_error("apigateway:UpdateStage", e))?;
    Ok(())
}

async fn find_resource(cloud: &Aws, id: &str, path: &str) -> Result<String> {
    let resources = cloud
        .apigateway
        .get_resources()
        .rest_api_id(id)
        .limit(500)
        .send()
        .await
        .map_err(|e| api_error("apigateway:GetResources", e))?;
    resources
        .items()
        .iter()
        .find(|r| r.path() == Some(resource_path(path).as_str()))
        .and_then(|r| r.id())
        .map(str::to_owned)
        .ok_or_else(|| ProviderError::Refused(format!("API {id} has no {} resource", resource_path(path))))
}

/// `path: /`: the method is on the API's root resource.
pub const ROOT: &str = "/";

/// The API Gateway resource path of the `path` attribute: `/sign`, or `/` for the root.
fn resource_path(path: &str) -> String {
    if path == ROOT { ROOT.to_owned() } else { format!("/{path}") }
}

/// What follows the stage in the invoke URL and in an execute-api ARN: `sign`, or nothing.
pub fn url_suffix(path: &str) -> &str {
    if path == ROOT { "" } else { path }
}

fn patch(path: &str, value: &str) -> PatchOperation {
    PatchOperation::builder().op(Op::Replace).path(path).value(value).build()
}

fn permission_sid(api_id: &str) -> String {
    format!("keyrite-apigw-{api_id}")
}

fn api_arn(cloud: &Aws, id: &str) -> String {
    format!("arn:aws:apigateway:{}::/restapis/{id}", cloud.region)
}

async fn execution_arn(cloud: &Aws, id: &str) -> Result<String> {
    let who = cloud.identity().await?;
    Ok(format!("arn:{}:execute-api:{}:{}:{id}", who.partition, cloud.region, who.account_id))
}

async fn outputs(cloud: &Aws, id: &str, stage: &str, path: &str) -> Result<Attrs> {
    let mut out = Attrs::new();
    out.insert("api_id".into(), json!(id));
    out.insert("arn".into(), json!(api_arn(cloud, id)));
    out.insert("execution_arn".into(), json!(execution_arn(cloud, id).await?));
    out.insert("stage".into(), json!(stage));
    out.insert("path".into(), json!(path));
    out.insert(
        "stage_url".into(),
        json!(format!("https://{id}.execute-api.{}.amazonaws.com/{stage}/{}", cloud.region, url_suffix(path))),
    );
    Ok(out)
}

/// The function ARN inside an AWS_PROXY integration URI.
fn function_from_uri(uri: &str) -> String {
    uri.split_once("/functions/").and_then(|(_, rest)| rest.strip_suffix("/invocations")).unwrap_or_default().to_owned()
}

/// AWS expands `execute-api:/…` in a stored policy to the API's full ARN; map it back so a
/// policy compares equal to what was written.
pub fn normalise_resources(mut doc: Json) -> Json {
    let shorten = |v: &mut Json| {
        if let Some(s) = v.as_str() {
            let parts: Vec<&str> = s.splitn(6, ':').collect();
            if parts.len() == 6
                && parts[0] == "arn"
                && parts[2] == "execute-api"
                && let Some((_, rest)) = parts[5].split_once('/')
            {
                *v = Json::String(format!("execute-api:/{rest}"));
            }
        }
    };
    let statements: Vec<&mut Json> = match doc.get_mut("Statement") {
        Some(Json::Array(items)) => items.iter_mut().collect(),
        Some(single) => vec![single],
        None => Vec::new(),
    };
    for st in statements {
        match st.get_mut("Resource") {
            Some(Json::Array(items)) => items.iter_mut().for_each(shorten),
            Some(one) => shorten(one),
            None => {}
        }
    }
    doc
}

/// The `policy:` block: `document:` as given, or `generated:` (account-scoped by default).
fn resource_policy(b: &mut Block<'_>, cx: &mut Validation) -> Json {
    let Some(mut p) = b.block(cx, "policy") else { return generated_policy(&[], &[], &[]) };
    let doc = if p.has("document") {
        document_field(&mut p, cx, "document").unwrap_or(Json::Null)
    } else {
        match p.block(cx, "generated") {
            Some(mut g) => {
                let pos = g.pos();
                let principals = g.string_list(cx, "principals").unwrap_or_default();
                let ips = g.string_list(cx, "source_ips").unwrap_or_default();
                let vpces = g.string_list(cx, "vpc_endpoints").unwrap_or_default();
                for (items, check, key) in [
                    (&principals, check_principal as fn(&str) -> std::result::Result<(), String>, "principals"),
                    (&ips, check_cidr, "source_ips"),
                ] {
                    for item in items {
                        if let Err(msg) = check(item) {
                            cx.error(pos, "value", format!("{}: {msg}", g.field_path(key)));
                        }
                    }
                }
                for v in &vpces {
                    if !v.starts_with("vpce-") {
                        cx.error(
                            pos,
                            "value",
                            format!("{}: {v:?} is not a VPC endpoint id (vpce-…)", g.field_path("vpc_endpoints")),
                        );
                    }
                }
                g.finish(cx);
                generated_policy(&principals, &ips, &vpces)
            }
            None => generated_policy(&[], &[], &[]),
        }
    };
    p.finish(cx);
    doc
}

/// The resource policy keyrite generates: only the named principals (default: the account)
/// may invoke, optionally only from the listed IPs and VPC endpoints.
pub fn generated_policy(principals: &[String], source_ips: &[String], vpc_endpoints: &[String]) -> Json {
    let principals: Vec<String> = if principals.is_empty() {
        vec!["arn:${aws.partition}:iam::${aws.account_id}:root".into()]
    } else {
        principals.to_vec()
    };
    let mut statement = json!({
        "Sid": "KeyriteInvoke",
        "Effect": "Allow",
        "Principal": {"AWS": principals},
        "Action": "execute-api:Invoke",
        "Resource": "execute-api:/*",
    });
    let mut condition = serde_json::Map::new();
    if !source_ips.is_empty() {
        condition.insert("IpAddress".into(), json!({"aws:SourceIp": source_ips}));
    }
    if !vpc_endpoints.is_empty() {
        condition.insert("StringEquals".into(), json!({"aws:SourceVpce": vpc_endpoints}));
    }
    if !condition.is_empty() {
        statement["Condition"] = Json::Object(condition);
    }
    json!({"Version": "2012-10-17", "Statement": [statement]})
}

fn unexpected(operation: &'static str, message: &str) -> ProviderError {
    ProviderError::Unexpected { operation, message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanded_execute_api_arns_compare_equal_to_what_was_written() {
        let written = generated_policy(&["arn:aws:iam::111122223333:root".into()], &[], &[]);
        let mut returned = written.clone();
        returned["Statement"][0]["Resource"] = json!("arn:aws:execute-api:us-east-1:111122223333:abc123/*");
        let escaped = serde_json::to_string(&returned).unwrap().replace('"', "\\\"");
        let decoded = normalise_resources(crate::policy::decode_policy_text(&escaped).unwrap());
        let (a, b) = (crate::policy::Policy::parse(&written).unwrap(), crate::policy::Policy::parse(&decoded).unwrap());
        assert!(a.equivalent(&b));
    }

    #[test]
    fn integration_uris_name_the_function() {
        let uri = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:1:function:f/invocations";
        assert_eq!(function_from_uri(uri), "arn:aws:lambda:us-east-1:1:function:f");
        assert_eq!(function_from_uri("garbage"), "");
    }

    #[test]
    fn generated_policy_is_account_scoped_with_optional_conditions() {
        let p = generated_policy(&[], &["203.0.113.0/24".into()], &["vpce-1".into()]);
        assert_eq!(p["Statement"][0]["Principal"]["AWS"][0], "arn:${aws.partition}:iam::${aws.account_id}:root");
        assert_eq!(p["Statement"][0]["Condition"]["StringEquals"]["aws:SourceVpce"][0], "vpce-1");
    }
}
