//! The real-upstream tier: the real Debian archive this machine's apt uses (bookworm-updates,
//! amd64 + all; about 30 MB), configured by `config add --preset debian:bookworm-updates` (so the
//! preset's components, key and id are checked against the real thing), mirrored by the real
//! `pmirror-fs sync`, served by a real FUSE `pmirror-fs mount` and a real nginx on 127.0.0.1, and
//! consumed by the real apt client: a strict `apt-get update` of main and an `apt-get download`
//! of every package version in the lists.
//!
//! The fixtures of the other tiers are what we think upstream looks like; this is what it is
//! (stale Release.gpg pairs, pdiff patches its Index lists but no longer serves, by-hash, CDN
//! headers). The first sync may warn about exactly those quirks, once each; the second sync, a
//! no-op, must not warn at all.
//!
//! Network policy: an unreachable archive (the probe before anything else) or a transport error
//! during the sync is a loud skip — `SKIPPED: real-upstream tier: <why>` on stderr and appended
//! to `$PMIRROR_SKIP_REPORT`, which `scripts/test.sh` prints after `cargo test` — never a
//! failure and never silent. Everything else (a signature, a hash, apt refusing the mirror) is
//! a test failure. The summary goes to stderr and to `$PMIRROR_SUMMARY_REPORT`.

use crate::harness::{text, Env, Mount, BIN};
use crate::support::append_report;
use crate::support::apt::{AptClient, ListedPackage};
use crate::support::http::TestServer;
use crate::support::nginx::Nginx;
use pmirror_fs::digest::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
const FALLBACK_URI: &str = "http://deb.debian.org/debian";
const SUITE: &str = "bookworm-updates";
/// The preset the config comes from; its id is [`MIRROR_ID`], its key [`KEYRING`].
const PRESET: &str = "debian:bookworm-updates";
/// What apt reads (the mirror carries the preset's components, this one among them).
const COMPONENT: &str = "main";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const MIRROR_ID: &str = "debian_bookworm_updates";
/// The reachability probe (DNS, connect, the InRelease body) as a whole.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// One sync of ~30 MB; a network slower than that counts as an outage (a loud skip).
const SYNC_DEADLINE: Duration = Duration::from_secs(15 * 60);
/// The second (no-op) sync only asks for InRelease.
const NOOP_SYNC_DEADLINE: Duration = Duration::from_secs(3 * 60);
/// The config's per-request connect/idle timeout, with `retries` below.
const REQUEST_TIMEOUT: &str = "30s";

/// Why the tier did not run (the network, not the code).
struct Skip(String);

#[test]
fn real_upstream_debian_sync_mount_nginx_apt() {
    match run() {
        Ok(summary) => {
            for line in &summary {
                eprintln!("{line}");
            }
            append_report("PMIRROR_SUMMARY_REPORT", &summary);
        }
        Err(Skip(why)) => {
            let line = format!("SKIPPED: real-upstream tier: {why}");
            eprintln!("{line}");
            append_report("PMIRROR_SKIP_REPORT", &[line]);
        }
    }
}

