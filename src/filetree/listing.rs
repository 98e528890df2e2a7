//! Autoindex pages as data: the links of a directory listing that nginx, Apache or lighttpd
//! generate (Proxmox's download server is nginx), each with the size and date shown beside it,
//! and which of those links are entries of the tree. Pure functions over `&str`; fetching the
//! pages is [`super::walk`]'s job.
//!
//! Hand-written rather than through an HTML parser crate: every one of these formats puts an
//! entry's `<a href>` first and its date and size in the text that follows (same `<pre>` line
//! for nginx, Apache's pre mode; following `<td>` cells for Apache's and lighttpd's tables), and
//! nothing else on the page matters. The scanner below needs no DOM and never fails: anything it
//! does not recognise is simply not an entry.
//!
//! ```text
//! <a href="proxmox-ve_8.2-1.iso">proxmox-ve_8.2-1.iso</a>     24-Apr-2024 10:57    1327753216   nginx
//! <td><a href="x.iso">x.iso</a></td><td align="right">2024-04-24 10:57  </td><td>1.2G</td>  Apache
//! <td class="n"><a href="x.iso">x.iso</a></td><td class="m">2024-Apr-24 10:57:12</td>…    lighttpd
//! ```
//!
//! Names come from the `href`, never from the link text (nginx truncates long names there).

use crate::apt::safe_relative_path;
use url::Url;

/// Seconds per minute: the precision of a listed time without seconds.
const MINUTE: i64 = 60;

/// A size as the listing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedSize {
    /// Exact bytes (nginx by default, `autoindex_exact_size on`).
    Exact(u64),
    /// Rounded (`1.2G`, `629M`): the real size lies within `tolerance` bytes of `bytes`.
    Approx { bytes: u64, tolerance: u64 },
    /// Not shown (directories, `-`) or not understood.
    Unknown,
}

impl ListedSize {
    /// Whether a file of `size` bytes could be what the listing shows.
    pub fn admits(self, size: u64) -> bool {
        match self {
            ListedSize::Exact(n) => n == size,
            ListedSize::Approx { bytes, tolerance } => size.abs_diff(bytes) <= tolerance,
            ListedSize::Unknown => false,
        }
    }
}

/// A modification time as the listing shows it: `unix` is the start of the shown interval,
/// `precision` its length (60 s when the listing shows minutes only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedTime {
    pub unix: i64,
    pub precision: i64,
}

impl ListedTime {
    /// Whether an exact time (a Last-Modified, unix seconds) is the one the listing shows.
    pub fn admits(self, unix: i64) -> bool {
        (self.unix..self.unix + self.precision).contains(&unix)
    }
}

/// One `<a href>` of a page with what the listing shows beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLink {
    /// The attribute value, HTML entities decoded, still percent-encoded.
    pub href: String,
    pub size: ListedSize,
    pub mtime: Option<ListedTime>,
}

/// An entry of the tree found on a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Relative to the tree's base URL, percent-decoded, `/`-separated, without a trailing slash;
    /// always passes [`safe_relative_path`].
    pub path: String,
    /// Where to fetch it (a directory's URL ends with `/`).
    pub url: Url,
    pub is_dir: bool,
    pub size: ListedSize,
    pub mtime: Option<ListedTime>,
}

/// The entries of the tree that the page at `page` lists: links to files or directories strictly
/// below `page` (and so below `base`); parent, sort (`?C=M;O=A`), fragment and foreign links
/// and anything with a `.`/`..` component (but for one leading `./`, as Apache writes before a
/// name with a `:`) or an unsafe decoded name are left out.
pub fn entries(page: &Url, base: &Url, html: &str) -> Vec<Listed> {
    parse_links(html)
        .into_iter()
        .filter_map(|link| {
            let (url, path, is_dir) = resolve(page, base, &link.href)?;
            Some(Listed { path, url, is_dir, size: link.size, mtime: link.mtime })
        })
        .collect()
}

/// Every `<a href=…>` of the page, in order, with the size and date in the text after it.
pub fn parse_links(html: &str) -> Vec<RawLink> {
    let lower = html.to_ascii_lowercase();
    let mut anchors: Vec<(usize, usize, String)> = Vec::new();
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("<a") {
        let start = pos + found;
        pos = start + 2;
        if !lower[pos..].starts_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        let Some(tag_len) = lower[pos..].find('>') else { break };
        let attrs = &html[pos..pos + tag_len];
        let end = match lower[pos + tag_len..].find("</a") {
            Some(close) => {
                let close = pos + tag_len + close;
                lower[close..].find('>').map_or(html.len(), |gt| close + gt + 1)
            }
            None => html.len(),
        };
        if let Some(href) = attribute(attrs, "href") {
            anchors.push((start, end, href));
        }
        pos = end.max(pos);
    }
    let mut links = Vec::with_capacity(anchors.len());
    for (i, (_, end, href)) in anchors.iter().enumerate() {
        let next = anchors.get(i + 1).map_or(html.len(), |a| a.0);
        let after = text_of(&html[*end..next.max(*end)]);
        let tokens: Vec<&str> = after.split_whitespace().collect();
        let (size, mtime) = size_and_time(&tokens);
        links.push(RawLink { href: href.clone(), size, mtime });
    }
    links
}

