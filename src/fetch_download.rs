//! One download into the pool, resumable: the network side feeds a blocking writer thread
//! (hash, write, fsync, rename); a transfer cut off part-way keeps what it wrote, and the next
//! attempt asks for the rest — `Range: bytes=N-` guarded by `If-Range` on the strong ETag (else
//! the Last-Modified) of the part held — and appends it, so the hash covers the whole file
//! however many pieces it came in. A server that answers the ranged request with the whole file
//! (no range support, or the file changed: If-Range failed) starts it over.

use super::limit::Flow;
use super::{body_error, check_complete, last_modified, transport, Expect, FetchError, Fetcher, Stored};
use crate::digest::Sha256;
use crate::pool::{Pool, PoolError, Staging};
use futures_util::StreamExt as _;
use std::sync::Mutex;
use url::Url;

/// What an interrupted attempt left for the next: the staged part and the validator of the
/// response it came from.
pub(super) type Partial = Mutex<Option<(Staging, String)>>;

impl Fetcher {
    pub(super) async fn download_once(
        &self,
        url: &Url,
        pool: &Pool,
        expect: Expect,
        partial: &Partial,
        mut slot: super::Slot,
    ) -> Result<Stored, FetchError> {
        let held = partial.lock().unwrap_or_else(|p| p.into_inner()).take();
        let cap = match expect {
            Expect::Exactly { size, .. } => Some(size),
            Expect::Unverified => None,
        };
        let pool_err = |source| FetchError::Pool { url: url.to_string(), source: Box::new(source) };
        let (resp, staging) = match held {
            Some((staging, validator)) => {
                let from = staging.written();
                let resp = self.check_status(url, self.send_range(url, from, &validator, slot.client).await?)?;
                match resumes_at(&resp) == Some(from) {
                    true => {
                        tracing::info!(%url, from, "resuming a download cut off part-way");
                        (resp, staging)
                    }
                    // The whole file again (no ranges, or it changed): the part held goes.
                    false => (resp, pool.stage(cap).map_err(pool_err)?),
                }
            }
            None => {
                (self.check_status(url, self.send(url, None, slot.client).await?)?, pool.stage(cap).map_err(pool_err)?)
            }
        };
        slot.answered(resp.version());
        let last_modified = last_modified(&resp);
        let validator = validator(&resp);
        let declared = resp.content_length();
        // Hashing, writing, fsync and rename run on a blocking thread fed through a bounded
        // queue: the network side keeps receiving while earlier chunks are hashed and written, so
        // a large download costs max(network, hash + disk) instead of their sum, and the async
        // workers never block on the disk.
        let (tx, rx) = tokio::sync::mpsc::channel(WRITE_QUEUE_CHUNKS);
        let writer = tokio::task::spawn_blocking(move || write_staged(staging, rx, expect));
        let flow = Flow::new(self.limit.as_deref(), self.slow);
        let received = forward_body(url, resp, &tx, declared, flow).await.map_err(|e| match e {
            Forward::Slow(rate) => self.too_slow(url, rate),
            Forward::Fetch(e) => e,
        });
        let finished = match received {
            Ok(()) => tx.send(Chunk::Done).await.is_ok(),
            Err(_) => false,
        };
        drop(tx);
        let written = writer.await.map_err(|e| pool_err(PoolError::Task(e.to_string())))?;
        if let Err(e) = received {
            // Cut off part-way: keep the part for the next attempt when it can be resumed safely.
            if let (Err(stopped), Some(validator)) = (written, validator) {
                if let (PoolError::Aborted, Some(staging)) = *stopped {
                    if staging.written() > 0 && e.is_transient() {
                        *partial.lock().unwrap_or_else(|p| p.into_inner()) = Some((staging, validator));
                    }
                }
            }
            return Err(e);
        }
        match (written, finished) {
            (Ok((sha256, size)), true) => {
                slot.finished(size);
                Ok(Stored { sha256, size, last_modified })
            }
            (Err(stopped), _) => Err(pool_err(stopped.0)),
            // The writer commits only after Done; without it it returns Aborted. Kept total.
            (Ok(_), false) => Err(pool_err(PoolError::Aborted)),
        }
    }

    /// GET of `url` from byte `from` on, if the file is still the one `validator` names.
    async fn send_range(
        &self,
        url: &Url,
        from: u64,
        validator: &str,
        client: usize,
    ) -> Result<reqwest::Response, FetchError> {
        let mut req = self.clients[client % self.clients.len()].get(url.clone());
        req = req.header(reqwest::header::RANGE, format!("bytes={from}-"));
        req = req.header(reqwest::header::IF_RANGE, validator);
        if let Some(c) = self.credentials_for(url) {
            req = req.basic_auth(&c.user, Some(&c.password));
        }
        req.send().await.map_err(|e| transport(url, e))
    }
}

/// Where a 206's `Content-Range: bytes A-B/N` starts; `None` for anything else (a 200).
fn resumes_at(resp: &reqwest::Response) -> Option<u64> {
    if resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
        return None;
    }
    let range = resp.headers().get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    range.strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// What `If-Range` may carry for this response: a strong ETag, else its Last-Modified (a weak
/// ETag may not be used; without either, a cut transfer starts over).
fn validator(resp: &reqwest::Response) -> Option<String> {
    let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match header(reqwest::header::ETAG) {
        Some(tag) if !tag.starts_with("W/") => Some(tag),
        _ => header(reqwest::header::LAST_MODIFIED),
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
    mut flow: Flow<'_>,
) -> Result<(), Forward> {
    let mut received = 0u64;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Forward::Fetch(body_error(url, e, received, declared)))?;
        flow.chunk(chunk.len()).await.map_err(Forward::Slow)?;
        received += chunk.len() as u64;
        if tx.send(Chunk::Data(chunk)).await.is_err() {
            // The writer refused a chunk (over the declared size); its error is the one to report.
            return Ok(());
        }
    }
    check_complete(url, received, declared).map_err(Forward::Fetch)
}

/// Why [`forward_body`] stopped.
enum Forward {
    Fetch(FetchError),
    /// The slow-transfer guard: the rate it had.
    Slow(u64),
}

/// The writer thread: hash and write every chunk, then commit on `Done`. A queue closed without
/// `Done` (the transfer broke off) hands the staged part back for a resume; a write error drops
/// it (removing the file).
fn write_staged(
    mut staging: Staging,
    mut rx: tokio::sync::mpsc::Receiver<Chunk>,
    expect: Expect,
) -> Result<(Sha256, u64), WriteError> {
    while let Some(chunk) = rx.blocking_recv() {
        match chunk {
            Chunk::Data(bytes) => staging.write_all(&bytes).map_err(|e| Box::new((e, None)))?,
            Chunk::Done => {
                let committed = match expect {
                    Expect::Exactly { size, sha256 } => staging.commit(size, &sha256).map(|()| (sha256, size)),
                    Expect::Unverified => staging.commit_unverified(),
                };
                return committed.map_err(|e| Box::new((e, None)));
            }
        }
    }
    Err(Box::new((PoolError::Aborted, Some(staging))))
}

/// Why the writer stopped, with the staged part when it can be resumed.
type WriteError = Box<(PoolError, Option<Staging>)>;
