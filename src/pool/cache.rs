//! A serving node's local read cache (`[mount] cache-dir`, `cache-size`): pool objects copied
//! from the (shared, slow for small files) pool to local disk on their first open, verified
//! against their sha256 name while copied, and opened from there from then on — by FUSE
//! passthrough, so reads never reach the daemon.
//!
//! ```text
//! <cache-dir>/
//! ├── lock              flock: one mount daemon per cache
//! ├── tmp/              copies in progress (emptied at start)
//! └── sha256/ab/ab…     verified copies, named as in the pool
//! ```
//!
//! - **Verified, never served damaged.** A copy is hashed as it is written and kept only if its
//!   digest and size match; a pool object that does not match its name is not served at all
//!   (EIO, logged with the object). A kept copy's inode, size, mtime and ctime are noted: an
//!   entry that changed since (written to, truncated, replaced) is dropped at its next open and
//!   copied again. Entries found at start (a previous daemon's) are hashed again before their
//!   first use.
//! - **Bounded.** Least recently opened first out once the entries hold more than `cache-size`
//!   bytes; an open file keeps its inode when evicted. An object larger than the whole cache is
//!   served straight from the pool.
//! - **FUSE threads wait only for small copies.** An object up to [`WAIT_FOR_COPY`] is copied
//!   while its open waits; a larger one (an ISO) is served from the pool while one background
//!   thread copies it, so no open waits seconds and the FUSE threads stay free.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rustix::fs::FlockOperation;

use crate::digest::{HashingWriter, Sha256};

/// Objects up to this size are copied while their open waits (64 MiB: a large Packages index or
/// .deb, ~0.2–0.3 s from ceph-fuse); larger ones are copied in the background.
pub const WAIT_FOR_COPY: u64 = 64 << 20;

/// What a cache entry looked like when it was verified: any change means it was written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            ino: meta.ino(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

struct Entry {
    size: u64,
    /// Its key in `State::lru`.
    used: u64,
    /// `None`: found at start, not hashed yet.
    verified: Option<Stamp>,
}

/// Counters, for logs, tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Opens served from a verified entry.
    pub hits: u64,
    /// Objects copied in (and their bytes).
    pub copies: u64,
    pub copied_bytes: u64,
    /// Entries dropped because they changed since verified or failed verification.
    pub dropped: u64,
    /// Entries evicted to stay within the size.
    pub evicted: u64,
    /// Opens served straight from the pool (too large, a background copy running, a local error).
    pub direct: u64,
    /// Pool objects that did not match their digest (not served).
    pub bad_objects: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<Sha256, Entry>,
    lru: BTreeMap<u64, Sha256>,
    clock: u64,
    bytes: u64,
    copying: HashMap<Sha256, Arc<Condvar>>,
    stats: CacheStats,
}

/// The cache of one mount daemon.
pub struct ReadCache {
    dir: PathBuf,
    pool: PathBuf,
    capacity: u64,
    state: Mutex<State>,
    background: AtomicBool,
    _lock: File,
}

/// Where `open` found what it returns.
enum Found {
    File(File),
    Missing,
    Busy(Arc<Condvar>),
}

