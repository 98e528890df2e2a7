//! What upstream vouches for: the tree's checksum lists (`SHA256SUMS`, `aplinfo-*.dat[.gz]`) and
//! their detached signatures, read into memory, checked against the tree's key, and turned into
//! the digest every named file must have.
//!
//! Rules:
//! - With `key` set, every list must carry a detached signature (`.asc`, `.gpg`, `.sign`, `.sig`
//!   beside it) and every such signature must verify; otherwise the tree fails.
//! - Without a key the lists are still used (a file that does not match its list is refused),
//!   but neither they nor their signatures count as verified by upstream.
//! - An aplinfo index may come as `.dat`, `.dat.gz` or both; the signature covers the
//!   uncompressed text (as `pveam` checks it), and both forms must hold the same text.
//! - Lists are always read for verification, even when include/exclude leave them out of the
//!   snapshot: a filter must not silently switch checking off.
//! - A list whose listing entry is unchanged since the previous snapshot is read back from the
//!   pool instead of being fetched again.

use super::checksums::{parse_aplinfo, parse_sha256sums, Sha512};
use super::plan::unchanged;
use super::walk::RemoteFile;
use super::TreeCtx;
use crate::apt::signature::{verify_detached_data, Keyring};
use crate::catalog::PublishedFile;
use crate::digest::Sha256;
use crate::sync::MirrorError;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Largest checksum list or signature accepted (compressed or not). Proxmox's aplinfo index is
/// ~50 KiB and a SHA256SUMS a few hundred bytes; this only bounds a hostile server.
const MAX_LIST_BYTES: u64 = 64 << 20;
/// Suffixes of detached signatures beside a list: Proxmox writes `.asc`, Debian's cdimage
/// `.sign`, others `.gpg`/`.sig`.
const SIGNATURE_SUFFIXES: [&str; 4] = [".asc", ".gpg", ".sign", ".sig"];

/// What a checksum list says a file must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// A file named by a checksum list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covered {
    pub expected: Expected,
    /// The list that names it (for error messages).
    pub list: String,
}

/// A list or signature read into memory.
#[derive(Debug, Clone)]
pub struct Small {
    pub bytes: Vec<u8>,
    pub sha256: Sha256,
    pub mtime: Option<i64>,
    /// Read back from the pool (unchanged upstream) rather than fetched.
    pub reused: bool,
}

/// Everything the lists of one tree establish.
#[derive(Debug, Default)]
pub struct Checks {
    /// Files named by a list, by path.
    pub expected: BTreeMap<String, Covered>,
    /// Lists and signatures read for verification, by path.
    pub small: BTreeMap<String, Small>,
    /// Lists whose signature the key verified, and those signatures.
    pub trusted: BTreeSet<String>,
}

/// The files of one list: its data (one `SHA256SUMS`, or the `.dat` and/or `.dat.gz` of one
/// aplinfo index) and the signatures beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    aplinfo: bool,
    /// The list's directory relative to the tree (`""` or `sub/`).
    dir: String,
    /// The uncompressed name (`…/SHA256SUMS`, `…/aplinfo-pve-8.dat`).
    name: String,
    data: Vec<String>,
    signatures: Vec<String>,
}

/// Reads, verifies and parses every checksum list of the tree.
pub async fn load(
    ctx: &TreeCtx<'_>,
    files: &[RemoteFile],
    previous: &HashMap<String, PublishedFile>,
) -> Result<Checks, MirrorError> {
    let id = &ctx.tree.id;
    let keyring = match &ctx.tree.key_bytes {
        Some(bytes) => Some(Keyring::from_bytes(bytes).map_err(|e| {
            let key = ctx.tree.key.as_ref().map(|p| p.display().to_string());
            MirrorError::new(id, key.as_deref(), e)
        })?),
        None => None,
    };
    let by_path: HashMap<&str, &RemoteFile> = files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut checks = Checks::default();
    for group in groups(files) {
        for path in group.data.iter().chain(&group.signatures) {
            let small = read_small(ctx, by_path[path.as_str()], previous.get(path)).await?;
            checks.small.insert(path.clone(), small);
        }
        let text = list_text(id, &group, &checks.small)?;
        if let Some(keyring) = &keyring {
            check_signatures(id, &group, &text, keyring, &checks.small)?;
            checks.trusted.extend(group.data.iter().chain(&group.signatures).cloned());
        }
        let named = named_files(id, &group, &text, files)?;
        for (path, expected) in named {
            add_expected(id, &mut checks.expected, path, Covered { expected, list: group.name.clone() })?;
        }
    }
    Ok(checks)
}

