//! First phase of [`super::View::build`]: apply the layout rules to every snapshot entry, inline
//! file and alias, producing flat file items keyed by an interned directory table. Names borrow
//! from the [`ViewSource`]; nothing is copied per entry but a fixed-size item.

use std::collections::hash_map::Entry;

use super::fxhash::FxHashMap;
use super::source::{EntryKind, FileEntry, Role, SnapshotFiles, ViewSource};
use super::BuildError;

pub(super) const ROOT_DIR: u32 = 0;
/// "No origin yet" marker in [`DirRec`].
pub(super) const NO_ORIGIN: u32 = u32::MAX;
/// Linux NAME_MAX: the kernel refuses longer names, so the view never shows them.
const NAME_MAX: usize = 255;

/// Who claims a path: exclusive claims conflict with each other, the others only fill gaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Rank {
    Exclusive,
    ByHash,
    GracePackage,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Payload {
    /// Index into `ViewSource::objects`.
    Object(u32),
    /// Index into `ViewSource::inline_files`.
    Inline(u32),
}

/// One file placed in the view.
#[derive(Clone, Copy, Debug)]
pub(super) struct Item<'a> {
    pub dir: u32,
    pub name: &'a str,
    pub payload: Payload,
    pub mtime: i64,
    pub rank: Rank,
    pub origin: u32,
    /// Insertion order: ties between equal ranks go to the earlier claim.
    pub seq: u32,
}

pub(super) struct DirRec<'a> {
    pub parent: u32,
    pub name: &'a str,
    /// First exclusive claim at or below this directory ([`NO_ORIGIN`] if none).
    pub exclusive: u32,
    /// First claim of any rank at or below it.
    pub any: u32,
    /// Set when this directory is the placeholder of alias `n`.
    pub alias: Option<u32>,
}

/// Directories by (parent, name); ids grow from parent to child.
pub(super) struct DirTable<'a> {
    pub recs: Vec<DirRec<'a>>,
    index: FxHashMap<(u32, &'a str), u32>,
}

impl<'a> DirTable<'a> {
    fn new() -> Self {
        let root = DirRec { parent: ROOT_DIR, name: "", exclusive: NO_ORIGIN, any: NO_ORIGIN, alias: None };
        DirTable { recs: vec![root], index: FxHashMap::default() }
    }

    fn child(&mut self, parent: u32, name: &'a str) -> Result<u32, BuildError> {
        // One hash and probe for a lookup-or-insert (most calls create a directory).
        match self.index.entry((parent, name)) {
            Entry::Occupied(found) => Ok(*found.get()),
            Entry::Vacant(slot) => {
                let id = u32::try_from(self.recs.len()).map_err(|_| BuildError::TooLarge { what: "directories" })?;
                self.recs.push(DirRec { parent, name, exclusive: NO_ORIGIN, any: NO_ORIGIN, alias: None });
                slot.insert(id);
                Ok(id)
            }
        }
    }

    /// Intern every component of `rel` below `base`. `Err(reason)` for an invalid component.
    pub fn intern_path(&mut self, base: u32, rel: &'a str) -> Result<Result<u32, &'static str>, BuildError> {
        let mut dir = base;
        for part in components(rel) {
            match check_component(part) {
                Ok(()) => dir = self.child(dir, part)?,
                Err(reason) => return Ok(Err(reason)),
            }
        }
        Ok(Ok(dir))
    }

    /// The directory at `rel` below `base`, if it exists.
    pub fn find_path(&self, base: u32, rel: &str) -> Option<u32> {
        components(rel).try_fold(base, |dir, part| self.index.get(&(dir, part)).copied())
    }

    /// `/`-separated path of a directory from the root.
    pub fn path_of(&self, mut dir: u32) -> String {
        let mut parts = Vec::new();
        while dir != ROOT_DIR {
            let rec = &self.recs[dir as usize];
            parts.push(rec.name);
            dir = rec.parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// Record a claim at `dir` and every ancestor.
    pub fn mark(&mut self, mut dir: u32, origin: u32, exclusive: bool) {
        loop {
            let rec = &mut self.recs[dir as usize];
            let done = (rec.any != NO_ORIGIN) && (!exclusive || rec.exclusive != NO_ORIGIN);
            if rec.any == NO_ORIGIN {
                rec.any = origin;
            }
            if exclusive && rec.exclusive == NO_ORIGIN {
                rec.exclusive = origin;
            }
            if done || dir == ROOT_DIR {
                return;
            }
            dir = rec.parent;
        }
    }
}

/// Components of a relative path (`""` has none).
fn components(rel: &str) -> impl Iterator<Item = &str> {
    rel.split('/').filter({
        let empty = rel.is_empty();
        move |_| !empty
    })
}

/// Why a path component cannot appear in the view, if it cannot.
pub(super) fn check_component(part: &str) -> Result<(), &'static str> {
    match part {
        "" => Err("empty path component (leading, trailing or double slash)"),
        "." | ".." => Err("`.` or `..` component"),
        _ if part.len() > NAME_MAX => Err("component longer than 255 bytes"),
        _ if part.contains('\0') => Err("NUL byte"),
        _ => Ok(()),
    }
}

/// Names of claimants, for errors: snapshot `i` is origin `i`, then inline files, then aliases.
pub(super) struct Origins<'a> {
    source: &'a ViewSource,
}

impl<'a> Origins<'a> {
    pub fn new(source: &'a ViewSource) -> Self {
        Origins { source }
    }

