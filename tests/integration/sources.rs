//! Issue 15, several sources per mirror and tree: a dead first source, a source serving a
//! tampered .deb, a stale source (older InRelease), a source that cuts the ISO part-way (the
//! rest comes from the next one with a Range request) and a crawling source — each on its own
//! test server on 127.0.0.1; every file is still held to the publisher's signature and hashes.

use crate::harness::{text, Env, DEBIAN, PVE};
use crate::support::fixture::Upstream;
use crate::support::http::TestServer;
use crate::support::signing_key;
use crate::tree_fixture::trees;

/// A URL nothing listens on (a port bound, then closed).
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/")
}

/// `env`'s config with one mirror of `spec` whose repository is at `first` and `more` sources.
fn mirror_config(env: &mut Env, spec: &crate::harness::MirrorSpec, first: &str, more: &[String]) {
    let sources: Vec<String> = more.iter().map(|b| format!("\"{}/{}\"", b.trim_end_matches('/'), spec.root)).collect();
    let block = format!(
        "[[mirror]]\nid = \"{}\"\nrepository = \"deb {}/{} {} {}\"\narchitectures = [\"amd64\", \"all\"]\nkey = \"{}\"\nsources = [{}]\n",
        spec.id,
        first.trim_end_matches('/'),
        spec.root,
        spec.suite,
        spec.components,
        env.key.display(),
        sources.join(", ")
    );
    env.write_config(&[], &block);
}

