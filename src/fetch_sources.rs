//! Where each request goes: the sources of one mirror or tree, and the connection slots of each
//! host.
//!
//! **Sources.** A mirror or tree may list several base URLs serving the same content (its own
//! first). Everything is verified against the publisher's signature and the hashes it signs, so
//! any of them is safe to fetch from: a request for a path under the first base is tried on each
//! usable source in turn until one answers with the right bytes. Connection errors, timeouts,
//! 5xx, 404, slow transfers and hash or size mismatches fail over; a source that served bad
//! bytes is not used again for the run, one that failed to answer is tried only when the others
//! failed too, and one whose InRelease is not the chosen one (stale, or not heard in time) never
//! serves the run's metadata (paths under `dists/` of an apt mirror). What happened to each
//! source is kept as notes for the run's warnings. Work goes to the first source in order with a
//! slot free, so several sources share it — except one whose connections are [`SLOWER`] times
//! slower than another's (the best rate a transfer of 64 KiB or more reached): it only takes
//! over when the faster ones fail.
//!
//! **Slots.** Every request holds a slot of its host (origin) from before it is sent until its
//! body has arrived. A host starts with `concurrency` slots. When it answers in HTTP/2 its slots
//! grow to [`H2_STREAMS`]: streams multiplexed over the one connection each of the fetcher's
//! [`super::H2_CONNECTIONS`] clients keeps per host, so latency costs one round trip per batch
//! instead of one per file, on at most that many connections. Over HTTP/1.1 each slot is a connection; they grow by half, up to
//! `max-concurrency`, each time as many transfers in a row as there are slots were
//! latency-bound: the answer took longer than the body and at least [`LATENCY_BOUND`]. A
//! bandwidth-bound transfer resets the count, so a near or saturated upstream keeps its
//! `concurrency` connections. Slots never shrink within a run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

/// Requests in flight to one host that answers in HTTP/2: 100 streams on each of
/// [`super::H2_CONNECTIONS`] connections (nginx allows 128 concurrent streams per connection by
/// default; a server's own SETTINGS limit is honoured below this).
pub(super) const H2_STREAMS: usize = 100 * super::H2_CONNECTIONS;
/// A transfer whose answer took at least this long (and longer than its body) waited on the
/// round trip, not on bandwidth: only then do plain-http connections grow. A host nearer than
/// this is served well by `concurrency` connections.
pub(super) const LATENCY_BOUND: Duration = Duration::from_millis(25);
/// Transfers at least this big say how fast a connection to the host is.
const RATE_SAMPLE: u64 = 64 << 10;
/// A source whose connections are this many times slower than another's takes no work while
/// that one can: with as many slots it would add at most a fifth of the capacity, and hold the
/// files it took (an ISO at its speed) long after the fast one is done. It is still failed
/// over to.
const SLOWER: f64 = 4.0;

/// The slots of every host of a run, shared by all its fetchers.
pub(super) struct Hosts {
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    start: usize,
    max_h1: usize,
}

impl Hosts {
    pub(super) fn new(start: usize, max_h1: usize) -> Hosts {
        Hosts { gates: Mutex::new(HashMap::new()), start: start.max(1), max_h1: max_h1.max(start).max(1) }
    }

    pub(super) fn gate(&self, url: &Url) -> Arc<Gate> {
        let key = url.origin().ascii_serialization();
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates.entry(key).or_insert_with(|| Arc::new(Gate::new(self.start, self.max_h1))).clone()
    }

    /// The most slots any host reached (for the run's log).
    pub(super) fn widest(&self) -> Vec<(String, usize, bool)> {
        let gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates.iter().map(|(k, g)| (k.clone(), g.size.load(Ordering::Relaxed), g.h2.load(Ordering::Relaxed))).collect()
    }
}

/// One host's slots.
pub(super) struct Gate {
    sem: Arc<Semaphore>,
    size: AtomicUsize,
    max_h1: usize,
    h2: AtomicBool,
    /// Latency-bound HTTP/1.1 transfers in a row.
    waiting: AtomicUsize,
    /// The next client (connection) an HTTP/2 request goes to.
    next: AtomicUsize,
    /// The best bytes per second one transfer of at least RATE_SAMPLE reached: what a
    /// connection to the host can do (an average would follow this machine's own load, which
    /// slows every source alike).
    rate: Mutex<Option<f64>>,
    grow: Mutex<()>,
}

impl Gate {
    fn new(start: usize, max_h1: usize) -> Gate {
        Gate {
            sem: Arc::new(Semaphore::new(start)),
            size: AtomicUsize::new(start),
            max_h1,
            h2: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            rate: Mutex::new(None),
            grow: Mutex::new(()),
        }
    }

