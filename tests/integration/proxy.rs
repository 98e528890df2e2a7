//! Issue 15, proxies: a real tinyproxy from Debian's packages on 127.0.0.1, basic auth required,
//! and an upstream that answers only what came through it (it requires the `Via` header the
//! proxy adds: the direct route is closed). `sync` goes through it with `http_proxy` from the
//! environment and with `[sync] proxy`; `no_proxy` sends it direct; the proxy's password shows in
//! no output.

use crate::harness::{text, Env, PVE};
use crate::support::fixture::Upstream;
use crate::support::proxy::Tinyproxy;
use crate::support::signing_key;
use std::process::Output;

const USER: &str = "mirror";
const PASSWORD: &str = "pw-s3cret-42";
const PROXY_VARS: [&str; 8] =
    ["http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"];

/// `pmirror-fs ARGS` with exactly `vars` of the proxy variables set.
fn run(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = env.cmd(args);
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    cmd.envs(vars.iter().copied()).output().expect("run pmirror-fs")
}

fn refused(out: &Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} succeeded:\n{}", text(&out.stdout));
    text(&out.stderr)
}

/// The env's config with `[sync] proxy = url`.
fn with_proxy_key(env: &mut Env, url: &str) {
    env.write_config(&[&PVE], "");
    let config =
        std::fs::read_to_string(&env.config).unwrap().replace("[sync]\n", &format!("[sync]\nproxy = \"{url}\"\n"));
    std::fs::write(&env.config, config).unwrap();
}

#[test]
fn sync_goes_through_a_real_proxy_from_the_environment_or_the_config() {
    let proxy = Tinyproxy::start(USER, PASSWORD);
    let mut env = Env::new(Upstream::proxmox(0, signing_key()).unwrap(), &[&PVE]);
    env.server.require_header("via");
    let url = proxy.url(USER, PASSWORD);
    let err = refused(&run(&env, &["sync"], &[]), "a direct sync");
    assert!(err.contains("403"), "the direct route is not closed: {err}");
    let out = run(&env, &["sync"], &[("http_proxy", &url)]);
    assert!(out.status.success(), "sync through http_proxy:\n{}", text(&out.stderr));
    assert!(env.published(PVE.id).is_some());
    assert!(proxy.log().contains("Established connection") || !proxy.log().is_empty(), "tinyproxy saw nothing");
    // no_proxy names the upstream: it goes direct, and the closed route refuses it.
    env.server.swap(Upstream::proxmox(1, signing_key()).unwrap());
    let err = refused(&run(&env, &["sync"], &[("http_proxy", &url), ("no_proxy", "127.0.0.1")]), "no_proxy");
    assert!(err.contains("403"), "{err}");
    // The config key, with nothing in the environment.
    with_proxy_key(&mut env, &url);
    let out = run(&env, &["sync"], &[]);
    assert!(out.status.success(), "sync through [sync] proxy:\n{}", text(&out.stderr));
    let shown = text(&run(&env, &["config", "show"], &[]).stdout);
    assert!(shown.contains(&format!("proxy = \"http://{USER}:***@127.0.0.1")) && !shown.contains(PASSWORD), "{shown}");
}

#[test]
fn a_refused_proxy_is_one_line_that_never_shows_its_password() {
    let proxy = Tinyproxy::start(USER, PASSWORD);
    let mut env = Env::new(Upstream::proxmox(0, signing_key()).unwrap(), &[&PVE]);
    env.server.require_header("via");
    let wrong = "not-the-pw-77";
    with_proxy_key(&mut env, &proxy.url(USER, wrong));
    let out = run(&env, &["sync"], &[("PMIRROR_FS_LOG", "info")]);
    let err = refused(&out, "a sync with the wrong proxy password");
    let said = format!("{}{err}", text(&out.stdout));
    assert!(!said.contains(wrong), "the proxy password was shown:\n{said}");
    assert!(said.contains("***"), "the proxy in use is not named (masked):\n{said}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("pmirror-fs:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(PVE.id) && lines[0].contains("the proxy http://mirror:***@127.0.0.1"), "{}", lines[0]);
    let out = run(&env, &["sync"], &[("http_proxy", &proxy.url(USER, wrong))]);
    assert!(!text(&out.stderr).contains(wrong) && !text(&out.stdout).contains(wrong));
    // Without credentials tinyproxy answers 407: named as the proxy's.
    let bare = format!("http://127.0.0.1:{}", proxy.url(USER, wrong).rsplit(':').next().unwrap());
    with_proxy_key(&mut env, &bare);
    let err = refused(&run(&env, &["sync"], &[]), "a sync without the proxy's credentials");
    assert!(err.contains("407") && err.contains("wants credentials"), "{err}");
}

#[test]
fn https_goes_through_the_proxy_with_connect() {
    let proxy = Tinyproxy::start(USER, PASSWORD);
    let root = tempfile::tempdir().unwrap();
    crate::latency::upstream_dir(root.path());
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::latency::certificates(certs.path());
    let nginx = crate::support::nginx::Nginx::start_logged(root.path(), Some((&cert, &key)));
    let base = format!("https://127.0.0.1:{}", nginx.port());
    let env = crate::latency::env_for(&base, &format!("ca-file = \"{}\"\n", ca.display()));
    // https_proxy at a dead port: the sync fails, so it does not go direct.
    let dead = format!("http://{USER}:{PASSWORD}@127.0.0.1:1");
    let err = refused(&run(&env, &["sync"], &[("https_proxy", &dead)]), "a sync through a dead proxy");
    assert!(!err.contains(PASSWORD), "{err}");
    let out = run(&env, &["sync"], &[("https_proxy", &proxy.url(USER, PASSWORD))]);
    assert!(out.status.success(), "sync through https_proxy:\n{}", text(&out.stderr));
    let log = proxy.log();
    assert!(
        log.contains(&format!("CONNECT 127.0.0.1:{}", nginx.port())),
        "tinyproxy saw no CONNECT to the upstream:\n{log}"
    );
    assert!(!nginx.requests().is_empty(), "nothing reached the upstream");
}