fn sync_out(env: &Env) -> String {
    let out = env.run(&["sync"]);
    assert!(out.status.success(), "sync failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// The published snapshot holds exactly `up`'s files of the mirror.
fn holds(env: &Env, spec: &crate::harness::MirrorSpec, up: &Upstream) {
    let got = env.published_files(spec.id);
    for (path, bytes) in &got {
        let served = up.bytes(&format!("{}/{path}", spec.root));
        assert_eq!(served, Some(bytes.as_slice()), "{path} differs from the good source's");
    }
    assert!(got.keys().any(|p| p.ends_with(".deb")), "no packages published");
}

#[test]
fn a_dead_first_source_fails_over_to_the_next() {
    let up = Upstream::proxmox(0, signing_key()).unwrap();
    let mut env = Env::new(up.clone(), &[]);
    let dead = dead_url();
    let second = env.server.base_url();
    mirror_config(&mut env, &PVE, &dead, &[second]);
    let out = sync_out(&env);
    holds(&env, &PVE, &up);
    assert!(out.contains(&format!("source {dead}")), "the dead source is not named:\n{out}");
    assert!(out.contains("not used for this run's metadata"), "{out}");
    let status = text(&env.run(&["status", "--json"]).stdout);
    assert!(status.contains(&dead), "status does not name the dead source:\n{status}");
}

#[test]
fn a_source_serving_a_tampered_deb_is_not_used_again_that_run() {
    let good = Upstream::debian(0, signing_key()).unwrap();
    let mut bad = good.clone();
    let debs: Vec<String> = good.deb_paths().iter().map(|p| p.to_string()).collect();
    for deb in &debs {
        let mut tampered = good.bytes(deb).unwrap().to_vec();
        tampered[0] ^= 0xff;
        bad.put(deb, tampered, std::time::SystemTime::now());
    }
    let mut env = Env::new(bad, &[]);
    let second = TestServer::start(good.clone());
    let first = env.server.base_url();
    // One request in flight per source: the first tampered package ends the bad source's part.
    mirror_config(&mut env, &DEBIAN, &first, &[second.base_url()]);
    let config = std::fs::read_to_string(&env.config).unwrap().replace("concurrency = 4", "concurrency = 1");
    std::fs::write(&env.config, config).unwrap();
    env.server.reset_hits();
    let out = sync_out(&env);
    holds(&env, &DEBIAN, &good);
    assert!(
        out.contains(&format!(
            "source {}/debian/: not used again this run: served a bad file",
            first.trim_end_matches('/')
        )),
        "{out}"
    );
    // One tampered package, then nothing more was asked of it; the good one served them all.
    let asked: Vec<String> =
        env.server.requests().into_iter().map(|r| r.path).filter(|p| p.ends_with(".deb")).collect();
    assert_eq!(asked.len(), 1, "the bad source was asked for more packages: {asked:?}");
    let published = env.published_files(DEBIAN.id);
    let debs_published = published.keys().filter(|p| p.ends_with(".deb")).count();
    let from_good = debs.iter().filter(|d| second.hits(d) == 1).count();
    assert_eq!(from_good, debs_published, "every package came from the good source once");
    let status = text(&env.run(&["status", "--json"]).stdout);
    assert!(status.contains("served a bad file"), "status does not name the bad source:\n{status}");
}

#[test]
fn a_stale_source_never_serves_the_metadata() {
    let stale = Upstream::proxmox(0, signing_key()).unwrap();
    let fresh = Upstream::proxmox(1, signing_key()).unwrap();
    let mut env = Env::new(stale.clone(), &[]);
    let second = TestServer::start(fresh.clone());
    let first = env.server.base_url();
    mirror_config(&mut env, &PVE, &first, &[second.base_url()]);
    env.server.reset_hits();
    let out = sync_out(&env);
    holds(&env, &PVE, &fresh);
    assert!(
        out.contains(&format!(
            "source {}/debian/pve/: not used for this run's metadata: stale",
            first.trim_end_matches('/')
        )),
        "{out}"
    );
    let dists: Vec<String> =
        env.server.requests().into_iter().map(|r| r.path).filter(|p| p.contains("/dists/")).collect();
    assert_eq!(dists, [stale.suite(PVE.root).unwrap().inrelease_path()], "the stale source served metadata");
    // Every source older than the published snapshot: refused, the snapshot stays.
    let published = env.published(PVE.id).unwrap();
    second.swap(stale);
    let out = env.run(&["sync"]);
    assert!(!out.status.success(), "a sync from stale sources only succeeded");
    let err = text(&out.stderr);
    assert!(err.contains("older than the published snapshot"), "{err}");
    assert_eq!(env.published(PVE.id).unwrap().name, published.name);
}

const ISO: &str = "iso/proxmox-ve_8.2-1.iso";

/// A tree env whose `iso` tree is at `first` with the env's server as its other source.
fn tree_with_sources(extra_sync: &str) -> (Env, TestServer) {
    let env = crate::rate_limit::iso_env(extra_sync);
    let first = TestServer::start(trees(0, signing_key()));
    let config = std::fs::read_to_string(&env.config).unwrap();
    let own = format!("url = \"{}/iso/\"", env.server.base_url().trim_end_matches('/'));
    let moved = format!(
        "url = \"{}/iso/\"\nsources = [\"{}/iso/\"]",
        first.base_url().trim_end_matches('/'),
        env.server.base_url().trim_end_matches('/')
    );
    assert_eq!(config.matches(&own).count(), 1, "{config}");
    std::fs::write(&env.config, config.replace(&own, &moved)).unwrap();
    (env, first)
}

fn iso_whole(env: &Env) {
    let want = trees(0, signing_key());
    let got = env.published_files("iso");
    assert_eq!(got.get("proxmox-ve_8.2-1.iso").map(Vec::as_slice), want.bytes(ISO), "the ISO is whole");
}

#[test]
fn an_iso_cut_off_on_one_source_resumes_on_the_next() {
    const CUT: usize = 1_000_000;
    let (env, first) = tree_with_sources("");
    first.truncate_next(ISO, CUT, 1);
    sync_out(&env);
    iso_whole(&env);
    let on_first: Vec<_> = first.requests().into_iter().filter(|r| r.path == ISO && r.method == "GET").collect();
    let on_second: Vec<_> = env.server.requests().into_iter().filter(|r| r.path == ISO && r.method == "GET").collect();
    assert_eq!(on_first.len(), 1, "{on_first:?}");
    // The same file (same Last-Modified) on the next source: only the rest is asked for.
    assert_eq!(on_second.len(), 1, "{on_second:?}");
    assert_eq!(on_second[0].range.as_deref(), Some(format!("bytes={CUT}-").as_str()), "{on_second:?}");
    assert_eq!(on_second[0].status, 206);
}

#[test]
fn a_crawling_source_is_abandoned_for_the_next() {
    let (env, first) = tree_with_sources("slow-rate = \"100K\"\nslow-time = \"2s\"\n");
    first.trickle_next(ISO, 4096, std::time::Duration::from_millis(100), 1);
    let out = sync_out(&env);
    iso_whole(&env);
    assert_eq!(env.server.hits(ISO), 1, "the next source was not asked for the ISO:\n{out}");
    assert_eq!(first.hits(ISO), 1, "the crawling source was asked again");
}
