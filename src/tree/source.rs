//! The input of the view model: plain data describing what the catalog has published and retained.
//! The catalog produces a [`ViewSource`]; [`super::View::build`] turns it into the immutable tree.
//! Nothing here knows where the data came from (SQL) or where it goes (FUSE).

use crate::digest::Sha256;

/// Index into [`ViewSource::objects`].
pub type ObjectIdx = u32;

/// One pool object as the view needs it (56 bytes of plain integers: a view image maps them as is;
/// the zerocopy traits prove it has no padding and that any bytes are a valid value).
#[derive(
    Clone, Debug, PartialEq, Eq, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout,
)]
#[repr(C)]
pub struct ObjectMeta {
    /// Stable catalog id of the object (never reused): the file inode is derived from it, so the
    /// same content keeps its inode (and page cache / backing file) across snapshot switches.
    pub id: u64,
    pub sha256: Sha256,
    pub size: u64,
    /// Unix seconds: upstream Last-Modified when the object first entered the pool.
    pub mtime: i64,
}

/// What role a file plays in an apt repository; decides where else it appears in the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// InRelease, Release, Release.gpg: canonical path only, from the published snapshot only.
    Release,
    /// An index listed by the Release (Packages*, Translation*, Contents*, …): canonical path from the
    /// published snapshot, plus `<dir>/by-hash/<ALGO>/<digest>` from every snapshot in the view.
    Index,
    /// A package file named by a Packages index: also visible from grace snapshots.
    Package,
    /// A file of a `[[tree]]` (ISO, template, checksum list).
    TreeFile,
}

/// A by-hash name of an index: `ALGO` is one of `MD5Sum`, `SHA1`, `SHA256`, `SHA512`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByHash {
    pub algo: &'static str,
    pub digest: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the snapshot's view root, `/`-separated, no leading slash, no `..`
    /// (e.g. `dists/bookworm/InRelease`, `pool/main/h/hello/hello_1.0_amd64.deb`).
    pub path: String,
    pub object: ObjectIdx,
    pub kind: EntryKind,
    /// By-hash names of this file (Index entries only; empty otherwise).
    pub by_hash: Vec<ByHash>,
    /// Overrides the object's mtime at this path (Release files: their mtime never goes backwards
    /// across a switch or rollback, so it can be newer than the object's own).
    pub mtime_override: Option<i64>,
}

/// How a snapshot takes part in the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The published snapshot of its mirror/tree: canonical paths, by-hash, packages, snapshots/.
    Published,
    /// Superseded but inside the grace window: by-hash, packages (where the published snapshot has
    /// nothing at that path), snapshots/.
    Grace,
    /// Retained, outside the grace window: only under `snapshots/<mirror>/<name>/`.
    Retained,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFiles {
    pub mirror_id: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`
    pub name: String,
    /// View root of the mirror/tree (e.g. `debian/pve`, `iso`), no leading or trailing slash.
    pub view_root: String,
    pub role: Role,
    pub entries: Vec<FileEntry>,
}

/// An extra name for a view directory (`debian/dists` → `debian/pve/dists`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    pub path: String,
    pub target: String,
}

/// Everything the view shows, as the catalog knows it at one publish generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewSource {
    /// Publish generation (increases with every publish); directory inodes carry it.
    pub generation: u64,
    pub objects: Vec<ObjectMeta>,
    pub snapshots: Vec<SnapshotFiles>,
    pub aliases: Vec<Alias>,
    /// Extra read-only files at fixed paths (e.g. `status.json`), content inline.
    pub inline_files: Vec<(String, Vec<u8>)>,
    /// When this view next changes without a publish (Unix seconds: the moment a superseded
    /// snapshot leaves the grace window); `None`: not before the next publish.
    pub valid_until: Option<i64>,
}
