//! The TOML configuration (`[store]`, `[sync]`, `[[subscription]]`, `[[mirror]]`, `[[tree]]`,
//! `[[alias]]`), read and validated once into a [`Config`]: after [`Config::load`] every URL is
//! http(s) with a trailing slash, every id is unique and path-safe, every view path is relative
//! and outside `snapshots/`, every glob compiles, every key file has been read and every
//! `use-subscription` has its `[[subscription]]`. Errors are one line:
//! `FILE:LINE: ENTRY: KEY: reason`.
//!
//! ```text
//! config/
//!   mod.rs         public types, ConfigError, load/parse, resolve_path
//!   raw.rs         serde shapes with spans (deny_unknown_fields)
//!   convert.rs     raw → Config: defaults, per-entry checks, cross-entry checks
//!   validate.rs    pure checks on single values (ids, architectures, URLs, view paths)
//!   repository.rs  the `deb URL SUITE COMPONENT…` line
//!   subscription.rs  Proxmox subscription keys: product rule, masking
//!   defaults.rs    the default of every [store], [sync] and [mount] key
//!   medium.rs      [[medium]]: offline media, checked against the entries
//!   mount.rs       [mount]: connection pin bounds
//!   duration.rs    `48h`, `1d12h` durations
//!   render.rs      normalized TOML for `config show`
//! ```

mod convert;
mod defaults;
pub mod duration;
pub mod import;
mod medium;
mod mount;
pub mod presets;
mod raw;
mod render;
mod repository;
pub mod subscription;
mod sync;
#[cfg(test)]
mod tests;
pub mod validate;

pub use repository::{Repository, RepositoryError};
pub use subscription::{Product, Subscription, SubscriptionKey};

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the config lives unless `--config` or `$PMIRROR_FS_CONFIG` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/pmirror-fs/config.toml";

/// Environment variable naming the config file (below `--config`, above [`DEFAULT_PATH`]).
pub const ENV_VAR: &str = "PMIRROR_FS_CONFIG";

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (as given, not canonicalized).
    pub path: PathBuf,
    pub store: StoreConfig,
    pub sync: SyncConfig,
    pub mount: MountConfig,
    pub mirrors: Vec<MirrorConfig>,
    pub trees: Vec<TreeConfig>,
    pub aliases: Vec<AliasConfig>,
    /// `[[medium]]` entries (offline media for air-gapped clusters).
    pub media: Vec<MediumConfig>,
    /// `[web]`: the front page (`/index.html`, `/status/<id>.html`); none without the table.
    pub web: Option<WebConfig>,
    /// `[[subscription]]` entries in file order; an entry's `use-subscription` takes the first of
    /// its product.
    pub subscriptions: Vec<Subscription>,
    /// Mirrors and trees whose text is valid but which cannot run as the system stands: a key
    /// file missing, unreadable or empty, or a `use-subscription` no `[[subscription]]` answers.
    /// They are in neither `mirrors` nor `trees` (nothing can sync them by mistake); `status`
    /// lists them, `sync` fails each one by name and syncs the rest, `config check` names them.
    pub unusable: Vec<Unusable>,
}

/// A configured mirror or tree that cannot run until the operator fixes what `error` names.
#[derive(Debug)]
pub struct Unusable {
    /// `mirror` or `tree`, as the catalog records it.
    pub kind: &'static str,
    pub id: String,
    pub view: String,
    pub upstream: String,
    /// The problem, with its place in the config and the fix.
    pub error: ConfigError,
}

impl Clone for Unusable {
    fn clone(&self) -> Self {
        Unusable {
            kind: self.kind,
            id: self.id.clone(),
            view: self.view.clone(),
            upstream: self.upstream.clone(),
            error: self.error.duplicate(),
        }
    }
}

/// `[store]`: where the pool, catalog and staging area live.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Holds `pool/`, `catalog.db`, `tmp/`, `lock`. A relative `dir` is resolved against the
    /// config file's directory.
    pub dir: PathBuf,
    /// fsync objects and directories before the catalog references them.
    pub fsync: bool,
    /// Prometheus textfile (node_exporter textfile collector) rewritten after every sync;
    /// relative paths resolve against the config file's directory.
    pub metrics_textfile: Option<PathBuf>,
    /// `shared`: the store is on a filesystem several hosts mount (CephFS): mount daemons read
    /// only what the writer publishes for them (`views/`), never the catalog.
    pub shared: bool,
    /// `gc-delay`: on a shared store, how long an object no snapshot references any more stays
    /// in the pool before gc deletes it (serving nodes may still show it in an older view).
    pub gc_delay: Duration,
}

