//! `keyrite discover aws|gcp`: reads an account's signer stacks, read-only, and writes a
//! manifest that imports every resource found, commented with where each was found and
//! what a reviewer should look at (its lint findings).
//!
//! Each kind declares what it found as it is ([`crate::provider::Kind::declare`]); ids and
//! ARNs of other discovered resources become `${…}` references, so the manifest orders and
//! connects them as one written by hand would. A plan of it shows no change but keyrite's
//! ownership marks (and whatever keyrite's model insists on, which the plan shows).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::Context as _;
use serde_json::{Value as Json, json};

use super::Status;
use crate::cli::DiscoverCloud;
#[cfg(feature = "aws")]
use crate::discover::Scope;
use crate::discover::{self, Found, Scan};
use crate::lint::{self, Deployed, Finding, Level};
use crate::manifest::{AwsConfig, GcpConfig};
use crate::provider::{self, Cloud, Mark};
use crate::render::{human, yaml};

pub async fn run(cloud: DiscoverCloud) -> anyhow::Result<Status> {
    let (text, findings, out) = match cloud {
        #[cfg(feature = "aws")]
        DiscoverCloud::Aws { region, key, tag, all: _, out } => {
            let scope = match (key, tag) {
                (Some(k), _) => Scope::Key(k),
                (None, Some(t)) => {
                    let (k, v) = t.split_once('=').context("--tag takes KEY=VALUE")?;
                    Scope::Tag(k.to_owned(), v.to_owned())
                }
                (None, None) => Scope::All,
            };
            let cloud = Cloud::connect(&AwsConfig { region, ..AwsConfig::default() }, &GcpConfig::default()).await;
            let identity = cloud.aws.identity().await.context("cannot identify the AWS caller")?.clone();
            eprintln!(
                "Reading account {} in {} as {} (read calls only)",
                identity.account_id, cloud.aws.region, identity.arn
            );
            let scan = discover::aws::scan(&cloud, &scope).await.context("cannot read the account")?;
            let header = vec![
                format!("Account {}, region {}, read as {}.", identity.account_id, cloud.aws.region, identity.arn),
                reads(&cloud),
            ];
            let provider = json!({"aws": {"region": cloud.aws.region}});
            let cx = lint::Context { account_id: Some(identity.account_id.clone()), ..Default::default() };
            let (text, findings) = manifest(&scan, &provider, &header, &cx);
            (text, findings, out)
        }
        #[cfg(feature = "gcp")]
        DiscoverCloud::Gcp { project, location, key_ring, out } => {
            let settings = GcpConfig { project: Some(project.clone()), ..GcpConfig::default() };
            let cloud = Cloud::connect(&AwsConfig::default(), &settings).await;
            let principal = provider::gcp::credentials::principal(&cloud.gcp)
                .await
                .context("cannot identify the Google principal")?;
            eprintln!("Reading projects/{project}/locations/{location} as {principal} (read calls only)");
            let scan = discover::gcp::scan(&cloud, &project, &location, key_ring.as_deref())
                .await
                .context("cannot read the project")?;
            let header = vec![format!("Project {project}, location {location}, read as {principal}."), reads(&cloud)];
            let provider = json!({"gcp": {"project": project}});
            let (text, findings) = manifest(&scan, &provider, &header, &lint::Context::default());
            (text, findings, out)
        }
    };
    match &out {
        Some(path) => {
            if path.exists() {
                anyhow::bail!("{} exists; keyrite discover does not overwrite a manifest", path.display());
            }
            std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("Wrote {}. Next: keyrite validate -f {0} && keyrite plan -f {0}", path.display());
        }
        None => print!("{text}"),
    }
    eprint!("{}", human::lint(&findings));
    Ok(Status::Ok)
}

/// "Read with N calls (0 mutating)."
fn reads(cloud: &Cloud) -> String {
    let total: u64 = cloud.calls.snapshot().values().sum();
    format!("Read with {total} API calls ({} mutating).", cloud.calls.mutating())
}

/// A manifest address from a cloud name: lowercase letters, digits, `_` and `-`.
fn address(base: &str, suffix: &str, taken: &mut BTreeSet<String>) -> String {
    let mut a: String = base
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' { c } else { '_' })
        .collect();
    a = a.trim_matches('_').to_owned();
    if !a.starts_with(|c: char| c.is_ascii_lowercase()) {
        a = format!("r_{a}");
    }
    a.truncate(48);
    let mut candidate = if a.ends_with(suffix) { a.clone() } else { format!("{a}{suffix}") };
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{a}{suffix}_{n}");
        n += 1;
    }
    candidate
}

