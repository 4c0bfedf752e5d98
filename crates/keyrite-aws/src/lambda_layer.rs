//! `aws_lambda_layer_version`: a directory published as a Lambda layer, e.g. a pinned AWS SDK
//! for the signer function (`nodejs/node_modules/@aws-sdk/client-kms`).
//!
//! Layer versions are immutable: different content is a new version, so a content change is
//! a replacement (publish the new version, delete the old). The content is packaged
//! deterministically, so its SHA-256 identifies it.

use std::path::Path;

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{LayerVersionContentInput, Runtime};
use serde_json::{Value as Json, json};

use super::{Aws, api_error, unless_gone};
use crate::manifest::{Attrs, Block, Validation};
use crate::package;
use crate::provider::Schema;
use crate::provider::{
    AttrSpec, Created, DeleteOptions, Deleted, Kind, Live, Occupant, Op, ProviderError, Result, str_attr,
};

pub struct LambdaLayer;

const ATTRS: &[AttrSpec] = &[
    AttrSpec::replace("name"),
    AttrSpec::replace("content_sha256"),
    AttrSpec::replace("runtimes"),
    AttrSpec::state_only("source"),
    AttrSpec::state_only("prefix"),
    AttrSpec::state_only("include"),
];

impl Schema for LambdaLayer {
    fn name(&self) -> &'static str {
        "aws_lambda_layer_version"
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["arn", "version"]
    }

    fn check_import(&self, _: &str) -> std::result::Result<(), String> {
        Err("layer versions are not imported: keyrite publishes its own from `source:`, and a layer carries no \
             ownership tags"
            .into())
    }

    fn permissions(&self, op: Op) -> &'static [&'static str] {
        match op {
            Op::Read => &["lambda:GetLayerVersion", "lambda:ListLayerVersions"],
            Op::Create => &["lambda:PublishLayerVersion"],
            Op::Update => &[],
            Op::Delete => &["lambda:DeleteLayerVersion"],
        }
    }

    fn desired(&self, _name: &str, b: &mut Block<'_>, cx: &mut Validation) -> Attrs {
        let mut a = Attrs::new();
        let pos = b.pos();
        a.insert("name".into(), json!(b.required_string(cx, "name").unwrap_or_default()));
        let source = b.required_string(cx, "source").unwrap_or_default();
        let prefix = b.string(cx, "prefix").unwrap_or_default();
        let include = b.string_list(cx, "include").unwrap_or_default();
        let mut runtimes = b.string_list(cx, "runtimes").unwrap_or_else(|| vec!["nodejs20.x".into()]);
        runtimes.sort();
        let source = cx.base_dir().join(source);
        if !source.as_os_str().is_empty() {
            match content(&source, &prefix, &include) {
                Ok(p) => {
                    a.insert("content_sha256".into(), json!(p.sha256));
                }
                Err(e) => cx.error(pos, "source", format!("{}: {e}", b.field_path("source"))),
            }
        }
        a.insert("runtimes".into(), json!(runtimes));
        a.insert("source".into(), json!(source.display().to_string()));
        a.insert("prefix".into(), json!(prefix));
        a.insert("include".into(), json!(include));
        a
    }
}

#[async_trait]
impl Kind<Aws> for LambdaLayer {
    /// `lambda:GetLayerVersionByArn`.
    async fn read(&self, cloud: &Aws, id: &str, _: &Attrs) -> Result<Option<Live>> {
        let Some(out) = unless_gone(
            cloud
                .lambda
                .get_layer_version_by_arn()
                .arn(id)
                .send()
                .await
                .map_err(|e| api_error("lambda:GetLayerVersionByArn", e)),
        )?
        else {
            return Ok(None);
        };
        let mut runtimes: Vec<&str> = out.compatible_runtimes().iter().map(|r| r.as_str()).collect();
        runtimes.sort();
        let mut live = Live::default();
        live.attrs.insert("name".into(), json!(layer_name(out.layer_arn().unwrap_or_default())));
        live.attrs
            .insert("content_sha256".into(), json!(out.content().and_then(|c| c.code_sha256()).unwrap_or_default()));
        live.attrs.insert("runtimes".into(), json!(runtimes));
        live.outputs = outputs(id, out.version());
        Ok(Some(live))
    }

