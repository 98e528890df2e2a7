//! Pure checks on single config values: ids, architectures, URLs, view-relative paths.
//! Each returns a one-line reason; the caller adds file, line and entry.

use url::Url;

/// Debian release architectures (and `all`) that a binary mirror may name.
pub const ARCHITECTURES: [&str; 11] =
    ["amd64", "arm64", "armel", "armhf", "i386", "mips64el", "mipsel", "ppc64el", "riscv64", "s390x", "all"];

/// The top-level view directory that holds every retained snapshot; no mirror, tree or alias may
/// claim it.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// The top-level directory the mount answers pinned lookups under (`crate::fuse::PIN_DIR`).
pub const PIN_DIR: &str = ".pin";

/// What the mount serves at the top of every view besides the entries: status.json
/// (`crate::tree::STATUS_FILE`), the front page and the entries' pages (`crate::web::INDEX`,
/// `crate::web::PAGES_DIR`).
pub const SERVED_FILES: [&str; 2] = ["status.json", "index.html"];
pub const PAGES_DIR: &str = "status";

/// Ids name `snapshots/<id>/` directories and catalog rows: `[A-Za-z0-9_.-]+`, not `.` or `..`.
/// `20M`: bytes per second, with an optional K, M or G (1024-based, as wget's and curl's
/// `--limit-rate` count; `KiB`, `MB` and the like are read the same); more than 0.
pub fn rate(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a rate in bytes per second (e.g. \"20M\", \"500K\", \"1048576\")");
    let t = text.trim();
    let digits = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let number: f64 = t[..digits].parse().map_err(|_| bad())?;
    let unit = t[digits..].trim().to_ascii_uppercase();
    let factor = match unit.trim_end_matches('B').trim_end_matches('I') {
        "" => 1u64,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(bad()),
    };
    let bytes = (number * factor as f64).round();
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// A proxy URL: `http://` or `https://`, a host, optionally a port and `user:password@`, no path.
pub fn proxy(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
    let masked = masked(&url);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{masked}: a proxy is http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) || !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(format!("{masked}: give scheme, host and port only (http://proxy.example:3128)"));
    }
    Ok(url)
}

/// `url` with its password replaced by `***`, for every output that shows it.
pub fn masked(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() && shown.set_password(Some("***")).is_err() {
        return format!("{}://***@{}", url.scheme(), url.host_str().unwrap_or_default());
    }
    shown.to_string()
}

/// `50%`: a whole percentage from 0 to 100.
pub fn percent(text: &str) -> Result<u8, String> {
    let bad = || format!("{text:?} is not a percentage from 0% to 100% (e.g. \"50%\")");
    let n: u8 = text.trim().strip_suffix('%').ok_or_else(bad)?.trim().parse().map_err(|_| bad())?;
    if n > 100 {
        return Err(bad());
    }
    Ok(n)
}

pub fn id(id: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if id.is_empty() {
        return Err("id is empty".into());
    }
    if let Some(bad) = id.chars().find(|c| !allowed(*c)) {
        return Err(format!("id {id:?} contains {bad:?}; use only letters, digits, '_', '.' and '-'"));
    }
    if id == "." || id == ".." {
        return Err(format!("id {id:?} is not a usable directory name"));
    }
    Ok(())
}

pub fn architecture(arch: &str) -> Result<(), String> {
    if arch == "source" {
        return Err("\"source\" is not supported: pmirror-fs mirrors binary packages only".into());
    }
    if ARCHITECTURES.contains(&arch) {
        return Ok(());
    }
    Err(format!("{arch:?} is not a Debian architecture (one of {})", ARCHITECTURES.join(", ")))
}

