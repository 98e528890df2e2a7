//! The daemon's loop against a real temporary store, without a mount: the target is a bare
//! [`ViewHandle`], the publishes are the catalog's own (with view images, as sync writes them),
//! and time is passed in, so a grace window expires without sleeping.

use super::*;
use crate::catalog::Catalog;
use crate::catalog::{NewSnapshot, Retention};
use crate::store::ViewPublisher;
use crate::tree::FileContent;
use serde_json::Value;

const GRACE: i64 = 100;
const RETENTION: Retention = Retention { keep: 3, grace_secs: GRACE };
/// What the test schedule says the sync timer does next.
const NEXT_RUN: i64 = 5_000;

/// A store with one configured mirror `m` (view `debian`), its config file, and a writing
/// catalog connection standing in for sync.
struct World {
    dir: tempfile::TempDir,
    config: Config,
    writer: Catalog,
}

fn config_text(store: &std::path::Path, with_mirror: bool) -> String {
    let mut text = format!("[store]\ndir = {:?}\nfsync = false\n\n[sync]\nkeep = 3\ngrace = \"{GRACE}s\"\n", store);
    if with_mirror {
        text += "\n[[mirror]]\nid = \"m\"\nrepository = \"deb http://example.org/debian bookworm main\"\n\
                 architectures = [\"amd64\"]\nkey = \"key.gpg\"\nview = \"debian\"\n";
    }
    text
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    // The config reads the key file's bytes; sync would interpret them, the daemon never does.
    std::fs::write(dir.path().join("key.gpg"), b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n").unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config_text(&store, true)).unwrap();
    let config = Config::load(&path).unwrap();
    let writer = Catalog::open(&store).unwrap();
    writer.upsert_mirror("m", "mirror", "debian", "http://example.org/debian").unwrap();
    World { dir, config, writer }
}

impl World {
    fn start(&self, now: i64) -> Daemon<ViewHandle> {
        let schedule: Schedule = Box::new(|| Some(NEXT_RUN));
        Daemon::start(self.config.clone(), schedule, now, |view, _pool_dir| Ok(ViewHandle::new(view))).unwrap()
    }

    /// Records a snapshot of `m` at `t` (its Release and one package per name) and publishes
    /// it as sync does: the view image written before the transaction commits.
    fn publish(&mut self, t: i64, release: &str, packages: &[&str]) -> u64 {
        let (id, _) = self.writer.record_snapshot(&snapshot_of(t, release, packages)).unwrap();
        let mut publisher = ViewPublisher::for_store(&self.config.store.dir, false, vec![])
            .with_web(crate::web::placeholders(&self.config));
        let published = self.writer.publish(&[id], t, RETENTION, |src| publisher.prepare(src));
        publisher.finish(published.is_ok());
        published.unwrap().generation
    }

    fn images(&self) -> Vec<std::path::PathBuf> {
        let dir = crate::store::images_dir(&self.config.store.dir);
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
    }
}

/// A snapshot of `m` at `t`: its Release, a Packages index and one package per name.
fn snapshot_of(t: i64, release: &str, packages: &[&str]) -> NewSnapshot {
    crate::catalog::tests::snapshot("m", t, release, packages)
}

/// Bytes of the view image the served view's tables are mapped from (0: built in memory).
fn mapped(daemon: &Daemon<ViewHandle>) -> usize {
    daemon.target().current().stats().mapped
}

fn has(daemon: &Daemon<ViewHandle>, path: &str) -> bool {
    daemon.target().current().lookup_path(path).is_some()
}

/// The served status.json, parsed, and its mtime.
fn status(daemon: &Daemon<ViewHandle>) -> (Value, i64) {
    let view = daemon.target().current();
    let node = view.lookup_path(STATUS_FILE).expect("the view has status.json");
    let Some(FileContent::Inline(bytes)) = node.content() else { panic!("status.json is not an inline file") };
    (serde_json::from_slice(bytes).unwrap(), node.attr().mtime)
}

#[test]
fn a_publish_is_picked_up_from_its_image() {
    let mut w = world();
    assert_eq!(w.publish(1_000, "r1", &["a"]), 1);
    let mut daemon = w.start(1_000);
    assert_eq!(daemon.generation(), 1);
    assert!(has(&daemon, "debian/pool/a.deb"));
    assert!(mapped(&daemon) > 0, "started from the image");
    assert_eq!(daemon.tick(1_001), Tick::Unchanged);

    assert_eq!(w.publish(1_010, "r2", &["a", "b"]), 2);
    assert_eq!(w.images().len(), 1, "the publisher left the new generation's image");
    let before = daemon.target().current().generation();
    assert_eq!(daemon.tick(1_010), Tick::Switched { generation: 2 });
    assert!(has(&daemon, "debian/pool/b.deb"));
    assert!(mapped(&daemon) > 0, "switched to the image");
    assert!(daemon.target().current().generation() > before);
    assert_eq!(daemon.tick(1_011), Tick::Unchanged);
}

#[test]
fn without_its_image_a_publish_is_built_from_the_catalog() {
    let mut w = world();
    let mut daemon = w.start(1_000);
    assert_eq!(daemon.generation(), 0);
    assert!(!has(&daemon, "debian"));
    w.publish(1_000, "r1", &["a"]);
    for image in w.images() {
        std::fs::remove_file(image).unwrap();
    }
    assert_eq!(daemon.tick(1_001), Tick::Switched { generation: 1 });
    assert!(has(&daemon, "debian/pool/a.deb"));
    assert_eq!(mapped(&daemon), 0, "built in memory");
    assert!(has(&daemon, STATUS_FILE), "a built view is given status.json too");
    assert_eq!(daemon.tick(1_002), Tick::Unchanged);
}

#[test]
fn status_json_follows_every_run_start_and_end() {
    let mut w = world();
    w.publish(1_000, "r1", &["a"]);
    let mut daemon = w.start(1_000);
    let (doc, _) = status(&daemon);
    assert_eq!(doc[0]["name"], "m");
    assert_eq!(doc[0]["next_schedule_ts"], NEXT_RUN, "the schedule passed in");

    w.writer.mark_started("m", 1_100).unwrap();
    let entries = daemon.target().current().entry_count();
    assert_eq!(daemon.tick(1_100), Tick::StatusRefreshed);
    let (doc, started_mtime) = status(&daemon);
    assert_eq!((doc[0]["status"].as_str(), doc[0]["last_started_ts"].as_i64()), (Some("syncing"), Some(1_100)));
    assert!(started_mtime >= 1_100);
    assert_eq!(daemon.target().current().entry_count(), entries, "the tree is shared, not rebuilt");
    assert!(mapped(&daemon) > 0, "still the image's tables");
    assert_eq!(daemon.tick(1_100), Tick::Unchanged);

    // A run that fails within the same second still shows, with a later mtime.
    w.writer.mark_finished("m", 1_100, Err("upstream said 503")).unwrap();
    assert_eq!(daemon.tick(1_100), Tick::StatusRefreshed);
    let (doc, ended_mtime) = status(&daemon);
    assert_eq!(doc[0]["status"], "failed");
    assert_eq!(doc[0]["error_msg"], "upstream said 503");
    assert!(ended_mtime > started_mtime, "If-Modified-Since sees the change");
    assert_eq!(daemon.generation(), 1, "no publish happened");
}

#[test]
fn status_json_reads_the_config_again() {
    let w = world();
    let mut daemon = w.start(1_000);
    assert_eq!(status(&daemon).0[0]["configured"], true);
    // The mirror leaves the config while the mount runs: its next run start shows it removed.
    let store = &w.config.store.dir;
    std::fs::write(w.dir.path().join("config.toml"), config_text(store, false)).unwrap();
    w.writer.mark_started("m", 1_100).unwrap();
    assert_eq!(daemon.tick(1_100), Tick::StatusRefreshed);
    let (doc, _) = status(&daemon);
    assert_eq!((doc[0]["configured"].as_bool(), doc[0]["status"].as_str()), (Some(false), Some("disabled")));
    assert_eq!(doc[0]["next_schedule_ts"], 0, "a removed entry has no next run");
}

#[test]
fn a_snapshot_leaving_the_grace_window_disappears() {
    let mut w = world();
    w.publish(1_000, "r1", &["a"]);
    w.publish(1_010, "r2", &["b"]);
    // r1 was superseded at 1010: its packages stay visible until 1010 + GRACE.
    let mut daemon = w.start(1_020);
    assert!(has(&daemon, "debian/pool/a.deb") && has(&daemon, "debian/pool/b.deb"));
    assert!(mapped(&daemon) > 0, "the image is valid until the grace window ends");
    assert!(!daemon.expired(1_109));
    assert_eq!(daemon.tick(1_109), Tick::Unchanged);
    assert!(daemon.expired(1_110));
    assert_eq!(daemon.tick(1_110), Tick::Switched { generation: 2 });
    assert!(!has(&daemon, "debian/pool/a.deb"), "the expired snapshot's package is gone");
    assert_eq!(mapped(&daemon), 0, "the expired image was not mapped; the view was built");
    assert!(has(&daemon, "debian/pool/b.deb"));
    assert!(has(&daemon, STATUS_FILE));
    assert_eq!(daemon.tick(1_200), Tick::Unchanged, "nothing else expires");
}

/// A target whose mount went away.
struct Unmounted(ViewHandle);

impl ViewTarget for Unmounted {
    fn current(&self) -> Arc<View> {
        self.0.current()
    }

    fn switch(&self, view: View) {
        self.0.store(view);
    }

    fn is_alive(&self) -> bool {
        false
    }
}

#[test]
fn run_ends_on_the_stop_flag_or_when_the_target_is_gone() {
    let w = world();
    let schedule = || -> Schedule { Box::new(|| None) };
    let mut serving = w.start(1_000);
    assert_eq!(serving.run(&AtomicBool::new(true)), Ended::Stopped);
    let mount = |view, _| Ok(Unmounted(ViewHandle::new(view)));
    let mut gone = Daemon::start(w.config.clone(), schedule(), 1_000, mount).unwrap();
    assert_eq!(gone.run(&AtomicBool::new(false)), Ended::TargetGone);
}

#[test]
fn a_failed_mount_is_the_start_error() {
    let w = world();
    let refused = Daemon::<ViewHandle>::start(w.config.clone(), Box::new(|| None), 1_000, |_, pool_dir| {
        assert!(pool_dir.ends_with("pool"), "{}", pool_dir.display());
        Err(DaemonError::Catalog(CatalogError::Refused("no mount today".into())))
    });
    assert_eq!(refused.err().map(|e| e.to_string()).as_deref(), Some("no mount today"));
}

/// A shared store: the writer (a real `Store`) publishes the pointer, the image and the status
/// document; the daemon serves them with no catalog to read — the test deletes it — and writes
/// nothing into the store.
#[test]
fn a_shared_store_is_served_without_its_catalog() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.gpg"), b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n").unwrap();
    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let path = dir.path().join("config.toml");
    let cache = dir.path().join("cache");
    let text = config_text(&store_dir, true).replace("fsync = false\n", "fsync = false\nshared = true\n")
        + &format!("\n[mount]\ncache-dir = {cache:?}\n");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let settings = crate::store::Settings::of(&config);
    let publish = |t: i64, packages: &[&str]| {
        let mut store = crate::store::Store::open(settings.clone()).unwrap();
        store.catalog().upsert_mirror("m", "mirror", "debian", "http://example.org/debian").unwrap();
        store.catalog().mark_started("m", t).unwrap();
        let (id, _) = store.record(&snapshot_of(t, &format!("r{t}"), packages), &[]).unwrap();
        let generation = store.publish(&[id]).unwrap().generation;
        store.catalog().mark_finished("m", t, Ok((1, 1))).unwrap();
        generation
    };
    let views = crate::store::images_dir(&store_dir);
    let no_catalog = || {
        for name in ["catalog.db", "catalog.db-journal", "catalog.db-wal", "catalog.db-shm"] {
            let _ = std::fs::rename(store_dir.join(name), dir.path().join(name));
        }
    };
    let with_catalog = || {
        for name in ["catalog.db", "catalog.db-journal"] {
            let _ = std::fs::rename(dir.path().join(name), store_dir.join(name));
        }
    };
    let listing = || {
        let mut names: Vec<String> = walkdir(&store_dir);
        names.sort();
        names
    };

    assert_eq!(publish(1_000, &["a"]), 1);
    assert!(!store_dir.join("catalog.db-wal").exists(), "a shared store's catalog keeps a rollback journal");
    assert_eq!(crate::store::shared::read_pointer(&views).unwrap().map(|p| p.0), Some(1));
    no_catalog();
    let before = listing();
    let schedule: Schedule = Box::new(|| Some(NEXT_RUN));
    let mut daemon = Daemon::start(config.clone(), schedule, 1_000, |view, _| Ok(ViewHandle::new(view))).unwrap();
    assert_eq!(daemon.generation(), 1);
    assert!(has(&daemon, "debian/pool/a.deb") && mapped(&daemon) > 0, "the image, mapped");
    let (doc, _) = status(&daemon);
    assert_eq!((doc[0]["name"].as_str(), doc[0]["status"].as_str()), (Some("m"), Some("success")), "{doc}");

    with_catalog();
    assert_eq!(publish(1_010, &["a", "b"]), 2);
    no_catalog();
    assert_eq!(daemon.tick(1_011), Tick::Switched { generation: 2 });
    let local: Vec<String> = walkdir(&cache.join("views"));
    assert_eq!(local.len(), 1, "the current image, copied to the node's cache: {local:?}");
    assert!(local[0].starts_with("000000000002-"), "{local:?}");
    assert!(has(&daemon, "debian/pool/b.deb"));
    assert!(has(&daemon, "debian/pool/a.deb"), "the superseded image's objects are still there");
    assert_eq!(daemon.tick(1_012), Tick::Unchanged);
    let after: Vec<String> =
        listing().into_iter().filter(|n| !n.contains(".view") && !n.starts_with("pool/")).collect();
    let before: Vec<String> = before.into_iter().filter(|n| !n.contains(".view") && !n.starts_with("pool/")).collect();
    assert_eq!(after, before, "the daemon wrote nothing into the store");
    assert_eq!(
        std::fs::read_dir(&views)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "view"))
            .count(),
        2,
        "a superseded image stays for gc-delay on a shared store"
    );

    // A writer that died between its commit and the pointer: the next one writes it again.
    with_catalog();
    crate::store::shared::write_pointer(&views, 1, 0, false).unwrap();
    drop(crate::store::Store::open(settings.clone()).unwrap());
    assert_eq!(crate::store::shared::read_pointer(&views).unwrap().map(|p| p.0), Some(2));
}

