//! The manifest: what the user wants, checked completely before anything touches the cloud.
//!
//! Parsing goes YAML → positioned [`yaml::Node`] tree → per-kind validation → [`Manifest`].
//! Validation never stops at the first problem: every unknown field, wrong type, out-of-range
//! value, dangling reference and dependency cycle is collected as a [`Diagnostic`] with
//! `file:line:column`, so a user fixes a manifest in one round trip. Only a manifest with no
//! diagnostics is returned, and nothing in this module performs I/O beyond reading the file.
//!
//! References are written `${resource.attribute}` (for example `${signer.arn}`) and resolve at
//! plan/apply time to another resource's output. `${aws.account_id}`, `${aws.region}` and
//! `${aws.partition}` name the caller's account, region and partition. IAM policy variables
//! such as `${aws:username}` use a colon and are left untouched.

pub mod allow;
pub mod ceremony;
mod gate;
pub mod refs;
mod rotation;
mod slots;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::schema::Schemas;
pub use allow::Allowance;
pub use ceremony::CeremonyConfig;
pub use refs::Reference;
pub use yaml::{Node, Pos, Value};

/// Desired attributes of one resource, as JSON. Strings may contain references.
pub type Attrs = Map<String, Json>;

/// The only manifest format version this build understands.
pub const MANIFEST_VERSION: u64 = 1;

/// One problem in a manifest, at a position.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: error[{}]: {}", self.file, self.line, self.column, self.code, self.message)
    }
}

impl Diagnostic {
    /// The diagnostic as a warning line.
    pub fn as_warning(&self) -> String {
        format!("{}:{}:{}: warning[{}]: {}", self.file, self.line, self.column, self.code, self.message)
    }
}

/// All problems found in a manifest. Displayed one per line, then a count.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "manifest is invalid: {n} error{}", if n == 1 { "" } else { "s" })
    }
}

/// `scheme://host[:port]` of a URL: the audience Cloud Run expects in ID tokens.
fn origin(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(u) => match (u.scheme_str(), u.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => url.to_owned(),
        },
        Err(_) => url.to_owned(),
    }
}

/// Checks a Google Cloud project id: 6–30 of lowercase letters, digits and hyphens, starting
/// with a letter and not ending with a hyphen.
pub fn check_project_id(id: &str) -> Result<(), String> {
    let ok = (6..=30).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok || id.contains("${") {
        Ok(())
    } else {
        Err(format!("{id:?} is not a project id (6–30 lowercase letters, digits and hyphens, starting with a letter)"))
    }
}

/// Where the state lives.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum StateConfig {
    Local {
        path: PathBuf,
    },
    /// `s3://bucket/key`, locked with a `<key>.lock` object.
    S3 {
        bucket: String,
        key: String,
        region: Option<String>,
        path_style: bool,
    },
}

/// AWS connection settings; each falls back to the standard AWS environment when unset.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AwsConfig {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint: Option<String>,
}

/// Google Cloud connection settings. Credentials are Application Default Credentials
/// (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file, or the metadata server) unless
/// `anonymous` is chosen, which only a local stand-in accepts.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GcpConfig {
    /// The project resources use when they name none.
    pub project: Option<String>,
    /// Cloud KMS endpoint; `KEYRITE_GCP_KMS_ENDPOINT` when unset, else Google's.
    pub endpoint: Option<String>,
    #[serde(default)]
    pub anonymous: bool,
}

/// One declared resource after validation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResourceSpec {
    /// The resource's address: its key under `resources:` (children: `parent/child`).
    pub name: String,
    /// The resource kind, e.g. `aws_kms_key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Desired attributes; strings may hold `${…}` references.
    pub desired: Attrs,
    /// Resources this one references, directly.
    pub depends_on: BTreeSet<String>,
    /// `import: <id>`: an existing resource to record instead of creating one (no effect once
    /// the address is in the state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<String>,
    /// Where the `import:` value is, for plan errors about it.
    #[serde(skip)]
    pub import_at: Option<Pos>,
}

pub use crate::signing::SigningMode;
pub use gate::GateSpec;

/// Authentication an HTTP signer endpoint expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointAuth {
    None,
    /// A bearer token read from this environment variable when the self-test runs.
    BearerEnv(String),
    /// A Google-signed ID token for this audience, from Application Default Credentials (what
    /// a Cloud Run service that requires authentication accepts).
    GoogleIdToken {
        audience: String,
    },
}

/// A place that signs for a signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A URL speaking the signer contract, e.g. `keyrite serve`.
    Url { url: String, auth: EndpointAuth },
    /// An `aws_lambda_function_url` resource (SigV4-signed when its auth type is AWS_IAM).
    FunctionUrl { resource: String },
    /// An `aws_api_gateway_rest_api` resource's stage (SigV4-signed, `execute-api`).
    Api { resource: String },
}

