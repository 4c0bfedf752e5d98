//! The planner and drift detector, without a network: states and observations are built by
//! hand, exactly as a refresh would report them.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::manifest::{Attrs, Manifest};
use crate::plan::drift::{Severity, detect};
use crate::plan::*;
use crate::provider::{self, Compare, Live};
use crate::state::{ResourceState, State};

const MANIFEST: &str = r#"
version: 1
resources:
  role:
    type: aws_iam_role
    name: signer
    trust: {services: [lambda.amazonaws.com]}
    policies:
      sign:
        generated: {sign_keys: ["${key.arn}"]}
  key:
    type: aws_kms_key
    description: hot
    policy:
      generated: {signers: ["${role.arn}"]}
  alias:
    type: aws_kms_alias
    name: alias/k
    target_key: ${key.key_id}
"#;

const LINEAGE: &str = "00000000-0000-4000-8000-000000000000";

fn manifest(text: &str) -> Manifest {
    crate::manifest::parse(Path::new("m.yaml"), text).unwrap()
}

fn builtins() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("account_id".into(), "111122223333".into()),
        ("region".into(), "us-east-1".into()),
        ("partition".into(), "aws".into()),
    ])
}

/// Made-up cloud outputs for a resource, as create would return them.
fn outputs_for(kind: &str, name: &str) -> (String, Attrs) {
    let o = |v: serde_json::Value| v.as_object().unwrap().clone();
    match kind {
        "aws_kms_key" => (
            format!("{name}-id"),
            o(
                json!({"key_id": format!("{name}-id"), "arn": format!("arn:aws:kms:us-east-1:111122223333:key/{name}-id"), "public_key": "AAAA"}),
            ),
        ),
        "aws_iam_role" => (
            "signer".into(),
            o(json!({"arn": "arn:aws:iam::111122223333:role/signer", "name": "signer", "role_id": "AROA1"})),
        ),
        "aws_kms_alias" => {
            ("alias/k".into(), o(json!({"name": "alias/k", "arn": "arn:aws:kms:us-east-1:111122223333:alias/k"})))
        }
        _ => (format!("signer:{name}"), o(json!({"name": name}))),
    }
}

/// The state and observation after a perfect apply of `m`.
fn applied(m: &Manifest) -> (State, Observed) {
    let mut state = State::new(Some(LINEAGE.into()));
    let mut observed = Observed { live: BTreeMap::new(), builtins: builtins(), ..Observed::default() };
    let mut known = Outputs::new(&observed.builtins);
    for spec in &m.resources {
        let kind = provider::kind(&spec.kind).unwrap();
        let (attrs, unknown) = resolve(&with_ownership(kind.schema(), &spec.desired, LINEAGE, &spec.name, 1), &known);
        assert!(unknown.is_empty(), "{}: {unknown:?}", spec.name);
        let (id, outputs) = outputs_for(&spec.kind, &spec.name);
        known.insert(&spec.name, outputs.clone());
        let mut live = attrs.clone();
        live.retain(|k, _| kind.attrs().iter().any(|a| a.name == k && a.compare != Compare::StateOnly));
        observed.live.insert(spec.name.clone(), Some(Live { attrs: live, outputs: outputs.clone() }));
        state.resources.insert(
            spec.name.clone(),
            ResourceState {
                kind: spec.kind.clone(),
                id,
                attrs,
                outputs,
                depends_on: spec.depends_on.clone(),
                updated_at: "t".into(),
            },
        );
        state.serial += 1;
    }
    (state, observed)
}

fn live_mut<'a>(observed: &'a mut Observed, address: &str) -> &'a mut Attrs {
    &mut observed.live.get_mut(address).unwrap().as_mut().unwrap().attrs
}

fn change<'a>(plan: &'a Plan, address: &str) -> &'a ResourceChange {
    plan.changes.iter().find(|c| c.address == address).unwrap()
}

