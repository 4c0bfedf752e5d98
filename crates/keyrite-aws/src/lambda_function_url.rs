//! `aws_lambda_function_url`: an HTTPS endpoint for the signer function.
//!
//! Secure by default: the auth type is `AWS_IAM`, so every request must be SigV4-signed by a
//! principal allowed `lambda:InvokeFunctionUrl`. `NONE` needs an explicit `public: true`,
//! which keyrite warns about at every validate, plan and apply, and which adds both
//! permissions a public URL needs (`lambda:InvokeFunctionUrl` and `lambda:InvokeFunction`,
//! for principal `*`). A URL whose auth type changes out of band is a security finding.
//!
//! `public_permissions` is the list of those two actions that the function's resource policy
//! grants to `*`, found by meaning, whatever the statement ids: a URL made by the console
//! before October 2025 has only `lambda:InvokeFunctionUrl`, and `public_actions:` declares it
//! as it is. A change adds only the statements that are missing and removes only the ones
//! that grant what is no longer declared, so an existing statement is never duplicated.

use async_trait::async_trait;
use aws_sdk_lambda::types::{Cors, FunctionUrlAuthType};
use serde_json::{Value as Json, json};

use super::{Aws, api_error, unless_gone};
use crate::manifest::{Attrs, Block, Validation};
use crate::provider::Schema;
use crate::provider::{
    AttrSpec, Created, DeleteOptions, Deleted, Kind, Live, Occupant, Op, Result, TAG_LINEAGE, map_attr, str_attr,
    unresolved,
};

pub struct LambdaFunctionUrl;

const ATTRS: &[AttrSpec] = &[
    AttrSpec::replace("function"),
    AttrSpec::update("auth_type"),
    AttrSpec::update("cors"),
    AttrSpec::update("public_permissions"),
];

/// Statement ids keyrite gives the two permissions a public URL needs.
const PUBLIC_SIDS: [(&str, &str); 2] =
    [("keyrite-public-url", "lambda:InvokeFunctionUrl"), ("keyrite-public-invoke", "lambda:InvokeFunction")];

/// The two actions, in the order `public_permissions` lists them.
pub const PUBLIC_ACTIONS: [&str; 2] = ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"];

