//! Issue 4: `[[tree]]` file trees (ISO images, CT templates) end to end through the real CLI:
//! listed from the real nginx's autoindex pages, verified against SHA256SUMS / aplinfo and their
//! signatures, byte-identical through the FUSE mount, incremental, and refused (previous
//! snapshot kept) on every kind of bad upstream — the faults injected by the loopback server.

use crate::harness::{text, Env, Mount};
use crate::support::fixture::Upstream;
use crate::support::nginx::Nginx;
use crate::support::{signing_key, wrong_key};
use crate::tree_fixture::{self as fx, trees};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const ROOTS: [&str; 2] = ["iso", "images"];
const NEW_ISO: &str = "iso/proxmox-ve_8.3-1.iso";
const NEW_TEMPLATE: &str = "images/system/rockylinux-9-default_20240912_amd64.tar.xz";

fn tree_block(id: &str, url: &str, key: Option<&Path>) -> String {
    let key = key.map(|k| format!("key = \"{}\"\n", k.display())).unwrap_or_default();
    format!("[[tree]]\nid = \"{id}\"\nurl = \"{url}\"\n{key}\n")
}

/// Points the env's config at trees `iso` and `images` under `base` (`http://host:port`).
fn configure(env: &mut Env, base: &str, keyed: bool) {
    let key = keyed.then(|| env.key.clone());
    let blocks: String = ROOTS.iter().map(|r| tree_block(r, &format!("{base}/{r}/"), key.as_deref())).collect();
    env.write_config(&[], &blocks);
}

/// Trees served from memory by the loopback server (fault injection, request counts).
fn loopback(up: Upstream, keyed: bool) -> Env {
    let mut env = Env::new(up, &[]);
    let base = env.server.base_url();
    configure(&mut env, &base, keyed);
    env
}

/// Trees written to a directory and served by the real nginx with autoindex.
struct Served {
    env: Env,
    root: tempfile::TempDir,
    nginx: Nginx,
}

fn served(up: &Upstream) -> Served {
    let root = tempfile::tempdir().expect("tempdir");
    up.write_to(root.path()).expect("write fixture trees");
    let nginx = Nginx::start_plain(root.path());
    let mut env = Env::new(up.clone(), &[]);
    configure(&mut env, &nginx.base_url(), true);
    Served { env, root, nginx }
}

/// Request paths in nginx's access log from line `from` on.
fn requested(nginx: &Nginx, from: usize) -> Vec<String> {
    let log = nginx.access_log();
    log.lines().skip(from).filter_map(|l| l.split('"').nth(1)?.split_whitespace().nth(1).map(str::to_owned)).collect()
}

fn assert_published_as_upstream(env: &Env, up: &Upstream) {
    for root in ROOTS {
        let want = fx::tree_files(up, root);
        let got = env.published_files(root);
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{root}: paths");
        for (path, bytes) in &want {
            assert!(got[path] == *bytes, "{root}/{path} differs from upstream");
        }
    }
}

#[test]
fn full_sync_from_nginx_is_verified_and_byte_identical_through_the_mount() {
    let up = trees(0, signing_key());
    let s = served(&up);
    let out = s.env.sync_ok(&[]);
    for root in ROOTS {
        assert!(out.contains(&format!("{root}: new snapshot")), "{out}");
    }
    assert!(!out.contains("unverified"), "every file is covered by a signed list: {out}");
    assert_published_as_upstream(&s.env, &up);
    s.env.assert_pool_sound();

    let mnt = Mount::start(&s.env);
    for (path, file) in &up.files {
        let served = mnt.path(path);
        let bytes = std::fs::read(&served).unwrap_or_else(|e| panic!("{}: {e}", served.display()));
        assert!(bytes == *file.bytes, "{path} through the mount differs from upstream");
        let want = file.mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert_eq!(std::fs::metadata(&served).unwrap().mtime(), want, "{path}: mtime is not upstream's");
    }
}