#[test]
fn without_state_everything_is_created_and_unknowns_are_marked() {
    let m = manifest(MANIFEST);
    let plan =
        build(&m, None, &Observed { live: BTreeMap::new(), builtins: builtins(), ..Observed::default() }, "now".into());
    assert!(plan.changes.iter().all(|c| c.action == Action::Create));
    assert_eq!(plan.summary(), Summary { create: 4, ..Summary::default() });
    assert_eq!(plan.base_serial, None);
    let key = change(&plan, "key");
    let policy = key.changes.iter().find(|c| c.name == "policy").unwrap();
    assert!(policy.unknown(), "the role ARN is not known before the role exists");
    let spec = key.changes.iter().find(|c| c.name == "key_spec").unwrap();
    assert_eq!(spec.after, Some(json!("ECC_SECG_P256K1")));
}

#[test]
fn after_a_perfect_apply_nothing_changes_and_nothing_drifted() {
    let m = manifest(MANIFEST);
    let (state, observed) = applied(&m);
    let plan = build(&m, Some(&state), &observed, "now".into());
    assert!(!plan.has_changes(), "{:#?}", plan.changes.iter().filter(|c| c.action != Action::NoOp).collect::<Vec<_>>());
    assert_eq!(plan.base_serial, Some(4));
    assert_eq!(plan.lineage, LINEAGE);
    assert!(detect(&state, &observed, provider::schemas()).is_empty());
}

#[test]
fn a_reformatted_but_equivalent_policy_is_no_change() {
    let m = manifest(MANIFEST);
    let (state, mut observed) = applied(&m);
    let policy = live_mut(&mut observed, "key").get_mut("policy").unwrap();
    policy["Statement"].as_array_mut().unwrap().reverse();
    policy["Statement"][0]["Resource"] = json!(["*"]);
    assert!(!build(&m, Some(&state), &observed, "now".into()).has_changes());
    assert!(detect(&state, &observed, provider::schemas()).is_empty());
}

#[test]
fn a_broadened_policy_is_an_update_and_security_drift_naming_statement_and_field() {
    let m = manifest(MANIFEST);
    let (state, mut observed) = applied(&m);
    let policy = live_mut(&mut observed, "key").get_mut("policy").unwrap();
    policy["Statement"][1]["Action"] = json!("kms:*");
    let plan = build(&m, Some(&state), &observed, "now".into());
    let c = change(&plan, "key");
    assert_eq!(c.action, Action::Update);
    assert_eq!(c.changes.len(), 1);
    let detail = c.changes[0].detail.join("\n");
    assert!(detail.contains("AllowSigning") && detail.contains("kms:*"), "{detail}");
    let drift = detect(&state, &observed, provider::schemas());
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].severity, Severity::Security);
    assert_eq!(drift[0].attribute.as_deref(), Some("policy"));
}

#[test]
fn a_changed_key_spec_is_a_hazardous_replacement() {
    let m = manifest(MANIFEST);
    let (state, mut observed) = applied(&m);
    live_mut(&mut observed, "key").insert("key_spec".into(), json!("ECC_NIST_P256"));
    let plan = build(&m, Some(&state), &observed, "now".into());
    let c = change(&plan, "key");
    assert_eq!(c.action, Action::Replace);
    assert!(c.hazard.as_deref().unwrap().contains("NEW ADDRESS"));
    // Everything that references the key's outputs must follow the new key.
    assert_eq!(change(&plan, "alias").action, Action::Update);
    assert!(change(&plan, "alias").changes[0].unknown());
    assert_eq!(change(&plan, "role/sign").action, Action::Update);
}

#[test]
fn a_resource_deleted_out_of_band_is_created_again_with_a_reason() {
    let m = manifest(MANIFEST);
    let (state, mut observed) = applied(&m);
    observed.live.insert("alias".into(), None);
    let plan = build(&m, Some(&state), &observed, "now".into());
    let c = change(&plan, "alias");
    assert_eq!(c.action, Action::Create);
    assert!(c.reason.as_deref().unwrap().contains("deleted outside keyrite"));
    assert_eq!(c.hazard, None);
    let drift = detect(&state, &observed, provider::schemas());
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].attribute, None);
    // A key that vanished is re-created only with the replacement flag.
    observed.live.insert("key".into(), None);
    let plan = build(&m, Some(&state), &observed, "now".into());
    assert!(change(&plan, "key").hazard.is_some());
}