/// The address a found resource gets: the one keyrite's ownership marks record (a stack
/// keyrite made keeps its addresses), else one made from its name.
fn address_for(f: &Found, scan: &Scan, taken: &mut BTreeSet<String>) -> String {
    if let Some(recorded) =
        provider::kind(f.kind).and_then(|k| provider::ownership_mark(k.schema(), &f.live.attrs, Mark::Address))
        && crate::manifest::refs::check_name(recorded).is_ok()
        && taken.insert(recorded.to_owned())
    {
        return recorded.to_owned();
    }
    let last = |s: &str| s.rsplit(['/', ':']).next().unwrap_or(s).to_owned();
    match f.kind {
        "aws_kms_key" => {
            let alias = scan.found.iter().find(|a| {
                a.kind == "aws_kms_alias" && a.live.attrs.get("target_key_id").and_then(Json::as_str) == Some(&f.id)
            });
            match alias {
                Some(a) => address(a.id.trim_start_matches("alias/"), "_key", taken),
                None => address(&format!("key_{}", &f.id[..f.id.len().min(8)]), "", taken),
            }
        }
        "aws_kms_alias" => address(f.id.trim_start_matches("alias/"), "_alias", taken),
        "aws_iam_role" => address(&f.id, "_role", taken),
        "aws_lambda_function" => address(&f.id, "", taken),
        "aws_lambda_function_url" => address(&f.id, "_url", taken),
        "aws_api_gateway_rest_api" => {
            address(f.live.attrs.get("name").and_then(Json::as_str).unwrap_or(&f.id), "_api", taken)
        }
        "gcp_kms_key_ring" => address(&last(&f.id), "_ring", taken),
        "gcp_kms_crypto_key" => address(&last(&f.id), "_key", taken),
        "gcp_kms_crypto_key_iam_binding" => address(&last(&f.id), "_access", taken),
        _ => address(&last(&f.id), "", taken),
    }
}

