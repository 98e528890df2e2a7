//! Tests of the test support itself: fixtures are signed, hash-consistent, evolving apt
//! repositories that the crate's verifier and the real apt accept (and refuse when broken);
//! the loopback server and the nginx harness serve them with correct HTTP semantics.
//! Run with `cargo test --test integration support_selftest`.

use crate::support::fixture::{Fault, Flavor, Suite, Upstream};
use crate::support::{signing_key, wrong_key};
use pmirror_fs::apt::{
    decompress, parse_packages, verify_detached, verify_inrelease, Keyring, ParseError, Release, SignatureError,
};
use pmirror_fs::digest::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Index size cap for `decompress` in these tests (fixture indices are a few KiB).
const MAX_INDEX: u64 = 1 << 20;
/// Generations the moving-upstream tests walk through (the brief asks for at least five).
const GENERATIONS: u32 = 6;

fn keyring() -> Keyring {
    Keyring::from_bytes(&signing_key().public_binary().expect("public key")).expect("keyring")
}

fn build(flavor: Flavor, generation: u32) -> Upstream {
    Upstream::build(flavor, generation, signing_key()).expect("build fixture")
}

fn release_of(up: &Upstream, suite: &Suite) -> Result<Release, SignatureError> {
    let inrelease = up.bytes(&suite.inrelease_path()).expect("InRelease present");
    verify_inrelease(inrelease, &keyring()).map(|v| v.release().clone())
}

/// Uncompressed bytes of a Release entry: on disk, or listed-only (Debian's plain Packages).
fn release_entry_bytes(up: &Upstream, suite: &Suite, rel: &str) -> Option<Vec<u8>> {
    let path = format!("{}/{rel}", suite.dists());
    up.bytes(&path).map(<[u8]>::to_vec).or_else(|| suite.listed_only.get(rel).map(|b| b.to_vec()))
}

fn packages_of(up: &Upstream, base: &str) -> Result<Vec<pmirror_fs::apt::Package>, ParseError> {
    let index = parse_packages(&String::from_utf8(up.index_text(base).expect("index text")).expect("utf-8"))?;
    match index.unusable.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(index.packages),
    }
}

#[test]
fn fixture_releases_verify_and_match_every_file() {
    for flavor in [Flavor::Proxmox, Flavor::Debian] {
        let up = build(flavor, 2);
        for suite in &up.suites {
            let release_bytes = up.bytes(&suite.release_path()).expect("Release");
            let v =
                verify_inrelease(up.bytes(&suite.inrelease_path()).expect("InRelease"), &keyring()).expect("InRelease");
            assert_eq!(v.signed_text().as_bytes(), release_bytes, "{flavor:?}");
            let gpg = up.bytes(&suite.release_gpg_path()).expect("Release.gpg");
            verify_detached(release_bytes, gpg, &keyring()).expect("Release.gpg verifies");
            let rel = v.release();
            assert_eq!((rel.codename.as_deref(), rel.acquire_by_hash), (Some("bookworm"), flavor == Flavor::Debian));
            assert!(rel.files.len() >= 2, "{flavor:?} {}: {:?}", suite.root, rel.files);
            for f in &rel.files {
                let bytes = release_entry_bytes(&up, suite, &f.path).unwrap_or_else(|| panic!("{} missing", f.path));
                assert_eq!((Sha256::of(&bytes), bytes.len() as u64), (f.sha256, f.size), "{}", f.path);
                let on_disk = format!("{}/{}", suite.dists(), f.path);
                let dir = on_disk.rsplit_once('/').map(|(d, _)| d).unwrap_or_default();
                for (kind, hex) in [("SHA256", Some(f.sha256.to_hex())), ("SHA512", f.sha512.clone())] {
                    let copy = format!("{dir}/by-hash/{kind}/{}", hex.unwrap_or_default());
                    let wanted = suite.by_hash.iter().any(|k| k.release_field() == kind) && up.get(&on_disk).is_some();
                    assert_eq!(up.bytes(&copy).is_some(), wanted, "{copy}");
                    if wanted {
                        assert_eq!(up.bytes(&copy), Some(&bytes[..]), "{copy}");
                    }
                }
                if let Some(listed) = suite.listed_only.get(f.path.trim_end_matches(".xz").trim_end_matches(".gz")) {
                    assert_eq!(&decompress(&f.path, &bytes, MAX_INDEX).expect("decompress")[..], &listed[..]);
                }
            }
        }
        for base in up.packages_indices() {
            let suite = up.suites.iter().find(|s| base.starts_with(&s.dists())).expect("suite of index");
            let pkgs = packages_of(&up, &base).expect("Packages parses");
            assert!(!pkgs.is_empty(), "{base}");
            for p in pkgs {
                let deb = up.bytes(&format!("{}/{}", suite.root, p.filename)).expect("Filename exists");
                assert_eq!((Sha256::of(deb), deb.len() as u64), (p.sha256, p.size), "{}", p.filename);
            }
        }
    }
}

