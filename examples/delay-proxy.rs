//! delay-proxy: a userspace TCP relay standing in for a long-distance network (the test machines'
//! kernels have no netem). Used by `scripts/bench-network.sh` and by tests that need latency, a
//! per-connection bandwidth cap or a connection dropped mid-download.
//!
//! ```text
//! delay-proxy --listen 127.0.0.1:0 --to 127.0.0.1:PORT [--delay-ms N] [--rate BYTES_PER_SEC]
//!     [--cut N1,N2,...] [--cut-any N1,N2,...] [--log FILE] [--no-connect-delay]
//! ```
//!
//! Once bound it prints one line, `listening on 127.0.0.1:PORT`, to stdout, then serves until
//! killed.
//!
//! - `--delay-ms N`: one-way delay added to each direction (the RTT grows by 2N). Each direction
//!   is a timed queue: bytes read at time t are written at t + N, pipelined, so a bulk transfer
//!   runs at full speed after the first N ms (up to `QUEUE_MAX` bytes in flight per direction,
//!   i.e. ≥ 64 MiB / N of throughput per connection).
//! - The TCP handshake with the proxy is local (the kernel answers the SYN at once), so a client
//!   would save the handshake's RTT. Unless `--no-connect-delay` is given, the proxy charges it:
//!   nothing the client sends is forwarded before accept + 3N (the client could have sent its first
//!   byte at accept + 2N on a real link, which arrives N later). Time to first byte is then
//!   2 RTT, as on a real network: handshake, then request/response.
//! - `--rate R`: per-connection cap on the upstream→client direction, in bytes/s (token bucket
//!   with a 20 ms burst, written in 10 ms slices).
//! - `--cut N1,N2,...`: the k-th accepted connection (1-based) is cut after it has forwarded N_k
//!   bytes upstream→client: the client gets a FIN there (its further data is read and dropped),
//!   the upstream connection is shut down. An entry `-` means "do not cut this one"; connections
//!   beyond the list are not cut.
//! - `--cut-any N1,N2,...`: the first connection whose upstream→client bytes reach N1 is cut
//!   there, then the first to reach N2 (another one, or a reused connection counting all it carried
//!   so far), and so on: a big download cut at given points whichever connection carries it (a
//!   client may open its connections in any order, or resume on a pooled one). A connection with
//!   its own `--cut` entry is left to that.
//! - `--log FILE`: on each connection close, appends `conn K up=BYTES down=BYTES cut=yes|no`
//!   (up = client→upstream bytes forwarded, down = upstream→client).
//!
//! Threads, not tokio (the crate's tokio has no "net" feature): five small threads per connection
//! (a supervisor, and a reader and a writer per direction). EOF in one direction is passed on as
//! shutdown(Write) after the delay; an error on either socket aborts that connection only.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: delay-proxy --listen ADDR --to ADDR [--delay-ms N] [--rate BYTES_PER_SEC] \
                     [--cut N1,N2,...] [--cut-any N1,N2,...] [--log FILE] [--no-connect-delay]";
/// Bytes a reader asks for at once.
const READ_CHUNK: usize = 64 << 10;
/// Most bytes queued (in flight) per direction; the reader blocks beyond it (backpressure).
const QUEUE_MAX: usize = 64 << 20;
/// Least queue per direction, whatever the delay and rate.
const QUEUE_MIN: usize = 1 << 20;
/// Throughput assumed for sizing an uncapped direction's queue (bytes/s).
const ASSUMED_RATE: f64 = 1e9;
/// How long a cut connection's client may keep sending before the proxy gives up on it.
const CUT_LINGER: Duration = Duration::from_secs(5);
const THREAD_STACK: usize = 256 << 10;