/// Which kind of signer a key is for. Operational keys sign every day behind endpoints;
/// recovery keys are used rarely, by named principals only, to enrol a new operational signer
/// after a loss or a compromise, and never sit behind an endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    #[default]
    Operational,
    Recovery,
}

impl Slot {
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Operational => "operational",
            Slot::Recovery => "recovery",
        }
    }

    /// The slot recorded in a key's attributes: `slot: recovery`, or nothing for operational
    /// (so that keys made before slots existed read as what they are).
    pub fn of(attrs: &Attrs) -> Slot {
        match attrs.get("slot").and_then(Json::as_str) {
            Some("recovery") => Slot::Recovery,
            _ => Slot::Operational,
        }
    }

    /// Reads a key's `slot:` field and records it in `attrs` when it is `recovery`.
    pub fn field(b: &mut Block<'_>, cx: &mut Validation, attrs: &mut Attrs) -> Slot {
        match b.choice(cx, "slot", &["operational", "recovery"]).as_deref() {
            Some("recovery") => {
                attrs.insert("slot".into(), Json::from("recovery"));
                Slot::Recovery
            }
            _ => Slot::Operational,
        }
    }
}

/// A signer: a key, the mode it signs in, and the endpoints that sign with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerSpec {
    pub name: String,
    /// The `aws_kms_key` resource.
    pub key: String,
    /// The key's slot; a recovery signer has no endpoints.
    pub slot: Slot,
    pub mode: SigningMode,
    pub endpoints: Vec<Endpoint>,
    /// `rotation:`: how `keyrite rotate` replaces its key.
    pub rotation: Option<crate::rotation::RotationSpec>,
    /// `gate:` on a Cloud KMS recovery signer: the quorum gate `keyrite serve` runs for it
    /// (on Cloud Run, as `service_account`), the only member its key's binding lets sign.
    pub gate: Option<SignerGate>,
}

/// A Cloud KMS recovery signer's quorum gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerGate {
    pub spec: GateSpec,
    /// The service account the gate runs as (`name@project.iam.gserviceaccount.com`).
    pub service_account: String,
}

impl SignerGate {
    /// The IAM member the gate's service account is.
    pub fn member(&self) -> String {
        format!("serviceAccount:{}", self.service_account)
    }
}

/// A validated manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub path: PathBuf,
    /// SHA-256 of the manifest text, recorded in plans and state.
    pub sha256: String,
    pub aws: AwsConfig,
    pub gcp: GcpConfig,
    pub state: StateConfig,
    /// Resources in a dependency-respecting order (dependencies first, then file order).
    pub resources: Vec<ResourceSpec>,
    pub signers: Vec<SignerSpec>,
    /// `ceremony:`: plans must be approved, and applies leave a signed record.
    pub ceremony: Option<CeremonyConfig>,
    /// Where each resource's block starts, for findings that point into the manifest.
    pub positions: BTreeMap<String, Pos>,
    /// Lint findings the manifest accepts, with reasons (`lint.allow`).
    pub allowances: Vec<Allowance>,
    /// Things that are allowed but deserve attention (a public endpoint); printed by every
    /// command that reads the manifest.
    pub warnings: Vec<Diagnostic>,
    /// The kinds it was validated against, which plans and drift read.
    pub schemas: &'static Schemas,
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    /// Validates manifest text against the kinds in `schemas`; `path` names the file in
    /// diagnostics and anchors relative paths.
    pub fn parse(path: &Path, text: &str, schemas: &'static Schemas) -> Result<Manifest, Diagnostics> {
        let file = path.display().to_string();
        let root = yaml::parse(text).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: file.clone(),
                line: e.pos.line,
                column: e.pos.col,
                code: "yaml",
                message: e.message,
            }])
        })?;
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut cx = Validation::new(file, base, schemas);
        let parsed = cx.manifest(path, &root);
        let positions = parsed.resources.iter().map(|(r, pos)| (r.name.clone(), *pos)).collect();
        let resources = cx.check_references(parsed.resources);
        if !cx.diags.is_empty() {
            cx.diags.sort_by_key(|d| (d.line, d.column));
            return Err(Diagnostics(cx.diags));
        }
        Ok(Manifest {
            path: path.to_path_buf(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            aws: parsed.aws,
            gcp: parsed.gcp,
            state: parsed.state,
            resources,
            signers: parsed.signers,
            ceremony: parsed.ceremony,
            positions,
            allowances: parsed.allowances,
            warnings: cx.warnings,
            schemas,
        })
    }

    pub fn resource(&self, name: &str) -> Option<&ResourceSpec> {
        self.resources.iter().find(|r| r.name == name)
    }

    /// The named signer, or the only one when `name` is None.
    pub fn signer(&self, name: Option<&str>) -> Result<&SignerSpec, NoSigner> {
        let names = || self.signers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
        match name {
            Some(n) => self
                .signers
                .iter()
                .find(|s| s.name == n)
                .ok_or_else(|| NoSigner(format!("no signer named {n:?} in the manifest (signers: {})", names()))),
            None if self.signers.len() == 1 => Ok(&self.signers[0]),
            None if self.signers.is_empty() => Err(NoSigner("the manifest declares no `signers:`".into())),
            None => {
                Err(NoSigner(format!("the manifest declares several signers ({}); choose one with --signer", names())))
            }
        }
    }
}

