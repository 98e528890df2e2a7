//! HTTP access to upstream: one pooled `reqwest` client (rustls, keep-alive), timeouts, retries with
//! backoff for transient failures, conditional requests, and streaming downloads into the pool's
//! staging area with the size cap and hash check applied while the bytes arrive.
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

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: truncated body: got {got} of {expected} bytes")]
    Truncated { url: String, got: u64, expected: u64 },
    #[error("{url}: {source}")]
    Pool { url: String, source: Box<PoolError> },
}

impl FetchError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::Status { status: 404 | 410, .. })
    }

    /// Transient failures worth another attempt: 5xx, 408/429, resets, timeouts, truncated bodies.
    /// Never a 404 or a hash/size mismatch (the file is what it is).
    fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            FetchError::Transport { .. } | FetchError::Truncated { .. } => true,
            FetchError::Pool { .. } => false,
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

#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    retries: u32,
}

impl Fetcher {
    pub fn new(timeout: Duration, retries: u32) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("pmirror-fs/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .read_timeout(timeout)
            // Mirrors talk to one or two hosts; keep plenty of idle connections for the
            // parallel downloads so each one reuses a connection.
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| FetchError::Transport { url: "(client)".to_owned(), message: e.to_string() })?;
        Ok(Fetcher { client, retries })
    }

    /// GET into memory, with `If-Modified-Since` when given.
    pub async fn get_conditional(&self, url: &Url, since: Option<i64>) -> Result<Conditional, FetchError> {
        self.with_retries(url, || self.get_once(url, since, MAX_MEMORY_BODY)).await
    }

    /// GET into memory; the body may not exceed `cap` bytes.
    pub async fn get(&self, url: &Url, cap: u64) -> Result<Body, FetchError> {
        match self.with_retries(url, || self.get_once(url, None, cap)).await? {
            Conditional::Modified(body) => Ok(body),
            Conditional::NotModified => Err(FetchError::Status { url: url.to_string(), status: 304 }),
        }
    }

    /// Streams `url` into the pool: capped at the declared size, hashed while written, renamed into
    /// place only when size and digest match.
    pub async fn download(&self, url: &Url, pool: &Pool, expect: Expect) -> Result<Stored, FetchError> {
        self.with_retries(url, || self.download_once(url, pool, expect)).await
    }

    async fn with_retries<T, F, Fut>(&self, url: &Url, mut attempt: F) -> Result<T, FetchError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, FetchError>>,
    {
        let mut delay = BACKOFF_BASE;
        let mut tries = 0;
        loop {
            match attempt().await {
                Err(e) if e.is_transient() && tries < self.retries => {
                    tries += 1;
                    tracing::warn!(%url, error = %e, attempt = tries, "transient failure, retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
    }

    async fn send(&self, url: &Url, since: Option<i64>) -> Result<reqwest::Response, FetchError> {
        let mut req = self.client.get(url.clone());
        if let Some(t) = since {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, http_date(t));
        }
        req.send().await.map_err(|e| transport(url, e))
    }

    async fn get_once(&self, url: &Url, since: Option<i64>, cap: u64) -> Result<Conditional, FetchError> {
        let resp = self.send(url, since).await?;
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Conditional::NotModified);
        }
        let resp = check_status(url, resp)?;
        let last_modified = last_modified(&resp);
        let declared = resp.content_length();
        let mut stream = resp.bytes_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| body_error(url, e, bytes.len() as u64, declared))?;
            if bytes.len() as u64 + chunk.len() as u64 > cap {
                return Err(FetchError::Pool {
                    url: url.to_string(),
                    source: Box::new(PoolError::TooLarge { expected: cap }),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        check_complete(url, bytes.len() as u64, declared)?;
        Ok(Conditional::Modified(Body { bytes, last_modified }))
    }

    async fn download_once(&self, url: &Url, pool: &Pool, expect: Expect) -> Result<Stored, FetchError> {
        let resp = check_status(url, self.send(url, None).await?)?;
        let last_modified = last_modified(&resp);
        let declared = resp.content_length();
        let cap = match expect {
            Expect::Exactly { size, .. } => Some(size),
            Expect::Unverified => None,
        };
        let pool_err = |source| FetchError::Pool { url: url.to_string(), source: Box::new(source) };
        let staging = pool.stage(cap).map_err(pool_err)?;
        // Hashing, writing, fsync and rename run on a blocking thread fed through a bounded
        // queue: the network side keeps receiving while earlier chunks are hashed and written, so
        // a large download costs max(network, hash + disk) instead of their sum, and the async
        // workers never block on the disk.
        let (tx, rx) = tokio::sync::mpsc::channel(WRITE_QUEUE_CHUNKS);
        let writer = tokio::task::spawn_blocking(move || write_staged(staging, rx, expect));
        let received = forward_body(url, resp, &tx, declared).await;
        let finished = match received {
            Ok(()) => tx.send(Chunk::Done).await.is_ok(),
            Err(_) => false,
        };
        drop(tx);
        let written =
            writer.await.map_err(|e| FetchError::Transport { url: url.to_string(), message: e.to_string() })?;
        received?;
        match (written, finished) {
            (Ok((sha256, size)), true) => Ok(Stored { sha256, size, last_modified }),
            (Err(e), _) => Err(pool_err(e)),
            // The writer commits only after Done; without it it returns Aborted. Kept total.
            (Ok(_), false) => Err(pool_err(PoolError::Aborted)),
        }
    }
}

/// Chunks between the network side and the writer thread of one download.
enum Chunk {
    Data(bytes::Bytes),
    /// The body arrived complete: commit (a closed queue without it aborts).
    Done,
}

/// Chunks queued per download (reqwest yields ≤ 16 KiB–1 MiB chunks): enough to ride over a disk
/// stall without letting a fast network fill memory.
const WRITE_QUEUE_CHUNKS: usize = 16;

/// Sends the body's chunks to the writer; stops early when the writer gave up (cap exceeded).
async fn forward_body(
    url: &Url,
    resp: reqwest::Response,
    tx: &tokio::sync::mpsc::Sender<Chunk>,
    declared: Option<u64>,
) -> Result<(), FetchError> {
    let mut received = 0u64;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(url, e, received, declared))?;
        received += chunk.len() as u64;
        if tx.send(Chunk::Data(chunk)).await.is_err() {
            // The writer refused a chunk (over the declared size); its error is the one to report.
            return Ok(());
        }
    }
    check_complete(url, received, declared)
}

/// The writer thread: hash and write every chunk, then commit on `Done`; anything else drops the
/// staging file (removing it).
fn write_staged(
    mut staging: crate::pool::Staging,
    mut rx: tokio::sync::mpsc::Receiver<Chunk>,
    expect: Expect,
) -> Result<(Sha256, u64), PoolError> {
    while let Some(chunk) = rx.blocking_recv() {
        match chunk {
            Chunk::Data(bytes) => staging.write_all(&bytes)?,
            Chunk::Done => {
                return match expect {
                    Expect::Exactly { size, sha256 } => staging.commit(size, &sha256).map(|()| (sha256, size)),
                    Expect::Unverified => staging.commit_unverified(),
                }
            }
        }
    }
    Err(PoolError::Aborted)
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

fn check_status(url: &Url, resp: reqwest::Response) -> Result<reqwest::Response, FetchError> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(FetchError::Status { url: url.to_string(), status: resp.status().as_u16() })
    }
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
