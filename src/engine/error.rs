//! The failure of one entry: one line naming the entry (`mirror pve: …`, `tree iso: …`) and,
//! when known, the file, with a typed cause — so a caller can tell a transport failure or a hash
//! mismatch (worth trying another source) from a refusal that no source can mend.

use crate::fetch::FetchError;
use crate::pool::PoolError;
use std::sync::Arc;

/// A failure of one mirror or tree. Its previously published snapshot stays.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind} {entry}: {}{cause}", file.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct EntryError {
    /// `mirror` or `tree`, as the config names the entry.
    pub kind: &'static str,
    pub entry: String,
    pub file: Option<String>,
    pub cause: Cause,
}

impl EntryError {
    pub fn new(kind: &'static str, entry: &str, file: Option<&str>, cause: impl Into<Cause>) -> EntryError {
        EntryError { kind, entry: entry.to_owned(), file: file.map(str::to_owned), cause: cause.into() }
    }

    pub fn mirror(entry: &str, file: Option<&str>, cause: impl Into<Cause>) -> EntryError {
        EntryError::new("mirror", entry, file, cause)
    }

    pub fn tree(entry: &str, file: Option<&str>, cause: impl Into<Cause>) -> EntryError {
        EntryError::new("tree", entry, file, cause)
    }
}

/// Why an entry failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Cause {
    /// Fetching from upstream failed (status, transport, truncation, a size or hash mismatch
    /// while streaming into the pool).
    #[error(transparent)]
    Fetch(Arc<FetchError>),
    /// The pool could not store or read an object.
    #[error(transparent)]
    Pool(Arc<PoolError>),
    /// A download did not match the list that vouches for it (checked while streaming).
    #[error("does not match {list}: {source}")]
    NotAsListed { list: String, source: Arc<FetchError> },
    /// Stored bytes do not match the digest the list that vouches for them demands.
    #[error(transparent)]
    Mismatch(Box<Mismatch>),
    /// Upstream's data is malformed, unsigned or badly signed (the parser's or verifier's error).
    #[error(transparent)]
    Invalid(Arc<dyn std::error::Error + Send + Sync>),
    /// No variant of an index the snapshot cannot do without is served upstream.
    #[error("required index missing upstream: {0}")]
    RequiredMissing(Box<Cause>),
    /// A checksum list's detached signature does not verify with the entry's key.
    #[error("signature of {list} does not verify: {source}")]
    Signature { list: String, source: Arc<crate::apt::SignatureError> },
    /// The configured key file holds no key pmirror-fs can use (checked again when the entry
    /// runs; the config check says so first).
    #[error(transparent)]
    Key(Arc<crate::apt::SignatureError>),
    /// A URL could not be formed from the repository URL and a path.
    #[error(transparent)]
    Url(#[from] url::ParseError),
    /// Upstream broke a rule the real client holds it to, or the entry cannot run (said in
    /// full: what, why, what stays).
    #[error("{0}")]
    Refused(String),
}

/// What a list demanded of a file and what its bytes hash to.
#[derive(Debug, Clone, thiserror::Error)]
#[error("does not match {list}: {expected} expected, got {actual}")]
pub struct Mismatch {
    pub list: String,
    pub expected: String,
    pub actual: String,
}

impl Cause {
    /// A parser's or verifier's error, kept typed.
    pub fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause::Invalid(Arc::new(e))
    }

    /// The fetch error inside, if any.
    pub fn fetch(&self) -> Option<&FetchError> {
        match self {
            Cause::Fetch(e) | Cause::NotAsListed { source: e, .. } => Some(e),
            Cause::RequiredMissing(inner) => inner.fetch(),
            _ => None,
        }
    }
}

impl From<FetchError> for Cause {
    fn from(e: FetchError) -> Cause {
        Cause::Fetch(Arc::new(e))
    }
}

impl From<PoolError> for Cause {
    fn from(e: PoolError) -> Cause {
        Cause::Pool(Arc::new(e))
    }
}

impl From<String> for Cause {
    fn from(s: String) -> Cause {
        Cause::Refused(s)
    }
}

impl From<&str> for Cause {
    fn from(s: &str) -> Cause {
        Cause::Refused(s.to_owned())
    }
}

/// Parser and verifier errors stay typed inside [`Cause::Invalid`].
macro_rules! invalid_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Cause {
            fn from(e: $t) -> Cause {
                Cause::Invalid(Arc::new(e))
            }
        }
    )*};
}

invalid_from!(crate::apt::SignatureError, crate::apt::DecompressError, crate::apt::ParseError);

/// `error: cause: cause` on one line (cron mails and journald lines stay readable): a cause
/// whose text its parent already shows is not repeated. The CLI and the daemon print with it.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}
