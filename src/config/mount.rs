//! `[mount]`: the bounds of the mount's connection pins (`crate::fuse`'s pin table): each at
//! least [`MIN_PIN_BOUND`], and a lifetime longer than `[sync] grace` warned about; the local
//! read cache (`cache-dir`, `cache-size`); and `[store] gc-delay` against the pins it must outlast.

use super::convert::Ctx;
use super::defaults::*;
use super::raw::{RawMount, RawStore, RawWeb, Text};
use super::{duration, validate, CacheConfig, ConfigError, MountConfig, StoreConfig, SyncConfig, WebConfig};
use std::path::Path;

impl Ctx<'_> {
    pub(super) fn mount(&self, raw: &RawMount, store: &StoreConfig) -> Result<MountConfig, ConfigError> {
        let positive = |text: Option<&Text>, key, default| {
            let value = self.duration_in("[mount]", text, key, default)?;
            match text.filter(|_| value < MIN_PIN_BOUND) {
                Some(t) => Err(self.invalid(t.span(), "[mount]", key, MIN_PIN_BOUND_REASON)),
                None => Ok(value),
            }
        };
        Ok(MountConfig {
            pin_idle: positive(raw.pin_idle.as_ref(), "pin-idle", DEFAULT_PIN_IDLE)?,
            pin_lifetime: positive(raw.pin_lifetime.as_ref(), "pin-lifetime", DEFAULT_PIN_LIFETIME)?,
            cache: self.cache(raw, store)?,
        })
    }

    /// `[web]`: `base-url` an http(s) URL (kept without its trailing slash), a title, a notice.
    pub(super) fn web(&self, raw: &RawWeb) -> Result<WebConfig, ConfigError> {
        let base_url = match &raw.base_url {
            Some(t) => validate::http_url(t.get_ref())
                .map_err(|m| self.invalid(t.span(), "[web]", "base-url", m))?
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            None => DEFAULT_WEB_BASE_URL.to_owned(),
        };
        let one_line = |t: &Text, key| match t.get_ref().contains(['\n', '\r']) {
            true => Err(self.invalid(t.span(), "[web]", key, "must be one line")),
            false => Ok(t.get_ref().trim().to_owned()),
        };
        let title = raw.title.as_ref().map(|t| one_line(t, "title")).transpose()?;
        let notice = raw.notice.as_ref().map(|t| one_line(t, "notice")).transpose()?.filter(|n| !n.is_empty());
        Ok(WebConfig { base_url, title: title.unwrap_or_else(|| DEFAULT_WEB_TITLE.to_owned()), notice })
    }

    /// `cache-dir` (not inside the store, nor the store inside it) and `cache-size` (at least
    /// [`MIN_CACHE_SIZE`]; only with a `cache-dir`).
    fn cache(&self, raw: &RawMount, store: &StoreConfig) -> Result<Option<CacheConfig>, ConfigError> {
        let Some(dir_text) = &raw.cache_dir else {
            return match &raw.cache_size {
                Some(t) => Err(self.invalid(t.span(), "[mount]", "cache-size", "needs cache-dir (where the cache is)")),
                None => Ok(None),
            };
        };
        if dir_text.get_ref().is_empty() {
            return Err(self.invalid(dir_text.span(), "[mount]", "cache-dir", "is empty"));
        }
        let dir = self.resolve(dir_text.get_ref());
        let (a, b) = (std::path::absolute(&dir).unwrap_or(dir.clone()), std::path::absolute(&store.dir));
        if b.as_ref().is_ok_and(|b| a.starts_with(b) || b.starts_with(&a)) {
            let why = format!(
                "{} overlaps [store] dir {}: the cache is a node's local disk",
                a.display(),
                store.dir.display()
            );
            return Err(self.invalid(dir_text.span(), "[mount]", "cache-dir", why));
        }
        let size = match &raw.cache_size {
            Some(t) => {
                let size = validate::rate(t.get_ref()).map_err(|_| {
                    self.invalid(
                        t.span(),
                        "[mount]",
                        "cache-size",
                        format!("{:?} is not a size (e.g. \"10G\", \"500M\")", t.get_ref()),
                    )
                })?;
                if size < MIN_CACHE_SIZE {
                    return Err(self.invalid(t.span(), "[mount]", "cache-size", "must be at least 1M"));
                }
                size
            }
            None => DEFAULT_CACHE_SIZE,
        };
        Ok(Some(CacheConfig { dir, size }))
    }

    /// On a shared store, `[store] gc-delay` must outlast the longest a serving node keeps
    /// serving a superseded view: `[mount] pin-lifetime` + [`GC_DELAY_MARGIN`].
    pub(super) fn gc_delay_covers_pins(
        &self,
        raw: (&RawStore, &RawMount),
        store: &StoreConfig,
        mount: &MountConfig,
    ) -> Result<(), ConfigError> {
        if !store.shared || store.gc_delay >= mount.pin_lifetime + GC_DELAY_MARGIN {
            return Ok(());
        }
        let why = format!(
            "must be at least [mount] pin-lifetime ({}) + 5s on a shared store: a serving node may serve a pinned, \
             superseded view that long",
            duration::format_duration(mount.pin_lifetime)
        );
        let span = raw.0.gc_delay.as_ref().or(raw.1.pin_lifetime.as_ref()).map_or(0..0, |t| t.span());
        let shown = duration::format_duration(store.gc_delay);
        Err(self.invalid(span, "[store]", "gc-delay", format!("{shown} {why}")))
    }
}

/// A connection pinned to a superseded snapshot asks for its package files on the plain paths,
/// which keep them only for `[sync] grace`: warn (at every load) when pins can outlive that.
pub(super) fn warn_if_outliving_grace(mount: &MountConfig, sync: &SyncConfig, path: &Path) {
    if mount.pin_lifetime > sync.grace {
        tracing::warn!(
            config = %path.display(),
            pin_lifetime = %duration::format_duration(mount.pin_lifetime),
            grace = %duration::format_duration(sync.grace),
            "[mount] pin-lifetime is longer than [sync] grace: a connection still pinned to a superseded snapshot \
             may ask for package files the plain paths no longer serve"
        );
    }
}
