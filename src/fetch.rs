//! HTTP access to upstream: one pooled `reqwest` client (rustls, keep-alive), timeouts, retries with
//! backoff for transient failures, conditional requests, and streaming downloads into the pool's
//! staging area with the size cap and hash check applied while the bytes arrive.
//!
//! Credentials (a Proxmox subscription: basic auth) belong to one mirror or tree and go only to
//! its upstream's origin (scheme, host, port): [`Fetcher::for_upstream`] scopes them, a request
//! to any other origin goes without, and reqwest drops the header when a redirect leaves the
//! host or port (a redirect from https to http is refused, as apt refuses it: [`redirect_policy`]).
//! They never appear in `Debug` output or in an error.
//!
//! Architecture invariant: this is the only module that uses `reqwest`.

use crate::digest::Sha256;
use crate::pool::{Pool, PoolError};
use futures_util::StreamExt;
use std::time::Duration;
use url::Url;

/// First retry delay; doubles per attempt (0.5 s, 1 s, 2 s …) so a briefly overloaded upstream
/// gets room without stretching a cron run much.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Cap on in-memory bodies (Release files, indices we parse). Debian's largest index
/// (Contents-amd64.gz) is ~60 MiB; 1 GiB only guards against a hostile server.
pub const MAX_MEMORY_BODY: u64 = 1 << 30;
/// Redirects followed per request. apt sets no count, it only refuses a loop (a URL seen before
/// in the chain: `IsRedirectionLoop`); loops are refused here too, and this bounds a server
/// that invents a new URL at every hop.
const MAX_REDIRECTS: usize = 30;
/// HTTP/2 flow-control window per connection (bytes in flight a far upstream may send ahead).
const H2_WINDOW: u32 = 32 << 20;
/// HTTP/2 connections per host (clients), at most: the bound is 8.
pub(super) const H2_CONNECTIONS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    /// 401/403: upstream wants (other) credentials; `hint` says what to do about it.
    #[error("{url}: HTTP {status}: {hint}")]
    Denied { url: String, status: u16, hint: String },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: truncated body: got {got} of {expected} bytes")]
    Truncated { url: String, got: u64, expected: u64 },
    #[error("{url}: {source}")]
    Pool { url: String, source: Box<PoolError> },
    /// A body read into memory (a Release, an index to parse) passed its declared size (or the
    /// cap on bodies held in memory).
    #[error("{url}: body larger than the declared {cap} bytes")]
    TooLarge { url: String, cap: u64 },
    /// The slow-transfer guard gave up on it (`[sync] slow-rate`).
    #[error("{url}: abandoned: {rate} bytes/s, below [sync] slow-rate ({min} bytes/s) for {secs} s")]
    Slow { url: String, rate: u64, min: u64, secs: u64 },
    /// Every source of the mirror or tree served a bad file earlier in the run.
    #[error("{url}: no source left to ask: every one served a bad file this run")]
    NoSource { url: String },
}

impl FetchError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::Status { status: 404 | 410, .. })
    }

    /// Transient failures worth another attempt: 5xx, 408/429, resets, timeouts, truncated bodies.
    /// Never a 404 or a hash/size mismatch (the file is what it is).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            FetchError::Transport { .. } | FetchError::Truncated { .. } | FetchError::Slow { .. } => true,
            FetchError::Pool { .. }
            | FetchError::Denied { .. }
            | FetchError::TooLarge { .. }
            | FetchError::NoSource { .. } => false,
        }
    }
}

/// A body held in memory plus the upstream metadata we record.
#[derive(Debug, Clone)]
pub struct Body {
    pub bytes: Vec<u8>,
    /// Upstream `Last-Modified`, unix seconds.
    pub last_modified: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum Conditional {
    NotModified,
    Modified(Body),
}

/// Result of streaming a file into the pool.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    pub sha256: Sha256,
    pub size: u64,
    pub last_modified: Option<i64>,
}

/// What a download must be: a declared size and digest, or (file trees without checksums) anything.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    Exactly { size: u64, sha256: Sha256 },
    Unverified,
}

/// HTTP basic credentials for one origin. `Debug` shows the origin only.
#[derive(Clone)]
pub struct Credentials {
    origin: url::Origin,
    user: String,
    password: String,
    /// Appended to a 401/403 answered to a request that carried them.
    rejected_hint: String,
}

impl Credentials {
    /// Credentials sent to `upstream`'s origin only.
    pub fn basic(upstream: &Url, user: &str, password: &str, rejected_hint: String) -> Credentials {
        Credentials { origin: upstream.origin(), user: user.to_owned(), password: password.to_owned(), rejected_hint }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("origin", &self.origin.ascii_serialization()).finish_non_exhaustive()
    }
}