    pub(super) fn try_slot(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.sem.clone().try_acquire_owned().ok()?;
        let client = self.client();
        Some(Slot { permit: Arc::new(permit), gate: self.clone(), client, sent: Instant::now(), answered: None })
    }

    pub(super) async fn slot(self: Arc<Self>) -> Slot {
        // The semaphore is never closed.
        let permit = self.sem.clone().acquire_owned().await.expect("slots are never closed");
        let client = self.client();
        Slot { permit: Arc::new(permit), gate: self, client, sent: Instant::now(), answered: None }
    }

    /// Plain http (and a host not heard yet) uses the first client: its connections are the
    /// slots; HTTP/2 requests go round the clients, one connection each.
    fn client(&self) -> usize {
        match self.h2.load(Ordering::Relaxed) {
            true => self.next.fetch_add(1, Ordering::Relaxed) % super::H2_CONNECTIONS,
            false => 0,
        }
    }

    fn widen_to(&self, size: usize) {
        let _one = self.grow.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.size.load(Ordering::Relaxed);
        if size > now {
            self.sem.add_permits(size - now);
            self.size.store(size, Ordering::Relaxed);
            tracing::debug!(slots = size, h2 = self.h2.load(Ordering::Relaxed), "more requests in flight to this host");
        }
    }

    fn answered(&self, version: reqwest::Version) {
        if version == reqwest::Version::HTTP_2 && !self.h2.swap(true, Ordering::Relaxed) {
            self.widen_to(H2_STREAMS);
        }
    }

    /// Per-connection bytes per second, when known.
    fn rate(&self) -> Option<f64> {
        *self.rate.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn finished(&self, waited: Duration, body: Duration, bytes: u64) {
        let secs = (waited + body).as_secs_f64();
        if bytes >= RATE_SAMPLE && secs > 0.0 {
            let sample = bytes as f64 / secs;
            let mut rate = self.rate.lock().unwrap_or_else(|p| p.into_inner());
            *rate = Some(rate.map_or(sample, |r| r.max(sample)));
        }
        if self.h2.load(Ordering::Relaxed) {
            return;
        }
        if waited < LATENCY_BOUND || waited < body {
            self.waiting.store(0, Ordering::Relaxed);
            return;
        }
        let size = self.size.load(Ordering::Relaxed);
        if self.waiting.fetch_add(1, Ordering::Relaxed) + 1 >= size && size < self.max_h1 {
            self.waiting.store(0, Ordering::Relaxed);
            self.widen_to((size + size.div_ceil(2)).min(self.max_h1));
        }
    }
}

/// A request's hold on its host, from before sending until the body is in.
pub(super) struct Slot {
    permit: Arc<OwnedSemaphorePermit>,
    gate: Arc<Gate>,
    /// Which of the fetcher's clients sends it.
    pub(super) client: usize,
    sent: Instant,
    answered: Option<Instant>,
}

impl Slot {
    /// The response head arrived, in this HTTP version.
    pub(super) fn answered(&mut self, version: reqwest::Version) {
        self.answered = Some(Instant::now());
        self.gate.answered(version);
    }

    /// The body (`bytes`) arrived whole.
    pub(super) fn finished(self, bytes: u64) {
        if let Some(at) = self.answered {
            self.gate.finished(at - self.sent, at.elapsed(), bytes);
        }
    }
}

/// What the run learned of one source.
#[derive(Clone, Debug, Default)]
struct State {
    /// It served bad bytes (why): not used again this run.
    bad: Option<String>,
    /// Not to serve this run's metadata (why): its InRelease is stale, differs or was not heard.
    not_metadata: Option<String>,
    /// It failed to answer: tried only when the others failed too.
    down: bool,
}

/// The sources of one mirror or tree.
pub(super) struct Sources {
    bases: Vec<Url>,
    /// Paths below a base that are metadata (`dists/` of an apt mirror; none for a tree).
    metadata: Option<&'static str>,
    state: Mutex<Vec<State>>,
    notes: Mutex<Vec<String>>,
}

impl Sources {
    pub(super) fn new(bases: Vec<Url>, metadata: Option<&'static str>) -> Sources {
        let state = Mutex::new(vec![State::default(); bases.len()]);
        Sources { bases, metadata, state, notes: Mutex::new(Vec::new()) }
    }

    pub(super) fn len(&self) -> usize {
        self.bases.len()
    }

    pub(super) fn base(&self, i: usize) -> &Url {
        &self.bases[i]
    }

    /// `url` on source `i`, when it is below the first base.
    fn on(&self, url: &Url, i: usize) -> Option<Url> {
        let rel = url.as_str().strip_prefix(self.bases[0].as_str())?;
        self.bases[i].join(rel).ok()
    }