impl ReadCache {
    /// Opens the cache in `dir` (created if needed) for objects of the pool directory `pool`,
    /// holding at most `capacity` bytes: takes its lock, empties `tmp/`, and lists the entries a
    /// previous daemon left (to be hashed again before use; least recently copied first out).
    pub fn open(dir: &Path, capacity: u64, pool: PathBuf) -> io::Result<Arc<ReadCache>> {
        let named = |e: io::Error, p: &Path| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| named(e, dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| named(e, &lock_path))?;
        if rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            let why = format!("{}: another mount daemon uses this cache-dir", dir.display());
            return Err(io::Error::new(io::ErrorKind::WouldBlock, why));
        }
        for e in std::fs::read_dir(dir.join("tmp"))? {
            std::fs::remove_file(e?.path())?;
        }
        let mut found = Vec::new();
        scan(&dir.join("sha256"), &mut found)?;
        found.sort_by_key(|(_, _, mtime)| *mtime);
        let mut state = State::default();
        for (sha, size, _) in found {
            state.insert(sha, size, None);
        }
        tracing::info!(dir = %dir.display(), entries = state.entries.len(), bytes = state.bytes, "read cache opened");
        let cache = ReadCache {
            dir: dir.to_owned(),
            pool,
            capacity,
            state: Mutex::new(state),
            background: AtomicBool::new(false),
            _lock: lock,
        };
        cache.evict(&mut cache.lock(), None);
        Ok(Arc::new(cache))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }

    /// Bytes the entries hold.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    fn path(&self, sha: &Sha256) -> PathBuf {
        super::object_path(&self.dir, sha)
    }

    /// The object `sha` of `size` bytes, opened read-only: the local copy (made now if missing
    /// and small enough), else the pool's file. An error means it cannot be served (logged).
    pub fn open_object(self: &Arc<Self>, sha: &Sha256, size: u64) -> io::Result<File> {
        loop {
            match self.find(sha, size)? {
                Found::File(file) => return Ok(file),
                Found::Busy(_) if size > WAIT_FOR_COPY => return self.direct(sha, size),
                Found::Busy(done) => {
                    let state = self.lock();
                    // Woken when the copy ends (or spuriously: look again either way).
                    drop(done.wait_while(state, |s| s.copying.contains_key(sha)));
                }
                Found::Missing if size > self.capacity => return self.direct(sha, size),
                Found::Missing if size > WAIT_FOR_COPY => {
                    if !self.background.swap(true, Ordering::AcqRel) {
                        let (cache, sha) = (Arc::clone(self), *sha);
                        let spawned = std::thread::Builder::new()
                            .name("cache-copy".into())
                            .spawn(move || cache.copy_in_background(sha, size));
                        if spawned.is_err() {
                            self.background.store(false, Ordering::Release);
                        }
                    }
                    return self.direct(sha, size);
                }
                Found::Missing => return self.copy(sha, size),
            }
        }
    }

    /// A verified entry, opened; an unverified one is hashed first; a changed one is dropped.
    fn find(&self, sha: &Sha256, size: u64) -> io::Result<Found> {
        let mut state = self.lock();
        if let Some(done) = state.copying.get(sha) {
            return Ok(Found::Busy(Arc::clone(done)));
        }
        let Some(entry) = state.entries.get(sha) else { return Ok(Found::Missing) };
        let verified = entry.verified;
        let path = self.path(sha);
        let opened = File::open(&path).and_then(|f| Ok((Stamp::of(&f.metadata()?), f)));
        match (opened, verified) {
            (Ok((stamp, file)), Some(known)) if stamp == known && stamp.size == size => {
                state.touch(sha);
                state.stats.hits += 1;
                Ok(Found::File(file))
            }
            (Ok((stamp, file)), None) if stamp.size == size => {
                drop(state);
                let (digest, _) = crate::digest::hash_reader(&file)?;
                io::Seek::rewind(&mut &file)?;
                let mut state = self.lock();
                if let Some(entry) = state.entries.get_mut(sha).filter(|_| digest == *sha) {
                    entry.verified = Some(stamp);
                    state.touch(sha);
                    state.stats.hits += 1;
                    return Ok(Found::File(file));
                }
                self.drop_entry(&mut state, sha, "its content does not match its name");
                Ok(Found::Missing)
            }
            (Ok(_), _) => {
                self.drop_entry(&mut state, sha, "it changed since it was verified");
                Ok(Found::Missing)
            }
            (Err(e), _) => {
                self.drop_entry(&mut state, sha, &format!("it cannot be opened: {e}"));
                Ok(Found::Missing)
            }
        }
    }

    fn drop_entry(&self, state: &mut State, sha: &Sha256, why: &str) {
        let path = self.path(sha);
        tracing::warn!(path = %path.display(), "cache entry dropped, never served: {why}; copying it again");
        state.remove(sha);
        state.stats.dropped += 1;
        let _ = std::fs::remove_file(&path);
    }

    /// The pool's own file (not copied), if it has the size the view says.
    fn direct(&self, sha: &Sha256, size: u64) -> io::Result<File> {
        self.lock().stats.direct += 1;
        sized(File::open(super::object_path(&self.pool, sha))?, sha, size)
    }

    /// Copies `sha` in while the caller waits, then opens the copy. A pool object that does not
    /// match is refused; a local failure (a full disk) serves the pool's file instead.
    fn copy(&self, sha: &Sha256, size: u64) -> io::Result<File> {
        let done = Arc::new(Condvar::new());
        self.lock().copying.insert(*sha, Arc::clone(&done));
        let copied = self.copy_file(sha, size);
        let mut state = self.lock();
        state.copying.remove(sha);
        done.notify_all();
        match copied {
            Ok((stamp, file)) => {
                state.insert(*sha, size, Some(stamp));
                state.stats.copies += 1;
                state.stats.copied_bytes += size;
                self.evict(&mut state, Some(sha));
                Ok(file)
            }
            Err(Failure::Source(e)) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    state.stats.bad_objects += 1;
                }
                tracing::error!(object = %sha, error = %e, "pool object not served");
                Err(e)
            }
            Err(Failure::Local(e)) => {
                drop(state);
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot copy into the read cache; serving from the pool");
                self.direct(sha, size)
            }
        }
    }

    fn copy_in_background(self: Arc<Self>, sha: Sha256, size: u64) {
        if let Err(e) = self.copy(&sha, size) {
            tracing::debug!(object = %sha, error = %e, "background copy failed");
        }
        self.background.store(false, Ordering::Release);
    }

    /// The copy itself: pool file → `tmp/` (hashed while written) → checked → renamed in place.
    fn copy_file(&self, sha: &Sha256, size: u64) -> Result<(Stamp, File), Failure> {
        let source = super::object_path(&self.pool, sha);
        let mut from = File::open(&source).map_err(Failure::Source)?;
        let tmp = self.dir.join("tmp").join(format!("{}.{:?}", sha.to_hex(), std::thread::current().id()));
        let result = (|| {
            let file = File::create(&tmp).map_err(Failure::Local)?;
            let mut to = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
            copy_stream(&mut from, &mut to)?;
            let (digest, buffered) = to.finish();
            let file = buffered.into_inner().map_err(|e| Failure::Local(e.into_error()))?;
            let n = file.metadata().map_err(Failure::Local)?.len();
            if digest != *sha || n != size {
                let why =
                    format!("{}: {n} bytes with sha256 {digest}, expected {size} bytes with {sha}", source.display());
                return Err(Failure::Source(io::Error::new(io::ErrorKind::InvalidData, why)));
            }
            let path = self.path(sha);
            std::fs::create_dir_all(path.parent().unwrap_or(&self.dir)).map_err(Failure::Local)?;
            std::fs::rename(&tmp, &path).map_err(Failure::Local)?;
            let file = File::open(&path).map_err(Failure::Local)?;
            let stamp = Stamp::of(&file.metadata().map_err(Failure::Local)?);
            Ok((stamp, file))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Removes least recently used entries (never `keep`) until the entries fit.
    fn evict(&self, state: &mut State, keep: Option<&Sha256>) {
        while state.bytes > self.capacity {
            let Some(victim) = state.lru.values().find(|s| Some(*s) != keep).copied() else { break };
            state.remove(&victim);
            state.stats.evicted += 1;
            let _ = std::fs::remove_file(self.path(&victim));
        }
    }
}

/// Where a mount opens the objects it serves: the pool's files, or a read cache in front of them.
#[derive(Clone)]
pub enum Objects {
    Pool(PathBuf),
    Cached(Arc<ReadCache>),
}

impl From<PathBuf> for Objects {
    fn from(pool_dir: PathBuf) -> Objects {
        Objects::Pool(pool_dir)
    }
}

impl Objects {
    /// The object `sha` of `size` bytes, opened read-only; a file of another size is an error.
    pub fn open(&self, sha: &Sha256, size: u64) -> io::Result<File> {
        match self {
            Objects::Pool(dir) => sized(File::open(super::object_path(dir, sha))?, sha, size),
            // The cache checks sizes itself (a hit against its stamp, a copy as it is made).
            Objects::Cached(cache) => cache.open_object(sha, size),
        }
    }
}

/// `file` if it holds `size` bytes, else an error naming the object.
fn sized(file: File, sha: &Sha256, size: u64) -> io::Result<File> {
    match file.metadata()?.len() {
        len if len == size => Ok(file),
        len => Err(io::Error::other(format!("pool object {sha} has {len} bytes, the catalog says {size}"))),
    }
}

enum Failure {
    /// Reading the pool's object failed, or it does not match its name.
    Source(io::Error),
    /// Writing the cache failed.
    Local(io::Error),
}

fn copy_stream(from: &mut File, to: &mut impl Write) -> Result<(), Failure> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match io::Read::read(from, &mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buf[..n]).map_err(Failure::Local)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Source(e)),
        }
    }
}

