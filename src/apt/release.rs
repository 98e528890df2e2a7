//! `Release` files (the text inside `InRelease`, or `Release` beside `Release.gpg`): suite
//! metadata and the list of index files with their sizes and hashes, plus the rule deciding which
//! of those indices a mirror of some components and architectures must carry
//! ([`Release::wanted_indices`]).
//!
//! Only the SHA256 list is trusted for content; MD5Sum/SHA1/SHA512 are kept per file so the view
//! can serve `by-hash/<ALGO>/<digest>` names for clients that ask for them.

use super::deb822::{normalize_newlines, stanzas, Stanza};
use super::packages::safe_relative_path;
use super::ParseError;
use crate::digest::Sha256;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub codename: Option<String>,
    /// Unix seconds, from the `Date:` field (`None` when absent or not a date apt reads).
    pub date: Option<i64>,
    /// A `Date:` apt cannot read: it warns and ignores it, so pmirror-fs does too.
    pub invalid_date: Option<String>,
    pub valid_until: Option<i64>,
    pub acquire_by_hash: bool,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    /// In the order of the SHA256 field.
    pub files: Vec<ReleaseFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFile {
    /// Relative to the `dists/<codename>/` directory; checked by `safe_relative_path`.
    pub path: String,
    pub size: u64,
    pub sha256: Sha256,
    /// Lower-case hex digests from the other hash fields, when the Release has them.
    pub md5: Option<String>,
    pub sha1: Option<String>,
    pub sha512: Option<String>,
}

/// The weaker hash lists: field name, hex digest length, where the digest goes.
const OTHER_HASHES: [(&str, usize, DigestSlot); 3] =
    [("MD5Sum", 32, |f| &mut f.md5), ("SHA1", 40, |f| &mut f.sha1), ("SHA512", 128, |f| &mut f.sha512)];

type DigestSlot = fn(&mut ReleaseFile) -> &mut Option<String>;

/// One `<hex digest> <size> <path>` line of a hash list.
struct HashLine<'a> {
    hex: &'a str,
    size: u64,
    path: &'a str,
}

/// Hex digits in a SHA-256 digest.
const SHA256_HEX_LEN: usize = 64;

/// Parse a Release text. Errors when there is no SHA256 field, a hash line is not
/// `<hex> <size> <path>`, a size or digest is malformed, a path is unsafe or listed twice, or two
/// hash lists disagree on a file's size.
pub fn parse_release(text: &str) -> Result<Release, ParseError> {
    let text = normalize_newlines(text);
    let mut iter = stanzas(&text, "Release", None);
    // apt reads the first stanza and nothing after it (debReleaseIndex::Load: one Step()).
    let stanza = iter.next().ok_or(ParseError::Empty { what: "Release" })??;
    let owned = |field| Ok::<_, ParseError>(stanza.single(field)?.map(str::to_owned));
    let words = |field| Ok::<_, ParseError>(words(stanza.single(field)?));
    Ok(Release {
        origin: owned("Origin")?,
        label: owned("Label")?,
        suite: owned("Suite")?,
        codename: owned("Codename")?,
        date: stanza.single("Date")?.and_then(parse_apt_date),
        invalid_date: stanza.single("Date")?.filter(|v| parse_apt_date(v).is_none()).map(str::to_owned),
        valid_until: date_field(&stanza, "Valid-Until")?,
        acquire_by_hash: stanza.single("Acquire-By-Hash")?.is_some_and(apt_bool),
        architectures: words("Architectures")?,
        components: words("Components")?,
        files: files(&stanza)?,
    })
}

/// A boolean field as apt's `pkgTagSection::FindB` reads it (`StringToBool`, strutl.cc): a
/// number 0 or 1 (strtol, base 0), else no/false/without/off/disable are false and anything else
/// — yes, true, with, on, enable, but also a word apt does not know — is true.
fn apt_bool(value: &str) -> bool {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    let digits = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")).unwrap_or(digits);
    let number = (value.is_empty() || (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit())))
        .then(|| i64::from_str_radix(if digits.is_empty() { "0" } else { digits }, 16).ok())
        .flatten();
    match number {
        Some(0) => false,
        Some(1) => true,
        _ => !["no", "false", "without", "off", "disable"].iter().any(|f| f.eq_ignore_ascii_case(value)),
    }
}

