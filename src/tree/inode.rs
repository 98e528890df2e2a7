//! Inode numbers of the view: the bit layout that the view model hands out and the FUSE adapter
//! decodes. One `u64`, split by a two-bit tag:
//!
//! ```text
//!  63 62 61                            32 31                             0
//! ┌─────┬────────────────────────────────────────────────────────────────┐
//! │ 0 0 │ ObjectMeta.id + 2                                              │ object file
//! ├─────┼────────────────────────────────┬───────────────────────────────┤
//! │ 0 1 │ pin slot mod 2^30              │ node index                    │ pinned directory
//! │ 1 0 │ view generation mod 2^30       │ node index                    │ directory
//! │ 1 1 │ view generation mod 2^30       │ node index                    │ generation-scoped file
//! └─────┴────────────────────────────────┴───────────────────────────────┘
//!  inode 0 is invalid; inode 1 is the root directory in every generation.
//! ```
//!
//! - Object file: the same pool object has the same inode in every generation and at every path,
//!   so the kernel's page cache and passthrough backing file survive a snapshot switch.
//! - Directory: carries the generation, so a path walk that started in one view never continues
//!   in another (a switch changes every directory inode below the root).
//! - Generation-scoped file: a file whose attributes are not the object's own (an `mtime_override`
//!   different from the object mtime, or an inline file); attributes are per inode, so it cannot
//!   share the object inode. Its node index is that of the first node showing it (alias copies
//!   reuse the original's inode).
//! - Pinned directory: a directory of the view a pin slot holds (`.pin/<token>/…`, see
//!   `crate::fuse`'s pin table). Linux allows a directory inode under one path only, so the
//!   same directory seen through the plain root and through a pin (or two pins) needs one inode
//!   each; slot 0, node 0 is the `.pin` directory itself, node 0 of any other slot its root.

use super::NodeId;

/// FUSE_ROOT_ID: the kernel addresses the mount root by this number.
pub const ROOT_INO: u64 = 1;

const TAG_SHIFT: u32 = 62;
const TAG_OBJECT: u64 = 0b00;
const TAG_PINNED: u64 = 0b01;
const TAG_DIR: u64 = 0b10;
const TAG_GEN_FILE: u64 = 0b11;

/// Bits of the generation kept in directory and generation-scoped inodes. 2^30 switches before a
/// number repeats — far beyond the few generations the FUSE layer keeps reachable.
pub const GENERATION_BITS: u32 = 30;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;
const NODE_MASK: u64 = u32::MAX as u64;

/// Object ids are offset so that an object inode is never 0 (invalid) or 1 (root).
const OBJECT_INO_BASE: u64 = 2;
/// The largest `ObjectMeta.id` that still fits the 62-bit object field.
pub const MAX_OBJECT_ID: u64 = (1 << TAG_SHIFT) - 1 - OBJECT_INO_BASE;

/// A decoded inode number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inode {
    Root,
    /// A file showing a pool object with the object's own attributes.
    Object {
        id: u64,
    },
    /// A directory of the view whose generation (mod 2^30) is `generation`.
    Dir {
        generation: u32,
        node: NodeId,
    },
    /// A file with view-specific attributes (mtime override, inline content).
    GenFile {
        generation: u32,
        node: NodeId,
    },
    /// A directory of the view pin slot `slot` (mod 2^30) holds; slot 0 node 0 is the `.pin`
    /// directory.
    Pinned {
        slot: u32,
        node: NodeId,
    },
}

/// The `.pin` directory (slot 0 is never handed to a pin).
pub const PIN_DIR_INO: u64 = TAG_PINNED << TAG_SHIFT;

/// Bits of a pin slot kept in its inodes; slots wrap at this (the FUSE layer skips live ones).
pub const SLOT_BITS: u32 = GENERATION_BITS;

/// The generation bits an inode of a view with this generation carries.
pub fn generation_bits(generation: u64) -> u32 {
    // Masked to 30 bits, so the cast cannot truncate.
    (generation & GENERATION_MASK) as u32
}

