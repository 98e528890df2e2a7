//! Second phase of [`super::View::build`]: sort and de-duplicate the collected items (detecting
//! conflicts), then lay the tree out breadth-first into the compact node array, with directory
//! mtimes and link counts computed bottom-up.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;

use super::alias::{self, PendingAlias};
use super::build::{self, Collected, DirTable, Item, Origins, Payload, Rank, NO_ORIGIN, ROOT_DIR};
use super::fxhash::FxHashMap;
use super::source::{ObjectMeta, ViewSource};
use super::{clamp_mtime, inode, BuildError, Kind, Node, View};

pub(super) fn build(source: &ViewSource, inline_mtime: Option<i64>) -> Result<View, BuildError> {
    let origins = Origins::new(source);
    let (objects, remap) = object_table(&source.objects)?;
    let Collected { mut dirs, items, max_mtime } = build::collect(source)?;
    let items = dedup(items, source, &dirs, &origins)?;
    for item in &items {
        dirs.mark(item.dir, item.origin, item.rank == Rank::Exclusive);
    }
    alias::plan(&source.aliases, &mut dirs, &items, &origins)?;
    let layout = Layout {
        dirs: &dirs,
        items: &items,
        origins: &origins,
        remap: &remap,
        inline_mtime: inline_mtime.unwrap_or(max_mtime),
    };
    let (mut nodes, names, pending) = layout.run()?;
    alias::fill(&mut nodes, &names, pending, &source.aliases);
    finish(&mut nodes);
    let inline = source.inline_files.iter().map(|(_, bytes)| Arc::from(bytes.as_slice())).collect();
    Ok(View::from_parts(source.generation, nodes, names, objects, inline))
}

/// Objects sorted by id (ids unique), and the new index of each source index.
fn object_table(source: &[ObjectMeta]) -> Result<(Vec<ObjectMeta>, Vec<u32>), BuildError> {
    u32::try_from(source.len()).map_err(|_| BuildError::TooLarge { what: "objects" })?;
    let mut order: Vec<u32> = (0..source.len() as u32).collect();
    order.sort_unstable_by_key(|&i| source[i as usize].id);
    let mut objects: Vec<ObjectMeta> = Vec::with_capacity(source.len());
    let mut remap = vec![0u32; source.len()];
    for i in order {
        let object = &source[i as usize];
        if object.id > inode::MAX_OBJECT_ID {
            return Err(BuildError::ObjectIdTooLarge { id: object.id });
        }
        match objects.last() {
            Some(last) if last.id == object.id && last.sha256 != object.sha256 => {
                return Err(BuildError::DuplicateObjectId { id: object.id });
            }
            Some(last) if last.id == object.id => {}
            _ => objects.push(object.clone()),
        }
        remap[i as usize] = (objects.len() - 1) as u32;
    }
    objects.shrink_to_fit();
    Ok((objects, remap))
}

/// Sort by (directory, name, rank, claim order) and keep one item per path; two exclusive claims
/// with different content are a conflict.
fn dedup<'a>(
    items: Vec<Item<'a>>,
    source: &ViewSource,
    dirs: &DirTable<'_>,
    origins: &Origins<'_>,
) -> Result<Vec<Item<'a>>, BuildError> {
    let mut items = sort_items(items, dirs.recs.len());
    // Compact in place: `items[..kept]` holds the winners so far.
    let mut kept: usize = 0;
    for i in 0..items.len() {
        let item = items[i];
        match kept.checked_sub(1).map(|k| items[k]) {
            Some(first) if first.dir == item.dir && first.name == item.name => {
                let both_exclusive = first.rank == Rank::Exclusive && item.rank == Rank::Exclusive;
                if both_exclusive && !same_content(source, first.payload, item.payload) {
                    return Err(BuildError::Conflict {
                        path: join(&dirs.path_of(item.dir), item.name),
                        first_mirror: origins.name(first.origin),
                        second_mirror: origins.name(item.origin),
                    });
                }
            }
            _ => {
                items[kept] = item;
                kept += 1;
            }
        }
    }
    items.truncate(kept);
    items.shrink_to_fit();
    Ok(items)
}

/// Group by directory with a counting sort (linear, and no name comparisons across
/// directories), then sort each directory by (name, rank, claim order) while it is in cache.
fn sort_items<'a>(items: Vec<Item<'a>>, dir_count: usize) -> Vec<Item<'a>> {
    let Some(&fill) = items.first() else { return items };
    let groups = Groups::of(dir_count, items.iter().map(|i| i.dir));
    let mut next = groups.start.clone();
    let mut sorted = vec![fill; items.len()];
    for item in items {
        let slot = &mut next[item.dir as usize];
        sorted[*slot as usize] = item;
        *slot += 1;
    }
    for dir in 0..dir_count as u32 {
        sorted[groups.range(dir)]
            .sort_unstable_by(|a, b| (a.name.as_bytes(), a.rank, a.seq).cmp(&(b.name.as_bytes(), b.rank, b.seq)));
    }
    sorted
}