#[test]
fn removed_resources_are_deleted_dependents_first() {
    let m = manifest(MANIFEST);
    let (state, observed) = applied(&m);
    let plan = build(&manifest("version: 1\nresources: {}\n"), Some(&state), &observed, "now".into());
    let order: Vec<&str> = plan.changes.iter().map(|c| c.address.as_str()).collect();
    let pos = |a: &str| order.iter().position(|x| *x == a).unwrap();
    assert!(pos("alias") < pos("key") && pos("role/sign") < pos("key") && pos("key") < pos("role"), "{order:?}");
    assert!(plan.changes.iter().all(|c| c.action == Action::Delete));
    assert!(change(&plan, "key").hazard.as_deref().unwrap().contains("30-day window"));
    assert_eq!(change(&plan, "role").hazard, None);
}

#[test]
fn destroy_plans_everything_and_state_only_attributes_compare_with_state() {
    let m = manifest(MANIFEST);
    let (state, observed) = applied(&m);
    let plan = build_destroy(&m, &state, &observed, "now".into());
    assert_eq!(plan.mode, Mode::Destroy);
    assert_eq!(plan.summary().delete, 4);

    let m2 = manifest(&MANIFEST.replace("description: hot", "description: hot\n    deletion_window_days: 7"));
    let plan = build(&m2, Some(&state), &observed, "now".into());
    let c = change(&plan, "key");
    assert_eq!(c.action, Action::Update);
    assert_eq!(c.changes[0].name, "deletion_window_days");
    assert_eq!((c.changes[0].before.clone(), c.changes[0].after.clone()), (Some(json!(30)), Some(json!(7))));
}

#[test]
fn undeclared_inline_policies_and_disabled_keys_are_security_drift() {
    let m = manifest(MANIFEST);
    let (state, mut observed) = applied(&m);
    live_mut(&mut observed, "role").insert("undeclared_inline_policies".into(), json!(["backdoor"]));
    live_mut(&mut observed, "key").insert("key_state".into(), json!("PendingDeletion"));
    live_mut(&mut observed, "key").get_mut("tags").unwrap()["owner"] = json!("eve");
    let drift = detect(&state, &observed, provider::schemas());
    let msg = |attr: &str| {
        drift.iter().find(|d| d.attribute.as_deref() == Some(attr)).map(|d| (d.severity, d.message.clone())).unwrap()
    };
    assert_eq!(
        msg("undeclared_inline_policies"),
        (Severity::Security, "undeclared inline policy attached: backdoor".into())
    );
    assert_eq!(msg("key_state"), (Severity::Security, "key is PENDING DELETION".into()));
    assert_eq!(msg("tags"), (Severity::Change, "tags changed: +owner=eve".into()));
    let plan = build(&m, Some(&state), &observed, "now".into());
    assert_eq!(change(&plan, "role").action, Action::Update);
}

#[test]
fn human_plan_output() {
    let m = manifest(MANIFEST);
    let (state, mut observed) = applied(&m);
    let policy = live_mut(&mut observed, "key").get_mut("policy").unwrap();
    policy["Statement"][1]["Action"] = json!("kms:*");
    live_mut(&mut observed, "key").insert("description".into(), json!("cold"));
    live_mut(&mut observed, "role").get_mut("tags").unwrap()["owner"] = json!("eve");
    observed.live.insert("alias".into(), None);
    let plan = build(&m, Some(&state), &observed, "now".into());
    insta::assert_snapshot!("plan_update", crate::render::human::plan(&plan));

    let fresh =
        build(&m, None, &Observed { live: BTreeMap::new(), builtins: builtins(), ..Observed::default() }, "now".into());
    let text = crate::render::human::plan(&fresh).replace(&fresh.lineage, "<lineage>");
    insta::assert_snapshot!("plan_create", text);

    live_mut(&mut observed, "key").insert("key_spec".into(), json!("ECC_NIST_P256"));
    let replace = build(&m, Some(&state), &observed, "now".into());
    insta::assert_snapshot!("plan_replace", crate::render::human::plan(&replace));
}