/// Why [`Manifest::signer`] found no single signer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct NoSigner(String);

struct Parsed {
    aws: AwsConfig,
    gcp: GcpConfig,
    state: StateConfig,
    resources: Vec<(ResourceSpec, Pos)>,
    signers: Vec<SignerSpec>,
    ceremony: Option<CeremonyConfig>,
    allowances: Vec<Allowance>,
}

/// A resource declared inside another's block, with its position and references.
type Child = (ResourceSpec, Pos, Vec<(Reference, Pos)>);

/// Collects diagnostics and references while kinds validate their blocks.
pub struct Validation {
    file: String,
    /// The manifest's directory: relative paths in the manifest are relative to it.
    base: PathBuf,
    diags: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// References seen in the resource currently being validated.
    refs: Vec<(Reference, Pos)>,
    /// Extra resources a kind asked to declare (an IAM role's inline policies).
    children: Vec<Child>,
    /// `provider.gcp.project`, the default for GCP resources.
    gcp_project: Option<String>,
    /// The kinds resources may have.
    schemas: &'static Schemas,
}

impl Validation {
    fn new(file: String, base: PathBuf, schemas: &'static Schemas) -> Self {
        Validation {
            schemas,
            file,
            base,
            diags: Vec::new(),
            warnings: Vec::new(),
            refs: Vec::new(),
            children: Vec::new(),
            gcp_project: None,
        }
    }

    /// `provider.gcp.project`, which GCP resources use when they name no project.
    pub fn gcp_project(&self) -> Option<&str> {
        self.gcp_project.as_deref()
    }

