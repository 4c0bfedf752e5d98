//! The AWS signer stack around each secp256k1 key of an account and region.
//!
//! Calls, all reads: `kms:ListKeys`, `kms:DescribeKey` per key, then the key kind's read
//! (`GetKeyPolicy`, `ListResourceTags`, `GetPublicKey`) for each secp256k1 key;
//! `kms:ListAliases`; `iam:ListRoles`, `iam:ListRolePolicies` and `iam:GetRolePolicy` per
//! role; `lambda:ListFunctions` and `lambda:GetPolicy` per function found; `apigateway:GetRestApis`, `GetResources`, `GetIntegration`
//! and `GetStages` per API. Service-linked roles (`/aws-service-role/`) are not looked at.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value as Json, json};

use super::{Found, Scan, Scope, Skipped, arn_matches, read};
use crate::manifest::Attrs;
use crate::policy::Policy;
use crate::provider::aws::api_error;
use crate::provider::{Cloud, Live, Result};

const SECP256K1: &str = "ECC_SECG_P256K1";

/// A key that was taken: what names it.
struct Key {
    id: String,
    arn: String,
    aliases: Vec<(String, String)>,
}

impl Key {
    /// Strings that, found in a function's configuration, name this key.
    fn names(&self) -> Vec<&str> {
        let mut out = vec![self.id.as_str(), self.arn.as_str()];
        for (name, arn) in &self.aliases {
            out.push(name);
            out.push(arn);
        }
        out
    }
}

/// Scans the account for the signer stacks of the keys in `scope`.
pub async fn scan(cloud: &Cloud, scope: &Scope) -> Result<Scan> {
    let mut scan = Scan::default();
    let keys = keys(cloud, scope, &mut scan).await?;
    if keys.is_empty() {
        return Ok(scan);
    }
    roles(cloud, &keys, &mut scan).await?;
    let functions = functions(cloud, &keys, &mut scan).await?;
    if !functions.is_empty() {
        apis(cloud, &functions, &mut scan).await?;
    }
    Ok(scan)
}

async fn keys(cloud: &Cloud, scope: &Scope, scan: &mut Scan) -> Result<Vec<Key>> {
    let kms = &cloud.aws.kms;
    let candidates: Vec<String> = match scope {
        Scope::Key(id) => {
            let out = kms.describe_key().key_id(id).send().await.map_err(|e| api_error("kms:DescribeKey", e))?;
            vec![out.key_metadata().map(|m| m.key_id().to_owned()).unwrap_or_else(|| id.clone())]
        }
        _ => {
            let mut ids = Vec::new();
            let mut marker = None;
            loop {
                let out = kms.list_keys().set_marker(marker).send().await.map_err(|e| api_error("kms:ListKeys", e))?;
                ids.extend(out.keys().iter().filter_map(|k| k.key_id()).map(str::to_owned));
                match (out.truncated(), out.next_marker()) {
                    (true, Some(m)) => marker = Some(m.to_owned()),
                    _ => break,
                }
            }
            ids
        }
    };
    let mut aliases: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut marker = None;
    loop {
        let out = kms.list_aliases().set_marker(marker).send().await.map_err(|e| api_error("kms:ListAliases", e))?;
        for a in out.aliases() {
            if let (Some(name), Some(target)) = (a.alias_name(), a.target_key_id()) {
                aliases
                    .entry(target.to_owned())
                    .or_default()
                    .push((name.to_owned(), a.alias_arn().unwrap_or_default().to_owned()));
            }
        }
        match (out.truncated(), out.next_marker()) {
            (true, Some(m)) => marker = Some(m.to_owned()),
            _ => break,
        }
    }
    let mut keys = Vec::new();
    for id in candidates {
        let out = kms.describe_key().key_id(&id).send().await.map_err(|e| api_error("kms:DescribeKey", e))?;
        let Some(meta) = out.key_metadata() else { continue };
        let arn = meta.arn().unwrap_or_default().to_owned();
        let spec = meta.key_spec().map(|s| s.as_str()).unwrap_or_default();
        if spec != SECP256K1 {
            scan.skipped.push(Skipped { name: arn, reason: format!("key spec {spec}, not {SECP256K1}") });
            continue;
        }
        let usage = meta.key_usage().map(|u| u.as_str()).unwrap_or_default();
        if usage != "SIGN_VERIFY" {
            scan.skipped.push(Skipped { name: arn, reason: format!("key usage {usage}, not SIGN_VERIFY") });
            continue;
        }
        if meta.key_manager().is_some_and(|m| m.as_str() == "AWS") {
            scan.skipped.push(Skipped { name: arn, reason: "an AWS managed key".into() });
            continue;
        }
        let Some(live) = read(cloud, "aws_kms_key", &id, &Attrs::new()).await? else { continue };
        if let Scope::Tag(k, v) = scope
            && live.attrs.get("tags").and_then(|t| t.get(k)).and_then(Json::as_str) != Some(v.as_str())
        {
            continue;
        }
        let key_aliases = aliases.remove(&id).unwrap_or_default();
        let why = match scope {
            Scope::Key(asked) => format!("the key asked for ({asked})"),
            Scope::Tag(k, v) => format!("a secp256k1 key tagged {k}={v}"),
            Scope::All => "a secp256k1 key".to_owned(),
        };
        scan.found.push(Found { kind: "aws_kms_key", id: id.clone(), name: arn.clone(), live, why });
        for (name, alias_arn) in &key_aliases {
            let mut live = Live::default();
            live.attrs.insert("name".into(), json!(name));
            live.attrs.insert("target_key_id".into(), json!(id));
            live.outputs.insert("name".into(), json!(name));
            live.outputs.insert("arn".into(), json!(alias_arn));
            scan.found.push(Found {
                kind: "aws_kms_alias",
                id: name.clone(),
                name: alias_arn.clone(),
                live,
                why: format!("an alias of {id}"),
            });
        }
        keys.push(Key { id, arn, aliases: key_aliases });
    }
    Ok(keys)
}

