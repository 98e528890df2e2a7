//! The sha256 content-addressed object pool and the store lock.
//!
//! ```text
//! <store>/
//! ├── pool/sha256/ab/abcdef…   objects, mode 0444, named by their sha256
//! ├── tmp/                     downloads in progress (same filesystem as pool/), emptied at start
//! ├── catalog.db               SQLite catalog (see crate::catalog)
//! └── lock                     flock held by sync/gc; holds the holder's pid
//! ```
//!
//! An object enters the pool only through [`Staging::commit`]: the bytes were hashed while they
//! were written, the digest and size match what the verified index declared, the file (and, with
//! `fsync`, the directory) was synced, and then it is renamed into place. A reader therefore never
//! sees a partial or unverified object under `pool/`.

pub mod cache;
mod lock;

pub use lock::{may_write, who_may_write, LockError, StoreLock};

use crate::digest::{Expected, HashingWriter, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// With `fsync`, start writeback every this many bytes (`sync_file_range`), so the final fsync of
/// a large object waits for the tail only instead of the whole file.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// Mode of pool objects: read-only for everyone (nginx workers read them through the mount).
const OBJECT_MODE: u32 = 0o444;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("body larger than the declared {expected} bytes")]
    TooLarge { expected: u64 },
    #[error("sha256 mismatch: expected {expected}, got {actual}")]
    HashMismatch { expected: Sha256, actual: Sha256 },
    #[error("download aborted before the body was complete")]
    Aborted,
    /// A blocking pool task (hashing, writing) panicked or was cancelled.
    #[error("pool task failed: {0}")]
    Task(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PoolError + '_ {
    move |source| PoolError::Io { path: path.to_owned(), source }
}

/// What [`Pool::put_bytes`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The pool already had the object (intact, when verifying).
    Kept,
    /// The pool did not have it.
    Wrote,
    /// The pool had a damaged copy; the good bytes replaced it.
    Repaired,
}

/// What re-reading an object found ([`Pool::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectState {
    Intact,
    Missing,
    /// Present with another size.
    Size {
        actual: u64,
    },
    /// Present, of the right size, hashing to another digest.
    Content {
        actual: Sha256,
    },
}

/// The object pool under `<store>`.
#[derive(Clone, Debug)]
pub struct Pool {
    store: PathBuf,
    fsync: bool,
}

/// Distinguishes staging files of concurrent downloads within one process.
static STAGING_SEQ: AtomicU64 = AtomicU64::new(0);

impl Pool {
    /// Opens (creating directories as needed) the pool of a store.
    pub fn open(store: &Path, fsync: bool) -> Result<Pool, PoolError> {
        for dir in [store.to_path_buf(), store.join("pool/sha256"), store.join("tmp")] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(Pool { store: store.to_owned(), fsync })
    }

    /// The pool of a store as it is, creating nothing (a dry run: on a store that does not exist
    /// yet, every object is missing). Only for reading: nothing may be staged or written through it.
    pub fn existing(store: &Path) -> Pool {
        Pool { store: store.to_owned(), fsync: false }
    }

    pub fn store_dir(&self) -> &Path {
        &self.store
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.store.join("pool")
    }

    /// Where the object with this digest lives (whether or not it exists).
    pub fn object_path(&self, digest: &Sha256) -> PathBuf {
        object_path(&self.store.join("pool"), digest)
    }

    pub fn contains(&self, digest: &Sha256) -> bool {
        self.object_path(digest).is_file()
    }

    /// Removes leftovers of a crashed run from `tmp/`. Only call with the store lock held.
    pub fn clean_tmp(&self, _lock: &StoreLock) -> Result<usize, PoolError> {
        let tmp = self.store.join("tmp");
        let mut removed = 0;
        for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
            let path = entry.map_err(io_err(&tmp))?.path();
            let res = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            res.map_err(io_err(&path))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// A new staging file in `tmp/` that accepts at most `cap` bytes (the declared size).
    pub fn stage(&self, cap: Option<u64>) -> Result<Staging, PoolError> {
        let seq = STAGING_SEQ.fetch_add(1, Ordering::Relaxed);
        let path = self.store.join("tmp").join(format!("{}.{seq}.part", std::process::id()));
        let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io_err(&path))?;
        Ok(Staging { pool: self.clone(), path, writer: Some(HashingWriter::new(file)), cap })
    }

