//! Every cloud's resource kinds in one registry: the only place the CLI meets the provider
//! crates (`keyrite-aws`, `keyrite-gcp`).
//!
//! Each kind lives in one file of its provider crate and implements the core's `Schema` (how
//! its manifest block validates into desired attributes, which attributes exist and how
//! they compare) and `Kind<its cloud>` (read, create, update, delete). The core's validator,
//! planner and drift checker read the schemas ([`schemas`]); apply, refresh and import call
//! the operations through [`AnyKind`], which hands each kind its own cloud's clients.

// The provider crates, under the names the rest of this crate uses; each behind its cloud's
// cargo feature (both on by default).
#[cfg(feature = "aws")]
pub use keyrite_aws as aws;
#[cfg(feature = "gcp")]
pub use keyrite_gcp as gcp;

#[cfg(not(any(feature = "aws", feature = "gcp")))]
compile_error!("keyrite needs at least one cloud: build with --features aws, gcp, or both (the default)");

use std::ops::Deref;
use std::sync::{Arc, LazyLock};

#[cfg(feature = "aws")]
use aws::Aws;
#[cfg(feature = "gcp")]
use gcp::Gcp;
// The provider interface and what a kind is without its cloud, from the core.
pub use keyrite_core::provider::*;
pub use keyrite_core::schema::*;

use keyrite_core::manifest::{Attrs, AwsConfig, GcpConfig};

/// Every cloud's clients this build has, and one log of every API call made through them.
#[derive(Debug)]
pub struct Cloud {
    #[cfg(feature = "aws")]
    pub aws: aws::Aws,
    #[cfg(feature = "gcp")]
    pub gcp: gcp::Gcp,
    /// How keyrite proves that a converged apply makes no mutating calls.
    pub calls: Arc<CallLog>,
}

impl Cloud {
    /// Prepares clients from the environment and the manifest's `provider:` settings. Nothing
    /// is sent until a kind needs it, so a manifest for one cloud needs no settings for the
    /// other.
    #[cfg_attr(not(all(feature = "aws", feature = "gcp")), allow(unused_variables))]
    pub async fn connect(aws: &AwsConfig, gcp: &GcpConfig) -> Cloud {
        let calls = Arc::new(CallLog::default());
        Cloud {
            #[cfg(feature = "aws")]
            aws: aws::Aws::connect(aws, calls.clone()).await,
            #[cfg(feature = "gcp")]
            gcp: gcp::Gcp::new(gcp.clone(), calls.clone()),
            calls,
        }
    }
}

