//! Issue 17: the front page, in a real browser. Headless Chromium (Debian's `chromium`) loads
//! `/index.html` and a mirror's page through the shipped nginx site and the mount: every
//! configured mirror is listed with its state, a failed one with its reason; every link on both
//! pages answers 200; the mirror's page lists an upgrade the last sync brought in; after a sync
//! the page shows the new snapshot within a second. The test saves a screenshot (into
//! `$PMIRROR_SCREENSHOT_DIR` too when set: `docs/front-page.png` and `docs/mirror-page.png` are made
//! that way).

use crate::harness::{text, Env, MirrorSpec, Mount, PVE};
use crate::support::client;
use crate::support::fixture::Upstream;
use crate::support::nginx::Nginx;
use crate::support::signing_key;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
/// A mirror whose upstream has no such repository: its sync fails (404).
const BROKEN: MirrorSpec = MirrorSpec { id: "broken", root: "debian/missing", suite: "bookworm", components: "main" };
/// Another such mirror, added to the config later.
const LATER: MirrorSpec = MirrorSpec { id: "later", root: "debian/missing-too", suite: "bookworm", components: "main" };
const WEB: &str = "[web]\nbase-url = \"http://mirror.example.org\"\ntitle = \"Example mirror\"\nnotice = \"Maintenance on Saturday\"\n";

/// What Chromium made of `url` (the DOM after load), run as root (no sandbox).
fn dump_dom(url: &str) -> String {
    let out = chromium(&["--dump-dom", url]);
    assert!(out.status.success(), "chromium --dump-dom {url}: {}", text(&out.stderr));
    text(&out.stdout)
}

fn chromium(args: &[&str]) -> std::process::Output {
    assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} not found: apt-get install chromium (scripts/test.sh does)");
    let profile = tempfile::tempdir().expect("chromium profile");
    let mut cmd = Command::new(CHROMIUM);
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]);
    cmd.arg(format!("--user-data-dir={}", profile.path().display()));
    cmd.args(args).output().expect("run chromium")
}

/// Every `href="…"` of `html`, resolved against `base` (the page's URL).
fn links(html: &str, base: &str) -> Vec<String> {
    let base = url::Url::parse(base).expect("page URL");
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|href| base.join(&href.replace("&amp;", "&")).expect("resolvable link").to_string())
        .collect()
}

fn assert_links_answer(html: &str, page: &str) -> usize {
    let links = links(html, page);
    for link in &links {
        let status = client::get(link).unwrap_or_else(|e| panic!("GET {link}: {e}")).status;
        assert_eq!(status, 200, "{link} (linked from {page})");
    }
    links.len()
}

