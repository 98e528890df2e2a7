//! Proxmox enterprise repositories through the real CLI: `[[subscription]]` and
//! `use-subscription` send HTTP basic auth (user = key, password = server id) to the upstream's
//! origin only — never from an entry without `use-subscription`, never across a redirect to
//! another origin; a refusal fails the mirror with one line that names it, the URL and what to
//! do, keeps its published snapshot, and no output ever shows the key.

use crate::harness::{text, Env, BIN, PBS_CLIENT, PVE};
use crate::support::fixture::Upstream;
use crate::support::http::{base64, TestServer};
use crate::support::signing_key;
use crate::tree_fixture::trees;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};

const KEY: &str = "pve4b-0a1b2c3d4e";
const SERVER_ID: &str = "0123456789ABCDEF0123456789ABCDEF";
const WRONG_KEY: &str = "pve4b-9f8e7d6c5b";
const INRELEASE: &str = "debian/pve/dists/bookworm/InRelease";

/// Proxmox's apt repositories plus the ISO tree, as one server.
fn upstream(generation: u32) -> Upstream {
    let mut up = Upstream::proxmox(generation, signing_key()).expect("proxmox fixture");
    up.files.extend(trees(generation, signing_key()).files);
    up
}

/// How the config of a test grants access.
struct Access<'a> {
    /// `[[subscription]]` key, if any (always with [`SERVER_ID`]).
    key: Option<&'a str>,
    /// `use-subscription = "pve"` on the pve mirror and the iso tree.
    use_subscription: bool,
}

/// The server wants [`KEY`]:[`SERVER_ID`] for `debian/pve/` and `iso/`; pbs-client is public.
fn enterprise_env(up: Upstream) -> Env {
    let env = Env::new(up, &[]);
    for prefix in ["debian/pve/", "iso/"] {
        env.server.require_basic_auth(prefix, KEY, SERVER_ID);
    }
    env
}

fn write_config(env: &Env, access: &Access<'_>) {
    let base = env.server.base_url();
    let mut text = format!(
        "[store]\ndir = \"{}\"\n\n[sync]\nconcurrency = 4\nretries = 3\ntimeout = \"10s\"\n\n",
        env.store.display()
    );
    if let Some(key) = access.key {
        text += &format!("[[subscription]]\nkey = \"{key}\"\nserver-id = \"{SERVER_ID}\"\n\n");
    }
    let use_sub = if access.use_subscription { "use-subscription = \"pve\"\n" } else { "" };
    for (spec, uses) in [(&PVE, use_sub), (&PBS_CLIENT, "")] {
        text += &format!(
            "[[mirror]]\nid = \"{}\"\nrepository = \"deb {base}/{} {} {}\"\narchitectures = [\"amd64\", \"all\"]\n\
             key = \"{}\"\n{uses}\n",
            spec.id,
            spec.root,
            spec.suite,
            spec.components,
            env.key.display()
        );
    }
    text += &format!("[[tree]]\nid = \"iso\"\nurl = \"{base}/iso/\"\nkey = \"{}\"\n{use_sub}", env.key.display());
    std::fs::write(&env.config, text).expect("write config");
    chmod(env, 0o600);
}

fn chmod(env: &Env, mode: u32) {
    std::fs::set_permissions(&env.config, std::fs::Permissions::from_mode(mode)).expect("chmod config");
}

/// `Basic base64(key:server-id)`, as proxmox-offline-mirror sends it.
fn header(key: &str) -> String {
    format!("Basic {}", base64(format!("{key}:{SERVER_ID}").as_bytes()))
}

/// Stdout and stderr of a run; panics if either shows a subscription key or its header.
fn shown(out: &Output) -> String {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for secret in [KEY, WRONG_KEY, &base64(format!("{KEY}:{SERVER_ID}").as_bytes())[..12]] {
        assert!(!all.contains(secret), "output shows the secret {secret:?}:\n{all}");
    }
    all
}

/// The one line of `out` that contains `needle`.
fn line_with(out: &str, needle: &str) -> String {
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(needle)).collect();
    assert!(!lines.is_empty(), "no line with {needle:?}:\n{out}");
    lines[0].to_owned()
}

