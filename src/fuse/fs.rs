//! The `fuser::Filesystem` implementation: each callback is one helper returning
//! `Result<_, Errno>` plus one reply. It reads the current [`View`] through the lock-free
//! [`ViewHandle`] (and a pinned one through the pin table's short mutex) and opens pool files —
//! nothing else (no network, no SQLite, no async).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

use super::attr::{
    dir, file_attr, file_type, listing, opens_for_writing, pin_dir_attr, placed_attr, placed_ino, Place, BLOCK_SIZE,
};
use super::handle::ViewHandle;
use super::open::{Handle, OpenFiles};
use super::pin::{Pins, PIN_DIR, TOKEN_TTL};
use crate::tree::inode::{Inode, PIN_DIR_INO};
use crate::tree::{FileContent, Resolved, View};

/// Entry and attribute TTL. Views change only at a switch, which invalidates explicitly; a TTL
/// of 0 measured ≈4× slower than long ones (docs/fuse-notes.md, "Kernel caches"), and a day keeps
/// the kernel from asking again.
const TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Linux NAME_MAX.
const NAME_MAX: u32 = 255;
/// Backing files may live on a plain filesystem only; this mount may itself sit under one
/// stacking filesystem (fuser's max_stack_depth 1, as passthrough needs: docs/fuse-notes.md).
const PASSTHROUGH_STACK_DEPTH: u32 = 1;

/// INIT flags fuser does not enable by default, each with why (the first three measured as
/// helping: docs/fuse-notes.md, "INIT flags and request threads").
const WANTED_FLAGS: [(InitFlags, &str); 5] = [
    (InitFlags::FUSE_PARALLEL_DIROPS, "concurrent lookups in one directory"),
    (InitFlags::FUSE_CACHE_SYMLINKS, "cache symlinks (none today; harmless)"),
    (InitFlags::FUSE_EXPLICIT_INVAL_DATA, "page cache dropped only on request; content per inode never changes"),
    (InitFlags::FUSE_DO_READDIRPLUS, "readdir returns attributes (autoindex, ls -l)"),
    (InitFlags::FUSE_READDIRPLUS_AUTO, "let the kernel choose readdirplus when it helps"),
];

pub(super) struct MirrorFs {
    pub views: ViewHandle,
    pub pool: crate::pool::cache::Objects,
    pub open: OpenFiles,
    /// Set at init when the kernel grants passthrough; cleared if registering a backing file fails.
    pub passthrough: Arc<AtomicBool>,
    /// Tokens under `.pin/` and the views they hold (see [`super::pin`]).
    pub pins: Arc<Pins>,
}

