//! The apt source line of a mirror (`deb URL SUITE COMPONENT…`), parsed into its parts.

use super::validate;
use std::fmt;
use std::str::FromStr;
use url::Url;

/// An upstream apt repository as one `deb` line names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    /// Base URL, always with a trailing slash (`dists/<suite>/…` joins onto it).
    pub url: Url,
    /// Codename or suite: `bookworm`, `bookworm-security`.
    pub suite: String,
    /// At least one: `main`, `pve-no-subscription`, `updates/main`.
    pub components: Vec<String>,
}

/// Why a repository line was rejected (one line, no file position).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RepositoryError(pub String);

const USAGE: &str = "expected \"deb URL SUITE COMPONENT…\"";

impl FromStr for Repository {
    type Err = RepositoryError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| RepositoryError(reason);
        let mut words = line.split_whitespace();
        match words.next() {
            Some("deb") => {}
            Some("deb-src") => {
                return Err(fail("deb-src lines are not supported: pmirror-fs mirrors binary packages only".into()))
            }
            Some(other) => return Err(fail(format!("{USAGE}, found {other:?}"))),
            None => return Err(fail(format!("empty line: {USAGE}"))),
        }
        let url = words.next().ok_or_else(|| fail(format!("missing URL: {USAGE}")))?;
        if url.starts_with('[') {
            return Err(fail(
                "options in brackets ([arch=…], [signed-by=…]) are not supported; \
                 use the architectures and key settings"
                    .into(),
            ));
        }
        let url = validate::http_url(url).map_err(fail)?;
        let suite = words.next().ok_or_else(|| fail(format!("missing suite: {USAGE}")))?;
        if suite.ends_with('/') {
            return Err(fail(format!("flat repositories (suite {suite:?}) are not supported")));
        }
        validate::dist_word(suite).map_err(|e| fail(format!("suite {e}")))?;
        let components = components(words)?;
        Ok(Repository { url, suite: suite.to_owned(), components })
    }
}

fn components<'a>(words: impl Iterator<Item = &'a str>) -> Result<Vec<String>, RepositoryError> {
    let mut components: Vec<String> = Vec::new();
    for word in words {
        validate::dist_word(word).map_err(|e| RepositoryError(format!("component {e}")))?;
        if components.iter().any(|c| c == word) {
            return Err(RepositoryError(format!("component {word:?} is listed twice")));
        }
        components.push(word.to_owned());
    }
    if components.is_empty() {
        return Err(RepositoryError(format!("no component given: {USAGE}")));
    }
    Ok(components)
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deb {} {} {}", self.url, self.suite, self.components.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_plain_lines() {
        let repo: Repository = "deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription pvetest"
            .parse()
            .expect("valid line");
        assert_eq!(repo.url.as_str(), "http://download.proxmox.com/debian/pve/");
        assert_eq!(repo.suite, "bookworm");
        assert_eq!(repo.components, ["pve-no-subscription", "pvetest"]);
        assert_eq!(
            repo.to_string(),
            "deb http://download.proxmox.com/debian/pve/ bookworm pve-no-subscription pvetest"
        );
        assert_eq!(repo.to_string().parse::<Repository>(), Ok(repo));
    }

    #[test]
    fn rejects_bad_lines() {
        let cases: &[(&str, &str)] = &[
            ("", "empty line"),
            ("deb-src http://h/debian bookworm main", "deb-src"),
            ("rpm http://h/debian bookworm main", "found \"rpm\""),
            ("deb", "missing URL"),
            ("deb [arch=amd64] http://h/debian bookworm main", "options in brackets"),
            ("deb ftp://h/debian bookworm main", "scheme must be http or https"),
            ("deb http://h/debian", "missing suite"),
            ("deb http://h/debian bookworm", "no component"),
            ("deb http://h/debian ./", "flat repositories"),
            ("deb http://h/debian ../x main", "\"..\" component"),
            ("deb http://h/debian bookworm main main", "listed twice"),
            ("deb http://h/debian bookworm main #comment", "contains '#'"),
        ];
        for (line, needle) in cases {
            let err = line.parse::<Repository>().expect_err(line);
            assert!(err.0.contains(needle), "{line}: {err}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(line in "\\PC*") {
            let _ = line.parse::<Repository>();
        }

        #[test]
        fn display_round_trips(suite in "[a-z][a-z0-9-]{0,10}", comps in proptest::collection::btree_set("[a-z][a-z0-9/-]{0,8}[a-z]", 1..4)) {
            let line = format!("deb https://mirror.example/debian {suite} {}", comps.into_iter().collect::<Vec<_>>().join(" "));
            if let Ok(repo) = line.parse::<Repository>() {
                prop_assert_eq!(repo.to_string().parse::<Repository>(), Ok(repo));
            }
        }
    }
}