struct Opts {
    listen: String,
    to: SocketAddr,
    delay: Duration,
    rate: Option<f64>,
    cuts: Vec<Option<u64>>,
    /// `--cut-any`: the cut points not reached yet, in order.
    cut_any: Mutex<VecDeque<u64>>,
    log: Option<Mutex<File>>,
    connect_delay: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut to, mut delay_ms, mut rate, mut cuts, mut log) = (None, None, 0u64, None, vec![], None);
    let mut cut_any = VecDeque::new();
    let mut connect_delay = true;
    while let Some(arg) = args.next() {
        if arg == "--no-connect-delay" {
            connect_delay = false;
            continue;
        }
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{arg} {v}: {e}"));
        match arg.as_str() {
            "--listen" => listen = Some(value),
            "--to" => to = Some(value.parse::<SocketAddr>().map_err(|e| format!("--to {value}: {e}"))?),
            "--delay-ms" => delay_ms = num(&value)?,
            "--rate" => rate = Some(num(&value)?.max(1) as f64),
            "--cut" => {
                cuts = value
                    .split(',')
                    .map(|v| if v == "-" { Ok(None) } else { num(v).map(Some) })
                    .collect::<Result<_, _>>()?
            }
            "--cut-any" => cut_any = value.split(',').map(num).collect::<Result<_, _>>()?,
            "--log" => {
                let file = OpenOptions::new().create(true).append(true).open(&value);
                log = Some(Mutex::new(file.map_err(|e| format!("--log {value}: {e}"))?));
            }
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    Ok(Opts {
        listen: listen.ok_or("--listen is required")?,
        to: to.ok_or("--to is required")?,
        delay: Duration::from_millis(delay_ms),
        rate,
        cuts,
        cut_any: Mutex::new(cut_any),
        log,
        connect_delay,
    })
}

fn main() {
    let opts = match parse_args() {
        Ok(opts) => Arc::new(opts),
        Err(e) => {
            eprintln!("delay-proxy: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(&opts.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("delay-proxy: bind {}: {e}", opts.listen);
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().expect("a bound listener has an address");
    println!("listening on {addr}");
    std::io::stdout().flush().expect("stdout");
    let mut k: u64 = 0;
    loop {
        let client = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off a little rather than spin.
                eprintln!("delay-proxy: accept: {e}");
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        k += 1;
        let opts = Arc::clone(&opts);
        let spawned = thread::Builder::new()
            .name(format!("conn-{k}"))
            .stack_size(THREAD_STACK)
            .spawn(move || serve(opts, k, client, Instant::now()));
        if let Err(e) = spawned {
            eprintln!("delay-proxy: conn {k}: no thread: {e}");
        }
    }
}

/// Up: client → upstream; Down: upstream → client.
#[derive(Clone, Copy, PartialEq)]
enum Dir {
    Up,
    Down,
}

enum Item {
    Data(Instant, Vec<u8>),
    Eof(Instant),
}

/// A direction's timed queue: one reader pushes, one writer pops. `closed` (by either side, or by
/// an abort) drops what is queued and wakes both.
struct Queue {
    state: Mutex<QueueState>,
    cv: Condvar,
    cap: usize,
}

struct QueueState {
    items: VecDeque<Item>,
    bytes: usize,
    closed: bool,
}

impl Queue {
    fn new(cap: usize) -> Queue {
        let state = QueueState { items: VecDeque::new(), bytes: 0, closed: false };
        Queue { state: Mutex::new(state), cv: Condvar::new(), cap }
    }

    /// False once the queue is closed (the writer is gone).
    fn push(&self, item: Item) -> bool {
        let mut st = self.state.lock().unwrap();
        while !st.closed && st.bytes > 0 && st.bytes >= self.cap {
            st = self.cv.wait(st).unwrap();
        }
        if st.closed {
            return false;
        }
        if let Item::Data(_, data) = &item {
            st.bytes += data.len();
        }
        st.items.push_back(item);
        self.cv.notify_all();
        true
    }

    /// None once the queue is closed.
    fn pop(&self) -> Option<Item> {
        let mut st = self.state.lock().unwrap();
        while !st.closed && st.items.is_empty() {
            st = self.cv.wait(st).unwrap();
        }
        if st.closed {
            return None;
        }
        let item = st.items.pop_front()?;
        if let Item::Data(_, data) = &item {
            st.bytes -= data.len();
        }
        self.cv.notify_all();
        Some(item)
    }

    fn close(&self) {
        let mut st = self.state.lock().unwrap();
        st.closed = true;
        st.items.clear();
        st.bytes = 0;
        self.cv.notify_all();
    }
}

/// Queue size for a direction: enough for its bandwidth-delay product, within bounds.
fn queue_cap(delay: Duration, rate: Option<f64>) -> usize {
    let bdp = rate.unwrap_or(ASSUMED_RATE) * delay.as_secs_f64();
    (QUEUE_MIN + 2 * bdp as usize).min(QUEUE_MAX)
}

struct Conn {
    opts: Arc<Opts>,
    start: Instant,
    client: TcpStream,
    upstream: TcpStream,
    cut_at: Option<u64>,
    cut: AtomicBool,
    up_bytes: AtomicU64,
    down_bytes: AtomicU64,
    up_q: Queue,
    down_q: Queue,
}

impl Conn {
    /// (source, destination, queue) of a direction.
    fn ends(&self, dir: Dir) -> (&TcpStream, &TcpStream, &Queue) {
        match dir {
            Dir::Up => (&self.client, &self.upstream, &self.up_q),
            Dir::Down => (&self.upstream, &self.client, &self.down_q),
        }
    }

    /// An error on either side: drop the whole connection at once.
    fn abort(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
        self.up_q.close();
        self.down_q.close();
    }

    /// The --cut point is reached: FIN to the client (what it still sends is read and dropped,
    /// so closing does not reset it), upstream shut down.
    fn cut_now(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Write);
        let _ = self.client.set_read_timeout(Some(CUT_LINGER));
        let _ = self.upstream.shutdown(Shutdown::Both);
        self.down_q.close();
    }

    /// When bytes read now may be written on: after the delay (and, client→upstream, not before
    /// the emulated handshake is over).
    fn deadline(&self, dir: Dir) -> Instant {
        let d = self.opts.delay;
        let at = Instant::now() + d;
        if dir == Dir::Up && self.opts.connect_delay {
            at.max(self.start + d * 3)
        } else {
            at
        }
    }
}

/// One accepted connection: connect upstream, relay both ways, log when both are done.
fn serve(opts: Arc<Opts>, k: u64, client: TcpStream, start: Instant) {
    let cut_at = opts.cuts.get(k as usize - 1).copied().flatten();
    let upstream = match TcpStream::connect(opts.to) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("delay-proxy: conn {k}: connect {}: {e}", opts.to);
            write_log(&opts, k, 0, 0, false);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let up_cap = queue_cap(opts.delay, None);
    let down_cap = queue_cap(opts.delay, opts.rate);
    let conn = Arc::new(Conn {
        opts: Arc::clone(&opts),
        start,
        client,
        upstream,
        cut_at,
        cut: AtomicBool::new(false),
        up_bytes: AtomicU64::new(0),
        down_bytes: AtomicU64::new(0),
        up_q: Queue::new(up_cap),
        down_q: Queue::new(down_cap),
    });
    let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(4);
    for dir in [Dir::Up, Dir::Down] {
        for reader in [true, false] {
            let c = Arc::clone(&conn);
            let spawned = thread::Builder::new().stack_size(THREAD_STACK).spawn(move || {
                if reader {
                    read_side(&c, dir)
                } else {
                    write_side(&c, dir)
                }
            });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    eprintln!("delay-proxy: conn {k}: no thread: {e}");
                    conn.abort();
                }
            }
        }
    }
    for h in handles {
        let _ = h.join();
    }
    let (up, down) = (conn.up_bytes.load(Ordering::SeqCst), conn.down_bytes.load(Ordering::SeqCst));
    write_log(&opts, k, up, down, conn.cut.load(Ordering::SeqCst));
}

fn write_log(opts: &Opts, k: u64, up: u64, down: u64, cut: bool) {
    if let Some(log) = &opts.log {
        let line = format!("conn {k} up={up} down={down} cut={}\n", if cut { "yes" } else { "no" });
        let mut file = log.lock().unwrap();
        if let Err(e) = file.write_all(line.as_bytes()) {
            eprintln!("delay-proxy: log: {e}");
        }
    }
}

/// Reads a direction's source into its queue, stamping each chunk with its delivery time.
fn read_side(conn: &Conn, dir: Dir) {
    let (mut src, _, queue) = conn.ends(dir);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match src.read(&mut buf) {
            Ok(0) => {
                queue.push(Item::Eof(conn.deadline(dir)));
                return;
            }
            Ok(n) => {
                if !queue.push(Item::Data(conn.deadline(dir), buf[..n].to_vec())) {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                // Reset by the peer, or a cut connection's client lingering past CUT_LINGER.
                conn.abort();
                return;
            }
        }
    }
}

/// Writes a direction's queue to its destination when each chunk is due.
fn write_side(conn: &Conn, dir: Dir) {
    let (_, dst, queue) = conn.ends(dir);
    let mut bucket = if dir == Dir::Down { conn.opts.rate.map(Bucket::new) } else { None };
    while let Some(item) = queue.pop() {
        match item {
            Item::Eof(at) => {
                sleep_until(at);
                if !conn.cut.load(Ordering::SeqCst) {
                    let _ = dst.shutdown(Shutdown::Write);
                }
                break;
            }
            Item::Data(at, data) => {
                sleep_until(at);
                if dir == Dir::Up && conn.cut.load(Ordering::SeqCst) {
                    continue; // a cut connection: the client's data goes nowhere
                }
                match send(conn, dir, dst, &data, bucket.as_mut()) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => {
                        conn.abort();
                        break;
                    }
                }
            }
        }
    }
    queue.close();
}

