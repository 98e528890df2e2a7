//! Proxmox's template index `aplinfo-*.dat`, read the way `pveam update` reads it
//! (`PVE::APLInfo::read_aplinfo_from_fh` in pve-manager, with `$update` set), so that
//! pmirror-fs accepts exactly the indices pveam accepts and finds the files pveam would fetch.
//!
//! ```text
//! Package: pve-web-news                      a news item (Package pve-web-news with a long
//! Description: Proxmox VE news                 Description): no file, skipped
//!  See https://www.proxmox.com/ …
//!
//! Package: debian-12-standard                a template: Package, Type, OS, Version and
//! Version: 12.7-1                              Infopage are required; Location is optional
//! Type: lxc
//! OS: debian-12
//! Section: system
//! Location: system/debian-12-standard_12.7-1_amd64.tar.zst
//! sha512sum: 39f6…6d
//! Infopage: https://pve.proxmox.com/wiki/Linux_Container
//! Description: Debian 12 Bookworm (standard)
//!  A small Debian Bookworm system including all standard packages.
//! ```
//!
//! pveam's reader is not a deb822 parser, and where the two differ pveam's rules are the ones
//! followed here:
//! - Records are Perl paragraphs: separated by runs of two or more `\n` (a line holding blanks
//!   does not separate), trailing newlines removed.
//! - Each record is consumed field by field from its start. `Description:` (any case) takes the
//!   rest of the record when what follows its first line are continuation lines; otherwise it
//!   is an ordinary field. `Version:` must match `^\d[a-zA-Z0-9.+\-:~]*$` and `Type:` be
//!   `openvz` or `lxc`. Any other `Name: value` line is kept under the lowercased name (so
//!   unknown fields are fine and field names are case-insensitive); a repeated field keeps its
//!   last value. A value is the rest of its line (leading blank lines skipped), and a field
//!   line needs its `\n`, so a record whose last field is not a Description is refused.
//! - A record `pve-web-news` with a (long) description is news; any other record must have a
//!   (Perl-true: non-empty, not `0`) package, type, os, version and infopage.
//! - Section defaults to `unknown`, Architecture to `i386`. Without a Location the file is
//!   `<Section>/<OS>-<Package>_<Version>_<Architecture>.tar.gz` with a doubled `<OS>-<OS>-`
//!   collapsed; a Location matching `^[a-zA-Z]+://` is absolute, any other is relative to the
//!   index's directory (pveam joins them as strings: `$source/$location`).
//! - The template's name is the Location's last segment when that ends in `.tar`, `.tar.gz`,
//!   `.tar.xz`, `.tar.zst` or `.tar.bz2` (any case), else the whole Location. pveam keeps one
//!   record per name, the last.
//! - pveam downloads with `sha512sum` when the record has one, else `md5sum`, and refuses a
//!   template with neither (`download_file_from_url` with `hash_required`).
//!
//! Anything `pveam update` dies on is an [`AplinfoError`]. Values are bytes (pveam reads the
//! file without decoding), so an index need not be UTF-8.

use super::checksums::{Md5, Sha512};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The package of pveam's news record.
const NEWS_PACKAGE: &[u8] = b"pve-web-news";
/// What `$PVE::Storage::VZTMPL_EXT_RE_1` accepts as a template's extension.
const TEMPLATE_EXTENSIONS: [&str; 5] = [".tar", ".tar.gz", ".tar.xz", ".tar.zst", ".tar.bz2"];
/// Characters that make pveam's `s/$os-$os-/$os-/` mean something else than the literal text
/// (`.` is handled: it matches any character).
const REGEX_METACHARACTERS: &[u8] = b"\\^$|?*+()[]{";

/// Why `pveam update` would refuse the index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("aplinfo stanza {stanza}{}: {detail} (pveam update refuses the index)", package_note(.package))]
pub struct AplinfoError {
    /// 1-based record number.
    pub stanza: usize,
    pub package: Option<String>,
    pub detail: String,
}

fn package_note(package: &Option<String>) -> String {
    package.as_ref().map(|p| format!(" (Package: {p})")).unwrap_or_default()
}

