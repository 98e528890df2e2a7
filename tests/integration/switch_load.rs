//! Issue 13: no `apt update` fails across snapshot switches, also for repositories without
//! Acquire-By-Hash (Proxmox's). Real apt clients loop `apt-get update` + `apt-get download`
//! through the shipped nginx site (pinned index paths) and the mount while the upstream moves
//! through `PMIRROR_LOAD_GENERATIONS` generations (default 20), each synced and published:
//!
//! - directly: Debian and Proxmox layouts, one client forcing by-hash: 0 failures of any kind;
//! - through the shipped front proxy (keep-alive pool, X-Pmirror-Pin): 0 failures, and every
//!   run sees a generation at least as new as the one current when it started;
//! - a long-lived keep-alive connection through that proxy keeps its generation across
//!   switches but is never served one older than the pin lifetime allows;
//! - with keep-alive off, with connections the server closes every 2 requests, and through a
//!   proxy that does not name the client: measured (printed as `SWITCH-LOAD …` lines, which
//!   scripts/switch-load.sh collects); there the only failures allowed are the index races the
//!   pins exist for, each followed by a clean run, and none for the by-hash repository.

use crate::harness::{Env, Mount, DEBIAN, PVE};
use crate::support::apt::AptClient;
use crate::support::client::Conn;
use crate::support::fixture::Upstream;
use crate::support::nginx::{Nginx, PinHeader};
use crate::view::both;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PVE_INRELEASE: &str = "debian/pve/dists/bookworm/InRelease";
const DEBIAN_INRELEASE: &str = "debian/dists/bookworm/InRelease";
/// Between two publishes (each also takes a sync, ~0.3–1 s here).
const GAP: Duration = Duration::from_millis(300);
/// A publish reaches new lookups within the daemon's 20 ms poll plus the view load; allow for a
/// loaded machine.
const SWITCH_SLACK: Duration = Duration::from_secs(2);