    /// The directory relative paths in the manifest are relative to.
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    /// Records a warning at `pos`: the manifest is valid, but a person should look.
    pub fn warn(&mut self, pos: Pos, code: &'static str, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            column: pos.col,
            code,
            message: message.into(),
        });
    }

    /// Records an error at `pos`.
    pub fn error(&mut self, pos: Pos, code: &'static str, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            column: pos.col,
            code,
            message: message.into(),
        });
    }

    /// Records every `${…}` reference in `text`, reporting malformed ones.
    pub fn scan_refs(&mut self, text: &str, pos: Pos) {
        for r in refs::find(text) {
            match r {
                Ok(r) => self.refs.push((r, pos)),
                Err(msg) => self.error(pos, "reference", msg),
            }
        }
    }

    /// Converts a YAML node to JSON, recording references in every string.
    pub fn json(&mut self, node: &Node) -> Json {
        self.scan_node(node);
        node.to_json()
    }

    fn scan_node(&mut self, node: &Node) {
        match &node.value {
            Value::Scalar { text, .. } => self.scan_refs(text, node.pos),
            Value::Seq(items) => items.iter().for_each(|n| self.scan_node(n)),
            Value::Map(entries) => entries.iter().for_each(|(k, v)| {
                self.scan_refs(k.as_scalar().unwrap_or_default(), k.pos);
                self.scan_node(v);
            }),
        }
    }

    /// Declares an additional resource derived from the one being validated.
    pub fn declare_child(&mut self, name: String, kind: &str, pos: Pos, desired: Attrs, refs: Vec<(Reference, Pos)>) {
        let spec = ResourceSpec {
            name,
            kind: kind.to_owned(),
            desired,
            depends_on: BTreeSet::new(),
            import: None,
            import_at: None,
        };
        self.children.push((spec, pos, refs));
    }

    /// Takes the references recorded so far (used to give a child resource its own).
    pub fn take_refs(&mut self) -> Vec<(Reference, Pos)> {
        std::mem::take(&mut self.refs)
    }

    /// Puts back references taken with [`Validation::take_refs`].
    pub fn restore_refs(&mut self, refs: Vec<(Reference, Pos)>) {
        self.refs.splice(0..0, refs);
    }

    fn manifest(&mut self, path: &Path, root: &Node) -> Parsed {
        let mut parsed = Parsed {
            aws: AwsConfig::default(),
            gcp: GcpConfig::default(),
            state: default_state(path),
            resources: Vec::new(),
            signers: Vec::new(),
            ceremony: None,
            allowances: Vec::new(),
        };
        let Some(mut top) = Block::new(self, root, "manifest") else { return parsed };
        match top.get("version") {
            None => self.error(root.pos, "version", "missing `version: 1` at the top of the manifest"),
            Some(n) if n.as_scalar() == Some("1") => {}
            Some(n) => self.error(
                n.pos,
                "version",
                format!("unsupported manifest version {}; this keyrite reads version {MANIFEST_VERSION}", n.describe()),
            ),
        }
        if let Some(mut provider) = top.block(self, "provider") {
            if let Some(mut aws) = provider.block(self, "aws") {
                parsed.aws.region = aws.string(self, "region");
                parsed.aws.profile = aws.string(self, "profile");
                parsed.aws.endpoint = aws.url(self, "endpoint");
                aws.finish(self);
            }
            if let Some(mut gcp) = provider.block(self, "gcp") {
                let pos = gcp.pos();
                parsed.gcp.project = gcp.string(self, "project");
                if let Some(p) = &parsed.gcp.project
                    && let Err(msg) = check_project_id(p)
                {
                    self.error(pos, "value", format!("{}: {msg}", gcp.field_path("project")));
                }
                parsed.gcp.endpoint = gcp.url(self, "endpoint");
                parsed.gcp.anonymous =
                    gcp.choice(self, "credentials", &["adc", "anonymous"]).as_deref() == Some("anonymous");
                if parsed.gcp.anonymous {
                    self.warn(
                        pos,
                        "credentials",
                        "provider.gcp.credentials: anonymous sends no credentials; only a local stand-in accepts that",
                    );
                }
                gcp.finish(self);
                self.gcp_project = parsed.gcp.project.clone();
            }
            provider.finish(self);
        }
        if let Some(mut state) = top.block(self, "state") {
            if state.has("local") && state.has("s3") {
                self.error(state.pos(), "state", "state: choose one backend, `local` or `s3`");
            }
            if let Some(mut local) = state.block(self, "local") {
                if let Some(p) = local.string(self, "path") {
                    parsed.state = StateConfig::Local { path: relative_to(path, Path::new(&p)) };
                }
                local.finish(self);
            }
            if let Some(mut s3) = state.block(self, "s3") {
                let bucket = s3.required_string(self, "bucket").unwrap_or_default();
                let key = s3.required_string(self, "key").unwrap_or_default();
                let region = s3.string(self, "region");
                let path_style = s3.bool(self, "path_style").unwrap_or(false);
                s3.finish(self);
                parsed.state = StateConfig::S3 { bucket, key, region, path_style };
            }
            state.finish(self);
        }
        self.refs.clear();
        match top.get("resources") {
            None => self.error(root.pos, "resources", "missing `resources:` mapping"),
            Some(node) => parsed.resources = self.resources(node),
        }
        let kinds: BTreeMap<String, String> =
            parsed.resources.iter().map(|(r, _)| (r.name.clone(), r.kind.clone())).collect();
        let slots: BTreeMap<String, Slot> =
            parsed.resources.iter().map(|(r, _)| (r.name.clone(), Slot::of(&r.desired))).collect();
        let mut rotations = Vec::new();
        for (name, pos, block) in top.named_blocks(self, "signers") {
            if let Some((signer, at)) = self.signer(name, pos, block, &kinds, &slots) {
                if let Some(at) = at {
                    rotations.push((signer.name.clone(), at));
                }
                parsed.signers.push(signer);
            }
        }
        self.check_slots(&parsed.resources, &parsed.signers);
        self.check_rotations(&mut parsed.signers, &rotations);
        if let Some(block) = top.block(self, "ceremony") {
            parsed.ceremony = self.ceremony(block, &parsed.state);
        }
        if let Some(block) = top.block(self, "lint") {
            let declared: Vec<(String, Pos)> = parsed.resources.iter().map(|(r, p)| (r.name.clone(), *p)).collect();
            parsed.allowances = self.lint_allowances(block, &declared);
        }
        top.finish(self);
        parsed
    }

    fn endpoint(
        &mut self,
        mut e: Block<'_>,
        pos: Pos,
        path: &str,
        kinds: &BTreeMap<String, String>,
    ) -> Option<Endpoint> {
        let resource = |e: &mut Block<'_>, cx: &mut Validation, key: &str, kind: &str| {
            let name = e.string(cx, key)?;
            if kinds.get(&name).map(String::as_str) != Some(kind) {
                cx.error(
                    pos,
                    "reference",
                    format!("{path}.{key}: {name:?} is not an {kind} resource in this manifest"),
                );
            }
            Some(name)
        };
        let endpoint = if let Some(url) = e.url(self, "url") {
            let google = e.bool(self, "google_id_token").unwrap_or(false);
            let audience = e.string(self, "audience");
            let auth = match (e.string(self, "bearer_token_env"), google) {
                (Some(_), true) => {
                    self.error(
                        pos,
                        "value",
                        format!("{path}: choose `bearer_token_env` or `google_id_token`, not both"),
                    );
                    EndpointAuth::None
                }
                (Some(var), false) => EndpointAuth::BearerEnv(var),
                (None, true) => EndpointAuth::GoogleIdToken { audience: audience.unwrap_or_else(|| origin(&url)) },
                (None, false) => {
                    if audience.is_some() {
                        self.error(
                            pos,
                            "value",
                            format!("{path}: `audience` is only used with `google_id_token: true`"),
                        );
                    }
                    EndpointAuth::None
                }
            };
            Some(Endpoint::Url { url, auth })
        } else if let Some(r) = resource(&mut e, self, "function_url", "aws_lambda_function_url") {
            Some(Endpoint::FunctionUrl { resource: r })
        } else if let Some(r) = resource(&mut e, self, "api", "aws_api_gateway_rest_api") {
            Some(Endpoint::Api { resource: r })
        } else {
            self.error(pos, "missing", format!("{path}: an endpoint needs one of `url:`, `function_url:` or `api:`"));
            None
        };
        e.finish(self);
        endpoint
    }

    fn signer(
        &mut self,
        name: String,
        pos: Pos,
        mut b: Block<'_>,
        kinds: &BTreeMap<String, String>,
        slots: &BTreeMap<String, Slot>,
    ) -> Option<(SignerSpec, Option<Pos>)> {
        if let Err(msg) = refs::check_name(&name) {
            self.error(pos, "name", msg);
        }
        let key = b.required_string(self, "key").unwrap_or_default();
        if !key.is_empty() && !matches!(kinds.get(&key).map(String::as_str), Some("aws_kms_key" | "gcp_kms_crypto_key"))
        {
            self.error(
                b.pos(),
                "reference",
                format!(
                    "{}: {key:?} is not an aws_kms_key or gcp_kms_crypto_key resource in this manifest",
                    b.field_path("key")
                ),
            );
        }
        let key_slot = slots.get(&key).copied().unwrap_or_default();
        let slot_pos = b.pos_of("slot");
        let slot = match b.choice(self, "slot", &["operational", "recovery"]).as_deref() {
            Some("recovery") => Slot::Recovery,
            Some(_) => Slot::Operational,
            None => key_slot,
        };
        if slot != key_slot && kinds.contains_key(&key) {
            self.error(
                slot_pos,
                "slot",
                format!(
                    "{}: the signer is {} but its key {key} is {}; a signer's slot is its key's",
                    b.field_path("slot"),
                    slot.as_str(),
                    key_slot.as_str()
                ),
            );
        }
        let mode_pos = b.has("mode").then(|| b.pos_of("mode"));
        let mode = match b.choice(self, "mode", &["eip191", "digest"]).as_deref() {
            Some("digest") => SigningMode::Digest,
            _ => SigningMode::Eip191,
        };
        let gate = self.signer_gate(&mut b, slot, kinds.get(&key).map(String::as_str), mode_pos);
        let mut endpoints = Vec::new();
        let endpoints_pos = b.pos_of("endpoints");
        if let Some(node) = b.get("endpoints") {
            let path = b.field_path("endpoints");
            if slot == Slot::Recovery {
                self.error(
                    endpoints_pos,
                    "slot",
                    format!(
                        "{path}: {key} is a recovery key, and recovery keys have no endpoints: sign with \
                         `keyrite sign` as one of the key's recovery signers"
                    ),
                );
            }
            match &node.value {
                Value::Seq(items) => {
                    for item in items {
                        if let Some(e) = Block::new(self, item, &path)
                            && let Some(endpoint) = self.endpoint(e, item.pos, &path, kinds)
                        {
                            endpoints.push(endpoint);
                        }
                    }
                }
                _ => self.error(node.pos, "type", format!("{path}: expected a list, found {}", node.describe())),
            }
        }
        let rotation = self.rotation(&mut b, slot);
        b.finish(self);
        self.refs.clear();
        let (rotation, at) = rotation.map_or((None, None), |(r, at)| (Some(r), Some(at)));
        let mode = if gate.is_some() { SigningMode::Digest } else { mode };
        Some((SignerSpec { name, key, slot, mode, endpoints, rotation, gate }, at))
    }

    fn resources(&mut self, node: &Node) -> Vec<(ResourceSpec, Pos)> {
        let Value::Map(entries) = &node.value else {
            self.error(
                node.pos,
                "type",
                format!("`resources` must be a mapping of name → resource, found {}", node.describe()),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, body) in entries {
            let name = key.as_scalar().unwrap_or_default();
            if let Err(msg) = refs::check_name(name) {
                self.error(key.pos, "name", msg);
                continue;
            }
            let mut imported_role = None;
            if let Some(spec) = self.resource(name, body) {
                if spec.import.is_some() {
                    imported_role = spec.desired.get("name").and_then(Json::as_str).map(str::to_owned);
                }
                out.push((spec, key.pos));
            }
            for (mut child, pos, refs) in std::mem::take(&mut self.children) {
                // An imported role brings the inline policies it declares, where they exist.
                if let (Some(role), Some(policy)) = (&imported_role, child.desired.get("name").and_then(Json::as_str)) {
                    child.import = Some(format!("{role}:{policy}"));
                }
                child.depends_on = refs.iter().map(|(r, _)| r.resource.clone()).filter(|r| r != "aws").collect();
                child.desired.insert(REFS_KEY.into(), refs_json(&refs));
                out.push((child, pos));
            }
        }
        out
    }

    fn resource(&mut self, name: &str, body: &Node) -> Option<ResourceSpec> {
        let path = format!("resources.{name}");
        let mut block = Block::new(self, body, &path)?;
        let Some(kind_node) = block.get("type") else {
            self.error(
                body.pos,
                "type",
                format!("{path}: missing `type` (one of {})", self.schemas.names().join(", ")),
            );
            return None;
        };
        let type_name = kind_node.as_scalar().unwrap_or_default();
        let Some(kind) = self.schemas.get(type_name) else {
            let message = match self.schemas.feature_left_out(type_name) {
                Some(feature) => format!(
                    "{path}.type: `{type_name}` is a kind of a cloud this keyrite was built without; \
                     build it with `--features {feature}` (on by default)"
                ),
                None => format!(
                    "{path}.type: unknown resource type {:?}; expected one of {}",
                    type_name,
                    self.schemas.names().join(", ")
                ),
            };
            self.error(kind_node.pos, "type", message);
            return None;
        };
        if let Some(parent) = kind.declared_under() {
            self.error(
                kind_node.pos,
                "type",
                format!("{path}.type: `{type_name}` is declared under {parent}, not as a resource of its own"),
            );
            return None;
        }
        self.refs.clear();
        let import_pos = block.pos_of("import");
        let import = block.string(self, "import");
        if let Some(id) = &import
            && let Err(msg) = kind.check_import(id)
        {
            self.error(import_pos, "import", format!("{path}.import: {msg}"));
        }
        let mut desired = kind.desired(name, &mut block, self);
        block.finish(self);
        let refs = self.take_refs();
        let depends_on = refs.iter().map(|(r, _)| r.resource.clone()).filter(|r| r != "aws").collect();
        desired.insert(REFS_KEY.into(), refs_json(&refs));
        let import_at = import.as_ref().map(|_| import_pos);
        Some(ResourceSpec { name: name.to_owned(), kind: type_name.to_owned(), desired, depends_on, import, import_at })
    }

    /// Checks every reference's target and attribute, finds cycles, and orders resources.
    fn check_references(&mut self, resources: Vec<(ResourceSpec, Pos)>) -> Vec<ResourceSpec> {
        let kinds: BTreeMap<&str, &str> = resources.iter().map(|(r, _)| (r.name.as_str(), r.kind.as_str())).collect();
        let schemas = self.schemas;
        for (spec, _) in &resources {
            for (reference, pos) in refs_from_json(&spec.desired) {
                if let Err(msg) =
                    reference.check(&spec.name, |n| kinds.get(n).and_then(|k| schemas.get(k)).map(|k| k.outputs()))
                {
                    self.error(pos, "reference", msg);
                }
            }
        }
        // A key's IAM binding speaks for the key's whole policy: two would undo each other.
        let mut bound: BTreeMap<&str, &str> = BTreeMap::new();
        for (spec, pos) in resources.iter().filter(|(r, _)| r.kind == "gcp_kms_crypto_key_iam_binding") {
            let key = spec.desired.get("crypto_key").and_then(Json::as_str).unwrap_or_default();
            if let Some(first) = bound.insert(key, &spec.name) {
                self.error(
                    *pos,
                    "duplicate",
                    format!(
                        "resources.{}: {first} already binds {key}; a key has one gcp_kms_crypto_key_iam_binding, \
                         which speaks for its whole IAM policy (grant further roles under its `other_bindings`)",
                        spec.name
                    ),
                );
            }
        }
        let mut order = Vec::new();
        match refs::topological_order(
            &resources.iter().map(|(r, _)| (r.name.clone(), r.depends_on.clone())).collect::<Vec<_>>(),
        ) {
            Ok(names) => {
                let mut by_name: BTreeMap<String, ResourceSpec> =
                    resources.into_iter().map(|(r, _)| (r.name.clone(), r)).collect();
                order = names.into_iter().filter_map(|n| by_name.remove(&n)).collect();
            }
            Err(cycle) => {
                let pos = resources.iter().find(|(r, _)| r.name == cycle[0]).map(|(_, p)| *p).unwrap_or_default();
                self.error(pos, "cycle", format!("dependency cycle: {}", cycle.join(" → ")));
            }
        }
        order
    }
}