impl Schema for LambdaFunctionUrl {
    fn name(&self) -> &'static str {
        "aws_lambda_function_url"
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["url", "function"]
    }

    /// The function's name or ARN: a function has one URL.
    fn check_import(&self, given: &str) -> std::result::Result<(), String> {
        super::arn_of(given, "lambda", &["function:"], "a Lambda function (a URL is imported by its function)")
    }

    fn import_lookup(&self, given: &str) -> String {
        given.split_once(":function:").map_or_else(|| given.to_owned(), |(_, name)| name.to_owned())
    }

    fn declare(&self, live: &Live, refer: &dyn Fn(&str) -> Option<String>) -> Option<Json> {
        let a = &live.attrs;
        let mut out = json!({"function": crate::provider::declared_ref(a, "function", refer)});
        if str_attr(a, "auth_type") == "NONE" {
            out["public"] = json!(true);
        }
        let granted = a.get("public_permissions").cloned().unwrap_or_else(|| json!([]));
        if granted != json!(PUBLIC_ACTIONS) && (str_attr(a, "auth_type") == "NONE" || granted != json!([])) {
            // What is there, not what keyrite would make: lint says what it means.
            out["public_actions"] = granted;
        }
        if let Some(c) = a.get("cors").filter(|c| !c.is_null()) {
            out["cors"] = c.clone();
        }
        Some(out)
    }

    /// Before the list, `public_permissions` was `true` when both statements were there.
    fn upgrade_recorded(&self, attrs: &mut Attrs) {
        if let Some(Json::Bool(both)) = attrs.get("public_permissions") {
            let now = if *both { json!(PUBLIC_ACTIONS) } else { json!([]) };
            attrs.insert("public_permissions".into(), now);
        }
    }

    fn permissions(&self, op: Op) -> &'static [&'static str] {
        match op {
            Op::Read => &["lambda:GetFunctionUrlConfig", "lambda:GetPolicy"],
            Op::Create => &["lambda:CreateFunctionUrlConfig", "lambda:AddPermission"],
            Op::Update => &["lambda:UpdateFunctionUrlConfig", "lambda:AddPermission", "lambda:RemovePermission"],
            Op::Delete => &["lambda:DeleteFunctionUrlConfig", "lambda:RemovePermission"],
        }
    }

    fn desired(&self, name: &str, b: &mut Block<'_>, cx: &mut Validation) -> Attrs {
        let mut a = Attrs::new();
        let pos = b.pos();
        a.insert("function".into(), json!(b.required_string(cx, "function").unwrap_or_default()));
        let public = b.bool(cx, "public").unwrap_or(false);
        let auth = b.choice(cx, "auth", &["AWS_IAM", "NONE"]);
        match (auth.as_deref(), public) {
            (Some("NONE"), false) => cx.error(
                pos,
                "public",
                format!(
                    "{}: auth NONE makes the signer callable by anyone; it needs an explicit `public: true`",
                    b.field_path("auth")
                ),
            ),
            (Some("AWS_IAM"), true) => cx.error(
                pos,
                "public",
                format!("{}: `public: true` means auth NONE, not AWS_IAM", b.field_path("auth")),
            ),
            _ => {}
        }
        if public {
            cx.warn(pos, "public-endpoint", format!("resources.{name}: this function URL is PUBLIC (auth NONE): anyone on the internet can ask it to sign"));
        }
        a.insert("auth_type".into(), json!(if public { "NONE" } else { "AWS_IAM" }));
        a.insert("cors".into(), cors(b, cx));
        let granted = match b.string_list(cx, "public_actions") {
            Some(mut actions) => {
                for action in &actions {
                    if !PUBLIC_ACTIONS.contains(&action.as_str()) {
                        cx.error(
                            pos,
                            "value",
                            format!(
                                "{}: {action:?} is not one of {}",
                                b.field_path("public_actions"),
                                PUBLIC_ACTIONS.join(", ")
                            ),
                        );
                    }
                }
                actions.sort();
                actions.dedup();
                actions
            }
            None if public => PUBLIC_ACTIONS.iter().map(|a| (*a).to_owned()).collect(),
            None => Vec::new(),
        };
        a.insert("public_permissions".into(), json!(granted));
        a
    }
}

#[async_trait]
impl Kind<Aws> for LambdaFunctionUrl {
    /// `lambda:GetFunctionUrlConfig`, `lambda:GetPolicy`.
    async fn read(&self, cloud: &Aws, id: &str, _: &Attrs) -> Result<Option<Live>> {
        let Some(out) = unless_gone(
            cloud
                .lambda
                .get_function_url_config()
                .function_name(id)
                .send()
                .await
                .map_err(|e| api_error("lambda:GetFunctionUrlConfig", e)),
        )?
        else {
            return Ok(None);
        };
        let mut live = Live::default();
        live.attrs.insert("function".into(), json!(id));
        live.attrs.insert("auth_type".into(), json!(out.auth_type().as_str()));
        live.attrs.insert("cors".into(), out.cors().map_or(Json::Null, cors_json));
        let granted: Vec<&str> = public_statements(cloud, id).await?.iter().map(|(_, action)| *action).collect();
        let mut granted: Vec<&str> = granted;
        granted.sort();
        granted.dedup();
        live.attrs.insert("public_permissions".into(), json!(granted));
        live.outputs = outputs(out.function_url(), id);
        Ok(Some(live))
    }

    /// `lambda:CreateFunctionUrlConfig`, and `lambda:AddPermission` for a public URL.
    async fn create(&self, cloud: &Aws, desired: &Attrs) -> Result<Created> {
        let function = str_attr(desired, "function");
        let out = cloud
            .lambda
            .create_function_url_config()
            .function_name(function)
            .auth_type(FunctionUrlAuthType::from(str_attr(desired, "auth_type")))
            .set_cors(cors_sdk(desired))
            .send()
            .await
            .map_err(|e| api_error("lambda:CreateFunctionUrlConfig", e))?;
        set_public_permissions(cloud, function, desired).await?;
        Ok(Created { id: function.to_owned(), outputs: outputs(out.function_url(), function) })
    }