/// Every file under `root`, relative.
fn walkdir(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out
}

/// With `[web]` the daemon fills the front page with status.json: the entry, its state, the
/// published snapshot and the next scheduled run it was given; without `[web]` there is none.
#[test]
fn the_front_page_follows_status_json() {
    let mut w = world();
    let path = w.dir.path().join("config.toml");
    std::fs::write(&path, config_text(&w.config.store.dir, true) + "\n[web]\ntitle = \"Unit mirror\"\n").unwrap();
    w.config = Config::load(&path).unwrap();
    w.publish(1_000, "r1", &["a"]);
    let mut daemon = w.start(1_000);
    let page = inline_text;
    let index = page(&daemon, crate::web::INDEX);
    assert!(index.contains("<h1>Unit mirror</h1>") && index.contains("<tr id=\"entry-m\" class=\"none\">"), "{index}");
    assert!(index.contains(&crate::status::tunasync_time(Some(NEXT_RUN)).0), "the next run: {index}");
    assert!(page(&daemon, "status/m.html").contains("<h1>m</h1>"));
    assert!(daemon.target().current().lookup_path("status/m.asc").is_some(), "the (armored) key beside the page");
    w.writer.mark_started("m", 1_100).unwrap();
    w.writer.mark_finished("m", 1_101, Err("upstream said 503")).unwrap();
    assert_eq!(daemon.tick(1_101), Tick::StatusRefreshed);
    let index = page(&daemon, crate::web::INDEX);
    assert!(
        index.contains("class=\"failed\"") && index.contains("<div class=\"reason\">upstream said 503</div>"),
        "{index}"
    );
    assert!(page(&daemon, "status/m.html").contains("failed in 1 s"), "the run is in the chart");

    std::fs::write(&path, config_text(&w.config.store.dir, true)).unwrap();
    w.config = Config::load(&path).unwrap();
    w.publish(1_200, "r2", &["a"]);
    let daemon = w.start(1_200);
    assert!(daemon.target().current().lookup_path(crate::web::INDEX).is_none(), "no [web], no page");
}

