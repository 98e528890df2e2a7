//! Fixture file trees for the `[[tree]]` tests, laid out as Proxmox's download server has them:
//!
//! ```text
//! iso/
//! ├── proxmox-ve_8.2-1.iso                 a few MiB of deterministic bytes
//! ├── proxmox-backup-server_3.2-1.iso
//! ├── proxmox-mail-gateway_8.1-1.iso
//! ├── SHA256SUMS                           `<sha256>  <name>` per ISO
//! └── SHA256SUMS.asc                       detached, armored, by the fixture key
//! images/
//! ├── aplinfo-pve-8.dat                    as Proxmox's: the pve-web-news record first, then per
//! ├── aplinfo-pve-8.dat.gz                   template Package, Version, Type: lxc, OS, Section, …,
//! │                                          Location, md5sum, sha512sum, Infopage, Description
//! ├── aplinfo-pve-8.dat.asc                detached signature over the uncompressed .dat
//! └── system/*.tar.zst, *.tar.xz           templates of some KiB
//! ```
//!
//! Held as an [`Upstream`] file map (so the loopback `TestServer` serves it, with autoindex
//! pages and fault injection) or written to a directory for the real nginx. Generation 1 adds an
//! ISO and a template, with the lists and signatures regenerated. [`add_real_world_records`]
//! adds what real indices hold beyond that: a record without Location (its file at the path
//! pveam derives) and one whose absolute Location is on another host.

use crate::support::fixture::{Flavor, SigningKey, Upstream};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 2024-04-24 10:57:12 UTC: mid-minute, so a listing's minute precision is actually exercised.
pub const TREE_BASE_SECS: u64 = 1_713_956_232;
/// How far each generation moves upstream's clock.
pub const TREE_STEP_SECS: u64 = 3600;
const MIB: usize = 1 << 20;
const KIB: usize = 1 << 10;

/// (name, size, seed, generation it appears in)
const ISOS: &[(&str, usize, u64, u32)] = &[
    ("proxmox-ve_8.2-1.iso", 3 * MIB + 17, 1, 0),
    ("proxmox-backup-server_3.2-1.iso", 2 * MIB + 5, 2, 0),
    ("proxmox-mail-gateway_8.1-1.iso", MIB + 3, 3, 0),
    ("proxmox-ve_8.3-1.iso", 2 * MIB + 101, 4, 1),
];

/// (package, version, os, file name, size, seed, generation)
const TEMPLATES: &[(&str, &str, &str, &str, usize, u64, u32)] = &[
    ("debian-12-standard", "12.7-1", "debian-12", "debian-12-standard_12.7-1_amd64.tar.zst", 40 * KIB + 1, 11, 0),
    ("alpine-3.20-default", "20240908", "alpine-3.20", "alpine-3.20-default_20240908_amd64.tar.xz", 20 * KIB, 12, 0),
    (
        "ubuntu-24.04-standard",
        "24.04-2",
        "ubuntu-24.04",
        "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
        30 * KIB,
        13,
        0,
    ),
    ("rockylinux-9-default", "20240912", "rockylinux-9", "rockylinux-9-default_20240912_amd64.tar.xz", 25 * KIB, 14, 1),
];

pub const APLINFO: &str = "images/aplinfo-pve-8.dat";

/// The news record Proxmox's index starts with: no file.
const NEWS: &str = "Package: pve-web-news\nDescription: Proxmox VE news\n \
                    New templates and releases are announced on https://www.proxmox.com/en/news.\n \
                    .\n See the forum for details.\n\n";

/// A record without Location: pveam fetches `<Section>/<OS>-<Package>_<Version>_<Arch>.tar.gz`
/// (the doubled `debian-11-` collapsed).
const DERIVED: (&str, &str, &str) = ("debian-11-standard", "11.7-1", "debian-11");
/// Where that template is, below the tree.
pub const DERIVED_TEMPLATE: &str = "images/system/debian-11-standard_11.7-1_amd64.tar.gz";
/// A record whose absolute Location is on another host (as TurnKey's index has them).
pub const FOREIGN_TEMPLATE: &str = "https://releases.example.org/pve/debian-12-turnkey-core_18.1-1_amd64.tar.gz";

/// The time of `generation` (plus `offset` seconds).
pub fn at(generation: u32, offset: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(TREE_BASE_SECS + TREE_STEP_SECS * u64::from(generation) + offset)
}

/// `len` deterministic pseudo-random bytes (xorshift64*), different per seed.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Both trees at `generation`, lists signed by `key`.
pub fn trees(generation: u32, key: &SigningKey) -> Upstream {
    let mut up = Upstream { flavor: Flavor::Proxmox, generation, files: BTreeMap::new(), suites: Vec::new() };
    for (i, (name, size, seed, since)) in ISOS.iter().enumerate() {
        if *since <= generation {
            up.put(&format!("iso/{name}"), bytes(*seed, *size), at(*since, i as u64 * 7));
        }
    }
    for (i, (.., file, size, seed, since)) in TEMPLATES.iter().enumerate() {
        if *since <= generation {
            up.put(&format!("images/system/{file}"), bytes(*seed, *size), at(*since, 100 + i as u64 * 11));
        }
    }
    sign_iso_sums(&mut up, key, at(generation, 600));
    sign_aplinfo(&mut up, key, at(generation, 700));
    up
}

