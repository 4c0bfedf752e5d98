//! Where the state lives: the local file of the core's [`LocalBackend`], or an S3 object
//! ([`s3`]). The state itself, its format and its local file are the core's
//! (`keyrite_core::state`), re-exported here.

pub use keyrite_core::state::*;

#[cfg(feature = "aws")]
pub use keyrite_aws::state_s3 as s3;

/// Where the state lives: a local file (default) or an S3 object.
#[derive(Debug)]
pub enum Backend {
    Local(LocalBackend),
    #[cfg(feature = "aws")]
    S3(s3::S3Backend),
}

/// A held state lock; release it with [`Backend::unlock`] (a local lock is also released
/// by the kernel when the process ends).
#[derive(Debug)]
pub enum Lock {
    Local(LockGuard),
    #[cfg(feature = "aws")]
    S3(s3::S3Lock),
}

impl Lock {
    pub fn info(&self) -> &LockInfo {
        match self {
            Lock::Local(g) => &g.info,
            #[cfg(feature = "aws")]
            Lock::S3(l) => &l.info,
        }
    }
}

impl Backend {
    /// A path or `s3://bucket/key`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Backend::Local(b) => b.path().display().to_string(),
            #[cfg(feature = "aws")]
            Backend::S3(b) => b.describe(),
        }
    }

    pub async fn read(&self) -> Result<Option<State>, StateError> {
        match self {
            Backend::Local(b) => b.read(),
            #[cfg(feature = "aws")]
            Backend::S3(b) => b.read().await,
        }
    }

    pub async fn write(&self, state: &State) -> Result<(), StateError> {
        match self {
            Backend::Local(b) => b.write(state),
            #[cfg(feature = "aws")]
            Backend::S3(b) => b.write(state).await,
        }
    }

    pub async fn lock(&self, operation: &str) -> Result<Lock, StateError> {
        match self {
            Backend::Local(b) => b.lock(operation).map(Lock::Local),
            #[cfg(feature = "aws")]
            Backend::S3(b) => b.lock(operation).await.map(Lock::S3),
        }
    }

    pub async fn unlock(&self, lock: Lock) -> Result<(), StateError> {
        match (self, lock) {
            #[cfg(feature = "aws")]
            (Backend::S3(b), Lock::S3(l)) => b.unlock(&l).await,
            _ => Ok(()),
        }
    }

    pub async fn force_unlock(&self, id: &str) -> Result<String, StateError> {
        match self {
            Backend::Local(b) => b.force_unlock(id),
            #[cfg(feature = "aws")]
            Backend::S3(b) => b.force_unlock(id).await,
        }
    }
}