#[test]
fn enterprise_mirror_and_tree_sync_with_their_subscription_only() {
    let up = upstream(0);
    let env = enterprise_env(up.clone());
    write_config(&env, &Access { key: Some(KEY), use_subscription: true });
    let out = env.run(&["sync"]);
    let all = shown(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("chmod 600"), "a 0600 config was warned about:\n{all}");
    for id in [PVE.id, PBS_CLIENT.id, "iso"] {
        assert!(text(&out.stdout).contains(&format!("{id}: new snapshot")), "{all}");
    }
    let files = env.published_files(PVE.id);
    let deb = up.deb_paths().into_iter().find(|p| p.starts_with("debian/pve/")).expect("a pve .deb").to_owned();
    assert_eq!(files.get(&deb["debian/pve/".len()..]).map(Vec::as_slice), up.bytes(&deb), "{deb}");
    assert_eq!(files.get("dists/bookworm/InRelease").map(Vec::as_slice), up.bytes(INRELEASE));
    assert!(env.published_files("iso").keys().any(|p| p.ends_with(".iso")));

    let requests = env.server.requests();
    let expected = header(KEY);
    for r in &requests {
        let wants_key = r.path.starts_with("debian/pve/") || r.path.starts_with("iso/");
        let want = wants_key.then_some(expected.as_str());
        assert_eq!(r.authorization.as_deref(), want, "{} {}", r.method, r.path);
        assert_ne!(r.status, 401, "{}", r.path);
    }
    assert!(requests.iter().any(|r| r.path.starts_with("debian/pbs-client/")), "pbs-client not fetched");

    let show = env.run(&["config", "show"]);
    let rendered = shown(&show);
    assert!(rendered.contains("key = \"pve4b-0a…(masked)\""), "{rendered}");
    assert_eq!(rendered.matches("use-subscription = \"pve\"").count(), 2, "{rendered}");
    shown(&env.run(&["status", "--json"]));

    // Group- or world-readable keys earn a warning on every load.
    chmod(&env, 0o644);
    let check = env.run(&["config", "check"]);
    assert!(check.status.success());
    assert!(shown(&check).contains("chmod 600"), "no warning about a 0644 config holding keys");
}

#[test]
fn refused_subscriptions_fail_in_one_line_and_keep_the_snapshot() {
    let env = enterprise_env(upstream(0));
    write_config(&env, &Access { key: Some(KEY), use_subscription: true });
    env.sync_ok(&[]);
    let published = env.published(PVE.id).expect("published").name;
    env.server.swap(upstream(1));
    let url = env.server.url(INRELEASE);

    // A wrong key: upstream says 401 once (not retried), the line says whose key it rejected.
    write_config(&env, &Access { key: Some(WRONG_KEY), use_subscription: true });
    env.server.reset_hits();
    let out = env.run(&["sync", PVE.id]);
    let all = shown(&out);
    assert!(!out.status.success(), "{all}");
    let line = line_with(&text(&out.stderr), "rejected the subscription key for pve");
    assert!(line.contains(PVE.id) && line.contains(&url) && line.contains("pve4b-9f…(masked)"), "{line}");
    assert_eq!(env.server.hits(INRELEASE), 1, "a refused key was retried");
    assert_eq!(env.server.requests()[0].authorization, Some(header(WRONG_KEY)));
    assert_eq!(env.published(PVE.id).expect("published").name, published);

    // No subscription at all: the line says what to add.
    write_config(&env, &Access { key: None, use_subscription: false });
    env.server.reset_hits();
    let out = env.run(&["sync", PVE.id]);
    let all = shown(&out);
    assert!(!out.status.success(), "{all}");
    let line = line_with(&text(&out.stderr), "needs a subscription");
    assert!(line.contains(PVE.id) && line.contains(&url), "{line}");
    assert!(line.contains("add [[subscription]] and use-subscription = \"pve\""), "{line}");
    assert!(env.server.requests().iter().all(|r| r.authorization.is_none()));
    assert_eq!(env.published(PVE.id).expect("published").name, published);
    let status = env.run(&["status", "--json"]);
    assert!(shown(&status).contains("needs a subscription"), "{}", text(&status.stdout));

    // use-subscription without its [[subscription]]: each entry that names it cannot run, and
    // says so in one line of its own (the mirror and the tree).
    write_config(&env, &Access { key: None, use_subscription: true });
    for args in [&["config", "check"][..], &["sync"][..]] {
        let out = env.run(args);
        assert!(!out.status.success(), "{args:?} accepted a use-subscription without a key");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 2, "{err}");
        let line = line_with(&err, "mirror \"pve_bookworm\": use-subscription: no [[subscription]] has a pve key");
        assert!(line.contains("config.toml:"), "{line}");
        line_with(&err, "tree \"iso\": use-subscription: no [[subscription]] has a pve key");
    }
    assert_eq!(env.published(PVE.id).expect("published").name, published);
}

