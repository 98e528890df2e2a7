//! Deterministic, signed fixture upstream repositories — real apt repositories that `apt-get
//! update` accepts — held in memory as a file map (server path → bytes + mtime) that tests may
//! mutate, re-sign, serve (`http::TestServer`) or write to disk (`Upstream::write_to`).
//!
//! Two flavors (see `catalog` for the exact layout): Proxmox (`debian/pve`, `debian/pbs-client`,
//! .debs inside `dists/`) and Debian (`debian`, pool/, by-hash, xz). `generation` moves upstream
//! on: new versions, removed packages, a Release Date one minute later. `Fault` breaks a fixture
//! in the ways a mirror must refuse.
//!
//! This file is also compiled into `examples/make-upstream.rs` via `#[path]`, so it uses only the
//! crate's public API and the package's (dev-)dependencies; submodules are named by `#[path]`
//! relative to this file so both includers find them.

#[path = "fixture/catalog.rs"]
mod catalog;
#[path = "fixture/deb.rs"]
mod deb;
#[path = "fixture/fault.rs"]
mod fault;
#[path = "fixture/index.rs"]
mod index;

// Re-exports for the tests; the example includer uses only some of them.
#[allow(unused_imports)]
pub use catalog::{release_date, BASE_DATE_SECS, GENERATION_STEP_SECS};
pub use fault::Fault;
#[allow(unused_imports)]
pub use index::{release_date_field, HashKind, ReleaseHeader};
pub use pmirror_fs::apt::signature::testkey::SigningKey;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("building fixture: {0}")]
    Io(#[from] io::Error),
    #[error("writing {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error("signing {path}: {detail}")]
    Sign { path: String, detail: String },
    #[error("fixture has no {0}")]
    Missing(String),
    #[error("unknown flavor {0:?} (expected proxmox or debian)")]
    UnknownFlavor(String),
}

pub type Result<T, E = FixtureError> = std::result::Result<T, E>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Proxmox,
    Debian,
}

impl FromStr for Flavor {
    type Err = FixtureError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "proxmox" => Ok(Flavor::Proxmox),
            "debian" => Ok(Flavor::Debian),
            other => Err(FixtureError::UnknownFlavor(other.into())),
        }
    }
}

/// One served file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub bytes: Arc<[u8]>,
    /// Upstream `Last-Modified`.
    pub mtime: SystemTime,
}

/// One `<root>/dists/<codename>` and what its Release says.
#[derive(Clone, Debug)]
pub struct Suite {
    /// Repository root as a server path (`debian/pve`); apt's URL is `<base>/<root>`.
    pub root: String,
    pub header: ReleaseHeader,
    /// Digest sections in Release.
    pub hashes: Vec<HashKind>,
    /// `by-hash/<kind>/` copies written for every index on disk (empty: no by-hash).
    pub by_hash: Vec<HashKind>,
    /// Indices Release lists that are not on disk (Debian's uncompressed Packages), relative
    /// to `dists/<codename>/`.
    pub listed_only: BTreeMap<String, Arc<[u8]>>,
}

impl Suite {
    /// `<root>/dists/<codename>`.
    pub fn dists(&self) -> String {
        format!("{}/dists/{}", self.root, self.header.codename)
    }

    pub fn release_path(&self) -> String {
        format!("{}/Release", self.dists())
    }

    pub fn inrelease_path(&self) -> String {
        format!("{}/InRelease", self.dists())
    }

    pub fn release_gpg_path(&self) -> String {
        format!("{}/Release.gpg", self.dists())
    }

    /// The part of a sources.list line after the options: `URL CODENAME COMPONENT…`.
    pub fn apt_source(&self, base_url: &str) -> String {
        let base = base_url.trim_end_matches('/');
        format!("{base}/{} {} {}", self.root, self.header.codename, self.header.components.join(" "))
    }
}

/// A whole upstream server tree (paths without a leading `/`).
#[derive(Clone, Debug)]
pub struct Upstream {
    pub flavor: Flavor,
    pub generation: u32,
    pub files: BTreeMap<String, File>,
    pub suites: Vec<Suite>,
}