/// The value of attribute `name` in the inside of a tag (`href="x" class=y`), entities decoded.
fn attribute(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find(name) {
        let at = from + found;
        from = at + name.len();
        let boundary = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = attrs[from..].trim_start();
        let Some(value) = rest.strip_prefix('=').filter(|_| boundary) else { continue };
        let value = value.trim_start();
        let raw = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split(|c: char| c.is_ascii_whitespace() || c == '>').next().unwrap_or(""),
        };
        return Some(decode_entities(raw));
    }
    None
}

/// The text of an HTML fragment: tags dropped, the entities listings use decoded.
fn text_of(fragment: &str) -> String {
    let mut out = String::with_capacity(fragment.len());
    let mut in_tag = false;
    for c in fragment.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    decode_entities(&out)
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let entity = rest.find(';').filter(|&semi| semi <= 10).map(|semi| (&rest[1..semi], semi + 1));
        match entity.and_then(|(name, len)| Some((entity_char(name)?, len))) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity_char(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// The first `DATE TIME` pair of the tokens, and the size token right after it.
fn size_and_time(tokens: &[&str]) -> (ListedSize, Option<ListedTime>) {
    for (i, pair) in tokens.windows(2).enumerate() {
        let (Some(date), Some((secs, precision))) = (parse_date(pair[0]), parse_time(pair[1])) else { continue };
        let unix = date.midnight().assume_utc().unix_timestamp() + secs;
        let size = tokens.get(i + 2).map_or(ListedSize::Unknown, |t| parse_size(t));
        return (size, Some(ListedTime { unix, precision }));
    }
    (ListedSize::Unknown, None)
}

/// `24-Apr-2024` (nginx, old Apache), `2024-04-24` (Apache 2.4), `2024-Apr-24` (lighttpd).
fn parse_date(token: &str) -> Option<time::Date> {
    let parts: Vec<&str> = token.split('-').collect();
    let [a, b, c] = parts[..] else { return None };
    let (year, month, day) = if a.len() == 4 { (a, b, c) } else { (c, b, a) };
    if year.len() != 4 || !(1..=2).contains(&day.len()) {
        return None;
    }
    let month = match month.parse::<u8>() {
        Ok(n) => time::Month::try_from(n).ok()?,
        Err(_) => month_by_name(month)?,
    };
    time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()
}

fn month_by_name(name: &str) -> Option<time::Month> {
    const NAMES: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let i = NAMES.iter().position(|m| m.eq_ignore_ascii_case(name))?;
    time::Month::try_from(i as u8 + 1).ok()
}

/// `10:57` or `10:57:12` → (seconds into the day, precision of the shown value).
fn parse_time(token: &str) -> Option<(i64, i64)> {
    let parts: Vec<&str> = token.split(':').collect();
    let num = |s: &str, max: i64| s.parse::<i64>().ok().filter(|n| (0..max).contains(n) && s.len() == 2);
    match parts[..] {
        [h, m] => Some((num(h, 24)? * 3600 + num(m, 60)? * MINUTE, MINUTE)),
        [h, m, s] => Some((num(h, 24)? * 3600 + num(m, 60)? * MINUTE + num(s, 61)?, 1)),
        _ => None,
    }
}

/// `1327753216` exact; `1.2G`, `629M`, `4K` (Apache, lighttpd, nginx without exact sizes) rounded.
fn parse_size(token: &str) -> ListedSize {
    if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
        return token.parse().map_or(ListedSize::Unknown, ListedSize::Exact);
    }
    let Some(last) = token.chars().last() else { return ListedSize::Unknown };
    let unit: u64 = match last.to_ascii_uppercase() {
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        'T' => 1 << 40,
        _ => return ListedSize::Unknown,
    };
    let number = &token[..token.len() - 1];
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && !number.starts_with(['+', '-']) => {
            ListedSize::Approx { bytes: (n * unit as f64) as u64, tolerance: unit }
        }
        _ => ListedSize::Unknown,
    }
}

/// `href` on `page` → (URL, path relative to `base`, is a directory), when it is an entry of the
/// tree strictly below `page`.
fn resolve(page: &Url, base: &Url, href: &str) -> Option<(Url, String, bool)> {
    if href.is_empty() || href.contains(['?', '#']) {
        return None;
    }
    // Apache's mod_autoindex writes `./a:b.iso` for a name with a `:` before any `/`
    // (`ap_os_escape_path(…, 0)`), so that the name is not read as a URL scheme; that one
    // leading `./` is the page's own directory. Any other `.` or `..` segment is no entry.
    let dotted = |seg: &str| matches!(percent_decode(seg).as_deref(), Some(b".." | b"."));
    if href.strip_prefix("./").unwrap_or(href).split('/').any(dotted) {
        return None;
    }
    let url = page.join(href).ok()?;
    let same_origin = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default();
    if !same_origin || url.query().is_some() || url.fragment().is_some() {
        return None;
    }
    let below_page = url.path().len() > page.path().len() && url.path().starts_with(page.path());
    if !below_page || !page.path().starts_with(base.path()) || !base.path().ends_with('/') {
        return None;
    }
    let encoded = &url.path()[base.path().len()..];
    let is_dir = encoded.ends_with('/');
    let mut segments = Vec::new();
    for seg in encoded.trim_end_matches('/').split('/') {
        let decoded = String::from_utf8(percent_decode(seg)?).ok()?;
        if decoded.contains('/') {
            return None;
        }
        segments.push(decoded);
    }
    let path = segments.join("/");
    safe_relative_path(&path).ok()?;
    Some((url, path, is_dir))
}

/// `%XX` → byte; `None` for a malformed escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