fn run() -> Result<Vec<String>, Skip> {
    let uri = archive_uri();
    assert!(Path::new(KEYRING).exists(), "{KEYRING} missing: install debian-archive-keyring (scripts/test.sh does)");
    probe(&uri).map_err(|why| Skip(format!("{uri}/dists/{SUITE}/InRelease is unreachable: {why}")))?;

    let env = env_for(&uri);
    let first = sync(&env, SYNC_DEADLINE)?;
    let first_out = first.assert_ok("first sync");
    let line = mirror_line(&first_out.lines);
    let snapshot = line
        .outcome
        .strip_prefix("new snapshot ")
        .unwrap_or_else(|| panic!("first sync did not record a snapshot:\n{}", first.dump()));
    assert!(line.fetched_files > 0, "first sync fetched nothing:\n{}", first.dump());
    assert!(
        first_out.lines.iter().any(|l| l.starts_with("published generation ")),
        "first sync published nothing:\n{}",
        first.dump()
    );
    // What the real upstream is known to do, and only that, may draw a warning: one line per
    // file or directory, never two for the same one.
    let mut warned = BTreeSet::new();
    for w in &first_out.warnings {
        let why = known_upstream_quirk(w)
            .unwrap_or_else(|| panic!("unexpected warning from the first sync: {w}\n{}", first.dump()));
        assert!(warned.insert(why), "two warnings about {why}:\n{}", first.dump());
    }
    assert!(first_out.log.is_empty(), "the first sync logged:\n{}", first.dump());
    let published = env.published(MIRROR_ID).expect("a published snapshot after the first sync");
    assert_eq!(published.name, snapshot, "the published snapshot is not the one the sync reported");

    // The snapshot: InRelease, the Packages indices of both architectures, and the .debs.
    let files = env.published_files(MIRROR_ID);
    let dists = format!("dists/{SUITE}");
    assert!(files.contains_key(&format!("{dists}/InRelease")), "snapshot lacks InRelease");
    for arch in ["amd64", "all"] {
        let dir = format!("{dists}/{COMPONENT}/binary-{arch}/");
        assert!(
            files.keys().any(|p| p.starts_with(&dir) && p[dir.len()..].starts_with("Packages")),
            "snapshot lacks {dir}Packages*: {:?}",
            files.keys().filter(|p| p.starts_with(&dists)).collect::<Vec<_>>()
        );
    }
    let debs: BTreeMap<&str, &Vec<u8>> =
        files.iter().filter(|(p, _)| p.ends_with(".deb")).map(|(p, b)| (p.as_str(), b)).collect();
    assert!(!debs.is_empty(), "snapshot holds no .deb");
    env.assert_pool_sound();

    // apt through nginx and the mount: a strict update, then every version in the lists.
    let mnt = Mount::start(&env);
    let nginx = Nginx::start(&mnt.dir);
    let view_root = url::Url::parse(&uri).expect("archive URI").path().trim_matches('/').to_owned();
    let apt_dir = env.dir.path().join("apt");
    std::fs::create_dir_all(&apt_dir).unwrap();
    let apt_started = Instant::now();
    let apt =
        AptClient::new(&apt_dir, &format!("{}/{view_root} {SUITE} {COMPONENT}", nginx.base_url()), Path::new(KEYRING));
    apt.update().unwrap_or_else(|e| panic!("apt-get update through nginx + mount: {e}\n{}", nginx.error_log()));
    let listed = apt.listed_packages().expect("apt lists");
    assert!(!listed.is_empty(), "apt lists no package");
    let index = list_files(&apt);
    assert!(!index.is_empty(), "apt lists have no Filename/SHA256 fields");
    for (filename, sha) in &index {
        let got = files.get(filename).unwrap_or_else(|| panic!("snapshot lacks {filename}, which apt lists"));
        assert_eq!(&Sha256::of(got).to_hex(), sha, "{filename}: snapshot bytes differ from the index");
    }
    let downloaded = apt.download_all().unwrap_or_else(|e| panic!("apt-get download through nginx + mount: {e}"));
    let apt_secs = apt_started.elapsed().as_secs_f64();
    let wanted: BTreeSet<String> = index.values().cloned().collect();
    let mut got = BTreeSet::new();
    let mut downloaded_bytes = 0u64;
    for path in &downloaded {
        let bytes = std::fs::read(path).unwrap();
        downloaded_bytes += bytes.len() as u64;
        let sha = Sha256::of(&bytes).to_hex();
        assert!(wanted.contains(&sha), "{} matches no listed package", path.display());
        got.insert(sha);
    }
    assert_eq!(got, wanted, "apt-get download did not fetch exactly the listed package files");
    let errors = nginx.error_log().lines().filter(|l| l.contains("[error]") || l.contains("[crit]")).count();
    assert_eq!(errors, 0, "nginx logged errors:\n{}", nginx.error_log());

    // Nothing changed upstream: the second sync is a no-op and says nothing else.
    let second = noop_sync(&env, &uri, &files)?;
    assert_eq!(env.published(MIRROR_ID).expect("published").name, snapshot, "the no-op sync changed the snapshot");

    let bytes: u64 = files.values().map(|b| b.len() as u64).sum();
    let deb_bytes: u64 = debs.values().map(|b| b.len() as u64).sum();
    let versions: BTreeSet<String> =
        listed.iter().map(|p: &ListedPackage| format!("{}={}", p.name, p.version)).collect();
    let warnings = first_out.warnings.len();
    let retries = match first_out.retries {
        0 => String::new(),
        n => format!(", {n} transient network failures retried"),
    };
    let mut summary = vec![
        format!("real-upstream tier: {uri} {SUITE} ({PRESET}) amd64+all, apt reads {COMPONENT} → snapshot {snapshot}"),
        format!(
            "real-upstream tier: first sync {:.1}s: fetched {} files ({}), reused {}; {warnings} warnings (known upstream quirks){retries}",
            first.elapsed.as_secs_f64(),
            line.fetched_files,
            line.fetched_size,
            line.reused,
        ),
    ];
    let shown = first_out.warnings.iter();
    summary.extend(shown.take(5).map(|w| format!("real-upstream tier:     warning: {w}")));
    if warnings > 5 {
        summary.push(format!("real-upstream tier:     … and {} more", warnings - 5));
    }
    summary.extend([
        format!(
            "real-upstream tier: published snapshot: {} files, {}; {} .debs ({}); {} package versions in apt's lists",
            files.len(),
            mib(bytes),
            debs.len(),
            mib(deb_bytes),
            versions.len()
        ),
        format!(
            "real-upstream tier: apt via nginx + FUSE mount {apt_secs:.1}s: strict update clean, downloaded {} .debs ({}), every hash matches",
            downloaded.len(),
            mib(downloaded_bytes)
        ),
        format!("real-upstream tier: second sync: {}, 0 warnings", second.outcome),
    ]);
    Ok(summary)
}

