//! Presets for Proxmox's repositories (`pve:bookworm:no-subscription`, …) and Debian's archive
//! (`debian:bookworm`, `debian:bookworm-security`, [`debian`]), and adding one to a config file's
//! text without disturbing the rest of it (comments and order stay; `toml_edit`).
//!
//! A spec is `PRODUCT:SUITE[:CHANNEL]`; the channel picks the component(s) of the suite and
//! defaults to the product's first (Proxmox: `no-subscription`; Debian: `standard`).
//!
//! A preset whose URL and suite an existing mirror already has extends that mirror's components
//! (`pve:bookworm:test` after `pve:bookworm:no-subscription` gives one mirror with
//! `pve-no-subscription pvetest`), because two mirrors of one suite would both publish
//! `dists/<suite>/InRelease`. Suites of one URL are separate mirrors sharing one view
//! (`debian/dists/bookworm`, `debian/dists/bookworm-updates`, one `debian/pool`).
//!
//! Enterprise presets set `use-subscription` to the product whose key the repository takes (pve
//! for pve and Ceph, pbs, pmg); [`missing_subscription`] tells the CLI to hint at adding one.

mod debian;

use super::subscription;
use super::{validate, Repository};
use std::fmt;
use std::str::FromStr;
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

const DOWNLOAD: &str = "http://download.proxmox.com/debian";
const ENTERPRISE: &str = "https://enterprise.proxmox.com/debian";

pub use debian::KEYRING as DEBIAN_KEYRING;

/// Which repository of a suite: for Proxmox where it comes from and what it costs, for Debian
/// which archive areas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    NoSubscription,
    Test,
    Enterprise,
    /// Debian: the components hosts list (see [`debian`]).
    Standard,
    /// Debian: the non-free area.
    NonFree,
}

impl Channel {
    /// Proxmox's channels, in the order of [`Product::suites`]' components.
    const PROXMOX: [Channel; 3] = [Channel::NoSubscription, Channel::Test, Channel::Enterprise];

    pub fn name(self) -> &'static str {
        match self {
            Channel::NoSubscription => "no-subscription",
            Channel::Test => "test",
            Channel::Enterprise => "enterprise",
            Channel::Standard => "standard",
            Channel::NonFree => "non-free",
        }
    }
}

/// How an operator obtains a preset's key file when it is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Proxmox's release key: downloaded, then checked against the checksum Proxmox publishes.
    Download(String),
    /// A Debian package that installs it (`apt install PACKAGE`).
    Package(&'static str),
}

/// One product's repositories: its path under `/debian`, and per suite the component of each
/// channel it has (`None`: Proxmox does not publish that one).
struct Product {
    name: &'static str,
    suites: &'static [(&'static str, [Option<&'static str>; 3])],
}

/// Proxmox's repositories for Debian 10–12, as its documentation lists them.
const PRODUCTS: &[Product] = &[
    Product {
        name: "pve",
        suites: &[
            ("bookworm", [Some("pve-no-subscription"), Some("pvetest"), Some("pve-enterprise")]),
            ("bullseye", [Some("pve-no-subscription"), Some("pvetest"), Some("pve-enterprise")]),
            ("buster", [Some("pve-no-subscription"), Some("pvetest"), Some("pve-enterprise")]),
        ],
    },
    Product {
        name: "pbs",
        suites: &[
            ("bookworm", [Some("pbs-no-subscription"), Some("pbstest"), Some("pbs-enterprise")]),
            ("bullseye", [Some("pbs-no-subscription"), Some("pbstest"), Some("pbs-enterprise")]),
            ("buster", [Some("pbs-no-subscription"), Some("pbstest"), Some("pbs-enterprise")]),
        ],
    },
    Product {
        name: "pbs-client",
        suites: &[
            ("bookworm", [Some("main"), None, None]),
            ("bullseye", [Some("main"), None, None]),
            ("buster", [Some("main"), None, None]),
        ],
    },
    Product {
        name: "pmg",
        suites: &[
            ("bookworm", [Some("pmg-no-subscription"), Some("pmgtest"), Some("pmg-enterprise")]),
            ("bullseye", [Some("pmg-no-subscription"), Some("pmgtest"), Some("pmg-enterprise")]),
            ("buster", [Some("pmg-no-subscription"), Some("pmgtest"), Some("pmg-enterprise")]),
        ],
    },
    Product {
        name: "ceph-quincy",
        suites: &[
            ("bookworm", [Some("no-subscription"), Some("test"), Some("enterprise")]),
            ("bullseye", [Some("main"), Some("test"), None]),
        ],
    },
    Product { name: "ceph-reef", suites: &[("bookworm", [Some("no-subscription"), Some("test"), Some("enterprise")])] },
    Product {
        name: "ceph-squid",
        suites: &[("bookworm", [Some("no-subscription"), Some("test"), Some("enterprise")])],
    },
];

/// One resolved preset: everything a `[[mirror]]` entry needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    pub product: &'static str,
    pub suite: &'static str,
    pub channel: Channel,
    pub url: String,
    pub components: &'static [&'static str],
    /// Where the suite's release key is installed on a Proxmox (or Debian) host.
    pub key: String,
    /// Where that key comes from.
    pub key_source: KeySource,
}