fn words(value: Option<&str>) -> Vec<String> {
    value.map(|v| v.split_whitespace().map(str::to_owned).collect()).unwrap_or_default()
}

fn date_field(stanza: &Stanza<'_>, field: &str) -> Result<Option<i64>, ParseError> {
    match stanza.single(field)? {
        None => Ok(None),
        Some(v) => parse_apt_date(v).map(Some).ok_or_else(|| stanza.bad(field, format!("not a date apt reads: {v:?}"))),
    }
}

/// The file list: SHA256 entries, with the other digests merged in by path.
fn files(stanza: &Stanza<'_>) -> Result<Vec<ReleaseFile>, ParseError> {
    let mut files = Vec::new();
    let mut by_path = HashMap::new();
    for HashLine { hex, size, path } in hash_list(stanza, "SHA256", SHA256_HEX_LEN)?
        .ok_or_else(|| ParseError::MissingField { stanza: stanza.describe(), field: "SHA256" })?
    {
        let sha256 = hex.parse().map_err(|e: crate::digest::BadDigest| stanza.bad("SHA256", e.to_string()))?;
        if by_path.insert(path, files.len()).is_some() {
            return Err(stanza.bad("SHA256", format!("{path} is listed twice")));
        }
        files.push(ReleaseFile { path: path.to_owned(), size, sha256, md5: None, sha1: None, sha512: None });
    }
    for (field, len, slot) in OTHER_HASHES {
        for HashLine { hex, size, path } in hash_list(stanza, field, len)?.unwrap_or_default() {
            let Some(&i) = by_path.get(path) else { continue };
            if files[i].size != size {
                let sha_size = files[i].size;
                return Err(stanza.bad(field, format!("{path}: size {size} but SHA256 says {sha_size}")));
            }
            *slot(&mut files[i]) = Some(hex.to_ascii_lowercase());
        }
    }
    Ok(files)
}

/// Lines `<hex digest> <size> <path>` of a hash field; `None` when the field is absent.
fn hash_list<'a>(stanza: &Stanza<'a>, field: &str, hex_len: usize) -> Result<Option<Vec<HashLine<'a>>>, ParseError> {
    let Some(lines) = stanza.lines(field)? else { return Ok(None) };
    let parse_line = |line: &'a str| {
        let bad = |what: &str| stanza.bad(field, format!("{what} in line {line:?}"));
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [hex, size, path] = parts[..] else {
            return Err(bad("expected `<digest> <size> <path>`"));
        };
        if hex.len() != hex_len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(&format!("digest is not {hex_len} hex digits")));
        }
        let size = size.parse::<u64>().map_err(|_| bad("bad size"))?;
        let path = safe_relative_path(path).map_err(|e| bad(&e.to_string()))?;
        Ok(HashLine { hex, size, path })
    };
    lines.into_iter().map(parse_line).collect::<Result<_, _>>().map(Some)
}

