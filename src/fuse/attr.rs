//! Attributes and listings as the kernel gets them: a view's [`Attr`] as a `FileAttr` with the
//! mount's fixed modes, and where a node's inode number comes from (the plain tree or a pin).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo, OpenAccMode, OpenFlags};

use crate::tree::inode::{Inode, PIN_DIR_INO};
use crate::tree::{Attr, NodeKind, NodeRef, Resolved};

const FILE_MODE: u16 = 0o444;
const DIR_MODE: u16 = 0o555;
/// Block size reported by stat and statfs (the page size; nginx and cp size buffers by it).
pub(super) const BLOCK_SIZE: u32 = 4096;

/// Where a directory sits: in the plain tree, or in the tree of a pin slot (`.pin/<token>/…`),
/// whose directories need inodes of their own (see [`crate::tree::inode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    Plain,
    Pin(u32),
}

/// The inode `node` has when reached from a directory in `place`.
pub(super) fn placed_ino(place: Place, node: &NodeRef<'_>) -> u64 {
    match place {
        Place::Pin(slot) if node.kind() == NodeKind::Dir => Inode::Pinned { slot, node: node.id() }.encode(),
        _ => node.inode(),
    }
}

/// `node`'s attributes when reached from a directory in `place`.
pub(super) fn placed_attr(place: Place, node: &NodeRef<'_>) -> FileAttr {
    let mut attr = node.attr();
    attr.ino = placed_ino(place, node);
    file_attr(&attr)
}

/// The `.pin` directory: empty to readdir, dated like the root.
pub(super) fn pin_dir_attr(root: &NodeRef<'_>) -> FileAttr {
    let root = root.attr();
    file_attr(&Attr { ino: PIN_DIR_INO, kind: NodeKind::Dir, size: 0, mtime: root.mtime, nlink: 2 })
}

pub(super) fn time(secs: i64) -> SystemTime {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

pub(super) fn file_attr(attr: &Attr) -> FileAttr {
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

pub(super) fn file_type(node: &NodeRef<'_>) -> FileType {
    match node.kind() {
        NodeKind::Dir => FileType::Directory,
        NodeKind::File => FileType::RegularFile,
    }
}

pub(super) fn dir(resolved: Resolved<'_>) -> Result<NodeRef<'_>, Errno> {
    match resolved {
        Resolved::Node(node) if node.kind() == NodeKind::Dir => Ok(node),
        _ => Err(Errno::ENOTDIR),
    }
}

pub(super) fn opens_for_writing(flags: OpenFlags) -> bool {
    flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & (libc::O_TRUNC | libc::O_CREAT) != 0
}

/// Directory listing entries from position `offset`: `.`, `..`, then the children.
pub(super) fn listing<'a>(dir: NodeRef<'a>, offset: u64) -> impl Iterator<Item = (u64, &'a str, NodeRef<'a>)> {
    let dots = [(".", dir), ("..", dir.parent())];
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let children = dir.children_from(offset.saturating_sub(dots.len())).map(|c| (c.name(), c));
    let dots = dots.into_iter().skip(offset);
    dots.chain(children).enumerate().map(move |(i, (name, node))| ((offset.saturating_add(i) + 1) as u64, name, node))
}