impl Preset {
    /// The id a new mirror gets: `pve_bookworm`, `ceph_reef_bookworm_enterprise`,
    /// `debian_bookworm_security`.
    pub fn default_id(&self) -> String {
        let base = format!("{}_{}", self.product.replace('-', "_"), self.suite.replace('-', "_"));
        match self.channel {
            Channel::Enterprise => format!("{base}_enterprise"),
            _ => base,
        }
    }

    /// The spec that names this preset: Debian's standard components without the channel word
    /// (`debian:bookworm`), every other one with it (`pve:bookworm:no-subscription`).
    pub fn spec(&self) -> String {
        match self.channel {
            Channel::Standard => format!("{}:{}", self.product, self.suite),
            channel => format!("{}:{}:{}", self.product, self.suite, channel.name()),
        }
    }

    /// The subscription the repository needs: enterprise ones only; Ceph's take a pve key.
    pub fn subscription(&self) -> Option<subscription::Product> {
        if self.channel != Channel::Enterprise {
            return None;
        }
        match self.product {
            "pbs" => Some(subscription::Product::Pbs),
            "pmg" => Some(subscription::Product::Pmg),
            _ => Some(subscription::Product::Pve),
        }
    }
}

/// The release key file name of a Debian suite (buster's predates the per-suite naming).
fn key_file(suite: &str) -> String {
    match suite {
        "buster" => "proxmox-ve-release-6.x.gpg".to_owned(),
        other => format!("proxmox-release-{other}.gpg"),
    }
}

fn preset(product: &Product, suite: &'static str, channel: Channel, component: &'static &'static str) -> Preset {
    let base = if channel == Channel::Enterprise { ENTERPRISE } else { DOWNLOAD };
    Preset {
        product: product.name,
        suite,
        channel,
        url: format!("{base}/{}", product.name),
        components: std::slice::from_ref(component),
        key: format!("/etc/apt/trusted.gpg.d/{}", key_file(suite)),
        key_source: KeySource::Download(format!("{ENTERPRISE}/{}", key_file(suite))),
    }
}

/// How to get the key file at `path` when it is a preset's default location (the fix a missing
/// key file's error names).
pub fn key_source(path: &std::path::Path) -> Option<String> {
    let p = all().into_iter().find(|p| std::path::Path::new(&p.key) == path)?;
    Some(match p.key_source {
        KeySource::Download(url) => format!(
            "fetch it with `wget {url} -O {}` and compare its checksum with the one the publisher documents",
            p.key
        ),
        KeySource::Package(package) => format!("install it with `apt install {package}`"),
    })
}

/// Every preset, product by product (Proxmox's, then Debian's), newest suite first.
pub fn all() -> Vec<Preset> {
    let mut out = Vec::new();
    for product in PRODUCTS {
        for (suite, components) in product.suites {
            for (channel, component) in Channel::PROXMOX.into_iter().zip(components) {
                if let Some(component) = component {
                    out.push(preset(product, suite, channel, component));
                }
            }
        }
    }
    out.extend(debian::presets());
    out
}

