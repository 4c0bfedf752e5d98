//! State: what keyrite last applied, so that drift (live vs last applied) can be told apart
//! from pending changes (live vs manifest).
//!
//! A state has a `lineage` (a UUID fixed when it is first written) and a `serial` that grows
//! with every write; a saved plan records both and is refused when either moved. The local
//! backend writes atomically (temp file, fsync, rename, fsync of the directory) after every
//! successful change, so an apply interrupted at any point loses at most the change in
//! flight. Writers hold an exclusive OS lock on `<state>.lock` (flock on Unix): the kernel
//! drops it when the holder dies, so `kill -9` never leaves a stale lock behind, and a second
//! writer fails at once with the holder's identity read from the lock file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::Attrs;

/// The state file format this build writes and reads.
pub const STATE_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("state {path} is not valid keyrite state: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("state {path} has format version {found}; this keyrite reads version {STATE_FORMAT}")]
    Format { path: PathBuf, found: u32 },
    #[error("cannot write state {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("state {path} is locked by {holder}\n  (if that process is gone, run `keyrite force-unlock {id}`)")]
    Locked { path: PathBuf, holder: String, id: String },
    #[error("cannot lock state {path}: {source}")]
    Lock { path: PathBuf, source: std::io::Error },
    #[error("state {location}: {message}")]
    Remote { location: String, message: String },
    #[error(
        "state {location} was written by someone else since this run read it; nothing was overwritten. Run the command again."
    )]
    Conflict { location: String },
}

/// One managed resource as last applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    #[serde(rename = "type")]
    pub kind: String,
    /// The cloud identifier keyrite uses to find it (key id, alias name, role name…).
    pub id: String,
    /// The attributes as applied (references resolved).
    pub attrs: Attrs,
    /// The resource's outputs (ARN, key id, public key…).
    pub outputs: Attrs,
    pub depends_on: BTreeSet<String>,
    /// When this entry was last written (RFC 3339, UTC).
    pub updated_at: String,
}

/// A create that was started but not yet recorded. Written (and fsync'd) before the create
/// call, cleared when its result is recorded: after a crash it tells the next run to look
/// for the resource before creating it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    #[serde(rename = "type")]
    pub kind: String,
    /// The id already recorded for the address (a replacement), to tell old from new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacing: Option<String>,
    pub started_at: String,
}

/// The whole state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format_version: u32,
    pub lineage: String,
    pub serial: u64,
    pub keyrite_version: String,
    pub resources: BTreeMap<String, ResourceState>,
    /// Creates in flight, by address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, Intent>,
    /// The last ceremony record of this lineage, once there has been one: the head the next
    /// record chains to. A state with a head only takes approved ceremony plans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceremony: Option<ChainHead>,
    /// Each key's generation, where it is past the first (a rotated key's address → n).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub generations: BTreeMap<String, u32>,
    /// Every rotation, oldest first: the old keys, and where each rotation is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotations: Vec<crate::rotation::Rotation>,
}

/// The newest ceremony record of a lineage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub sequence: u64,
    pub record_id: String,
    /// SHA-256 of the record file's bytes.
    pub sha256: String,
}

impl State {
    /// A new, empty state with a fresh lineage.
    pub fn new(lineage: Option<String>) -> State {
        State {
            format_version: STATE_FORMAT,
            lineage: lineage.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            serial: 0,
            keyrite_version: env!("CARGO_PKG_VERSION").into(),
            resources: BTreeMap::new(),
            pending: BTreeMap::new(),
            ceremony: None,
            generations: BTreeMap::new(),
            rotations: Vec::new(),
        }
    }
}

/// The current time as RFC 3339.
pub fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Who holds a lock, as written into the lock file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub id: String,
    pub operation: String,
    pub who: String,
    pub pid: u32,
    pub created: String,
}

impl LockInfo {
    /// A new lock for `operation`, held by this process and user, from now.
    pub fn new(operation: &str) -> LockInfo {
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            operation: operation.to_owned(),
            who: whoami(),
            pid: std::process::id(),
            created: now(),
        }
    }
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {}, `keyrite {}`, since {}, lock id {})",
            self.who, self.pid, self.operation, self.created, self.id
        )
    }
}

/// A state file on local disk.
#[derive(Clone, Debug)]
pub struct LocalBackend {
    path: PathBuf,
}

/// Holds the state lock until dropped.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    pub info: LockInfo,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

