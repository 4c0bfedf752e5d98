//! Permission checks at plan time: IAM's policy simulator for the AWS caller.
//!
//! `iam:SimulatePrincipalPolicy` evaluates the caller's identity policies (and permission
//! boundaries) for a list of actions on a resource, without doing anything. It cannot speak
//! for the account root user, which IAM policies do not limit, nor for a caller that may not
//! call the simulator itself; then the check is skipped and the plan says so. It does not
//! read resource policies: a KMS key policy that names the caller directly can grant what
//! the simulation calls missing.

use aws_sdk_iam::types::PolicyEvaluationDecisionType;

use super::{Aws, api_error};
use crate::provider::Result;

/// What the simulator said about each `(action, resource)` asked, in order: `true` allowed.
/// `Ok(Err(reason))` when the check could not be made.
pub async fn simulate(cloud: &Aws, asks: &[(&str, &str)]) -> Result<std::result::Result<Vec<bool>, String>> {
    let caller = cloud.identity().await?.arn.clone();
    let source = match principal_to_simulate(cloud, &caller).await? {
        Ok(arn) => arn,
        Err(why) => return Ok(Err(why)),
    };
    let mut resources: Vec<&str> = asks.iter().map(|(_, r)| *r).collect();
    resources.sort();
    resources.dedup();
    let mut allowed = std::collections::BTreeSet::new();
    for resource in resources {
        let actions: Vec<String> = asks.iter().filter(|(_, r)| *r == resource).map(|(a, _)| (*a).to_owned()).collect();
        let mut marker = None;
        loop {
            let out = cloud
                .iam
                .simulate_principal_policy()
                .policy_source_arn(&source)
                .set_action_names(Some(actions.clone()))
                .resource_arns(resource)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| api_error("iam:SimulatePrincipalPolicy", e));
            // The check is advice, not a gate of its own: a simulator that refuses or fails
            // leaves the permissions unchecked, and the plan says so.
            let out = match out {
                Ok(out) => out,
                Err(e) if matches!(e.code(), Some("AccessDenied" | "AccessDeniedException")) => {
                    return Ok(Err(format!(
                        "{caller} may not call iam:SimulatePrincipalPolicy, so AWS permissions were not checked"
                    )));
                }
                Err(e) => return Ok(Err(format!("the policy simulator could not answer ({e})"))),
            };
            for r in out.evaluation_results() {
                if *r.eval_decision() == PolicyEvaluationDecisionType::Allowed {
                    allowed.insert((r.eval_action_name().to_ascii_lowercase(), resource));
                }
            }
            match (out.is_truncated(), out.marker()) {
                (true, Some(m)) => marker = Some(m.to_owned()),
                _ => break,
            }
        }
    }
    Ok(Ok(asks.iter().map(|(a, r)| allowed.contains(&(a.to_ascii_lowercase(), *r))).collect()))
}

/// The IAM principal whose policies govern the caller: a user as it is, an assumed role's
/// role (read with `iam:GetRole`, since the role's path is not in the session ARN).
async fn principal_to_simulate(cloud: &Aws, caller: &str) -> Result<std::result::Result<String, String>> {
    let resource = caller.splitn(6, ':').nth(5).unwrap_or_default();
    if resource == "root" {
        return Ok(Err(format!(
            "{caller} is the account root user, which IAM policies do not limit; nothing to simulate (run ceremonies as a role, not as root)"
        )));
    }
    if resource.starts_with("user/") {
        return Ok(Ok(caller.to_owned()));
    }
    if let Some(rest) = resource.strip_prefix("assumed-role/") {
        let role = rest.split('/').next().unwrap_or_default();
        return Ok(match cloud.iam.get_role().role_name(role).send().await {
            Ok(out) => match out.role() {
                Some(r) => Ok(r.arn().to_owned()),
                None => Err(format!("iam:GetRole returned no role for {role}")),
            },
            Err(e) => Err(format!("cannot read role {role} to simulate its policies: {}", api_error("iam:GetRole", e))),
        });
    }
    Ok(Err(format!("{caller} is not an IAM user or role session; its permissions cannot be simulated")))
}