    /// Sources to try for `url` that were not tried yet: the usable ones that answer, in
    /// configured order, else those that failed to answer before. Only `pin` when pinned.
    pub(super) fn candidates(&self, url: &Url, tried: &[usize], pin: Option<usize>) -> Vec<(usize, Url)> {
        let on = |i: usize| self.on(url, i).map(|u| (i, u));
        if let Some(i) = pin {
            return if tried.contains(&i) { Vec::new() } else { on(i).into_iter().collect() };
        }
        let Some(rel) = url.as_str().strip_prefix(self.bases[0].as_str()) else {
            return if tried.is_empty() { vec![(0, url.clone())] } else { Vec::new() };
        };
        let metadata = self.metadata.is_some_and(|prefix| rel.starts_with(prefix));
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let usable: Vec<usize> = (0..self.bases.len())
            .filter(|i| !tried.contains(i) && state[*i].bad.is_none())
            .filter(|i| !(metadata && state[*i].not_metadata.is_some()))
            .collect();
        let up: Vec<usize> = usable.iter().copied().filter(|i| !state[*i].down).collect();
        let chosen = if up.is_empty() { usable } else { up };
        chosen.into_iter().filter_map(on).collect()
    }

    /// Source `i` failed with `e` on `url`.
    pub(super) fn failed(&self, i: usize, url: &Url, e: &super::FetchError) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if bad_bytes(e) && self.bases.len() > 1 && state[i].bad.is_none() {
            let why = format!("served a bad file: {e}");
            self.note(format!("source {}: not used again this run: {why}", self.bases[i]));
            state[i].bad = Some(why);
        } else if e.is_transient() && !state[i].down {
            tracing::info!(source = %self.bases[i], %url, error = %e, "source failed; trying the next one first from now on");
            state[i].down = true;
        }
    }

    /// Source `i` serves another InRelease than the one chosen (or none in time): `why`.
    pub(super) fn not_for_metadata(&self, i: usize, why: String) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.note(format!("source {}: not used for this run's metadata: {why}", self.bases[i]));
        state[i].not_metadata = Some(why);
    }

    /// Source `i` served a signed file that does not verify: `why`.
    pub(super) fn bad(&self, i: usize, why: String) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.note(format!("source {}: not used again this run: {why}", self.bases[i]));
        state[i].bad = Some(why);
    }

    fn note(&self, line: String) {
        tracing::warn!("{line}");
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }

    pub(super) fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Bytes that are not what the signed lists say: the source is not to be trusted again.
pub(super) fn bad_bytes(e: &super::FetchError) -> bool {
    use crate::pool::PoolError;
    match e {
        super::FetchError::Pool { source, .. } => {
            matches!(
                **source,
                PoolError::HashMismatch { .. } | PoolError::SizeMismatch { .. } | PoolError::TooLarge { .. }
            )
        }
        super::FetchError::TooLarge { .. } => true,
        _ => false,
    }
}

/// Whether another source may answer where this one failed: anything but a local failure
/// (the pool's disk, a cancelled task).
pub(super) fn fails_over(e: &super::FetchError) -> bool {
    match e {
        super::FetchError::Pool { .. } => bad_bytes(e),
        _ => true,
    }
}

impl super::Fetcher {
    /// This fetcher with `bases` as its sources, the first its own URL (`metadata`: the path
    /// prefix of an apt mirror's metadata). One base is the same as none.
    pub fn with_sources(&self, bases: Vec<Url>, metadata: Option<&'static str>) -> super::Fetcher {
        let sources = (bases.len() > 1).then(|| Arc::new(Sources::new(bases, metadata)));
        super::Fetcher { sources, pin: None, ..self.clone() }
    }

    /// How many sources requests can go to (at least one).
    pub fn source_count(&self) -> usize {
        self.sources.as_ref().map_or(1, |s| s.len())
    }

    /// Base URL of source `i` (none without sources).
    pub fn source(&self, i: usize) -> Option<&Url> {
        self.sources.as_ref().filter(|s| i < s.len()).map(|s| s.base(i))
    }

    /// This fetcher held to source `i`: no failover.
    pub fn pinned(&self, i: usize) -> super::Fetcher {
        super::Fetcher { pin: Some(i), ..self.clone() }
    }

    /// Source `i` is not to serve the run's metadata, for `why`.
    pub fn source_not_for_metadata(&self, i: usize, why: String) {
        if let Some(s) = &self.sources {
            s.not_for_metadata(i, why);
        }
    }

    /// Source `i` served a bad signed file (`why`): not used again this run.
    pub fn source_bad(&self, i: usize, why: String) {
        if let Some(s) = &self.sources {
            s.bad(i, why);
        }
    }

    /// What the run found about its sources, one line each (for the run's warnings).
    pub fn source_notes(&self) -> Vec<String> {
        self.sources.as_ref().map_or_else(Vec::new, |s| s.notes())
    }