#[test]
fn credentials_follow_redirects_on_the_origin_only() {
    let up = upstream(0);
    let env = enterprise_env(up.clone());
    let elsewhere = TestServer::start(up.clone());
    write_config(&env, &Access { key: Some(KEY), use_subscription: true });
    // Two pve .debs of different content; every path of that content is redirected once (the
    // pool downloads shared content from one of its paths).
    let pve: Vec<&str> = up.deb_paths().into_iter().filter(|p| p.starts_with("debian/pve/")).collect();
    let same = |a: &str| -> Vec<&str> { pve.iter().copied().filter(|q| up.bytes(q) == up.bytes(a)).collect() };
    let away = same(pve[0]);
    let other = pve.iter().copied().find(|p| !away.contains(p)).expect("two distinct pve .debs");
    let home = same(other);
    for path in &away {
        env.server.redirect_next(path, &elsewhere.url(path), 1);
    }
    // Same origin: the second request must carry the key again, or the server answers 401. The
    // target differs by its query (a redirect to the very same URL is a loop, for apt too).
    for path in &home {
        env.server.redirect_next(path, &format!("{}?again", env.server.url(path)), 1);
    }
    let out = env.run(&["sync", PVE.id]);
    let all = shown(&out);
    assert!(out.status.success(), "{all}");
    let files = env.published_files(PVE.id);
    for deb in away.iter().chain(&home) {
        assert_eq!(files.get(&deb["debian/pve/".len()..]).map(Vec::as_slice), up.bytes(deb), "{deb}");
    }
    let theirs = elsewhere.requests();
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert!(away.contains(&theirs[0].path.as_str()), "{theirs:?}");
    assert_eq!(theirs[0].authorization, None, "the key went to another origin");
    let ours: Vec<_> = env
        .server
        .requests()
        .into_iter()
        .filter(|r| away.contains(&r.path.as_str()) || home.contains(&r.path.as_str()))
        .collect();
    let statuses: Vec<u16> = ours.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 302).count(), 2, "{ours:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{ours:?}");
    assert!(ours.iter().all(|r| r.authorization == Some(header(KEY))), "{ours:?}");
}

#[test]
fn config_add_of_an_enterprise_preset_hints_at_the_subscription() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("config.toml");
    let key = crate::support::write_public_key(tmp.path()).display().to_string();
    let run = |args: &[&str]| Command::new(BIN).arg("--config").arg(&config).args(args).output().expect("run");
    let add = |preset: &str| run(&["config", "add", "--preset", preset, "--key", &key, "--store", "/srv/store"]);

    let out = add("pve:bookworm:enterprise");
    assert!(out.status.success(), "a missing subscription is not an error: {}", text(&out.stderr));
    let hint = line_with(&text(&out.stderr), "hint:");
    assert!(hint.contains("pve:bookworm:enterprise needs a Proxmox subscription") && hint.contains("[[subscription]]"));
    let written = std::fs::read_to_string(&config).expect("config written");
    assert!(written.contains("use-subscription = \"pve\""), "{written}");
    let check = run(&["config", "check"]);
    assert!(!check.status.success());
    assert!(
        text(&check.stderr).contains("use-subscription: no [[subscription]] has a pve key"),
        "{}",
        text(&check.stderr)
    );

    // With a pve key (and the file made private) Ceph's enterprise preset needs nothing more, and
    // rewriting the file keeps it private.
    let subscription = format!("\n[[subscription]]\nkey = \"{KEY}\"\nserver-id = \"{SERVER_ID}\"\n");
    std::fs::write(&config, written + &subscription).expect("append subscription");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = add("ceph-squid:bookworm:enterprise");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("hint:"), "{}", text(&out.stderr));
    shown(&out);
    let mode = std::fs::metadata(&config).expect("config").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "config add made a config holding keys {mode:o}");
    let check = run(&["config", "check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let loaded = pmirror_fs::config::Config::load(&config).expect("loads");
    let products: Vec<_> = loaded.mirrors.iter().map(|m| m.subscription.as_ref().map(|s| s.product.name())).collect();
    assert_eq!(products, [Some("pve"), Some("pve")]);
}