/// An upstream base URL: http or https, with a host, no query or fragment; returned with a
/// trailing slash so that `Url::join` appends instead of replacing the last segment.
pub fn http_url(text: &str) -> Result<Url, String> {
    let mut url = Url::parse(text).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("URL {text:?}: scheme must be http or https, not {:?}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("URL {text:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("URL {text:?} must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The view path a URL maps to by default: its path without leading and trailing slashes.
pub fn default_view(url: &Url) -> Option<String> {
    let path = url.path().trim_matches('/');
    (!path.is_empty()).then(|| path.to_owned())
}

/// A path inside the view: relative, no empty, `.` or `..` components, no NUL.
pub fn relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".into());
    }
    if path.starts_with('/') {
        return Err(format!("{path:?} must be relative (no leading '/')"));
    }
    if path.contains('\0') {
        return Err(format!("{path:?} contains a NUL byte"));
    }
    for component in path.split('/') {
        match component {
            "" => return Err(format!("{path:?} has an empty component ('//' or a trailing '/')")),
            "." | ".." => return Err(format!("{path:?} contains a {component:?} component")),
            _ => {}
        }
    }
    Ok(())
}

/// A path that mirrors, trees or aliases may claim: relative and outside `snapshots/`.
pub fn claimable_path(path: &str) -> Result<(), String> {
    relative_path(path)?;
    if is_within(path, SNAPSHOTS_DIR) {
        return Err(format!("{path:?} is reserved: {SNAPSHOTS_DIR}/ holds the retained snapshots"));
    }
    if is_within(path, PIN_DIR) {
        return Err(format!(
            "{path:?} is reserved: the mount answers {PIN_DIR}/<token>/ for nginx's pinned index paths"
        ));
    }
    if is_within(path, PAGES_DIR) || SERVED_FILES.contains(&path) {
        return Err(format!(
            "{path:?} is reserved: the mount serves status.json, the front page (index.html) and status/<id>.html there"
        ));
    }
    Ok(())
}

/// A suite or component of an apt source line: a relative path of `[A-Za-z0-9._+~-]` words.
pub fn dist_word(word: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '~' | '-' | '/');
    if let Some(bad) = word.chars().find(|c| !allowed(*c)) {
        return Err(format!("{word:?} contains {bad:?}"));
    }
    relative_path(word)
}

/// Whether `path` equals `dir` or lies below it, component-wise (`a/bc` is not within `a/b`).
pub fn is_within(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_count_1024() {
        let cases =
            [("20M", 20 << 20), ("500K", 500 << 10), ("1048576", 1 << 20), ("1.5MiB", 3 << 19), ("2 gb", 2 << 30)];
        for (text, bytes) in cases {
            assert_eq!(rate(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn ids() {
        let cases: &[(&str, bool)] = &[
            ("pve_bookworm", true),
            ("a.b-c_9", true),
            ("", false),
            ("pve bookworm", false),
            ("pve/bookworm", false),
            (".", false),
            ("..", false),
            ("...", true),
            ("ü", false),
        ];
        for (text, ok) in cases {
            assert_eq!(id(text).is_ok(), *ok, "{text:?}");
        }
    }

    #[test]
    fn architectures() {
        assert!(architecture("amd64").is_ok());
        assert!(architecture("all").is_ok());
        assert!(architecture("source").unwrap_err().contains("not supported"));
        assert!(architecture("amd65").unwrap_err().contains("not a Debian architecture"));
    }

    #[test]
    fn urls() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("http://download.proxmox.com/debian/pve", Ok("http://download.proxmox.com/debian/pve/")),
            ("https://deb.debian.org/debian/", Ok("https://deb.debian.org/debian/")),
            ("http://host", Ok("http://host/")),
            ("ftp://host/debian", Err("scheme must be http or https")),
            ("file:///srv/debian", Err("scheme must be http or https")),
            ("not a url", Err("invalid URL")),
            ("http://host/debian?x=1", Err("query or fragment")),
            ("http://host/debian#top", Err("query or fragment")),
        ];
        for (text, want) in cases {
            match (http_url(text), want) {
                (Ok(url), Ok(expected)) => assert_eq!(url.as_str(), *expected),
                (Err(e), Err(needle)) => assert!(e.contains(needle), "{text}: {e}"),
                (got, _) => panic!("{text}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn default_views() {
        let view = |text: &str| http_url(text).ok().and_then(|u| default_view(&u));
        assert_eq!(view("http://download.proxmox.com/debian/pve").as_deref(), Some("debian/pve"));
        assert_eq!(view("http://download.proxmox.com/iso/").as_deref(), Some("iso"));
        assert_eq!(view("http://download.proxmox.com/"), None);
    }

    #[test]
    fn paths() {
        let cases: &[(&str, Option<&str>)] = &[
            ("debian/pve", None),
            ("iso", None),
            ("", Some("is empty")),
            ("/debian", Some("must be relative")),
            ("debian//pve", Some("empty component")),
            ("debian/pve/", Some("empty component")),
            ("debian/../etc", Some("\"..\" component")),
            ("./debian", Some("\".\" component")),
            ("snapshots", Some("reserved")),
            ("snapshots/pve", Some("reserved")),
            ("snapshotsx", None),
            (".pin", Some("reserved")),
            (".pin/x", Some("reserved")),
            (".pinx", None),
            ("status", Some("reserved")),
            ("status/x", Some("reserved")),
            ("index.html", Some("reserved")),
            ("status.json", Some("reserved")),
            ("statusx", None),
            ("a\0b", Some("NUL")),
        ];
        for (text, want) in cases {
            match (claimable_path(text), want) {
                (Ok(()), None) => {}
                (Err(e), Some(needle)) => assert!(e.contains(needle), "{text:?}: {e}"),
                (got, _) => panic!("{text:?}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn within() {
        assert!(is_within("a/b", "a/b"));
        assert!(is_within("a/b/c", "a/b"));
        assert!(!is_within("a/bc", "a/b"));
        assert!(!is_within("a", "a/b"));
    }
}
