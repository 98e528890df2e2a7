//! The config file exactly as serde reads it: every value keeps its byte span (for line numbers in
//! errors), nothing is validated yet. [`super::Config::parse`] turns this into the checked types.

use serde::Deserialize;
use toml::Spanned;

pub(super) type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub mount: RawMount,
    #[serde(default)]
    pub subscription: Vec<RawSubscription>,
    #[serde(default)]
    pub mirror: Vec<RawMirror>,
    #[serde(default)]
    pub tree: Vec<RawTree>,
    #[serde(default)]
    pub alias: Vec<RawAlias>,
    #[serde(default)]
    pub medium: Vec<RawMedium>,
    pub web: Option<RawWeb>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawWeb {
    pub base_url: Option<Text>,
    pub title: Option<Text>,
    pub notice: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawStore {
    pub dir: Option<Text>,
    pub fsync: Option<bool>,
    pub metrics_textfile: Option<Text>,
    pub shared: Option<bool>,
    pub gc_delay: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawSync {
    pub concurrency: Option<Spanned<usize>>,
    pub retries: Option<u32>,
    pub keep: Option<Spanned<usize>>,
    pub grace: Option<Text>,
    pub timeout: Option<Text>,
    pub max_shrink: Option<Text>,
    pub proxy: Option<Text>,
    pub rate_limit: Option<Text>,
    pub slow_rate: Option<Text>,
    pub slow_time: Option<Text>,
    pub max_concurrency: Option<Spanned<usize>>,
    pub ca_file: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawMount {
    pub pin_idle: Option<Text>,
    pub pin_lifetime: Option<Text>,
    pub cache_dir: Option<Text>,
    pub cache_size: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawMirror {
    pub id: Text,
    pub repository: Text,
    pub architectures: Spanned<Vec<Text>>,
    pub key: Text,
    pub verify: Option<bool>,
    pub ignore_errors: Option<bool>,
    pub view: Option<Text>,
    pub skip_packages: Option<Vec<Text>>,
    pub skip_sections: Option<Vec<Text>>,
    pub use_subscription: Option<Text>,
    pub sources: Option<Vec<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawTree {
    pub id: Text,
    pub url: Text,
    pub view: Option<Text>,
    pub include: Option<Vec<Text>>,
    pub exclude: Option<Vec<Text>>,
    pub key: Option<Text>,
    pub use_subscription: Option<Text>,
    pub sources: Option<Vec<Text>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawSubscription {
    pub key: Text,
    pub server_id: Text,
}

/// By hand: the derived one would print the key.
impl std::fmt::Debug for RawSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSubscription").field("key", &"(hidden)").finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawAlias {
    pub path: Text,
    pub target: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawMedium {
    pub id: Text,
    pub path: Text,
    pub mirrors: Spanned<Vec<Text>>,
    pub newest: Option<Spanned<usize>>,
    pub snapshots: Option<Spanned<Vec<Text>>>,
}