    /// `lambda:UpdateFunctionUrlConfig`, `lambda:AddPermission`, `lambda:RemovePermission`.
    async fn update(&self, cloud: &Aws, id: &str, desired: &Attrs, _: &Attrs, changed: &[String]) -> Result<Attrs> {
        if changed.iter().any(|c| c == "auth_type" || c == "cors") {
            cloud
                .lambda
                .update_function_url_config()
                .function_name(id)
                .auth_type(FunctionUrlAuthType::from(str_attr(desired, "auth_type")))
                .set_cors(cors_sdk(desired))
                .send()
                .await
                .map_err(|e| api_error("lambda:UpdateFunctionUrlConfig", e))?;
        }
        if changed.iter().any(|c| c == "public_permissions") {
            set_public_permissions(cloud, id, desired).await?;
        }
        let out = cloud
            .lambda
            .get_function_url_config()
            .function_name(id)
            .send()
            .await
            .map_err(|e| api_error("lambda:GetFunctionUrlConfig", e))?;
        Ok(outputs(out.function_url(), id))
    }

    /// A function has at most one URL; if it is there, the interrupted create made it.
    async fn adopt(&self, cloud: &Aws, desired: &Attrs, _: Option<&str>) -> Result<Option<String>> {
        let function = str_attr(desired, "function");
        Ok(self.read(cloud, function, desired).await?.map(|_| function.to_owned()))
    }

    /// `lambda:GetFunctionUrlConfig`, `lambda:GetFunction`: a function has at most one URL; it
    /// is ours when the function carries this state's lineage.
    async fn occupant(&self, cloud: &Aws, desired: &Attrs, lineage: &str) -> Result<Occupant> {
        let function = str_attr(desired, "function");
        if unresolved(function) {
            return Ok(Occupant::Free);
        }
        let Some(live) = self.read(cloud, function, desired).await? else { return Ok(Occupant::Free) };
        let owner = super::lambda_function::LambdaFunction.read(cloud, function, &Attrs::new()).await?;
        let tags = owner.map(|f| map_attr(&f.attrs, "tags")).unwrap_or_default();
        let url = str_attr(&live.outputs, "url");
        Ok(if tags.get(TAG_LINEAGE).map(String::as_str) == Some(lineage) {
            Occupant::Ours { id: function.to_owned(), why: format!("{url}, the URL of a function this state owns") }
        } else {
            let what = format!("the URL {url} of function {function} (auth {})", str_attr(&live.attrs, "auth_type"));
            Occupant::Foreign { id: function.to_owned(), what }
        })
    }

    /// `lambda:DeleteFunctionUrlConfig`, `lambda:RemovePermission`.
    async fn delete(&self, cloud: &Aws, id: &str, _: &Attrs, _: DeleteOptions) -> Result<Deleted> {
        unless_gone(
            cloud
                .lambda
                .delete_function_url_config()
                .function_name(id)
                .send()
                .await
                .map_err(|e| api_error("lambda:DeleteFunctionUrlConfig", e)),
        )?;
        set_public_permissions(cloud, id, &Attrs::new()).await?;
        Ok(Deleted::Removed)
    }
}

fn cors(b: &mut Block<'_>, cx: &mut Validation) -> Json {
    let Some(mut c) = b.block(cx, "cors") else { return Json::Null };
    let list = |c: &mut Block<'_>, cx: &mut Validation, key: &str| {
        let mut v = c.string_list(cx, key).unwrap_or_default();
        v.sort();
        v
    };
    let value = json!({
        "allow_origins": list(&mut c, cx, "allow_origins"),
        "allow_methods": list(&mut c, cx, "allow_methods"),
        "allow_headers": list(&mut c, cx, "allow_headers"),
        "max_age": c.integer(cx, "max_age", 0..=86400).unwrap_or(0),
    });
    c.finish(cx);
    value
}

