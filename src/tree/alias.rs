//! Aliases (`debian/dists` → `debian/pve/dists`): planned on the directory table before layout
//! (a placeholder directory that must not collide with a real path), filled after layout by
//! copying the target's nodes — new directory nodes (the kernel wants one parent per directory),
//! file nodes that keep the original's inode.

use std::collections::{HashSet, VecDeque};

use super::build::{self, split_path, DirTable, Item, Origins, NO_ORIGIN, ROOT_DIR};
use super::source::Alias;
use super::{find_child, BuildError, Kind, Node};

/// A placeholder node waiting for its target's copy.
pub(super) struct PendingAlias {
    pub node: u32,
    pub alias: u32,
}

/// Intern each usable alias as a placeholder directory. A missing target or an alias inside its
/// own target is a warning; an alias path that is already taken is a conflict.
pub(super) fn plan<'a>(
    aliases: &'a [Alias],
    dirs: &mut DirTable<'a>,
    items: &[Item<'_>],
    origins: &Origins<'_>,
) -> Result<(), BuildError> {
    for (n, alias) in aliases.iter().enumerate() {
        let origin = origins.alias(n);
        for path in [&alias.path, &alias.target] {
            check_path(path).map_err(|reason| BuildError::InvalidPath {
                path: path.clone(),
                origin: origins.name(origin),
                reason,
            })?;
        }
        if nested(&alias.path, &alias.target) {
            tracing::warn!(path = %alias.path, target = %alias.target, "alias lies inside its own target (or the reverse); skipped");
            continue;
        }
        if !exists(dirs, items, &aliases[..n], &alias.target) {
            tracing::warn!(path = %alias.path, target = %alias.target, "alias target is not in the view; no alias directory");
            continue;
        }
        if let Some(holder) = occupant(dirs, items, &alias.path) {
            return Err(BuildError::Conflict {
                path: alias.path.clone(),
                first_mirror: origins.name(holder),
                second_mirror: origins.name(origin),
            });
        }
        let dir = dirs.intern_path(ROOT_DIR, &alias.path)?.map_err(|reason| BuildError::InvalidPath {
            path: alias.path.clone(),
            origin: origins.name(origin),
            reason,
        })?;
        dirs.recs[dir as usize].alias = Some(n as u32);
        dirs.mark(dir, origin, true);
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), &'static str> {
    path.split('/').try_for_each(build::check_component)
}

/// `a` equals `b` or one contains the other.
fn nested(a: &str, b: &str) -> bool {
    let inside = |inner: &str, outer: &str| {
        inner.strip_prefix(outer).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

fn find_file(dirs: &DirTable<'_>, items: &[Item<'_>], path: &str) -> Option<u32> {
    let (dir, name) = split_path(path);
    let dir = match dir {
        Some(dir) => dirs.find_path(ROOT_DIR, dir)?,
        None => ROOT_DIR,
    };
    let i = items.binary_search_by(|it| (it.dir, it.name.as_bytes()).cmp(&(dir, name.as_bytes()))).ok()?;
    items.get(i).map(|it| it.origin)
}

/// Whether `path` will show something: a real path, or a path inside an earlier alias whose
/// target exists (each alias is followed at most once, so cycles end).
fn exists(dirs: &DirTable<'_>, items: &[Item<'_>], earlier: &[Alias], path: &str) -> bool {
    // Alias placeholders are interned only once planned, so a found directory always shows.
    if find_file(dirs, items, path).is_some() || dirs.find_path(ROOT_DIR, path).is_some() {
        return true;
    }
    earlier.iter().enumerate().any(|(k, alias)| {
        let rest = path.strip_prefix(alias.path.as_str()).filter(|r| r.starts_with('/'));
        let others = &earlier[..k];
        rest.is_some_and(|rest| exists(dirs, items, others, &format!("{}{rest}", alias.target)))
    })
}

/// Who already holds `path` (a file, or a directory with anything below it).
fn occupant(dirs: &DirTable<'_>, items: &[Item<'_>], path: &str) -> Option<u32> {
    if let Some(dir) = dirs.find_path(ROOT_DIR, path) {
        let rec = &dirs.recs[dir as usize];
        let holder = if rec.exclusive != NO_ORIGIN { rec.exclusive } else { rec.any };
        return Some(holder);
    }
    find_file(dirs, items, path)
}

/// Copy each alias target into its placeholder. Targets inside other aliases resolve once those
/// are filled; a target that never resolves (lost to a file/directory clash) stays empty.
pub(super) fn fill(nodes: &mut Vec<Node>, names: &str, mut pending: Vec<PendingAlias>, aliases: &[Alias]) {
    let mut unfilled: HashSet<u32> = pending.iter().map(|p| p.node).collect();
    loop {
        let before = pending.len();
        pending.retain(|p| {
            let target = &aliases[p.alias as usize].target;
            match resolve(nodes, names, target, &unfilled) {
                Some(t) => {
                    copy(nodes, t, p.node);
                    unfilled.remove(&p.node);
                    false
                }
                None => true,
            }
        });
        if pending.len() == before {
            break;
        }
    }
    for p in pending {
        let alias = &aliases[p.alias as usize];
        tracing::warn!(path = %alias.path, target = %alias.target, "alias target vanished while resolving the view; shown empty");
    }
}

fn resolve(nodes: &[Node], names: &str, path: &str, unfilled: &HashSet<u32>) -> Option<u32> {
    path.split('/').try_fold(0u32, |dir, part| {
        let child = find_child(nodes, names.as_bytes(), dir, part.as_bytes())?;
        (!unfilled.contains(&child)).then_some(child)
    })
}

/// Make `dest` show what `target` shows; `dest` keeps its name and parent.
fn copy(nodes: &mut Vec<Node>, target: u32, dest: u32) {
    let src = nodes[target as usize];
    let dest_node = &mut nodes[dest as usize];
    if src.kind() != Kind::Dir {
        *dest_node =
            Node { name_off: dest_node.name_off, name_len: dest_node.name_len, parent: dest_node.parent, ..src };
        return;
    }
    let mut queue = VecDeque::from([(dest, target)]);
    while let Some((copy_dir, orig_dir)) = queue.pop_front() {
        let orig = nodes[orig_dir as usize];
        let first = nodes.len() as u32;
        for child in orig.a..orig.a + orig.b {
            let mut node = nodes[child as usize];
            node.parent = copy_dir;
            if node.kind() == Kind::Dir {
                queue.push_back((nodes.len() as u32, child));
            }
            nodes.push(node);
        }
        let copy_node = &mut nodes[copy_dir as usize];
        copy_node.a = first;
        copy_node.b = orig.b;
    }
}
