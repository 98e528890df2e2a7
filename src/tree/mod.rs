//! The immutable view model: the tree the mount shows, built from a [`ViewSource`] in one pass and
//! never changed afterwards (the FUSE layer swaps whole views). Knows nothing of FUSE, SQL, HTTP or
//! tokio.
//!
//! # Layout (DESIGN.md "The view")
//!
//! ```text
//! <view_root>/<path>                              every entry of a Published snapshot
//! <view_root>/<dir(path)>/by-hash/<ALGO>/<digest> Index entries of Published and Grace snapshots
//! <view_root>/<path>                              Package entries of Grace snapshots, where no
//!                                                 Published snapshot put anything
//! snapshots/<mirror_id>/<name>/<path>             every entry of every snapshot, frozen
//! <alias.path>/…                                  a copy of the directory nodes of <alias.target>
//! <inline path>                                   inline files (status.json), content in memory
//! ```
//!
//! Published entries, snapshot trees, inline files and aliases are *exclusive*: two of them with
//! different content at one path are a [`BuildError::Conflict`]. By-hash and grace entries only
//! fill gaps (first wins; grace snapshots are taken newest name first). A file and a directory at
//! the same path: the exclusive one wins; both exclusive is a conflict.
//!
//! mtime: a file's is its entry's `mtime_override` or else the object's; an inline file's is the
//! newest file mtime of the view (or the time given to [`View::build_at`]); a directory's is the
//! newest mtime below it (0 when empty), so it moves only when its content does.
//!
//! # Memory layout
//!
//! One `Vec<Node>` (32 bytes a node) in breadth-first order: the children of a directory are
//! contiguous and sorted by name bytes, so lookup is a binary search and readdir a slice. Names
//! live once each in one string arena (a snapshot tree repeats the published names for free);
//! objects are a table sorted by id. Alias copies are appended after the main tree.
//!
//! Inode numbers: see [`inode`].

mod alias;
mod assemble;
mod build;
mod fxhash;
pub mod inode;
pub mod source;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use self::inode::{generation_bits, Inode};
use self::source::{ObjectMeta, ViewSource};

/// Index of a node in a [`View`]; the root is node 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(pub u32);

impl NodeId {
    pub const ROOT: NodeId = NodeId(0);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Dir,
    /// A pool object; `a` indexes [`View::objects`].
    Object,
    /// Inline content; `a` indexes [`View::inline`].
    Inline,
}

/// One directory or file of the view (32 bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    mtime: i64,
    name_off: u32,
    parent: u32,
    /// Dir: first child. Object: object index. Inline: inline index.
    a: u32,
    /// Dir: number of children. File: node whose index names the generation-scoped inode.
    b: u32,
    /// Dir: number of subdirectories (nlink = 2 + c). File: unused.
    c: u32,
    name_len: u16,
    kind: Kind,
}

/// Kind of a node as callers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File,
}

/// Attributes of a node or object (permissions and ownership are fixed by the FUSE layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: NodeKind,
    pub size: u64,
    /// Unix seconds.
    pub mtime: i64,
    pub nlink: u32,
}

impl Attr {
    /// Attributes of the object inode (see [`inode`]): the same wherever the object appears.
    pub fn of_object(object: &ObjectMeta) -> Attr {
        Attr {
            ino: Inode::Object { id: object.id }.encode(),
            kind: NodeKind::File,
            size: object.size,
            mtime: object.mtime,
            nlink: 1,
        }
    }
}