impl Upstream {
    /// The fixture of `flavor` at `generation`, signed by `key`.
    pub fn build(flavor: Flavor, generation: u32, key: &SigningKey) -> Result<Self> {
        let layouts = match flavor {
            Flavor::Proxmox => catalog::proxmox(generation)?,
            Flavor::Debian => catalog::debian(generation)?,
        };
        let mut up = Upstream { flavor, generation, files: BTreeMap::new(), suites: Vec::new() };
        for layout in layouts {
            let date = layout.suite.header.date;
            let dists = layout.suite.dists();
            for (path, deb) in layout.debs {
                up.put(&path, deb.bytes.clone(), deb.spec.mtime);
            }
            for (rel, bytes) in layout.on_disk {
                up.put(&format!("{dists}/{rel}"), bytes, date);
            }
            up.suites.push(layout.suite);
        }
        up.resign(key)?;
        Ok(up)
    }

    pub fn proxmox(generation: u32, key: &SigningKey) -> Result<Self> {
        Self::build(Flavor::Proxmox, generation, key)
    }

    pub fn debian(generation: u32, key: &SigningKey) -> Result<Self> {
        Self::build(Flavor::Debian, generation, key)
    }

    pub fn get(&self, path: &str) -> Option<&File> {
        self.files.get(path.trim_start_matches('/'))
    }

    pub fn bytes(&self, path: &str) -> Option<&[u8]> {
        self.get(path).map(|f| &*f.bytes)
    }

    pub fn put(&mut self, path: &str, bytes: impl Into<Arc<[u8]>>, mtime: SystemTime) {
        let file = File { bytes: bytes.into(), mtime };
        self.files.insert(path.trim_start_matches('/').to_string(), file);
    }

    pub fn remove(&mut self, path: &str) -> Option<File> {
        self.files.remove(path.trim_start_matches('/'))
    }

    /// The suite whose repository root is `root` (`debian/pve`).
    pub fn suite(&self, root: &str) -> Option<&Suite> {
        self.suites.iter().find(|s| s.root == root.trim_matches('/'))
    }

    /// Every package file, sorted (server paths).
    pub fn deb_paths(&self) -> Vec<&str> {
        self.files.keys().filter(|p| p.ends_with(".deb")).map(String::as_str).collect()
    }

    /// Index files of `suite` as its Release lists them: path relative to `dists/<codename>/`
    /// → content (on disk, plus the listed-only ones).
    fn release_entries(&self, suite: &Suite) -> Vec<(String, Arc<[u8]>)> {
        let prefix = format!("{}/", suite.dists());
        let mut entries: BTreeMap<String, Arc<[u8]>> = suite.listed_only.clone();
        for (path, file) in self.files.range(prefix.clone()..) {
            let Some(rel) = path.strip_prefix(&prefix) else { break };
            let top_level_release = matches!(rel, "Release" | "InRelease" | "Release.gpg");
            if !top_level_release && !rel.ends_with(".deb") && !rel.contains("by-hash/") {
                entries.insert(rel.to_string(), file.bytes.clone());
            }
        }
        entries.into_iter().collect()
    }

    /// Recompute every suite's by-hash copies and Release, and sign it (InRelease + Release.gpg)
    /// with `key` — after a test mutated indices, or to sign with a wrong key.
    pub fn resign(&mut self, key: &SigningKey) -> Result<()> {
        for i in 0..self.suites.len() {
            let suite = self.suites[i].clone();
            let by_hash_prefix = format!("{}/", suite.dists());
            self.files.retain(|p, _| !(p.starts_with(&by_hash_prefix) && p.contains("/by-hash/")));
            let entries = self.release_entries(&suite);
            self.add_by_hash(&suite, &entries);
            let text = index::release_text(&suite.header, &suite.hashes, &entries);
            self.sign_release(i, text.as_bytes(), key)?;
        }
        Ok(())
    }

    /// `<dir>/by-hash/<Kind>/<hex>` beside every index on disk.
    fn add_by_hash(&mut self, suite: &Suite, entries: &[(String, Arc<[u8]>)]) {
        let dists = suite.dists();
        for (rel, bytes) in entries {
            let path = format!("{dists}/{rel}");
            let Some(mtime) = self.get(&path).map(|f| f.mtime) else { continue };
            let dir = path.rsplit_once('/').map_or(dists.as_str(), |(d, _)| d).to_string();
            for kind in &suite.by_hash {
                let copy = format!("{dir}/by-hash/{}/{}", kind.release_field(), kind.hex(bytes));
                self.put(&copy, bytes.clone(), mtime);
            }
        }
    }