/// A Release date as apt reads it (`RFC1123StrToTime`, apt-pkg/contrib/strutl.cc), into unix
/// seconds. apt takes exactly three forms, told apart by the weekday, which it requires:
/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 1123), `Sun Nov  6 08:49:37 1994` (asctime, UTC) and
/// `Sunday, 06-Nov-94 08:49:37 GMT` (RFC 850). The zone is `GMT`, `UTC`, `Z` or a numeric zone
/// that is zero (`+0000`); any other offset is refused. Like apt, a month is known by its first
/// letters (an unknown one counts as January) and a day past the month's end rolls over.
pub fn parse_apt_date(s: &str) -> Option<i64> {
    let mut tokens = s.split_ascii_whitespace();
    let weekday = tokens.next()?.to_ascii_lowercase();
    const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    if !WEEKDAYS.iter().any(|w| weekday.starts_with(w)) {
        return None;
    }
    let rest: Vec<&str> = tokens.collect();
    let (year, month, day, hms, zone) = match weekday.len() {
        4 if weekday.ends_with(',') => {
            let [day, month, year, hms, zone] = rest[..] else { return None };
            (year.parse::<i32>().ok()?, month_conv(month), day.parse::<u16>().ok()?, hms, zone)
        }
        3 => {
            let [month, day, hms, year] = rest[..] else { return None };
            (year.parse::<i32>().ok()?, month_conv(month), day.parse::<u16>().ok()?, hms, "UTC")
        }
        0..=3 => return None,
        _ if weekday.ends_with(',') => {
            let [date, hms, zone] = rest[..] else { return None };
            let [day, month, year] = date.split('-').collect::<Vec<_>>()[..] else { return None };
            (1900 + year.parse::<i32>().ok()?, month_conv(month), day.parse::<u16>().ok()?, hms, zone)
        }
        _ => return None,
    };
    if !matches!(zone, "GMT" | "UTC" | "Z") && !zero_numeric_zone(zone) {
        return None;
    }
    let (h, m, sec) = strptime_hms(hms)?;
    if !(1..=31).contains(&day) {
        return None;
    }
    // strptime takes any day 1–31 and timegm rolls it over: 31 Nov is 1 Dec.
    let first = time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, 1).ok()?;
    let date = first.checked_add(time::Duration::days(i64::from(day) - 1))?;
    let midnight = time::PrimitiveDateTime::new(date, time::Time::MIDNIGHT).assume_utc().unix_timestamp();
    Some(midnight + i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(sec))
}

/// apt's `MonthConv`: the month from its first letters; anything unknown is January.
fn month_conv(month: &str) -> u8 {
    let b: Vec<u8> = month.bytes().map(|c| c.to_ascii_lowercase()).chain([0, 0, 0]).collect();
    1 + match b[0] {
        b'a' => {
            if b[1] == b'p' {
                3
            } else {
                7
            }
        }
        b'd' => 11,
        b'f' => 1,
        b'j' if b[1] == b'a' => 0,
        b'j' => {
            if b[2] == b'n' {
                5
            } else {
                6
            }
        }
        b'm' => {
            if b[2] == b'r' {
                2
            } else {
                4
            }
        }
        b'n' => 10,
        b'o' => 9,
        b's' => 8,
        _ => 0,
    }
}

/// `std::stoi(zone)` consuming the whole zone and giving 0 (`+0000`, `-00`, `0`).
fn zero_numeric_zone(zone: &str) -> bool {
    let digits = zone.strip_prefix(['+', '-']).unwrap_or(zone);
    !digits.is_empty() && digits.bytes().all(|b| b == b'0')
}

/// `%H:%M:%S` as glibc's strptime reads it: one or two digits each, seconds up to 60.
fn strptime_hms(hms: &str) -> Option<(u8, u8, u8)> {
    let parts: Vec<&str> = hms.split(':').collect();
    let [h, m, s] = parts[..] else { return None };
    let num = |t: &str, max: u8| {
        (!t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u8>().ok())
            .flatten()
            .filter(|v| *v <= max)
    };
    Some((num(h, 23)?, num(m, 59)?, num(s, 60)?))
}

impl Release {
    /// Index files apt clients may fetch for these components and architectures (arch `all` is
    /// implied). Under `<comp>/`: `binary-<arch>/` (`Packages*`, `Release`,
    /// `Packages.diff/Index`), `i18n/` (`Translation-*`, `Index`), `Contents-<arch>*`,
    /// `Contents-udeb-<arch>*`, `dep11/` (`Components-<arch>*`, `icons-*`), `cnf/Commands-<arch>*`;
    /// and the old top-level `Contents-<arch>*`. Here `Name*` means `Name` alone or followed by a
    /// `.suffix` in the same directory. Everything else in `files` is not selected (other
    /// components and architectures, debian-installer, Translation pdiffs, …).
    pub fn wanted_indices(&self, components: &[String], architectures: &[String]) -> Vec<&ReleaseFile> {
        let mut archs: Vec<&str> = architectures.iter().map(String::as_str).collect();
        if !archs.contains(&"all") {
            archs.push("all");
        }
        self.files.iter().filter(|f| is_wanted(&f.path, components, &archs)).collect()
    }
}

