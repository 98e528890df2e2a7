//! `[[medium]]`: an offline medium (a USB stick or disk carried to an air-gapped cluster) and
//! what goes on it: which mirrors and trees, and which of their snapshots — the published one of
//! each (the default), the newest N (`newest`), or named ones (`snapshots = ["mirror/name"]`).
//! Checked against the entries the config defines; `crate::medium` writes and reads the media.

use super::convert::Ctx;
use super::raw::RawMedium;
use super::validate;
use super::{ConfigError, MediumConfig, MediumSnapshots};
use std::collections::HashMap;

impl Ctx<'_> {
    /// Every `[[medium]]`, its entries among `entries` (the ids of mirrors and trees, usable or
    /// not); ids unique among media.
    pub(super) fn media(
        &self,
        raw: &[RawMedium],
        entries: &[&str],
        store: &std::path::Path,
    ) -> Result<Vec<MediumConfig>, ConfigError> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for medium in raw {
            let id = medium.id.get_ref();
            let entry = format!("medium {id:?}");
            validate::id(id).map_err(|e| self.invalid(medium.id.span(), &entry, "id", e))?;
            if let Some(line) = seen.insert(id, self.at(medium.id.span()).line.unwrap_or(0)) {
                let message = format!("duplicate id: also used by the medium on line {line}");
                return Err(self.invalid(medium.id.span(), &entry, "id", message));
            }
            out.push(self.medium(medium, entries, &entry, store)?);
        }
        Ok(out)
    }

    fn medium(
        &self,
        raw: &RawMedium,
        entries: &[&str],
        entry: &str,
        store: &std::path::Path,
    ) -> Result<MediumConfig, ConfigError> {
        let path = raw.path.get_ref();
        if !path.starts_with('/') {
            return Err(self.invalid(raw.path.span(), entry, "path", "must be absolute (where the medium is mounted)"));
        }
        // A medium sync makes its path hold exactly the medium: never the store, or around it.
        let (medium_dir, store_dir) = (std::path::Path::new(path), std::path::absolute(store).unwrap_or_default());
        if store_dir.starts_with(medium_dir) || medium_dir.starts_with(&store_dir) {
            let message = format!("{path} overlaps the store {} (a medium is a directory of its own)", store.display());
            return Err(self.invalid(raw.path.span(), entry, "path", message));
        }
        let mirrors: Vec<String> = raw.mirrors.get_ref().iter().map(|t| t.get_ref().clone()).collect();
        if mirrors.is_empty() {
            return Err(self.invalid(raw.mirrors.span(), entry, "mirrors", "names no mirror or tree"));
        }
        for (text, id) in raw.mirrors.get_ref().iter().zip(&mirrors) {
            if !entries.contains(&id.as_str()) {
                let message = format!("{id:?} is not the id of a mirror or tree of this config");
                return Err(self.invalid(text.span(), entry, "mirrors", message));
            }
            // exFAT compares names without case: keys/PVE.asc and keys/pve.asc are one file there.
            if mirrors.iter().filter(|m| m.eq_ignore_ascii_case(id)).count() > 1 {
                let message = format!("{id:?} is listed twice (exFAT ignores the case of names)");
                return Err(self.invalid(text.span(), entry, "mirrors", message));
            }
        }
        let snapshots = match (&raw.newest, &raw.snapshots) {
            (Some(_), Some(named)) => {
                let message = "give either `newest` or `snapshots`, not both";
                return Err(self.invalid(named.span(), entry, "snapshots", message));
            }
            (Some(n), None) if *n.get_ref() == 0 => {
                return Err(self.invalid(n.span(), entry, "newest", "must be at least 1"));
            }
            (Some(n), None) => MediumSnapshots::Newest(*n.get_ref()),
            (None, Some(named)) => MediumSnapshots::Named(self.named(named, &mirrors, entry)?),
            (None, None) => MediumSnapshots::Published,
        };
        Ok(MediumConfig { id: raw.id.get_ref().clone(), path: path.into(), mirrors, snapshots })
    }

    /// `mirror/snapshot` names, each of a listed mirror or tree.
    fn named(
        &self,
        raw: &toml::Spanned<Vec<super::raw::Text>>,
        mirrors: &[String],
        entry: &str,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let mut out = Vec::with_capacity(raw.get_ref().len());
        for text in raw.get_ref() {
            let Some((mirror, name)) = text.get_ref().split_once('/').filter(|(m, n)| !m.is_empty() && !n.is_empty())
            else {
                let message = format!("{:?} is not <mirror>/<snapshot>", text.get_ref());
                return Err(self.invalid(text.span(), entry, "snapshots", message));
            };
            if !mirrors.iter().any(|m| m == mirror) {
                let message = format!("{mirror:?} is not in this medium's mirrors");
                return Err(self.invalid(text.span(), entry, "snapshots", message));
            }
            out.push((mirror.to_owned(), name.to_owned()));
        }
        if out.is_empty() {
            let message = "is empty (leave it out for the published snapshot of each mirror)";
            return Err(self.invalid(raw.span(), entry, "snapshots", message));
        }
        if let Some(bare) = mirrors.iter().find(|m| !out.iter().any(|(n, _)| n == *m)) {
            let message = format!("names no snapshot of {bare:?}, which `mirrors` lists");
            return Err(self.invalid(raw.span(), entry, "snapshots", message));
        }
        Ok(out)
    }
}
