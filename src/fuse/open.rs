//! Open files: the handle table that keeps what reads need from `open` until `release`.
//!
//! With passthrough the kernel reads the pool file itself; the handle only keeps the registered
//! [`BackingId`] alive (dropping it early makes reads fail with EIO). The kernel refuses two
//! different backing files on one inode, so backing ids are shared per inode while any handle
//! holds them. Without passthrough, reads are answered here with `pread` on the pool file.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use fuser::BackingId;

/// What an open file handle holds.
pub(super) enum Handle {
    Passthrough { ino: u64, backing: Arc<BackingId> },
    Pread(Arc<File>),
    Inline(Arc<[u8]>),
}

/// What a read is answered from (cloned out of the table, so reads run without the lock).
pub(super) enum Source {
    File(Arc<File>),
    Inline(Arc<[u8]>),
}

#[derive(Default)]
struct Table {
    handles: HashMap<u64, Handle>,
    backing: HashMap<u64, Weak<BackingId>>,
}

/// Handles by file handle number. The lock is held only for map operations (and the backing-id
/// ioctl, which must not race with a second open of the same inode).
#[derive(Default)]
pub(super) struct OpenFiles {
    next_fh: AtomicU64,
    table: Mutex<Table>,
}

impl OpenFiles {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panicking FUSE thread cannot leave the maps half-updated (single inserts/removes).
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn insert(&self, handle: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().handles.insert(fh, handle);
        fh
    }

    /// The backing id registered for inode `ino`, or a new one from `register`.
    pub fn backing(&self, ino: u64, register: impl FnOnce() -> io::Result<BackingId>) -> io::Result<Arc<BackingId>> {
        let mut table = self.lock();
        if let Some(id) = table.backing.get(&ino).and_then(Weak::upgrade) {
            return Ok(id);
        }
        let id = Arc::new(register()?);
        table.backing.insert(ino, Arc::downgrade(&id));
        Ok(id)
    }

    pub fn source(&self, fh: u64) -> Option<Source> {
        match self.lock().handles.get(&fh)? {
            Handle::Pread(file) => Some(Source::File(Arc::clone(file))),
            Handle::Inline(bytes) => Some(Source::Inline(Arc::clone(bytes))),
            Handle::Passthrough { .. } => None,
        }
    }

    /// Drop a handle; the last handle of an inode unregisters its backing file.
    pub fn release(&self, fh: u64) {
        let mut table = self.lock();
        let Some(handle) = table.handles.remove(&fh) else {
            tracing::warn!(fh, "release of an unknown file handle");
            return;
        };
        if let Handle::Passthrough { ino, backing } = handle {
            drop(backing);
            if table.backing.get(&ino).is_some_and(|w| w.strong_count() == 0) {
                table.backing.remove(&ino);
            }
        }
    }
}

impl Source {
    /// Up to `size` bytes at `offset` (short only at end of file).
    pub fn read(&self, offset: u64, size: u32) -> io::Result<Vec<u8>> {
        match self {
            Source::Inline(bytes) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
                let end = start.saturating_add(size as usize).min(bytes.len());
                Ok(bytes[start..end].to_vec())
            }
            Source::File(file) => {
                let mut buf = vec![0u8; size as usize];
                let mut filled = 0;
                while filled < buf.len() {
                    match file.read_at(&mut buf[filled..], offset + filled as u64) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                buf.truncate(filled);
                Ok(buf)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_reads_clamp_to_the_content() {
        let source = Source::Inline(Arc::from(&b"hello"[..]));
        let cases: &[(u64, u32, &[u8])] =
            &[(0, 5, b"hello"), (1, 2, b"el"), (3, 100, b"lo"), (5, 1, b""), (u64::MAX, 4, b"")];
        for &(offset, size, want) in cases {
            assert_eq!(source.read(offset, size).expect("read"), want, "{offset}+{size}");
        }
    }

    #[test]
    fn file_reads_stop_at_eof() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").expect("write");
        let source = Source::File(Arc::new(File::open(&path).expect("open")));
        assert_eq!(source.read(8, 10).expect("read"), b"89");
        assert_eq!(source.read(20, 10).expect("read"), b"");
    }

    #[test]
    fn handles_come_and_go() {
        let files = OpenFiles::default();
        let a = files.insert(Handle::Inline(Arc::from(&b"x"[..])));
        let b = files.insert(Handle::Inline(Arc::from(&b"y"[..])));
        assert_ne!(a, b);
        assert!(files.source(a).is_some());
        files.release(a);
        assert!(files.source(a).is_none());
        assert!(files.source(b).is_some());
    }
}