/// Writes the manifest for `scan`; returns it with the lint findings of what was found.
fn manifest(scan: &Scan, provider_block: &Json, header: &[String], cx: &lint::Context) -> (String, Vec<Finding>) {
    // Addresses: role policies are declared under their role.
    let mut taken = BTreeSet::new();
    let mut addresses: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for f in scan.found.iter().filter(|f| f.kind != "aws_iam_role_policy") {
        addresses.insert((f.kind, &f.id), address_for(f, scan, &mut taken));
    }
    let address_of = |f: &Found| -> String {
        match f.id.split_once(':') {
            Some((role, name)) if f.kind == "aws_iam_role_policy" => {
                format!("{}/{name}", addresses.get(&("aws_iam_role", role)).cloned().unwrap_or_default())
            }
            _ => addresses[&(f.kind, f.id.as_str())].clone(),
        }
    };
    // What other resources may refer to: each declared output's value.
    let mut refs: BTreeMap<String, String> = BTreeMap::new();
    for f in scan.found.iter().filter(|f| f.kind != "aws_iam_role_policy") {
        let Some(kind) = provider::kind(f.kind) else { continue };
        for output in kind.outputs() {
            if let Some(v) = f.live.outputs.get(*output).and_then(Json::as_str).filter(|v| !v.is_empty()) {
                refs.entry(v.to_owned()).or_insert_with(|| format!("${{{}.{output}}}", address_of(f)));
            }
        }
    }
    let refer = |v: &str| refs.get(v).cloned();

    let deployed: Vec<Deployed> = scan
        .found
        .iter()
        .map(|f| Deployed {
            kind: f.kind.to_owned(),
            resource: address_of(f),
            name: f.name.clone(),
            attrs: f.live.attrs.clone(),
        })
        .collect();
    let findings = lint::live(&deployed, cx, &[]);

    let mut out = String::new();
    let _ = writeln!(out, "# Written by `keyrite discover` at {}.", crate::state::now());
    for line in header {
        let _ = writeln!(out, "# {line}");
    }
    out.push_str(
        "#\n# Every resource carries `import:`: `keyrite plan` records it as it is instead of creating it,\n\
         # and shows what an apply would change (keyrite's ownership tags and labels, and whatever you\n\
         # edit). Read each `# review:` line: they are keyrite's lint findings for what was found.\n\
         # After the first apply, the `import:` lines have no effect and may be deleted.\n",
    );
    out.push_str("version: 1\n\n");
    yaml::field(&mut out, 0, "provider", provider_block);
    out.push_str("\nresources:\n");
    let mut declared = 0;
    for f in scan.found.iter().filter(|f| f.kind != "aws_iam_role_policy") {
        let Some(kind) = provider::kind(f.kind) else { continue };
        let Some(Json::Object(mut fields)) = kind.declare(&f.live, &refer) else { continue };
        let addr = address_of(f);
        if f.kind == "aws_iam_role" {
            let prefix = format!("{}:", f.id);
            let policies: serde_json::Map<String, Json> = scan
                .found
                .iter()
                .filter(|p| p.kind == "aws_iam_role_policy" && p.id.starts_with(&prefix))
                .map(|p| {
                    let name = p.id[prefix.len()..].to_owned();
                    (name, json!({"document": p.live.attrs.get("document").cloned().unwrap_or(Json::Null)}))
                })
                .collect();
            if !policies.is_empty() {
                fields.insert("policies".into(), Json::Object(policies));
            }
        }
        let _ = writeln!(out, "  # found: {} ({})", f.why, f.name);
        let children = format!("{addr}/");
        for finding in findings.iter().filter(|x| x.resource == addr || x.resource.starts_with(&children)) {
            let _ = writeln!(
                out,
                "  # review: {}[{}] {}: {}",
                finding.level.as_str(),
                finding.rule,
                finding.resource,
                finding.message
            );
        }
        let _ = writeln!(out, "  {addr}:");
        yaml::field(&mut out, 4, "type", &json!(f.kind));
        yaml::field(&mut out, 4, "import", &json!(f.id));
        for (k, v) in &fields {
            yaml::field(&mut out, 4, k, v);
        }
        out.push('\n');
        declared += 1;
    }
    if declared == 0 {
        out.push_str("  {}\n");
    }

    // Signers: each key, with the endpoints of the functions that name it.
    let mut signers = serde_json::Map::new();
    for key in scan.found.iter().filter(|f| matches!(f.kind, "aws_kms_key" | "gcp_kms_crypto_key")) {
        let key_addr = address_of(key);
        let names = format!("${{{key_addr}.");
        let functions: Vec<&Found> = scan
            .found
            .iter()
            .filter(|f| f.kind == "aws_lambda_function")
            .filter(|f| {
                f.live.attrs.get("environment").and_then(Json::as_object).is_some_and(|env| {
                    env.values().filter_map(Json::as_str).any(|v| refer(v).is_some_and(|r| r.starts_with(&names)))
                })
            })
            .collect();
        let mut endpoints = Vec::new();
        let mut mode = None;
        for function in &functions {
            let arn = function.live.outputs.get("arn").and_then(Json::as_str).unwrap_or_default();
            if let Some(url) = scan.found.iter().find(|u| u.kind == "aws_lambda_function_url" && u.id == function.id) {
                endpoints.push(json!({"function_url": address_of(url)}));
            }
            for api in scan.found.iter().filter(|a| a.kind == "aws_api_gateway_rest_api") {
                if api.live.attrs.get("function_arn").and_then(Json::as_str) == Some(arn) {
                    endpoints.push(json!({"api": address_of(api)}));
                }
            }
            let env_mode =
                function.live.attrs.get("environment").and_then(|e| e.get("SIGNING_MODE")).and_then(Json::as_str);
            mode = mode.or(env_mode.filter(|m| matches!(*m, "eip191" | "digest")));
        }
        let mut signer = json!({"key": key_addr});
        if let Some(m) = mode {
            signer["mode"] = json!(m);
        }
        if !endpoints.is_empty() {
            signer["endpoints"] = json!(endpoints);
        }
        let name = key_addr.trim_end_matches("_key").to_owned();
        signers.insert(name, signer);
    }
    if !signers.is_empty() {
        out.push_str(
            "# Signers: what `keyrite selftest` checks. The mode is what each function's SIGNING_MODE says,\n\
             # else EIP-191 (the contract's default): check that it is what your function signs.\n",
        );
        yaml::field(&mut out, 0, "signers", &Json::Object(signers));
    }

    // Error-level findings would stop every plan; they are accepted here, visibly, so that the
    // stack can be brought under keyrite first and fixed under review.
    let mut allow: BTreeMap<&str, serde_json::Map<String, Json>> = BTreeMap::new();
    let reason = "existed before keyrite (found by keyrite discover): review it, fix it, then delete this line";
    for f in findings.iter().filter(|f| f.level == Level::Error) {
        allow.entry(f.rule).or_default().insert(f.resource.clone(), json!(reason));
    }
    if !allow.is_empty() {
        out.push_str(
            "\n# Error-level findings of what was found, accepted so that plans can run; every plan prints them.\n",
        );
        let allow: serde_json::Map<String, Json> =
            allow.into_iter().map(|(rule, resources)| (rule.to_owned(), Json::Object(resources))).collect();
        yaml::field(&mut out, 0, "lint", &json!({"allow": allow}));
    }
    if !scan.unmanaged.is_empty() {
        out.push_str("\n# Part of the stacks above, but not something keyrite manages yet; left exactly as it is:\n");
        for s in &scan.unmanaged {
            let _ = writeln!(out, "#   {}: {}", s.name, s.reason);
        }
    }
    if !scan.skipped.is_empty() {
        out.push_str("\n# Looked at and left out:\n");
        for s in &scan.skipped {
            let _ = writeln!(out, "#   {}: {}", s.name, s.reason);
        }
    }
    (out, findings)
}
