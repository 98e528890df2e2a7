//! Debian's own archive as presets (`debian:bookworm`, `debian:bookworm-security`, …): the base
//! every Proxmox host installs from, which an air-gapped cluster needs mirrored too.
//!
//! Each release has three suites, as a host's sources list them: the release itself and its
//! `-updates` at `http://deb.debian.org/debian`, and `-security` at
//! `http://deb.debian.org/debian-security` (the security archive lists its components as
//! `updates/main` but carries the indices at `main/…` too, which is what apt and pmirror-fs ask
//! for). The two URLs give two views, `debian` and `debian-security`; the suites of one URL share
//! their view, as they share `pool/` upstream (a pool path holds one file forever, so the same
//! path is the same object and the view deduplicates it).
//!
//! Components ("channels" in the spec): `standard` (the default, no third word) is what the
//! hosts' sources list — `main contrib non-free-firmware` is the union of what Debian's installer
//! (`main non-free-firmware`) and Proxmox VE's (`main contrib`, with `non-free-firmware` since
//! PVE 9) write; bullseye predates `non-free-firmware`. A client whose sources list a component
//! the mirror lacks fails `apt update` with a 404 (the served InRelease still lists it), so the
//! default errs towards the hosts' lists. `debian:SUITE:non-free` adds the one area no installer
//! enables, by the rule every preset follows: a preset for a URL and suite a mirror has already
//! extends that mirror's components.

use super::{Channel, KeySource, Preset};

pub(super) const PRODUCT: &str = "debian";
const ARCHIVE: &str = "http://deb.debian.org/debian";
const SECURITY: &str = "http://deb.debian.org/debian-security";
/// Installed by the `debian-archive-keyring` package (on every Debian and Proxmox host); it holds
/// the archive and security signing keys of every supported release.
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const KEYRING_PACKAGE: &str = "debian-archive-keyring";

const STANDARD: &[&str] = &["main", "contrib", "non-free-firmware"];
const STANDARD_BEFORE_BOOKWORM: &[&str] = &["main", "contrib"];
const NON_FREE: &[&str] = &["non-free"];

/// (suite, archive, standard components), newest release first; checked against the archive's
/// InRelease files (Codename, Components) and verified with [`KEYRING`] on 2026-12-01.
/// Bullseye's LTS ended in August 2026; its suites stay on deb.debian.org until Debian moves them
/// to archive.debian.org.
const SUITES: &[(&str, &str, &[&str])] = &[
    ("trixie", ARCHIVE, STANDARD),
    ("trixie-updates", ARCHIVE, STANDARD),
    ("trixie-security", SECURITY, STANDARD),
    ("bookworm", ARCHIVE, STANDARD),
    ("bookworm-updates", ARCHIVE, STANDARD),
    ("bookworm-security", SECURITY, STANDARD),
    ("bullseye", ARCHIVE, STANDARD_BEFORE_BOOKWORM),
    ("bullseye-updates", ARCHIVE, STANDARD_BEFORE_BOOKWORM),
    ("bullseye-security", SECURITY, STANDARD_BEFORE_BOOKWORM),
];

/// Every Debian preset, suite by suite: the standard components, then non-free.
pub(super) fn presets() -> impl Iterator<Item = Preset> {
    SUITES.iter().flat_map(|(suite, url, standard)| {
        [(Channel::Standard, *standard), (Channel::NonFree, NON_FREE)].map(|(channel, components)| Preset {
            product: PRODUCT,
            suite,
            channel,
            url: (*url).to_owned(),
            components,
            key: KEYRING.to_owned(),
            key_source: KeySource::Package(KEYRING_PACKAGE),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::super::{add, AddOptions, Added, Preset};

    fn preset(spec: &str) -> Preset {
        spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    #[test]
    fn specs_resolve_to_the_archive() {
        // (spec, URL, components, default id)
        let cases: &[(&str, &str, &[&str], &str)] = &[
            ("debian:bookworm", super::ARCHIVE, super::STANDARD, "debian_bookworm"),
            ("debian:bookworm:standard", super::ARCHIVE, super::STANDARD, "debian_bookworm"),
            ("debian:bookworm-updates", super::ARCHIVE, super::STANDARD, "debian_bookworm_updates"),
            ("debian:trixie-security", super::SECURITY, super::STANDARD, "debian_trixie_security"),
            ("debian:bullseye", super::ARCHIVE, &["main", "contrib"], "debian_bullseye"),
            ("debian:bookworm-security:non-free", super::SECURITY, &["non-free"], "debian_bookworm_security"),
        ];
        for (spec, url, components, id) in cases {
            let p = preset(spec);
            assert_eq!((p.url.as_str(), p.components, p.default_id().as_str()), (*url, *components, *id), "{spec}");
            assert_eq!((p.key.as_str(), p.subscription()), (super::KEYRING, None), "{spec}");
        }
        assert_eq!(preset("debian:bookworm:standard").spec(), "debian:bookworm");
        let bad: &[(&str, &str)] = &[
            ("debian:sid", "debian has suites trixie, trixie-updates, trixie-security, bookworm"),
            ("debian:bookworm-backports", "bullseye-security"),
            ("debian:bookworm:enterprise", "debian bookworm has channels standard, non-free"),
        ];
        for (spec, hint) in bad {
            let err = spec.parse::<Preset>().expect_err(spec).to_string();
            assert!(err.contains(hint), "{spec}: {err}");
        }
    }

    #[test]
    fn suites_of_one_url_are_mirrors_side_by_side_and_non_free_extends() {
        let opts = AddOptions::default();
        let mut text = String::new();
        for (spec, want) in [
            ("debian:bookworm", Added::NewMirror { id: "debian_bookworm".into() }),
            ("debian:bookworm-updates", Added::NewMirror { id: "debian_bookworm_updates".into() }),
            ("debian:bookworm-security", Added::NewMirror { id: "debian_bookworm_security".into() }),
            (
                "debian:bookworm:non-free",
                Added::Extended { id: "debian_bookworm".into(), components: vec!["non-free".into()] },
            ),
            ("debian:bookworm:standard", Added::Present { id: "debian_bookworm".into() }),
        ] {
            let (next, added) = add(&text, &preset(spec), &opts).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(added, want, "{spec}");
            text = next;
        }
        let doc: toml::Table = text.parse().expect("valid TOML");
        let repos: Vec<&str> =
            doc["mirror"].as_array().unwrap().iter().map(|m| m["repository"].as_str().unwrap()).collect();
        assert_eq!(
            repos,
            [
                "deb http://deb.debian.org/debian bookworm main contrib non-free-firmware non-free",
                "deb http://deb.debian.org/debian bookworm-updates main contrib non-free-firmware",
                "deb http://deb.debian.org/debian-security bookworm-security main contrib non-free-firmware",
            ]
        );
        assert!(text.contains("# debian:bookworm (added by"), "{text}");
        // A non-free preset first, then the standard one: the missing components join it.
        let (text, _) = add("", &preset("debian:trixie:non-free"), &opts).expect("non-free");
        let (text, added) = add(&text, &preset("debian:trixie"), &opts).expect("standard");
        let components = super::STANDARD.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(added, Added::Extended { id: "debian_trixie".into(), components });
        assert!(text.contains("\"deb http://deb.debian.org/debian trixie non-free main contrib non-free-firmware\""));
    }
}