/// `[sync]`: how downloads run and how long old content stays.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Parallel downloads (at least 1).
    pub concurrency: usize,
    /// Extra attempts per failed request.
    pub retries: u32,
    /// Snapshots retained per mirror (at least 1; the published one always is).
    pub keep: usize,
    /// How long superseded by-hash files and package files stay visible.
    pub grace: Duration,
    /// Per-request connect/idle timeout (more than zero).
    pub timeout: Duration,
    /// `proxy`: the HTTP(S) proxy every request goes through, credentials and all (unset: the
    /// `http_proxy`/`https_proxy`/`no_proxy` environment, as apt and curl read it).
    pub proxy: Option<url::Url>,
    /// `rate-limit`: bytes per second a run takes from the network, all its connections
    /// together (unset: no limit).
    pub rate_limit: Option<u64>,
    /// `slow-rate` over `slow-time`: a transfer below it that long is abandoned and retried
    /// (unset: only `timeout` ends a stalled one).
    pub slow: Option<(u64, Duration)>,
    /// A new snapshot with more than this percentage fewer packages (tree: files) or bytes than
    /// the published one is recorded but not published (0–100; 100 never holds one back).
    pub max_shrink: u8,
    /// `max-concurrency`: how far plain-http downloads to one host may grow past `concurrency`
    /// while they wait on round trips rather than bandwidth (HTTP/2 multiplexes instead).
    pub max_concurrency: usize,
    /// `ca-file`: PEM certificates trusted for https besides the built-in roots (a TLS-inspecting
    /// proxy, a private upstream), resolved against the config file's directory.
    pub ca_file: Option<PathBuf>,
}

/// `[mount]`: how the mount daemon pins index paths under `.pin/<token>/` (one token per nginx
/// connection) to the view current at the token's first lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountConfig {
    /// A token not looked up for this long is forgotten (its next lookup pins the newest view).
    pub pin_idle: Duration,
    /// A token is forgotten this long after it was pinned, however busy it is.
    pub pin_lifetime: Duration,
    /// `cache-dir` and `cache-size`: a local copy of the pool objects this node serves.
    pub cache: Option<CacheConfig>,
}

/// `[web]`: what the mount's front page says about the site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebConfig {
    /// `base-url`: where clients reach the mirror (the client snippets use it), no trailing slash.
    pub base_url: String,
    /// `title`: the page's heading.
    pub title: String,
    /// `notice`: one line shown above the table (maintenance, a new host name).
    pub notice: Option<String>,
}

/// `[mount] cache-dir`, `cache-size`: objects are copied from the (shared) pool into `dir` on
/// their first open, verified while copied, and served from there; least recently used first
/// out once they hold more than `size` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    pub dir: PathBuf,
    pub size: u64,
}

/// One `[[medium]]`: an offline medium and what goes on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediumConfig {
    /// Letters, digits, `_ . -`; the medium's marker file names it.
    pub id: String,
    /// Where the medium is mounted (absolute).
    pub path: PathBuf,
    /// Ids of the mirrors and trees it carries.
    pub mirrors: Vec<String>,
    pub snapshots: MediumSnapshots,
}

/// Which snapshots of its mirrors a medium carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediumSnapshots {
    /// The published one of each (the default).
    Published,
    /// The newest N of each (the published one among them or not).
    Newest(usize),
    /// These, as (mirror or tree id, snapshot name).
    Named(Vec<(String, String)>),
}

/// One `[[mirror]]`: an apt repository synced into snapshots.
#[derive(Clone, Debug)]
pub struct MirrorConfig {
    pub id: String,
    pub repository: Repository,
    /// Debian architectures, `all` included when wanted; never `source`.
    pub architectures: Vec<String>,
    /// The key file as configured, resolved against the config file's directory.
    pub key: PathBuf,
    /// The key file's contents (binary or armored key or keyring), read at load time.
    pub key_bytes: Vec<u8>,
    /// Re-hash pool objects this mirror reuses.
    pub verify: bool,
    /// A package that fails to download is a warning, not a failed sync.
    pub ignore_errors: bool,
    /// Where the mirror appears in the view (`debian/pve`): relative, outside `snapshots/`.
    pub view: String,
    /// Compiled `skip-packages` globs (matched against package names).
    pub skip_packages: globset::GlobSet,
    /// `skip-packages` as written, in order (for rendering and logs).
    pub skip_package_patterns: Vec<String>,
    /// Packages whose `Section` is listed here are not mirrored.
    pub skip_sections: Vec<String>,
    /// `use-subscription`, resolved: the credentials sent to the repository's origin.
    pub subscription: Option<Subscription>,
    /// `sources`: more base URLs serving the same repository (same suite and components), tried
    /// after the repository's own; everything from them is verified like the rest.
    pub sources: Vec<url::Url>,
}