/// Product names, in the order of [`all`].
pub fn products() -> Vec<&'static str> {
    PRODUCTS.iter().map(|p| p.name).chain([debian::PRODUCT]).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresetError {
    #[error("unknown preset {spec:?}: {hint}")]
    Unknown { spec: String, hint: String },
    #[error("the config is not valid TOML: {0}")]
    Toml(String),
    #[error("{0}")]
    Conflict(String),
}

impl FromStr for Preset {
    type Err = PresetError;

    /// `PRODUCT:SUITE[:CHANNEL]`, the channel defaulting to the suite's first (no-subscription,
    /// Debian's standard).
    fn from_str(spec: &str) -> Result<Preset, PresetError> {
        let mut parts = spec.split(':');
        let (product, suite) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let channel = parts.next();
        let unknown = |hint: String| PresetError::Unknown { spec: spec.to_owned(), hint };
        if parts.next().is_some() {
            return Err(unknown("expected PRODUCT:SUITE:CHANNEL".into()));
        }
        let candidates: Vec<Preset> = all().into_iter().filter(|p| p.product == product).collect();
        if candidates.is_empty() {
            return Err(unknown(format!("products are {}", products().join(", "))));
        }
        let in_suite: Vec<&Preset> = candidates.iter().filter(|p| p.suite == suite).collect();
        if in_suite.is_empty() {
            let mut suites: Vec<&str> = candidates.iter().map(|p| p.suite).collect();
            suites.dedup();
            return Err(unknown(format!("{product} has suites {}", suites.join(", "))));
        }
        let found = match channel {
            Some(channel) => in_suite.iter().find(|p| p.channel.name() == channel),
            None => in_suite.first(),
        };
        found.map(|p| (*p).clone()).ok_or_else(|| {
            let channels: Vec<&str> = in_suite.iter().map(|p| p.channel.name()).collect();
            unknown(format!("{product} {suite} has channels {}", channels.join(", ")))
        })
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (deb {} {} {})", self.spec(), self.url, self.suite, self.components.join(" "))
    }
}

/// What the operator may override when adding a preset.
#[derive(Clone, Debug, Default)]
pub struct AddOptions {
    pub id: Option<String>,
    /// Another server with the same layout (a local mirror, a test upstream).
    pub url: Option<String>,
    pub key: Option<String>,
    pub view: Option<String>,
    /// Default: amd64 and all.
    pub architectures: Vec<String>,
}

/// What [`add`] did to the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Added {
    NewMirror {
        id: String,
    },
    /// The preset's components the existing mirror of the same URL and suite lacked joined it.
    Extended {
        id: String,
        components: Vec<String>,
    },
    /// Nothing to do: the mirror already has the preset's components.
    Present {
        id: String,
    },
}

/// Adds `preset` to the config `text` and returns the new text (unchanged for
/// [`Added::Present`]). Comments, order and formatting of the rest of the file stay.
pub fn add(text: &str, preset: &Preset, opts: &AddOptions) -> Result<(String, Added), PresetError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| PresetError::Toml(one_line(&e)))?;
    let url = opts.url.clone().unwrap_or_else(|| preset.url.clone());
    let wanted: Repository = format!("deb {url} {} {}", preset.suite, preset.components.join(" "))
        .parse()
        .map_err(|e: super::RepositoryError| PresetError::Conflict(format!("--url {url}: {e}")))?;
    let mirrors = mirror_tables(&mut doc)?;
    if let Some(done) = extend_existing(mirrors, &wanted, preset)? {
        let out =
            if matches!(done, Added::Present { .. }) { text.to_owned() } else { with_final_newline(doc.to_string()) };
        return Ok((out, done));
    }
    let id = opts.id.clone().unwrap_or_else(|| preset.default_id());
    validate::id(&id).map_err(PresetError::Conflict)?;
    let view = opts.view.clone().or_else(|| validate::default_view(&wanted.url)).unwrap_or_default();
    check_free(mirrors, &id, &view, &wanted)?;
    let mut table = Table::new();
    table.insert("id", value(&id));
    table.insert("repository", value(source_line(&wanted)));
    let archs =
        if opts.architectures.is_empty() { vec!["amd64".into(), "all".into()] } else { opts.architectures.clone() };
    table.insert("architectures", value(archs.iter().collect::<Array>()));
    table.insert("key", value(opts.key.clone().unwrap_or_else(|| preset.key.clone())));
    if let Some(view) = &opts.view {
        table.insert("view", value(view));
    }
    if let Some(product) = preset.subscription() {
        table.insert("use-subscription", value(product.name()));
    }
    table.decor_mut().set_prefix(format!("\n# {} (added by `pmirror-fs config add`)\n", preset.spec()));
    mirrors.push(table);
    Ok((with_final_newline(doc.to_string()), Added::NewMirror { id }))
}