    pub fn inline(&self) -> u32 {
        self.source.snapshots.len() as u32
    }

    pub fn alias(&self, n: usize) -> u32 {
        self.inline() + 1 + n as u32
    }

    pub fn name(&self, origin: u32) -> String {
        let snapshots = &self.source.snapshots;
        let origin = origin as usize;
        if let Some(s) = snapshots.get(origin) {
            return format!("mirror {}", s.mirror_id);
        }
        match self.source.aliases.get(origin.wrapping_sub(snapshots.len() + 1)) {
            _ if origin == snapshots.len() => "inline file".to_owned(),
            Some(a) => format!("alias {} -> {}", a.path, a.target),
            None => "unknown".to_owned(),
        }
    }
}

/// Output of the collecting phase.
pub(super) struct Collected<'a> {
    pub dirs: DirTable<'a>,
    pub items: Vec<Item<'a>>,
    /// Newest file mtime seen (0 if none).
    pub max_mtime: i64,
}

struct Collector<'a> {
    source: &'a ViewSource,
    origins: Origins<'a>,
    dirs: DirTable<'a>,
    items: Vec<Item<'a>>,
    /// The last directory placed into below each recently used base (see [`Cursor`]).
    cursors: Vec<Cursor<'a>>,
    /// The cursor [`Collector::cursor`] replaces next when all are taken.
    victim: usize,
    max_mtime: i64,
}

/// Cursors kept: one per base a snapshot places into at once (its frozen copy, its live root,
/// an inline or by-hash base) with room to spare.
const CURSORS: usize = 8;

/// The directory path last interned below `base`, with the id of each of its leading
/// components. Entries come mostly sorted by path, so the next path shares all or most leading
/// directories with the last one and is resolved by comparing bytes, not hashing.
struct Cursor<'a> {
    base: u32,
    rel: &'a str,
    /// (end offset in `rel` of component k, its directory id), for the first components of `rel`.
    steps: Vec<(usize, u32)>,
}

impl<'a> Cursor<'a> {
    /// Keep the steps that are also leading components of `rel`; return where the rest starts.
    fn rewind(&mut self, rel: &'a str) -> usize {
        let common = self.rel.bytes().zip(rel.bytes()).take_while(|(a, b)| a == b).count();
        let shared = |&(end, _): &(usize, u32)| end <= common && (end == rel.len() || rel.as_bytes()[end] == b'/');
        let keep = self.steps.iter().take_while(|s| shared(s)).count();
        self.steps.truncate(keep);
        self.rel = rel;
        self.steps.last().map_or(0, |&(end, _)| end + 1)
    }

    fn dir(&self) -> u32 {
        self.steps.last().map_or(self.base, |&(_, id)| id)
    }
}

/// Place every file of `source` (aliases are handled after sorting, see `alias.rs`).
pub(super) fn collect(source: &ViewSource) -> Result<Collected<'_>, BuildError> {
    let mut c = Collector {
        source,
        origins: Origins::new(source),
        dirs: DirTable::new(),
        items: Vec::new(),
        cursors: Vec::with_capacity(CURSORS),
        victim: 0,
        max_mtime: 0,
    };
    c.items.reserve(source.snapshots.iter().map(|s| s.entries.len() * 2).sum());
    let dirs: usize = source.snapshots.iter().map(dir_estimate).sum();
    c.dirs.index.reserve(dirs);
    c.dirs.recs.reserve(dirs);
    for s in snapshot_order(source) {
        c.add_snapshot(s)?;
    }
    for (i, (path, _)) in source.inline_files.iter().enumerate() {
        let origin = c.origins.inline();
        let payload = Payload::Inline(i as u32);
        c.place(ROOT_DIR, path, payload, 0, Rank::Exclusive, origin, path)?;
    }
    Ok(Collected { dirs: c.dirs, items: c.items, max_mtime: c.max_mtime })
}