impl State {
    fn insert(&mut self, sha: Sha256, size: u64, verified: Option<Stamp>) {
        self.remove(&sha);
        self.clock += 1;
        self.lru.insert(self.clock, sha);
        self.entries.insert(sha, Entry { size, used: self.clock, verified });
        self.bytes += size;
    }

    fn remove(&mut self, sha: &Sha256) {
        if let Some(old) = self.entries.remove(sha) {
            self.lru.remove(&old.used);
            self.bytes -= old.size;
        }
    }

    fn touch(&mut self, sha: &Sha256) {
        self.clock += 1;
        let clock = self.clock;
        if let Some(entry) = self.entries.get_mut(sha) {
            self.lru.remove(&entry.used);
            entry.used = clock;
            self.lru.insert(clock, *sha);
        }
    }
}

/// Entries under `sha256/`: (digest, size, mtime); files not named as objects are removed.
fn scan(root: &Path, found: &mut Vec<(Sha256, u64, i64)>) -> io::Result<()> {
    let fans = match std::fs::read_dir(root) {
        Ok(fans) => fans,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for fan in fans {
        let fan = fan?;
        if !fan.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(fan.path())? {
            let file = file?;
            let meta = file.metadata()?;
            match file.file_name().to_str().and_then(|n| n.parse::<Sha256>().ok()) {
                Some(sha) if meta.is_file() => found.push((sha, meta.len(), meta.mtime())),
                _ => std::fs::remove_file(file.path())?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
