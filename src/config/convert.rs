//! Raw serde shapes → validated [`Config`]: fills defaults, checks each entry, then checks entries
//! against each other (unique ids, aliases that neither hide a view nor point nowhere). The first
//! problem in file order wins.

use super::raw::{RawAlias, RawConfig, RawMirror, RawStore, RawSubscription, RawTree, Text};
use super::subscription::{self, Product, ServerId, Subscription, SubscriptionKey};
use super::{duration, validate};
use super::{
    AliasConfig, Config, ConfigError, KeyFileProblem, Location, MirrorConfig, Repository, StoreConfig, TreeConfig,
    Unusable,
};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

use super::defaults::*;

pub(super) fn build(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let ctx = Ctx { text, path, base: base_dir(path) };
    let raw: RawConfig = toml::from_str(text).map_err(|e| ctx.syntax(&e))?;
    let store = ctx.store(&raw.store)?;
    let sync = ctx.sync(&raw.sync)?;
    let mount = ctx.mount(&raw.mount, &store)?;
    ctx.gc_delay_covers_pins((&raw.store, &raw.mount), &store, &mount)?;
    super::mount::warn_if_outliving_grace(&mount, &sync, path);
    let subscriptions =
        raw.subscription.iter().enumerate().map(|(i, s)| ctx.subscription(s, i + 1)).collect::<Result<Vec<_>, _>>()?;
    let mut ids = IdRegistry::default();
    let mut mirrors = Vec::with_capacity(raw.mirror.len());
    let mut unusable = Vec::new();
    for mirror in &raw.mirror {
        let (mut entry, key_problem) = ctx.mirror(mirror)?;
        let subscription = ctx.use_subscription(mirror.use_subscription.as_ref(), &subscriptions, &entry.id, "mirror");
        ids.claim(&ctx, &mirror.id, "mirror")?;
        match usable(key_problem, subscription)? {
            Ok(subscription) => {
                entry.subscription = subscription;
                mirrors.push(entry);
            }
            Err(error) => unusable.push(Unusable {
                kind: "mirror",
                id: entry.id,
                view: entry.view,
                upstream: entry.repository.url.to_string(),
                error,
            }),
        }
    }
    let mut trees = Vec::with_capacity(raw.tree.len());
    for tree in &raw.tree {
        let (mut entry, key_problem) = ctx.tree(tree)?;
        let subscription = ctx.use_subscription(tree.use_subscription.as_ref(), &subscriptions, &entry.id, "tree");
        ids.claim(&ctx, &tree.id, "tree")?;
        match usable(key_problem, subscription)? {
            Ok(subscription) => {
                entry.subscription = subscription;
                trees.push(entry);
            }
            Err(error) => unusable.push(Unusable {
                kind: "tree",
                id: entry.id,
                view: entry.view,
                upstream: entry.url.to_string(),
                error,
            }),
        }
    }
    let views: Vec<&str> = (mirrors.iter().map(|m| m.view.as_str()))
        .chain(trees.iter().map(|t| t.view.as_str()))
        .chain(unusable.iter().map(|u| u.view.as_str()))
        .collect();
    let aliases = ctx.aliases(&raw.alias, &views)?;
    let entries: Vec<&str> = (mirrors.iter().map(|m| m.id.as_str()))
        .chain(trees.iter().map(|t| t.id.as_str()))
        .chain(unusable.iter().map(|u| u.id.as_str()))
        .collect();
    let media = ctx.media(&raw.medium, &entries, &store.dir)?;
    let web = raw.web.as_ref().map(|w| ctx.web(w)).transpose()?;
    Ok(Config {
        path: path.to_owned(),
        store,
        sync,
        mount,
        mirrors,
        trees,
        aliases,
        media,
        subscriptions,
        unusable,
        web,
    })
}

/// Sorts an entry's problems: a key file that cannot be used or a subscription no
/// `[[subscription]]` answers makes the entry unusable (inner `Err`, the first of them); any other
/// subscription error is the config's (outer `Err`). Inner `Ok`: the resolved subscription.
fn usable(
    key_problem: Option<ConfigError>,
    subscription: Result<Option<Subscription>, ConfigError>,
) -> Result<Result<Option<Subscription>, ConfigError>, ConfigError> {
    match (key_problem, subscription) {
        (_, Err(e)) if !matches!(e, ConfigError::NoSubscription { .. }) => Err(e),
        (Some(key), _) => Ok(Err(key)),
        (None, Err(no_subscription)) => Ok(Err(no_subscription)),
        (None, Ok(subscription)) => Ok(Ok(subscription)),
    }
}

