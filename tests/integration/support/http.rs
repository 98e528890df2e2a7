//! A loopback HTTP/1.1 server for tests: serves an in-memory `Upstream` (swappable atomically,
//! as upstream moving to a new generation) or a directory, counts requests per path, and
//! injects faults per path (error statuses, truncated or oversized bodies, a stall mid-body).
//!
//! GET/HEAD with Content-Length, Last-Modified, If-Modified-Since (304), single byte ranges
//! (206, If-Range), keep-alive, nginx-style autoindex pages for directories, 404 otherwise.
//! Paths under a prefix may require HTTP basic auth (401 without the right credentials, as
//! Proxmox's enterprise repositories answer), and a path may redirect elsewhere (302).
//! One std thread per connection: tests open a handful of connections, and a thread stalled by
//! `delay` must not hold up the others.

use super::fixture::Upstream;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

mod serve;

/// A keep-alive connection idle this long is closed (clients reconnect; threads do not pile up).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server serves.
#[derive(Clone)]
pub enum Source {
    Memory(Arc<RwLock<Upstream>>),
    Dir(PathBuf),
}

/// A fault injected for one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status and an empty body.
    Status(u16),
    /// Declare the full Content-Length, send only this many body bytes, close.
    Truncate(usize),
    /// Serve the content followed by extra bytes (Content-Length matches what is sent), as if
    /// the file were bigger than the index declared.
    Oversize,
    /// Send the headers and half of the body, stall this long, then send the rest.
    Delay(Duration),
    /// Answer 302 with this `Location`.
    Redirect(String),
    /// Send the body `chunk` bytes at a time, sleeping `every` between them (a crawling link).
    Trickle { chunk: usize, every: Duration },
}

#[derive(Debug)]
struct Rule {
    kind: FaultKind,
    /// `None`: until cleared.
    remaining: Option<usize>,
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// Decoded path without the leading `/`.
    pub path: String,
    pub status: u16,
    pub if_modified_since: Option<String>,
    pub range: Option<String>,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
}

/// Basic auth required below a path prefix.
#[derive(Clone, Debug)]
struct AuthRule {
    prefix: String,
    /// `Basic <base64(user:password)>`, as the client must send it.
    header: String,
}

pub(crate) struct State {
    source: RwLock<Source>,
    hits: Mutex<HashMap<String, usize>>,
    log: Mutex<Vec<RequestRecord>>,
    faults: Mutex<HashMap<String, Vec<Rule>>>,
    auth: Mutex<Vec<AuthRule>>,
    /// A header every request must carry (lower case), else 403: `via`, which a proxy adds.
    required_header: Mutex<Option<String>>,
    /// Answer every request whole, `Range` or not (a server without range support).
    pub(crate) no_ranges: AtomicBool,
    shutdown: AtomicBool,
}

pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters and rules stay consistent even if a connection thread panicked mid-update.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn key(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

impl TestServer {
    /// Serve `upstream` from memory.
    pub fn start(upstream: Upstream) -> TestServer {
        Self::start_source(Source::Memory(Arc::new(RwLock::new(upstream))))
    }

    /// Serve an upstream the test keeps a handle on.
    pub fn start_shared(upstream: Arc<RwLock<Upstream>>) -> TestServer {
        Self::start_source(Source::Memory(upstream))
    }

    /// Serve the files under `dir`.
    pub fn start_dir(dir: impl Into<PathBuf>) -> TestServer {
        Self::start_source(Source::Dir(dir.into()))
    }

    fn start_source(source: Source) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("test server: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("test server: local_addr");
        let state = Arc::new(State {
            source: RwLock::new(source),
            hits: Mutex::default(),
            log: Mutex::default(),
            faults: Mutex::default(),
            auth: Mutex::default(),
            required_header: Mutex::default(),
            no_ranges: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
        });
        let st = state.clone();
        let accept = std::thread::Builder::new()
            .name("test-http-accept".into())
            .spawn(move || accept_loop(listener, st))
            .expect("test server: spawn accept thread");
        TestServer { addr, state, accept: Some(accept) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url(), key(path))
    }

    /// Replace what is served, atomically (requests in flight finish with the old bytes).
    pub fn swap(&self, upstream: Upstream) {
        let mut source = self.state.source.write().unwrap_or_else(|p| p.into_inner());
        match &*source {
            Source::Memory(shared) => *shared.write().unwrap_or_else(|p| p.into_inner()) = upstream,
            Source::Dir(_) => *source = Source::Memory(Arc::new(RwLock::new(upstream))),
        }
    }

    /// The served upstream (None when serving a directory), to mutate in place.
    pub fn upstream(&self) -> Option<Arc<RwLock<Upstream>>> {
        match &*self.state.source.read().unwrap_or_else(|p| p.into_inner()) {
            Source::Memory(shared) => Some(shared.clone()),
            Source::Dir(_) => None,
        }
    }

    /// Requests (any method, any outcome) for `path` since start or the last `reset_hits`.
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.state.hits).get(&key(path)).copied().unwrap_or(0)
    }

    pub fn total_hits(&self) -> usize {
        lock(&self.state.hits).values().sum()
    }

    pub fn reset_hits(&self) {
        lock(&self.state.hits).clear();
        lock(&self.state.log).clear();
    }

    /// Every request since start or the last `reset_hits`, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.state.log).clone()
    }

    fn add_rule(&self, path: &str, kind: FaultKind, remaining: Option<usize>) {
        lock(&self.state.faults).entry(key(path)).or_default().push(Rule { kind, remaining });
    }

    /// The next `n` requests for `path` get `status` (then it is served normally).
    pub fn fail_next(&self, path: &str, status: u16, n: usize) {
        self.add_rule(path, FaultKind::Status(status), Some(n));
    }

    /// Every request for `path` gets `status`, until cleared.
    pub fn fail_always(&self, path: &str, status: u16) {
        self.add_rule(path, FaultKind::Status(status), None);
    }

    /// Every GET for `path` sends only `keep` body bytes of the declared length, until cleared.
    pub fn truncate(&self, path: &str, keep: usize) {
        self.add_rule(path, FaultKind::Truncate(keep), None);
    }

    /// The next `n` GETs for `path` are truncated after `keep` bytes.
    pub fn truncate_next(&self, path: &str, keep: usize, n: usize) {
        self.add_rule(path, FaultKind::Truncate(keep), Some(n));
    }

    /// Every GET for `path` serves more bytes than the file has, until cleared.
    pub fn oversize(&self, path: &str) {
        self.add_rule(path, FaultKind::Oversize, None);
    }

    /// The next `n` GETs for `path` send `chunk` bytes every `every` (then a full-speed one).
    pub fn trickle_next(&self, path: &str, chunk: usize, every: Duration, n: usize) {
        self.add_rule(path, FaultKind::Trickle { chunk, every }, Some(n));
    }

    /// Every GET for `path` stalls `dur` half-way through the body, until cleared.
    pub fn delay(&self, path: &str, dur: Duration) {
        self.add_rule(path, FaultKind::Delay(dur), None);
    }

    /// The next `n` requests for `path` are redirected (302) to `location` (an absolute URL).
    pub fn redirect_next(&self, path: &str, location: &str, n: usize) {
        self.add_rule(path, FaultKind::Redirect(location.to_owned()), Some(n));
    }

    /// Every request for a path under `prefix` must carry HTTP basic auth `user:password`;
    /// without it (or with other credentials) it gets 401 before any fault applies.
    pub fn require_basic_auth(&self, prefix: &str, user: &str, password: &str) {
        let header = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        lock(&self.state.auth).push(AuthRule { prefix: key(prefix), header });
    }

    /// Ignore `Range` from now on: every GET is answered 200 with the whole file.
    pub fn ignore_ranges(&self) {
        self.state.no_ranges.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every request must carry header `name` (e.g. `via`: only what came through a proxy is
    /// answered — the direct route is closed); without it, 403.
    pub fn require_header(&self, name: &str) {
        *lock(&self.state.required_header) = Some(name.to_ascii_lowercase());
    }

    pub fn clear_faults(&self, path: &str) {
        lock(&self.state.faults).remove(&key(path));
    }

    pub fn clear_all_faults(&self) {
        lock(&self.state.faults).clear();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.state.shutdown.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag.
        if let Err(e) = TcpStream::connect(self.addr) {
            tracing::warn!(error = %e, "test server: wake-up connect failed");
        }
        if let Some(handle) = self.accept.take() {
            if handle.join().is_err() {
                tracing::warn!("test server: accept thread panicked");
            }
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for stream in listener.incoming() {
        if state.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "test server: accept failed");
                continue;
            }
        };
        let st = state.clone();
        let spawned = std::thread::Builder::new().name("test-http-conn".into()).spawn(move || {
            if let Err(e) = connection(stream, &st) {
                tracing::debug!(error = %e, "test server: connection ended");
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "test server: cannot spawn connection thread");
        }
    }
}

/// A parsed request head.
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub keep_alive: bool,
}

