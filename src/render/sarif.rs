//! SARIF 2.1.0 for code-scanning tools (GitHub code scanning, Azure DevOps, …), with the
//! types of the `serde-sarif` crate. Rules carry their metadata and GitHub's
//! `security-severity`; manifest findings carry physical locations (file, line, column);
//! every result has a `partialFingerprints` entry that stays the same across runs while the
//! finding does.

use serde_json::{Value as Json, json};
use serde_sarif::sarif::{
    ArtifactLocation, Location, LogicalLocation, Message, MultiformatMessageString, PhysicalLocation, PropertyBag,
    Region, ReportingConfiguration, ReportingDescriptor, Result as SarifResult, Run, Sarif, Suppression, Tool,
    ToolComponent,
};

use crate::lint::{Finding, Level, RULES, Rule};
use crate::plan::drift::{DriftItem, Severity};
use crate::state::State;

/// The schema the output declares and validates against.
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn text(t: &str) -> MultiformatMessageString {
    MultiformatMessageString::builder().text(t).build()
}

fn descriptor(rule: &Rule) -> ReportingDescriptor {
    let mut properties = PropertyBag::default();
    properties.additional_properties.insert("security-severity".into(), json!(rule.security_severity));
    properties.tags = Some(vec!["security".into()]);
    let help = MultiformatMessageString::builder()
        .text(rule.help)
        .markdown(format!("{}\n\nSee docs/lint.md, rule {}.", rule.help, rule.id))
        .build();
    ReportingDescriptor::builder()
        .id(rule.id)
        .name(rule.name)
        .short_description(text(rule.short))
        .full_description(text(rule.full))
        .help(help)
        .default_configuration(ReportingConfiguration { level: Some(json!(rule.level.as_str())), ..Default::default() })
        .properties(properties)
        .build()
}

/// A file as a SARIF artifact URI: relative paths as they are (code scanning resolves them
/// against the repository), absolute ones as `file://` URIs.
fn uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    let path = path.strip_prefix("./").unwrap_or(&path);
    if path.starts_with('/') {
        let encoded = percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC)
            .to_string()
            .replace("%2F", "/")
            .replace("%2E", ".")
            .replace("%2D", "-")
            .replace("%5F", "_");
        format!("file://{encoded}")
    } else {
        path.to_owned()
    }
}

/// The rules drift findings are reported under.
pub static DRIFT_RULES: &[Rule] = &[
    Rule {
        id: "KR901",
        name: "security-drift",
        level: Level::Error,
        security_severity: "8.0",
        short: "A resource changed outside keyrite in a way that weakens it",
        full: "Since keyrite last applied, a policy was broadened, a principal or binding was added, a key was disabled or scheduled for deletion, or another key version was enabled.",
        help: "Find out who changed it (CloudTrail, Cloud Audit Logs), then run `keyrite apply` to restore what the manifest declares.",
    },
    Rule {
        id: "KR902",
        name: "drift",
        level: Level::Warning,
        security_severity: "3.0",
        short: "A resource changed outside keyrite",
        full: "Since keyrite last applied, an attribute (tags, a description, a narrowed policy) differs from what was applied.",
        help: "Run `keyrite plan` to see the change and `keyrite apply` to restore the manifest.",
    },
];

/// A SARIF log of drift findings: logical locations name the resource by its manifest
/// address and its cloud id (ARN, key id, resource name) as the state records it.
pub fn drift(items: &[DriftItem], state: &State) -> Json {
    let results: Vec<SarifResult> = items
        .iter()
        .map(|item| {
            let (rule, index) = match item.severity {
                Severity::Security => ("KR901", 0),
                _ => ("KR902", 1),
            };
            let id = state.resources.get(&item.address).map(|r| r.id.clone());
            let attribute = item.attribute.as_deref().map(|a| format!(".{a}")).unwrap_or_default();
            let mut text_ = format!("{}{attribute}: {}", item.address, item.message);
            for d in &item.detail {
                text_.push_str("; ");
                text_.push_str(d);
            }
            let location = Location {
                logical_locations: Some(vec![LogicalLocation {
                    name: Some(item.address.clone()),
                    fully_qualified_name: id,
                    kind: Some("resource".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            };
            let print = crate::crypto::sha256_hex(
                format!("{}\0{}\0{}", item.address, item.attribute.as_deref().unwrap_or_default(), item.message)
                    .as_bytes(),
            );
            let mut result = SarifResult::builder()
                .rule_id(rule)
                .message(Message { text: Some(text_), ..Default::default() })
                .locations(vec![location])
                .partial_fingerprints(std::collections::BTreeMap::from([("keyriteDrift/v1".to_owned(), print)]))
                .build();
            result.rule_index = Some(index);
            result.level = serde_json::from_value(json!(DRIFT_RULES[index as usize].level.as_str())).ok();
            result
        })
        .collect();
    log(DRIFT_RULES, results)
}

/// One run of keyrite with these rules and results.
fn log(rules: &[Rule], results: Vec<SarifResult>) -> Json {
    let driver = ToolComponent::builder()
        .name("keyrite")
        .version(env!("CARGO_PKG_VERSION"))
        .rules(rules.iter().map(descriptor).collect::<Vec<_>>())
        .build();
    let run = Run::builder().tool(Tool::builder().driver(driver).build()).results(results).build();
    let log = Sarif::builder().schema(SCHEMA).version(json!("2.1.0")).runs(vec![run]).build();
    serde_json::to_value(log).unwrap_or(Json::Null)
}

/// A SARIF log of lint findings, one run, with every rule's metadata.
pub fn lint(findings: &[Finding]) -> Json {
    let results: Vec<SarifResult> = findings
        .iter()
        .map(|f| {
            // Manifest findings point into the file; live ones name the resource in its cloud.
            let physical_location = f.file.as_ref().map(|file| PhysicalLocation {
                artifact_location: Some(ArtifactLocation { uri: Some(uri(file)), ..Default::default() }),
                region: Some(Region {
                    start_line: Some(f.line.unwrap_or(1).max(1) as i64),
                    start_column: Some(f.column.unwrap_or(1).max(1) as i64),
                    ..Default::default()
                }),
                ..Default::default()
            });
            let location = Location {
                physical_location,
                logical_locations: Some(vec![LogicalLocation {
                    name: Some(f.resource.clone()),
                    fully_qualified_name: f.name.clone(),
                    kind: Some("resource".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            };
            let mut result = SarifResult::builder()
                .rule_id(f.rule)
                .message(Message { text: Some(format!("{}: {}", f.resource, f.message)), ..Default::default() })
                .locations(vec![location])
                .partial_fingerprints(std::collections::BTreeMap::from([(
                    "keyriteFinding/v1".to_owned(),
                    f.fingerprint(),
                )]))
                .build();
            result.rule_index = RULES.iter().position(|r| r.id == f.rule).map(|i| i as i64);
            // A finding the manifest accepts is reported as suppressed in source, with its reason.
            if let Some(reason) = &f.allowed {
                result.suppressions =
                    Some(vec![Suppression::builder().kind(json!("inSource")).justification(reason.clone()).build()]);
            }
            result.level = serde_json::from_value(json!(f.level.as_str())).ok();
            result
        })
        .collect();
    log(RULES, results)
}