/// The directory relative paths in the config are taken from: the config file's own, made
/// absolute so the resolved paths survive a later `chdir` and render back unchanged.
fn base_dir(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|e| {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot make the config directory absolute");
        dir.to_owned()
    })
}

/// The text being parsed and its file name, to turn byte spans into `FILE:LINE`.
pub(super) struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
    /// See [`base_dir`].
    base: PathBuf,
}

impl Ctx<'_> {
    pub(super) fn at(&self, span: Range<usize>) -> Location {
        let before = self.text.get(..span.start).unwrap_or(self.text);
        Location { path: self.path.to_owned(), line: Some(before.matches('\n').count() + 1) }
    }

    fn syntax(&self, err: &toml::de::Error) -> ConfigError {
        let at = match err.span() {
            Some(span) => self.at(span),
            None => Location { path: self.path.to_owned(), line: None },
        };
        let message = err.message().trim().replace('\n', " ");
        let entry = err.span().and_then(|span| self.entry_at(span.start));
        ConfigError::Syntax { at, entry, message }
    }

    /// Names the table that contains byte `offset` (`mirror "pve"`, `[sync]`), for shape errors
    /// that serde reports without it. Needs the file to be valid TOML; otherwise `None`.
    fn entry_at(&self, offset: usize) -> Option<String> {
        // Best effort: when even this loose shape fails, the error being decorated is the one
        // the user needs, and it is reported without an entry name.
        let outline: Outline = toml::from_str(self.text).ok()?;
        let contains = |table: &Spanned<toml::Table>| table.span().contains(&offset);
        let named = |kind: &str, key: &str, tables: &[Spanned<toml::Table>]| {
            let table = tables.iter().find(|t| contains(t))?;
            let name = table.get_ref().get(key).and_then(|v| v.as_str()).unwrap_or("?");
            Some(format!("{kind} {name:?}"))
        };
        let fixed = |name: &str, table: &Option<Spanned<toml::Table>>| {
            table.as_ref().filter(|t| contains(t)).map(|_| name.to_owned())
        };
        // A subscription is named by its position: its key is a secret.
        let subscription = outline.subscription.iter().position(contains).map(|i| format!("subscription #{}", i + 1));
        named("mirror", "id", &outline.mirror)
            .or_else(|| named("tree", "id", &outline.tree))
            .or(subscription)
            .or_else(|| named("alias", "path", &outline.alias))
            .or_else(|| named("medium", "id", &outline.medium))
            .or_else(|| fixed("[store]", &outline.store))
            .or_else(|| fixed("[sync]", &outline.sync))
            .or_else(|| fixed("[mount]", &outline.mount))
            .or_else(|| fixed("[web]", &outline.web))
    }

    pub(super) fn invalid(
        &self,
        span: Range<usize>,
        entry: &str,
        key: &'static str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid { at: self.at(span), entry: entry.to_owned(), key, message: message.into() }
    }

    /// A path from the config, relative ones taken from the config file's directory.
    pub(super) fn resolve(&self, configured: &str) -> PathBuf {
        self.base.join(configured)
    }

    fn store(&self, raw: &RawStore) -> Result<StoreConfig, ConfigError> {
        let dir = match &raw.dir {
            Some(dir) if dir.get_ref().is_empty() => {
                return Err(self.invalid(dir.span(), "[store]", "dir", "is empty"))
            }
            Some(dir) => self.resolve(dir.get_ref()),
            None => PathBuf::from(DEFAULT_STORE_DIR),
        };
        let metrics_textfile = match &raw.metrics_textfile {
            Some(file) if file.get_ref().is_empty() || file.get_ref().ends_with('/') => {
                return Err(self.invalid(file.span(), "[store]", "metrics-textfile", "must name a file"))
            }
            Some(file) => Some(self.resolve(file.get_ref())),
            None => None,
        };
        let gc_delay = self.duration_in("[store]", raw.gc_delay.as_ref(), "gc-delay", DEFAULT_GC_DELAY)?;
        let shared = raw.shared.unwrap_or(false);
        Ok(StoreConfig { dir, fsync: raw.fsync.unwrap_or(true), metrics_textfile, shared, gc_delay })
    }

    pub(super) fn duration(
        &self,
        raw: Option<&Text>,
        key: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        self.duration_in("[sync]", raw, key, default)
    }

    pub(super) fn duration_in(
        &self,
        section: &str,
        raw: Option<&Text>,
        key: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(text) = raw else { return Ok(default) };
        duration::parse_duration(text.get_ref()).map_err(|e| self.invalid(text.span(), section, key, e.to_string()))
    }

    /// The mirror, and the problem of its key file if it has one (its `key_bytes` are then empty).
    fn mirror(&self, raw: &RawMirror) -> Result<(MirrorConfig, Option<ConfigError>), ConfigError> {
        let id = raw.id.get_ref();
        let entry = format!("mirror {id:?}");
        validate::id(id).map_err(|e| self.invalid(raw.id.span(), &entry, "id", e))?;
        let repository: Repository = raw
            .repository
            .get_ref()
            .parse()
            .map_err(|e: super::RepositoryError| self.invalid(raw.repository.span(), &entry, "repository", e.0))?;
        let architectures = self.architectures(&raw.architectures, &entry)?;
        let (key, key_bytes) = self.key(&raw.key, &entry)?;
        let (key_bytes, key_problem) = match key_bytes {
            Ok(bytes) => (bytes, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let view = self.view(raw.view.as_ref(), &repository.url, &raw.repository, &entry)?;
        let patterns = texts(raw.skip_packages.as_deref());
        let skip_packages = self.globs(raw.skip_packages.as_deref(), &entry, "skip-packages")?;
        let skip_sections = self.words(raw.skip_sections.as_deref(), &entry, "skip-sections")?;
        let sources = self.sources(raw.sources.as_deref(), &repository.url, &entry)?;
        let mirror = MirrorConfig {
            id: id.clone(),
            repository,
            architectures,
            key,
            key_bytes,
            verify: raw.verify.unwrap_or(false),
            ignore_errors: raw.ignore_errors.unwrap_or(false),
            view,
            skip_packages,
            skip_package_patterns: patterns,
            skip_sections,
            subscription: None,
            sources,
        };
        Ok((mirror, key_problem))
    }

    /// The tree, and the problem of its key file if it has one (its `key_bytes` are then `None`).
    fn tree(&self, raw: &RawTree) -> Result<(TreeConfig, Option<ConfigError>), ConfigError> {
        let id = raw.id.get_ref();
        let entry = format!("tree {id:?}");
        validate::id(id).map_err(|e| self.invalid(raw.id.span(), &entry, "id", e))?;
        let url = validate::http_url(raw.url.get_ref()).map_err(|e| self.invalid(raw.url.span(), &entry, "url", e))?;
        let view = self.view(raw.view.as_ref(), &url, &raw.url, &entry)?;
        self.globs(raw.include.as_deref(), &entry, "include")?;
        self.globs(raw.exclude.as_deref(), &entry, "exclude")?;
        let sources = self.sources(raw.sources.as_deref(), &url, &entry)?;
        let (key, key_bytes, key_problem) = match &raw.key {
            Some(key) => match self.key(key, &entry)? {
                (path, Ok(bytes)) => (Some(path), Some(bytes), None),
                (path, Err(e)) => (Some(path), None, Some(e)),
            },
            None => (None, None, None),
        };
        let tree = TreeConfig {
            id: id.clone(),
            url,
            view,
            include: texts(raw.include.as_deref()),
            exclude: texts(raw.exclude.as_deref()),
            key,
            key_bytes,
            subscription: None,
            sources,
        };
        Ok((tree, key_problem))
    }

    /// One `[[subscription]]` (`index` counts from 1 in file order). Errors never quote the key.
    fn subscription(&self, raw: &RawSubscription, index: usize) -> Result<Subscription, ConfigError> {
        let entry = format!("subscription #{index}");
        let product = Product::of_key(raw.key.get_ref()).map_err(|e| self.invalid(raw.key.span(), &entry, "key", e))?;
        subscription::server_id(raw.server_id.get_ref())
            .map_err(|e| self.invalid(raw.server_id.span(), &entry, "server-id", e))?;
        Ok(Subscription {
            key: SubscriptionKey::new(raw.key.get_ref().clone()),
            server_id: ServerId(raw.server_id.get_ref().clone()),
            product,
        })
    }

    /// Resolves `use-subscription`: the first `[[subscription]]` with a key of that product.
    fn use_subscription(
        &self,
        raw: Option<&Text>,
        subscriptions: &[Subscription],
        id: &str,
        kind: &str,
    ) -> Result<Option<Subscription>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let entry = format!("{kind} {id:?}");
        let product =
            Product::parse(raw.get_ref()).map_err(|e| self.invalid(raw.span(), &entry, "use-subscription", e))?;
        match subscriptions.iter().find(|s| s.product == product) {
            Some(found) => Ok(Some(found.clone())),
            None => Err(ConfigError::NoSubscription { at: self.at(raw.span()), entry, product }),
        }
    }

    fn architectures(&self, raw: &Spanned<Vec<Text>>, entry: &str) -> Result<Vec<String>, ConfigError> {
        const KEY: &str = "architectures";
        if raw.get_ref().is_empty() {
            return Err(self.invalid(raw.span(), entry, KEY, "name at least one architecture"));
        }
        let mut out: Vec<String> = Vec::new();
        for arch in raw.get_ref() {
            validate::architecture(arch.get_ref()).map_err(|e| self.invalid(arch.span(), entry, KEY, e))?;
            if out.contains(arch.get_ref()) {
                let message = format!("{:?} is listed twice", arch.get_ref());
                return Err(self.invalid(arch.span(), entry, KEY, message));
            }
            out.push(arch.get_ref().clone());
        }
        Ok(out)
    }

    /// Resolves and reads a key file. An empty `key` is the config's error (outer `Err`); a file
    /// that cannot be read, or is empty (it cannot hold a key), is the entry's (inner `Err`).
    #[allow(clippy::type_complexity)]
    fn key(&self, raw: &Text, entry: &str) -> Result<(PathBuf, Result<Vec<u8>, ConfigError>), ConfigError> {
        if raw.get_ref().is_empty() {
            return Err(self.invalid(raw.span(), entry, "key", "is empty"));
        }
        let path = self.resolve(raw.get_ref());
        let problem = |problem| ConfigError::KeyFile {
            at: self.at(raw.span()),
            entry: entry.to_owned(),
            key: path.clone(),
            problem,
        };
        let bytes = match std::fs::read(&path) {
            Ok(bytes) if bytes.is_empty() => Err(problem(KeyFileProblem::Empty)),
            Ok(bytes) => Ok(bytes),
            Err(e) => Err(problem(KeyFileProblem::Unreadable(e))),
        };
        Ok((path, bytes))
    }

    /// The explicit `view`, else the URL's path; `url_raw` locates the error when neither works.
    fn view(&self, raw: Option<&Text>, url: &url::Url, url_raw: &Text, entry: &str) -> Result<String, ConfigError> {
        let (view, span) = match raw {
            Some(view) => (view.get_ref().clone(), view.span()),
            None => {
                let view = validate::default_view(url).ok_or_else(|| {
                    let message = format!("URL {url} has no path to use as view; set view = \"…\"");
                    self.invalid(url_raw.span(), entry, "view", message)
                })?;
                (view, url_raw.span())
            }
        };
        validate::claimable_path(&view).map_err(|e| self.invalid(span, entry, "view", e))?;
        Ok(view)
    }

    fn globs(&self, raw: Option<&[Text]>, entry: &str, key: &'static str) -> Result<globset::GlobSet, ConfigError> {
        let patterns = raw.unwrap_or_default();
        let mut set = globset::GlobSetBuilder::new();
        for pattern in patterns {
            let glob = globset::Glob::new(pattern.get_ref())
                .map_err(|e| self.invalid(pattern.span(), entry, key, e.to_string()))?;
            set.add(glob);
        }
        // Building only fails on patterns that compiled one by one (size limits): blame the list.
        let span = patterns.first().map_or(0..0, |p| p.span());
        set.build().map_err(|e| self.invalid(span, entry, key, e.to_string()))
    }

    /// Plain words (section names): non-empty, no whitespace.
    fn words(&self, raw: Option<&[Text]>, entry: &str, key: &'static str) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for word in raw.unwrap_or_default() {
            let text = word.get_ref();
            if text.is_empty() || text.contains(char::is_whitespace) {
                let message = format!("{text:?} is not a section name");
                return Err(self.invalid(word.span(), entry, key, message));
            }
            out.push(text.clone());
        }
        Ok(out)
    }

    fn aliases(&self, raw: &[RawAlias], views: &[&str]) -> Result<Vec<AliasConfig>, ConfigError> {
        let mut out: Vec<(AliasConfig, Range<usize>)> = Vec::new();
        for alias in raw {
            let entry = format!("alias {:?}", alias.path.get_ref());
            let checked = self.alias(alias, views, &entry)?;
            if let Some((other, span)) = out.iter().find(|(o, _)| overlaps(&o.path, &checked.path)) {
                let line = self.at(span.clone()).line.unwrap_or(0);
                let message = format!("overlaps alias {:?} on line {line}", other.path);
                return Err(self.invalid(alias.path.span(), &entry, "path", message));
            }
            out.push((checked, alias.path.span()));
        }
        Ok(out.into_iter().map(|(alias, _)| alias).collect())
    }

    fn alias(&self, raw: &RawAlias, views: &[&str], entry: &str) -> Result<AliasConfig, ConfigError> {
        let (path, target) = (raw.path.get_ref(), raw.target.get_ref());
        validate::claimable_path(path).map_err(|e| self.invalid(raw.path.span(), entry, "path", e))?;
        if let Some(view) = views.iter().find(|view| validate::is_within(view, path)) {
            let message = format!("would hide the view {view:?}");
            return Err(self.invalid(raw.path.span(), entry, "path", message));
        }
        validate::relative_path(target).map_err(|e| self.invalid(raw.target.span(), entry, "target", e))?;
        if overlaps(path, target) {
            let message = format!("{target:?} contains or is inside the alias path (a loop)");
            return Err(self.invalid(raw.target.span(), entry, "target", message));
        }
        let reachable =
            validate::is_within(target, validate::SNAPSHOTS_DIR) || views.iter().any(|view| overlaps(view, target));
        if !reachable {
            let message = format!("{target:?} is not inside any mirror or tree view, nor snapshots/");
            return Err(self.invalid(raw.target.span(), entry, "target", message));
        }
        Ok(AliasConfig { path: path.clone(), target: target.clone() })
    }
}