fn cors_json(c: &Cors) -> Json {
    let sorted = |v: &[String]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_owned()).collect();
        v.sort();
        v
    };
    json!({
        "allow_origins": sorted(c.allow_origins()),
        "allow_methods": sorted(c.allow_methods()),
        "allow_headers": sorted(c.allow_headers()),
        "max_age": c.max_age().unwrap_or(0),
    })
}

fn cors_sdk(desired: &Attrs) -> Option<Cors> {
    let c = desired.get("cors").filter(|c| !c.is_null())?;
    let list = |k: &str| {
        c.get(k)
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_str).map(str::to_owned).collect::<Vec<_>>())
    };
    Some(
        Cors::builder()
            .set_allow_origins(list("allow_origins"))
            .set_allow_methods(list("allow_methods"))
            .set_allow_headers(list("allow_headers"))
            .max_age(c.get("max_age").and_then(Json::as_i64).unwrap_or(0) as i32)
            .build(),
    )
}

/// `lambda:GetPolicy`: the statements of the function's resource policy that grant one of
/// [`PUBLIC_ACTIONS`] to `*`, as `(statement id, action)`; by meaning, not by statement id:
/// the console's own statements count as much as keyrite's.
async fn public_statements(cloud: &Aws, function: &str) -> Result<Vec<(String, &'static str)>> {
    let text = match cloud.lambda.get_policy().function_name(function).send().await {
        Ok(out) => out.policy().unwrap_or("{}").to_owned(),
        Err(e) => {
            let e = api_error("lambda:GetPolicy", e);
            return if e.is_not_found() { Ok(Vec::new()) } else { Err(e) };
        }
    };
    let Ok(policy) = crate::policy::Policy::from_text(&text) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for s in policy.statements() {
        let public = s.principals().is_some_and(|p| !p.negated && p.principals.values().flatten().any(|p| p == "*"));
        if !public {
            continue;
        }
        for action in PUBLIC_ACTIONS.iter().filter(|a| s.grants(a)) {
            out.push((s.sid().unwrap_or_default().to_owned(), *action));
        }
    }
    Ok(out)
}

/// `lambda:GetPolicy`, `lambda:AddPermission`, `lambda:RemovePermission`: makes the actions
/// granted to `*` exactly the desired `public_permissions`, adding a statement only for an
/// action nothing grants yet and removing only statements that grant an action no longer
/// declared.
async fn set_public_permissions(cloud: &Aws, function: &str, desired: &Attrs) -> Result<()> {
    let wanted: Vec<&str> = desired
        .get("public_permissions")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let present = public_statements(cloud, function).await?;
    for (sid, action) in PUBLIC_SIDS {
        if !wanted.contains(&action) || present.iter().any(|(_, a)| *a == action) {
            continue;
        }
        let mut req =
            cloud.lambda.add_permission().function_name(function).statement_id(sid).action(action).principal("*");
        req = if action == "lambda:InvokeFunctionUrl" {
            req.function_url_auth_type(FunctionUrlAuthType::None)
        } else {
            req.invoked_via_function_url(true)
        };
        if let Err(e) = req.send().await {
            let e = api_error("lambda:AddPermission", e);
            if e.code() != Some("ResourceConflictException") {
                return Err(e);
            }
        }
    }
    let mut removed = std::collections::BTreeSet::new();
    for (sid, action) in &present {
        if wanted.contains(action) || sid.is_empty() || !removed.insert(sid.clone()) {
            continue;
        }
        unless_gone(
            cloud
                .lambda
                .remove_permission()
                .function_name(function)
                .statement_id(sid)
                .send()
                .await
                .map_err(|e| api_error("lambda:RemovePermission", e)),
        )?;
    }
    Ok(())
}

fn outputs(url: &str, function: &str) -> Attrs {
    let mut out = Attrs::new();
    out.insert("url".into(), json!(url));
    out.insert("function".into(), json!(function));
    out
}