impl MirrorFs {
    /// Run `f` on what `ino` names, with where it sits: directories and generation-scoped
    /// files in the view of their generation (or of their pin slot), objects in the newest kept
    /// view that has them (or a pinned one). Gone → ESTALE. Not for the `.pin` directory.
    fn with<R>(&self, ino: INodeNo, f: impl FnOnce(Resolved<'_>, Place) -> Result<R, Errno>) -> Result<R, Errno> {
        let inode = Inode::decode(ino.0).ok_or(Errno::ESTALE)?;
        if let Inode::Pinned { slot, .. } = inode {
            let view = self.pins.view(slot).ok_or(Errno::ESTALE)?;
            return f(view.resolve(inode).ok_or(Errno::ESTALE)?, Place::Pin(slot));
        }
        let views = self.views.load();
        let pinned: Arc<View>;
        let view = match inode {
            Inode::Dir { generation, .. } => views.by_bits(generation).ok_or(Errno::ESTALE)?,
            Inode::GenFile { generation, .. } => match views.by_bits(generation) {
                Some(view) => view,
                None => {
                    pinned = self.pins.view_by_bits(generation).ok_or(Errno::ESTALE)?;
                    &pinned
                }
            },
            _ => views.current(),
        };
        match (view.resolve(inode), inode) {
            (Some(resolved), _) => f(resolved, Place::Plain),
            (None, Inode::Object { id }) => match views.object(id) {
                Some(object) => f(Resolved::Object(object), Place::Plain),
                None => f(Resolved::Object(&self.pins.object(id).ok_or(Errno::ESTALE)?), Place::Plain),
            },
            (None, _) => Err(Errno::ESTALE),
        }
    }

    fn lookup_attr(&self, parent: INodeNo, name: &OsStr) -> Result<(FileAttr, Duration), Errno> {
        if parent.0 == PIN_DIR_INO {
            let current = self.views.current();
            let (slot, view) = self.pins.lookup(name.as_bytes(), &current, Instant::now()).ok_or(Errno::ENOENT)?;
            return Ok((placed_attr(Place::Pin(slot), &view.root()), TOKEN_TTL));
        }
        if parent == INodeNo::ROOT && name.as_bytes() == PIN_DIR.as_bytes() {
            return Ok((pin_dir_attr(&self.views.current().root()), TTL));
        }
        self.with(parent, |r, place| {
            let child = dir(r)?.lookup(name.as_bytes()).ok_or(Errno::ENOENT)?;
            Ok((placed_attr(place, &child), TTL))
        })
    }

    fn getattr_of(&self, ino: INodeNo) -> Result<FileAttr, Errno> {
        if ino.0 == PIN_DIR_INO {
            return Ok(pin_dir_attr(&self.views.current().root()));
        }
        self.with(ino, |r, _| {
            let mut attr = r.attr();
            attr.ino = ino.0;
            Ok(file_attr(&attr))
        })
    }

    fn open_handle(
        &self,
        ino: INodeNo,
        flags: OpenFlags,
        reply: &ReplyOpen,
    ) -> Result<(u64, FopenFlags, Option<Arc<fuser::BackingId>>), Errno> {
        if opens_for_writing(flags) {
            return Err(Errno::EROFS);
        }
        if ino.0 == PIN_DIR_INO {
            return Err(Errno::EISDIR);
        }
        let content = self.with(ino, |r, _| match r {
            Resolved::Object(object) => Ok(Content::Object(object.sha256, object.size)),
            Resolved::Node(node) => match node.content() {
                Some(FileContent::Object(object)) => Ok(Content::Object(object.sha256, object.size)),
                Some(FileContent::Inline(bytes)) => Ok(Content::Inline(Arc::clone(bytes))),
                None => Err(Errno::EISDIR),
            },
        })?;
        // Content never changes under an inode, so the page cache may outlive the open; the
        // kernel sends no FLUSH for read-only files that need none.
        let cached = FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_NOFLUSH;
        let (sha256, size) = match content {
            Content::Inline(bytes) => return Ok((self.open.insert(Handle::Inline(bytes)), cached, None)),
            Content::Object(sha256, size) => (sha256, size),
        };
        let file = self.open_pool_file(&sha256, size)?;
        if self.passthrough.load(Ordering::Relaxed) {
            match self.open.backing(ino.0, || reply.open_backing(&file)) {
                Ok(backing) => {
                    let fh = self.open.insert(Handle::Passthrough { ino: ino.0, backing: Arc::clone(&backing) });
                    return Ok((fh, FopenFlags::FOPEN_NOFLUSH, Some(backing)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "FUSE passthrough refused; answering reads from the pool from now on");
                    self.passthrough.store(false, Ordering::Relaxed);
                }
            }
        }
        Ok((self.open.insert(Handle::Pread(Arc::new(file))), cached, None))
    }

    fn open_pool_file(&self, sha256: &crate::digest::Sha256, size: u64) -> Result<File, Errno> {
        self.pool.open(sha256, size).map_err(|e| {
            tracing::error!(object = %sha256, error = %e, "cannot serve pool object");
            Errno::EIO
        })
    }

    fn read_bytes(&self, fh: FileHandle, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let source = self.open.source(fh.0).ok_or(Errno::EBADF)?;
        source.read(offset, size).map_err(|e| {
            tracing::error!(error = %e, "reading a pool object failed");
            Errno::EIO
        })
    }
}

enum Content {
    Object(crate::digest::Sha256, u64),
    Inline(Arc<[u8]>),
}

impl Filesystem for MirrorFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        for (flag, why) in WANTED_FLAGS {
            if let Err(missing) = config.add_capabilities(flag) {
                tracing::debug!(?missing, why, "kernel lacks a FUSE capability");
            }
        }
        let granted = self.passthrough.load(Ordering::Relaxed)
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(PASSTHROUGH_STACK_DEPTH).is_ok();
        self.passthrough.store(granted, Ordering::Relaxed);
        tracing::info!(passthrough = granted, "FUSE session initialised");
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_attr(parent, name) {
            Ok((attr, ttl)) => reply.entry(&ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.getattr_of(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.open_handle(ino, flags, &reply) {
            Ok((fh, flags, Some(backing))) => reply.opened_passthrough(FileHandle(fh), flags, &backing),
            Ok((fh, flags, None)) => reply.opened(FileHandle(fh), flags),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_bytes(fh, offset, size) {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.open.release(fh.0);
        reply.ok();
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    /// ENOSYS once makes every later directory open free (no upcall); readdir is stateless.
    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        if ino.0 == PIN_DIR_INO {
            return reply.ok();
        }
        let listed = self.with(ino, |r, place| {
            for (next, name, node) in listing(dir(r)?, offset) {
                if reply.add(INodeNo(placed_ino(place, &node)), next, file_type(&node), name) {
                    break;
                }
            }
            Ok(())
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        if ino.0 == PIN_DIR_INO {
            return reply.ok();
        }
        let listed = self.with(ino, |r, place| {
            for (next, name, node) in listing(dir(r)?, offset) {
                let attr = placed_attr(place, &node);
                if reply.add(attr.ino, next, name, &TTL, &attr, Generation(0)) {
                    break;
                }
            }
            Ok(())
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// Terminal checks (`isatty` on open, as Python and others do) are not for us: ENOTTY
    /// quietly, instead of fuser's default warning log line per call.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let view = self.views.current();
        let blocks = view.object_bytes().div_ceil(u64::from(BLOCK_SIZE));
        let files = view.entry_count() as u64;
        reply.statfs(blocks, 0, 0, files, 0, BLOCK_SIZE, NAME_MAX, BLOCK_SIZE);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match mask.contains(AccessFlags::W_OK) {
            true => reply.error(Errno::EROFS),
            false => reply.ok(),
        }
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    // Everything below would change the tree: the mount is read-only.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, _target: &Path, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(&self, _req: &Request, _ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _wf: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }
}
