//! Second phase of [`super::View::build`]: sort and de-duplicate the collected items (detecting
//! conflicts), then lay the tree out breadth-first into the compact node array, with directory
//! mtimes and link counts computed bottom-up.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::alias::{self, PendingAlias};
use super::build::{self, Collected, DirTable, Item, Origins, Payload, Rank, NO_ORIGIN, ROOT_DIR};
use super::source::{ObjectMeta, ViewSource};
use super::{inode, BuildError, Kind, Node, View};

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
    mut items: Vec<Item<'a>>,
    source: &ViewSource,
    dirs: &DirTable<'_>,
    origins: &Origins<'_>,
) -> Result<Vec<Item<'a>>, BuildError> {
    items.sort_unstable_by(|a, b| {
        (a.dir, a.name.as_bytes(), a.rank, a.seq).cmp(&(b.dir, b.name.as_bytes(), b.rank, b.seq))
    });
    let mut kept: Vec<Item<'a>> = Vec::with_capacity(items.len());
    for item in items {
        match kept.last() {
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
            _ => kept.push(item),
        }
    }
    kept.shrink_to_fit();
    Ok(kept)
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

/// Names stored once each in one arena.
struct Names<'a> {
    buf: String,
    index: HashMap<&'a str, u32>,
}

impl<'a> Names<'a> {
    fn intern(&mut self, name: &'a str) -> Result<(u32, u16), BuildError> {
        // check_component capped every name at 255 bytes, so the length fits u16.
        let len = name.len() as u16;
        if let Some(&off) = self.index.get(name) {
            return Ok((off, len));
        }
        let off = u32::try_from(self.buf.len()).map_err(|_| BuildError::TooLarge { what: "name bytes" })?;
        self.buf.push_str(name);
        self.index.insert(name, off);
        Ok((off, len))
    }
}

impl<'a> Layout<'_, 'a> {
    fn run(&self) -> Result<(Vec<Node>, String, Vec<PendingAlias>), BuildError> {
        let recs = &self.dirs.recs;
        let mut subdirs: Vec<u32> = (1..recs.len() as u32).collect();
        subdirs.sort_unstable_by(|&a, &b| {
            let (ra, rb) = (&recs[a as usize], &recs[b as usize]);
            (ra.parent, ra.name.as_bytes()).cmp(&(rb.parent, rb.name.as_bytes()))
        });
        let sub_groups = Groups::of(recs.len(), subdirs.iter().map(|&d| recs[d as usize].parent));
        let file_groups = Groups::of(recs.len(), self.items.iter().map(|i| i.dir));
        let mut names = Names { buf: String::new(), index: HashMap::new() };
        let root = Node { mtime: 0, name_off: 0, parent: 0, a: 0, b: 0, c: 0, name_len: 0, kind: Kind::Dir };
        let mut nodes = Vec::with_capacity(recs.len() + self.items.len());
        nodes.push(root);
        let mut pending = Vec::new();
        let mut queue = VecDeque::from([(0u32, ROOT_DIR)]);
        while let Some((node, dir)) = queue.pop_front() {
            let first = nodes.len();
            let subs = &subdirs[sub_groups.range(dir)];
            let files = &self.items[file_groups.range(dir)];
            self.merge(dir, node, subs, files, &mut nodes, &mut names, &mut queue, &mut pending)?;
            let count = nodes.len() - first;
            nodes[node as usize].a = u32::try_from(first).map_err(|_| BuildError::TooLarge { what: "nodes" })?;
            nodes[node as usize].b = count as u32;
        }
        Ok((nodes, names.buf, pending))
    }

    /// Emit the children of `dir` (node `node`) in name order: subdirectories and files merged.
    #[allow(clippy::too_many_arguments)] // the loop state of `run`, lent for one directory
    fn merge(
        &self,
        dir: u32,
        node: u32,
        subs: &[u32],
        files: &[Item<'a>],
        nodes: &mut Vec<Node>,
        names: &mut Names<'a>,
        queue: &mut VecDeque<(u32, u32)>,
        pending: &mut Vec<PendingAlias>,
    ) -> Result<(), BuildError> {
        let recs = &self.dirs.recs;
        let (mut i, mut j) = (0, 0);
        while i < subs.len() || j < files.len() {
            let sub = subs.get(i).map(|&d| (d, recs[d as usize].name));
            let file = files.get(j);
            let take_sub = match (sub, file) {
                (Some((_, s)), Some(f)) if s.as_bytes() == f.name.as_bytes() => {
                    let keep_sub = self.file_or_dir(dir, f, sub.map_or(0, |(d, _)| d))?;
                    if keep_sub {
                        j += 1
                    } else {
                        i += 1
                    }
                    keep_sub
                }
                (Some((_, s)), Some(f)) => s.as_bytes() < f.name.as_bytes(),
                (Some(_), None) => true,
                (None, _) => false,
            };
            let idx = u32::try_from(nodes.len()).map_err(|_| BuildError::TooLarge { what: "nodes" })?;
            if let (true, Some((d, name))) = (take_sub, sub) {
                let (name_off, name_len) = names.intern(name)?;
                nodes.push(Node { mtime: 0, name_off, parent: node, a: 0, b: 0, c: 0, name_len, kind: Kind::Dir });
                match recs[d as usize].alias {
                    Some(n) => pending.push(PendingAlias { node: idx, alias: n }),
                    None => queue.push_back((idx, d)),
                }
                i += 1;
            } else if let Some(f) = file {
                let (name_off, name_len) = names.intern(f.name)?;
                let (kind, a, mtime) = match f.payload {
                    Payload::Object(o) => (Kind::Object, self.remap[o as usize], f.mtime),
                    Payload::Inline(n) => (Kind::Inline, n, self.inline_mtime),
                };
                nodes.push(Node { mtime, name_off, parent: node, a, b: idx, c: 0, name_len, kind });
                j += 1;
            }
        }
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
        let Node { parent, mtime, kind, .. } = nodes[i];
        let parent = &mut nodes[parent as usize];
        parent.mtime = parent.mtime.max(mtime);
        if kind == Kind::Dir {
            parent.c += 1;
        }
    }
    nodes.shrink_to_fit();
}