impl Inode {
    pub fn encode(self) -> u64 {
        match self {
            Inode::Root => ROOT_INO,
            Inode::Object { id } => id + OBJECT_INO_BASE,
            Inode::Dir { node, .. } if node == NodeId::ROOT => ROOT_INO,
            Inode::Dir { generation, node } => scoped(TAG_DIR, generation, node),
            Inode::GenFile { generation, node } => scoped(TAG_GEN_FILE, generation, node),
            Inode::Pinned { slot, node } => scoped(TAG_PINNED, slot, node),
        }
    }

    /// `None` for numbers this layout never hands out (0, tag `01` with slot 0 and a node other
    /// than 0).
    pub fn decode(ino: u64) -> Option<Inode> {
        let generation = ((ino >> 32) & GENERATION_MASK) as u32;
        let node = NodeId((ino & NODE_MASK) as u32);
        match ino >> TAG_SHIFT {
            _ if ino == ROOT_INO => Some(Inode::Root),
            TAG_OBJECT if ino >= OBJECT_INO_BASE => Some(Inode::Object { id: ino - OBJECT_INO_BASE }),
            TAG_DIR if node == NodeId::ROOT => Some(Inode::Root),
            TAG_DIR => Some(Inode::Dir { generation, node }),
            TAG_GEN_FILE => Some(Inode::GenFile { generation, node }),
            TAG_PINNED if generation == 0 && node != NodeId::ROOT => None,
            TAG_PINNED => Some(Inode::Pinned { slot: generation, node }),
            _ => None,
        }
    }
}

fn scoped(tag: u64, generation: u32, node: NodeId) -> u64 {
    (tag << TAG_SHIFT) | ((u64::from(generation) & GENERATION_MASK) << 32) | u64::from(node.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let cases = [
            Inode::Root,
            Inode::Object { id: 0 },
            Inode::Object { id: 1 },
            Inode::Object { id: MAX_OBJECT_ID },
            Inode::Dir { generation: 7, node: NodeId(3) },
            Inode::Dir { generation: (1 << GENERATION_BITS) - 1, node: NodeId(u32::MAX) },
            Inode::GenFile { generation: 0, node: NodeId(1) },
            Inode::GenFile { generation: 5, node: NodeId(0) },
            Inode::Pinned { slot: 0, node: NodeId::ROOT },
            Inode::Pinned { slot: 1, node: NodeId::ROOT },
            Inode::Pinned { slot: (1 << SLOT_BITS) - 1, node: NodeId(u32::MAX) },
        ];
        for case in cases {
            let ino = case.encode();
            assert!(ino != 0, "{case:?}");
            assert_eq!(Inode::decode(ino), Some(case), "{case:?} -> {ino:#x}");
        }
    }

    #[test]
    fn root_is_one_in_every_generation() {
        for generation in [0, 1, 99] {
            assert_eq!(Inode::Dir { generation, node: NodeId::ROOT }.encode(), ROOT_INO);
        }
        assert_eq!(Inode::decode(ROOT_INO), Some(Inode::Root));
    }

    #[test]
    fn rejects_numbers_never_handed_out() {
        for ino in [0, PIN_DIR_INO | 5] {
            assert_eq!(Inode::decode(ino), None, "{ino:#x}");
        }
    }

    #[test]
    fn kinds_never_collide() {
        let object = Inode::Object { id: 5 }.encode();
        let dir = Inode::Dir { generation: 0, node: NodeId(7) }.encode();
        let file = Inode::GenFile { generation: 0, node: NodeId(7) }.encode();
        let pinned = Inode::Pinned { slot: 0, node: NodeId(7) };
        assert_eq!(Inode::decode(pinned.encode()), None, "slot 0 is the .pin directory alone");
        let pinned = Inode::Pinned { slot: 1, node: NodeId(7) }.encode();
        let all = [object, dir, file, pinned, PIN_DIR_INO, ROOT_INO];
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| b != a), "{a:#x} collides");
        }
        assert_eq!(Inode::decode(PIN_DIR_INO), Some(Inode::Pinned { slot: 0, node: NodeId::ROOT }));
    }

    #[test]
    fn generation_bits_wrap() {
        assert_eq!(generation_bits(1 << GENERATION_BITS), 0);
        assert_eq!(generation_bits(3), 3);
    }
}