/// What a file shows.
#[derive(Clone, Copy, Debug)]
pub enum FileContent<'a> {
    Object(&'a ObjectMeta),
    Inline(&'a Arc<[u8]>),
}

/// What an inode number names in one view.
#[derive(Clone, Copy, Debug)]
pub enum Resolved<'a> {
    Node(NodeRef<'a>),
    Object(&'a ObjectMeta),
}

impl Resolved<'_> {
    pub fn attr(&self) -> Attr {
        match self {
            Resolved::Node(node) => node.attr(),
            Resolved::Object(object) => Attr::of_object(object),
        }
    }
}

/// Size figures of a view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewStats {
    /// Files and directories, alias copies included.
    pub entries: usize,
    pub dirs: usize,
    pub objects: usize,
    /// Heap bytes held by the view.
    pub bytes: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("conflict at {path}: {first_mirror} and {second_mirror} put different content there")]
    Conflict { path: String, first_mirror: String, second_mirror: String },
    #[error("invalid path {path:?} from {origin}: {reason}")]
    InvalidPath { path: String, origin: String, reason: &'static str },
    #[error("{path:?} of {origin} names object #{index}, but only {count} objects were given")]
    UnknownObject { path: String, origin: String, index: u32, count: usize },
    #[error("object id {id} is listed twice with different content")]
    DuplicateObjectId { id: u64 },
    #[error("object id {id} does not fit an inode number")]
    ObjectIdTooLarge { id: u64 },
    #[error("view too large: more {what} than a 32-bit index can address")]
    TooLarge { what: &'static str },
}

/// The immutable tree of one publish generation.
#[derive(Debug)]
pub struct View {
    generation: u64,
    nodes: Vec<Node>,
    names: String,
    /// Sorted by id, ids unique.
    objects: Vec<ObjectMeta>,
    inline: Vec<Arc<[u8]>>,
}

impl View {
    /// Build the view of `source`; inline files get the newest file mtime of the view.
    pub fn build(source: &ViewSource) -> Result<View, BuildError> {
        assemble::build(source, None)
    }

    /// Like [`View::build`], with inline files dated `inline_mtime` (Unix seconds).
    pub fn build_at(source: &ViewSource, inline_mtime: i64) -> Result<View, BuildError> {
        assemble::build(source, Some(inline_mtime))
    }

    /// A view with nothing but an empty root.
    pub fn empty(generation: u64) -> View {
        let root = Node { mtime: 0, name_off: 0, parent: 0, a: 1, b: 0, c: 0, name_len: 0, kind: Kind::Dir };
        View { generation, nodes: vec![root], names: String::new(), objects: Vec::new(), inline: Vec::new() }
    }

    pub(crate) fn from_parts(
        generation: u64,
        nodes: Vec<Node>,
        names: String,
        objects: Vec<ObjectMeta>,
        inline: Vec<Arc<[u8]>>,
    ) -> View {
        View { generation, nodes, names, objects, inline }
    }

    /// The generation directory inodes carry (the source's, unless re-stamped).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Give the view another generation before it is shared (the FUSE layer keeps generations
    /// strictly increasing, so inode numbers of different trees never meet).
    pub(crate) fn restamp(&mut self, generation: u64) {
        self.generation = generation;
    }

    pub fn stats(&self) -> ViewStats {
        let inline: usize = self.inline.iter().map(|b| b.len()).sum();
        ViewStats {
            entries: self.nodes.len(),
            dirs: self.nodes.iter().filter(|n| n.kind == Kind::Dir).count(),
            objects: self.objects.len(),
            bytes: self.nodes.capacity() * std::mem::size_of::<Node>()
                + self.names.capacity()
                + self.objects.capacity() * std::mem::size_of::<ObjectMeta>()
                + self.inline.capacity() * std::mem::size_of::<Arc<[u8]>>()
                + inline,
        }
    }

    pub fn root(&self) -> NodeRef<'_> {
        NodeRef { view: self, idx: 0 }
    }

    /// The node with this id, if the view has one.
    pub fn node(&self, id: NodeId) -> Option<NodeRef<'_>> {
        (self.nodes.len() > id.0 as usize).then_some(NodeRef { view: self, idx: id.0 })
    }

    /// Walk a `/`-separated path from the root (`""` is the root).
    pub fn lookup_path(&self, path: &str) -> Option<NodeRef<'_>> {
        path.split('/').filter(|c| !c.is_empty()).try_fold(self.root(), |dir, name| dir.lookup(name.as_bytes()))
    }

    pub fn object_by_id(&self, id: u64) -> Option<&ObjectMeta> {
        let i = self.objects.binary_search_by_key(&id, |o| o.id).ok()?;
        self.objects.get(i)
    }

    /// What `inode` names in this view, assuming its generation bits match this view's
    /// (callers pick the view by generation first). `None`: not in this view.
    pub fn resolve(&self, inode: Inode) -> Option<Resolved<'_>> {
        match inode {
            Inode::Root => Some(Resolved::Node(self.root())),
            Inode::Object { id } => self.object_by_id(id).map(Resolved::Object),
            Inode::Dir { node, .. } => self.node(node).filter(|n| n.kind() == NodeKind::Dir).map(Resolved::Node),
            Inode::GenFile { node, .. } => {
                self.node(node).filter(|n| n.kind() == NodeKind::File && n.raw().b == node.0).map(Resolved::Node)
            }
        }
    }

    /// Total size of the distinct objects (for statfs).
    pub fn object_bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }

    fn name_of(&self, node: &Node) -> &str {
        let start = node.name_off as usize;
        self.names.get(start..start + usize::from(node.name_len)).unwrap_or("")
    }
}

