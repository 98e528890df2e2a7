//! `[sync]`: how downloads run (parallelism, retries, timeout, proxy) and how long snapshots
//! stay; the shrink guard's limit.

use super::convert::Ctx;
use super::defaults::*;
use super::raw::RawSync;
use super::raw::Text;
use super::{validate, ConfigError, SyncConfig};
use std::path::PathBuf;
use toml::Spanned;
use url::Url;

impl Ctx<'_> {
    pub(super) fn sync(&self, raw: &RawSync) -> Result<SyncConfig, ConfigError> {
        let at_least_one = |value: &Option<Spanned<usize>>, key, default| match value {
            Some(v) if *v.get_ref() == 0 => Err(self.invalid(v.span(), "[sync]", key, "must be at least 1")),
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        };
        let timeout = self.duration(raw.timeout.as_ref(), "timeout", DEFAULT_TIMEOUT)?;
        if let Some(raw_timeout) = raw.timeout.as_ref().filter(|_| timeout.is_zero()) {
            let message = "must be more than 0s";
            return Err(self.invalid(raw_timeout.span(), "[sync]", "timeout", message));
        }
        let concurrency = at_least_one(&raw.concurrency, "concurrency", DEFAULT_CONCURRENCY)?;
        let max_concurrency = match &raw.max_concurrency {
            Some(v) if *v.get_ref() < concurrency => {
                let message = format!("must be at least concurrency ({concurrency})");
                return Err(self.invalid(v.span(), "[sync]", "max-concurrency", message));
            }
            Some(v) => *v.get_ref(),
            None => DEFAULT_MAX_CONCURRENCY.max(concurrency),
        };
        Ok(SyncConfig {
            concurrency,
            max_concurrency,
            ca_file: match &raw.ca_file {
                Some(t) => Some(self.ca_file(t)?),
                None => None,
            },
            retries: raw.retries.unwrap_or(DEFAULT_RETRIES),
            keep: at_least_one(&raw.keep, "keep", DEFAULT_KEEP)?,
            grace: self.duration(raw.grace.as_ref(), "grace", DEFAULT_GRACE)?,
            timeout,
            slow: match &raw.slow_rate {
                Some(t) => Some((
                    validate::rate(t.get_ref()).map_err(|m| self.invalid(t.span(), "[sync]", "slow-rate", m))?,
                    self.duration(raw.slow_time.as_ref(), "slow-time", DEFAULT_SLOW_TIME)?,
                )),
                None => None,
            },
            rate_limit: match &raw.rate_limit {
                Some(t) => {
                    Some(validate::rate(t.get_ref()).map_err(|m| self.invalid(t.span(), "[sync]", "rate-limit", m))?)
                }
                None => None,
            },
            proxy: match &raw.proxy {
                Some(t) => {
                    Some(validate::proxy(t.get_ref()).map_err(|m| self.invalid(t.span(), "[sync]", "proxy", m))?)
                }
                None => None,
            },
            max_shrink: match &raw.max_shrink {
                Some(t) => {
                    validate::percent(t.get_ref()).map_err(|m| self.invalid(t.span(), "[sync]", "max-shrink", m))?
                }
                None => DEFAULT_MAX_SHRINK,
            },
        })
    }

    /// `ca-file`: readable and holding at least one PEM certificate (reqwest parses it at sync).
    fn ca_file(&self, raw: &Text) -> Result<PathBuf, ConfigError> {
        let path = self.resolve(raw.get_ref());
        let bad = |m: String| self.invalid(raw.span(), "[sync]", "ca-file", m);
        let text = std::fs::read(&path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        if !text.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(bad(format!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())));
        }
        Ok(path)
    }

    /// `sources` of a mirror or tree: http(s) base URLs, none twice and none the entry's own.
    pub(super) fn sources(&self, raw: Option<&[Text]>, own: &Url, entry: &str) -> Result<Vec<Url>, ConfigError> {
        let mut out: Vec<Url> = Vec::new();
        for text in raw.unwrap_or_default() {
            let url = validate::http_url(text.get_ref()).map_err(|m| self.invalid(text.span(), entry, "sources", m))?;
            if url == *own || out.contains(&url) {
                let message = format!("{url} is listed twice (the entry's own URL is its first source)");
                return Err(self.invalid(text.span(), entry, "sources", message));
            }
            out.push(url);
        }
        Ok(out)
    }
}
