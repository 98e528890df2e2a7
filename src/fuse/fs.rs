//! The `fuser::Filesystem` implementation: each callback is one helper returning
//! `Result<_, Errno>` plus one reply. It reads the current [`View`] through the lock-free
//! [`ViewHandle`] and opens pool files — nothing else (no network, no SQLite, no async).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};

use super::handle::ViewHandle;
use super::open::{Handle, OpenFiles};
use crate::tree::inode::Inode;
use crate::tree::{Attr, FileContent, NodeKind, NodeRef, Resolved};

/// Entry and attribute TTL. Views change only at a switch, which invalidates explicitly; a TTL
/// of 0 measured ≈4× slower than long ones (docs/fuse-notes.md, "Kernel caches"), and a day keeps
/// the kernel from asking again.
const TTL: Duration = Duration::from_secs(24 * 60 * 60);
const FILE_MODE: u16 = 0o444;
const DIR_MODE: u16 = 0o555;
/// Block size reported by stat and statfs (the page size; nginx and cp size buffers by it).
const BLOCK_SIZE: u32 = 4096;
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
    pub pool: PathBuf,
    pub open: OpenFiles,
    /// Set at init when the kernel grants passthrough; cleared if registering a backing file fails.
    pub passthrough: Arc<AtomicBool>,
}

fn time(secs: i64) -> SystemTime {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

fn file_attr(attr: &Attr) -> FileAttr {
    let mtime = time(attr.mtime);
    let (kind, perm) = match attr.kind {
        NodeKind::Dir => (FileType::Directory, DIR_MODE),
        NodeKind::File => (FileType::RegularFile, FILE_MODE),
    };
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: mtime,
        crtime: mtime,
        kind,
        perm,
        nlink: attr.nlink,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

fn file_type(node: &NodeRef<'_>) -> FileType {
    match node.kind() {
        NodeKind::Dir => FileType::Directory,
        NodeKind::File => FileType::RegularFile,
    }
}

fn dir(resolved: Resolved<'_>) -> Result<NodeRef<'_>, Errno> {
    match resolved {
        Resolved::Node(node) if node.kind() == NodeKind::Dir => Ok(node),
        _ => Err(Errno::ENOTDIR),
    }
}

fn opens_for_writing(flags: OpenFlags) -> bool {
    flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & (libc::O_TRUNC | libc::O_CREAT) != 0
}

impl MirrorFs {
    /// Run `f` on what `ino` names: directories and generation-scoped files in the view of their
    /// generation, objects in the newest kept view that has them. Gone → ESTALE.
    fn with<R>(&self, ino: INodeNo, f: impl FnOnce(Resolved<'_>) -> Result<R, Errno>) -> Result<R, Errno> {
        let inode = Inode::decode(ino.0).ok_or(Errno::ESTALE)?;
        let views = self.views.load();
        let view = match inode {
            Inode::Root | Inode::Object { .. } => views.current(),
            Inode::Dir { generation, .. } | Inode::GenFile { generation, .. } => {
                views.by_bits(generation).ok_or(Errno::ESTALE)?
            }
        };
        match (view.resolve(inode), inode) {
            (Some(resolved), _) => f(resolved),
            (None, Inode::Object { id }) => f(Resolved::Object(views.object(id).ok_or(Errno::ESTALE)?)),
            (None, _) => Err(Errno::ESTALE),
        }
    }

    fn lookup_attr(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        self.with(parent, |r| {
            let child = dir(r)?.lookup(name.as_bytes()).ok_or(Errno::ENOENT)?;
            Ok(file_attr(&child.attr()))
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
        let content = self.with(ino, |r| match r {
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
        let file = self.open_pool_file(&crate::pool::object_path(&self.pool, &sha256), size)?;
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

    fn open_pool_file(&self, path: &Path, size: u64) -> Result<File, Errno> {
        let checked = File::open(path).and_then(|f| {
            let len = f.metadata()?.len();
            match len == size {
                true => Ok(f),
                false => Err(io::Error::other(format!("pool object has {len} bytes, the catalog says {size}"))),
            }
        });
        checked.map_err(|e| {
            tracing::error!(path = %path.display(), error = %e, "cannot serve pool object");
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

/// Directory listing entries from position `offset`: `.`, `..`, then the children.
fn listing<'a>(dir: NodeRef<'a>, offset: u64) -> impl Iterator<Item = (u64, &'a str, NodeRef<'a>)> {
    let dots = [(".", dir), ("..", dir.parent())];
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let children = dir.children_from(offset.saturating_sub(dots.len())).map(|c| (c.name(), c));
    let dots = dots.into_iter().skip(offset);
    dots.chain(children).enumerate().map(move |(i, (name, node))| ((offset.saturating_add(i) + 1) as u64, name, node))
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
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.with(ino, |r| Ok(file_attr(&r.attr()))) {
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
        let listed = self.with(ino, |r| {
            for (next, name, node) in listing(dir(r)?, offset) {
                if reply.add(INodeNo(node.inode()), next, file_type(&node), name) {
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
        let listed = self.with(ino, |r| {
            for (next, name, node) in listing(dir(r)?, offset) {
                let attr = file_attr(&node.attr());
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