/// Whether one path equals or lies inside the other.
fn overlaps(a: &str, b: &str) -> bool {
    validate::is_within(a, b) || validate::is_within(b, a)
}

fn texts(raw: Option<&[Text]>) -> Vec<String> {
    raw.unwrap_or_default().iter().map(|t| t.get_ref().clone()).collect()
}

/// Where each table of the file is, to name the entry in a shape error.
#[derive(serde::Deserialize)]
struct Outline {
    web: Option<Spanned<toml::Table>>,
    store: Option<Spanned<toml::Table>>,
    sync: Option<Spanned<toml::Table>>,
    mount: Option<Spanned<toml::Table>>,
    #[serde(default)]
    mirror: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    tree: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    alias: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    subscription: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    medium: Vec<Spanned<toml::Table>>,
}

/// Ids claimed so far by mirrors and trees, with the line that claimed them.
#[derive(Default)]
struct IdRegistry {
    seen: HashMap<String, (&'static str, usize)>,
}

impl IdRegistry {
    fn claim(&mut self, ctx: &Ctx<'_>, id: &Text, kind: &'static str) -> Result<(), ConfigError> {
        let line = ctx.at(id.span()).line.unwrap_or(0);
        if let Some((other_kind, other_line)) = self.seen.get(id.get_ref()) {
            let entry = format!("{kind} {:?}", id.get_ref());
            let message = format!("duplicate id: also used by the {other_kind} on line {other_line}");
            return Err(ctx.invalid(id.span(), &entry, "id", message));
        }
        self.seen.insert(id.get_ref().clone(), (kind, line));
        Ok(())
    }
}
