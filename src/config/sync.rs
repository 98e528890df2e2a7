//! `[sync]`: how downloads run (parallelism, retries, timeout, proxy) and how long snapshots
//! stay; the shrink guard's limit.

use super::convert::Ctx;
use super::defaults::*;
use super::raw::RawSync;
use super::{validate, ConfigError, SyncConfig};
use toml::Spanned;

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
        Ok(SyncConfig {
            concurrency: at_least_one(&raw.concurrency, "concurrency", DEFAULT_CONCURRENCY)?,
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
}