/// A kind of either cloud: its schema (through `Deref`), and its cloud operations over
/// [`Cloud`], handed to the kind with its own cloud's clients.
#[derive(Clone, Copy)]
pub enum AnyKind {
    #[cfg(feature = "aws")]
    Aws(&'static dyn Kind<Aws>),
    #[cfg(feature = "gcp")]
    Gcp(&'static dyn Kind<Gcp>),
}

impl Deref for AnyKind {
    type Target = dyn Schema;

    fn deref(&self) -> &(dyn Schema + 'static) {
        match *self {
            #[cfg(feature = "aws")]
            AnyKind::Aws(k) => k,
            #[cfg(feature = "gcp")]
            AnyKind::Gcp(k) => k,
        }
    }
}

impl AnyKind {
    /// The kind's schema, for the core's functions that take one.
    pub fn schema(self) -> &'static dyn Schema {
        match self {
            #[cfg(feature = "aws")]
            AnyKind::Aws(k) => k,
            #[cfg(feature = "gcp")]
            AnyKind::Gcp(k) => k,
        }
    }

    /// See [`Kind::read`].
    pub async fn read(self, cloud: &Cloud, id: &str, reference: &Attrs) -> Result<Option<Live>> {
        match self {
            #[cfg(feature = "aws")]
            AnyKind::Aws(k) => k.read(&cloud.aws, id, reference).await,
            #[cfg(feature = "gcp")]
            AnyKind::Gcp(k) => k.read(&cloud.gcp, id, reference).await,
        }
    }

    /// See [`Kind::create`].
    pub async fn create(self, cloud: &Cloud, desired: &Attrs) -> Result<Created> {
        match self {
            #[cfg(feature = "aws")]
            AnyKind::Aws(k) => k.create(&cloud.aws, desired).await,
            #[cfg(feature = "gcp")]
            AnyKind::Gcp(k) => k.create(&cloud.gcp, desired).await,
        }
    }

    /// See [`Kind::update`].
    pub async fn update(
        self,
        cloud: &Cloud,
        id: &str,
        desired: &Attrs,
        live: &Attrs,
        changed: &[String],
    ) -> Result<Attrs> {
        match self {
            #[cfg(feature = "aws")]
            AnyKind::Aws(k) => k.update(&cloud.aws, id, desired, live, changed).await,
            #[cfg(feature = "gcp")]
            AnyKind::Gcp(k) => k.update(&cloud.gcp, id, desired, live, changed).await,
        }
    }

    /// See [`Kind::delete`].
    pub async fn delete(self, cloud: &Cloud, id: &str, prior: &Attrs, options: DeleteOptions) -> Result<Deleted> {
        match self {
            #[cfg(feature = "aws")]
            AnyKind::Aws(k) => k.delete(&cloud.aws, id, prior, options).await,
            #[cfg(feature = "gcp")]
            AnyKind::Gcp(k) => k.delete(&cloud.gcp, id, prior, options).await,
        }
    }

    /// See [`Kind::adopt`].
    pub async fn adopt(self, cloud: &Cloud, desired: &Attrs, exclude: Option<&str>) -> Result<Option<String>> {
        match self {
            #[cfg(feature = "aws")]
            AnyKind::Aws(k) => k.adopt(&cloud.aws, desired, exclude).await,
            #[cfg(feature = "gcp")]
            AnyKind::Gcp(k) => k.adopt(&cloud.gcp, desired, exclude).await,
        }
    }

    /// See [`Kind::occupant`].
    pub async fn occupant(self, cloud: &Cloud, desired: &Attrs, lineage: &str) -> Result<Occupant> {
        match self {
            #[cfg(feature = "aws")]
            AnyKind::Aws(k) => k.occupant(&cloud.aws, desired, lineage).await,
            #[cfg(feature = "gcp")]
            AnyKind::Gcp(k) => k.occupant(&cloud.gcp, desired, lineage).await,
        }
    }
}

/// Every kind keyrite knows: each provider crate's, in its order. Adding a kind: one file
/// in its provider crate, one line in that crate's `KINDS`.
static KINDS: LazyLock<Vec<AnyKind>> = LazyLock::new(|| {
    let mut kinds: Vec<AnyKind> = Vec::new();
    #[cfg(feature = "aws")]
    kinds.extend(aws::KINDS.iter().map(|k| AnyKind::Aws(*k)));
    #[cfg(feature = "gcp")]
    kinds.extend(gcp::KINDS.iter().map(|k| AnyKind::Gcp(*k)));
    kinds
});

/// The kind with this manifest name.
pub fn kind(name: &str) -> Option<AnyKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// Every state entry in its kind's current shape ([`Kind::upgrade_recorded`]).
pub fn upgrade_recorded(state: &mut crate::state::State) {
    for r in state.resources.values_mut() {
        if let Some(k) = kind(&r.kind) {
            k.upgrade_recorded(&mut r.attrs);
        }
    }
}

/// All kind names, for error messages and docs.
pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name()).collect()
}

/// Every kind's schema, for the core: what manifests are validated against and what plans,
/// drift and lint read.
pub fn schemas() -> &'static Schemas {
    static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| {
        let schemas = Schemas::new(KINDS.iter().map(|k| k.schema()));
        #[cfg(not(feature = "aws"))]
        let schemas = schemas.leaving_out("aws_", "aws");
        #[cfg(not(feature = "gcp"))]
        let schemas = schemas.leaving_out("gcp_", "gcp");
        schemas
    });
    &SCHEMAS
}
