//! Remote state on S3, with locking and optimistic writes built on S3's conditional
//! requests.
//!
//! - The **lock** is a separate object, `<key>.lock`, created with `If-None-Match: *`: S3
//!   creates it only if it does not exist, so of two concurrent writers exactly one gets
//!   it; the other fails at once and is told who holds it (the object's content). Unlike
//!   the local backend's OS lock, nothing releases it when the holder dies: `keyrite
//!   force-unlock ID` removes it, after checking the id.
//! - **Writes are optimistic**: each write carries `If-Match` with the ETag of the version
//!   last read or written (or `If-None-Match: *` for the first), so a write based on a stale
//!   read fails instead of overwriting someone else's state, even if the lock was broken.
//! - A **versioned bucket** is recommended: every state write is then kept, so a bad apply
//!   can be audited and rolled back.

use std::sync::Mutex;

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use keyrite_core::state::{LockInfo, State, StateError};

/// State stored at `s3://bucket/key`.
#[derive(Debug)]
pub struct S3Backend {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    /// ETag of the state version this process last read or wrote.
    etag: Mutex<Option<String>>,
}

/// Holds the S3 lock until released.
#[derive(Debug)]
pub struct S3Lock {
    pub info: LockInfo,
}

impl S3Backend {
    pub fn new(client: aws_sdk_s3::Client, bucket: &str, key: &str) -> S3Backend {
        S3Backend { client, bucket: bucket.to_owned(), key: key.to_owned(), etag: Mutex::new(None) }
    }

    /// The backend of a manifest's `state: {backend: s3}`, with the credentials and endpoint
    /// of its `provider: aws` settings; the state's own region wins over the provider's.
    pub async fn connect(
        bucket: &str,
        key: &str,
        region: Option<&str>,
        path_style: bool,
        aws: &keyrite_core::manifest::AwsConfig,
    ) -> S3Backend {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(profile) = &aws.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = region.or(aws.region.as_deref()) {
            loader = loader.region(aws_config::Region::new(region.to_owned()));
        }
        if let Some(endpoint) = &aws.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        // Local emulators serve buckets by path, not by virtual host.
        let path_style = path_style || sdk.endpoint_url().is_some();
        let client =
            aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(path_style).build());
        S3Backend::new(client, bucket, key)
    }

    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    fn lock_key(&self) -> String {
        format!("{}.lock", self.key)
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> StateError {
        StateError::Remote { location: self.describe(), message: format!("{what}: {e}") }
    }

    /// `s3:GetObject`; `None` when there is no state yet.
    pub async fn read(&self) -> Result<Option<State>, StateError> {
        let Some((bytes, etag)) = self.get(&self.key).await? else {
            *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return Ok(None);
        };
        let state: State = serde_json::from_slice(&bytes)
            .map_err(|source| StateError::Corrupt { path: self.describe().into(), source })?;
        if state.format_version != keyrite_core::state::STATE_FORMAT {
            return Err(StateError::Format { path: self.describe().into(), found: state.format_version });
        }
        *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = etag;
        Ok(Some(state))
    }

    /// `s3:PutObject` conditional on the version last seen.
    pub async fn write(&self, state: &State) -> Result<(), StateError> {
        let mut body = serde_json::to_vec_pretty(state).map_err(|e| self.err("serialise", e))?;
        body.push(b'\n');
        let seen = self.etag.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        put = match &seen {
            Some(etag) => put.if_match(etag),
            None => put.if_none_match("*"),
        };
        match put.send().await {
            Ok(out) => {
                *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = out.e_tag().map(str::to_owned);
                Ok(())
            }
            Err(e)
                if e.code() == Some("PreconditionFailed")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 412) =>
            {
                Err(StateError::Conflict { location: self.describe() })
            }
            Err(e) => Err(self.err("PutObject", aws_smithy_types::error::display::DisplayErrorContext(&e))),
        }
    }

    /// `s3:PutObject` with `If-None-Match: *` on the lock object.
    pub async fn lock(&self, operation: &str) -> Result<S3Lock, StateError> {
        let info = LockInfo::new(operation);
        let body = serde_json::to_vec(&info).map_err(|e| self.err("serialise", e))?;
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.lock_key())
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await;
        match put {
            Ok(_) => Ok(S3Lock { info }),
            Err(e)
                if e.code() == Some("PreconditionFailed")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 412) =>
            {
                let holder = self.holder().await?;
                Err(StateError::Locked {
                    path: self.describe().into(),
                    holder: holder
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| "another keyrite process".into()),
                    id: holder.map(|h| h.id).unwrap_or_default(),
                })
            }
            Err(e) => Err(self.err("PutObject (lock)", aws_smithy_types::error::display::DisplayErrorContext(&e))),
        }
    }

    /// `s3:GetObject` + `s3:DeleteObject` of the lock object, if it is still ours.
    pub async fn unlock(&self, lock: &S3Lock) -> Result<(), StateError> {
        match self.holder().await? {
            Some(h) if h.id == lock.info.id => {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(self.lock_key())
                    .send()
                    .await
                    .map_err(|e| self.err("DeleteObject (lock)", e))?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Removes the lock object if it carries `id`.
    pub async fn force_unlock(&self, id: &str) -> Result<String, StateError> {
        match self.holder().await? {
            None => Ok("no lock is held".into()),
            Some(h) if h.id == id => {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(self.lock_key())
                    .send()
                    .await
                    .map_err(|e| self.err("DeleteObject (lock)", e))?;
                Ok(format!("removed lock {id} held by {}", h.who))
            }
            Some(h) => Err(StateError::Locked {
                path: self.describe().into(),
                holder: format!("{h} — not lock {id}; nothing removed"),
                id: h.id,
            }),
        }
    }

    async fn holder(&self) -> Result<Option<LockInfo>, StateError> {
        Ok(self.get(&self.lock_key()).await?.and_then(|(bytes, _)| serde_json::from_slice(&bytes).ok()))
    }

    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>, StateError> {
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => {
                let etag = out.e_tag().map(str::to_owned);
                let bytes = out.body.collect().await.map_err(|e| self.err("GetObject body", e))?.into_bytes().to_vec();
                Ok(Some((bytes, etag)))
            }
            Err(e) if e.code() == Some("NoSuchKey") || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                Ok(None)
            }
            Err(e) => Err(self.err("GetObject", aws_smithy_types::error::display::DisplayErrorContext(&e))),
        }
    }
}