/// Roles that may sign with a taken key: named as a signer in its key policy, or granted
/// `kms:Sign` on it (or on `*`) by one of their inline policies.
async fn roles(cloud: &Cloud, keys: &[Key], scan: &mut Scan) -> Result<()> {
    let iam = &cloud.aws.iam;
    let mut named: BTreeMap<String, String> = BTreeMap::new();
    for f in scan.found.iter().filter(|f| f.kind == "aws_kms_key") {
        let Some(policy) = f.live.attrs.get("policy").and_then(|p| Policy::parse(p).ok()) else { continue };
        for s in policy.statements().iter().filter(|s| s.grants("kms:Sign")) {
            for p in s.principals().filter(|p| !p.negated).into_iter().flat_map(|p| p.principals.values().flatten()) {
                if p.contains(":role/") {
                    named.entry(p.clone()).or_insert_with(|| format!("the key policy of {} lets it sign", f.id));
                }
            }
        }
    }
    let mut marker = None;
    let mut all = Vec::new();
    loop {
        let out = iam.list_roles().set_marker(marker).send().await.map_err(|e| api_error("iam:ListRoles", e))?;
        all.extend(out.roles().iter().map(|r| (r.role_name().to_owned(), r.arn().to_owned(), r.path().to_owned())));
        match (out.is_truncated(), out.marker()) {
            (true, Some(m)) => marker = Some(m.to_owned()),
            _ => break,
        }
    }
    for (role, arn, path) in all {
        if path.starts_with("/aws-service-role/") {
            continue;
        }
        let (mut signing, mut others) = (Vec::new(), Vec::new());
        let mut marker = None;
        loop {
            let out = iam
                .list_role_policies()
                .role_name(&role)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| api_error("iam:ListRolePolicies", e))?;
            for name in out.policy_names() {
                let id = format!("{role}:{name}");
                let Some(live) = read(cloud, "aws_iam_role_policy", &id, &Attrs::new()).await? else { continue };
                let signs_with: Vec<&str> = live
                    .attrs
                    .get("document")
                    .and_then(|d| Policy::parse(d).ok())
                    .map(|p| {
                        keys.iter()
                            .filter(|k| {
                                p.statements().iter().filter(|s| s.grants("kms:Sign")).any(|s| {
                                    s.resources()
                                        .filter(|r| !r.negated)
                                        .is_some_and(|r| r.values.iter().any(|v| arn_matches(v, &k.arn)))
                                })
                            })
                            .map(|k| k.id.as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                if signs_with.is_empty() {
                    let why = format!("an inline policy of {role}");
                    others.push(Found { kind: "aws_iam_role_policy", id: id.clone(), name: id, live, why });
                } else {
                    let why = format!("grants kms:Sign on {}", signs_with.join(", "));
                    signing.push(Found { kind: "aws_iam_role_policy", id: id.clone(), name: id, live, why });
                }
            }
            match (out.is_truncated(), out.marker()) {
                (true, Some(m)) => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        let why = match (named.get(&arn), signing.first()) {
            (Some(why), _) => why.clone(),
            (None, Some(p)) => format!("its inline policy {} {}", p.id, p.why),
            (None, None) => continue,
        };
        // Every inline policy of the role comes along: a manifest that left one out would
        // have apply remove it.
        signing.extend(others);
        let declared: Vec<Json> = signing.iter().map(|p| json!(p.id.split_once(':').map_or("", |(_, n)| n))).collect();
        let reference: Attrs = [("inline_policies".to_owned(), Json::Array(declared))].into_iter().collect();
        if let Some(live) = read(cloud, "aws_iam_role", &role, &reference).await? {
            scan.found.push(Found { kind: "aws_iam_role", id: role.clone(), name: arn, live, why });
        }
        scan.found.extend(signing);
    }
    Ok(())
}

/// Functions whose environment names a taken key, with their Function URLs. Returns the
/// ARNs of the functions found.
async fn functions(cloud: &Cloud, keys: &[Key], scan: &mut Scan) -> Result<BTreeSet<String>> {
    let lambda = &cloud.aws.lambda;
    let mut found = BTreeSet::new();
    let mut marker = None;
    loop {
        let out = lambda
            .list_functions()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| api_error("lambda:ListFunctions", e))?;
        for f in out.functions() {
            let (Some(name), Some(arn)) = (f.function_name(), f.function_arn()) else { continue };
            let env = f.environment().and_then(|e| e.variables());
            let naming: Vec<String> = env
                .into_iter()
                .flatten()
                .filter_map(|(var, value)| {
                    let key = keys.iter().find(|k| k.names().iter().any(|n| value.contains(n)))?;
                    Some(format!("{var} names {}", key.id))
                })
                .collect();
            if naming.is_empty() {
                continue;
            }
            let Some(live) = read(cloud, "aws_lambda_function", name, &Attrs::new()).await? else { continue };
            let why = format!("its environment: {}", naming.join(", "));
            scan.found.push(Found {
                kind: "aws_lambda_function",
                id: name.to_owned(),
                name: arn.to_owned(),
                live,
                why,
            });
            found.insert(arn.to_owned());
            unmanaged_permissions(cloud, name, scan).await?;
            if let Some(url) = read(cloud, "aws_lambda_function_url", name, &Attrs::new()).await? {
                let address = url.outputs.get("url").and_then(Json::as_str).unwrap_or(name).to_owned();
                let why = format!("the Function URL of {name}");
                scan.found.push(Found {
                    kind: "aws_lambda_function_url",
                    id: name.to_owned(),
                    name: address,
                    live: url,
                    why,
                });
            }
        }
        match out.next_marker() {
            Some(m) => marker = Some(m.to_owned()),
            None => break,
        }
    }
    Ok(found)
}

/// `lambda:GetPolicy`: statements of a found function's resource policy that no keyrite kind
/// declares (a permission the console added for API Gateway, another account's invoke
/// grant): kept as they are, and named in the manifest so that a reviewer sees them. The
/// public Function URL statements belong to the URL, and keyrite's own API permission to its
/// API.
async fn unmanaged_permissions(cloud: &Cloud, function: &str, scan: &mut Scan) -> Result<()> {
    let text = match cloud.aws.lambda.get_policy().function_name(function).send().await {
        Ok(out) => out.policy().unwrap_or("{}").to_owned(),
        Err(e) => {
            let e = api_error("lambda:GetPolicy", e);
            return if e.is_not_found() { Ok(()) } else { Err(e) };
        }
    };
    let Ok(policy) = Policy::from_text(&text) else { return Ok(()) };
    for s in policy.statements() {
        let sid = s.sid().unwrap_or_default();
        let principals: Vec<&String> =
            s.principals().filter(|p| !p.negated).into_iter().flat_map(|p| p.principals.values().flatten()).collect();
        let url_statement = principals.iter().any(|p| p.as_str() == "*")
            && ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"].iter().any(|a| s.grants(a));
        if url_statement || sid.starts_with("keyrite-apigw-") {
            continue;
        }
        let actions: Vec<&str> = s.actions().values.iter().map(|a| a.as_str()).collect();
        let source = s.to_json().pointer("/Condition/ArnLike/AWS:SourceArn").map(|v| format!(" from {v}"));
        scan.unmanaged.push(Skipped {
            name: format!("lambda permission {sid:?} of {function}"),
            reason: format!(
                "grants {} to {}{}; keyrite does not manage other Lambda permissions and leaves it as it is",
                actions.join(", "),
                principals.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "),
                source.unwrap_or_default()
            ),
        });
    }
    Ok(())
}

/// REST APIs with a POST method integrated with a found function, read at their first stage.
async fn apis(cloud: &Cloud, functions: &BTreeSet<String>, scan: &mut Scan) -> Result<()> {
    let gw = &cloud.aws.apigateway;
    let mut position = None;
    loop {
        let out = gw
            .get_rest_apis()
            .set_position(position)
            .limit(500)
            .send()
            .await
            .map_err(|e| api_error("apigateway:GetRestApis", e))?;
        for api in out.items() {
            let Some(id) = api.id() else { continue };
            let resources = gw
                .get_resources()
                .rest_api_id(id)
                .limit(500)
                .send()
                .await
                .map_err(|e| api_error("apigateway:GetResources", e))?;
            let mut integrated = None;
            for r in resources.items() {
                let (Some(rid), Some(path)) = (r.id(), r.path()) else { continue };
                if !r.resource_methods().is_some_and(|m| m.contains_key("POST")) {
                    continue;
                }
                let Ok(i) = gw.get_integration().rest_api_id(id).resource_id(rid).http_method("POST").send().await
                else {
                    continue;
                };
                let uri = i.uri().unwrap_or_default();
                if let Some(f) = functions.iter().find(|f| uri.contains(f.as_str())) {
                    // The root resource (`/`, where the console's "Create method" puts POST)
                    // is `path: /`; any other is its last segment.
                    let declared = if path == "/" { path } else { path.trim_start_matches('/') };
                    integrated = Some((declared.to_owned(), f.clone()));
                    break;
                }
            }
            let Some((path, function)) = integrated else { continue };
            let stages =
                gw.get_stages().rest_api_id(id).send().await.map_err(|e| api_error("apigateway:GetStages", e))?;
            let stage = stages.item().iter().find_map(|s| s.stage_name()).unwrap_or_default().to_owned();
            let reference: Attrs =
                [("path".to_owned(), json!(path)), ("stage".to_owned(), json!(stage))].into_iter().collect();
            if let Some(live) = read(cloud, "aws_api_gateway_rest_api", id, &reference).await? {
                let name = format!("{} ({id})", api.name().unwrap_or_default());
                let route = if path == "/" { String::new() } else { path.clone() };
                let why = format!("POST /{route} invokes {function}");
                // The rest of the API is not the signing route: named, and left as it is.
                let signing = format!("/{route}");
                for r in resources.items() {
                    let rpath = r.path().unwrap_or_default();
                    for method in r.resource_methods().into_iter().flat_map(|m| m.keys()) {
                        if rpath == signing && method == "POST" {
                            continue;
                        }
                        scan.unmanaged.push(Skipped {
                            name: format!("{method} {rpath} of {name}"),
                            reason: "not the signing route keyrite declares; left as it is".into(),
                        });
                    }
                }
                for other in stages.item().iter().filter_map(|s| s.stage_name()).filter(|s| *s != stage) {
                    scan.unmanaged.push(Skipped {
                        name: format!("stage {other} of {name}"),
                        reason: format!("keyrite declares one stage ({stage}); left as it is"),
                    });
                }
                scan.found.push(Found { kind: "aws_api_gateway_rest_api", id: id.to_owned(), name, live, why });
            }
        }
        match out.position() {
            Some(p) if !out.items().is_empty() => position = Some(p.to_owned()),
            _ => break,
        }
    }
    Ok(())
}
