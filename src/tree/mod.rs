//! The immutable view model: the tree the mount shows, built from a [`ViewSource`] in one pass and
//! never changed afterwards (the FUSE layer swaps whole views). Knows nothing of FUSE, SQL, HTTP or
//! tokio.
//!
//! # Layout (what the mount shows)
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
//! One `Vec<Node>` (24 bytes a node, asserted at compile time beside [`Node`]) in breadth-first
//! order: the children of a directory are contiguous and sorted by name bytes, so lookup is a
//! binary search and readdir a slice. Names live once each in one string arena (a snapshot tree
//! repeats the published names for free); objects are a table sorted by id. Alias copies are
//! appended after the main tree.
//!
//! Inode numbers: see [`inode`].

mod alias;
mod assemble;
mod build;
mod fxhash;
pub mod image;
pub mod inode;
mod node;
pub mod source;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use self::inode::Inode;
pub use self::node::NodeRef;
pub(crate) use self::node::{clamp_mtime, find_child, Kind, Node};
use self::source::{ObjectMeta, ViewSource};

/// Path of the status document every view shows at its root (inline, refreshed by the daemon).
pub const STATUS_FILE: &str = "status.json";

/// Index of a node in a [`View`]; the root is node 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(pub u32);

impl NodeId {
    pub const ROOT: NodeId = NodeId(0);
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
    /// Heap bytes held by the view (its tables, when they are not mapped from an image).
    pub bytes: usize,
    /// Bytes of the view image the tables are mapped from (0 for a view built in memory); the
    /// kernel pages them in as they are read and can drop them again (page cache, not heap).
    pub mapped: usize,
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
    /// On a shared store the serving nodes read only view images: one that cannot be written
    /// refuses the publish.
    #[error("the view image could not be written ({reason}): serving nodes of a shared store read only images")]
    ImageNotWritten { reason: String },
}

/// Where the tables of a view live: built in memory, or mapped from a view image ([`image`]).
enum Tables {
    Owned { nodes: Vec<Node>, names: String, objects: Vec<ObjectMeta> },
    Mapped(image::Mapped),
}

impl Tables {
    fn nodes(&self) -> &[Node] {
        match self {
            Tables::Owned { nodes, .. } => nodes,
            Tables::Mapped(m) => m.nodes(),
        }
    }

    fn names(&self) -> &[u8] {
        match self {
            Tables::Owned { names, .. } => names.as_bytes(),
            Tables::Mapped(m) => m.names(),
        }
    }

    fn objects(&self) -> &[ObjectMeta] {
        match self {
            Tables::Owned { objects, .. } => objects,
            Tables::Mapped(m) => m.objects(),
        }
    }
}

/// Content of an inline file, with the mtime it shows.
#[derive(Clone, Debug)]
pub(crate) struct InlineFile {
    bytes: Arc<[u8]>,
    mtime: i64,
}