#[test]
fn fixtures_are_deterministic_and_move_on_every_generation() {
    for flavor in [Flavor::Proxmox, Flavor::Debian] {
        let unsigned = |up: &Upstream| -> BTreeMap<String, Vec<u8>> {
            let sig = |p: &str| p.ends_with("/InRelease") || p.ends_with("/Release.gpg");
            up.files.iter().filter(|(p, _)| !sig(p)).map(|(p, f)| (p.clone(), f.bytes.to_vec())).collect()
        };
        assert_eq!(unsigned(&build(flavor, 3)), unsigned(&build(flavor, 3)), "{flavor:?} is reproducible");
        let gens: Vec<Upstream> = (0..GENERATIONS).map(|g| build(flavor, g)).collect();
        for pair in gens.windows(2) {
            let (old, new) = (&pair[0], &pair[1]);
            for (a, b) in old.suites.iter().zip(&new.suites) {
                let (ma, mb) =
                    (old.get(&a.release_path()).expect("old").mtime, new.get(&b.release_path()).expect("new").mtime);
                assert_eq!(mb.duration_since(ma).ok(), Some(Duration::from_secs(60)), "{flavor:?}: Date +1 minute");
            }
            let (debs_old, debs_new): (BTreeSet<_>, BTreeSet<_>) =
                (old.deb_paths().into_iter().collect(), new.deb_paths().into_iter().collect());
            assert!(
                debs_new.difference(&debs_old).next().is_some(),
                "{flavor:?} gen {}: nothing added",
                new.generation
            );
            assert!(
                debs_old.difference(&debs_new).next().is_some(),
                "{flavor:?} gen {}: nothing removed",
                new.generation
            );
            for kept in debs_old.intersection(&debs_new) {
                assert_eq!(old.get(kept), new.get(kept), "{kept} keeps its bytes and mtime");
            }
        }
    }
}

#[test]
fn proxmox_fixture_has_dedup_cases_and_size_spread() {
    let up = build(Flavor::Proxmox, 1);
    let mut by_digest: BTreeMap<Sha256, Vec<&str>> = BTreeMap::new();
    for p in up.deb_paths() {
        by_digest.entry(Sha256::of(up.bytes(p).expect("deb"))).or_default().push(p);
    }
    let shared = |a: &str, b: &str| {
        by_digest.values().any(|ps| ps.iter().any(|p| p.contains(a)) && ps.iter().any(|p| p.contains(b)))
    };
    assert!(shared("/pve-no-subscription/", "/pvetest/"), "identical .deb in both pve components");
    assert!(shared("debian/pve/", "debian/pbs-client/"), "identical .deb in pve and pbs-client");
    let sizes: Vec<usize> = up.deb_paths().iter().map(|p| up.bytes(p).map_or(0, <[u8]>::len)).collect();
    let (min, max) = (sizes.iter().min().copied().unwrap_or(0), sizes.iter().max().copied().unwrap_or(0));
    assert!(min < 16 << 10 && (2 << 20..(2 << 20) + (64 << 10)).contains(&max), "sizes {min}..{max}");
}