/// What one mirror or tree sends upstream, and what a refusal tells the operator.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub credentials: Option<Credentials>,
    /// Appended to a 401/403 answered to a request that carried no credentials.
    pub missing_hint: String,
}

#[derive(Clone)]
pub struct Fetcher {
    /// H2_CONNECTIONS clients (one pool each); plain http and the first requests use the first.
    clients: std::sync::Arc<[reqwest::Client]>,
    retries: u32,
    access: std::sync::Arc<Access>,
    /// The proxy requests go through, password masked (for the errors that may be its).
    proxy: Option<std::sync::Arc<str>>,
    /// The run's bandwidth cap, shared by every connection.
    limit: Option<std::sync::Arc<RateLimit>>,
    /// The slow-transfer guard: bytes per second over a window.
    slow: Option<(u64, Duration)>,
    /// The slots of every host the run talks to.
    hosts: std::sync::Arc<Hosts>,
    /// The sources of this fetcher's mirror or tree, when it has more than one.
    sources: Option<std::sync::Arc<Sources>>,
    /// Only this source (no failover): how each source's InRelease is read.
    pin: Option<usize>,
}

impl Fetcher {
    /// A client with `timeout` and `retries`, through `proxy` when one is configured — else
    /// through the proxies of the environment (`http_proxy`, `https_proxy`, `all_proxy`,
    /// `no_proxy`, upper or lower case, as curl and apt read them): https goes through CONNECT,
    /// credentials in the proxy URL are sent as Proxy-Authorization.
    pub fn new(timeout: Duration, retries: u32, proxy: Option<&Url>, limits: Limits) -> Result<Fetcher, FetchError> {
        let client_err =
            |e: reqwest::Error| FetchError::Transport { url: "(client)".to_owned(), message: e.to_string() };
        let certs = match &limits.ca_file {
            Some(path) => {
                let ca_err = |message: String| FetchError::Transport { url: path.display().to_string(), message };
                let pem = std::fs::read(path).map_err(|e| ca_err(format!("[sync] ca-file: {e}")))?;
                reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| ca_err(format!("[sync] ca-file: not PEM certificates: {e}")))?
            }
            None => Vec::new(),
        };
        let proxy_of = match proxy {
            Some(url) => Some(reqwest::Proxy::all(url.as_str()).map_err(client_err)?),
            None => None,
        };
        // reqwest keeps one HTTP/2 connection per host and client: H2_CONNECTIONS clients give
        // a far HTTP/2 host that many, each under the server's own stream limit.
        let clients = (0..H2_CONNECTIONS)
            .map(|_| client(timeout, proxy_of.clone(), &certs).map_err(client_err))
            .collect::<Result<Vec<_>, _>>()?;
        let shown = proxy.map(crate::config::validate::masked).or_else(environment_proxy);
        let limit = limits.rate.map(|r| std::sync::Arc::new(RateLimit::new(r)));
        let proxy = shown.map(Into::into);
        let hosts = std::sync::Arc::new(Hosts::new(limits.slots.0, limits.slots.1));
        let (access, slow, clients) = (Default::default(), limits.slow, clients.into());
        Ok(Fetcher { clients, retries, access, proxy, limit, slow, hosts, sources: None, pin: None })
    }

    /// This fetcher (same connection pool) for one mirror or tree: its credentials go with every
    /// request to their origin, and a 401/403 carries the matching hint.
    pub fn for_upstream(&self, access: Access) -> Fetcher {
        Fetcher { access: std::sync::Arc::new(access), sources: None, pin: None, ..self.clone() }
    }

    /// The credentials for `url`, when it is at their origin.
    fn credentials_for(&self, url: &Url) -> Option<&Credentials> {
        self.access.credentials.as_ref().filter(|c| url.origin() == c.origin)
    }

    /// GET into memory, with `If-Modified-Since` when given.
    pub async fn get_conditional(&self, url: &Url, since: Option<i64>) -> Result<Conditional, FetchError> {
        self.with_retries(url, |url, slot| async move { self.get_once(&url, since, MAX_MEMORY_BODY, slot).await }).await
    }

    /// GET into memory; the body may not exceed `cap` bytes.
    pub async fn get(&self, url: &Url, cap: u64) -> Result<Body, FetchError> {
        let got = self.with_retries(url, |url, slot| async move { self.get_once(&url, None, cap, slot).await });
        match got.await? {
            Conditional::Modified(body) => Ok(body),
            Conditional::NotModified => Err(FetchError::Status { url: url.to_string(), status: 304 }),
        }
    }

    /// GET into memory of a file of known size and sha256: a source that serves other bytes is
    /// a bad source, and another one is asked.
    pub async fn get_exact(&self, url: &Url, size: u64, sha256: &Sha256) -> Result<Body, FetchError> {
        let got = self.with_retries(url, |url, slot| async move {
            match self.get_once(&url, None, size, slot).await? {
                Conditional::Modified(body) => check_bytes(&url, body, size, sha256),
                Conditional::NotModified => Err(FetchError::Status { url: url.to_string(), status: 304 }),
            }
        });
        got.await
    }

    /// Streams `url` into the pool: capped at the declared size, hashed while written, renamed into
    /// place only when size and digest match.
    pub async fn download(&self, url: &Url, pool: &Pool, expect: Expect) -> Result<Stored, FetchError> {
        let partial = std::sync::Mutex::new(None);
        let partial = &partial;
        self.with_retries(url, |url, slot| async move { self.download_once(&url, pool, expect, partial, slot).await })
            .await
    }

    async fn send(&self, url: &Url, since: Option<i64>, client: usize) -> Result<reqwest::Response, FetchError> {
        let mut req = self.clients[client % self.clients.len()].get(url.clone());
        if let Some(t) = since {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, http_date(t));
        }
        if let Some(c) = self.credentials_for(url) {
            // reqwest marks the header sensitive: its Debug output hides the value.
            req = req.basic_auth(&c.user, Some(&c.password));
        }
        req.send().await.map_err(|e| transport(url, e))
    }

    fn too_slow(&self, url: &Url, rate: u64) -> FetchError {
        let (min, window) = self.slow.unwrap_or_default();
        FetchError::Slow { url: url.to_string(), rate, min, secs: window.as_secs() }
    }

    /// A success response, or the error for its status.
    fn check_status(&self, url: &Url, resp: reqwest::Response) -> Result<reqwest::Response, FetchError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let (url_text, code) = (url.to_string(), status.as_u16());
        if let (reqwest::StatusCode::PROXY_AUTHENTICATION_REQUIRED, Some(proxy)) = (status, &self.proxy) {
            let hint = format!("the proxy {proxy} wants credentials (user:password in its URL)");
            return Err(FetchError::Denied { url: url_text, status: code, hint });
        }
        if !matches!(status, reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN) {
            return Err(FetchError::Status { url: url_text, status: code });
        }
        let hint = match (self.credentials_for(url), &self.access.credentials) {
            (Some(sent), _) => sent.rejected_hint.clone(),
            (None, Some(kept)) => {
                format!("needs credentials; the subscription key is sent only to {}", kept.origin.ascii_serialization())
            }
            (None, None) => self.access.missing_hint.clone(),
        };
        // A proxy that refuses its credentials may answer 401 itself (tinyproxy does).
        let hint = match (&self.proxy, hint.is_empty()) {
            (Some(proxy), true) => format!("the upstream or the proxy {proxy} refused the request"),
            (Some(proxy), false) => format!("{hint} (or the proxy {proxy} refused its credentials)"),
            (None, _) => hint,
        };
        if hint.is_empty() {
            return Err(FetchError::Status { url: url_text, status: code });
        }
        Err(FetchError::Denied { url: url_text, status: code, hint })
    }

    async fn get_once(
        &self,
        url: &Url,
        since: Option<i64>,
        cap: u64,
        mut slot: Slot,
    ) -> Result<Conditional, FetchError> {
        let resp = self.send(url, since, slot.client).await?;
        slot.answered(resp.version());
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
            slot.finished(0);
            return Ok(Conditional::NotModified);
        }
        let resp = self.check_status(url, resp)?;
        let last_modified = last_modified(&resp);
        let declared = resp.content_length();
        let mut stream = resp.bytes_stream();
        let mut bytes = Vec::new();
        let mut flow = Flow::new(self.limit.as_deref(), self.slow);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| body_error(url, e, bytes.len() as u64, declared))?;
            flow.chunk(chunk.len()).await.map_err(|rate| self.too_slow(url, rate))?;
            if bytes.len() as u64 + chunk.len() as u64 > cap {
                return Err(FetchError::TooLarge { url: url.to_string(), cap });
            }
            bytes.extend_from_slice(&chunk);
        }
        check_complete(url, bytes.len() as u64, declared)?;
        slot.finished(bytes.len() as u64);
        Ok(Conditional::Modified(Body { bytes, last_modified }))
    }
}

