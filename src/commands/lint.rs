//! `keyrite lint`: keyrite's security rules over the manifest, over what its state records as
//! deployed, or over a whole account's (or project's) signer stacks; as text, JSON or SARIF.

use std::sync::Arc;

use anyhow::Context as _;

use super::{Reference, Status, load, refresh};
use crate::cli::{Account, ManifestArg};
use crate::discover;
use crate::lint::{self, Context, Deployed, Finding, Level};
use crate::manifest::{AwsConfig, GcpConfig, Slot};
use crate::provider::{self, Cloud};
use crate::render::{ReportFormat, human, sarif};

/// Where an account scan looks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub region: Option<String>,
    pub project: Option<String>,
    pub location: Option<String>,
}

/// What is linted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Manifest,
    /// What the manifest's state records, read from the cloud.
    State,
    /// Every signer stack of an AWS account and region.
    #[cfg(feature = "aws")]
    Aws {
        region: Option<String>,
    },
    /// Every signer stack of a Google Cloud project and location.
    #[cfg(feature = "gcp")]
    Gcp {
        project: String,
        location: String,
    },
}

impl Source {
    pub fn pick(live: bool, account: Option<Account>, scope: Scope) -> anyhow::Result<Source> {
        Ok(match (live, account) {
            #[cfg(feature = "aws")]
            (true, Some(Account::Aws)) => Source::Aws { region: scope.region },
            #[cfg(feature = "gcp")]
            (true, Some(Account::Gcp)) => {
                let (Some(project), Some(location)) = (scope.project, scope.location) else {
                    anyhow::bail!("--account gcp needs --project and --location")
                };
                Source::Gcp { project, location }
            }
            (true, None) => Source::State,
            _ => Source::Manifest,
        })
    }
}

pub async fn run(arg: &ManifestArg, source: Source, format: ReportFormat, fail_on: Level) -> anyhow::Result<Status> {
    let findings = match &source {
        Source::Manifest => lint::manifest(&crate::manifest::load(&arg.file)?),
        Source::State => state(arg).await?,
        #[cfg(feature = "aws")]
        Source::Aws { region } => aws_account(region.clone()).await?,
        #[cfg(feature = "gcp")]
        Source::Gcp { project, location } => gcp_project(project, location).await?,
    };
    match format {
        ReportFormat::Human => print!("{}", human::lint(&findings)),
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"format_version": 1, "kind": "lint", "findings": findings})
            )?
        ),
        ReportFormat::Sarif => println!("{}", serde_json::to_string_pretty(&sarif::lint(&findings))?),
    }
    Ok(if findings.iter().any(|f| f.counts() && f.level >= fail_on) { Status::Changes } else { Status::Ok })
}

