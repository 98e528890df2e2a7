//! One node of a [`View`]: the packed record the tables hold ([`Node`], 24 bytes of plain
//! integers, so a view image maps them as they are) and [`NodeRef`], the borrowed handle callers
//! walk the tree with (name, kind, inode, attributes, content, lookup, readdir). Every index read
//! from a node is bounds-checked: a damaged image shows wrong names, never a panic.

use super::inode::{generation_bits, Inode};
use super::source::ObjectMeta;
use super::{Attr, FileContent, NodeId, NodeKind, View};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Dir,
    /// A pool object; `a` indexes [`View::objects`].
    Object,
    /// Inline content; `a` indexes [`View::inline`].
    Inline,
}

/// One directory or file of the view (24 bytes, plain integers: a view image maps them as is;
/// the zerocopy traits prove it has no padding and that any bytes are a valid value).
#[derive(Clone, Copy, Debug, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout)]
#[repr(C)]
pub(crate) struct Node {
    /// Unix seconds, clamped to 0..=u32::MAX (see [`clamp_mtime`]).
    pub(super) mtime: u32,
    pub(super) name_off: u32,
    pub(super) parent: u32,
    /// Dir: first child. Object: object index. Inline: inline index.
    pub(super) a: u32,
    /// Dir: number of children. File: node whose index names the generation-scoped inode.
    pub(super) b: u32,
    pub(super) name_len: u8,
    /// A [`Kind`] as `u8` (a mapped image may hold any byte; [`Node::kind`] decodes it).
    pub(super) kind: u8,
    /// Dir: number of subdirectories, saturating (nlink = 2 + c; `u16::MAX`: nlink 1, "unknown").
    pub(super) c: u16,
}

const _: () = assert!(std::mem::size_of::<Node>() == 24 && std::mem::align_of::<Node>() == 4);

impl Node {
    pub(super) fn new(mtime: u32, name_off: u32, name_len: u8, parent: u32, a: u32, b: u32, kind: Kind) -> Node {
        Node { mtime, name_off, parent, a, b, name_len, kind: kind as u8, c: 0 }
    }

    /// The node's kind; a byte no build writes (only possible in a damaged image) reads as an
    /// inline file with no content.
    pub(super) fn kind(&self) -> Kind {
        match self.kind {
            0 => Kind::Dir,
            1 => Kind::Object,
            _ => Kind::Inline,
        }
    }

    pub(super) fn nlink(&self) -> u32 {
        match self.c {
            u16::MAX => 1,
            c => 2 + u32::from(c),
        }
    }
}

/// A view stores mtimes as `u32` Unix seconds: 1970 to 2106 covers every Last-Modified a mirror
/// sees; anything outside is clamped.
pub(crate) fn clamp_mtime(mtime: i64) -> u32 {
    mtime.clamp(0, i64::from(u32::MAX)) as u32
}

/// Binary search of `name` among the children of directory node `dir`.
pub(crate) fn find_child(nodes: &[Node], names: &[u8], dir: u32, name: &[u8]) -> Option<u32> {
    let node = nodes.get(dir as usize).filter(|n| n.kind() == Kind::Dir)?;
    let children = nodes.get(node.a as usize..(node.a as usize + node.b as usize))?;
    let name_bytes = |n: &Node| {
        let start = n.name_off as usize;
        names.get(start..start + usize::from(n.name_len)).unwrap_or(&[])
    };
    let i = children.binary_search_by(|c| name_bytes(c).cmp(name)).ok()?;
    Some(node.a + i as u32)
}

/// A node of a view, borrowed.
#[derive(Clone, Copy)]
pub struct NodeRef<'a> {
    pub(super) view: &'a View,
    pub(super) idx: u32,
}

impl std::fmt::Debug for NodeRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRef").field("id", &self.idx).field("name", &self.name()).finish()
    }
}