fn generations() -> u32 {
    std::env::var("PMIRROR_LOAD_GENERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20)
}

/// Every generation's fixture, built once (signatures differ between two builds of one
/// generation), and its InRelease files → generation.
struct Generations {
    upstreams: Vec<Upstream>,
    by_inrelease: HashMap<Vec<u8>, u32>,
}

impl Generations {
    fn build(count: u32) -> Generations {
        let upstreams: Vec<Upstream> = (0..=count).map(both).collect();
        let mut by_inrelease = HashMap::new();
        for (g, up) in upstreams.iter().enumerate() {
            for path in [PVE_INRELEASE, DEBIAN_INRELEASE] {
                by_inrelease.insert(up.bytes(path).expect("fixture InRelease").to_vec(), g as u32);
            }
        }
        Generations { upstreams, by_inrelease }
    }
}

/// When each generation was published (its sync returned).
#[derive(Default)]
struct Timeline(Mutex<Vec<(u32, Instant)>>);

impl Timeline {
    fn published(&self, generation: u32) {
        self.0.lock().unwrap().push((generation, Instant::now()));
    }

    /// The newest generation published by `t` (0 before any switch).
    fn current_at(&self, t: Option<Instant>) -> u32 {
        let Some(t) = t else { return 0 };
        self.0.lock().unwrap().iter().filter(|(_, at)| *at <= t).map(|(g, _)| *g).max().unwrap_or(0)
    }
}

struct Client {
    name: String,
    /// The repository has Acquire-By-Hash (the Debian layout).
    upstream_by_hash: bool,
    apt: AptClient,
}

impl Client {
    fn new(env: &Env, base_url: &str, spec: &crate::harness::MirrorSpec, name: &str) -> Client {
        let dir = env.dir.path().join(format!("apt-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let line = format!("{}/{} bookworm {}", base_url.trim_end_matches('/'), spec.root, spec.components);
        let apt = AptClient::new(&dir, &line, &env.key);
        Client { name: name.to_owned(), upstream_by_hash: spec.id == DEBIAN.id, apt }
    }

    /// The generation of the InRelease apt keeps in its lists.
    fn held(&self, generations: &Generations) -> Option<u32> {
        let lists = std::fs::read_dir(self.apt.lists_dir()).ok()?;
        let file = lists.flatten().find(|e| e.file_name().to_string_lossy().ends_with("_InRelease"))?;
        generations.by_inrelease.get(&std::fs::read(file.path()).ok()?).copied()
    }
}

/// One `apt-get update` + `apt-get download` of every listed package.
struct Round {
    start: Instant,
    took: Duration,
    error: Option<String>,
    /// The generation apt held afterwards.
    held: Option<u32>,
}

/// Loops until `stop`, and after it until a run is clean (at most 5 more): a run that failed
/// shows whether the client recovers once the switches are over.
fn load_loop(client: &Client, generations: &Generations, stop: &AtomicBool) -> Vec<Round> {
    let mut rounds: Vec<Round> = Vec::new();
    let mut extra = 0;
    loop {
        if stop.load(Ordering::SeqCst) {
            let last_failed = rounds.last().is_some_and(|r| r.error.is_some());
            if !last_failed || extra == 5 {
                break;
            }
            extra += 1;
        }
        let start = Instant::now();
        let result = client.apt.update().and_then(|_| client.apt.download_all().map(drop));
        let (took, error) = (start.elapsed(), result.err().map(|e| e.to_string()));
        rounds.push(Round { start, took, error, held: client.held(generations) });
    }
    rounds
}

/// Publish generations `from..=to` one after another while `clients` loop (and `beside` runs
/// with the stop flag); returns each client's rounds, and what `beside` returned.
fn drive<T: Send>(
    env: &Env,
    generations: &Generations,
    (from, to): (u32, u32),
    clients: &[Client],
    timeline: &Timeline,
    beside: impl FnOnce(&AtomicBool) -> T + Send,
) -> (Vec<Vec<Round>>, T) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let handles: Vec<_> = clients.iter().map(|c| s.spawn(|| load_loop(c, generations, &stop))).collect();
        let side = s.spawn(|| beside(&stop));
        for g in from..=to {
            std::thread::sleep(GAP);
            env.server.swap(generations.upstreams[g as usize].clone());
            env.sync_ok(&[]);
            timeline.published(g);
        }
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::SeqCst);
        let rounds = handles.into_iter().map(|h| h.join().expect("client thread")).collect();
        (rounds, side.join().expect("side thread"))
    })
}

/// Prints one `SWITCH-LOAD` line per mode (scripts/switch-load.sh collects them) and one per
/// client; returns (runs, failed runs).
fn report(mode: &str, switches: u32, clients: &[Client], rounds: &[Vec<Round>]) -> (usize, usize) {
    let runs: usize = rounds.iter().map(Vec::len).sum();
    let failed: usize = rounds.iter().flatten().filter(|r| r.error.is_some()).count();
    for (client, rounds) in clients.iter().zip(rounds) {
        let failed = rounds.iter().filter(|r| r.error.is_some()).count();
        eprintln!("  {mode} {}: {} runs, {failed} failed", client.name, rounds.len());
    }
    eprintln!("SWITCH-LOAD mode={mode} clients={} switches={switches} runs={runs} failed={failed}", clients.len());
    (runs, failed)
}

fn assert_clean(mode: &str, clients: &[Client], rounds: &[Vec<Round>]) {
    for (client, rounds) in clients.iter().zip(rounds) {
        assert!(rounds.len() >= 3, "{mode} {}: only {} runs", client.name, rounds.len());
        if let Some(round) = rounds.iter().find(|r| r.error.is_some()) {
            let failed = rounds.iter().filter(|r| r.error.is_some()).count();
            let (took, error) = (round.took, round.error.as_deref().unwrap_or_default());
            panic!("{mode} {}: {failed} of {} runs failed, first ({took:?}):\n{error}", client.name, rounds.len());
        }
    }
}