/// Binary search of `name` among the children of directory node `dir`.
pub(crate) fn find_child(nodes: &[Node], names: &str, dir: u32, name: &[u8]) -> Option<u32> {
    let node = nodes.get(dir as usize).filter(|n| n.kind == Kind::Dir)?;
    let children = nodes.get(node.a as usize..(node.a + node.b) as usize)?;
    let name_bytes = |n: &Node| {
        let start = n.name_off as usize;
        names.as_bytes().get(start..start + usize::from(n.name_len)).unwrap_or(&[])
    };
    let i = children.binary_search_by(|c| name_bytes(c).cmp(name)).ok()?;
    Some(node.a + i as u32)
}

/// A node of a view, borrowed.
#[derive(Clone, Copy)]
pub struct NodeRef<'a> {
    view: &'a View,
    idx: u32,
}

impl std::fmt::Debug for NodeRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRef").field("id", &self.idx).field("name", &self.name()).finish()
    }
}

impl<'a> NodeRef<'a> {
    fn raw(&self) -> &'a Node {
        &self.view.nodes[self.idx as usize]
    }

    pub fn id(&self) -> NodeId {
        NodeId(self.idx)
    }

    /// The entry name (`""` for the root).
    pub fn name(&self) -> &'a str {
        self.view.name_of(self.raw())
    }

    pub fn kind(&self) -> NodeKind {
        match self.raw().kind {
            Kind::Dir => NodeKind::Dir,
            Kind::Object | Kind::Inline => NodeKind::File,
        }
    }

    /// The parent directory (the root is its own parent).
    pub fn parent(&self) -> NodeRef<'a> {
        NodeRef { view: self.view, idx: self.raw().parent }
    }

    pub fn inode(&self) -> u64 {
        let node = self.raw();
        let generation = generation_bits(self.view.generation);
        match node.kind {
            Kind::Dir => Inode::Dir { generation, node: self.id() }.encode(),
            Kind::Object => match self.object() {
                Some(o) if o.mtime == node.mtime => Inode::Object { id: o.id }.encode(),
                _ => Inode::GenFile { generation, node: NodeId(node.b) }.encode(),
            },
            Kind::Inline => Inode::GenFile { generation, node: NodeId(node.b) }.encode(),
        }
    }

    pub fn attr(&self) -> Attr {
        let node = self.raw();
        let (size, nlink) = match (node.kind, self.content()) {
            (Kind::Dir, _) => (0, 2 + node.c),
            (_, Some(FileContent::Object(o))) => (o.size, 1),
            (_, Some(FileContent::Inline(bytes))) => (bytes.len() as u64, 1),
            (_, None) => (0, 1),
        };
        Attr { ino: self.inode(), kind: self.kind(), size, mtime: node.mtime, nlink }
    }

    fn object(&self) -> Option<&'a ObjectMeta> {
        self.view.objects.get(self.raw().a as usize)
    }

    /// The content of a file (`None` for a directory).
    pub fn content(&self) -> Option<FileContent<'a>> {
        match self.raw().kind {
            Kind::Dir => None,
            Kind::Object => self.object().map(FileContent::Object),
            Kind::Inline => self.view.inline.get(self.raw().a as usize).map(FileContent::Inline),
        }
    }

    /// The child called `name` of this directory.
    pub fn lookup(&self, name: &[u8]) -> Option<NodeRef<'a>> {
        let idx = find_child(&self.view.nodes, &self.view.names, self.idx, name)?;
        Some(NodeRef { view: self.view, idx })
    }

    /// Number of children (0 for a file).
    pub fn child_count(&self) -> usize {
        match self.raw().kind {
            Kind::Dir => self.raw().b as usize,
            _ => 0,
        }
    }

    /// Children in name order, starting at position `offset` (readdir).
    pub fn children_from(&self, offset: usize) -> impl Iterator<Item = NodeRef<'a>> + 'a {
        let view = self.view;
        let node = self.raw();
        let range = match node.kind {
            Kind::Dir => node.a as usize + offset.min(node.b as usize)..(node.a + node.b) as usize,
            _ => 0..0,
        };
        range.map(move |idx| NodeRef { view, idx: idx as u32 })
    }

    /// Full path from the root, `/`-separated (for logs and tests).
    pub fn path(&self) -> String {
        let mut parts = Vec::new();
        let mut node = *self;
        while node.idx != 0 {
            parts.push(node.name());
            node = node.parent();
        }
        parts.reverse();
        parts.join("/")
    }
}
