//! [`Config`] → normalized TOML (`pmirror-fs config show`): every default written out, paths
//! resolved, URLs with their trailing slash, durations in `1d12h` form. Parsing the output again
//! yields the same configuration — except that subscription keys are masked (`pve4b-12…(masked)`:
//! `config show` output gets pasted into tickets), which parsing refuses with a clear reason.

use super::duration::format_duration;
use super::Config;
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct Document {
    store: Store,
    sync: Sync,
    mount: Mount,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscription: Vec<Subscription>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mirror: Vec<Mirror>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tree: Vec<Tree>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    alias: Vec<Alias>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    medium: Vec<Medium>,
    #[serde(skip_serializing_if = "Option::is_none")]
    web: Option<Web>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Web {
    base_url: String,
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    notice: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Medium {
    id: String,
    path: String,
    mirrors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    newest: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshots: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Store {
    dir: String,
    fsync: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_textfile: Option<String>,
    shared: bool,
    gc_delay: String,
}

#[derive(Serialize)]
struct Sync {
    concurrency: usize,
    retries: u32,
    keep: usize,
    grace: String,
    timeout: String,
    #[serde(rename = "max-shrink")]
    max_shrink: String,
    #[serde(rename = "rate-limit", skip_serializing_if = "Option::is_none")]
    rate_limit: Option<String>,
    #[serde(rename = "slow-rate", skip_serializing_if = "Option::is_none")]
    slow_rate: Option<String>,
    #[serde(rename = "slow-time", skip_serializing_if = "Option::is_none")]
    slow_time: Option<String>,
    /// Shown with its password masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy: Option<String>,
    #[serde(rename = "max-concurrency")]
    max_concurrency: usize,
    #[serde(rename = "ca-file", skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Mount {
    pin_idle: String,
    pin_lifetime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_size: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Mirror {
    id: String,
    repository: String,
    architectures: Vec<String>,
    key: String,
    verify: bool,
    ignore_errors: bool,
    view: String,
    skip_packages: Vec<String>,
    skip_sections: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    use_subscription: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sources: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Tree {
    id: String,
    url: String,
    view: String,
    include: Vec<String>,
    exclude: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    use_subscription: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sources: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Subscription {
    /// Masked.
    key: String,
    server_id: String,
}

#[derive(Serialize)]
struct Alias {
    path: String,
    target: String,
}

/// Paths came from TOML strings (joined onto the config directory), so they are UTF-8 unless the
/// config directory itself is not; such a path is rendered lossily.
fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

pub(super) fn to_toml(config: &Config) -> String {
    let document = Document {
        store: Store {
            dir: path_text(&config.store.dir),
            fsync: config.store.fsync,
            metrics_textfile: config.store.metrics_textfile.as_deref().map(path_text),
            shared: config.store.shared,
            gc_delay: format_duration(config.store.gc_delay),
        },
        sync: Sync {
            concurrency: config.sync.concurrency,
            retries: config.sync.retries,
            keep: config.sync.keep,
            grace: format_duration(config.sync.grace),
            timeout: format_duration(config.sync.timeout),
            max_shrink: format!("{}%", config.sync.max_shrink),
            proxy: config.sync.proxy.as_ref().map(super::validate::masked),
            rate_limit: config.sync.rate_limit.map(|b| b.to_string()),
            slow_rate: config.sync.slow.map(|(b, _)| b.to_string()),
            slow_time: config.sync.slow.map(|(_, t)| format_duration(t)),
            max_concurrency: config.sync.max_concurrency,
            ca_file: config.sync.ca_file.as_deref().map(path_text),
        },
        mount: Mount {
            pin_idle: format_duration(config.mount.pin_idle),
            pin_lifetime: format_duration(config.mount.pin_lifetime),
            cache_dir: config.mount.cache.as_ref().map(|c| path_text(&c.dir)),
            cache_size: config.mount.cache.as_ref().map(|c| c.size.to_string()),
        },
        subscription: config
            .subscriptions
            .iter()
            .map(|s| Subscription { key: s.key.masked(), server_id: s.server_id.0.clone() })
            .collect(),
        mirror: config.mirrors.iter().map(mirror).collect(),
        tree: config.trees.iter().map(tree).collect(),
        alias: config.aliases.iter().map(|a| Alias { path: a.path.clone(), target: a.target.clone() }).collect(),
        medium: config.media.iter().map(medium).collect(),
        web: config.web.as_ref().map(|w| Web {
            base_url: w.base_url.clone(),
            title: w.title.clone(),
            notice: w.notice.clone(),
        }),
    };
    // Strings, integers, booleans and arrays of them always serialize; an error here would be a
    // bug in the shapes above, not a property of the config.
    toml::to_string(&document).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot render the config as TOML");
        format!("# cannot render config: {e}\n")
    })
}

fn medium(m: &super::MediumConfig) -> Medium {
    let (newest, snapshots) = match &m.snapshots {
        super::MediumSnapshots::Published => (None, None),
        super::MediumSnapshots::Newest(n) => (Some(*n), None),
        super::MediumSnapshots::Named(names) => (None, Some(names.iter().map(|(m, s)| format!("{m}/{s}")).collect())),
    };
    Medium { id: m.id.clone(), path: path_text(&m.path), mirrors: m.mirrors.clone(), newest, snapshots }
}

fn mirror(m: &super::MirrorConfig) -> Mirror {
    Mirror {
        id: m.id.clone(),
        repository: m.repository.to_string(),
        architectures: m.architectures.clone(),
        key: path_text(&m.key),
        verify: m.verify,
        ignore_errors: m.ignore_errors,
        view: m.view.clone(),
        skip_packages: m.skip_package_patterns.clone(),
        skip_sections: m.skip_sections.clone(),
        use_subscription: m.subscription.as_ref().map(|s| s.product.name()),
        sources: m.sources.iter().map(ToString::to_string).collect(),
    }
}

fn tree(t: &super::TreeConfig) -> Tree {
    Tree {
        id: t.id.clone(),
        url: t.url.to_string(),
        view: t.view.clone(),
        include: t.include.clone(),
        exclude: t.exclude.clone(),
        key: t.key.as_deref().map(path_text),
        use_subscription: t.subscription.as_ref().map(|s| s.product.name()),
        sources: t.sources.iter().map(ToString::to_string).collect(),
    }
}