    /// Stores verified bytes held in memory (Release files, indices, checksum lists). An object
    /// the pool already has is kept. (With [`Pool::store_bytes`]'s `verify`, a damaged copy is
    /// replaced: the good bytes are renamed over it, so a reader never finds it missing.)
    pub fn put_bytes(&self, bytes: &[u8], expected: &Sha256) -> Result<Put, PoolError> {
        self.store_bytes(bytes, expected, false)
    }

    /// [`Pool::put_bytes`], re-hashing a copy the pool has when `verify` is set and replacing it
    /// if it is damaged.
    pub fn store_bytes(&self, bytes: &[u8], expected: &Sha256, verify: bool) -> Result<Put, PoolError> {
        let size = bytes.len() as u64;
        let put = match self.contains(expected) {
            false => Put::Wrote,
            // A copy of another size is damaged, verifying or not (one stat).
            true if self.size_of(expected) != Some(size) => {
                tracing::warn!(sha256 = %expected, "pool object of the wrong size, writing it again");
                Put::Repaired
            }
            true if !verify => return Ok(Put::Kept),
            true => match self.check(expected, size, &mut crate::digest::hash_buffer(size))? {
                ObjectState::Intact => return Ok(Put::Kept),
                ObjectState::Missing => Put::Wrote,
                damaged => {
                    tracing::warn!(sha256 = %expected, state = ?damaged, "damaged pool object, writing it again");
                    Put::Repaired
                }
            },
        };
        let mut staging = self.stage(Some(size))?;
        staging.write_all(bytes)?;
        staging.commit(size, expected)?;
        Ok(put)
    }

    /// Size of the object with this digest, if the pool has it.
    pub fn size_of(&self, digest: &Sha256) -> Option<u64> {
        fs::metadata(self.object_path(digest)).ok().filter(|m| m.is_file()).map(|m| m.len())
    }

    /// The bytes of an object, if the pool has it intact: `Ok(None)` when it is missing, an
    /// error when it is damaged (size or sha256) or unreadable.
    pub fn read_verified(&self, digest: &Sha256, size: Option<u64>) -> Result<Option<Vec<u8>>, PoolError> {
        let path = self.object_path(digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(PoolError::Io { path, source: e }),
        };
        let actual_size = bytes.len() as u64;
        if let Some(expected) = size.filter(|s| *s != actual_size) {
            return Err(PoolError::SizeMismatch { expected, actual: actual_size });
        }
        match Sha256::of(&bytes) {
            actual if actual == *digest => Ok(Some(bytes)),
            actual => Err(PoolError::HashMismatch { expected: *digest, actual }),
        }
    }

    /// Re-reads an object and says whether it is intact (present, `size` bytes, hashing to its
    /// name). `buf` is the read buffer (callers that check many objects reuse one).
    pub fn check(&self, digest: &Sha256, size: u64, buf: &mut [u8]) -> Result<ObjectState, PoolError> {
        let path = self.object_path(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ObjectState::Missing),
            Err(e) => return Err(PoolError::Io { path, source: e }),
        };
        let actual = file.metadata().map_err(io_err(&path))?.len();
        if actual != size {
            return Ok(ObjectState::Size { actual });
        }
        let (d, _) = crate::digest::hash_with::<sha2::Sha256>(file, buf).map_err(io_err(&path))?;
        match Sha256(d.into()) {
            actual if actual == *digest => Ok(ObjectState::Intact),
            actual => Ok(ObjectState::Content { actual }),
        }
    }

    /// The digest of an object in the algorithm of `like` (SHA-512, MD5: aplinfo's checksums);
    /// `Ok(None)` when the pool does not have it.
    pub fn digest_like(&self, digest: &Sha256, like: Expected) -> Result<Option<Expected>, PoolError> {
        let path = self.object_path(digest);
        match File::open(&path) {
            Ok(f) => like.compute_like(f).map(Some).map_err(io_err(&path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PoolError::Io { path, source: e }),
        }
    }

    /// Unlinks an object (gc only: a repair renames a good copy over a damaged one).
    pub fn remove(&self, digest: &Sha256) -> Result<bool, PoolError> {
        let path = self.object_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(PoolError::Io { path, source: e }),
        }
    }
}

/// Why [`Pool::copy_in`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source is missing, unreadable, of another size or does not hash to its digest.
    #[error(transparent)]
    Source(PoolError),
    /// Writing into this pool failed (a full disk, an I/O error).
    #[error(transparent)]
    Dest(PoolError),
}

