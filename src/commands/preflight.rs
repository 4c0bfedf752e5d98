//! What a plan checks with the cloud after it is built and before anyone sees it: that its
//! caller holds the permissions its changes need, where the cloud can say so without acting.
//!
//! AWS answers through IAM's policy simulator, Cloud KMS through `testIamPermissions` on the
//! nearest existing ring or key. What cannot be checked is listed as unchecked, with why;
//! what is missing becomes a plan error, so apply never starts what it cannot finish.

use crate::plan::permissions::{self, Cloud as Side, Need};
use crate::plan::{AllowedFinding, PermissionCheck, Plan, PlanError, Verdict};
use crate::provider::{self, Cloud};

/// Fills in `plan.permissions`, and a plan error per cloud with missing permissions.
pub async fn check_permissions(cloud: &Cloud, plan: &mut Plan) -> anyhow::Result<()> {
    let needs = permissions::needed(plan, crate::provider::schemas());
    let mut checks = Vec::with_capacity(needs.len());
    #[cfg(feature = "aws")]
    aws(cloud, &needs, &mut checks).await?;
    #[cfg(feature = "gcp")]
    gcp(cloud, &needs, &mut checks).await?;
    for (side, who) in [(Side::Aws, plan.identity.aws.clone()), (Side::Gcp, plan.identity.gcp.clone())] {
        let missing: Vec<String> = checks
            .iter()
            .filter(|(s, c)| *s == side && c.verdict == Verdict::Missing)
            .map(|(_, c)| format!("{} on {} (for {})", c.permission, c.resource, c.needed_by.join(", ")))
            .collect();
        if !missing.is_empty() {
            plan.errors.push(PlanError {
                address: None,
                message: format!(
                    "{} lacks {} permission{} this plan needs: {}",
                    who.as_deref().unwrap_or("the caller"),
                    missing.len(),
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join("; ")
                ),
                hint: Some("grant them, then plan again; nothing was changed".into()),
            });
        }
    }
    plan.permissions = checks.into_iter().map(|(_, c)| c).collect();
    Ok(())
}

/// AWS's needs, through IAM's policy simulator.
#[cfg(feature = "aws")]
async fn aws(cloud: &Cloud, needs: &[Need], checks: &mut Vec<(Side, PermissionCheck)>) -> anyhow::Result<()> {
    let aws: Vec<&Need> = needs.iter().filter(|n| n.cloud == Side::Aws).collect();
    if !aws.is_empty() {
        let asks: Vec<(&str, &str)> =
            aws.iter().map(|n| (n.permission, n.resource.as_deref().unwrap_or("*"))).collect();
        match provider::aws::simulate::simulate(&cloud.aws, &asks).await? {
            Ok(allowed) => {
                for (need, ok) in aws.iter().zip(allowed) {
                    checks.push((Side::Aws, check(need, if ok { Verdict::Granted } else { Verdict::Missing }, None)));
                }
            }
            Err(why) => checks.extend(aws.iter().map(|n| (Side::Aws, check(n, Verdict::Unchecked, Some(why.clone()))))),
        }
    }
    Ok(())
}

/// Cloud KMS's needs, through `testIamPermissions` on the nearest existing ring or key.
#[cfg(feature = "gcp")]
async fn gcp(cloud: &Cloud, needs: &[Need], checks: &mut Vec<(Side, PermissionCheck)>) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    let mut by_resource: BTreeMap<Option<&str>, Vec<&Need>> = BTreeMap::new();
    for need in needs.iter().filter(|n| n.cloud == Side::Gcp) {
        by_resource.entry(need.resource.as_deref()).or_default().push(need);
    }
    for (resource, group) in by_resource {
        let asked: Vec<&str> = group.iter().map(|n| n.permission).collect();
        let answer = match resource {
            Some(name) => provider::gcp::granted_nearest(&cloud.gcp, name, &asked).await?,
            None => None,
        };
        match answer {
            Some((name, granted)) => {
                for need in group {
                    let verdict =
                        if granted.iter().any(|g| g == need.permission) { Verdict::Granted } else { Verdict::Missing };
                    let mut c = check(need, verdict, None);
                    c.resource = name.clone();
                    checks.push((Side::Gcp, c));
                }
            }
            None => {
                let why = "nothing it applies to exists yet, and Cloud KMS tests permissions only on existing key rings \
                           and keys (key rings are created under a permission on the project)";
                checks.extend(group.iter().map(|n| (Side::Gcp, check(n, Verdict::Unchecked, Some(why.to_owned())))));
            }
        }
    }
    Ok(())
}

fn check(need: &Need, verdict: Verdict, note: Option<String>) -> PermissionCheck {
    PermissionCheck {
        permission: need.permission.to_owned(),
        resource: need.resource.clone().unwrap_or_else(|| "(not yet created)".into()),
        needed_by: need.needed_by.clone(),
        verdict,
        note,
    }
}

/// Error-level lint findings the manifest does not accept become plan errors; accepted ones
/// (of any level) are recorded in the plan, which shows them on every run.
pub fn check_lint(manifest: &crate::manifest::Manifest, plan: &mut Plan) {
    for f in crate::lint::manifest(manifest) {
        match &f.allowed {
            Some(reason) => plan.allowed.push(AllowedFinding {
                rule: f.rule.to_owned(),
                resource: f.resource.clone(),
                message: f.message.clone(),
                reason: reason.clone(),
            }),
            None if f.level == crate::lint::Level::Error => plan.errors.push(PlanError {
                address: Some(f.resource.clone()),
                message: format!(
                    "lint {} ({}): {}: {}",
                    f.rule,
                    crate::lint::rule(f.rule).map_or("", |r| r.name),
                    f.resource,
                    f.message
                ),
                hint: Some(format!(
                    "fix it (docs/lint.md, {}), or accept it with a reason under `lint: allow: {}: {{{}: \"why\"}}`",
                    f.rule, f.rule, f.resource
                )),
            }),
            None => {}
        }
    }
}