/// One reqwest client as every fetcher of the run uses it.
fn client(
    timeout: Duration,
    proxy: Option<reqwest::Proxy>,
    certs: &[reqwest::Certificate],
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder();
    if let Some(proxy) = proxy {
        builder = builder.proxy(proxy.no_proxy(reqwest::NoProxy::from_env()));
    }
    for cert in certs {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder
        // HTTP/2 (negotiated over https): one connection carries every stream, so its
        // flow-control window caps it at window / round trip. hyper's adaptive window
        // stayed near 1 MiB through a 100 ms delay (8 MB/s); fixed windows of H2_WINDOW
        // per connection (a quarter per stream) allow 100 MB/s per connection at 300 ms.
        // Bounded memory: a window is what the server may send ahead of what the pool
        // writer consumed.
        .http2_initial_connection_window_size(H2_WINDOW)
        .http2_initial_stream_window_size(H2_WINDOW / 4)
        .user_agent(concat!("pmirror-fs/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout)
        .read_timeout(timeout)
        // Mirrors talk to one or two hosts; keep plenty of idle connections for the
        // parallel downloads so each one reuses a connection.
        .pool_max_idle_per_host(64)
        .redirect(redirect_policy())
        .build()
}

fn transport(url: &Url, e: reqwest::Error) -> FetchError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    FetchError::Transport { url: url.to_string(), message }
}

/// A body that broke off before its Content-Length is a truncation (retried), named as such.
fn body_error(url: &Url, e: reqwest::Error, got: u64, declared: Option<u64>) -> FetchError {
    match declared {
        Some(expected) if got < expected => {
            tracing::debug!(%url, error = %transport(url, e), "body ended early");
            FetchError::Truncated { url: url.to_string(), got, expected }
        }
        _ => transport(url, e),
    }
}

/// Redirects as apt follows them (methods/basehttp.cc, acquire-item.cc `IsRedirectionLoop`): the
/// same scheme or http → https, any number of hops up to [`MAX_REDIRECTS`], never back to a URL
/// already visited, never from https to http. reqwest drops `Authorization` when the host or port
/// changes; the one scheme change that would keep it on the same host and port in clear text
/// (`https://h:8443/` → `http://h:8443/`) is a downgrade, refused.
/// The proxy of the environment, as reqwest reads it (`http_proxy`, `https_proxy`, `all_proxy`,
/// upper or lower case), password masked; for error messages only.
fn environment_proxy() -> Option<String> {
    let names = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];
    let text = names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))?;
    Some(
        Url::parse(&text).map_or_else(|_| "(from the environment)".to_owned(), |u| crate::config::validate::masked(&u)),
    )
}

fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        if attempt.previous().contains(attempt.url()) {
            let message = format!("redirection loop at {}", attempt.url());
            return attempt.error(message);
        }
        match attempt.previous().last() {
            Some(from) if downgrades(from, attempt.url()) => {
                let message = format!("redirect from https to {} is forbidden (apt refuses it too)", attempt.url());
                attempt.error(message)
            }
            _ => attempt.follow(),
        }
    })
}

/// apt's rule (methods/basehttp.cc): a redirect may keep the scheme or go from http to https;
/// any other change of scheme — https to http above all — is refused. Following http → https
/// on the same host and port keeps credentials, but they then travel encrypted.
fn downgrades(from: &Url, to: &Url) -> bool {
    from.scheme() != to.scheme() && !(from.scheme() == "http" && to.scheme() == "https")
}

/// A body held to its size and sha256.
fn check_bytes(url: &Url, body: Body, size: u64, sha: &Sha256) -> Result<Body, FetchError> {
    let pool = |source| FetchError::Pool { url: url.to_string(), source: Box::new(source) };
    if body.bytes.len() as u64 != size {
        return Err(pool(PoolError::SizeMismatch { expected: size, actual: body.bytes.len() as u64 }));
    }
    let actual = Sha256::of(&body.bytes);
    if actual != *sha {
        return Err(pool(PoolError::HashMismatch { expected: *sha, actual }));
    }
    Ok(body)
}

fn check_complete(url: &Url, got: u64, declared: Option<u64>) -> Result<(), FetchError> {
    match declared {
        Some(expected) if got < expected => Err(FetchError::Truncated { url: url.to_string(), got, expected }),
        _ => Ok(()),
    }
}

fn last_modified(resp: &reqwest::Response) -> Option<i64> {
    let value = resp.headers().get(reqwest::header::LAST_MODIFIED)?.to_str().ok()?;
    match httpdate::parse_http_date(value) {
        Ok(t) => t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs() as i64),
        Err(e) => {
            tracing::debug!(value, error = %e, "unparsable Last-Modified");
            None
        }
    }
}

fn http_date(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    httpdate::fmt_http_date(t)
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;

#[path = "fetch_download.rs"]
mod download;
#[path = "fetch_limit.rs"]
mod limit;
#[path = "fetch_sources.rs"]
mod sources;

pub use limit::Limits;
use limit::{Flow, RateLimit};
use sources::{Hosts, Slot, Sources};