/// The state's resources as the cloud holds them, with the slot and deletion window the
/// state records (the cloud does not know them).
async fn state(arg: &ManifestArg) -> anyhow::Result<Vec<Finding>> {
    let (manifest, store) = load(arg).await?;
    let Some(state) = super::read_state(&store).await? else {
        anyhow::bail!("no state at {}: nothing is deployed yet (lint the manifest without --live)", store.describe())
    };
    let cloud = Arc::new(Cloud::connect(&manifest.aws, &manifest.gcp).await);
    let observed = refresh(&cloud, &manifest, Some(&state), Reference::State).await?;
    let mut deployed = Vec::new();
    let mut cx = Context { account_id: observed.builtins.get("account_id").cloned(), ..Context::default() };
    // Cloud Run gates are not deployed by keyrite: the manifest names their service accounts.
    cx.gates.extend(manifest.signers.iter().filter_map(|s| s.gate.as_ref()).map(|g| g.member()));
    for (address, prior) in &state.resources {
        let Some(Some(live)) = observed.live.get(address) else {
            eprintln!("note: {address} ({}) is gone from the cloud; `keyrite drift` shows it", prior.id);
            continue;
        };
        let attrs = match provider::kind(&prior.kind) {
            Some(kind) => provider::with_state_only(kind.schema(), &live.attrs, &prior.attrs),
            None => live.attrs.clone(),
        };
        if Slot::of(&attrs) == Slot::Recovery {
            cx.recovery.insert(prior.id.clone());
        }
        let name = ["arn", "version_id", "url"]
            .iter()
            .find_map(|o| prior.outputs.get(*o).and_then(|v| v.as_str()))
            .filter(|n| !n.is_empty())
            .unwrap_or(&prior.id)
            .to_owned();
        deployed.push(Deployed { kind: prior.kind.clone(), resource: address.clone(), name, attrs });
    }
    let mut findings = lint::live(&deployed, &cx, &manifest.allowances);
    // A key's age as the cloud tells it now.
    let mut current = state.clone();
    for (address, r) in current.resources.iter_mut() {
        if let Some(Some(live)) = observed.live.get(address)
            && let Some(at) = live.outputs.get("created_at")
        {
            r.outputs.insert("created_at".into(), at.clone());
        }
    }
    let due = keyrite_core::rotation::due(&manifest.signers, &current, &crate::state::now());
    findings.extend(lint::rotations_due(&due, &current, &manifest.allowances));
    findings.sort_by(|a, b| (&a.resource, a.rule, &a.message).cmp(&(&b.resource, b.rule, &b.message)));
    Ok(findings)
}

/// Every secp256k1 key of the account and the stack around it, found read-only.
#[cfg(feature = "aws")]
async fn aws_account(region: Option<String>) -> anyhow::Result<Vec<Finding>> {
    let settings = AwsConfig { region, ..AwsConfig::default() };
    let cloud = Cloud::connect(&settings, &GcpConfig::default()).await;
    let identity = cloud.aws.identity().await.context("cannot identify the AWS caller")?.clone();
    eprintln!("Scanning account {} in {} as {}", identity.account_id, cloud.aws.region, identity.arn);
    let scan = discover::aws::scan(&cloud, &discover::Scope::All).await.context("cannot scan the account")?;
    let cx = Context { account_id: Some(identity.account_id), ..Context::default() };
    Ok(lint::live(&scanned(&scan, &cloud, "aws_kms_key"), &cx, &[]))
}

/// Every secp256k1 key of the project and location, its ring and its IAM policy.
#[cfg(feature = "gcp")]
async fn gcp_project(project: &str, location: &str) -> anyhow::Result<Vec<Finding>> {
    let settings = GcpConfig { project: Some(project.to_owned()), ..GcpConfig::default() };
    let cloud = Cloud::connect(&AwsConfig::default(), &settings).await;
    let principal =
        provider::gcp::credentials::principal(&cloud.gcp).await.context("cannot identify the Google principal")?;
    eprintln!("Scanning projects/{project}/locations/{location} as {principal}");
    let scan = discover::gcp::scan(&cloud, project, location, None).await.context("cannot scan the project")?;
    Ok(lint::live(&scanned(&scan, &cloud, "gcp_kms_crypto_key"), &Context::default(), &[]))
}

/// What a scan found, to lint; prints what was skipped, what was read and at what cost.
fn scanned(scan: &discover::Scan, cloud: &Cloud, key_kind: &str) -> Vec<Deployed> {
    for s in &scan.skipped {
        eprintln!("skipped {}: {}", s.name, s.reason);
    }
    let deployed: Vec<Deployed> = scan
        .found
        .iter()
        .map(|f| Deployed {
            kind: f.kind.to_owned(),
            resource: f.name.clone(),
            name: f.name.clone(),
            attrs: f.live.attrs.clone(),
        })
        .collect();
    let keys = scan.found.iter().filter(|f| f.kind == key_kind).count();
    eprintln!(
        "Read {} resource(s) around {keys} secp256k1 key(s) with {} calls ({} mutating).",
        deployed.len(),
        cloud.calls.snapshot().values().sum::<u64>(),
        cloud.calls.mutating()
    );
    deployed
}