fn mib(bytes: u64) -> String {
    format!("{bytes} bytes = {:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The first `URIs:` of the debian.sources stanza whose `Suites:` holds bookworm-updates.
fn archive_uri() -> String {
    match std::fs::read_to_string(SOURCES) {
        Ok(text) => uri_from_sources(&text, SUITE)
            .unwrap_or_else(|| panic!("{SOURCES} has no stanza with Suites: {SUITE} (and a URIs: field)")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FALLBACK_URI.to_owned(),
        Err(e) => panic!("{SOURCES}: {e}"),
    }
    .trim_end_matches('/')
    .to_owned()
}

/// deb822: stanzas split by blank lines, `#` comment lines, continuation lines start with space.
fn uri_from_sources(text: &str, suite: &str) -> Option<String> {
    let mut stanzas: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            stanzas.push(Vec::new());
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = stanzas.last_mut().unwrap().last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            stanzas.last_mut().unwrap().push((k.trim().to_lowercase(), v.trim().to_owned()));
        }
    }
    let field = |s: &[(String, String)], name: &str| s.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    stanzas.iter().find_map(|s| {
        let suites = field(s, "suites")?;
        if !suites.split_whitespace().any(|x| x == suite) {
            return None;
        }
        field(s, "uris")?.split_whitespace().next().map(str::to_owned)
    })
}

/// GET `<uri>/dists/<suite>/InRelease` within [`PROBE_TIMEOUT`]: 200 and a signed Release.
fn probe(uri: &str) -> Result<(), String> {
    let url = format!("{uri}/dists/{SUITE}/InRelease");
    let (tx, rx) = std::sync::mpsc::channel();
    // DNS resolution has no timeout of its own: the whole probe runs in a thread we may abandon.
    std::thread::spawn(move || {
        let _ = tx.send(fetch_small(&url));
    });
    let body = rx.recv_timeout(PROBE_TIMEOUT).map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))??;
    if !body.starts_with("-----BEGIN PGP SIGNED MESSAGE-----") || !body.contains(&format!("Codename: {SUITE}")) {
        let head: String = body.chars().take(200).collect();
        return Err(format!("the answer is not a signed {SUITE} Release (a captive portal?): {head:?}"));
    }
    Ok(())
}

