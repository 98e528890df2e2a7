//! Issue 6: what an operator installs, runs and watches — the demo script, `config import` and
//! `config add`, `status --json` (and the mount's /status.json) against the documented schema,
//! the Prometheus textfile, the systemd units, man pages and completions, and the .deb.

mod checks;
mod import;
mod install;
mod pty;
mod readme;
mod readme_text;
mod systemd_boot;

use crate::harness::{text, Env, Mount, BIN, PBS_CLIENT, PVE};
use crate::support::fixture::{Fault, Upstream};
use crate::support::signing_key;
use crate::sync::wait_for;
use pmirror_fs::config::Config;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn proxmox(generation: u32) -> Upstream {
    Upstream::proxmox(generation, signing_key()).expect("proxmox fixture")
}

/// `make-upstream` as `cargo build --examples` leaves it (scripts/test.sh builds it first:
/// `cargo test` only builds examples as test harnesses, under hashed names).
fn make_upstream() -> PathBuf {
    let debug_dir = Path::new(BIN).parent().expect("target dir");
    let path = debug_dir.join("examples/make-upstream");
    assert!(path.exists(), "{} missing: run `cargo build --examples` first (scripts/test.sh does)", path.display());
    path
}

fn demo(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(Path::new(ROOT).join("scripts/demo.sh"));
    c.args(args).env("PMIRROR_FS_BIN", BIN).env("MAKE_UPSTREAM", make_upstream()).env("DEMO_DIR", dir);
    c.stdin(std::process::Stdio::null());
    // The Ctrl-C case needs SIGINT: a test run started in the background of a non-interactive
    // shell inherits it ignored, and a shell cannot trap a signal ignored at its start.
    // SAFETY: signal() is async-signal-safe; this runs in the child just before exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    c
}

#[test]
fn demo_runs_to_completion_and_cleans_up_on_exit_and_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = demo(&dir, &["--no-wait"]).output().expect("run demo.sh");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", text(&out.stderr));
    for needle in [
        "added component pvetest to mirror pve_bookworm",
        "pve_bookworm: new snapshot",
        "published generation 2",
        "Get:3 http://127.0.0.1:",
        "\"name\": \"pve_bookworm\"",
        "pmirror_fs_sync_success{mirror=\"pve_bookworm\",kind=\"mirror\"} 1",
        "/status.json",
        "==> Cleaning up",
    ] {
        assert!(stdout.contains(needle), "demo output lacks {needle:?}:\n{stdout}");
    }
    assert!(!dir.exists(), "work directory left behind");
    // Interactive mode: waits until Ctrl-C, then unmounts, stops nginx and removes everything.
    let mut child = demo(&dir, &["--wait"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("Press Ctrl-C") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert!(n > 0, "demo ended before waiting:\n{seen}");
        seen += &line;
    }
    assert!(crate::harness::is_mounted(&dir.join("mnt")), "not mounted while the demo waits");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "Ctrl-C exit status");
    assert!(!dir.exists(), "work directory left behind after Ctrl-C");
    assert!(!crate::harness::is_mounted(&dir.join("mnt")));
}