#[test]
fn resync_fetches_nothing_and_a_new_iso_appears() {
    let up = trees(0, signing_key());
    let s = served(&up);
    s.env.sync_ok(&[]);
    let first: Vec<String> = ROOTS.iter().map(|r| s.env.published(r).unwrap().name).collect();

    let seen = s.nginx.access_log().lines().count();
    let out = s.env.sync_ok(&[]);
    for root in ROOTS {
        assert!(out.contains(&format!("{root}: unchanged; fetched 0 files")), "{out}");
    }
    let paths = requested(&s.nginx, seen);
    assert!(!paths.is_empty() && paths.iter().all(|p| p.ends_with('/')), "re-sync fetched files: {paths:?}");
    let again: Vec<String> = ROOTS.iter().map(|r| s.env.published(r).unwrap().name).collect();
    assert_eq!(again, first, "an unchanged tree must not get a new snapshot");

    let next = trees(1, signing_key());
    next.write_to(s.root.path()).expect("write generation 1");
    let seen = s.nginx.access_log().lines().count();
    let out = s.env.sync_ok(&[]);
    for root in ROOTS {
        assert!(out.contains(&format!("{root}: new snapshot")), "{out}");
    }
    let files: BTreeSet<String> = requested(&s.nginx, seen).into_iter().filter(|p| !p.ends_with('/')).collect();
    let want: BTreeSet<String> = [
        NEW_ISO,
        "iso/SHA256SUMS",
        "iso/SHA256SUMS.asc",
        NEW_TEMPLATE,
        fx::APLINFO,
        &format!("{}.gz", fx::APLINFO),
        &format!("{}.asc", fx::APLINFO),
    ]
    .iter()
    .map(|p| format!("/{p}"))
    .collect();
    assert_eq!(files, want, "only what changed upstream is downloaded");
    assert_published_as_upstream(&s.env, &next);
    s.env.assert_pool_sound();
}