/// About how many directories a snapshot adds: each change of directory between consecutive
/// entries (at least one per distinct directory when sorted), once per tree it shows in. Sizing
/// the directory index up front spares its rehashing.
fn dir_estimate(snap: &SnapshotFiles) -> usize {
    let copies = if snap.role == Role::Retained { 1 } else { 2 };
    fn dir(e: &FileEntry) -> Option<&str> {
        split_path(&e.path).0
    }
    let changes = snap.entries.windows(2).filter(|w| dir(&w[0]) != dir(&w[1])).count();
    (changes + 1) * copies
}

/// Published first, then grace newest name first (so the newest grace package wins), then the rest.
fn snapshot_order(source: &ViewSource) -> Vec<usize> {
    let mut order: Vec<usize> = (0..source.snapshots.len()).collect();
    let rank = |r: Role| match r {
        Role::Published => 0,
        Role::Grace => 1,
        Role::Retained => 2,
    };
    order.sort_by(|&a, &b| {
        let (a, b) = (&source.snapshots[a], &source.snapshots[b]);
        rank(a.role).cmp(&rank(b.role)).then_with(|| b.name.cmp(&a.name))
    });
    order
}

impl<'a> Collector<'a> {
    fn add_snapshot(&mut self, s: usize) -> Result<(), BuildError> {
        let snap: &'a SnapshotFiles = &self.source.snapshots[s];
        let origin = s as u32;
        let frozen = self.snapshot_base(snap, origin)?;
        let live = match snap.role {
            Role::Retained => None,
            Role::Published | Role::Grace => Some(self.base(ROOT_DIR, &snap.view_root, origin, &snap.view_root)?),
        };
        for entry in &snap.entries {
            let (payload, mtime) = self.object(entry, origin)?;
            self.place(frozen, &entry.path, payload, mtime, Rank::Exclusive, origin, &entry.path)?;
            let Some(live) = live else { continue };
            match (snap.role, entry.kind) {
                (Role::Published, _) => {
                    self.place(live, &entry.path, payload, mtime, Rank::Exclusive, origin, &entry.path)?
                }
                (_, EntryKind::Package) => {
                    self.place(live, &entry.path, payload, mtime, Rank::GracePackage, origin, &entry.path)?
                }
                _ => {}
            }
            if entry.kind == EntryKind::Index {
                self.add_by_hash(live, entry, payload, mtime, origin)?;
            }
        }
        Ok(())
    }

    /// `snapshots/<mirror_id>/<name>`: both must be single components.
    fn snapshot_base(&mut self, snap: &'a SnapshotFiles, origin: u32) -> Result<u32, BuildError> {
        let top = self.dirs.child(ROOT_DIR, "snapshots")?;
        let invalid = |reason| BuildError::InvalidPath {
            path: format!("snapshots/{}/{}", snap.mirror_id, snap.name),
            origin: self.origins.name(origin),
            reason,
        };
        check_component(&snap.mirror_id).map_err(invalid)?;
        check_component(&snap.name).map_err(invalid)?;
        let mirror = self.dirs.child(top, &snap.mirror_id)?;
        self.dirs.child(mirror, &snap.name)
    }

    fn add_by_hash(
        &mut self,
        live: u32,
        entry: &'a FileEntry,
        payload: Payload,
        mtime: i64,
        origin: u32,
    ) -> Result<(), BuildError> {
        let dir = self.parent_dir(live, split_path(&entry.path).0, origin, &entry.path)?;
        for by_hash in &entry.by_hash {
            let top = self.dirs.child(dir, "by-hash")?;
            check_component(by_hash.algo).map_err(|reason| self.invalid(&entry.path, origin, reason))?;
            let algo_dir = self.dirs.child(top, by_hash.algo)?;
            self.place(algo_dir, &by_hash.digest, payload, mtime, Rank::ByHash, origin, &by_hash.digest)?;
        }
        Ok(())
    }