fn same_content(source: &ViewSource, a: Payload, b: Payload) -> bool {
    match (a, b) {
        (Payload::Object(a), Payload::Object(b)) => {
            let sha = |i: u32| source.objects.get(i as usize).map(|o| o.sha256);
            sha(a) == sha(b)
        }
        (Payload::Inline(a), Payload::Inline(b)) => {
            let bytes = |i: u32| source.inline_files.get(i as usize).map(|(_, b)| b.as_slice());
            bytes(a) == bytes(b)
        }
        _ => false,
    }
}

pub(super) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Breadth-first layout of the directory table and the sorted items into nodes.
struct Layout<'s, 'a> {
    dirs: &'s DirTable<'a>,
    items: &'s [Item<'a>],
    origins: &'s Origins<'s>,
    remap: &'s [u32],
    inline_mtime: i64,
}

/// Child slices per directory: `start[d]..start[d + 1]` indexes the list.
struct Groups {
    start: Vec<u32>,
}

impl Groups {
    fn of(count: usize, keys: impl Iterator<Item = u32>) -> Groups {
        let mut start = vec![0u32; count + 1];
        for key in keys {
            start[key as usize + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        Groups { start }
    }

    fn range(&self, dir: u32) -> std::ops::Range<usize> {
        self.start[dir as usize] as usize..self.start[dir as usize + 1] as usize
    }
}

/// Names in one arena. Directory names are stored once each (a hash map; there are few).
/// A file name is reused when the last file showing the same object had the same name — the
/// common case of a package kept across snapshots — found by direct indexing, not hashing
/// (hashing every file name was 40 % of the build on a million entries).
struct Names<'a> {
    buf: String,
    dirs: FxHashMap<&'a str, u32>,
    /// Per source object: offset of the last name a file of it got ([`NO_NAME`]: none yet).
    by_object: Vec<u32>,
}

const NO_NAME: u32 = u32::MAX;

impl<'a> Names<'a> {
    fn push(&mut self, name: &str) -> Result<(u32, u8), BuildError> {
        let off = u32::try_from(self.buf.len()).map_err(|_| BuildError::TooLarge { what: "name bytes" })?;
        self.buf.push_str(name);
        // check_component capped every name at 255 bytes, so the length fits u8.
        Ok((off, name.len() as u8))
    }

    fn dir(&mut self, name: &'a str) -> Result<(u32, u8), BuildError> {
        if let Some(&off) = self.dirs.get(name) {
            return Ok((off, name.len() as u8));
        }
        let (off, len) = self.push(name)?;
        self.dirs.insert(name, off);
        Ok((off, len))
    }

    fn file(&mut self, name: &str, object: Option<u32>) -> Result<(u32, u8), BuildError> {
        let Some(slot) = object.and_then(|o| self.by_object.get(o as usize)).copied() else { return self.push(name) };
        let start = slot as usize;
        if slot != NO_NAME && self.buf.get(start..start + name.len()) == Some(name) {
            return Ok((slot, name.len() as u8));
        }
        let (off, len) = self.push(name)?;
        if let Some(o) = object {
            self.by_object[o as usize] = off;
        }
        Ok((off, len))
    }
}

/// The next child to emit while merging a directory's subdirectories and files.
enum Next<'i, 'a> {
    Dir(u32),
    File(&'i Item<'a>),
}

/// What layout produces, grown one directory at a time.
struct Out<'a> {
    nodes: Vec<Node>,
    names: Names<'a>,
    /// Directories laid out but not yet expanded: (node, directory id).
    queue: VecDeque<(u32, u32)>,
    pending: Vec<PendingAlias>,
}

impl Out<'_> {
    fn next_index(&self) -> Result<u32, BuildError> {
        u32::try_from(self.nodes.len()).map_err(|_| BuildError::TooLarge { what: "nodes" })
    }
}