/// Writes one chunk (rate-limited, cut at the --cut point). Ok(false): the connection was cut.
fn send(conn: &Conn, dir: Dir, mut dst: &TcpStream, data: &[u8], bucket: Option<&mut Bucket>) -> std::io::Result<bool> {
    let counter = if dir == Dir::Up { &conn.up_bytes } else { &conn.down_bytes };
    let mut data = data;
    let cut = dir == Dir::Down && {
        let left = cut_point(conn, counter.load(Ordering::SeqCst), data.len() as u64);
        if let Some(left) = left {
            data = &data[..left as usize];
        }
        left.is_some()
    };
    match bucket {
        None => {
            dst.write_all(data)?;
            counter.fetch_add(data.len() as u64, Ordering::SeqCst);
        }
        Some(bucket) => {
            for slice in data.chunks(bucket.slice) {
                bucket.take(slice.len());
                dst.write_all(slice)?;
                counter.fetch_add(slice.len() as u64, Ordering::SeqCst);
            }
        }
    }
    if cut {
        conn.cut_now();
    }
    Ok(!cut)
}

/// Some(bytes to write before cutting) when this connection is to be cut within its next `len`
/// bytes (having forwarded `done`): its own --cut entry, else the next --cut-any point (claimed).
fn cut_point(conn: &Conn, done: u64, len: u64) -> Option<u64> {
    if let Some(limit) = conn.cut_at {
        let left = limit.saturating_sub(done);
        return (len >= left).then_some(left);
    }
    let mut points = conn.opts.cut_any.lock().unwrap();
    let left = points.front()?.saturating_sub(done);
    if len >= left {
        points.pop_front();
        return Some(left);
    }
    None
}

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
}

/// Token bucket: `rate` bytes/s, a burst of 20 ms worth; a debt is slept off.
struct Bucket {
    rate: f64,
    tokens: f64,
    burst: f64,
    last: Instant,
    /// Bytes written at once: 10 ms worth (at least 1 KiB), so the rate stays smooth.
    slice: usize,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        let burst = (rate * 0.02).max(2048.0);
        Bucket { rate, tokens: burst, burst, last: Instant::now(), slice: ((rate * 0.01) as usize).max(1024) }
    }

    fn take(&mut self, n: usize) {
        let now = Instant::now();
        self.tokens = (self.tokens + (now - self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        self.tokens -= n as f64;
        if self.tokens < 0.0 {
            thread::sleep(Duration::from_secs_f64(-self.tokens / self.rate));
        }
    }
}