/// A small GET, dependency-free: plain HTTP/1.1 (`Connection: close`) over a `TcpStream` via
/// `$http_proxy` when set, as the sync's HTTP client does; https through /usr/bin/curl.
fn fetch_small(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    if parsed.scheme() != "http" {
        let curl = Path::new("/usr/bin/curl");
        if !curl.exists() {
            return Err(format!("{} needs /usr/bin/curl for the probe", parsed.scheme()));
        }
        let out = Command::new(curl)
            .args(["-fsS", "--max-time", &PROBE_TIMEOUT.as_secs().to_string(), url])
            .output()
            .map_err(|e| format!("curl: {e}"))?;
        return if out.status.success() { Ok(text(&out.stdout)) } else { Err(text(&out.stderr).trim().to_owned()) };
    }
    let proxy = ["http_proxy", "HTTP_PROXY"].iter().find_map(|v| std::env::var(v).ok().filter(|p| !p.is_empty()));
    let no_proxy = std::env::var("no_proxy").or_else(|_| std::env::var("NO_PROXY")).unwrap_or_default();
    let host = parsed.host_str().ok_or("no host")?.to_owned();
    let bypass = no_proxy.split(',').map(str::trim).any(|h| !h.is_empty() && (h == "*" || host.ends_with(h)));
    let (connect_to, target, via) = match proxy.filter(|_| !bypass) {
        Some(p) => (url::Url::parse(&p).map_err(|e| format!("proxy {p}: {e}"))?, url.to_owned(), "proxy "),
        None => (parsed.clone(), parsed[url::Position::BeforePath..].to_owned(), ""),
    };
    let addr = (connect_to.host_str().ok_or("no host")?, connect_to.port_or_known_default().unwrap_or(80));
    let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| format!("resolving {}: {e}", addr.0))?.collect();
    let mut last = format!("{} resolves to no address", addr.0);
    for a in addrs {
        match TcpStream::connect_timeout(&a, PROBE_TIMEOUT / 3) {
            Ok(mut s) => {
                s.set_read_timeout(Some(PROBE_TIMEOUT / 3)).map_err(|e| e.to_string())?;
                s.set_write_timeout(Some(PROBE_TIMEOUT / 3)).map_err(|e| e.to_string())?;
                let req = format!(
                    "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pmirror-fs-tests\r\nConnection: close\r\n\r\n"
                );
                s.write_all(req.as_bytes()).map_err(|e| format!("sending to {a}: {e}"))?;
                let mut raw = Vec::new();
                s.take(8 << 20).read_to_end(&mut raw).map_err(|e| format!("reading from {a}: {e}"))?;
                let end =
                    raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| format!("{a}: no HTTP response"))?;
                let head = text(&raw[..end]);
                let status = head.lines().next().unwrap_or_default();
                if status.split_whitespace().nth(1) != Some("200") {
                    return Err(format!("{a}: {status}"));
                }
                let chunked = head.lines().any(|l| {
                    l.to_lowercase().starts_with("transfer-encoding:") && l.to_lowercase().contains("chunked")
                });
                let body = &raw[end + 4..];
                return Ok(text(&if chunked {
                    dechunk(body).ok_or_else(|| format!("{a}: bad chunked body"))?
                } else {
                    body.to_vec()
                }));
            }
            Err(e) => last = format!("connecting to {via}{a}: {e}"),
        }
    }
    Err(last)
}