/// One `[[tree]]`: a plain file tree (ISO images, CT templates) listed from autoindex pages.
#[derive(Clone, Debug)]
pub struct TreeConfig {
    pub id: String,
    /// Base URL, http(s), always with a trailing slash.
    pub url: url::Url,
    /// Where the tree appears in the view: relative, outside `snapshots/`.
    pub view: String,
    /// Globs on paths below `url`; empty means every file. Each one compiles.
    pub include: Vec<String>,
    /// Globs on paths below `url` that are skipped even when included. Each one compiles.
    pub exclude: Vec<String>,
    /// Key for `SHA256SUMS.asc` / aplinfo signatures, resolved against the config directory.
    pub key: Option<PathBuf>,
    /// The key file's contents, read at load time.
    pub key_bytes: Option<Vec<u8>>,
    /// `use-subscription`, resolved: the credentials sent to the tree's origin.
    pub subscription: Option<Subscription>,
    /// `sources`: more base URLs serving the same tree, tried after `url`.
    pub sources: Vec<url::Url>,
}

/// One `[[alias]]`: `path` in the view shows what is at `target`.
#[derive(Clone, Debug)]
pub struct AliasConfig {
    /// Relative, outside `snapshots/`, not hiding a mirror or tree view.
    pub path: String,
    /// Relative; at, above or below a mirror/tree view, or inside `snapshots/`.
    pub target: String,
}

/// A position in the config file: `FILE:LINE`, or `FILE` when the line is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        match self.line {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

/// Why a config could not be loaded. Every variant displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file itself could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Not valid TOML, or the wrong shape: unknown key, wrong type, missing required key.
    #[error("{at}: {}{message}", entry_prefix(entry.as_deref()))]
    Syntax {
        at: Location,
        /// The table the error is in (`mirror "id"`, `[sync]`), when the file is valid TOML.
        entry: Option<String>,
        message: String,
    },
    /// A key file named by a mirror or tree could not be read, or is empty.
    #[error("{at}: {entry}: key file {}: {}; {}", key.display(), problem, key_fix(key, problem))]
    KeyFile {
        at: Location,
        /// `mirror "id"` or `tree "id"`.
        entry: String,
        key: PathBuf,
        problem: KeyFileProblem,
    },
    /// A `use-subscription` whose product no `[[subscription]]` has a key for. `config add`
    /// writes such a config anyway (with a hint), like one whose key file is still missing.
    #[error(
        "{at}: {entry}: use-subscription: no [[subscription]] has a {product} key; \
         add one with key = \"{product}…\" and server-id = \"…\""
    )]
    NoSubscription {
        at: Location,
        /// `mirror "id"` or `tree "id"`.
        entry: String,
        product: Product,
    },
    /// Well-formed but unacceptable value.
    #[error("{at}: {entry}: {key}: {message}")]
    Invalid {
        at: Location,
        /// `[store]`, `[sync]`, `mirror "id"`, `tree "id"` or `alias "path"`.
        entry: String,
        /// The offending key as written in the file (`grace`, `architectures`, …).
        key: &'static str,
        message: String,
    },
}

/// Why a key file cannot be used.
#[derive(Debug)]
pub enum KeyFileProblem {
    Unreadable(io::Error),
    Empty,
}

impl fmt::Display for KeyFileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileProblem::Unreadable(e) => write!(f, "{e}"),
            KeyFileProblem::Empty => f.write_str("is empty"),
        }
    }
}

/// The fix for a key file problem: where a preset's key comes from when the path is a preset's,
/// else what the file must hold.
fn key_fix(key: &Path, problem: &KeyFileProblem) -> String {
    if let KeyFileProblem::Unreadable(e) = problem {
        if e.kind() == io::ErrorKind::PermissionDenied {
            return "make it readable by the user running pmirror-fs".to_owned();
        }
    }
    match presets::key_source(key) {
        Some(source) => source,
        None => "put the repository's OpenPGP release key (binary or armored) there".to_owned(),
    }
}