/// Every run ended holding a generation at least as new as the one current when it started.
fn assert_fresh(mode: &str, clients: &[Client], rounds: &[Vec<Round>], timeline: &Timeline) {
    for (client, rounds) in clients.iter().zip(rounds) {
        for round in rounds {
            let floor = timeline.current_at(round.start.checked_sub(SWITCH_SLACK));
            let held = round.held.unwrap_or_else(|| panic!("{mode} {}: no known InRelease in the lists", client.name));
            assert!(held >= floor, "{mode} {}: a run got generation {held}, {floor} was current", client.name);
        }
    }
}

fn setup(generations: &Generations, extra: &str) -> (Env, Mount) {
    let env = Env::with_extra(generations.upstreams[0].clone(), &[&PVE, &DEBIAN], extra);
    env.sync_ok(&[]);
    let mount = Mount::start(&env);
    (env, mount)
}

#[test]
fn no_apt_run_fails_across_switches() {
    let count = generations();
    let generations = Generations::build(count);
    let (env, mnt) = setup(&generations, "");
    let nginx = Nginx::start(&mnt.dir);
    let url = nginx.base_url();
    let clients = vec![
        Client::new(&env, &url, &DEBIAN, "debian-a"),
        Client::new(&env, &url, &DEBIAN, "debian-b"),
        Client::new(&env, &url, &PVE, "pve-a"),
        Client::new(&env, &url, &PVE, "pve-b"),
        Client::new(&env, &url, &PVE, "pve-by-hash"),
    ];
    // Proxmox's Release has no Acquire-By-Hash; the view serves by-hash for every index anyway.
    clients[4].apt.configure("Acquire::By-Hash \"force\";");
    let timeline = Timeline::default();
    let (rounds, ()) = drive(&env, &generations, (1, count), &clients, &timeline, |_| ());
    report("direct", count, &clients, &rounds);
    assert_clean("direct", &clients, &rounds);
    assert_fresh("direct", &clients, &rounds, &timeline);
    let by_hash = nginx
        .access_log()
        .lines()
        .filter(|l| {
            l.contains("/debian/pve/dists/bookworm/pve-no-subscription/binary-amd64/by-hash/SHA256/")
                && l.contains("\" 200 ")
        })
        .count();
    assert!(by_hash > 0, "the Proxmox client forcing by-hash got its indices by hash");
    assert!(!nginx.error_log().contains("[error]"), "{}", nginx.error_log());
}

#[test]
fn no_apt_run_fails_through_a_reverse_proxy() {
    let count = generations();
    let generations = Generations::build(count);
    let (env, mnt) = setup(&generations, "");
    let backend = Nginx::start(&mnt.dir);
    let front = Nginx::front_proxy(&backend, PinHeader::Sent);
    let url = front.base_url();
    let clients = vec![
        Client::new(&env, &url, &PVE, "proxied-pve-a"),
        Client::new(&env, &url, &PVE, "proxied-pve-b"),
        Client::new(&env, &url, &DEBIAN, "proxied-debian-a"),
        Client::new(&env, &url, &DEBIAN, "proxied-debian-b"),
    ];
    let timeline = Timeline::default();
    let (rounds, ()) = drive(&env, &generations, (1, count), &clients, &timeline, |_| ());
    report("proxy", count, &clients, &rounds);
    assert_clean("proxy", &clients, &rounds);
    assert_fresh("proxy", &clients, &rounds, &timeline);
    assert!(backend.access_log().lines().count() > 100, "the clients went through the proxy to the backend");
}

/// A keep-alive connection of its own through the front proxy, asking for the Proxmox InRelease
/// every 100 ms until `stop`: (when, generation) per answer.
fn sample_one_connection(front: &Nginx, generations: &Generations, stop: &AtomicBool) -> Vec<(Instant, u32)> {
    let mut conn = Conn::open(&format!("127.0.0.1:{}", front.port())).expect("connect to the front proxy");
    let mut samples = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let response = conn.request("GET", &format!("/{PVE_INRELEASE}"), &[]).expect("keep-alive request");
        assert_eq!(response.status, 200);
        samples.push((Instant::now(), generations.by_inrelease[&response.body]));
        std::thread::sleep(Duration::from_millis(100));
    }
    samples
}