#[test]
fn dry_run_plans_and_writes_nothing() {
    let env = loopback(trees(0, signing_key()), true);
    let out = env.run(&["sync", "--dry-run"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("iso: fetch proxmox-ve_8.2-1.iso (3.0 MiB)"), "{stdout}");
    assert!(stdout.contains("images: fetch system/debian-12-standard_12.7-1_amd64.tar.zst"), "{stdout}");
    assert!(stdout.contains("iso: dry run"), "{stdout}");
    for iso in ["proxmox-ve_8.2-1.iso", "proxmox-backup-server_3.2-1.iso"] {
        assert_eq!(env.server.hits(&format!("iso/{iso}")), 0, "dry run downloaded {iso}");
    }
    assert!(env.pool_objects().is_empty(), "dry run wrote to the pool");
}

#[test]
fn files_no_list_covers_are_stored_and_reported() {
    let mut up = trees(0, signing_key());
    up.put("iso/README.txt", b"see SHA256SUMS\n".to_vec(), fx::at(0, 5));
    // Keyed: only README is unverified. Without a key the lists themselves are unverified too.
    let cases: [(bool, &str); 2] = [
        (true, "1 file unverified by upstream (no checksum list covers them): README.txt"),
        (
            false,
            "3 files unverified by upstream (no checksum list covers them): README.txt, SHA256SUMS, SHA256SUMS.asc",
        ),
    ];
    for (keyed, warning) in cases {
        let env = loopback(up.clone(), keyed);
        let out = env.sync_ok(&[]);
        assert!(out.contains(&format!("  warning: {warning} (under http://")), "keyed={keyed}: {out}");
        assert_eq!(env.published_files("iso")["README.txt"], b"see SHA256SUMS\n");
        // The next run finds the same: counted as known, not printed again (cron mail stays quiet).
        let again = env.sync_ok(&[]);
        assert!(!again.contains("warning:") && again.contains("1 known warning"), "keyed={keyed}: {again}");
    }
}

#[test]
fn verify_downloads_damaged_objects_again() {
    let up = trees(0, signing_key());
    let env = loopback(up.clone(), true);
    env.sync_ok(&[]);
    let iso = up.bytes("iso/proxmox-mail-gateway_8.1-1.iso").unwrap();
    let object = env.object_path(&pmirror_fs::digest::Sha256::of(iso));
    let mut rotten = iso.to_vec();
    rotten[4096] ^= 0x20; // a flipped bit: same size, so only re-hashing finds it
    std::fs::write(&object, rotten).expect("damage the pool object");
    let out = env.sync_ok(&["--verify"]);
    assert!(out.contains("1 damaged or missing pool objects were downloaded again (1 damaged)"), "{out}");
    assert!(std::fs::read(&object).unwrap() == iso, "object not repaired");
    env.assert_pool_sound();
}

/// A checksum list is written from memory, not downloaded, so on the old tree path a damaged
/// pool copy of it survived `sync --verify` (the pool kept any object it had). One engine, one
/// repair: the good bytes are renamed over the damaged copy.
#[test]
fn verify_repairs_a_damaged_checksum_list_object() {
    let up = trees(0, signing_key());
    let env = loopback(up.clone(), true);
    env.sync_ok(&[]);
    let sums = up.bytes("iso/SHA256SUMS").unwrap();
    let object = env.object_path(&pmirror_fs::digest::Sha256::of(sums));
    let mut rotten = sums.to_vec();
    rotten[0] ^= 0x01;
    std::fs::write(&object, rotten).expect("damage the pool object");
    let out = env.sync_ok(&["--verify"]);
    assert!(out.contains("1 damaged or missing pool objects were downloaded again (1 damaged)"), "{out}");
    assert!(std::fs::read(&object).unwrap() == sums, "SHA256SUMS object not repaired");
    assert_eq!(env.published_files("iso")["SHA256SUMS"], sums);
    env.assert_pool_sound();
}

/// `sync --dry-run` of trees on a store that does not exist yet: the plan of every file, and
/// nothing created — no store directory, no lock, no pool, no catalog.
#[test]
fn a_dry_run_of_trees_on_a_fresh_path_creates_nothing() {
    let up = trees(0, signing_key());
    let env = loopback(up.clone(), true);
    assert!(!env.store.exists());
    let out = env.run(&["sync", "--dry-run"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!env.store.exists(), "a dry run created {}", env.store.display());
    for root in ROOTS {
        let files = fx::tree_files(&up, root).len();
        assert!(stdout.contains(&format!("{root}: dry run; would fetch {files} files")), "{stdout}");
    }
    assert!(
        stdout.contains("iso: verified SHA256SUMS") && stdout.contains("iso: fetch proxmox-mail-gateway_8.1-1.iso"),
        "{stdout}"
    );
}

/// Proxmox's index as pveam reads it: the news record is no file, a record without Location
/// names the file pveam derives (mirrored and checked against its sha512sum), and one whose
/// Location is on another host is not mirrored but named in the run's warnings.
#[test]
fn aplinfo_news_derived_and_foreign_locations_as_pveam_reads_them() {
    let mut up = trees(0, signing_key());
    fx::add_real_world_records(&mut up, signing_key());
    let env = loopback(up.clone(), true);
    let out = env.sync_ok(&[]);
    assert!(out.contains("images: new snapshot"), "{out}");
    let base = format!("{}/images/", env.server.base_url());
    let warning = format!(
        "  warning: aplinfo-pve-8.dat: template debian-12-turnkey-core_18.1-1_amd64.tar.gz at {}: not mirrored \
         (outside the tree's base URL {base})",
        fx::FOREIGN_TEMPLATE
    );
    assert!(out.contains(&warning), "{out}");
    assert!(!out.contains("unverified"), "the derived template is covered by the signed index: {out}");
    let published = env.published_files("images");
    let derived = fx::DERIVED_TEMPLATE.strip_prefix("images/").unwrap();
    assert!(published.contains_key(derived), "{:?}", published.keys());
    assert_eq!(published, fx::tree_files(&up, "images"));

    // The derived template is checked: other bytes at its path fail the tree.
    let mut bad = up.clone();
    let mtime = bad.get(fx::DERIVED_TEMPLATE).unwrap().mtime;
    bad.put(fx::DERIVED_TEMPLATE, fx::bytes(98, 15 * 1024 + 3), mtime);
    let env = loopback(bad, true);
    let out = env.run(&["sync"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let line =
        stderr.lines().find(|l| l.starts_with("pmirror-fs: tree images: ")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains(derived) && line.contains("does not match aplinfo-pve-8.dat: sha512"), "{line}");
}

/// What `pveam update` refuses, the tree sync refuses: one line naming the index and the
/// stanza, and the previous snapshot stays.
#[test]
fn an_aplinfo_pveam_refuses_fails_the_tree() {
    let before = trees(0, signing_key());
    let env = loopback(before.clone(), true);
    env.sync_ok(&[]);
    let published = env.published("images").unwrap().name;
    let mut next = trees(1, signing_key());
    let dat = String::from_utf8(next.bytes(fx::APLINFO).unwrap().to_vec()).unwrap();
    fx::set_aplinfo(&mut next, &dat.replacen("Type: lxc", "Type: qemu", 1), signing_key(), fx::at(1, 702));
    env.server.swap(next);
    let out = env.run(&["sync"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let line =
        stderr.lines().find(|l| l.starts_with("pmirror-fs: tree images: ")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.contains("aplinfo-pve-8.dat")
            && line.contains(
                "aplinfo stanza 2 (Package: debian-12-standard): unable to parse appliance record: unknown type 'qemu'"
            ),
        "{line}"
    );
    assert_eq!(env.published("images").unwrap().name, published);
    assert_eq!(env.published_files("images"), fx::tree_files(&before, "images"));
}

/// SHA256SUMS as `sha256sum -c` reads it (coreutils `digest_check`/`split_3`): a leading `\`
/// (escaped name) in the untagged and the tagged form, a comment, CRLF, the ` *` binary marker,
/// and an improperly formatted line, which is skipped and named in one warning line. Every ISO
/// is still checked against its line.
#[test]
fn sha256sums_read_as_sha256sum_reads_it() {
    let mut up = trees(0, signing_key());
    let isos = fx::isos(&up);
    let sum = |up: &Upstream, i: usize| (hex::encode(sha2_256(up.bytes(&isos[i]).unwrap())), &isos[i]["iso/".len()..]);
    let list = |up: &Upstream| {
        let ((a, an), (b, bn), (c, cn)) = (sum(up, 0), sum(up, 1), sum(up, 2));
        format!("# SHA256SUMS\n\\{a}  {an}\n\\SHA256 ({bn}) = {b}\r\nnot a checksum line\n{c} *{cn}\n")
    };
    let sums = list(&up);
    fx::set_sums(&mut up, &sums, signing_key(), fx::at(0, 600));
    let env = loopback(up.clone(), true);
    let out = env.sync_ok(&[]);
    assert!(out.contains("iso: new snapshot"), "{out}");
    let warning = format!(
        "  warning: SHA256SUMS at {}/iso/SHA256SUMS: 1 line skipped: 1 improperly formatted (sha256sum -c skips them \
         too); first, line 4: \"not a checksum line\" (improperly formatted)",
        env.server.base_url()
    );
    assert!(out.contains(&warning), "{out}");
    assert_eq!(out.matches("warning:").count(), 1, "one warning line: {out}");
    assert!(!out.contains("unverified"), "every ISO is covered by its line: {out}");
    assert_eq!(env.published_files("iso"), fx::tree_files(&up, "iso"));

    // The escaped lines are checks: other bytes under either name fail the tree.
    for i in [0, 1] {
        let mut bad = up.clone();
        let mtime = bad.get(&isos[i]).unwrap().mtime;
        let len = bad.bytes(&isos[i]).unwrap().len();
        bad.put(&isos[i], fx::bytes(90 + i as u64, len), mtime);
        let env = loopback(bad, true);
        let out = env.run(&["sync"]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{}", text(&out.stdout));
        let line =
            stderr.lines().find(|l| l.starts_with("pmirror-fs: tree iso: ")).unwrap_or_else(|| panic!("{stderr}"));
        assert!(line.contains(&isos[i]["iso/".len()..]) && line.contains("does not match SHA256SUMS"), "{line}");
    }
}

/// One way of breaking upstream at generation 1, which tree it hits, what the error line names.
struct Broken {
    what: &'static str,
    tree: &'static str,
    file: &'static str,
    reason: &'static str,
    apply: fn(&mut Upstream, &Env),
}

fn wrong_sum(up: &mut Upstream, _: &Env) {
    let sums = String::from_utf8(up.bytes("iso/SHA256SUMS").unwrap().to_vec()).unwrap();
    let text = sums.replace(&hex::encode(sha2_256(up.bytes(NEW_ISO).unwrap())), &"0".repeat(64));
    fx::set_sums(up, &text, signing_key(), fx::at(1, 601));
}

fn wrong_template(up: &mut Upstream, _: &Env) {
    let mtime = up.get(NEW_TEMPLATE).unwrap().mtime;
    up.put(NEW_TEMPLATE, fx::bytes(99, 25 * 1024), mtime);
}

fn foreign_signature(up: &mut Upstream, _: &Env) {
    let sums = up.bytes("iso/SHA256SUMS").unwrap().to_vec();
    up.put("iso/SHA256SUMS.asc", wrong_key().detach_sign(&sums).unwrap(), fx::at(1, 600));
}

fn tampered_list(up: &mut Upstream, _: &Env) {
    let mut sums = up.bytes("iso/SHA256SUMS").unwrap().to_vec();
    sums.extend_from_slice(format!("{}  extra.iso\n", "1".repeat(64)).as_bytes());
    up.put("iso/SHA256SUMS", sums, fx::at(1, 600));
}

/// `sha256sum -c` fails on a list without a properly formatted line.
fn no_checksum_line(up: &mut Upstream, _: &Env) {
    fx::set_sums(
        up,
        "# no checksum lines\n\nMD5 (x.iso) = 00112233445566778899aabbccddeeff\n",
        signing_key(),
        fx::at(1, 601),
    );
}

fn unsigned_list(up: &mut Upstream, _: &Env) {
    up.remove("iso/SHA256SUMS.asc");
}

fn foreign_aplinfo_signature(up: &mut Upstream, _: &Env) {
    let dat = up.bytes(fx::APLINFO).unwrap().to_vec();
    up.put(&format!("{}.asc", fx::APLINFO), wrong_key().detach_sign(&dat).unwrap(), fx::at(1, 700));
}

fn status_503(_: &mut Upstream, env: &Env) {
    env.server.fail_always(NEW_ISO, 503);
}

fn truncated(_: &mut Upstream, env: &Env) {
    env.server.truncate(NEW_ISO, 100_000);
}

fn sha2_256(b: &[u8]) -> [u8; 32] {
    pmirror_fs::digest::Sha256::of(b).0
}

const BROKEN: &[Broken] = &[
    Broken {
        what: "sha256 mismatch",
        tree: "iso",
        file: "proxmox-ve_8.3-1.iso",
        reason: "does not match sha256sums",
        apply: wrong_sum,
    },
    Broken {
        what: "sha512 mismatch",
        tree: "images",
        file: "rockylinux-9-default",
        reason: "does not match",
        apply: wrong_template,
    },
    Broken {
        what: "foreign signature",
        tree: "iso",
        file: "SHA256SUMS.asc",
        reason: "does not verify",
        apply: foreign_signature,
    },
    Broken {
        what: "list changed after signing",
        tree: "iso",
        file: "SHA256SUMS.asc",
        reason: "does not verify",
        apply: tampered_list,
    },
    Broken {
        what: "no properly formatted line",
        tree: "iso",
        file: "SHA256SUMS",
        reason: "no properly formatted checksum lines found",
        apply: no_checksum_line,
    },
    Broken {
        what: "missing signature",
        tree: "iso",
        file: "SHA256SUMS",
        reason: "no detached signature",
        apply: unsigned_list,
    },
    Broken {
        what: "aplinfo foreign signature",
        tree: "images",
        file: "aplinfo-pve-8.dat.asc",
        reason: "does not verify",
        apply: foreign_aplinfo_signature,
    },
    Broken {
        what: "503 in the middle",
        tree: "iso",
        file: "proxmox-ve_8.3-1.iso",
        reason: "http 503",
        apply: status_503,
    },
    Broken {
        what: "truncated download",
        tree: "iso",
        file: "proxmox-ve_8.3-1.iso",
        reason: "truncated",
        apply: truncated,
    },
];

#[test]
fn broken_upstream_is_refused_and_the_previous_tree_stays() {
    for case in BROKEN {
        let before = trees(0, signing_key());
        let env = loopback(before.clone(), true);
        env.sync_ok(&[]);
        let published = env.published(case.tree).unwrap().name;
        let mut next = trees(1, signing_key());
        (case.apply)(&mut next, &env);
        env.server.swap(next);

        let out = env.run(&["sync"]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{}: sync succeeded: {}", case.what, text(&out.stdout));
        let prefix = format!("pmirror-fs: tree {}: ", case.tree);
        let line = stderr.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{}: {stderr}", case.what));
        assert!(line.contains(case.file), "{}: {line:?} does not name {}", case.what, case.file);
        assert!(line.to_lowercase().contains(case.reason), "{}: {line:?} does not say {}", case.what, case.reason);
        assert_eq!(env.published(case.tree).unwrap().name, published, "{}: published snapshot changed", case.what);
        assert_eq!(env.published_files(case.tree), fx::tree_files(&before, case.tree), "{}", case.what);
        env.assert_pool_sound();
    }
}