#[test]
fn the_front_page_links_only_to_pages_the_view_has() {
    let mut w = world();
    let path = w.dir.path().join("config.toml");
    let web = "\n[web]\ntitle = \"Unit mirror\"\n";
    std::fs::write(&path, config_text(&w.config.store.dir, true) + web).unwrap();
    w.config = Config::load(&path).unwrap();
    w.publish(1_000, "r1", &["a"]);
    let mut daemon = w.start(1_000);
    // An entry added to the config after that publish: listed at the next status change, but the
    // view has no page or key of it until a publish builds one with the new config.
    let added = "\n[[mirror]]\nid = \"n\"\nrepository = \"deb http://example.org/other bookworm main\"\n\
                 architectures = [\"amd64\"]\nkey = \"key.gpg\"\nview = \"other\"\n";
    std::fs::write(&path, config_text(&w.config.store.dir, true) + added + web).unwrap();
    w.writer.upsert_mirror("n", "mirror", "other", "http://example.org/other").unwrap();
    w.writer.mark_started("n", 1_100).unwrap();
    assert_eq!(daemon.tick(1_100), Tick::StatusRefreshed);
    let index = inline_text(&daemon, crate::web::INDEX);
    assert!(index.contains("<tr id=\"entry-n\" class=\"syncing\"><td>n <small>"), "n is listed, not linked: {index}");
    assert!(!index.contains("status/n.") && index.contains("href=\"status/m.html\""), "{index}");
    assert!(index.contains("<section id=\"use-n\"><h3>n</h3><p class=\"muted\">Not served yet"), "{index}");
    assert!(!has(&daemon, "status/n.html"));

    w.config = Config::load(&path).unwrap();
    w.publish(1_200, "r2", &["a"]);
    assert!(matches!(daemon.tick(1_200), Tick::Switched { .. }));
    let index = inline_text(&daemon, crate::web::INDEX);
    assert!(index.contains("<a href=\"status/n.html\">n</a>") && has(&daemon, "status/n.html"), "{index}");
    assert!(index.contains("<a href=\"status/n.asc\">status/n.asc</a>"), "n's key is linked: {index}");
}

/// The text of the inline file at `path` of the served view.
fn inline_text(daemon: &Daemon<ViewHandle>, path: &str) -> String {
    let view = daemon.target().current();
    let node = view.lookup_path(path).unwrap_or_else(|| panic!("the view has {path}"));
    let Some(FileContent::Inline(bytes)) = node.content() else { panic!("{path} is not an inline file") };
    String::from_utf8(bytes.to_vec()).unwrap()
}