impl<'a> NodeRef<'a> {
    /// Every `NodeRef` is made with an index inside the view's nodes.
    pub(super) fn raw(&self) -> &'a Node {
        &self.view.nodes()[self.idx as usize]
    }

    pub fn id(&self) -> NodeId {
        NodeId(self.idx)
    }

    /// The entry name (`""` for the root).
    pub fn name(&self) -> &'a str {
        self.view.name_of(self.raw())
    }

    pub fn kind(&self) -> NodeKind {
        match self.raw().kind() {
            Kind::Dir => NodeKind::Dir,
            Kind::Object | Kind::Inline => NodeKind::File,
        }
    }

    /// The parent directory (the root is its own parent).
    pub fn parent(&self) -> NodeRef<'a> {
        let parent = self.raw().parent;
        self.view.node(NodeId(parent)).unwrap_or_else(|| self.view.root())
    }

    pub fn inode(&self) -> u64 {
        let node = self.raw();
        let generation = generation_bits(self.view.generation);
        match node.kind() {
            Kind::Dir => Inode::Dir { generation, node: self.id() }.encode(),
            Kind::Object => match self.object() {
                Some(o) if clamp_mtime(o.mtime) == node.mtime => Inode::Object { id: o.id }.encode(),
                _ => Inode::GenFile { generation, node: NodeId(node.b) }.encode(),
            },
            Kind::Inline => Inode::GenFile { generation, node: NodeId(node.b) }.encode(),
        }
    }

    pub fn attr(&self) -> Attr {
        let node = self.raw();
        let mut mtime = i64::from(node.mtime);
        let (size, nlink) = match (node.kind(), self.content()) {
            (Kind::Dir, _) => (0, node.nlink()),
            (Kind::Object, Some(FileContent::Object(o))) => {
                // The object inode's attributes are the object's own (its exact mtime).
                if clamp_mtime(o.mtime) == node.mtime {
                    mtime = o.mtime;
                }
                (o.size, 1)
            }
            (_, Some(FileContent::Inline(bytes))) => {
                if let Some(f) = self.view.inline.get(node.a as usize) {
                    mtime = f.mtime;
                }
                (bytes.len() as u64, 1)
            }
            (_, _) => (0, 1),
        };
        Attr { ino: self.inode(), kind: self.kind(), size, mtime, nlink }
    }

    fn object(&self) -> Option<&'a ObjectMeta> {
        self.view.objects().get(self.raw().a as usize)
    }

    /// The content of a file (`None` for a directory).
    pub fn content(&self) -> Option<FileContent<'a>> {
        match self.raw().kind() {
            Kind::Dir => None,
            Kind::Object => self.object().map(FileContent::Object),
            Kind::Inline => self.view.inline.get(self.raw().a as usize).map(|f| FileContent::Inline(&f.bytes)),
        }
    }

    /// The child called `name` of this directory.
    pub fn lookup(&self, name: &[u8]) -> Option<NodeRef<'a>> {
        let idx = find_child(self.view.nodes(), self.view.names(), self.idx, name)?;
        Some(NodeRef { view: self.view, idx })
    }

    /// Number of children (0 for a file).
    pub fn child_count(&self) -> usize {
        self.child_range().len()
    }

    /// Indices of the children, clamped to the node table.
    fn child_range(&self) -> std::ops::Range<usize> {
        let node = self.raw();
        match node.kind() {
            Kind::Dir => {
                let len = self.view.nodes().len();
                let start = (node.a as usize).min(len);
                start..(node.a as usize + node.b as usize).min(len)
            }
            _ => 0..0,
        }
    }

    /// Children in name order, starting at position `offset` (readdir).
    pub fn children_from(&self, offset: usize) -> impl Iterator<Item = NodeRef<'a>> + 'a {
        let view = self.view;
        let range = self.child_range();
        let start = range.start.saturating_add(offset).min(range.end);
        (start..range.end).map(move |idx| NodeRef { view, idx: idx as u32 })
    }

    /// Full path from the root, `/`-separated (for logs and tests).
    pub fn path(&self) -> String {
        let mut parts = Vec::new();
        let mut node = *self;
        // A damaged image could hold a parent cycle: a path is never deeper than the node count.
        for _ in 0..self.view.nodes().len() {
            if node.idx == 0 {
                break;
            }
            parts.push(node.name());
            node = node.parent();
        }
        parts.reverse();
        parts.join("/")
    }
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