impl Pool {
    /// Copies the file `src` (another pool's object, a medium's) into this pool as object
    /// `digest` of `size` bytes, hashed while written and committed only if it matches
    /// ([`Staging::commit`]): a source that does not match never becomes an object here. `buf`
    /// is the copy buffer (callers copying many objects reuse one).
    pub fn copy_in(&self, src: &Path, digest: &Sha256, size: u64, buf: &mut [u8]) -> Result<(), CopyError> {
        use std::io::Read as _;
        let source = |e| CopyError::Source(PoolError::Io { path: src.to_owned(), source: e });
        let mut from = File::open(src).map_err(source)?;
        let mut staging = self.stage(Some(size)).map_err(CopyError::Dest)?;
        loop {
            let n = match from.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(source(e)),
            };
            match staging.write_all(&buf[..n]) {
                Ok(()) => {}
                Err(e @ PoolError::TooLarge { .. }) => return Err(CopyError::Source(e)),
                Err(e) => return Err(CopyError::Dest(e)),
            }
        }
        match staging.commit(size, digest) {
            Ok(()) => Ok(()),
            Err(e @ (PoolError::HashMismatch { .. } | PoolError::SizeMismatch { .. })) => Err(CopyError::Source(e)),
            Err(e) => Err(CopyError::Dest(e)),
        }
    }
}

/// `<pool>/sha256/<first two hex digits>/<hex>`.
pub fn object_path(pool_dir: &Path, digest: &Sha256) -> PathBuf {
    let hex = digest.to_hex();
    pool_dir.join("sha256").join(&hex[..2]).join(hex)
}

/// A download in progress: hashed while written, capped at the declared size, removed on drop
/// unless committed.
pub struct Staging {
    pool: Pool,
    path: PathBuf,
    writer: Option<HashingWriter<File>>,
    cap: Option<u64>,
}

impl Staging {
    pub fn written(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.written())
    }

    /// Appends bytes; refuses (without writing) anything past the cap.
    pub fn write_all(&mut self, buf: &[u8]) -> Result<(), PoolError> {
        let written = self.written();
        if let Some(cap) = self.cap {
            if written + buf.len() as u64 > cap {
                return Err(PoolError::TooLarge { expected: cap });
            }
        }
        let w = self.writer.as_mut().expect("staging writer present until commit");
        w.write_all(buf).map_err(io_err(&self.path))?;
        let now = written + buf.len() as u64;
        if self.pool.fsync && now / WRITEBACK_EVERY > written / WRITEBACK_EVERY {
            let start = (now / WRITEBACK_EVERY - 1) * WRITEBACK_EVERY;
            start_writeback(w.get_ref(), start, WRITEBACK_EVERY);
        }
        Ok(())
    }

    /// Checks size and digest, syncs, and renames into the pool. A mismatch removes the file.
    pub fn commit(mut self, expected_size: u64, expected: &Sha256) -> Result<(), PoolError> {
        let actual = self.finish_hash(expected_size)?;
        if actual != *expected {
            return Err(PoolError::HashMismatch { expected: *expected, actual });
        }
        self.install(expected)
    }

    /// Commits under the digest that was computed (trees whose files no index describes).
    pub fn commit_unverified(mut self) -> Result<(Sha256, u64), PoolError> {
        let size = self.written();
        let digest = self.finish_hash(size)?;
        self.install(&digest)?;
        Ok((digest, size))
    }

    fn finish_hash(&mut self, expected_size: u64) -> Result<Sha256, PoolError> {
        let writer = self.writer.take().expect("staging writer present until commit");
        let actual_size = writer.written();
        let (digest, file) = writer.finish();
        if actual_size != expected_size {
            return Err(PoolError::SizeMismatch { expected: expected_size, actual: actual_size });
        }
        if self.pool.fsync {
            file.sync_all().map_err(io_err(&self.path))?;
        }
        let perm = fs::Permissions::from_mode(OBJECT_MODE);
        file.set_permissions(perm).map_err(io_err(&self.path))?;
        Ok(digest)
    }

    fn install(&mut self, digest: &Sha256) -> Result<(), PoolError> {
        let dest = self.pool.object_path(digest);
        let dir = dest.parent().expect("object path has a parent");
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
            if self.pool.fsync {
                sync_dir(dir.parent().expect("fan-out dir has a parent"))?;
            }
        }
        fs::rename(&self.path, &dest).map_err(io_err(&dest))?;
        if self.pool.fsync {
            sync_dir(dir)?;
        }
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove staging file");
        }
    }
}

