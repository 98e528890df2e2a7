//! Test support shared by the integration tests: signed fixture upstream repositories
//! (`fixture`), a loopback HTTP server with fault injection (`http`), a raw HTTP client
//! (`client`), and harnesses for the real nginx (`nginx`), apt (`apt`) and an exFAT medium
//! (`exfat`).
//!
//! One signing key (and one "wrong" key) per test binary: key generation is not free, and
//! every fixture signed by the same key lets tests share the public key file.

// Each test module uses a different part of this API; what one leaves unused is not dead.
#![allow(dead_code)]

pub mod apt;
pub mod ceph;
pub mod client;
pub mod delay;
pub mod exfat;
pub mod fixture;
pub mod http;
pub mod nginx;
pub mod proxy;

use fixture::SigningKey;
use pmirror_fs::apt::signature::testkey;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

struct Keys {
    good: SigningKey,
    wrong: SigningKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        good: testkey::generate("pmirror-fs fixture <fixture@pmirror-fs.invalid>").expect("generate fixture key"),
        wrong: testkey::generate("someone else <wrong@pmirror-fs.invalid>").expect("generate wrong key"),
    })
}

/// The key every fixture is signed with.
pub fn signing_key() -> &'static SigningKey {
    &keys().good
}

/// A key no mirror trusts (for wrong-key tests: `upstream.resign(wrong_key())`).
pub fn wrong_key() -> &'static SigningKey {
    &keys().wrong
}

fn write_key(key: &SigningKey, path: PathBuf) -> PathBuf {
    let bytes = key.public_binary().expect("serialize public key");
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Write the fixture's public key (binary, like `/etc/apt/trusted.gpg.d/*.gpg`) to
/// `<dir>/key.gpg` and return that path.
pub fn write_public_key(dir: &Path) -> PathBuf {
    write_key(signing_key(), dir.join("key.gpg"))
}

/// Write the wrong key's public part to `<dir>/wrong-key.gpg`.
pub fn write_wrong_public_key(dir: &Path) -> PathBuf {
    write_key(wrong_key(), dir.join("wrong-key.gpg"))
}

/// Appends `lines` to the file `$var` names (`PMIRROR_SUMMARY_REPORT`, `PMIRROR_SKIP_REPORT`:
/// scripts/test.sh prints them at the very end of a run); nothing without it.
pub fn append_report(var: &str, lines: &[String]) {
    use std::io::Write;
    let Some(path) = std::env::var_os(var) else { return };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("${var} {}: {e}", Path::new(&path).display()));
    for line in lines {
        writeln!(f, "{line}").unwrap_or_else(|e| panic!("${var}: {e}"));
    }
}