fn status_json(env: &Env) -> Value {
    let out = env.run(&["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

fn schema() -> Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docs/status.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Schema-valid, every `_ts` agrees with its text, and the entry named `id`.
fn checked<'a>(doc: &'a Value, id: &str) -> &'a Value {
    let errors = checks::validate(&schema(), doc);
    assert!(errors.is_empty(), "status does not match docs/status.schema.json: {errors:#?}\n{doc:#}");
    for entry in doc.as_array().unwrap() {
        for field in ["last_update", "last_started", "last_ended", "next_schedule"] {
            let (t, ts) = (entry[field].as_str().unwrap(), entry[format!("{field}_ts")].as_i64().unwrap());
            assert_eq!(checks::parse_tunasync_time(t).unwrap_or(0), ts, "{field} of {entry}");
        }
    }
    doc.as_array().unwrap().iter().find(|e| e["name"] == id).unwrap_or_else(|| panic!("no {id} in {doc:#}"))
}

#[test]
fn status_json_matches_its_schema_after_success_and_failure_and_in_the_mount() {
    let mut env = Env::new(proxmox(0), &[&PVE, &PBS_CLIENT]);
    // Before the first sync: every configured entry, never run, and no store created.
    let doc = status_json(&env);
    assert_eq!(checked(&doc, PVE.id)["status"], "none");
    assert!(!env.store.exists(), "status created the store");
    env.sync_ok(&[PVE.id]);
    let doc = status_json(&env);
    let pve = checked(&doc, PVE.id);
    let snapshot = env.published(PVE.id).unwrap().name;
    assert_eq!((pve["status"].as_str(), pve["snapshot"].as_str()), (Some("success"), Some(snapshot.as_str())));
    assert_eq!(pve["error_msg"], "");
    assert!(pve["upstream"].as_str().unwrap().ends_with("/debian/pve/"), "{pve}");
    assert!(pve["size_bytes"].as_u64().unwrap() > 0 && pve["last_update_ts"].as_i64().unwrap() > 0);
    let never = checked(&doc, PBS_CLIENT.id);
    assert_eq!((never["status"].as_str(), never["last_update"].as_str()), (Some("none"), Some("")));
    let last_update = pve["last_update"].clone();

    let mut next = proxmox(1);
    next.apply(Fault::Unsigned, signing_key()).unwrap();
    env.server.swap(next);
    assert!(!env.run(&["sync", PVE.id]).status.success());
    let doc = status_json(&env);
    let pve = checked(&doc, PVE.id);
    assert_eq!(pve["status"], "failed");
    assert!(pve["error_msg"].as_str().unwrap().contains("unsigned"), "{pve}");
    assert_eq!((&pve["last_update"], pve["snapshot"].as_str()), (&last_update, Some(snapshot.as_str())));

    // The mount serves the same document at /status.json, regenerated at every switch.
    let mnt = Mount::start(&env);
    let served =
        |mnt: &Mount| -> Value { serde_json::from_slice(&std::fs::read(mnt.path("status.json")).unwrap()).unwrap() };
    assert_eq!(checked(&served(&mnt), PVE.id)["status"], "failed");
    env.server.swap(proxmox(2));
    env.sync_ok(&[]);
    wait_for(|| served(&mnt)[0]["status"] == "success" && served(&mnt)[1]["status"] == "success");
    let doc = served(&mnt);
    assert_ne!(checked(&doc, PVE.id)["snapshot"].as_str(), Some(snapshot.as_str()));
    assert_eq!(checked(&doc, PBS_CLIENT.id)["status"], "success");
    // A sync that finds upstream unchanged publishes nothing, yet status.json follows it.
    let ended = checked(&doc, PVE.id)["last_ended_ts"].as_i64().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(env.sync_ok(&[]).contains("unchanged"));
    wait_for(|| checked(&served(&mnt), PVE.id)["last_ended_ts"].as_i64().unwrap() > ended);
    // The config changes while the mount runs: a mirror removed from it shows as removed, and
    // one added (back) and synced meanwhile as what it is (the daemon reads the config again).
    env.write_config(&[&PVE], "");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.sync_ok(&[]);
    wait_for(|| checked(&served(&mnt), PBS_CLIENT.id)["status"] == "disabled");
    env.write_config(&[&PVE, &PBS_CLIENT], "");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.sync_ok(&[]);
    wait_for(|| {
        let doc = served(&mnt);
        checked(&doc, PBS_CLIENT.id)["configured"] == true
            && [PVE.id, PBS_CLIENT.id].iter().all(|id| checked(&doc, id)["status"] == "success")
    });
    let doc = served(&mnt);
    for id in [PVE.id, PBS_CLIENT.id] {
        let row = checked(&doc, id);
        assert_eq!((row["status"].as_str(), row["configured"].as_bool()), (Some("success"), Some(true)), "{row}");
    }
}

/// An env whose config writes the Prometheus textfile to `<env>/metrics/pmirror_fs.prom`.
fn metrics_env() -> (Env, PathBuf) {
    let env = Env::new(proxmox(0), &[&PVE, &PBS_CLIENT]);
    let prom = env.dir.path().join("metrics/pmirror_fs.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let cfg = cfg.replacen("fsync = true\n", &format!("fsync = true\nmetrics-textfile = \"{}\"\n", prom.display()), 1);
    std::fs::write(&env.config, cfg).unwrap();
    (env, prom)
}

fn metric(samples: &std::collections::BTreeMap<checks::Series, f64>, name: &str, mirror: Option<&str>) -> Option<f64> {
    samples
        .iter()
        .find(|((n, labels), _)| n == name && labels.get("mirror").map(String::as_str) == mirror)
        .map(|(_, v)| *v)
}