    fn object(&mut self, entry: &FileEntry, origin: u32) -> Result<(Payload, i64), BuildError> {
        let objects = &self.source.objects;
        let object = objects.get(entry.object as usize).ok_or_else(|| BuildError::UnknownObject {
            path: entry.path.clone(),
            origin: self.origins.name(origin),
            index: entry.object,
            count: objects.len(),
        })?;
        let mtime = entry.mtime_override.unwrap_or(object.mtime);
        self.max_mtime = self.max_mtime.max(mtime);
        Ok((Payload::Object(entry.object), mtime))
    }

    /// Place the file `rel` (a path below directory `base`).
    #[allow(clippy::too_many_arguments)] // one call shape for every rule; a struct would only rename them
    fn place(
        &mut self,
        base: u32,
        rel: &'a str,
        payload: Payload,
        mtime: i64,
        rank: Rank,
        origin: u32,
        shown: &str,
    ) -> Result<(), BuildError> {
        let (dir, name) = split_path(rel);
        check_component(name).map_err(|reason| self.invalid(shown, origin, reason))?;
        let dir = self.parent_dir(base, dir, origin, shown)?;
        let seq = u32::try_from(self.items.len()).map_err(|_| BuildError::TooLarge { what: "files" })?;
        self.items.push(Item { dir, name, payload, mtime, rank, origin, seq });
        Ok(())
    }

    /// The directory part of a split path below `base` (`None`: `base` itself).
    fn parent_dir(&mut self, base: u32, dir: Option<&'a str>, origin: u32, shown: &str) -> Result<u32, BuildError> {
        match dir {
            None => Ok(base),
            Some("") => Err(self.invalid(shown, origin, "empty path component (leading, trailing or double slash)")),
            Some(rel) => self.base(base, rel, origin, shown),
        }
    }

    /// Intern directory `rel` below `base`, through the cursor of `base`: only the components
    /// that differ from the last path placed below `base` are looked up.
    fn base(&mut self, base: u32, rel: &'a str, origin: u32, shown: &str) -> Result<u32, BuildError> {
        let slot = self.cursor(base);
        let cursor = &mut self.cursors[slot];
        if cursor.rel == rel {
            return Ok(cursor.dir());
        }
        let start = cursor.rewind(rel);
        let extended = extend(&mut self.dirs, cursor, start);
        if !matches!(extended, Ok(Ok(_))) {
            // The cursor holds only a prefix of `rel` now: forget it.
            cursor.rel = "";
            cursor.steps.clear();
        }
        extended?.map_err(|reason| self.invalid(shown, origin, reason))
    }

    /// The slot of the cursor of `base`, taking over the oldest when all are in use.
    fn cursor(&mut self, base: u32) -> usize {
        if let Some(slot) = self.cursors.iter().position(|c| c.base == base) {
            return slot;
        }
        let fresh = Cursor { base, rel: "", steps: Vec::new() };
        if self.cursors.len() < CURSORS {
            self.cursors.push(fresh);
            return self.cursors.len() - 1;
        }
        let slot = self.victim;
        self.victim = (slot + 1) % CURSORS;
        self.cursors[slot] = fresh;
        slot
    }

    fn invalid(&self, path: &str, origin: u32, reason: &'static str) -> BuildError {
        BuildError::InvalidPath { path: path.to_owned(), origin: self.origins.name(origin), reason }
    }
}

/// Intern the components of `cursor.rel` from byte `start` on, recording each as a step.
/// `Ok(Err(reason))` for an invalid component (as [`DirTable::intern_path`]).
fn extend<'a>(
    dirs: &mut DirTable<'a>,
    cursor: &mut Cursor<'a>,
    start: usize,
) -> Result<Result<u32, &'static str>, BuildError> {
    let rel = cursor.rel;
    if start > rel.len() {
        return Ok(Ok(cursor.dir()));
    }
    // After a kept step `rel[start..]` follows a `/`, so even an empty rest is a component;
    // only an empty `rel` has none.
    let parts = rel[start..].split('/').filter(|_| !rel.is_empty());
    let mut dir = cursor.dir();
    let mut end = start;
    for part in parts {
        end += part.len();
        if let Err(reason) = check_component(part) {
            return Ok(Err(reason));
        }
        dir = dirs.child(dir, part)?;
        cursor.steps.push((end, dir));
        end += 1;
    }
    Ok(Ok(dir))
}

/// `(Some("a/b"), "c")` for `"a/b/c"`, `(None, "c")` for `"c"`, `(Some(""), "c")` for `"/c"`.
pub(super) fn split_path(path: &str) -> (Option<&str>, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (Some(dir), name),
        None => (None, path),
    }
}