#[test]
fn fixture_debs_are_real_packages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = build(Flavor::Proxmox, 0);
    for name in ["libjs-extjs_7.0.0-4_all.deb", "pve-firmware_3.9-1_all.deb"] {
        let path = up.deb_paths().into_iter().find(|p| p.ends_with(name)).expect("deb in fixture");
        let file = dir.path().join(name);
        std::fs::write(&file, up.bytes(path).expect("bytes")).expect("write deb");
        let run = |arg: &str| {
            let out = std::process::Command::new("dpkg-deb").arg(arg).arg(&file).output().expect("run dpkg-deb");
            assert!(out.status.success(), "dpkg-deb {arg} {name}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let package = name.split('_').next().unwrap_or_default();
        assert!(run("--info").contains(&format!("Package: {package}")), "{name}");
        assert!(run("--contents").contains(&format!("./usr/share/{package}/payload.bin")), "{name}");
    }
}

/// Each fault, and the check that shows the fixture is broken in exactly that way.
fn assert_fault(flavor: Flavor, fault: Fault) {
    let mut up = build(flavor, 1);
    let all_touched = up.apply(fault, signing_key()).expect("apply fault");
    assert!(!all_touched.is_empty(), "{flavor:?} {fault:?} touched nothing");
    let suite = up.suites[0].clone();
    let in_suite = |p: &&String| p.starts_with(&format!("{}/", suite.dists()));
    let touched: Vec<String> = all_touched.iter().filter(in_suite).cloned().collect();
    let first_index = up.packages_indices().iter().find(in_suite).cloned().expect("an index");
    let release = up.get(&suite.inrelease_path()).map(|_| release_of(&up, &suite));
    let index_matches_release = |up: &Upstream, path: &str| {
        let rel = path.strip_prefix(&format!("{}/", suite.dists())).expect("in suite");
        let verified = release.as_ref().and_then(|r| r.as_ref().ok()).expect("release verifies");
        let entry = verified.files.iter().find(|f| f.path == rel).cloned();
        entry.is_some_and(|e| Sha256::of(up.bytes(path).expect("file")) == e.sha256)
    };
    match fault {
        Fault::Unsigned => {
            assert!(up.get(&suite.inrelease_path()).is_none() && up.get(&suite.release_gpg_path()).is_none());
            assert!(up.get(&suite.release_path()).is_some());
        }
        Fault::TamperedInRelease => {
            assert!(matches!(release, Some(Err(SignatureError::BadSignature { .. }))), "{release:?}");
            let rel = up.bytes(&suite.release_path()).expect("Release");
            verify_detached(rel, up.bytes(&suite.release_gpg_path()).expect("gpg"), &keyring())
                .expect("Release.gpg still fine");
        }
        Fault::PackagesHashMismatch => {
            let canonical: Vec<&String> = touched.iter().filter(|p| !p.contains("/by-hash/")).collect();
            assert!(!canonical.is_empty() && canonical.iter().all(|p| !index_matches_release(&up, p)), "{touched:?}");
        }
        Fault::DebHashMismatch => {
            assert_eq!(all_touched.len(), up.suites.len(), "one .deb per suite: {all_touched:?}");
            let listed: Vec<_> =
                up.packages_indices().iter().flat_map(|b| packages_of(&up, b).expect("parses")).collect();
            for deb in &all_touched {
                let entry = listed.iter().find(|p| deb.ends_with(&p.filename)).expect("corrupted deb is listed");
                let bytes = up.bytes(deb).expect("deb");
                assert_eq!(bytes.len() as u64, entry.size, "{deb}");
                assert_ne!(Sha256::of(bytes), entry.sha256, "{deb}");
                let good_elsewhere =
                    up.deb_paths().iter().any(|p| Sha256::of(up.bytes(p).expect("deb")) == entry.sha256);
                assert!(!good_elsewhere, "{deb}: no other path may serve the good bytes");
            }
        }
        Fault::FilenameParentDir | Fault::FilenameAbsolute | Fault::MalformedPackages => {
            let variant = touched.iter().find(|p| up.get(p).is_some()).expect("an index on disk");
            assert!(index_matches_release(&up, variant), "{flavor:?} {fault:?}: re-signed consistently");
            let err = packages_of(&up, &first_index).expect_err("index must not parse");
            let want_syntax = fault == Fault::MalformedPackages;
            assert_eq!(matches!(err, ParseError::Syntax { .. }), want_syntax, "{err}");
            assert_eq!(
                matches!(&err, ParseError::BadField { field, .. } if field == "Filename"),
                !want_syntax,
                "{err}"
            );
        }
        Fault::MalformedRelease => {
            assert!(matches!(release, Some(Err(SignatureError::Release(_)))), "{release:?}");
        }
    }
}

#[test]
fn faults_break_fixtures_exactly_as_named() {
    let faults = [
        Fault::Unsigned,
        Fault::TamperedInRelease,
        Fault::PackagesHashMismatch,
        Fault::DebHashMismatch,
        Fault::FilenameParentDir,
        Fault::FilenameAbsolute,
        Fault::MalformedRelease,
        Fault::MalformedPackages,
    ];
    for flavor in [Flavor::Proxmox, Flavor::Debian] {
        for fault in faults {
            assert_fault(flavor, fault);
        }
        let mut up = build(flavor, 0);
        up.resign(wrong_key()).expect("resign");
        let err = release_of(&up, &up.suites[0]).expect_err("wrong key");
        assert!(matches!(err, SignatureError::UnknownKey { .. }), "{err}");
    }
}

#[test]
fn written_tree_keeps_bytes_and_mtimes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = build(Flavor::Debian, 1);
    up.write_to(dir.path()).expect("write_to");
    for (path, file) in &up.files {
        let on_disk = dir.path().join(path);
        assert_eq!(std::fs::read(&on_disk).expect("read back"), &file.bytes[..], "{path}");
        let mtime = std::fs::metadata(&on_disk).and_then(|m| m.modified()).expect("mtime");
        assert_eq!(mtime, file.mtime, "{path}");
    }
}

mod ceph;
/// The server, nginx and apt halves of the self-test.
mod exfat;
mod serving;