/// Every ISO under `iso/`.
pub fn isos(up: &Upstream) -> Vec<String> {
    up.files.keys().filter(|p| p.starts_with("iso/") && p.ends_with(".iso")).cloned().collect()
}

/// Rewrites `iso/SHA256SUMS` for the ISOs present and signs it into `iso/SHA256SUMS.asc`.
pub fn sign_iso_sums(up: &mut Upstream, key: &SigningKey, mtime: SystemTime) {
    let mut text = String::new();
    for path in isos(up) {
        let sha = sha2::Sha256::digest(up.bytes(&path).expect("iso"));
        text += &format!("{}  {}\n", hex::encode(sha), &path["iso/".len()..]);
    }
    set_sums(up, &text, key, mtime);
}

/// Replaces `iso/SHA256SUMS` with `text` and a valid signature over it.
pub fn set_sums(up: &mut Upstream, text: &str, key: &SigningKey, mtime: SystemTime) {
    let sig = key.detach_sign(text.as_bytes()).expect("sign SHA256SUMS");
    up.put("iso/SHA256SUMS", text.as_bytes().to_vec(), mtime);
    up.put("iso/SHA256SUMS.asc", sig, mtime);
}

/// One aplinfo stanza as Proxmox writes it; `location` `None` leaves the Location out.
fn stanza(package: &str, version: &str, os: &str, location: Option<&str>, content: &[u8]) -> String {
    let location = location.map(|l| format!("Location: {l}\n")).unwrap_or_default();
    format!(
        "Package: {package}\nVersion: {version}\nType: lxc\nOS: {os}\nSection: system\n\
         Maintainer: Proxmox Support Team <support@proxmox.com>\nArchitecture: amd64\n\
         {location}md5sum: {}\nsha512sum: {}\n\
         Infopage: https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions\n\
         Description: {package} (fixture)\n A small {os} system for tests.\n\n",
        hex::encode(md5::Md5::digest(content)),
        hex::encode(sha2::Sha512::digest(content)),
    )
}

/// The index's text for the templates present: the news record, then one stanza each.
fn aplinfo_text(up: &Upstream) -> String {
    let mut text = NEWS.to_owned();
    for (package, version, os, file, ..) in TEMPLATES {
        if let Some(content) = up.bytes(&format!("images/system/{file}")) {
            text += &stanza(package, version, os, Some(&format!("system/{file}")), content);
        }
    }
    text
}

/// Rewrites the aplinfo index (`.dat`, `.dat.gz`, `.dat.asc`) for the templates present.
pub fn sign_aplinfo(up: &mut Upstream, key: &SigningKey, mtime: SystemTime) {
    let text = aplinfo_text(up);
    set_aplinfo(up, &text, key, mtime);
}

/// Adds [`DERIVED_TEMPLATE`] (its record without Location) and a record for
/// [`FOREIGN_TEMPLATE`] to the index, re-signed.
pub fn add_real_world_records(up: &mut Upstream, key: &SigningKey) {
    let (package, version, os) = DERIVED;
    let content = bytes(21, 15 * KIB + 3);
    let mut text = aplinfo_text(up);
    text += &stanza(package, version, os, None, &content);
    text += &stanza("turnkey-core", "18.1-1", "debian-12", Some(FOREIGN_TEMPLATE), &bytes(22, 100));
    up.put(DERIVED_TEMPLATE, content, at(up.generation, 150));
    set_aplinfo(up, &text, key, at(up.generation, 701));
}

/// Replaces the aplinfo index with `text`, its gzip and a valid signature.
pub fn set_aplinfo(up: &mut Upstream, text: &str, key: &SigningKey, mtime: SystemTime) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).expect("gzip aplinfo");
    let gz = gz.finish().expect("gzip aplinfo");
    let sig = key.detach_sign(text.as_bytes()).expect("sign aplinfo");
    up.put(APLINFO, text.as_bytes().to_vec(), mtime);
    up.put(&format!("{APLINFO}.gz"), gz, mtime);
    up.put(&format!("{APLINFO}.asc"), sig, mtime);
}

/// The files of one tree (`iso`, `images`), by path relative to it.
pub fn tree_files(up: &Upstream, root: &str) -> BTreeMap<String, Vec<u8>> {
    let prefix = format!("{root}/");
    up.files.iter().filter_map(|(p, f)| Some((p.strip_prefix(&prefix)?.to_owned(), f.bytes.to_vec()))).collect()
}