/// Desired attributes carry their references (with positions) under this key so that the
/// checker can point at the exact line; it is stripped before anything is diffed or stored.
pub const REFS_KEY: &str = "__refs";

fn refs_json(refs: &[(Reference, Pos)]) -> Json {
    Json::Array(refs.iter().map(|(r, p)| serde_json::json!([r.resource, r.attribute, p.line, p.col])).collect())
}

fn refs_from_json(attrs: &Attrs) -> Vec<(Reference, Pos)> {
    let Some(Json::Array(items)) = attrs.get(REFS_KEY) else { return Vec::new() };
    items
        .iter()
        .filter_map(|i| {
            let r = Reference { resource: i.get(0)?.as_str()?.to_owned(), attribute: i.get(1)?.as_str()?.to_owned() };
            let pos = Pos { line: i.get(2)?.as_u64()? as usize, col: i.get(3)?.as_u64()? as usize };
            Some((r, pos))
        })
        .collect()
}

/// The state file's default place: beside the manifest, `<stem>.state.json`.
pub fn default_state(manifest: &Path) -> StateConfig {
    let stem = manifest.file_stem().and_then(|s| s.to_str()).unwrap_or("keyrite");
    StateConfig::Local { path: manifest.with_file_name(format!("{stem}.state.json")) }
}

