//! `[mount]`: the bounds of the mount's connection pins (`crate::fuse`'s pin table): each at
//! least [`MIN_PIN_BOUND`], and a lifetime longer than `[sync] grace` warned about.

use super::convert::Ctx;
use super::defaults::*;
use super::raw::{RawMount, Text};
use super::{duration, ConfigError, MountConfig, SyncConfig};
use std::path::Path;

impl Ctx<'_> {
    pub(super) fn mount(&self, raw: &RawMount) -> Result<MountConfig, ConfigError> {
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
        })
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