/// Serve requests on one connection until the client closes, asks to close, or idles out.
fn connection(stream: TcpStream, state: &State) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while !state.shutdown.load(Ordering::SeqCst) {
        let Some(req) = read_request(&mut reader)? else { return Ok(()) };
        let keep_open = serve::respond(state, &req, &mut writer)?;
        writer.flush()?;
        if !keep_open || !req.keep_alive {
            return Ok(());
        }
    }
    Ok(())
}

/// Read one request head; `None` at a clean end of stream.
fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad request line {line:?}")));
    };
    let (method, target, version) = (method.to_string(), target.to_string(), version.to_string());
    let mut headers = HashMap::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let connection = headers.get("connection").map(|v| v.to_ascii_lowercase());
    let keep_alive = match version.as_str() {
        "HTTP/1.0" => connection.as_deref() == Some("keep-alive"),
        _ => connection.as_deref() != Some("close"),
    };
    let path = percent_decode(target.split(['?', '#']).next().unwrap_or(""));
    Ok(Some(Request { method, path: key(&path), headers, keep_alive }))
}

/// `%XX` → byte; anything malformed is kept literally.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl State {
    pub(crate) fn source(&self) -> Source {
        self.source.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Count the request.
    pub(crate) fn record_hit(&self, path: &str) {
        *lock(&self.hits).entry(path.to_string()).or_default() += 1;
    }

    /// Whether the request carries the credentials its path requires (if any).
    pub(crate) fn has_required_header(&self, req: &Request) -> bool {
        lock(&self.required_header).as_ref().is_none_or(|name| req.headers.contains_key(name))
    }

    pub(crate) fn authorized(&self, req: &Request) -> bool {
        let rules = lock(&self.auth);
        let sent = req.headers.get("authorization");
        rules.iter().filter(|r| req.path.starts_with(&r.prefix)).all(|r| sent == Some(&r.header))
    }

    /// Take the fault (if any) that applies to a request for `path`.
    pub(crate) fn take_fault(&self, path: &str) -> Option<FaultKind> {
        let mut faults = lock(&self.faults);
        let rule = faults.get_mut(path)?.iter_mut().find(|r| r.remaining != Some(0))?;
        if let Some(n) = &mut rule.remaining {
            *n -= 1;
        }
        Some(rule.kind.clone())
    }

    pub(crate) fn log(&self, req: &Request, status: u16) {
        lock(&self.log).push(RequestRecord {
            method: req.method.clone(),
            path: req.path.clone(),
            status,
            if_modified_since: req.headers.get("if-modified-since").cloned(),
            range: req.headers.get("range").cloned(),
            authorization: req.headers.get("authorization").cloned(),
        });
    }
}

/// Standard base64 with padding (RFC 4648), for the basic-auth header the server expects.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// mtime truncated to whole seconds (what Last-Modified can express).
pub(crate) fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_encoding() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("user:pass", "dXNlcjpwYXNz"),
        ];
        for (input, want) in cases {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn percent_decoding() {
        let cases = [("a%3ab", "a:b"), ("a%3Ab", "a:b"), ("100%", "100%"), ("%zz", "%zz"), ("x%2", "x%2"), ("", "")];
        for (input, want) in cases {
            assert_eq!(percent_decode(input), want, "{input:?}");
        }
    }
}