fn snapshot_diff(env: &Env, from: &str, to: &str) -> serde_json::Value {
    let out = env.run(&["snapshot", "diff", PVE.id, from, to, "--json"]);
    assert!(out.status.success(), "snapshot diff: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("diff json")
}

/// The first upgrade of a diff: (name, old newest version, new newest version).
fn first_upgrade(diff: &serde_json::Value) -> (String, String, String) {
    let indices = diff["indices"].as_array().expect("a packages diff");
    let change = indices
        .iter()
        .flat_map(|i| i["changes"].as_array().cloned().unwrap_or_default())
        .find(|c| c["change"] == "upgraded")
        .expect("generation 1 upgrades a package");
    let last = |key: &str| change[key].as_array().and_then(|v| v.last()).and_then(|v| v.as_str()).unwrap().to_owned();
    (change["name"].as_str().unwrap().to_owned(), last("old"), last("new"))
}

#[test]
fn the_front_page_in_a_browser() {
    let upstream = Upstream::proxmox(0, signing_key()).expect("fixture");
    let mut env = Env::with_extra(upstream, &[&PVE, &BROKEN], WEB);
    let first = env.run(&["sync"]);
    assert_eq!(first.status.code(), Some(1), "the broken mirror fails: {}", text(&first.stderr));
    let mount = Mount::start(&env);
    let nginx = Nginx::start(&mount.dir);
    let index_url = nginx.url("/");

    let index = client::get(&index_url).expect("GET /");
    assert_eq!(index.header("content-type"), Some("text/html"), "the shipped site's type for the page");
    eprintln!("web: index.html is {} bytes", index.body.len());
    assert!(index.body.len() < 64 << 10, "the page stays small: {} bytes", index.body.len());
    let dom = dump_dom(&index_url);
    assert!(dom.contains("<h1>Example mirror</h1>") && dom.contains("Maintenance on Saturday"), "{dom}");
    assert!(dom.contains(r#"<tr id="entry-pve_bookworm" class="success">"#), "pve listed as succeeded: {dom}");
    let status: serde_json::Value =
        serde_json::from_slice(&client::get(&nginx.url("status.json")).unwrap().body).unwrap();
    let broken = status.as_array().unwrap().iter().find(|e| e["name"] == BROKEN.id).expect("broken in status.json");
    let reason = broken["error_msg"].as_str().expect("a reason").to_owned();
    assert!(dom.contains(r#"<tr id="entry-broken" class="failed">"#), "broken listed as failed: {dom}");
    let escaped = reason.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    assert!(dom.contains(&format!("<div class=\"reason\">{escaped}</div>")), "the reason {reason:?} is shown: {dom}");
    assert!(dom.contains("URIs: http://mirror.example.org/debian/pve"), "the snippet uses base-url");
    assert!(dom.contains(
        "deb [signed-by=/etc/apt/keyrings/pmirror-fs-pve_bookworm.gpg] http://mirror.example.org/debian/pve bookworm"
    ));
    let checked = assert_links_answer(&dom, &index_url);

    // The upstream moves on: after the sync the page shows the new snapshot within a second.
    let old = env.published(PVE.id).expect("published").name;
    env.server.swap(Upstream::proxmox(1, signing_key()).expect("fixture"));
    let synced = env.run(&["sync"]);
    let since = Instant::now();
    assert_eq!(synced.status.code(), Some(1), "{}", text(&synced.stderr));
    let new = env.published(PVE.id).expect("published").name;
    assert_ne!(old, new);
    while !text(&client::get(&index_url).unwrap().body).contains(&new) {
        assert!(since.elapsed() < Duration::from_secs(1), "the page did not show snapshot {new} within 1 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    let shown_after = since.elapsed();
    assert!(dump_dom(&index_url).contains(&format!(">{new}</a>")), "the browser shows the new snapshot");

    // The mirror's page: its snapshots, and the upgrade this sync brought in.
    let page_url = nginx.url(&format!("status/{}.html", PVE.id));
    let page = dump_dom(&page_url);
    let (name, from, to) = first_upgrade(&snapshot_diff(&env, &old, &new));
    let line = format!("upgraded: {name} {from} → {to}");
    assert!(page.contains(&line), "the mirror's page lists {line:?}: {page}");
    assert!(page.contains(&format!(">{old}</a>")) && page.contains(&format!(">{new}</a>")), "both snapshots listed");
    assert!(page.contains("<svg class=\"chart\""), "the runs chart");
    let checked = checked + assert_links_answer(&page, &page_url);
    let served = client::get(&page_url).expect("GET the mirror's page");
    assert_eq!(served.header("content-type"), Some("text/html"));
    eprintln!(
        "web: new snapshot shown after {shown_after:?}; {checked} links answered 200; the mirror's page is {} bytes",
        served.body.len()
    );

    // A rollback pins the mirror: the page says so.
    let rolled = env.run(&["snapshot", "publish", PVE.id, &old]);
    assert!(rolled.status.success(), "snapshot publish: {}", text(&rolled.stderr));
    let since = Instant::now();
    while !text(&client::get(&index_url).unwrap().body).contains("pinned (rolled back)") {
        assert!(since.elapsed() < Duration::from_secs(1), "the page did not mark the rollback within 1 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(dump_dom(&index_url).contains(&format!(">{old}</a> <span class=\"pinned\">pinned (rolled back)</span>")));

    snippet_works_with_apt(&mut env, &nginx);
    for (url, name) in [(&index_url, "front-page.png"), (&page_url, "mirror-page.png")] {
        let shot = screenshot(&env, url, name);
        eprintln!("web: screenshot {} ({} bytes)", shot.display(), std::fs::metadata(&shot).unwrap().len());
    }
    an_added_entry_gets_its_page(&mut env, &nginx);
}

/// A PNG of the page at 1400×1000, as `name`; copied to `$PMIRROR_SCREENSHOT_DIR` when set.
fn screenshot(env: &Env, url: &str, name: &str) -> PathBuf {
    let path = env.dir.path().join(name);
    let arg = format!("--screenshot={}", path.display());
    let out = chromium(&[&arg, "--window-size=1400,1000", "--hide-scrollbars", url]);
    assert!(out.status.success(), "chromium --screenshot: {}", text(&out.stderr));
    let png = std::fs::read(&path).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real picture: {} bytes", png.len());
    if let Some(dir) = std::env::var_os("PMIRROR_SCREENSHOT_DIR") {
        std::fs::copy(&path, Path::new(&dir).join(name)).expect("copy the screenshot");
    }
    path
}

/// The real apt client takes the page's snippet as it is: with `base-url` set to this nginx (the
/// daemon reads the config again at the next run), the key the page links and the deb822 stanza it
/// shows — only `Signed-By` pointed at where the test saved the key — give a clean update.
fn snippet_works_with_apt(env: &mut Env, nginx: &Nginx) {
    let web = WEB.replace("http://mirror.example.org", &nginx.base_url());
    env.write_config(&[&PVE, &BROKEN], &web);
    let _ = env.run(&["sync"]); // a run start and end: the pages are made again with the new config
    let since = Instant::now();
    let index = loop {
        let index = text(&client::get(&nginx.url("/")).unwrap().body);
        if index.contains(&format!("URIs: {}/debian/pve", nginx.base_url())) {
            break index;
        }
        assert!(since.elapsed() < Duration::from_secs(5), "the page never took the new base-url");
        std::thread::sleep(Duration::from_millis(20));
    };
    let section = index.split("<section id=\"use-pve_bookworm\">").nth(1).expect("the mirror's snippet");
    let stanza = section.split("<pre>Types: deb").nth(1).and_then(|s| s.split("</pre>").next()).expect("stanza");
    let stanza = format!("Types: deb{stanza}").replace("&amp;", "&");
    let key_url = nginx.url(&pmirror_fs::web::key_path(PVE.id, &std::fs::read(&env.key).unwrap()));
    let key = client::get(&key_url).expect("GET the key");
    assert_eq!((key.status, &key.body), (200, &std::fs::read(&env.key).unwrap()), "the page's key is the mirror's");
    let dir = env.dir.path().join("apt-snippet");
    let sources = dir.join("sources");
    std::fs::create_dir_all(&sources).unwrap();
    let saved = dir.join("pmirror-fs-pve_bookworm.gpg");
    std::fs::write(&saved, &key.body).unwrap();
    let stanza = stanza.replace("/etc/apt/keyrings/pmirror-fs-pve_bookworm.gpg", &saved.display().to_string());
    std::fs::write(sources.join("pmirror-fs-pve_bookworm.sources"), &stanza).unwrap();
    let apt = crate::support::apt::AptClient::with_sources(&dir.join("state"), &sources);
    apt.update().unwrap_or_else(|e| panic!("apt with the page's stanza:\n{stanza}\n{e}"));
    let debs = apt.download_all().expect("apt download");
    assert!(!debs.is_empty(), "apt downloaded the mirror's packages");
    eprintln!("web: apt took the page's stanza and key: {} packages downloaded", debs.len());
}

/// An entry added to the config whose first sync fails, with nothing new upstream: the view's
/// pages are fixed when it is built, so that sync publishes again (once) for its page, and every
/// link of the index still answers 200.
fn an_added_entry_gets_its_page(env: &mut Env, nginx: &Nginx) {
    let web = WEB.replace("http://mirror.example.org", &nginx.base_url());
    env.write_config(&[&PVE, &BROKEN, &LATER], &web);
    let generation = || env.catalog().view_pointer().expect("view pointer").0;
    let before = generation();
    let synced = env.run(&["sync"]);
    assert_eq!(synced.status.code(), Some(1), "broken and later fail: {}", text(&synced.stderr));
    let republished = generation();
    assert!(republished > before, "the sync published the view again for the new entry's page");
    let since = Instant::now();
    let index = loop {
        let index = text(&client::get(&nginx.url("/")).unwrap().body);
        if index.contains(r#"<a href="status/later.html">later</a>"#) {
            break index;
        }
        assert!(since.elapsed() < Duration::from_secs(1), "the index did not link the new entry within 1 s: {index}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(index.contains(r#"<tr id="entry-later" class="failed">"#), "{index}");
    let checked = assert_links_answer(&index, &nginx.url("/"));
    let again = env.run(&["sync"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stderr));
    assert_eq!(generation(), republished, "a config the view already shows publishes nothing");
    eprintln!("web: the added entry's page was published at generation {republished}; {checked} links answered 200");
}