fn is_wanted(path: &str, components: &[String], archs: &[&str]) -> bool {
    let top_level_contents = archs.iter().any(|a| is_stem(path, &format!("Contents-{a}")));
    top_level_contents
        || components.iter().any(|c| {
            path.strip_prefix(c.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|rest| wanted_in_component(rest, archs))
        })
}

/// `rest` is a path below `<comp>/`.
fn wanted_in_component(rest: &str, archs: &[&str]) -> bool {
    if let Some(name) = rest.strip_prefix("i18n/") {
        return name == "Index" || is_prefixed(name, "Translation-");
    }
    if let Some(name) = rest.strip_prefix("dep11/") {
        return is_prefixed(name, "icons-") || archs.iter().any(|a| is_stem(name, &format!("Components-{a}")));
    }
    if let Some(name) = rest.strip_prefix("cnf/") {
        return archs.iter().any(|a| is_stem(name, &format!("Commands-{a}")));
    }
    archs.iter().any(|a| {
        if let Some(name) = rest.strip_prefix(&format!("binary-{a}/")) {
            return name == "Release" || name == "Packages.diff/Index" || is_stem(name, "Packages");
        }
        is_stem(rest, &format!("Contents-{a}")) || is_stem(rest, &format!("Contents-udeb-{a}"))
    })
}

/// `name` is `stem` or `stem.<anything without '/'>` (`Packages`, `Packages.xz`).
fn is_stem(name: &str, stem: &str) -> bool {
    name.strip_prefix(stem).is_some_and(|r| r.is_empty() || (r.starts_with('.') && !r.contains('/')))
}