impl<'a> Layout<'_, 'a> {
    fn run(&self) -> Result<(Vec<Node>, String, Vec<PendingAlias>), BuildError> {
        let recs = &self.dirs.recs;
        let (subdirs, sub_groups) = self.subdirs_by_parent();
        let file_groups = Groups::of(recs.len(), self.items.iter().map(|i| i.dir));
        let mut dir_names = FxHashMap::default();
        dir_names.reserve(recs.len());
        let names = Names { buf: String::new(), dirs: dir_names, by_object: vec![NO_NAME; self.remap.len()] };
        let root = Node::new(0, 0, 0, 0, 0, 0, Kind::Dir);
        let mut nodes = Vec::with_capacity(recs.len() + self.items.len());
        nodes.push(root);
        let mut out = Out { nodes, names, queue: VecDeque::from([(0, ROOT_DIR)]), pending: Vec::new() };
        while let Some((node, dir)) = out.queue.pop_front() {
            let first = out.next_index()?;
            self.merge(dir, node, &subdirs[sub_groups.range(dir)], &self.items[file_groups.range(dir)], &mut out)?;
            let count = out.nodes.len() as u32 - first;
            let parent = &mut out.nodes[node as usize];
            parent.a = first;
            parent.b = count;
        }
        let mut names = out.names.buf;
        names.shrink_to_fit();
        Ok((out.nodes, names, out.pending))
    }

    /// Every directory but the root, grouped by parent (a counting sort: linear, and cache-friendly
    /// where a comparison sort of the whole table was not), each group sorted by name.
    fn subdirs_by_parent(&self) -> (Vec<u32>, Groups) {
        let recs = &self.dirs.recs;
        let groups = Groups::of(recs.len(), recs.iter().skip(1).map(|r| r.parent));
        let mut next = groups.start.clone();
        let mut subdirs = vec![0u32; recs.len().saturating_sub(1)];
        for (d, rec) in recs.iter().enumerate().skip(1) {
            let slot = &mut next[rec.parent as usize];
            subdirs[*slot as usize] = d as u32;
            *slot += 1;
        }
        for dir in 0..recs.len() as u32 {
            subdirs[groups.range(dir)]
                .sort_unstable_by(|&a, &b| recs[a as usize].name.as_bytes().cmp(recs[b as usize].name.as_bytes()));
        }
        (subdirs, groups)
    }

    /// Emit the children of `dir` (node `node`) in name order: subdirectories and files merged.
    fn merge(
        &self,
        dir: u32,
        node: u32,
        subs: &[u32],
        files: &[Item<'a>],
        out: &mut Out<'a>,
    ) -> Result<(), BuildError> {
        let (mut i, mut j) = (0, 0);
        loop {
            let next = match (subs.get(i), files.get(j)) {
                (Some(&d), Some(f)) => match self.dirs.recs[d as usize].name.as_bytes().cmp(f.name.as_bytes()) {
                    Ordering::Less => Next::Dir(d),
                    Ordering::Greater => Next::File(f),
                    // A clash: skip the loser, emit the winner.
                    Ordering::Equal if self.file_or_dir(dir, f, d)? => {
                        j += 1;
                        Next::Dir(d)
                    }
                    Ordering::Equal => {
                        i += 1;
                        Next::File(f)
                    }
                },
                (Some(&d), None) => Next::Dir(d),
                (None, Some(f)) => Next::File(f),
                (None, None) => return Ok(()),
            };
            match next {
                Next::Dir(d) => {
                    self.push_dir(node, d, out)?;
                    i += 1;
                }
                Next::File(f) => {
                    self.push_file(node, f, out)?;
                    j += 1;
                }
            }
        }
    }

    fn push_dir(&self, parent: u32, dir: u32, out: &mut Out<'a>) -> Result<(), BuildError> {
        let idx = out.next_index()?;
        let rec = &self.dirs.recs[dir as usize];
        let (name_off, name_len) = out.names.dir(rec.name)?;
        out.nodes.push(Node::new(0, name_off, name_len, parent, 0, 0, Kind::Dir));
        match rec.alias {
            Some(alias) => out.pending.push(PendingAlias { node: idx, alias }),
            None => out.queue.push_back((idx, dir)),
        }
        Ok(())
    }

    fn push_file(&self, parent: u32, file: &Item<'a>, out: &mut Out<'a>) -> Result<(), BuildError> {
        let idx = out.next_index()?;
        let (kind, a, mtime, object) = match file.payload {
            Payload::Object(o) => (Kind::Object, self.remap[o as usize], file.mtime, Some(o)),
            Payload::Inline(n) => (Kind::Inline, n, self.inline_mtime, None),
        };
        let (name_off, name_len) = out.names.file(file.name, object)?;
        out.nodes.push(Node::new(clamp_mtime(mtime), name_off, name_len, parent, a, idx, kind));
        Ok(())
    }

    /// A file and a directory share a name: `true` keeps the directory. The exclusive side wins;
    /// both exclusive is a conflict; neither: the directory (it holds more).
    fn file_or_dir(&self, dir: u32, file: &Item<'_>, sub: u32) -> Result<bool, BuildError> {
        let sub_exclusive = self.dirs.recs[sub as usize].exclusive;
        match (file.rank == Rank::Exclusive, sub_exclusive != NO_ORIGIN) {
            (true, true) => Err(BuildError::Conflict {
                path: join(&self.dirs.path_of(dir), file.name),
                first_mirror: self.origins.name(file.origin),
                second_mirror: self.origins.name(sub_exclusive),
            }),
            (true, false) => {
                tracing::debug!(path = %join(&self.dirs.path_of(dir), file.name), "file hides a gap-filling directory");
                Ok(false)
            }
            (false, _) => {
                tracing::debug!(path = %join(&self.dirs.path_of(dir), file.name), "directory hides a gap-filling file");
                Ok(true)
            }
        }
    }
}

/// Directory mtime = newest below, nlink = 2 + subdirectories. Children always have larger
/// indices than their parent, so one reverse pass sees every child before its parent.
fn finish(nodes: &mut Vec<Node>) {
    for i in (1..nodes.len()).rev() {
        let node = nodes[i];
        let parent = &mut nodes[node.parent as usize];
        parent.mtime = parent.mtime.max(node.mtime);
        if node.kind() == Kind::Dir {
            parent.c = parent.c.saturating_add(1);
        }
    }
    nodes.shrink_to_fit();
}
