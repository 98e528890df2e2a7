//! `verify`: re-hash the pool objects that snapshots reference, in parallel, and name every
//! mirror/snapshot/path that uses a damaged one.
//!
//! Read-only and lock-free: it may run beside a sync or the mount. Objects are listed first and
//! their users looked up after hashing, so an object a concurrent gc removed (its snapshots were
//! pruned meanwhile) has no users any more and is not reported.

use super::LifecycleError;
use crate::catalog::lifecycle::{ObjectRow, ObjectUse};
use crate::catalog::Catalog;
use crate::digest::Sha256;
use crate::pool::{ObjectState, Pool, PoolError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Read buffer per hashing thread: large sequential reads keep the disk streaming; larger
/// buffers gained nothing measurable (the hash, not the syscalls, is the cost once cached).
const READ_BUFFER: usize = 1 << 20;

/// What is wrong with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    Missing,
    /// The file has another size than the catalog recorded (not hashed: it cannot match).
    Size {
        actual: u64,
    },
    Content {
        actual: Sha256,
    },
    Unreadable(String),
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Missing => write!(f, "missing from the pool"),
            Damage::Size { actual } => write!(f, "damaged: {actual} bytes on disk"),
            Damage::Content { actual } => write!(f, "damaged: content hashes to {actual}"),
            Damage::Unreadable(e) => write!(f, "unreadable: {e}"),
        }
    }
}

/// A damaged object and everything that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub object: ObjectRow,
    pub damage: Damage,
    pub users: Vec<ObjectUse>,
}

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Objects and (catalog) bytes checked.
    pub objects: u64,
    pub bytes: u64,
    pub findings: Vec<Finding>,
    pub threads: usize,
    pub elapsed: Duration,
}

impl VerifyReport {
    /// Bytes per second hashed.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.bytes as f64 / secs
        } else {
            0.0
        }
    }
}

/// Verifies every object the snapshots of `mirrors` (all when empty) reference.
pub fn verify(catalog: &Catalog, pool: &Pool, mirrors: &[String]) -> Result<VerifyReport, LifecycleError> {
    let known: Vec<String> = catalog.mirrors()?.into_iter().map(|m| m.id).collect();
    if let Some(unknown) = mirrors.iter().find(|m| !known.contains(m)) {
        return Err(LifecycleError::UnknownMirror(unknown.clone()));
    }
    let started = Instant::now();
    let objects = catalog.referenced_objects(mirrors)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let damaged = check_objects(pool, &objects, threads);
    let digests: Vec<Sha256> = damaged.iter().map(|(i, _)| objects[*i].sha256).collect();
    let mut users = catalog.object_users(&digests)?;
    let mut findings = Vec::new();
    for (i, damage) in damaged {
        let object = objects[i].clone();
        let (mine, rest): (Vec<ObjectUse>, Vec<ObjectUse>) = users.into_iter().partition(|u| u.sha256 == object.sha256);
        users = rest;
        if mine.is_empty() {
            tracing::debug!(sha256 = %object.sha256, "damaged object is no longer referenced (pruned meanwhile)");
            continue;
        }
        findings.push(Finding { object, damage, users: mine });
    }
    let filter = |u: &ObjectUse| mirrors.is_empty() || mirrors.contains(&u.mirror_id);
    for f in &mut findings {
        // Name the requested mirrors' paths first; other users follow (they share the damage).
        f.users.sort_by_key(|u| !filter(u));
    }
    Ok(VerifyReport {
        objects: objects.len() as u64,
        bytes: objects.iter().map(|o| o.size).sum(),
        findings,
        threads,
        elapsed: started.elapsed(),
    })
}

/// Re-hashes `objects` on `threads` threads; returns (index, damage) of the damaged ones, in
/// index order. Largest objects go first so no thread is left with one big file at the end.
pub fn check_objects(pool: &Pool, objects: &[ObjectRow], threads: usize) -> Vec<(usize, Damage)> {
    let mut order: Vec<usize> = (0..objects.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(objects[i].size));
    let next = AtomicUsize::new(0);
    let found = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut buf = vec![0u8; READ_BUFFER];
                let mut mine = Vec::new();
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Some(d) = check_one(pool, &objects[i], &mut buf) {
                        mine.push((i, d));
                    }
                }
                // A panicking sibling cannot leave the vector half-updated (one extend).
                found.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
            });
        }
    });
    let mut found = found.into_inner().unwrap_or_else(|p| p.into_inner());
    found.sort_by_key(|(i, _)| *i);
    found
}

/// Checks one object: present, of the recorded size, hashing to its name.
fn check_one(pool: &Pool, object: &ObjectRow, buf: &mut [u8]) -> Option<Damage> {
    match pool.check(&object.sha256, object.size, buf) {
        Ok(ObjectState::Intact) => None,
        Ok(ObjectState::Missing) => Some(Damage::Missing),
        Ok(ObjectState::Size { actual }) => Some(Damage::Size { actual }),
        Ok(ObjectState::Content { actual }) => Some(Damage::Content { actual }),
        Err(e) => Some(Damage::Unreadable(unreadable(e))),
    }
}

/// The OS error of an unreadable object (the path is in the finding already).
fn unreadable(e: PoolError) -> String {
    match e {
        PoolError::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn finds_each_kind_of_damage() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(dir.path(), false).unwrap();
        let contents: [&[u8]; 5] = [b"intact", b"flipped", b"truncated", b"missing", b""];
        let mut objects = Vec::new();
        for (i, c) in contents.iter().enumerate() {
            let sha = Sha256::of(c);
            pool.put_bytes(c, &sha).unwrap();
            objects.push(ObjectRow { id: i as i64, sha256: sha, size: c.len() as u64 });
        }
        let rewrite = |i: usize, bytes: &[u8]| {
            let p = pool.object_path(&objects[i].sha256);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            std::fs::write(&p, bytes).unwrap();
        };
        rewrite(1, b"flipPed");
        rewrite(2, b"trunc");
        std::fs::remove_file(pool.object_path(&objects[3].sha256)).unwrap();
        for threads in [1, 3] {
            let got = check_objects(&pool, &objects, threads);
            let want = vec![
                (1, Damage::Content { actual: Sha256::of(b"flipPed") }),
                (2, Damage::Size { actual: 5 }),
                (3, Damage::Missing),
            ];
            assert_eq!(got, want, "threads={threads}");
        }
    }
}
