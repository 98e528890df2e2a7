//! The store lock: one `sync` or `gc` per store at a time (`flock -n` semantics). The holder's
//! host and pid are written into the lock file so a second run can say who holds it — on a
//! store several hosts mount (CephFS, whose flock is cluster-wide), a writer on another node. Taking it is the first
//! write a mutating command makes, so a user who may not write the store learns it here, with
//! whom the store belongs to.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{Access, FlockOperation};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another sync or gc ({holder}) holds {path}; try again when it has finished")]
    Busy { path: PathBuf, holder: String },
    #[error("cannot lock the store {}: {source}: this command writes the store, {hint}", path.display())]
    Denied { path: PathBuf, source: io::Error, hint: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl LockError {
    /// `Denied` (with the store's owner) for a permission error, else `Io`.
    fn from_io(path: &Path, store: &Path, source: io::Error) -> LockError {
        let path = path.to_owned();
        match source.kind() {
            io::ErrorKind::PermissionDenied => LockError::Denied { path, source, hint: who_may_write(store) },
            _ => LockError::Io { path, source },
        }
    }
}

/// `which belongs to root; run it as root`: the end of an error about writing `store`.
pub fn who_may_write(store: &Path) -> String {
    match owner_of(store).as_str() {
        "root" => "which belongs to root; run it as root".to_owned(),
        owner => format!("which belongs to {owner}; run it as {owner} or root"),
    }
}

/// Whether this process may write `store` (or create it: its nearest existing ancestor), by
/// access(2). Only for explaining a failure; the write itself is the real check.
pub fn may_write(store: &Path) -> io::Result<()> {
    let dir = store.ancestors().find(|d| d.exists()).unwrap_or(store);
    Ok(rustix::fs::access(dir, Access::WRITE_OK)?)
}

/// The user owning `dir`, or its nearest existing ancestor (a store not created yet): a name
/// from the user database, else `uid N`.
fn owner_of(dir: &Path) -> String {
    let Some(uid) = dir.ancestors().find_map(|d| std::fs::metadata(d).ok()).map(|m| m.uid()) else {
        return "another user".to_owned();
    };
    user_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// The login name of `uid` (getpwuid_r: the thread-safe lookup, NSS included).
fn user_name(uid: u32) -> Option<String> {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(user) => user.map(|u| u.name),
        Err(e) => {
            tracing::debug!(uid, error = %e, "looking up the user name failed");
            None
        }
    }
}

/// This host's name (uname's nodename), as lock files and messages name the writer's host.
pub fn host_name() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

/// `pid N on host H` from a lock file's `N H` (older versions wrote the pid alone).
fn holder(text: &str) -> String {
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some(pid), Some(host)) => format!("pid {pid} on host {host}"),
        (Some(pid), None) => format!("pid {pid}"),
        _ => "pid unknown".to_owned(),
    }
}

/// Held for the duration of a sync/gc; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    pub fn acquire(store: &Path) -> Result<StoreLock, LockError> {
        let path = store.join("lock");
        let io = |source| LockError::from_io(&path, store, source);
        std::fs::create_dir_all(store).map_err(io)?;
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        if let Err(errno) = rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            let err = io::Error::from(errno);
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                file.read_to_string(&mut text).map_err(io)?;
                return Err(LockError::Busy { path, holder: holder(&text) });
            }
            return Err(io(err));
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{} {}", std::process::id(), host_name()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(StoreLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = StoreLock::acquire(dir.path()).unwrap();
        match StoreLock::acquire(dir.path()) {
            Err(LockError::Busy { holder, .. }) => {
                assert_eq!(holder, format!("pid {} on host {}", std::process::id(), host_name()))
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        StoreLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn owner_is_named() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(owner_of(Path::new("/")), "root");
        assert_eq!(owner_of(Path::new("/nonexistent/store")), "root", "nearest existing ancestor");
        assert_eq!(who_may_write(Path::new("/")), "which belongs to root; run it as root");
        may_write(Path::new("/nonexistent/store")).expect("root may write /");
    }
}