#[test]
fn prometheus_textfile_parses_and_follows_each_sync() {
    let (env, prom) = metrics_env();
    env.sync_ok(&["--dry-run"]);
    assert!(!prom.exists(), "a dry run wrote metrics");
    env.sync_ok(&[]);
    let read = || checks::parse_prometheus(&std::fs::read_to_string(&prom).unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let first = read();
    let pve = Some(PVE.id);
    assert_eq!(metric(&first, "pmirror_fs_sync_success", pve), Some(1.0));
    let fetched = metric(&first, "pmirror_fs_last_sync_fetched_bytes", pve).unwrap();
    assert!(fetched > 0.0 && metric(&first, "pmirror_fs_last_sync_fetched_objects", pve).unwrap() > 0.0);
    let success = metric(&first, "pmirror_fs_last_success_timestamp_seconds", pve).unwrap();
    assert_eq!(
        Some(success),
        env.catalog().mirrors().unwrap().iter().find(|r| r.id == PVE.id).unwrap().last_success.map(|t| t as f64)
    );
    assert!(metric(&first, "pmirror_fs_last_sync_duration_seconds", pve).is_some());
    let pool: u64 = env.pool_objects().iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(metric(&first, "pmirror_fs_pool_bytes", None), Some(pool as f64));
    assert_eq!(metric(&first, "pmirror_fs_pool_objects", None), Some(env.pool_objects().len() as f64));
    assert!(metric(&first, "pmirror_fs_published_bytes", pve).unwrap() > 0.0);
    let leftovers: Vec<_> = std::fs::read_dir(prom.parent().unwrap()).unwrap().flatten().collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");

    // A failing run of one mirror: success drops to 0; the other mirror keeps its figures.
    let mut next = proxmox(1);
    next.apply(Fault::Unsigned, signing_key()).unwrap();
    env.server.swap(next);
    assert!(!env.run(&["sync", PVE.id]).status.success());
    let after = read();
    assert_eq!(metric(&after, "pmirror_fs_sync_success", pve), Some(0.0));
    assert_eq!(metric(&after, "pmirror_fs_last_success_timestamp_seconds", pve), Some(success));
    let pbs = Some(PBS_CLIENT.id);
    assert_eq!(
        metric(&after, "pmirror_fs_last_sync_fetched_bytes", pbs),
        metric(&first, "pmirror_fs_last_sync_fetched_bytes", pbs),
        "figures of a mirror the run did not touch were not carried over"
    );
}

#[test]
fn metrics_textfile_key_renders_and_is_checked() {
    let (env, prom) = metrics_env();
    let out = env.run(&["config", "show"]);
    assert!(text(&out.stdout).contains(&format!("metrics-textfile = \"{}\"", prom.display())), "{}", text(&out.stdout));
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let line = cfg.lines().position(|l| l.starts_with("metrics-textfile")).unwrap() + 1;
    for bad in ["\"\"", "\"/var/lib/prometheus/\""] {
        let broken = cfg.replace(&format!("\"{}\"", prom.display()), bad);
        std::fs::write(&env.config, &broken).unwrap();
        let err = text(&env.run(&["config", "check"]).stderr);
        assert!(err.contains(&format!("config.toml:{line}: [store]: metrics-textfile: must name a file")), "{err}");
    }
    std::fs::write(&env.config, cfg.replace(&prom.display().to_string(), "rel/m.prom")).unwrap();
    let loaded = Config::load(&env.config).unwrap();
    assert_eq!(loaded.store.metrics_textfile, Some(env.dir.path().join("rel/m.prom")));
}

#[test]
fn systemd_units_verify() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(analyze.exists(), "systemd-analyze missing: apt-get install systemd (scripts/test.sh installs it)");
    let src = Path::new(ROOT).join("scripts/systemd");
    let tmp = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        // Verified as shipped, except that ExecStart points at the binary under test.
        let unit = std::fs::read_to_string(entry.path()).unwrap().replace("/usr/bin/pmirror-fs", BIN);
        let dest = tmp.path().join(entry.file_name());
        std::fs::write(&dest, unit).unwrap();
        units.push(dest);
    }
    units.sort();
    assert_eq!(units.len(), 5, "{units:?}");
    let out = Command::new(analyze).args(["verify", "--man=no"]).args(&units).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "systemd-analyze verify:\n{}", text(&out.stderr));
    let unit = |name: &str| std::fs::read_to_string(src.join(name)).unwrap();
    let mount = unit("pmirror-fs-mount.service");
    for needle in ["Before=nginx.service", "--foreground", "--allow-other", "WantedBy=multi-user.target"] {
        assert!(mount.contains(needle), "mount unit lacks {needle}");
    }
    let settings: Vec<&str> = mount.lines().filter(|l| !l.starts_with('#')).collect();
    for sandbox in ["ProtectSystem", "PrivateTmp", "PrivateMounts", "ProtectHome"] {
        assert!(
            !settings.iter().any(|l| l.starts_with(sandbox)),
            "{sandbox}: a private mount namespace hides the mount"
        );
    }
    let timer = unit("pmirror-fs-sync.timer");
    assert!(timer.contains("OnCalendar=*-*-* 00/2:00:00") && timer.contains("RandomizedDelaySec=10min"));
    assert!(unit("pmirror-fs-verify.service").contains("ExecStart=/usr/bin/pmirror-fs sync --verify"));
    let calendar = Command::new(analyze).args(["calendar", "--iterations=2", "*-*-* 00/2:00:00"]).output().unwrap();
    assert!(text(&calendar.stdout).contains(":00:00"), "{}", text(&calendar.stdout));
}