/// A `Transfer-Encoding: chunked` body, decoded (extensions and trailers ignored).
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = text(&raw[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// A store and config mirroring the archive (the harness's `Env`, so `Mount` and the catalog
/// helpers work; its fixture server is an unused empty directory): `[store]` and `[sync]` for
/// the tier, the mirror as `config add --preset` writes it.
fn env_for(uri: &str) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let server = TestServer::start_dir(empty);
    let store = dir.path().join("store");
    let config = dir.path().join("config.toml");
    let tier = format!(
        "[store]\ndir = \"{}\"\nfsync = true\n\n[sync]\nconcurrency = 4\nretries = 3\nkeep = 3\ngrace = \"48h\"\n\
         timeout = \"{REQUEST_TIMEOUT}\"\n",
        store.display()
    );
    std::fs::write(&config, tier).expect("write config");
    let add = ["config", "add", "--preset", PRESET, "--url", uri];
    let out = Command::new(BIN).arg("--config").arg(&config).args(add).output().expect("run config add");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "config add --preset {PRESET}: {}\n{stdout}", text(&out.stderr));
    assert!(stdout.contains(&format!("added mirror {MIRROR_ID}")), "{stdout}");
    let written = std::fs::read_to_string(&config).unwrap();
    let repository = format!("repository = \"deb {} {SUITE} {COMPONENT} ", uri.trim_end_matches('/'));
    assert!(written.contains(&repository) && written.contains(&format!("key = \"{KEYRING}\"")), "{written}");
    Env { dir, server, config, store, key: PathBuf::from(KEYRING) }
}

/// One finished `pmirror-fs sync`.
struct SyncRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// What a successful sync printed: stdout lines, its warnings (stdout's `  warning:` lines), its
/// log (stderr at the default level, warn: every line there is a warning or an error) except the
/// network's transient failures it retried, which are only counted.
struct SyncOut {
    lines: Vec<String>,
    warnings: Vec<String>,
    log: Vec<String>,
    retries: usize,
}

impl SyncRun {
    fn dump(&self) -> String {
        format!("status: {}\n--- stdout\n{}--- stderr\n{}", self.status, self.stdout, self.stderr)
    }

    fn assert_ok(&self, what: &str) -> SyncOut {
        assert!(self.status.success(), "{what} failed:\n{}", self.dump());
        let lines: Vec<String> = self.stdout.lines().map(str::to_owned).collect();
        let warnings = lines.iter().filter_map(|l| l.strip_prefix("  warning: ")).map(str::to_owned).collect();
        let (retried, log): (Vec<String>, Vec<String>) = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .partition(|l| l.contains("transient failure, retrying"));
        for l in &lines {
            let known = l.starts_with(&format!("{MIRROR_ID}: "))
                || l.starts_with("  warning: ")
                || l.starts_with("published generation ")
                || l.starts_with("pruned snapshot ");
            assert!(known, "{what}: unexpected output line {l:?}\n{}", self.dump());
        }
        SyncOut { lines, warnings, log, retries: retried.len() }
    }
}

/// The file or directory a warning is about, when it is a known quirk of the real archive:
/// - a `Release.gpg` (or `Release`) older than the InRelease beside it, left out;
/// - the pdiff patches a `*.diff/Index` lists but the archive no longer serves (one line per
///   `.diff/` directory).
fn known_upstream_quirk(warning: &str) -> Option<&str> {
    let (path, reason) = warning.split_once(": ")?;
    let dists = format!("dists/{SUITE}/");
    let rest = path.strip_prefix(&dists)?;
    let stale_pair = (rest == "Release.gpg" || rest == "Release") && reason.starts_with("left out");
    let pdiffs = rest.ends_with(".diff/") && reason.contains("patches its Index lists are not served upstream");
    (stale_pair || pdiffs).then_some(path)
}