/// Where pveam fetches a template from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Relative to the index's directory (pveam: `$source/$location`), as written or derived.
    Relative(String),
    /// An absolute URL (`^[a-zA-Z]+://`), possibly on another host.
    Absolute(String),
    /// No Location, and the OS contains regex metacharacters, so the file name pveam derives
    /// (`s/$os-$os-/$os-/` with the OS as a Perl regex) cannot be predicted.
    Unpredictable,
}

/// The checksum pveam checks a download against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    Sha512(Sha512),
    /// Only when the record has no `sha512sum`.
    Md5(Md5),
    /// The value pveam would compare against is not a digest: every download would fail.
    Malformed {
        field: &'static str,
        value: String,
    },
}

/// One template of an aplinfo index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// 1-based record number.
    pub stanza: usize,
    pub package: String,
    /// pveam's name for it (`pveam download <storage> <name>`).
    pub name: String,
    pub location: Location,
    /// `None`: neither `sha512sum` nor `md5sum`, so pveam refuses to download it.
    pub checksum: Option<Checksum>,
}

/// An aplinfo index (already decompressed) → its templates, one per name (the last record
/// wins, as in pveam), in the order their names first appear. News records are skipped.
pub fn parse_aplinfo(text: &[u8]) -> Result<Vec<Template>, AplinfoError> {
    let mut out: Vec<Template> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (i, rec) in paragraphs(text).enumerate() {
        let Some(t) = record(i + 1, rec)? else { continue };
        match by_name.get(&t.name) {
            Some(&at) => out[at] = t,
            None => {
                by_name.insert(t.name.clone(), out.len());
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// Perl's paragraph mode (`$/ = ""`) followed by `chomp`: records separated by two or more
/// `\n`, leading newlines skipped, trailing ones removed.
fn paragraphs(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.iter().position(|&b| b != b'\n')?;
        rest = &rest[start..];
        let end = rest.windows(2).position(|w| w == b"\n\n").unwrap_or(rest.len());
        let rec = &rest[..end];
        rest = &rest[end..];
        Some(rec.strip_suffix(b"\n").unwrap_or(rec))
    })
}

/// `\s` of a Perl regex on a byte string.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// Perl truthiness of a string: neither empty nor `"0"`.
fn truthy(v: Option<&[u8]>) -> bool {
    v.is_some_and(|v| !v.is_empty() && v != b"0")
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// `rec` starts with `name:` (ASCII case-insensitive); the position after the colon.
fn after_name(rec: &[u8], name: &str) -> Option<usize> {
    let n = name.len();
    (rec.len() > n && rec[..n].eq_ignore_ascii_case(name.as_bytes()) && rec[n] == b':').then_some(n + 1)
}

/// `\s*(.*\S)\s*\n` from `at`: the value (the rest of the first line with a non-blank, leading
/// blank lines skipped, trailing blanks dropped) and where the match ends (after the last
/// `\n` of the blanks that follow it). `None` when the value's line has no `\n`.
fn value_line(rec: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let start = at + rec[at..].iter().position(|&b| !is_space(b))?;
    let eol = start + rec[start..].iter().position(|&b| b == b'\n')?;
    let end = start + rec[start..eol].iter().rposition(|&b| !is_space(b)).map_or(0, |p| p + 1);
    let blanks = rec[end..].iter().position(|&b| !is_space(b)).map_or(rec.len(), |p| end + p);
    let consumed = end + rec[end..blanks].iter().rposition(|&b| b == b'\n').expect("the value's line ends") + 1;
    Some((&rec[start..end], consumed))
}

/// `^Description:\s*([^\n]*)(\n\s+.*)*$` (case-insensitive, `.` matching newlines) on a
/// record that starts with `Description:`: `Some(long description)` when it matches (it
/// then takes the rest of the record), `None` when it does not.
fn description(rec: &[u8], at: usize) -> Option<String> {
    let blanks = rec[at..].iter().take_while(|&&b| is_space(b)).count();
    // The regex backtracks over the blanks after the colon: the first candidate wins.
    (0..=blanks).rev().find_map(|k| {
        let from = at + k;
        match rec[from..].iter().position(|&b| b == b'\n') {
            None => Some(String::new()),
            Some(p) => {
                let nl = from + p;
                rec.get(nl + 1).is_some_and(|&b| is_space(b)).then(|| collapse(&rec[nl..]))
            }
        }
    })
}

/// pveam's long description: each `\n` + blanks becomes one space, then trimmed.
fn collapse(long: &[u8]) -> String {
    let mut out = Vec::with_capacity(long.len());
    let mut i = 0;
    while i < long.len() {
        if long[i] == b'\n' && long.get(i + 1).is_some_and(|&b| is_space(b)) {
            out.push(b' ');
            i += 1;
            while i < long.len() && is_space(long[i]) {
                i += 1;
            }
        } else {
            out.push(long[i]);
            i += 1;
        }
    }
    let start = out.iter().position(|&b| !is_space(b)).unwrap_or(out.len());
    let end = out.iter().rposition(|&b| !is_space(b)).map_or(start, |p| p + 1);
    text(&out[start..end])
}

/// `^(\d[a-zA-Z0-9\.\+\-\:\~]*)(-(\d+))?$`: the class already admits the `-N` suffix.
fn valid_version(v: &[u8]) -> bool {
    v.first().is_some_and(u8::is_ascii_digit)
        && v.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-' | b':' | b'~'))
}

/// The package a record names, for error messages (its first `Package:` line).
fn package_of(rec: &[u8]) -> Option<String> {
    rec.split(|&b| b == b'\n').find_map(|line| {
        let at = after_name(line, "package")?;
        let v = text(&line[at..]);
        Some(v.trim().to_owned()).filter(|v| !v.is_empty())
    })
}

/// One record → a template, `None` for news; an error where `pveam update` dies.
fn record(stanza: usize, rec: &[u8]) -> Result<Option<Template>, AplinfoError> {
    let fail = |detail: String| AplinfoError { stanza, package: package_of(rec), detail };
    let mut fields: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut rest = rec;
    // `while ($rec)`: a remainder of "0" ends the loop too.
    while truthy(Some(rest)) {
        if let Some(at) = after_name(rest, "description") {
            if let Some(long) = description(rest, at) {
                fields.insert(b"description".to_vec(), long.into_bytes());
                break;
            }
        }
        if let Some((name, at)) = after_name(rest, "version")
            .map(|a| ("version", a))
            .or_else(|| after_name(rest, "type").map(|a| ("type", a)))
        {
            if let Some((value, consumed)) = value_line(rest, at) {
                let ok = if name == "version" { valid_version(value) } else { value == b"openvz" || value == b"lxc" };
                if !ok {
                    let what = if name == "version" { "version =" } else { "unknown type" };
                    return Err(fail(format!("unable to parse appliance record: {what} '{}'", text(value))));
                }
                fields.insert(name.as_bytes().to_vec(), value.to_vec());
                rest = &rest[consumed..];
                continue;
            }
        }
        // `^([^:]+):\s*(.*\S)\s*\n`: the name is everything up to the first colon.
        let parsed = rest.iter().position(|&b| b == b':').filter(|&c| c > 0).and_then(|c| {
            let (value, consumed) = value_line(rest, c + 1)?;
            Some((rest[..c].to_ascii_lowercase(), value, consumed))
        });
        let Some((name, value, consumed)) = parsed else {
            let line = text(rest.split(|&b| b == b'\n').next().unwrap_or_default());
            let why = if rest.contains(&b'\n') { "" } else { " (the last field of a record must be its Description)" };
            return Err(fail(format!("unable to parse appliance record at {line:?}{why}")));
        };
        fields.insert(name, value.to_vec());
        rest = &rest[consumed..];
    }
    let get = |name: &str| fields.get(name.as_bytes()).map(Vec::as_slice);
    if get("package") == Some(NEWS_PACKAGE) && truthy(get("description")) {
        return Ok(None);
    }
    let missing: Vec<&str> =
        ["package", "type", "os", "version", "infopage"].into_iter().filter(|f| !truthy(get(f))).collect();
    if !missing.is_empty() {
        return Err(fail(format!("found incomplete appliance records (no {})", missing.join(", "))));
    }
    let field = |name: &str| text(get(name).unwrap_or_default());
    let (package, os, version) = (field("package"), field("os"), field("version"));
    let (name, location) = if truthy(get("location")) {
        let location = field("location");
        let name = template_name(&location);
        if is_absolute(&location) {
            (name, Location::Absolute(location))
        } else {
            (name, Location::Relative(location))
        }
    } else {
        let section = if truthy(get("section")) { field("section") } else { "unknown".to_owned() };
        let arch = if truthy(get("architecture")) { field("architecture") } else { "i386".to_owned() };
        let name = format!("{os}-{package}_{version}_{arch}.tar.gz");
        match collapse_doubled_os(&name, &os) {
            Some(name) => (name.clone(), Location::Relative(format!("{section}/{name}"))),
            None => (name, Location::Unpredictable),
        }
    };
    let checksum = checksum(get("sha512sum"), get("md5sum"));
    Ok(Some(Template { stanza, package, name, location, checksum }))
}

/// The checksum pveam checks: `sha512sum`, else `md5sum` (pve-common `download_file_from_url`).
fn checksum(sha512sum: Option<&[u8]>, md5sum: Option<&[u8]>) -> Option<Checksum> {
    match (sha512sum, md5sum) {
        (Some(v), _) => Some(
            Sha512::from_str(&text(v))
                .map(Checksum::Sha512)
                .unwrap_or_else(|_| Checksum::Malformed { field: "sha512sum", value: text(v) }),
        ),
        (None, Some(v)) => Some(
            Md5::from_str(&text(v))
                .map(Checksum::Md5)
                .unwrap_or_else(|_| Checksum::Malformed { field: "md5sum", value: text(v) }),
        ),
        (None, None) => None,
    }
}

/// `m|^([a-zA-Z]+)\://|`.
fn is_absolute(location: &str) -> bool {
    location
        .split_once("://")
        .is_some_and(|(scheme, _)| !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// `s|.*/([^/]+$VZTMPL_EXT_RE_1)$|$1|`: the last segment when it is a template archive.
fn template_name(location: &str) -> String {
    if let Some((_, last)) = location.rsplit_once('/') {
        let lower = last.to_ascii_lowercase();
        if TEMPLATE_EXTENSIONS.iter().any(|ext| lower.len() > ext.len() && lower.ends_with(ext)) {
            return last.to_owned();
        }
    }
    location.to_owned()
}

/// `s/$os-$os-/$os-/` (first match; the OS is a Perl regex there, `.` matching any byte but
/// `\n`); `None` when the OS holds other regex metacharacters.
fn collapse_doubled_os(name: &str, os: &str) -> Option<String> {
    let os_b = os.as_bytes();
    if os_b.iter().any(|b| REGEX_METACHARACTERS.contains(b)) {
        return None;
    }
    let pattern: Vec<u8> = [os_b, b"-", os_b, b"-"].concat();
    let hay = name.as_bytes();
    let matches_at =
        |i: usize| pattern.iter().zip(&hay[i..]).all(|(&p, &h)| if p == b'.' { h != b'\n' } else { p == h });
    let found =
        (0..=hay.len().saturating_sub(pattern.len())).find(|&i| hay.len() - i >= pattern.len() && matches_at(i));
    Some(match found {
        Some(i) => {
            let mut out = hay[..i].to_vec();
            out.extend_from_slice(os_b);
            out.push(b'-');
            out.extend_from_slice(&hay[i + pattern.len()..]);
            text(&out)
        }
        None => name.to_owned(),
    })
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Relative(l) | Location::Absolute(l) => f.write_str(l),
            Location::Unpredictable => f.write_str("(unpredictable derived location)"),
        }
    }
}

#[cfg(test)]
#[path = "aplinfo_tests.rs"]
mod tests;