/// The bound: a connection that lives long (here one of ours through the front proxy; in
/// production a proxy's pooled connection without the header) keeps one generation across
/// switches — held across 3 or more later publishes — and moves on within the lifetime (+ the
/// kernel's 1 s token TTL + the 1 s sweep + slack).
#[test]
fn a_long_lived_connection_keeps_its_generation_within_the_bound() {
    let generations = Generations::build(generations().max(20));
    let lifetime = Duration::from_secs(5);
    let (env, mnt) = setup(&generations, "[mount]\npin-idle = \"5s\"\npin-lifetime = \"5s\"\n");
    let backend = Nginx::start(&mnt.dir);
    let front = Nginx::front_proxy(&backend, PinHeader::Sent);
    let timeline = Timeline::default();
    let last = generations.upstreams.len() as u32 - 1;
    let sample = |stop: &AtomicBool| sample_one_connection(&front, &generations, stop);
    let (_, samples) = drive(&env, &generations, (1, last), &[], &timeline, sample);
    let bound = lifetime + Duration::from_secs(2) + SWITCH_SLACK;
    let mut held_longest = 0;
    for (t, g) in &samples {
        let floor = timeline.current_at(t.checked_sub(bound));
        assert!(*g >= floor, "the connection was served generation {g} while {floor} was current {bound:?} before");
        held_longest =
            held_longest.max(timeline.current_at(t.checked_sub(Duration::from_millis(500))).saturating_sub(*g));
    }
    assert!(held_longest >= 3, "the connection's generation was never kept across 3 publishes ({held_longest})");
    let seen: std::collections::BTreeSet<u32> = samples.iter().map(|(_, g)| *g).collect();
    assert!(seen.len() >= 2, "the connection never moved on: {seen:?}");
    eprintln!(
        "long-lived connection: generations {seen:?} in {} answers, held across up to {held_longest} publishes",
        samples.len()
    );
}

/// The cases the issue asks to measure: the goal holds where keep-alive is on; here apt may hit
/// the window pins close (a new connection mid-update may see a newer view), and nothing else;
/// each client is clean again once the switches are over.
#[test]
fn without_keepalive_or_across_broken_connections_only_index_races_happen() {
    let per_mode = (generations() / 2).max(4);
    let modes: [(&str, &str, bool); 3] = [
        ("keepalive-off", "keepalive_timeout 0;", false),
        ("connection-closed-every-2-requests", "keepalive_requests 2;", false),
        ("proxy-without-pin-header", "", true),
    ];
    let generations = Generations::build(per_mode * modes.len() as u32);
    let (env, mnt) = setup(&generations, "");
    let timeline = Timeline::default();
    for (i, (mode, extra, proxied)) in modes.into_iter().enumerate() {
        let backend = Nginx::start_with(&mnt.dir, extra);
        let front = proxied.then(|| Nginx::front_proxy(&backend, PinHeader::Omitted));
        let url = front.as_ref().unwrap_or(&backend).base_url();
        let clients = vec![
            Client::new(&env, &url, &PVE, &format!("{mode}-pve-a")),
            Client::new(&env, &url, &PVE, &format!("{mode}-pve-b")),
            Client::new(&env, &url, &DEBIAN, &format!("{mode}-debian")),
        ];
        let first = 1 + i as u32 * per_mode;
        let (rounds, ()) = drive(&env, &generations, (first, first + per_mode - 1), &clients, &timeline, |_| ());
        report(mode, per_mode, &clients, &rounds);
        for (client, rounds) in clients.iter().zip(&rounds) {
            for (j, round) in rounds.iter().enumerate() {
                let Some(error) = &round.error else { continue };
                assert!(!client.upstream_by_hash, "{mode} {}: a by-hash client failed:\n{error}", client.name);
                let race = error.contains("Packages")
                    && (error.contains("Hash Sum mismatch") || error.contains("unexpected size"));
                assert!(race, "{mode} {}: a failure other than an index race:\n{error}", client.name);
                let recovered = rounds[j + 1..].iter().any(|r| r.error.is_none());
                assert!(recovered, "{mode} {}: no clean run after an index race", client.name);
            }
        }
    }
}