/// The immutable tree of one publish generation.
pub struct View {
    generation: u64,
    /// Shared by views that differ only in inline content ([`View::with_inline_file`]).
    tables: Arc<Tables>,
    inline: Vec<InlineFile>,
    /// [`View::object_bytes`], computed on first use (it reads every object record).
    object_bytes: std::sync::OnceLock<u64>,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").field("generation", &self.generation).field("entries", &self.entry_count()).finish()
    }
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
        let root = Node::new(0, 0, 0, 0, 1, 0, Kind::Dir);
        View::from_parts(generation, vec![root], String::new(), Vec::new(), Vec::new())
    }

    pub(crate) fn from_parts(
        generation: u64,
        nodes: Vec<Node>,
        names: String,
        objects: Vec<ObjectMeta>,
        inline: Vec<Arc<[u8]>>,
    ) -> View {
        let mut inline: Vec<InlineFile> = inline.into_iter().map(|bytes| InlineFile { bytes, mtime: 0 }).collect();
        // An inline file shows the mtime its first node was given at build time.
        for node in nodes.iter().filter(|n| n.kind() == Kind::Inline) {
            if let Some(f) = inline.get_mut(node.a as usize) {
                f.mtime = i64::from(node.mtime);
            }
        }
        View {
            generation,
            tables: Arc::new(Tables::Owned { nodes, names, objects }),
            inline,
            object_bytes: Default::default(),
        }
    }

    fn from_mapped(generation: u64, mapped: image::Mapped, inline: Vec<InlineFile>) -> View {
        View { generation, tables: Arc::new(Tables::Mapped(mapped)), inline, object_bytes: Default::default() }
    }

    fn nodes(&self) -> &[Node] {
        self.tables.nodes()
    }

    fn names(&self) -> &[u8] {
        self.tables.names()
    }

    fn objects(&self) -> &[ObjectMeta] {
        self.tables.objects()
    }

    /// Identifies the tables: equal for views that differ only in inline files
    /// ([`View::with_inline_file`]), which cost nothing extra to keep.
    pub fn tables_id(&self) -> usize {
        Arc::as_ptr(&self.tables) as usize
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

    /// This view with the inline file at `path` showing `content`, dated `mtime`; the tree itself
    /// is shared, not copied (the daemon refreshes status.json this way). `None` when no inline
    /// file sits at `path`. The copy keeps this view's generation: re-stamp it before sharing.
    pub fn with_inline_file(&self, path: &str, content: Vec<u8>, mtime: i64) -> Option<View> {
        let node = self.lookup_path(path).filter(|n| n.raw().kind() == Kind::Inline)?;
        let mut inline = self.inline.clone();
        *inline.get_mut(node.raw().a as usize)? = InlineFile { bytes: content.into(), mtime };
        Some(View {
            generation: self.generation,
            tables: Arc::clone(&self.tables),
            inline,
            object_bytes: self.object_bytes.clone(),
        })
    }

    pub fn stats(&self) -> ViewStats {
        let inline: usize = self.inline.iter().map(|f| f.bytes.len()).sum();
        let inline_table = self.inline.capacity() * std::mem::size_of::<InlineFile>() + inline;
        let nodes = self.nodes();
        let (bytes, mapped) = match &*self.tables {
            Tables::Owned { nodes, names, objects } => (
                nodes.capacity() * std::mem::size_of::<Node>()
                    + names.capacity()
                    + objects.capacity() * std::mem::size_of::<ObjectMeta>(),
                0,
            ),
            Tables::Mapped(m) => (0, m.len()),
        };
        ViewStats {
            entries: nodes.len(),
            dirs: nodes.iter().filter(|n| n.kind() == Kind::Dir).count(),
            objects: self.objects().len(),
            bytes: bytes + inline_table,
            mapped,
        }
    }

    pub fn root(&self) -> NodeRef<'_> {
        NodeRef { view: self, idx: 0 }
    }

    /// The node with this id, if the view has one.
    pub fn node(&self, id: NodeId) -> Option<NodeRef<'_>> {
        (self.nodes().len() > id.0 as usize).then_some(NodeRef { view: self, idx: id.0 })
    }

    /// Walk a `/`-separated path from the root (`""` is the root).
    pub fn lookup_path(&self, path: &str) -> Option<NodeRef<'_>> {
        path.split('/').filter(|c| !c.is_empty()).try_fold(self.root(), |dir, name| dir.lookup(name.as_bytes()))
    }

    pub fn object_by_id(&self, id: u64) -> Option<&ObjectMeta> {
        let objects = self.objects();
        let i = objects.binary_search_by_key(&id, |o| o.id).ok()?;
        objects.get(i)
    }

    /// What `inode` names in this view, assuming its generation bits (or its pin slot) belong
    /// to this view (callers pick the view by generation or slot first). `None`: not in this view.
    pub fn resolve(&self, inode: Inode) -> Option<Resolved<'_>> {
        match inode {
            Inode::Root => Some(Resolved::Node(self.root())),
            Inode::Object { id } => self.object_by_id(id).map(Resolved::Object),
            Inode::Dir { node, .. } | Inode::Pinned { node, .. } => {
                self.node(node).filter(|n| n.kind() == NodeKind::Dir).map(Resolved::Node)
            }
            Inode::GenFile { node, .. } => {
                self.node(node).filter(|n| n.kind() == NodeKind::File && n.raw().b == node.0).map(Resolved::Node)
            }
        }
    }

    /// Total size of the distinct objects (for statfs).
    pub fn object_bytes(&self) -> u64 {
        *self.object_bytes.get_or_init(|| self.objects().iter().map(|o| o.size).sum())
    }

    /// Files and directories, alias copies included (cheap, unlike [`View::stats`], which reads
    /// every node).
    pub fn entry_count(&self) -> usize {
        self.nodes().len()
    }

    fn name_of(&self, node: &Node) -> &str {
        let start = node.name_off as usize;
        let bytes = self.names().get(start..start + usize::from(node.name_len)).unwrap_or(&[]);
        std::str::from_utf8(bytes).unwrap_or("")
    }
}