/// `<id>: <outcome>; fetched N files (S), reused M files (S); T s…`, parsed.
struct MirrorLine {
    outcome: String,
    fetched_files: u64,
    fetched_size: String,
    reused: String,
}

fn mirror_line(lines: &[String]) -> MirrorLine {
    let mine: Vec<&String> = lines.iter().filter(|l| l.starts_with(&format!("{MIRROR_ID}: "))).collect();
    assert_eq!(mine.len(), 1, "one summary line for {MIRROR_ID}: {lines:?}");
    let line = mine[0];
    let rest = &line[MIRROR_ID.len() + 2..];
    let parts: Vec<&str> = rest.split("; ").collect();
    let shape = || -> Option<(u64, String, String)> {
        let (fetched, reused) = parts.get(1)?.split_once(", reused ")?;
        let (n, size) = fetched.strip_prefix("fetched ")?.split_once(" files (")?;
        let secs = parts.get(2)?.split(['s', ',']).next()?;
        secs.parse::<f64>().ok()?;
        (reused.ends_with(')') && size.ends_with(')'))
            .then(|| Some((n.parse().ok()?, size.trim_end_matches(')').to_owned(), reused.to_owned())))?
    };
    let (fetched_files, fetched_size, reused) =
        shape().unwrap_or_else(|| panic!("sync summary line has an unexpected shape: {line:?}"));
    MirrorLine { outcome: parts[0].to_owned(), fetched_files, fetched_size, reused }
}

/// Runs `pmirror-fs sync` within `deadline`; a deadline or a transport error is a `Skip`.
fn sync(env: &Env, deadline: Duration) -> Result<SyncRun, Skip> {
    let out_path = env.dir.path().join("sync.stdout");
    let err_path = env.dir.path().join("sync.stderr");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("sync")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn pmirror-fs sync");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for sync") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Skip(format!(
                "pmirror-fs sync did not finish within {deadline:?} (a stalled or very slow network; stderr: {})",
                std::fs::read_to_string(&err_path).unwrap_or_default().trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let run = SyncRun {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
        elapsed: started.elapsed(),
    };
    if !run.status.success() {
        // The mirror's failure lines (`pmirror-fs: mirror <id>: <file>: <reason>`): all of them
        // transport errors → the network failed under us; anything else is the test's failure.
        let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("pmirror-fs: ")).collect();
        if !errors.is_empty() && errors.iter().all(|l| is_transport_error(l)) {
            return Err(Skip(format!("network error during the sync: {}", errors.join(" | "))));
        }
    }
    Ok(run)
}

/// A connection/timeout/DNS/truncation/gateway failure, never a verification one. Words with a
/// `/` (paths, URLs) are not read: a package may be called `python3-keyring`.
fn is_transport_error(line: &str) -> bool {
    let l = line.split_whitespace().filter(|w| !w.contains('/')).collect::<Vec<_>>().join(" ").to_lowercase();
    let verification = ["signature", "sha256", "mismatch", "expired", "hash", "size", "key"];
    let transport = [
        "error sending request",
        "timed out",
        "timeout",
        "connection refused",
        "connection reset",
        "connection closed",
        "broken pipe",
        "dns error",
        "failed to lookup address",
        "network is unreachable",
        "no route to host",
        "truncated body",
        "error decoding response body",
        "unexpected eof",
        "http 502",
        "http 503",
        "http 504",
    ];
    !verification.iter().any(|v| l.contains(v)) && transport.iter().any(|t| l.contains(t))
}

