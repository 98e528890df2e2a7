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
#[path = "release_tests.rs"]
mod tests;