/// `name` is `prefix` followed by at least one character, none of them '/' (`Translation-en`).
fn is_prefixed(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|r| !r.is_empty() && !r.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(seed: usize, len: usize) -> String {
        format!("{seed:0len$x}")
    }

    /// A Release text listing `paths` (size = 100 + index) under the given hash fields.
    fn release_text(header: &str, algos: &[(&str, usize)], paths: &[&str]) -> String {
        let mut text = header.to_owned();
        for (field, len) in algos {
            text += &format!("{field}:\n");
            for (i, p) in paths.iter().enumerate() {
                text += &format!(" {} {:>8} {p}\n", hex(i, *len), 100 + i);
            }
        }
        text
    }

    const PROXMOX_HEADER: &str = "Origin: Proxmox\nLabel: Proxmox Debian Repository\n\
        Suite: stable\nCodename: bookworm\nDate: Sat, 09 Nov 2024 10:11:12 UTC\n\
        Architectures: amd64\nComponents: pve-no-subscription pvetest\n\
        Description: Proxmox VE Debian Repository\n";

    const DEBIAN_HEADER: &str = "Origin: Debian\nLabel: Debian\nSuite: stable\nVersion: 12.8\n\
        Codename: bookworm\nChangelogs: https://metadata.ftp-master.debian.org/changelogs/@CHANGEPATH@_changelog\n\
        Date: Sat, 09 Nov 2024 10:11:12 UTC\nValid-Until: Mon, 09 Dec 2024 10:00:00 UTC\n\
        Acquire-By-Hash: yes\nNo-Support-for-Architecture-all: Packages\n\
        Architectures: all amd64 arm64 i386\nComponents: main contrib non-free-firmware non-free\n\
        Description: Debian 12.8 Released 09 November 2024\n";

    const ALL_ALGOS: [(&str, usize); 4] = [("MD5Sum", 32), ("SHA1", 40), ("SHA256", 64), ("SHA512", 128)];

    #[test]
    fn parses_proxmox_release() {
        let paths = [
            "pve-no-subscription/binary-amd64/Packages",
            "pve-no-subscription/binary-amd64/Packages.gz",
            "pvetest/binary-amd64/Packages",
        ];
        let text = release_text(PROXMOX_HEADER, &[("MD5Sum", 32), ("SHA256", 64)], &paths);
        let r = parse_release(&text).unwrap();
        assert_eq!(r.origin.as_deref(), Some("Proxmox"));
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        assert_eq!(r.date, Some(1731147072));
        assert_eq!(r.valid_until, None);
        assert!(!r.acquire_by_hash);
        assert_eq!(r.architectures, ["amd64"]);
        assert_eq!(r.components, ["pve-no-subscription", "pvetest"]);
        let got: Vec<_> = r.files.iter().map(|f| (f.path.as_str(), f.size)).collect();
        assert_eq!(got, [(paths[0], 100), (paths[1], 101), (paths[2], 102)]);
        assert_eq!(r.files[1].sha256.to_hex(), hex(1, 64));
        assert_eq!(r.files[1].md5, Some(hex(1, 32)));
        assert_eq!((r.files[1].sha1.as_ref(), r.files[1].sha512.as_ref()), (None, None));
    }

    #[test]
    fn parses_debian_release_with_all_hashes() {
        let paths = ["main/binary-amd64/Packages.xz", "main/i18n/Translation-en.bz2"];
        let r = parse_release(&release_text(DEBIAN_HEADER, &ALL_ALGOS, &paths)).unwrap();
        assert!(r.acquire_by_hash);
        assert_eq!(r.valid_until, Some(1733738400));
        assert_eq!(r.components, ["main", "contrib", "non-free-firmware", "non-free"]);
        let f = &r.files[1];
        assert_eq!((f.path.as_str(), f.size), (paths[1], 101));
        assert_eq!(f.md5, Some(hex(1, 32)));
        assert_eq!(f.sha1, Some(hex(1, 40)));
        assert_eq!(f.sha512, Some(hex(1, 128)));
    }

    #[test]
    fn hash_only_in_weak_list_is_ignored() {
        let text = format!("{PROXMOX_HEADER}MD5Sum:\n {} 5 only-md5\n SHA256:\n {} 5 a\n", hex(0, 32), hex(0, 64))
            .replace("\n SHA256", "\nSHA256");
        let r = parse_release(&text).unwrap();
        assert_eq!(r.files.len(), 1);
        assert_eq!(r.files[0].md5, None);
    }

    #[test]
    fn malformed_releases_are_rejected() {
        let good = release_text(PROXMOX_HEADER, &[("MD5Sum", 32), ("SHA256", 64)], &["a/Packages"]);
        let sha = hex(0, 64);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty document"),
            (PROXMOX_HEADER.into(), "missing required field SHA256"),
            (good.replace(&format!(" {sha}"), &format!(" {sha} extra")), "expected `<digest> <size> <path>`"),
            (good.replace("100 a/Packages", "a/Packages"), "expected `<digest>"),
            (good.replace("100 a/Packages", "1e3 a/Packages"), "bad size"),
            (good.replace(&sha, &sha[1..]), "not 64 hex digits"),
            (good.replace(&sha, &"g".repeat(64)), "not 64 hex digits"),
            (good.replace("a/Packages", "../Packages"), "`..`"),
            (good.replace("a/Packages", "/etc/shadow"), "absolute"),
            (format!("{good} {sha} 1 a/Packages\n"), "listed twice"),
            (good.replacen("100 a/Packages", "999 a/Packages", 1), "size 999 but SHA256 says 100"),
            (
                good.replace("Valid-Until: ", "X: ").replace("Date: ", "Valid-Until: sometime\nDate: "),
                "field Valid-Until",
            ),
            (good.replace("Origin: Proxmox", " Origin: Proxmox"), "syntax"),
        ];
        for (text, want) in cases {
            let err = parse_release(&text).expect_err(&text).to_string();
            assert!(err.contains(want), "error {err:?} should mention {want:?}");
        }
    }

    /// apt's RFC1123StrToTime (apt-pkg/contrib/strutl.cc), form by form.
    #[test]
    fn dates_as_apt_reads_them() {
        let t = 1731147072;
        let cases: &[(&str, Option<i64>)] = &[
            ("Sat, 09 Nov 2024 10:11:12 UTC", Some(t)),
            ("Sat,  9 Nov 2024 10:11:12 GMT", Some(t)),
            ("sat, 9 nov 2024 10:11:12 Z", Some(t)),
            ("Sat, 09 Nov 2024 10:11:12 +0000", Some(t)),
            ("Sat, 09 Nov 2024 10:11:12 -0000", Some(t)),
            ("Sat, 9 Nov 2024 9:11:12 UTC", Some(t - 3600)),
            ("Sat Nov  9 10:11:12 2024", Some(t)),
            ("Saturday, 09-Nov-24 10:11:12 GMT", Some(-1_424_612_928)),
            ("Thu, 01 Jan 1970 00:00:00 UTC", Some(0)),
            // apt rolls a day past the month's end over (strptime + timegm) …
            ("Sat, 31 Nov 2024 10:11:12 UTC", Some(t + 22 * 86_400)),
            // … and knows a month by its first letters, an unknown one as January (MonthConv).
            ("Sat, 09 Foo 2024 10:11:12 UTC", Some(1_707_473_472)),
            ("Sat, 09 Xyz 2024 10:11:12 UTC", Some(t - 305 * 86_400)),
            // What apt refuses: no weekday, other zones, other shapes.
            ("09 Nov 2024 10:11:12 UTC", None),
            ("Sat, 09 Nov 2024 12:41:12 +0230", None),
            ("Sat, 09 Nov 2024 05:11:12 -0500", None),
            ("Sat, 09 Nov 2024 10:11:12 UT", None),
            ("Sat, 09 Nov 2024 10:11:12 CEST", None),
            ("Sat, 09 Nov 2024 10:11:12 utc", None),
            ("Xyz, 09 Nov 2024 10:11:12 UTC", None),
            ("Sa, 09 Nov 2024 10:11:12 UTC", None),
            ("Sat 09 Nov 2024 10:11:12 UTC", None),
            ("", None),
            ("yesterday", None),
            ("Sat, 09 Nov 2024 10:11 UTC", None),
            ("Sat, 09 Nov 2024 10:11:12:13 UTC", None),
            ("Sat, 09 Nov 2024 10:11:12", None),
            ("Sat, 09 Nov 2024 25:11:12 UTC", None),
            ("Sat, 32 Nov 2024 10:11:12 UTC", None),
            ("Sat, 09 Nov 2024 10:11:12 UTC extra", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_apt_date(input), *want, "{input:?}");
        }
    }

    /// Where apt is lenient, so is the parser: a Date apt cannot read is ignored (apt warns
    /// "Invalid 'Date' entry"), a stanza after the first is not read, a repeated field means its
    /// last value, Acquire-By-Hash is any true-ish word.
    #[test]
    fn lenient_where_apt_is() {
        let good = release_text(PROXMOX_HEADER, &[("SHA256", 64)], &["a/Packages"]);
        let r = parse_release(&good.replace("Sat, 09 Nov 2024 10:11:12 UTC", "sometime")).unwrap();
        assert_eq!((r.date, r.invalid_date.as_deref()), (None, Some("sometime")));
        let r = parse_release(&format!("{good}\nOrigin: second\n")).unwrap();
        assert_eq!(r.origin.as_deref(), Some("Proxmox"));
        let r = parse_release(&good.replace("Origin: Proxmox\n", "Origin: Proxmox\nOrigin: Other\n")).unwrap();
        assert_eq!(r.origin.as_deref(), Some("Other"));
        assert_eq!(parse_release(&good.replace('\n', "\r\n")).unwrap().files.len(), 1);
        for (value, on) in [("yes", true), ("true", true), ("1", true), ("maybe", true), ("no", false), ("0", false)] {
            let text = good.replace("Origin: Proxmox\n", &format!("Origin: Proxmox\nAcquire-By-Hash: {value}\n"));
            assert_eq!(parse_release(&text).unwrap().acquire_by_hash, on, "{value}");
        }
        assert!(!parse_release(&good).unwrap().acquire_by_hash);
    }

    /// (path, wanted for components [main], architectures [amd64])
    const WANTED_TABLE: &[(&str, bool)] = &[
        ("main/binary-amd64/Packages", true),
        ("main/binary-amd64/Packages.gz", true),
        ("main/binary-amd64/Packages.xz", true),
        ("main/binary-amd64/Release", true),
        ("main/binary-amd64/Packages.diff/Index", true),
        ("main/binary-all/Packages.xz", true),
        ("main/binary-all/Release", true),
        ("main/i18n/Translation-en", true),
        ("main/i18n/Translation-de.bz2", true),
        ("main/i18n/Index", true),
        ("main/Contents-amd64.gz", true),
        ("main/Contents-all", true),
        ("main/Contents-udeb-amd64.gz", true),
        ("main/dep11/Components-amd64.yml.gz", true),
        ("main/dep11/Components-all.yml.xz", true),
        ("main/dep11/icons-48x48.tar.gz", true),
        ("main/dep11/icons-64x64@2.tar.gz", true),
        ("main/cnf/Commands-amd64.xz", true),
        ("main/cnf/Commands-all", true),
        ("Contents-amd64.gz", true),
        ("Contents-all.gz", true),
        ("main/binary-arm64/Packages.xz", false),
        ("main/binary-amd64x/Packages", false),
        ("main/binary-amd64/Packagesfoo", false),
        ("main/binary-amd64/sub/Packages", false),
        ("main/binary-amd64/Packages.diff/T-2024-11-09-0813.25-F-2024-11-08-2014.13.gz", false),
        ("main/binary-amd64/Sources", false),
        ("main/i18n/Translation-", false),
        ("main/i18n/Translation-en.diff/Index", false),
        ("main/i18n/sub/Translation-en", false),
        ("main/Contents-arm64.gz", false),
        ("main/Contents-amd64.gz/x", false),
        ("main/Contents-udeb-arm64.gz", false),
        ("main/dep11/Components-arm64.yml.gz", false),
        ("main/dep11/icons-", false),
        ("main/cnf/Commands-arm64.xz", false),
        ("main/debian-installer/binary-amd64/Packages.xz", false),
        ("main/source/Sources.xz", false),
        ("main/Packages", false),
        ("contrib/binary-amd64/Packages.xz", false),
        ("mainline/binary-amd64/Packages", false),
        ("Contents-arm64.gz", false),
        ("Contents-udeb-amd64.gz", false),
        ("binary-amd64/Packages", false),
    ];

    fn selected<'a>(r: &'a Release, comps: &[&str], archs: &[&str]) -> Vec<&'a str> {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        r.wanted_indices(&owned(comps), &owned(archs)).iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn wanted_indices_table() {
        let paths: Vec<&str> = WANTED_TABLE.iter().map(|(p, _)| *p).collect();
        let r = parse_release(&release_text(DEBIAN_HEADER, &ALL_ALGOS, &paths)).unwrap();
        let want: Vec<&str> = WANTED_TABLE.iter().filter(|(_, w)| *w).map(|(p, _)| *p).collect();
        assert_eq!(selected(&r, &["main"], &["amd64"]), want);
        assert_eq!(selected(&r, &["main"], &["amd64", "all"]), want, "explicit `all` is no different");
        let arm = selected(&r, &["main", "contrib"], &["arm64"]);
        for p in ["main/binary-arm64/Packages.xz", "contrib/binary-amd64/Packages.xz", "main/binary-all/Release"] {
            assert_eq!(arm.contains(&p), p != "contrib/binary-amd64/Packages.xz", "{p}");
        }
        assert!(selected(&r, &[], &[]).iter().all(|p| p.starts_with("Contents-all")));
    }

    #[test]
    fn wanted_indices_proxmox() {
        let paths = [
            "pve-no-subscription/binary-amd64/Packages",
            "pve-no-subscription/binary-amd64/Packages.gz",
            "pvetest/binary-amd64/Packages.gz",
            "pve-no-subscription/binary-arm64/Packages",
        ];
        let r = parse_release(&release_text(PROXMOX_HEADER, &[("SHA256", 64)], &paths)).unwrap();
        assert_eq!(selected(&r, &["pve-no-subscription"], &["amd64"]), &paths[..2]);
        assert_eq!(selected(&r, &["pve-no-subscription", "pvetest"], &["amd64"]), &paths[..3]);
    }

    proptest! {
        #[test]
        fn parse_release_never_panics(text in "\\PC*") {
            let _ = parse_release(&text);
        }

        #[test]
        fn parse_release_never_panics_on_near_valid(line in "[0-9a-f ./A-Za-z:+-]{0,120}") {
            let text = format!("{PROXMOX_HEADER}SHA256:\n {line}\n");
            let _ = parse_release(&text);
            let _ = parse_apt_date(&line);
        }
    }
}