/// The checksum lists among the listed files, with their signatures.
fn groups(files: &[RemoteFile]) -> Vec<Group> {
    let present: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut by_name: BTreeMap<String, Group> = BTreeMap::new();
    for f in files {
        let (dir, base) = f.path.rsplit_once('/').map_or(("", f.path.as_str()), |(d, b)| (d, b));
        let dir = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let name = if base == "SHA256SUMS" {
            f.path.clone()
        } else if base.starts_with("aplinfo") && (base.ends_with(".dat") || base.ends_with(".dat.gz")) {
            f.path.trim_end_matches(".gz").to_owned()
        } else {
            continue;
        };
        let aplinfo = base != "SHA256SUMS";
        let group = by_name.entry(name.clone()).or_insert_with(|| Group {
            aplinfo,
            dir,
            signatures: SIGNATURE_SUFFIXES
                .iter()
                .map(|s| format!("{name}{s}"))
                .filter(|s| present.contains(s.as_str()))
                .collect(),
            name,
            data: Vec::new(),
        });
        group.data.push(f.path.clone());
    }
    by_name.into_values().collect()
}

/// A list or signature: back from the pool when unchanged upstream, else fetched.
async fn read_small(ctx: &TreeCtx<'_>, f: &RemoteFile, prev: Option<&PublishedFile>) -> Result<Small, MirrorError> {
    if let Some(p) = prev.filter(|p| unchanged(f, p) && !ctx.verify) {
        match std::fs::read(ctx.pool.object_path(&p.sha256)) {
            Ok(bytes) if Sha256::of(&bytes) == p.sha256 => {
                return Ok(Small { bytes, sha256: p.sha256, mtime: Some(p.mtime), reused: true });
            }
            Ok(_) => tracing::warn!(path = %f.path, sha256 = %p.sha256, "damaged pool object, fetching again"),
            Err(e) => tracing::debug!(path = %f.path, error = %e, "previous object unreadable, fetching"),
        }
    }
    let body =
        ctx.fetcher.get(&f.url, MAX_LIST_BYTES).await.map_err(|e| MirrorError::new(&ctx.tree.id, Some(&f.path), e))?;
    Ok(Small { sha256: Sha256::of(&body.bytes), mtime: body.last_modified, bytes: body.bytes, reused: false })
}

/// The uncompressed text of a list; a `.dat` and its `.dat.gz` must agree.
fn list_text(id: &str, group: &Group, small: &BTreeMap<String, Small>) -> Result<Vec<u8>, MirrorError> {
    let mut text: Option<Vec<u8>> = None;
    for path in &group.data {
        let bytes = &small[path].bytes;
        let plain =
            crate::apt::decompress(path, bytes, MAX_LIST_BYTES).map_err(|e| MirrorError::new(id, Some(path), e))?;
        match &text {
            Some(first) if *first != plain => {
                let reason = format!("does not hold the same index as {}", group.data[0]);
                return Err(MirrorError::new(id, Some(path), reason));
            }
            Some(_) => {}
            None => text = Some(plain),
        }
    }
    Ok(text.unwrap_or_default())
}

/// With a key, the list needs at least one detached signature and every one must verify.
fn check_signatures(
    id: &str,
    group: &Group,
    text: &[u8],
    keyring: &Keyring,
    small: &BTreeMap<String, Small>,
) -> Result<(), MirrorError> {
    if group.signatures.is_empty() {
        let reason =
            format!("no detached signature ({}) beside it, but the tree has a key", SIGNATURE_SUFFIXES.join(", "));
        return Err(MirrorError::new(id, Some(&group.name), reason));
    }
    for sig in &group.signatures {
        verify_detached_data(text, &small[sig].bytes, keyring).map_err(|e| {
            MirrorError::new(id, Some(sig), format!("signature of {} does not verify: {e}", group.name))
        })?;
    }
    Ok(())
}

/// The files a list names, as tree paths, with their digests. Templates whose Location lies
/// outside the tree (another server) are not ours to check.
fn named_files(
    id: &str,
    group: &Group,
    text: &[u8],
    files: &[RemoteFile],
) -> Result<Vec<(String, Expected)>, MirrorError> {
    let text = std::str::from_utf8(text).map_err(|_| MirrorError::new(id, Some(&group.name), "not UTF-8"))?;
    let bad = |e: super::checksums::ListError| MirrorError::new(id, Some(&group.name), e);
    if !group.aplinfo {
        let sums = parse_sha256sums(text).map_err(bad)?;
        return Ok(sums
            .into_iter()
            .map(|(name, sha)| (format!("{}{name}", group.dir), Expected::Sha256(sha)))
            .collect());
    }
    let mut out = Vec::new();
    for t in parse_aplinfo(text).map_err(bad)? {
        let Some(sha512) = t.sha512 else { continue };
        let path = if t.location.contains("://") {
            files.iter().find(|f| f.url.as_str() == t.location).map(|f| f.path.clone())
        } else {
            let path = format!("{}{}", group.dir, t.location);
            crate::apt::safe_relative_path(&path).is_ok().then_some(path)
        };
        match path {
            Some(path) => out.push((path, Expected::Sha512(sha512))),
            None => {
                tracing::debug!(list = %group.name, location = %t.location, "template outside the tree, not checked")
            }
        }
    }
    Ok(out)
}

