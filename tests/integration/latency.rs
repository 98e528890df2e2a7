//! Issue 15, latency: syncs of two mirrors from a real nginx through the delay proxy (50 ms each
//! way: a 100 ms round trip, the handshake charged too). Over plain http the requests in flight
//! to the host grow past `concurrency` while the transfers wait on round trips, up to
//! `max-concurrency`; over https the host answers in HTTP/2 and the requests are multiplexed
//! on one connection, many in one round trip. nginx's own log tells what it saw.

use crate::harness::{text, Env, DEBIAN, PVE};
use crate::support::delay::DelayProxy;
use crate::support::fixture::Upstream;
use crate::support::nginx::Nginx;
use crate::support::signing_key;
use std::path::Path;
use std::process::Command;

const DELAY_MS: u64 = 50;

/// Both fixtures (Proxmox's `debian/pve`, Debian's `debian`) on disk under `dir`.
pub fn upstream_dir(dir: &Path) {
    Upstream::proxmox(0, signing_key()).unwrap().write_to(dir).unwrap();
    Upstream::debian(0, signing_key()).unwrap().write_to(dir).unwrap();
}

/// An env mirroring PVE and DEBIAN from `base`, with `sync` lines added to `[sync]`.
pub fn env_for(base: &str, sync: &str) -> Env {
    let mut env = Env::new(Upstream::proxmox(0, signing_key()).unwrap(), &[]);
    let mut block = String::new();
    for m in [&PVE, &DEBIAN] {
        block += &format!(
            "[[mirror]]\nid = \"{}\"\nrepository = \"deb {base}/{} {} {}\"\narchitectures = [\"amd64\", \"all\"]\nkey = \"{}\"\n\n",
            m.id,
            m.root,
            m.suite,
            m.components,
            env.key.display()
        );
    }
    env.write_config(&[], &block);
    let config = std::fs::read_to_string(&env.config).unwrap();
    let config = config.replace("concurrency = 4\n", "").replace("[sync]\n", &format!("[sync]\n{sync}"));
    std::fs::write(&env.config, config).unwrap();
    env
}

fn sync(env: &Env) {
    let out = env.run(&["sync"]);
    assert!(out.status.success(), "sync failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(env.published(PVE.id).is_some() && env.published(DEBIAN.id).is_some());
}

/// Requests in flight at once, as nginx saw them: each takes at least a round trip through the
/// proxy, so those that arrived within 90 % of one were in flight together. (Connections are
/// not counted: hyper races a new connection against an idle one coming back and keeps both,
/// so a run may open a few more than it ever uses at once.)
fn in_flight(log: &[(u64, String, f64, String)]) -> usize {
    requests_within(log, 0.9 * (2 * DELAY_MS) as f64 / 1000.0)
}

/// The most requests nginx received within any `window` seconds.
fn requests_within(log: &[(u64, String, f64, String)], window: f64) -> usize {
    let mut at: Vec<f64> = log.iter().map(|(_, _, t, _)| *t).collect();
    at.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (0..at.len()).map(|i| at[i..].iter().take_while(|t| **t < at[i] + window).count()).max().unwrap_or(0)
}

#[test]
fn plain_http_grows_its_connections_while_latency_bound_up_to_the_cap() {
    let root = tempfile::tempdir().unwrap();
    upstream_dir(root.path());
    let nginx = Nginx::start_logged(root.path(), None);
    let far = DelayProxy::start(nginx.port(), DELAY_MS);
    let base = format!("http://127.0.0.1:{}", far.port());
    let env = env_for(&base, "concurrency = 2\nmax-concurrency = 6\n");
    sync(&env);
    let log = nginx.requests();
    let (at_once, total) = (in_flight(&log), log.iter().map(|r| r.0).collect::<std::collections::BTreeSet<_>>().len());
    assert!(log.iter().all(|r| r.1 == "HTTP/1.1"), "{log:?}");
    assert!(at_once > 2, "requests in flight never grew past concurrency = 2: {at_once} at once, {total} connections");
    assert!(at_once <= 6, "more than max-concurrency = 6 requests in flight: {at_once} ({total} connections)");
    // Capped at concurrency: never more than 2 at once.
    let root2 = tempfile::tempdir().unwrap();
    upstream_dir(root2.path());
    let nginx = Nginx::start_logged(root2.path(), None);
    let far = DelayProxy::start(nginx.port(), DELAY_MS);
    let env = env_for(&format!("http://127.0.0.1:{}", far.port()), "concurrency = 2\nmax-concurrency = 2\n");
    sync(&env);
    assert!(in_flight(&nginx.requests()) <= 2, "{:?}", nginx.requests());
}

/// A CA and a certificate for 127.0.0.1 it signed, made with the real openssl.
pub fn certificates(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out =
            Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (apt-get install openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=pmirror-fs test CA"],
    ]
    .concat());
    run(&[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]].concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

#[test]
fn https_upstreams_are_multiplexed_over_http2_on_one_connection() {
    let root = tempfile::tempdir().unwrap();
    upstream_dir(root.path());
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    let nginx = Nginx::start_logged(root.path(), Some((&cert, &key)));
    let far = DelayProxy::start(nginx.port(), DELAY_MS);
    let base = format!("https://127.0.0.1:{}", far.port());
    // Without the CA the upstream is refused, naming the certificate problem.
    let env = env_for(&base, "concurrency = 2\n");
    let out = env.run(&["sync"]);
    assert!(!out.status.success(), "an untrusted certificate was accepted");
    assert!(text(&out.stderr).to_lowercase().contains("certificate"), "{}", text(&out.stderr));
    let env = env_for(&base, &format!("concurrency = 2\nca-file = \"{}\"\n", ca.display()));
    sync(&env);
    let log = nginx.requests();
    assert!(log.iter().all(|r| r.1 == "HTTP/2.0"), "not all over HTTP/2: {log:?}");
    let conns: std::collections::BTreeSet<u64> = log.iter().map(|r| r.0).collect();
    assert!(conns.len() <= 8, "HTTP/2 used {} connections to one host: {log:?}", conns.len());
    // More than concurrency = 2 requests within one round trip: streams in flight together.
    let burst = requests_within(&log, (2 * DELAY_MS) as f64 / 1000.0);
    assert!(burst > 4, "at most {burst} requests arrived within one round trip: not multiplexed");
}