fn entry_prefix(entry: Option<&str>) -> String {
    entry.map(|e| format!("{e}: ")).unwrap_or_default()
}

impl ConfigError {
    /// Where in the config file the problem is (the file alone for read errors).
    pub fn location(&self) -> Location {
        match self {
            ConfigError::Read { path, .. } => Location { path: path.clone(), line: None },
            ConfigError::Syntax { at, .. }
            | ConfigError::KeyFile { at, .. }
            | ConfigError::NoSubscription { at, .. }
            | ConfigError::Invalid { at, .. } => at.clone(),
        }
    }
}

impl ConfigError {
    /// A copy (`io::Error` is not `Clone`: a read error keeps its kind and text).
    pub fn duplicate(&self) -> ConfigError {
        let io = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        match self {
            ConfigError::Read { path, source } => ConfigError::Read { path: path.clone(), source: io(source) },
            ConfigError::Syntax { at, entry, message } => {
                ConfigError::Syntax { at: at.clone(), entry: entry.clone(), message: message.clone() }
            }
            ConfigError::KeyFile { at, entry, key, problem } => ConfigError::KeyFile {
                at: at.clone(),
                entry: entry.clone(),
                key: key.clone(),
                problem: match problem {
                    KeyFileProblem::Unreadable(e) => KeyFileProblem::Unreadable(io(e)),
                    KeyFileProblem::Empty => KeyFileProblem::Empty,
                },
            },
            ConfigError::NoSubscription { at, entry, product } => {
                ConfigError::NoSubscription { at: at.clone(), entry: entry.clone(), product: *product }
            }
            ConfigError::Invalid { at, entry, key, message } => {
                ConfigError::Invalid { at: at.clone(), entry: entry.clone(), key, message: message.clone() }
            }
        }
    }
}

impl Config {
    /// Reads, parses and validates the config file at `path` (and the key files it names).
    /// A config holding subscription keys that group or others may read earns a warning.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let config = Config::parse(&text, path)?;
        if !config.subscriptions.is_empty() {
            warn_if_exposed(path);
        }
        Ok(config)
    }

    /// Parses and validates `text` as if read from `path`. Key files are read here; relative key
    /// paths (and a relative store dir) resolve against `path`'s directory.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        convert::build(text, path)
    }

    /// Ids of every mirror, then every tree, then every unusable entry (unique across all).
    pub fn entry_ids(&self) -> impl Iterator<Item = &str> {
        let mirrors = self.mirrors.iter().map(|m| m.id.as_str());
        let trees = self.trees.iter().map(|t| t.id.as_str());
        mirrors.chain(trees).chain(self.unusable.iter().map(|u| u.id.as_str()))
    }

    /// The first unusable entry's problem: for commands that need the whole configuration
    /// (`config show` renders every entry).
    pub fn require_usable(&self) -> Result<(), ConfigError> {
        match self.unusable.first() {
            Some(u) => Err(u.error.duplicate()),
            None => Ok(()),
        }
    }

    /// A normalized TOML rendering with every default spelled out (for `config show`); parsing it
    /// again yields the same configuration.
    pub fn to_toml(&self) -> String {
        render::to_toml(self)
    }
}

/// Permission bits that let someone other than the owner at a file.
const GROUP_OTHER_BITS: u32 = 0o077;

/// Subscription keys are paid-for secrets: a config holding them should be mode 0600.
fn warn_if_exposed(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & GROUP_OTHER_BITS != 0 => tracing::warn!(
            config = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o7777),
            "the config holds subscription keys but group or others may access it; chmod 600 it"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(config = %path.display(), error = %e, "cannot check the config's mode"),
    }
}

/// The config file to use: the `--config` flag, else `$PMIRROR_FS_CONFIG`, else [`DEFAULT_PATH`].
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    resolve_path_from(cli, std::env::var_os(ENV_VAR))
}

/// [`resolve_path`] with the environment passed in (an empty variable counts as unset).
fn resolve_path_from(cli: Option<&Path>, env: Option<OsString>) -> PathBuf {
    if let Some(path) = cli {
        return path.to_owned();
    }
    match env {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(DEFAULT_PATH),
    }
}