#[test]
fn man_pages_and_completions_come_from_the_clap_definitions() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).args(["gen", "man", "--dir"]).arg(tmp.path()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in [
        "pmirror-fs.1",
        "pmirror-fs-sync.1",
        "pmirror-fs-mount.1",
        "pmirror-fs-config-import.1",
        "pmirror-fs-config-add.1",
    ] {
        let roff = std::fs::read_to_string(tmp.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(roff.contains(".TH") && roff.contains(".SH SYNOPSIS"), "{page}");
    }
    assert!(std::fs::read_to_string(tmp.path().join("pmirror-fs-config-add.1")).unwrap().contains("\\-\\-preset"));
    let stdout_page = text(&Command::new(BIN).args(["gen", "man"]).output().unwrap().stdout);
    assert!(stdout_page.contains("status") && stdout_page.contains("snapshot"));
    for (shell, needle) in [("bash", "--preset"), ("zsh", "#compdef pmirror-fs"), ("fish", "complete -c pmirror-fs")] {
        let out = Command::new(BIN).args(["gen", "completions", shell]).output().unwrap();
        assert!(out.status.success() && text(&out.stdout).contains(needle), "{shell}:\n{}", text(&out.stdout));
    }
    let bash = tmp.path().join("pmirror-fs.bash");
    std::fs::write(&bash, Command::new(BIN).args(["gen", "completions", "bash"]).output().unwrap().stdout).unwrap();
    assert!(Command::new("bash").arg("-n").arg(&bash).status().unwrap().success(), "bash completion is not valid bash");
}

#[test]
fn config_add_presets_and_the_guided_setup_on_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("etc/config.toml");
    let key = crate::support::write_public_key(tmp.path());
    let add = |args: &[&str]| {
        Command::new(BIN).arg("--config").arg(&config).args(["config", "add"]).args(args).output().unwrap()
    };
    let out = add(&[]);
    assert!(!out.status.success() && text(&out.stderr).contains("not a terminal"), "{}", text(&out.stderr));
    let out = add(&["--preset", "pve:bookworm:no-subscription", "--store", "/srv/store"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("wget https://enterprise.proxmox.com/debian/proxmox-release-bookworm.gpg"), "{stdout}");
    let key_arg = key.display().to_string();
    let out = add(&["--preset", "pve:bookworm:test"]);
    assert!(text(&out.stdout).contains("added component pvetest to mirror pve_bookworm"), "{}", text(&out.stdout));
    let out = add(&["--preset", "ceph-reef:bookworm", "--key", &key_arg, "--arch", "amd64"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = add(&["--preset", "pve:bookworm:enterprise"]);
    assert!(!out.status.success() && text(&out.stderr).contains("--view"), "{}", text(&out.stderr));
    let out = add(&["--preset", "pve:sid"]);
    assert!(text(&out.stderr).contains("pve has suites bookworm, bullseye, buster"), "{}", text(&out.stderr));
    let listed = text(&add(&["--list"]).stdout);
    assert!(listed.lines().count() >= 30 && listed.contains("ceph-squid:bookworm:enterprise"), "{listed}");
    let text_now = std::fs::read_to_string(&config).unwrap();
    assert!(
        text_now.contains("dir = \"/srv/store\"") && text_now.contains("pve-no-subscription pvetest"),
        "{text_now}"
    );
    // Make the Proxmox key "exist" so the whole file loads: point it at the fixture key.
    let loadable = text_now.replace("/etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg", &key_arg);
    let parsed = Config::parse(&loadable, &config).unwrap_or_else(|e| panic!("{e}\n{loadable}"));
    let ids: Vec<&str> = parsed.mirrors.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["pve_bookworm", "ceph_reef_bookworm"]);
    assert_eq!(parsed.mirrors[1].architectures, ["amd64"]);

    // The guided setup, on a real pseudo-terminal: a new config with pbs and pmg.
    let guided = tmp.path().join("guided/config.toml");
    let answers = format!(
        "{}\npbs\nbullseye\ntest\n\n{key_arg}\ny\npmg\n\n\narm64 all\n{key_arg}\nn\ny\n",
        tmp.path().join("store").display()
    );
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(&guided).args(["config", "add"]);
    let (status, transcript) = pty::run(cmd, &answers);
    assert!(status.success(), "guided setup failed:\n{transcript}");
    for needle in [
        "Product (pve, pbs, pbs-client, pmg",
        "Suite (bookworm, bullseye, buster)",
        "Write this configuration?",
        "wrote ",
    ] {
        assert!(transcript.contains(needle), "transcript lacks {needle:?}:\n{transcript}");
    }
    let written = Config::load(&guided).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(String, String, Vec<String>)> =
        written.mirrors.iter().map(|m| (m.id.clone(), m.repository.to_string(), m.architectures.clone())).collect();
    assert_eq!(
        got,
        [
            (
                "pbs_bullseye".into(),
                "deb http://download.proxmox.com/debian/pbs/ bullseye pbstest".into(),
                vec!["amd64".into(), "all".into()]
            ),
            (
                "pmg_bookworm".into(),
                "deb http://download.proxmox.com/debian/pmg/ bookworm pmg-no-subscription".into(),
                vec!["arm64".into(), "all".into()]
            ),
        ]
    );
    assert_eq!(written.store.dir, tmp.path().join("store"));
}

#[test]
fn deb_package_holds_binary_units_docs_man_pages_and_completions() {
    let deb = install::deb().to_owned();
    let listing = text(&Command::new("dpkg-deb").arg("-c").arg(&deb).output().unwrap().stdout);
    let files: Vec<&str> = listing.lines().filter_map(|l| l.split_whitespace().last()).collect();
    for want in [
        "./usr/bin/pmirror-fs",
        "./etc/pmirror-fs/config.toml",
        "./lib/systemd/system/pmirror-fs-mount.service",
        "./lib/systemd/system/pmirror-fs-sync.service",
        "./lib/systemd/system/pmirror-fs-sync.timer",
        "./lib/systemd/system/pmirror-fs-verify.service",
        "./lib/systemd/system/pmirror-fs-verify.timer",
        "./usr/share/doc/pmirror-fs/examples/nginx/pmirror-fs.conf",
        "./usr/share/doc/pmirror-fs/README.md",
        "./usr/share/doc/pmirror-fs/status.schema.json",
        "./usr/share/man/man1/pmirror-fs.1.gz",
        "./usr/share/man/man1/pmirror-fs-sync.1.gz",
        "./usr/share/man/man5/pmirror-fs.toml.5.gz",
        "./usr/share/bash-completion/completions/pmirror-fs",
        "./usr/share/zsh/vendor-completions/_pmirror-fs",
        "./usr/share/fish/vendor_completions.d/pmirror-fs.fish",
    ] {
        assert!(files.contains(&want), "{want} not in the .deb:\n{listing}");
    }
    let info =
        text(&Command::new("dpkg-deb").args(["-f"]).arg(&deb).args(["Depends", "Package"]).output().unwrap().stdout);
    assert!(info.contains("fuse3") && info.contains("Package: pmirror-fs"), "{info}");
    let conffiles = text(&Command::new("dpkg-deb").args(["-I"]).arg(&deb).arg("conffiles").output().unwrap().stdout);
    assert_eq!(conffiles.trim(), "/etc/pmirror-fs/config.toml");
    // The packaged default config is a valid config (the mount unit starts with it at boot).
    let default = Config::load(&Path::new(ROOT).join("debian/config.toml")).expect("default config loads");
    assert!(default.mirrors.is_empty());
}