impl LocalBackend {
    pub fn new(path: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    /// Reads the state; `None` if there is none yet.
    pub fn read(&self) -> Result<Option<State>, StateError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path: self.path.clone(), source }),
        };
        let state: State =
            serde_json::from_str(&text).map_err(|source| StateError::Corrupt { path: self.path.clone(), source })?;
        if state.format_version != STATE_FORMAT {
            return Err(StateError::Format { path: self.path.clone(), found: state.format_version });
        }
        Ok(Some(state))
    }

    /// Writes the state atomically: a reader sees the old file or the new one, never a mix.
    pub fn write(&self, state: &State) -> Result<(), StateError> {
        let err = |source| StateError::Write { path: self.path.clone(), source };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let mut body = serde_json::to_vec_pretty(state).map_err(|e| err(std::io::Error::other(e)))?;
        body.push(b'\n');
        let mut file = File::create(&tmp).map_err(err)?;
        file.write_all(&body).map_err(err)?;
        file.sync_all().map_err(err)?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(err)?;
        Ok(())
    }

    /// Takes the exclusive write lock, or fails at once naming the holder.
    pub fn lock(&self, operation: &str) -> Result<LockGuard, StateError> {
        let path = self.lock_path();
        let lock_err = |source| StateError::Lock { path: path.clone(), source };
        let mut file =
            OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                // The holder writes its record right after taking the lock; give it a moment.
                let mut holder: Option<LockInfo> = None;
                for _ in 0..25 {
                    let mut text = String::new();
                    let _ = file.rewind().and_then(|_| file.read_to_string(&mut text));
                    holder = serde_json::from_str(&text).ok();
                    if holder.is_some() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                return Err(StateError::Locked {
                    path: self.path.clone(),
                    holder: holder
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| "another keyrite process".into()),
                    id: holder.map(|h| h.id).unwrap_or_default(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
        }
        let info = LockInfo::new(operation);
        file.set_len(0).map_err(lock_err)?;
        file.rewind().map_err(lock_err)?;
        file.write_all(serde_json::to_string(&info).unwrap_or_default().as_bytes()).map_err(lock_err)?;
        file.sync_all().map_err(lock_err)?;
        Ok(LockGuard { file, info })
    }

    /// Clears a lock record whose holder is gone. A lock held by a live process cannot be
    /// broken here (the kernel holds it), and saying so is the honest answer.
    pub fn force_unlock(&self, id: &str) -> Result<String, StateError> {
        let path = self.lock_path();
        let lock_err = |source| StateError::Lock { path: path.clone(), source };
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok("no lock file; nothing to unlock".into()),
            Err(e) => return Err(lock_err(e)),
        };
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(lock_err)?;
        let holder: Option<LockInfo> = serde_json::from_str(&text).ok();
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Locked {
                path: self.path.clone(),
                holder: format!(
                    "{} — a live process; stop it instead",
                    holder.as_ref().map(ToString::to_string).unwrap_or_default()
                ),
                id: id.to_owned(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(lock_err(e)),
            Ok(()) => {
                file.set_len(0).map_err(lock_err)?;
                Ok(match holder {
                    Some(h) if h.id == id => format!("cleared stale lock {id} left by {}", h.who),
                    Some(h) => {
                        format!("the lock record names id {}, not {id}; its holder is gone, record cleared", h.id)
                    }
                    None => "no lock is held".into(),
                })
            }
        }
    }
}

pub fn whoami() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path().join("k.state.json"));
        assert_eq!(backend.read().unwrap(), None);
        let mut state = State::new(None);
        state.serial = 7;
        backend.write(&state).unwrap();
        assert_eq!(backend.read().unwrap(), Some(state));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("k.state.json")]);
    }

    #[test]
    fn a_second_lock_fails_naming_the_holder_and_is_free_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path().join("k.state.json"));
        let guard = backend.lock("apply").unwrap();
        let err = backend.lock("apply").unwrap_err().to_string();
        assert!(err.contains("is locked by"), "{err}");
        assert!(err.contains(&guard.info.id), "{err}");
        assert!(err.contains("keyrite apply"), "{err}");
        drop(guard);
        backend.lock("destroy").unwrap();
    }

    #[test]
    fn corrupt_and_future_state_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.state.json");
        std::fs::write(&path, "{not json").unwrap();
        assert!(LocalBackend::new(&path).read().unwrap_err().to_string().contains("not valid keyrite state"));
        let mut state = serde_json::to_value(State::new(None)).unwrap();
        state["format_version"] = 99.into();
        std::fs::write(&path, state.to_string()).unwrap();
        assert!(LocalBackend::new(&path).read().unwrap_err().to_string().contains("format version 99"));
    }
}