/// Asks the kernel to start writing a range back now (no waiting); a failure only costs speed.
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range on an fd we own; it only schedules I/O.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE) };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "sync_file_range failed");
    }
}

fn sync_dir(dir: &Path) -> Result<(), PoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> (tempfile::TempDir, Pool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(dir.path(), true).unwrap();
        (dir, pool)
    }

    fn tmp_is_empty(pool: &Pool) -> bool {
        fs::read_dir(pool.store_dir().join("tmp")).unwrap().next().is_none()
    }

    #[test]
    fn commit_verifies_and_installs_read_only() {
        let (_d, pool) = pool();
        let data = b"hello pool";
        let digest = Sha256::of(data);
        let mut s = pool.stage(Some(data.len() as u64)).unwrap();
        s.write_all(data).unwrap();
        s.commit(data.len() as u64, &digest).unwrap();
        let path = pool.object_path(&digest);
        assert_eq!(fs::read(&path).unwrap(), data);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o444);
        assert!(tmp_is_empty(&pool));
    }

    #[test]
    fn mismatches_never_reach_the_pool() {
        let (_d, pool) = pool();
        let data = b"0123456789";
        let good = Sha256::of(data);
        // (bytes written, declared size, expected digest)
        let cases: Vec<(&[u8], u64, Sha256)> = vec![
            (b"0123456788", 10, good), // wrong content
            (b"01234", 10, good),      // truncated
            (b"0123456789", 10, Sha256::of(b"x")),
        ];
        for (bytes, size, digest) in cases {
            let mut s = pool.stage(Some(size)).unwrap();
            s.write_all(bytes).unwrap();
            assert!(s.commit(size, &digest).is_err());
            assert!(!pool.contains(&digest));
            assert!(tmp_is_empty(&pool));
        }
    }

    #[test]
    fn cap_refuses_oversized_bodies() {
        let (_d, pool) = pool();
        let mut s = pool.stage(Some(4)).unwrap();
        s.write_all(b"abcd").unwrap();
        assert!(matches!(s.write_all(b"e"), Err(PoolError::TooLarge { expected: 4 })));
        drop(s);
        assert!(tmp_is_empty(&pool));
    }

    /// One repair semantics: a damaged copy is replaced by a rename over it (the inode changes,
    /// the path never goes missing); without `verify` the copy the pool has is kept.
    #[test]
    fn store_bytes_replaces_a_damaged_copy_only_when_verifying() {
        use std::os::unix::fs::MetadataExt;
        let (_d, pool) = pool();
        let data = b"SHA256SUMS of a tree";
        let digest = Sha256::of(data);
        assert_eq!(pool.put_bytes(data, &digest).unwrap(), Put::Wrote);
        let path = pool.object_path(&digest);
        fs::write(&path, b"SHA256SUMS of a treX").unwrap();
        let mut buf = vec![0u8; 64];
        assert!(matches!(pool.check(&digest, data.len() as u64, &mut buf).unwrap(), ObjectState::Content { .. }));
        assert_eq!(pool.put_bytes(data, &digest).unwrap(), Put::Kept, "no verify: kept as it is");
        let before = fs::metadata(&path).unwrap().ino();
        assert_eq!(pool.store_bytes(data, &digest, true).unwrap(), Put::Repaired);
        assert_ne!(fs::metadata(&path).unwrap().ino(), before, "replaced by a rename, not rewritten in place");
        assert_eq!(pool.check(&digest, data.len() as u64, &mut buf).unwrap(), ObjectState::Intact);
        assert_eq!(pool.read_verified(&digest, Some(data.len() as u64)).unwrap().as_deref(), Some(&data[..]));
        assert_eq!(pool.store_bytes(data, &digest, true).unwrap(), Put::Kept);
        assert!(tmp_is_empty(&pool));
        fs::remove_file(&path).unwrap();
        assert_eq!(pool.check(&digest, 1, &mut buf).unwrap(), ObjectState::Missing);
        assert_eq!(pool.read_verified(&digest, None).unwrap(), None);
        assert_eq!(pool.size_of(&digest), None);
    }

    #[test]
    fn clean_tmp_removes_leftovers() {
        let (d, pool) = pool();
        fs::write(d.path().join("tmp/123.0.part"), b"partial").unwrap();
        let lock = StoreLock::acquire(d.path()).unwrap();
        assert_eq!(pool.clean_tmp(&lock).unwrap(), 1);
        assert!(tmp_is_empty(&pool));
    }
}