fn relative_to(manifest: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { manifest.parent().unwrap_or(Path::new(".")).join(p) }
}

/// A mapping being validated: hands out fields by name and reports the ones nobody asked for.
pub struct Block<'a> {
    node: &'a Node,
    entries: &'a [(Node, Node)],
    used: Vec<bool>,
    /// Every field name a kind asked for, present or not: the vocabulary for "did you mean".
    asked: Vec<String>,
    path: String,
}

impl<'a> Block<'a> {
    /// Wraps a mapping node; reports and returns None for anything else.
    pub fn new(cx: &mut Validation, node: &'a Node, path: &str) -> Option<Block<'a>> {
        match &node.value {
            Value::Map(entries) => Some(Block {
                node,
                entries,
                used: vec![false; entries.len()],
                asked: Vec::new(),
                path: path.to_owned(),
            }),
            _ => {
                cx.error(node.pos, "type", format!("{path}: expected a mapping, found {}", node.describe()));
                None
            }
        }
    }

    /// The mapping's own position.
    pub fn pos(&self) -> Pos {
        self.node.pos
    }

    /// The dotted path of a field, for messages.
    pub fn field_path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// The names of the fields present, in order (for mappings whose keys are data).
    pub fn keys(&self) -> Vec<String> {
        self.entries.iter().filter_map(|(k, _)| k.as_scalar()).map(str::to_owned).collect()
    }

    /// True if the field is present (without consuming it).
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.as_scalar() == Some(key))
    }

    /// The raw node of a field, marking it used. Null values count as absent.
    /// Where `key`'s value is, or the block's own position when it is absent: where an error
    /// about that field should point.
    pub fn pos_of(&mut self, key: &str) -> Pos {
        self.get(key).map(|n| n.pos).unwrap_or(self.pos())
    }

    pub fn get(&mut self, key: &str) -> Option<&'a Node> {
        self.asked.push(key.to_owned());
        let i = self.entries.iter().position(|(k, _)| k.as_scalar() == Some(key))?;
        self.used[i] = true;
        let node = &self.entries[i].1;
        (!node.is_null()).then_some(node)
    }

    /// A string field; references inside are recorded.
    pub fn string(&mut self, cx: &mut Validation, key: &str) -> Option<String> {
        let node = self.get(key)?;
        match &node.value {
            Value::Scalar { text, .. } => {
                cx.scan_refs(text, node.pos);
                Some(text.clone())
            }
            _ => {
                cx.error(
                    node.pos,
                    "type",
                    format!("{}: expected a string, found {}", self.field_path(key), node.describe()),
                );
                None
            }
        }
    }

    /// A string field that must be present.
    pub fn required_string(&mut self, cx: &mut Validation, key: &str) -> Option<String> {
        if !self.has(key) {
            cx.error(self.node.pos, "missing", format!("{}: missing required field `{key}`", self.path));
            return None;
        }
        self.string(cx, key)
    }

    /// A string restricted to a fixed set of values.
    pub fn choice(&mut self, cx: &mut Validation, key: &str, allowed: &[&str]) -> Option<String> {
        let node = self.get(key)?;
        match node.as_scalar() {
            Some(v) if allowed.contains(&v) => Some(v.to_owned()),
            _ => {
                cx.error(
                    node.pos,
                    "value",
                    format!(
                        "{}: expected one of {}, found {}",
                        self.field_path(key),
                        allowed.join(", "),
                        node.describe()
                    ),
                );
                None
            }
        }
    }

    /// An http(s) URL field.
    pub fn url(&mut self, cx: &mut Validation, key: &str) -> Option<String> {
        let pos = self.entries.iter().find(|(k, _)| k.as_scalar() == Some(key)).map(|(_, v)| v.pos)?;
        let url = self.string(cx, key)?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            cx.error(
                pos,
                "value",
                format!("{}: expected an http:// or https:// URL, found {url:?}", self.field_path(key)),
            );
            return None;
        }
        Some(url)
    }

    /// A boolean field (`true`/`false` only; `yes`/`on` are not booleans in YAML 1.2).
    pub fn bool(&mut self, cx: &mut Validation, key: &str) -> Option<bool> {
        let node = self.get(key)?;
        match &node.value {
            Value::Scalar { text, quoted: false } if yaml::plain_bool(text).is_some() => yaml::plain_bool(text),
            _ => {
                cx.error(
                    node.pos,
                    "type",
                    format!("{}: expected true or false, found {}", self.field_path(key), node.describe()),
                );
                None
            }
        }
    }

    /// An integer field within `range`.
    pub fn integer(&mut self, cx: &mut Validation, key: &str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        let node = self.get(key)?;
        let parsed = match &node.value {
            Value::Scalar { text, quoted: false } => text.parse::<i64>().ok(),
            _ => None,
        };
        match parsed {
            Some(n) if range.contains(&n) => Some(n),
            Some(n) => {
                cx.error(
                    node.pos,
                    "range",
                    format!("{}: {n} is out of range ({}–{})", self.field_path(key), range.start(), range.end()),
                );
                None
            }
            None => {
                cx.error(
                    node.pos,
                    "type",
                    format!("{}: expected an integer, found {}", self.field_path(key), node.describe()),
                );
                None
            }
        }
    }

    /// A list of strings; a single string is accepted as a one-element list.
    pub fn string_list(&mut self, cx: &mut Validation, key: &str) -> Option<Vec<String>> {
        let node = self.get(key)?;
        let path = self.field_path(key);
        let items: Vec<&Node> = match &node.value {
            Value::Seq(items) => items.iter().collect(),
            Value::Scalar { .. } => vec![node],
            Value::Map(_) => {
                cx.error(node.pos, "type", format!("{path}: expected a list of strings, found a mapping"));
                return None;
            }
        };
        let mut out = Vec::new();
        for item in items {
            match item.as_scalar() {
                Some(s) if !item.is_null() => {
                    cx.scan_refs(s, item.pos);
                    out.push(s.to_owned());
                }
                _ => {
                    cx.error(item.pos, "type", format!("{path}: list items must be strings, found {}", item.describe()))
                }
            }
        }
        Some(out)
    }

    /// A mapping of string → string (tags, environment).
    pub fn string_map(&mut self, cx: &mut Validation, key: &str) -> Option<BTreeMap<String, String>> {
        let node = self.get(key)?;
        let path = self.field_path(key);
        let Value::Map(entries) = &node.value else {
            cx.error(node.pos, "type", format!("{path}: expected a mapping of strings, found {}", node.describe()));
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let key = k.as_scalar().unwrap_or_default().to_owned();
            match &v.value {
                Value::Scalar { text, .. } => {
                    cx.scan_refs(text, v.pos);
                    out.insert(key, if v.is_null() { String::new() } else { text.clone() });
                }
                _ => cx.error(v.pos, "type", format!("{path}.{key}: expected a string, found {}", v.describe())),
            }
        }
        Some(out)
    }

    /// A nested mapping.
    pub fn block(&mut self, cx: &mut Validation, key: &str) -> Option<Block<'a>> {
        let path = self.field_path(key);
        let node = self.get(key)?;
        Block::new(cx, node, &path)
    }

    /// The entries of a nested mapping as (name, position, block) triples.
    pub fn named_blocks(&mut self, cx: &mut Validation, key: &str) -> Vec<(String, Pos, Block<'a>)> {
        let path = self.field_path(key);
        let Some(node) = self.get(key) else { return Vec::new() };
        let Value::Map(entries) = &node.value else {
            cx.error(node.pos, "type", format!("{path}: expected a mapping, found {}", node.describe()));
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|(k, v)| {
                let name = k.as_scalar().unwrap_or_default().to_owned();
                let block = Block::new(cx, v, &format!("{path}.{name}"))?;
                Some((name, k.pos, block))
            })
            .collect()
    }

    /// Reports every field that was present but never asked for.
    pub fn finish(self, cx: &mut Validation) {
        for ((k, _), used) in self.entries.iter().zip(&self.used) {
            if !used {
                let key = k.as_scalar().unwrap_or_default();
                let hint = self
                    .asked
                    .iter()
                    .filter(|a| !self.has_used(a))
                    .find(|a| edit_distance(a, key) <= 2)
                    .map(|a| format!(" (did you mean `{a}`?)"))
                    .unwrap_or_default();
                cx.error(k.pos, "unknown-field", format!("{}: unknown field `{key}`{hint}", self.path));
            }
        }
    }

    fn has_used(&self, key: &str) -> bool {
        self.entries.iter().zip(&self.used).any(|((k, _), used)| *used && k.as_scalar() == Some(key))
    }
}

/// Levenshtein distance, for "did you mean" hints on short field names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