    /// Hosts whose requests in flight grew past `concurrency`: (origin, slots, HTTP/2).
    pub fn widened_hosts(&self, start: usize) -> Vec<(String, usize, bool)> {
        self.hosts.widest().into_iter().filter(|(_, n, _)| *n > start).collect()
    }

    /// Runs `attempt` on a source of `url` until one succeeds; transient failures of every
    /// source are retried with backoff (`retries` rounds) — at once when the transfer made
    /// progress (a cut connection resumes without waiting).
    pub(super) async fn with_retries<T, F, Fut>(&self, url: &Url, mut attempt: F) -> Result<T, super::FetchError>
    where
        F: FnMut(Url, Slot) -> Fut,
        Fut: std::future::Future<Output = Result<T, super::FetchError>>,
    {
        let mut delay = super::BACKOFF_BASE;
        let mut tries = 0;
        loop {
            match self.round(url, &mut attempt).await {
                Err(e) if e.is_transient() && tries < self.retries => {
                    tries += 1;
                    let progressed = matches!(e, super::FetchError::Truncated { got, .. } if got > 0);
                    tracing::warn!(%url, error = %e, attempt = tries, progressed, "transient failure, retrying");
                    if !progressed {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
                other => return other,
            }
        }
    }

    /// One try on each source that may serve `url`, the first that succeeds wins. The error
    /// reported: a transient one when there was one (another round may help), else the first.
    async fn round<T, F, Fut>(&self, url: &Url, attempt: &mut F) -> Result<T, super::FetchError>
    where
        F: FnMut(Url, Slot) -> Fut,
        Fut: std::future::Future<Output = Result<T, super::FetchError>>,
    {
        let mut tried = Vec::new();
        let mut failed: Option<super::FetchError> = None;
        while let Some((i, target, slot)) = self.pick(url, &tried).await {
            tried.push(i);
            // The slot stays taken until the failure is noted: no other request picks a source
            // in the moment between its bad answer and its being marked.
            let hold = slot.permit.clone();
            match attempt(target.clone(), slot).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if let Some(s) = &self.sources {
                        s.failed(i, &target, &e);
                    }
                    drop(hold);
                    if !fails_over(&e) {
                        return Err(e);
                    }
                    if failed.as_ref().is_none_or(|f| e.is_transient() && !f.is_transient()) {
                        failed = Some(e);
                    }
                }
            }
        }
        Err(failed.unwrap_or_else(|| super::FetchError::NoSource { url: url.to_string() }))
    }

    /// The next source to try for `url` and a slot on its host: the first in order with a slot
    /// free, else whichever frees one first — if it is still usable then (it may have served a
    /// bad file meanwhile).
    async fn pick(&self, url: &Url, tried: &[usize]) -> Option<(usize, Url, Slot)> {
        loop {
            let targets = self.targets(url, tried);
            let mut gates: Vec<Arc<Gate>> = targets.iter().map(|(_, t)| self.hosts.gate(t)).collect();
            let targets = without_slow(targets, &mut gates);
            for ((i, t), g) in targets.iter().zip(&gates) {
                if let Some(slot) = g.try_slot() {
                    return Some((*i, t.clone(), slot));
                }
            }
            if targets.is_empty() {
                return None;
            }
            let waits = gates.into_iter().enumerate().map(|(k, g)| Box::pin(async move { (k, g.slot().await) }));
            let ((k, slot), _, _) = futures_util::future::select_all(waits).await;
            let (i, target) = targets.into_iter().nth(k).expect("a target per gate");
            if self.targets(url, tried).iter().any(|(j, _)| *j == i) {
                return Some((i, target, slot));
            }
        }
    }

    fn targets(&self, url: &Url, tried: &[usize]) -> Vec<(usize, Url)> {
        match &self.sources {
            None if tried.is_empty() => vec![(0, url.clone())],
            None => Vec::new(),
            Some(s) => s.candidates(url, tried, self.pin),
        }
    }
}

/// `targets` without those [`SLOWER`] times slower per connection than the fastest known one.
fn without_slow(targets: Vec<(usize, Url)>, gates: &mut Vec<Arc<Gate>>) -> Vec<(usize, Url)> {
    let rates: Vec<Option<f64>> = gates.iter().map(|g| g.rate()).collect();
    let Some(best) = rates.iter().flatten().copied().reduce(f64::max) else { return targets };
    let keep: Vec<bool> = rates.iter().map(|r| r.is_none_or(|r| r * SLOWER >= best)).collect();
    let mut k = keep.iter();
    gates.retain(|_| *k.next().expect("a rate per gate"));
    targets.into_iter().zip(keep).filter(|(_, k)| *k).map(|(t, _)| t).collect()
}

#[cfg(test)]
#[path = "fetch_sources_tests.rs"]
mod tests;