/// The second sync, which must be `unchanged` without a word of warning. Should upstream have
/// published between the two runs (its InRelease differs from the snapshot's), sync once more.
fn noop_sync(env: &Env, uri: &str, files: &BTreeMap<String, Vec<u8>>) -> Result<MirrorLine, Skip> {
    let mut known_inrelease = files[&format!("dists/{SUITE}/InRelease")].clone();
    for attempt in 0..2 {
        let run = sync(env, NOOP_SYNC_DEADLINE)?;
        let out = run.assert_ok("second sync");
        assert!(out.warnings.is_empty() && out.log.is_empty(), "the second sync printed warnings:\n{}", run.dump());
        let line = mirror_line(&out.lines);
        if line.outcome == "unchanged" {
            assert_eq!(line.fetched_files, 0, "an unchanged sync fetched files:\n{}", run.dump());
            return Ok(MirrorLine { outcome: format!("unchanged in {:.1}s", run.elapsed.as_secs_f64()), ..line });
        }
        let now = fetch_small(&format!("{uri}/dists/{SUITE}/InRelease"))
            .map_err(|e| Skip(format!("re-fetching InRelease: {e}")))?;
        let moved = now.as_bytes() != known_inrelease.as_slice();
        assert!(attempt == 0 && moved, "the second sync was not a no-op ({}):\n{}", line.outcome, run.dump());
        eprintln!("real-upstream tier: upstream published between the syncs ({}); syncing again", line.outcome);
        known_inrelease = now.into_bytes();
    }
    unreachable!()
}

/// `Filename` → `SHA256` of every stanza in apt's downloaded Packages lists.
fn list_files(apt: &AptClient) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(apt.lists_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with("_Packages") {
            continue;
        }
        for stanza in std::fs::read_to_string(entry.path()).unwrap().split("\n\n") {
            let field = |f: &str| {
                stanza.lines().find_map(|l| l.strip_prefix(f)?.strip_prefix(':').map(|v| v.trim().to_owned()))
            };
            if let (Some(file), Some(sha)) = (field("Filename"), field("SHA256")) {
                out.insert(file, sha);
            }
        }
    }
    out
}

#[test]
fn real_upstream_sources_parsing() {
    let text = "Types: deb\n# comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
                Components: main\n\nTypes: deb\nURIs: http://security.example/debian-security http://x/\n\
                Suites:\n bookworm-security\n";
    assert_eq!(uri_from_sources(text, "bookworm-updates").as_deref(), Some("http://deb.debian.org/debian"));
    assert_eq!(uri_from_sources(text, "bookworm-security").as_deref(), Some("http://security.example/debian-security"));
    assert_eq!(uri_from_sources(text, "trixie"), None);
    assert!(is_transport_error("pmirror-fs: mirror m: dists/x/InRelease: http://h/x: error sending request for url"));
    assert!(!is_transport_error("pmirror-fs: mirror m: dists/x/Release.gpg: bad signature"));
    assert!(is_transport_error(
        "pmirror-fs: mirror m: pool/k/python3-keyring_1_all.deb: http://h/pool/k/python3-keyring_1_all.deb: \
         error sending request for url (http://h/pool/k/python3-keyring_1_all.deb): connection closed"
    ));
    assert!(!is_transport_error("pmirror-fs: mirror m: pool/a.deb: size mismatch (timed out?)"));
    assert_eq!(dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").as_deref(), Some(&b"abcde"[..]));
    assert_eq!(dechunk(b"5\r\nab"), None);
    let gpg = "dists/bookworm-updates/Release.gpg: left out: it does not verify over the Release beside it (…)";
    assert_eq!(known_upstream_quirk(gpg), Some("dists/bookworm-updates/Release.gpg"));
    let pdiff = "dists/bookworm-updates/main/binary-all/Packages.diff/: 17 of the 17 patches its Index lists are \
                 not served upstream, left out (apt then fetches the whole index); first: http://h/x.gz: HTTP 404";
    assert_eq!(known_upstream_quirk(pdiff), Some("dists/bookworm-updates/main/binary-all/Packages.diff/"));
    let other = "dists/bookworm-updates/main/binary-amd64/Packages: left out: http://h/Packages: HTTP 404";
    assert_eq!(known_upstream_quirk(other), None);
    assert_eq!(known_upstream_quirk("pool/main/a/a.deb: left out: HTTP 404"), None);
}