/// Two lists naming one file must agree.
fn add_expected(
    id: &str,
    expected: &mut BTreeMap<String, Covered>,
    path: String,
    covered: Covered,
) -> Result<(), MirrorError> {
    match expected.get(&path) {
        Some(first) if first.expected != covered.expected => {
            let reason = format!("{} and {} give different checksums", first.list, covered.list);
            Err(MirrorError::new(id, Some(&path), reason))
        }
        Some(_) => Ok(()),
        None => {
            expected.insert(path, covered);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filetree::listing::ListedSize;

    fn file(path: &str) -> RemoteFile {
        let url = url::Url::parse("http://h/t/").unwrap().join(path).unwrap();
        RemoteFile { path: path.into(), url, size: ListedSize::Unknown, mtime: None }
    }

    #[test]
    fn lists_and_their_signatures_are_grouped() {
        let files: Vec<RemoteFile> = [
            "SHA256SUMS",
            "SHA256SUMS.asc",
            "a.iso",
            "sub/SHA256SUMS",
            "sub/SHA256SUMS.gpg",
            "sub/SHA256SUMS.sign",
            "aplinfo-pve-8.dat",
            "aplinfo-pve-8.dat.asc",
            "aplinfo-pve-8.dat.gz",
            "aplinfo.dat.gz",
            "aplinfo.txt",
            "system/x.tar.zst",
        ]
        .iter()
        .map(|p| file(p))
        .collect();
        let got: Vec<(bool, String, Vec<String>, Vec<String>)> =
            groups(&files).into_iter().map(|g| (g.aplinfo, g.dir, g.data, g.signatures)).collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                (false, "".into(), s(&["SHA256SUMS"]), s(&["SHA256SUMS.asc"])),
                (true, "".into(), s(&["aplinfo-pve-8.dat", "aplinfo-pve-8.dat.gz"]), s(&["aplinfo-pve-8.dat.asc"])),
                (true, "".into(), s(&["aplinfo.dat.gz"]), s(&[])),
                (false, "sub/".into(), s(&["sub/SHA256SUMS"]), s(&["sub/SHA256SUMS.gpg", "sub/SHA256SUMS.sign"])),
            ]
        );
    }

    #[test]
    fn templates_map_to_tree_paths() {
        let sha = "ab".repeat(64);
        let text = format!(
            "Package: a\nLocation: system/a.tar.zst\nsha512sum: {sha}\n\n\
             Package: b\nLocation: http://h/t/system/b.tar.zst\nsha512sum: {sha}\n\n\
             Package: c\nLocation: https://elsewhere/c.tar.gz\nsha512sum: {sha}\n\n\
             Package: d\nLocation: ../d.tar.gz\nsha512sum: {sha}\n\n\
             Package: e\nLocation: system/e.tar.zst\n"
        );
        let files = vec![file("system/a.tar.zst"), file("system/b.tar.zst")];
        let group =
            Group { aplinfo: true, dir: "".into(), name: "aplinfo.dat".into(), data: vec![], signatures: vec![] };
        let got = named_files("t", &group, text.as_bytes(), &files).unwrap();
        let want = Expected::Sha512(sha.parse().unwrap());
        assert_eq!(got, vec![("system/a.tar.zst".to_owned(), want), ("system/b.tar.zst".to_owned(), want)]);
    }

    #[test]
    fn lists_must_agree() {
        let a = Expected::Sha256(Sha256::of(b"a"));
        let b = Expected::Sha256(Sha256::of(b"b"));
        let mut map = BTreeMap::new();
        let cov = |e, l: &str| Covered { expected: e, list: l.into() };
        add_expected("t", &mut map, "x".into(), cov(a, "SHA256SUMS")).unwrap();
        add_expected("t", &mut map, "x".into(), cov(a, "other")).unwrap();
        let err = add_expected("t", &mut map, "x".into(), cov(b, "sub/SHA256SUMS")).unwrap_err();
        assert_eq!(err.file.as_deref(), Some("x"));
        assert!(err.reason.contains("SHA256SUMS and sub/SHA256SUMS"), "{err}");
    }
}
