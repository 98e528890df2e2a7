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
//! - An aplinfo index is read as `pveam update` reads it ([`super::aplinfo`]): what pveam
//!   refuses fails the tree; news records are no files; each template's file is where pveam
//!   fetches it (its Location, or the one pveam derives), checked against its `sha512sum`, else
//!   its `md5sum`. A template the tree cannot hold (a URL outside the tree's base, not in the
//!   listing) or pveam would not download (no checksum) is not mirrored and named in a warning.

use super::aplinfo::{parse_aplinfo, Checksum, Location, Template};
use super::checksums::parse_sha256sums;
use super::walk::{unchanged, RemoteFile};
use super::TreeCtx;
use crate::apt::signature::{verify_detached_data, Keyring};
use crate::catalog::PublishedFile;
use crate::digest::Sha256;
use crate::engine::{Cause, EntryError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use url::Url;

/// Largest checksum list or signature accepted (compressed or not). Proxmox's aplinfo index is
/// ~50 KiB and a SHA256SUMS a few hundred bytes; this only bounds a hostile server.
const MAX_LIST_BYTES: u64 = 64 << 20;
/// Suffixes of detached signatures beside a list: Proxmox writes `.asc`, Debian's cdimage
/// `.sign`, others `.gpg`/`.sig`.
const SIGNATURE_SUFFIXES: [&str; 4] = [".asc", ".gpg", ".sign", ".sig"];

pub use crate::digest::Expected;

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
    /// Listed files not to mirror: templates pveam would not download (no checksum).
    pub unmirrored: BTreeSet<String>,
    /// One line per template not mirrored, naming the index, the template and its URL, and one
    /// per `SHA256SUMS` with skipped lines, naming the list, its URL and the first such line.
    pub warnings: Vec<String>,
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
) -> Result<Checks, EntryError> {
    let id = &ctx.tree.id;
    let keyring = match &ctx.tree.key_bytes {
        Some(bytes) => Some(Keyring::from_bytes(bytes).map_err(|e| {
            let key = ctx.tree.key.as_ref().map(|p| p.display().to_string());
            EntryError::tree(id, key.as_deref(), Cause::Key(Arc::new(e)))
        })?),
        None => None,
    };
    let by_path: HashMap<&str, &RemoteFile> = files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut checks = Checks::default();
    let mut unhashed: Vec<(String, String)> = Vec::new();
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
        let index_dir = by_path[group.data[0].as_str()].url.join("./").expect("a file URL has a directory");
        let named = named_files(id, &ctx.tree.url, &index_dir, &group, &text, files)?;
        for (path, expected) in named.expected {
            add_expected(id, &mut checks.expected, path, Covered { expected, list: group.name.clone() })?;
        }
        unhashed.extend(named.unhashed);
        checks.warnings.extend(named.warnings);
    }
    // A file another record or list gives a checksum is mirrored; the rest pveam would refuse.
    for (path, warning) in unhashed {
        if !checks.expected.contains_key(&path) && checks.unmirrored.insert(path) {
            checks.warnings.push(warning);
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
async fn read_small(ctx: &TreeCtx<'_>, f: &RemoteFile, prev: Option<&PublishedFile>) -> Result<Small, EntryError> {
    if let Some(p) = prev.filter(|p| unchanged(f, p) && !ctx.verify) {
        match ctx.pool.read_verified(&p.sha256, Some(p.size)) {
            Ok(Some(bytes)) => {
                return Ok(Small { bytes, sha256: p.sha256, mtime: Some(p.mtime), reused: true });
            }
            Ok(None) => tracing::debug!(path = %f.path, "previous object missing, fetching"),
            Err(e) => {
                tracing::warn!(path = %f.path, sha256 = %p.sha256, error = %e, "damaged pool object, fetching again")
            }
        }
    }
    let body =
        ctx.fetcher.get(&f.url, MAX_LIST_BYTES).await.map_err(|e| EntryError::tree(&ctx.tree.id, Some(&f.path), e))?;
    Ok(Small { sha256: Sha256::of(&body.bytes), mtime: body.last_modified, bytes: body.bytes, reused: false })
}

/// The uncompressed text of a list; a `.dat` and its `.dat.gz` must agree.
fn list_text(id: &str, group: &Group, small: &BTreeMap<String, Small>) -> Result<Vec<u8>, EntryError> {
    let mut text: Option<Vec<u8>> = None;
    for path in &group.data {
        let bytes = &small[path].bytes;
        let plain =
            crate::apt::decompress(path, bytes, MAX_LIST_BYTES).map_err(|e| EntryError::tree(id, Some(path), e))?;
        match &text {
            Some(first) if *first != plain => {
                let reason = format!("does not hold the same index as {}", group.data[0]);
                return Err(EntryError::tree(id, Some(path), reason));
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
) -> Result<(), EntryError> {
    if group.signatures.is_empty() {
        let reason =
            format!("no detached signature ({}) beside it, but the tree has a key", SIGNATURE_SUFFIXES.join(", "));
        return Err(EntryError::tree(id, Some(&group.name), reason));
    }
    for sig in &group.signatures {
        verify_detached_data(text, &small[sig].bytes, keyring).map_err(|e| {
            EntryError::tree(id, Some(sig), Cause::Signature { list: group.name.clone(), source: Arc::new(e) })
        })?;
    }
    Ok(())
}

/// What one list says about the tree's files.
#[derive(Debug, Default, PartialEq, Eq)]
struct Named {
    /// Tree paths with the digest they must have.
    expected: Vec<(String, Expected)>,
    /// Tree paths of templates without a checksum, with the warning naming them.
    unhashed: Vec<(String, String)>,
    /// Templates not mirrored for other reasons (outside the tree, not listed); a SHA256SUMS's
    /// skipped lines.
    warnings: Vec<String>,
}

/// The files a list names, as tree paths, with their digests. `base` is the tree's URL and
/// `index_dir` the URL of the list's directory.
fn named_files(
    id: &str,
    base: &Url,
    index_dir: &Url,
    group: &Group,
    text: &[u8],
    files: &[RemoteFile],
) -> Result<Named, EntryError> {
    if !group.aplinfo {
        let sums = parse_sha256sums(text, &group.dir)
            .map_err(|e| EntryError::tree(id, Some(&group.name), Cause::invalid(e)))?;
        let url = files.iter().find(|f| f.path == group.name).map(|f| &f.url);
        let warnings = url.and_then(|url| sums.warning(&group.name, url)).into_iter().collect();
        let expected = sums.files.into_iter().map(|(path, sha)| (path, Expected::Sha256(sha))).collect();
        return Ok(Named { expected, warnings, ..Named::default() });
    }
    let templates = parse_aplinfo(text).map_err(|e| EntryError::tree(id, Some(&group.name), Cause::invalid(e)))?;
    let by_url: HashMap<&Url, &str> = files.iter().map(|f| (&f.url, f.path.as_str())).collect();
    let mut out = Named::default();
    for t in templates {
        let not_mirrored = |at: &dyn fmt::Display, why: &str| {
            format!("{}: template {} at {at}: not mirrored ({why})", group.name, t.name)
        };
        let url = match template_url(&t, index_dir) {
            Ok(url) => url,
            Err(why) => {
                out.warnings.push(not_mirrored(&t.location, &why));
                continue;
            }
        };
        let Some(&path) = by_url.get(&url) else {
            let why = if url.as_str().starts_with(base.as_str()) {
                "not in the tree's listing".to_owned()
            } else {
                format!("outside the tree's base URL {base}")
            };
            out.warnings.push(not_mirrored(&url, &why));
            continue;
        };
        match &t.checksum {
            Some(Checksum::Sha512(d)) => out.expected.push((path.to_owned(), Expected::Sha512(*d))),
            Some(Checksum::Md5(d)) => out.expected.push((path.to_owned(), Expected::Md5(*d))),
            Some(Checksum::Malformed { field, value }) => {
                let reason = format!(
                    "aplinfo stanza {} (Package: {}): {field} of {} is not a digest ({value:?}), so no download \
                     of {url} can match it",
                    t.stanza, t.package, t.name
                );
                return Err(EntryError::tree(id, Some(&group.name), reason));
            }
            None => {
                let why = "neither sha512sum nor md5sum: pveam refuses to download it";
                out.unhashed.push((path.to_owned(), not_mirrored(&url, why)));
            }
        }
    }
    Ok(out)
}

/// Where pveam fetches a template: a relative location joined to the index's directory as
/// pveam joins them (`$source/$location`, as text), an absolute one as written.
fn template_url(t: &Template, index_dir: &Url) -> Result<Url, String> {
    let url = match &t.location {
        Location::Relative(l) => Url::parse(&format!("{index_dir}{l}")),
        Location::Absolute(l) => Url::parse(l),
        Location::Unpredictable => {
            return Err("no Location, and its OS holds regex metacharacters: the file pveam derives is not predictable"
                .to_owned())
        }
    };
    url.map_err(|e| format!("not a URL: {e}"))
}

/// Two lists naming one file must agree.
fn add_expected(
    id: &str,
    expected: &mut BTreeMap<String, Covered>,
    path: String,
    covered: Covered,
) -> Result<(), EntryError> {
    match expected.get(&path) {
        Some(first) if first.expected != covered.expected => {
            let reason = format!("{} and {} give different checksums", first.list, covered.list);
            Err(EntryError::tree(id, Some(&path), reason))
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

    const INFO: &str = "Infopage: https://pve.proxmox.com/wiki/Linux_Container\nDescription: t\n A template.\n\n";

    /// A template record as pveam needs it; `extra` holds Location and checksums.
    fn tpl(package: &str, extra: &str) -> String {
        format!("Package: {package}\nVersion: 1.0-1\nType: lxc\nOS: debian-12\nSection: system\n{extra}{INFO}")
    }

    fn aplinfo_group() -> Group {
        Group { aplinfo: true, dir: "".into(), name: "aplinfo.dat".into(), data: vec![], signatures: vec![] }
    }

    fn named(text: &str, files: &[RemoteFile]) -> Result<Named, EntryError> {
        let base = url::Url::parse("http://h/t/").unwrap();
        named_files("t", &base, &base, &aplinfo_group(), text.as_bytes(), files)
    }

    #[test]
    fn templates_map_to_tree_paths() {
        let sha = "ab".repeat(64);
        let md5 = "cd".repeat(16);
        let text = [
            "Package: pve-web-news\nDescription: news\n Read it.\n\n".to_owned(),
            tpl("a", &format!("Location: system/a.tar.zst\nsha512sum: {sha}\n")),
            tpl("b", &format!("Location: http://h/t/system/b.tar.zst\nsha512sum: {sha}\n")),
            tpl("c", &format!("Location: https://elsewhere/c.tar.gz\nsha512sum: {sha}\n")),
            tpl("d", &format!("Location: ../d.tar.gz\nsha512sum: {sha}\n")),
            tpl("e", "Location: system/e.tar.zst\n"),
            tpl("debian-12-f", &format!("Architecture: amd64\nsha512sum: {sha}\n")),
            tpl("g", &format!("Location: system/g.tar.zst\nmd5sum: {md5}\n")),
            tpl("h", &format!("Location: system/h.tar.zst\nsha512sum: {sha}\n")),
        ]
        .concat();
        let files: Vec<RemoteFile> = [
            "system/a.tar.zst",
            "system/b.tar.zst",
            "system/e.tar.zst",
            "system/debian-12-f_1.0-1_amd64.tar.gz",
            "system/g.tar.zst",
        ]
        .iter()
        .map(|p| file(p))
        .collect();
        let got = named(&text, &files).unwrap();
        let s512 = Expected::Sha512(sha.parse().unwrap());
        let want: Vec<(String, Expected)> = vec![
            ("system/a.tar.zst".into(), s512),
            ("system/b.tar.zst".into(), s512),
            ("system/debian-12-f_1.0-1_amd64.tar.gz".into(), s512),
            ("system/g.tar.zst".into(), Expected::Md5(md5.parse().unwrap())),
        ];
        assert_eq!(got.expected, want);
        let e = "aplinfo.dat: template e.tar.zst at http://h/t/system/e.tar.zst: not mirrored (neither sha512sum nor \
                 md5sum: pveam refuses to download it)";
        assert_eq!(got.unhashed, vec![("system/e.tar.zst".to_owned(), e.to_owned())]);
        assert_eq!(
            got.warnings,
            vec![
                "aplinfo.dat: template c.tar.gz at https://elsewhere/c.tar.gz: not mirrored (outside the tree's base URL \
                 http://h/t/)",
                "aplinfo.dat: template d.tar.gz at http://h/d.tar.gz: not mirrored (outside the tree's base URL http://h/t/)",
                "aplinfo.dat: template h.tar.zst at http://h/t/system/h.tar.zst: not mirrored (not in the tree's listing)",
            ]
        );
    }

    #[test]
    fn what_pveam_refuses_fails_the_tree() {
        let cases = [
            (
                "Package: pve-web-news\nVersion: 1\nDescription: headline only\n\n",
                "stanza 1 (Package: pve-web-news): found incomplete",
            ),
            (&*tpl("a", "").replace("Type: lxc", "Type: qemu"), "unknown type 'qemu'"),
            (&*tpl("a", "").replace("Version: 1.0-1", "Version: latest"), "version = 'latest'"),
            (&*tpl("a", "").replace("OS: debian-12\n", ""), "found incomplete appliance records (no os)"),
        ];
        for (text, detail) in cases {
            let err = named(text, &[]).unwrap_err();
            assert_eq!(err.file.as_deref(), Some("aplinfo.dat"), "{err}");
            assert!(
                err.cause.to_string().contains(detail) && err.cause.to_string().contains("pveam update refuses"),
                "{err}"
            );
        }
        // A digest no download can match, for a file the tree holds.
        let text = tpl("a", "Location: system/a.tar.zst\nsha512sum: 00\n");
        let err = named(&text, &[file("system/a.tar.zst")]).unwrap_err();
        assert!(
            err.cause.to_string().contains("stanza 1 (Package: a): sha512sum of a.tar.zst is not a digest"),
            "{err}"
        );
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
        assert!(err.cause.to_string().contains("SHA256SUMS and sub/SHA256SUMS"), "{err}");
    }
}