    /// Store `release` as suite `index`'s Release, clearsigned as InRelease and detached as
    /// Release.gpg, all dated by the suite's Release date.
    pub fn sign_release(&mut self, index: usize, release: &[u8], key: &SigningKey) -> Result<()> {
        let suite = self.suites.get(index).ok_or_else(|| FixtureError::Missing(format!("suite #{index}")))?;
        let (date, dists) = (suite.header.date, suite.dists());
        let sign_err = |what: &str, e: &dyn std::fmt::Display| FixtureError::Sign {
            path: format!("{dists}/{what}"),
            detail: e.to_string(),
        };
        let inrelease = key.clearsign(release).map_err(|e| sign_err("InRelease", &e))?;
        let detached = key.detach_sign(release).map_err(|e| sign_err("Release.gpg", &e))?;
        self.put(&format!("{dists}/Release"), release.to_vec(), date);
        self.put(&format!("{dists}/InRelease"), inrelease, date);
        self.put(&format!("{dists}/Release.gpg"), detached, date);
        Ok(())
    }

    /// The uncompressed text of index `base` (`<dists>/main/binary-amd64/Packages`), from
    /// whichever form the fixture holds.
    pub fn index_text(&self, base: &str) -> Result<Vec<u8>> {
        if let Some(f) = self.get(base) {
            return Ok(f.bytes.to_vec());
        }
        if let Some(bytes) = self.listed_only(base) {
            return Ok(bytes.to_vec());
        }
        let mut out = Vec::new();
        if let Some(gz) = self.bytes(&format!("{base}.gz")) {
            flate2::read::GzDecoder::new(gz).read_to_end(&mut out)?;
        } else if let Some(xz) = self.bytes(&format!("{base}.xz")) {
            liblzma::read::XzDecoder::new(xz).read_to_end(&mut out)?;
        } else {
            return Err(FixtureError::Missing(base.into()));
        }
        Ok(out)
    }

    fn listed_only(&self, base: &str) -> Option<&Arc<[u8]>> {
        self.suites.iter().find_map(|s| s.listed_only.get(base.strip_prefix(&format!("{}/", s.dists()))?))
    }

    /// Replace index `base` (server path without compression suffix) in every form the fixture
    /// holds (plain, .gz, .xz, listed-only), keeping mtimes. Does not re-sign: call `resign`
    /// for a consistent repository, or leave it for a hash-mismatch fault. Returns the paths
    /// written.
    pub fn replace_index(&mut self, base: &str, content: &[u8]) -> Result<Vec<String>> {
        let mut written = Vec::new();
        for suffix in ["", ".gz", ".xz"] {
            let path = format!("{base}{suffix}");
            let Some(mtime) = self.get(&path).map(|f| f.mtime) else { continue };
            let bytes = match suffix {
                ".gz" => index::gzip(content)?,
                ".xz" => index::xz(content)?,
                _ => content.to_vec(),
            };
            self.put(&path, bytes, mtime);
            written.push(path);
        }
        for suite in &mut self.suites {
            let Some(rel) = base.strip_prefix(&format!("{}/", suite.dists())) else { continue };
            if let Some(slot) = suite.listed_only.get_mut(rel) {
                *slot = Arc::from(content);
                written.push(base.to_string());
            }
        }
        if written.is_empty() {
            return Err(FixtureError::Missing(base.into()));
        }
        Ok(written)
    }

    /// Packages indices (server paths, no compression suffix) of every suite, sorted.
    pub fn packages_indices(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .suites
            .iter()
            .flat_map(|s| {
                let dists = s.dists();
                self.release_entries(s).into_iter().map(move |(rel, _)| format!("{dists}/{rel}"))
            })
            .filter_map(|p| {
                let base = p.trim_end_matches(".gz").trim_end_matches(".xz");
                base.ends_with("/Packages").then(|| base.to_string())
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Break the fixture (see [`Fault`]); `key` re-signs where the fault wants a valid
    /// signature over bad content. Returns the paths the fault touched.
    pub fn apply(&mut self, fault: Fault, key: &SigningKey) -> Result<Vec<String>> {
        fault::apply(self, fault, key)
    }

    /// Write every file under `dir` with its mtime (directories are created as needed; files
    /// already there and not in the fixture are left alone).
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        for (path, file) in &self.files {
            let target = dir.join(path);
            let write_err = |source| FixtureError::Write { path: target.display().to_string(), source };
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(write_err)?;
            }
            std::fs::write(&target, &file.bytes).map_err(write_err)?;
            let handle = std::fs::File::options().write(true).open(&target).map_err(write_err)?;
            handle.set_modified(file.mtime).map_err(write_err)?;
        }
        Ok(())
    }
}