    /// `lambda:ListLayerVersions`. Layers carry no tags, so whose versions a name holds
    /// cannot be told: any existing version makes the name someone else's, since publishing
    /// would add a version to their layer (and a later replacement would delete ours from it).
    async fn occupant(&self, cloud: &Aws, desired: &Attrs, _: &str) -> Result<Occupant> {
        let name = str_attr(desired, "name");
        let out = cloud
            .lambda
            .list_layer_versions()
            .layer_name(name)
            .send()
            .await
            .map_err(|e| api_error("lambda:ListLayerVersions", e));
        let Some(out) = unless_gone(out)? else { return Ok(Occupant::Free) };
        let Some(latest) = out.layer_versions().first().and_then(|v| v.layer_version_arn()) else {
            return Ok(Occupant::Free);
        };
        let n = out.layer_versions().len();
        let what = format!(
            "layer {name}, with {n} version{} (latest {latest}) that this state did not publish",
            if n == 1 { "" } else { "s" }
        );
        Ok(Occupant::Foreign { id: name.to_owned(), what })
    }

    /// `lambda:PublishLayerVersion`.
    async fn create(&self, cloud: &Aws, desired: &Attrs) -> Result<Created> {
        let include: Vec<String> = desired
            .get("include")
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let zip = content(Path::new(str_attr(desired, "source")), str_attr(desired, "prefix"), &include)
            .map_err(|e| ProviderError::Refused(format!("cannot package the layer: {e}")))?;
        if zip.sha256 != str_attr(desired, "content_sha256") {
            return Err(ProviderError::Refused(format!(
                "{} changed since the plan; plan again",
                str_attr(desired, "source")
            )));
        }
        let runtimes = desired
            .get("runtimes")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(Runtime::from)
            .collect();
        let out = cloud
            .lambda
            .publish_layer_version()
            .layer_name(str_attr(desired, "name"))
            .content(LayerVersionContentInput::builder().zip_file(Blob::new(zip.bytes)).build())
            .set_compatible_runtimes(Some(runtimes))
            .send()
            .await
            .map_err(|e| api_error("lambda:PublishLayerVersion", e))?;
        let arn = out.layer_version_arn().unwrap_or_default().to_owned();
        Ok(Created { outputs: outputs(&arn, out.version()), id: arn })
    }

    /// Layer versions are immutable; every change is a replacement.
    async fn update(&self, _: &Aws, id: &str, _: &Attrs, _: &Attrs, _: &[String]) -> Result<Attrs> {
        Err(ProviderError::Refused(format!("layer version {id} cannot be updated in place")))
    }

    /// `lambda:DeleteLayerVersion`.
    async fn delete(&self, cloud: &Aws, id: &str, prior: &Attrs, _: DeleteOptions) -> Result<Deleted> {
        let version = id.rsplit(':').next().and_then(|v| v.parse::<i64>().ok()).unwrap_or_default();
        unless_gone(
            cloud
                .lambda
                .delete_layer_version()
                .layer_name(str_attr(prior, "name"))
                .version_number(version)
                .send()
                .await
                .map_err(|e| api_error("lambda:DeleteLayerVersion", e)),
        )?;
        Ok(Deleted::Removed)
    }
}

/// The layer's zip: the files of `source` (only the top-level entries in `include`, when
/// given), under `prefix`.
fn content(
    source: &Path,
    prefix: &str,
    include: &[String],
) -> std::result::Result<package::Package, package::PackageError> {
    let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_owned() } else { format!("{prefix}/") };
    let mut files = package::dir_files(source, &prefix)?;
    if !include.is_empty() {
        files.retain(|(path, _)| {
            let rel = &path[prefix.len()..];
            include.iter().any(|i| rel == i || rel.starts_with(&format!("{i}/")))
        });
    }
    package::zip(files)
}

fn layer_name(layer_arn: &str) -> &str {
    layer_arn.rsplit(':').next().unwrap_or_default()
}

fn outputs(arn: &str, version: i64) -> Attrs {
    let mut out = Attrs::new();
    out.insert("arn".into(), json!(arn));
    out.insert("version".into(), json!(version.to_string()));
    out
}
