//! Listing a tree: fetch the autoindex page of the base URL and of every directory below it
//! (breadth first, one page at a time) and collect the files they show.
//!
//! Pages are fetched one after the other: a Proxmox tree has a handful of directories, and the
//! downloads that follow are what runs in parallel. Limits keep a misbehaving server (endless
//! generated directories, a multi-gigabyte "index") from running the sync out of memory or time.

use super::listing::{self, ListedSize, ListedTime};
use crate::engine::EntryError;
use crate::fetch::Fetcher;
use std::collections::{BTreeMap, HashSet, VecDeque};
use url::Url;

/// Largest index page accepted. nginx writes ~120 bytes per entry, so this allows directories
/// of well over 100 000 files while bounding what one page can cost.
const MAX_PAGE_BYTES: u64 = 16 << 20;
/// Directory nesting below the base URL that is followed. Proxmox's trees are one or two deep;
/// anything near this is a generated loop.
const MAX_DEPTH: usize = 16;
/// Directory pages per tree, for the same reason.
const MAX_PAGES: usize = 10_000;

/// A file the listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Relative to the tree's base URL (see [`listing::Listed::path`]).
    pub path: String,
    pub url: Url,
    pub size: ListedSize,
    pub mtime: Option<ListedTime>,
}

/// A file is unchanged upstream when the listing shows the previous snapshot's size and
/// Last-Modified (to the listing's precision). A listing without a size or date proves nothing.
pub fn unchanged(f: &RemoteFile, prev: &crate::catalog::PublishedFile) -> bool {
    f.size.admits(prev.size) && f.mtime.is_some_and(|t| t.admits(prev.mtime))
}

/// Every file below `base`, sorted by path.
pub async fn list_tree(fetcher: &Fetcher, tree_id: &str, base: &Url) -> Result<Vec<RemoteFile>, EntryError> {
    let mut files: BTreeMap<String, RemoteFile> = BTreeMap::new();
    let mut queue: VecDeque<(Url, usize)> = VecDeque::from([(base.clone(), 0)]);
    let mut seen: HashSet<Url> = HashSet::from([base.clone()]);
    let mut pages = 0;
    while let Some((page, depth)) = queue.pop_front() {
        pages += 1;
        if pages > MAX_PAGES {
            let reason = format!("more than {MAX_PAGES} directory pages; refusing to list further");
            return Err(EntryError::tree(tree_id, None, reason));
        }
        let rel = page.path()[base.path().len()..].to_owned();
        let body = fetcher
            .get(&page, MAX_PAGE_BYTES)
            .await
            .map_err(|e| EntryError::tree(tree_id, Some(&format!("directory listing of ./{rel}")), e))?;
        let html = String::from_utf8_lossy(&body.bytes);
        let entries = listing::entries(&page, base, &html);
        tracing::debug!(tree = tree_id, page = %page, entries = entries.len(), "listed");
        for e in entries {
            if e.is_dir {
                if depth + 1 > MAX_DEPTH {
                    tracing::warn!(tree = tree_id, dir = %e.path, "directory nested too deep, not listed");
                } else if seen.insert(e.url.clone()) {
                    queue.push_back((e.url, depth + 1));
                }
            } else {
                files.entry(e.path.clone()).or_insert(RemoteFile {
                    path: e.path,
                    url: e.url,
                    size: e.size,
                    mtime: e.mtime,
                });
            }
        }
    }
    Ok(files.into_values().collect())
}