/// toml_edit keeps a file's trailing comments after an appended table but may drop the newline
/// that ended them.
fn with_final_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// `deb URL SUITE COMPONENT…` as an operator writes it (no trailing slash on the URL).
fn source_line(repo: &Repository) -> String {
    format!("deb {} {} {}", repo.url.as_str().trim_end_matches('/'), repo.suite, repo.components.join(" "))
}

fn one_line(e: &impl fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `[[mirror]]` array, created when the file has none.
fn mirror_tables(doc: &mut DocumentMut) -> Result<&mut ArrayOfTables, PresetError> {
    let item = doc.entry("mirror").or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    item.as_array_of_tables_mut()
        .ok_or_else(|| PresetError::Toml("`mirror` is not an array of [[mirror]] tables".into()))
}

/// An existing mirror's repository, when it parses.
fn repository_of(table: &Table) -> Option<Repository> {
    table.get("repository")?.as_str()?.parse().ok()
}

fn extend_existing(
    mirrors: &mut ArrayOfTables,
    wanted: &Repository,
    preset: &Preset,
) -> Result<Option<Added>, PresetError> {
    for table in mirrors.iter_mut() {
        let Some(mut repo) = repository_of(table) else { continue };
        if repo.url != wanted.url || repo.suite != wanted.suite {
            continue;
        }
        let id = table.get("id").and_then(|v| v.as_str()).unwrap_or("?").to_owned();
        let missing: Vec<String> = wanted.components.iter().filter(|c| !repo.components.contains(c)).cloned().collect();
        if missing.is_empty() {
            return Ok(Some(Added::Present { id }));
        }
        repo.components.extend(missing.iter().cloned());
        table.insert("repository", value(source_line(&repo)));
        if let Some(product) = preset.subscription().filter(|_| !table.contains_key("use-subscription")) {
            table.insert("use-subscription", value(product.name()));
        }
        return Ok(Some(Added::Extended { id, components: missing }));
    }
    Ok(None)
}

/// The product `preset` needs a subscription for when the config `text` has no
/// `[[subscription]]` with a key of it (then `sync` would answer 401; the CLI hints). Keys that
/// do not parse count as absent: `config check` names them.
pub fn missing_subscription(text: &str, preset: &Preset) -> Option<subscription::Product> {
    let product = preset.subscription()?;
    let doc: DocumentMut = text.parse().ok()?;
    let tables = doc.get("subscription").and_then(Item::as_array_of_tables);
    let has = tables.is_some_and(|t| {
        t.iter().any(|s| {
            s.get("key").and_then(Item::as_str).and_then(|k| subscription::Product::of_key(k).ok()) == Some(product)
        })
    });
    (!has).then_some(product)
}

/// Refuses a second mirror with the same id, or one whose suite would land on the same
/// `dists/<suite>` as another server's (the publish would refuse the conflict later).
fn check_free(mirrors: &ArrayOfTables, id: &str, view: &str, wanted: &Repository) -> Result<(), PresetError> {
    for table in mirrors.iter() {
        if table.get("id").and_then(|v| v.as_str()) == Some(id) {
            return Err(PresetError::Conflict(format!("a mirror with id {id:?} exists already; pass --id")));
        }
        let Some(repo) = repository_of(table) else { continue };
        let other_view =
            table.get("view").and_then(|v| v.as_str()).map(str::to_owned).or_else(|| validate::default_view(&repo.url));
        if other_view.as_deref() == Some(view) && repo.suite == wanted.suite {
            let other = table.get("id").and_then(|v| v.as_str()).unwrap_or("?");
            return Err(PresetError::Conflict(format!(
                "mirror {other:?} already serves {view}/dists/{} from {}; pass --view (e.g. --view enterprise/{view})",
                wanted.suite, repo.url
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
