//! Issue 11: the first hour of a new admin — output piped into `head`, a mistyped mirror id, a
//! config without mirrors, `config add` of what is there already, a key file that is not a key.

use crate::harness::{text, Env, BIN, PBS_CLIENT, PVE};
use crate::support::fixture::Upstream;
use crate::support::signing_key;
use clap::CommandFactory as _;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn proxmox(generation: u32) -> Upstream {
    Upstream::proxmox(generation, signing_key()).expect("proxmox fixture")
}

/// Every leaf command of the clap definitions as its words (`["snapshot", "show"]`), with the
/// names of its positional arguments.
fn leaf_commands() -> Vec<(Vec<String>, Vec<String>)> {
    fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<(Vec<String>, Vec<String>)>) {
        let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| s.get_name() != "help").collect();
        if subs.is_empty() {
            let args = cmd.get_positionals().map(|a| a.get_id().to_string()).collect();
            out.push((path.to_vec(), args));
        }
        for sub in subs {
            walk(sub, &[path, &[sub.get_name().to_owned()]].concat(), out);
        }
    }
    let mut out = Vec::new();
    walk(&pmirror_fs::cli::Cli::command(), &[], &mut out);
    out
}

/// The write end of a pipe whose read end is already closed: the first write to it fails (or
/// raises SIGPIPE) however early the command writes.
fn closed_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own, once each.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2");
    // SAFETY: both fds come from pipe2 above and are wrapped exactly once.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write
}

/// `pmirror-fs --config CONFIG ARGS` with stdout a pipe nobody reads.
fn run_into_closed_pipe(config: &Path, args: &[String]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(closed_pipe()))
        .stderr(Stdio::piped())
        .output()
        .expect("run pmirror-fs")
}

/// Item 5: `pmirror-fs snapshot show … | head` panicked ("failed printing to stdout: Broken
/// pipe", exit 101). The chosen behaviour is that of `cat` and `grep`: the process ends by
/// SIGPIPE, silently (the shell reports 141). Only clap's own `--help` and `--version`, printed
/// while parsing, end with status 0 instead (clap discards the write error). Every command that
/// prints is run with its stdout closed; the list is checked against the clap definitions, so a
/// new command must join it.
#[test]
fn no_command_panics_when_its_stdout_is_closed() {
    let mut env = Env::new(proxmox(0), &[&PVE, &PBS_CLIENT]);
    env.sync_ok(&[]);
    let old = env.published(PVE.id).unwrap().name;
    std::thread::sleep(Duration::from_millis(1_100));
    env.server.swap(proxmox(1));
    env.sync_ok(&[]);
    let new = env.published(PVE.id).unwrap().name;
    assert_ne!(old, new);
    // PBS_CLIENT is removed from the config, for `snapshot forget`; a medium in a plain directory.
    let medium = env.dir.path().join("medium");
    std::fs::create_dir(&medium).unwrap();
    let medium_block = format!("[[medium]]\nid = \"m\"\npath = \"{}\"\nmirrors = [\"{}\"]\n", medium.display(), PVE.id);
    env.write_config(&[&PVE], &medium_block);
    let pom = env.dir.path().join("proxmox-offline-mirror.cfg");
    std::fs::write(
        &pom,
        format!(
            "mirror: pve_bookworm\n\trepository deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription\n\
             \tarchitectures amd64\n\tbase-dir /var/lib/proxmox-offline-mirror/mirrors\n\tkey-path {}\n\tverify true\n\
             \tsync true\n\n",
            env.key.display()
        ),
    )
    .unwrap();
    let added = env.dir.path().join("added/config.toml");
    let (key, store, pom) = (env.key.display().to_string(), env.store.display().to_string(), pom.display().to_string());
    let id = PVE.id;
    let medium = medium.display().to_string();
    // Read-only commands first, then those that change the store (each prints once done).
    let cases: Vec<Vec<&str>> = vec![
        vec!["--help"],
        vec!["--version"],
        vec!["status"],
        vec!["status", "--json"],
        vec!["snapshot", "list"],
        vec!["snapshot", "list", id],
        vec!["snapshot", "list", "--json"],
        vec!["snapshot", "show", id, &new],
        vec!["snapshot", "diff", id, &old, &new],
        vec!["snapshot", "diff", id, &old, &new, "--json"],
        vec!["config", "check"],
        vec!["config", "show"],
        vec!["config", "import", &pom],
        vec!["config", "add", "--list"],
        vec!["gen", "man"],
        vec!["gen", "completions", "bash"],
        vec!["gen", "completions", "zsh"],
        vec!["gen", "completions", "fish"],
        vec!["sync", "--dry-run"],
        vec!["sync", "--dry-run", "--json"],
        vec!["verify"],
        vec!["verify", "--json"],
        vec!["gc", "--dry-run"],
        vec!["gc", "--json", "--dry-run"],
        vec!["sync"],
        vec!["sync", "--json"],
        vec!["medium", "diff", "m"],
        vec!["medium", "sync", "m", "--init"],
        vec!["medium", "status", "m"],
        vec!["medium", "import", &medium],
        vec!["medium", "sources", &medium, "--base-url", "http://mirror.example"],
        vec!["snapshot", "publish", id, &old],
        vec!["snapshot", "unpin", id],
        vec!["snapshot", "remove", id, &new],
        vec!["snapshot", "forget", PBS_CLIENT.id],
        vec!["gc"],
        // Against a config of their own (`added`): a new file, then one more mirror.
        vec!["config", "add", "--preset", "pve:bookworm", "--key", &key, "--store", &store],
        vec!["config", "add", "--preset", "pbs:bookworm", "--key", &key],
    ];
    // `mount` prints nothing on stdout (the daemon's stdio is /dev/null once mounted).
    for (words, _) in leaf_commands().into_iter().filter(|(w, _)| w != &["mount"]) {
        let covered = cases.iter().any(|c| c.iter().filter(|a| !a.starts_with('-')).take(words.len()).eq(&words));
        assert!(covered, "`{}` is not run with a closed stdout here", words.join(" "));
    }
    for case in &cases {
        let args: Vec<String> = case.iter().map(|a| (*a).to_owned()).collect();
        let config = if case.contains(&"--preset") { &added } else { &env.config };
        let out = run_into_closed_pipe(config, &args);
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked"), "{case:?} panicked:\n{stderr}");
        assert_ne!(out.status.code(), Some(101), "{case:?}: {stderr}");
        if case == &["--help"] || case == &["--version"] {
            assert_eq!(out.status.code(), Some(0), "{case:?}: {stderr}");
        } else {
            let status = out.status;
            assert_eq!(status.signal(), Some(libc::SIGPIPE), "{case:?} did not end by SIGPIPE: {status:?}\n{stderr}");
        }
        assert!(!stderr.contains("Broken pipe"), "{case:?} reported the closed pipe:\n{stderr}");
    }
    // Each command finished its work before its output was cut short.
    let written = pmirror_fs::config::Config::load(&added).expect("config add wrote its config");
    let ids: Vec<&str> = written.mirrors.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["pve_bookworm", "pbs_bookworm"]);
    assert!(env.catalog().pin(id).unwrap().is_none(), "snapshot unpin did not unpin");
    assert!(env.catalog().snapshot_id(id, &new).unwrap().is_none(), "snapshot remove did not remove {new}");
    assert!(env.catalog().mirrors().unwrap().iter().all(|m| m.id != PBS_CLIENT.id), "snapshot forget did not forget");
}

/// Item 8: every command taking a mirror id names an unknown one, on one line, and fails;
/// before, `snapshot list nosuchmirror` printed an empty table and exited 0.
#[test]
fn an_unknown_mirror_id_is_one_line_naming_it_and_a_failure() {
    let mut env = Env::new(proxmox(0), &[&PVE]);
    env.sync_ok(&[]);
    let snap = env.published(PVE.id).unwrap().name;
    let bad = "nosuchmirror";
    let cases: Vec<Vec<&str>> = vec![
        vec!["sync", bad],
        vec!["sync", "--dry-run", PVE.id, bad],
        vec!["verify", bad],
        vec!["snapshot", "list", bad],
        vec!["snapshot", "list", bad, "--json"],
        vec!["snapshot", "show", bad, &snap],
        vec!["snapshot", "diff", bad, &snap, &snap],
        vec!["snapshot", "publish", bad, &snap],
        vec!["snapshot", "unpin", bad],
        vec!["snapshot", "remove", bad, &snap],
        vec!["snapshot", "forget", bad],
        vec!["medium", "sync", bad],
        vec!["medium", "diff", bad],
    ];
    let takes_id = |args: &[String]| args.iter().any(|a| a == "id" || a == "ids");
    for (words, _) in leaf_commands().into_iter().filter(|(_, args)| takes_id(args)) {
        let covered = cases.iter().any(|c| c.iter().take(words.len()).eq(&words));
        assert!(covered, "`{}` takes a mirror id but is not tried with an unknown one", words.join(" "));
    }
    for case in &cases {
        let out = env.run(case);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(!out.status.success(), "{case:?} succeeded:\n{stdout}");
        assert!(
            stderr.lines().count() == 1 && stderr.contains(&format!("\"{bad}\"")),
            "{case:?}: not one line naming {bad}:\n{stderr}"
        );
        assert!(stdout.is_empty(), "{case:?} printed:\n{stdout}");
    }
    // An id the catalog knows, though no longer configured, is not unknown: its snapshots are
    // still served.
    env.write_config(&[], "");
    let out = env.run(&["snapshot", "list", PVE.id]);
    assert!(out.status.success() && text(&out.stdout).contains(&snap), "{}", text(&out.stderr));
    let out = env.run(&["snapshot", "show", PVE.id, &snap]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Item 8: `status` with nothing configured and nothing synced said nothing at all.
#[test]
fn status_without_mirrors_says_so() {
    let mut env = Env::new(proxmox(0), &[]);
    env.write_config(&[], "");
    let out = env.run(&["status"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("no mirrors or trees") && stdout.contains("config.toml"), "{stdout}");
    let json = env.run(&["status", "--json"]);
    assert_eq!(text(&json.stdout).trim(), "[]", "scripts get an empty list");
}

/// Item 8: `config add` of a preset the config has already said "has it already" and then
/// rewrote the file anyway (a new inode and mtime; a comment's formatting at risk).
#[test]
fn config_add_of_what_is_there_already_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    let key = crate::support::write_public_key(tmp.path());
    let add = |spec: &str| {
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["config", "add", "--preset", spec, "--key"])
            .arg(&key)
            .args(["--store", "/srv/store"])
            .output()
            .unwrap()
    };
    let out = add("pve:bookworm");
    assert!(out.status.success() && text(&out.stdout).contains("wrote "), "{}", text(&out.stderr));
    let before = std::fs::metadata(&config).unwrap();
    let content = std::fs::read(&config).unwrap();
    let out = add("pve:bookworm");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("has it already") && !stdout.contains("wrote "), "{stdout}");
    assert!(stdout.contains("nothing written"), "{stdout}");
    let after = std::fs::metadata(&config).unwrap();
    assert_eq!((after.ino(), after.mtime_nsec()), (before.ino(), before.mtime_nsec()), "the config was rewritten");
    assert_eq!(std::fs::read(&config).unwrap(), content);
    // Something new is still written.
    let out = add("pve:bookworm:test");
    assert!(text(&out.stdout).contains("wrote "), "{}", text(&out.stdout));
}

/// Item 2: `config check` said "ok" for a key file that holds no key; sync then failed with
/// "cannot read keyring: unexpected EOF". Now it parses every mirror's and tree's key file the
/// way sync does and names each bad one.
#[test]
fn config_check_parses_every_key_file() {
    let mut env = Env::new(proxmox(0), &[&PVE]);
    let junk = env.dir.path().join("junk.gpg");
    std::fs::write(&junk, "not a key\n").unwrap();
    let tree_junk = env.dir.path().join("tree-junk.asc");
    std::fs::write(&tree_junk, "not a key\n").unwrap();
    let good_extra = format!(
        "[[mirror]]\nid = \"other\"\nrepository = \"deb {}/debian bookworm main\"\narchitectures = [\"amd64\"]\nkey = \"{}\"\nview = \"other\"\n\n",
        env.server.base_url(),
        env.key.display()
    );
    let out = env.run(&["config", "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let tree = format!(
        "[[tree]]\nid = \"isos\"\nurl = \"{}/iso/\"\nkey = \"{}\"\n",
        env.server.base_url(),
        tree_junk.display()
    );
    std::fs::write(
        &env.config,
        cfg.replace(&env.key.display().to_string(), &junk.display().to_string()) + &good_extra + &tree,
    )
    .unwrap();
    let out = env.run(&["config", "check"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "config check passed a key file holding no key:\n{stdout}");
    assert!(!stdout.contains("ok"), "{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one line per bad key file:\n{stderr}");
    let mirror_line = format!("mirror \"{}\": key file {}: cannot read keyring", PVE.id, junk.display());
    let tree_line = format!("tree \"isos\": key file {}: cannot read keyring", tree_junk.display());
    assert!(lines[0].contains(&mirror_line), "{stderr}");
    assert!(lines[1].contains(&tree_line), "{stderr}");
    assert!(!stderr.contains("\"other\""), "the good key was blamed:\n{stderr}");
    // Sync's own parser agrees: the same file is what it cannot read.
    assert!(pmirror_fs::apt::signature::Keyring::from_bytes(b"not a key\n").is_err());
    env.write_config(&[&PVE], "");
    assert!(env.run(&["config", "check"]).status.success());
}

/// Item 1: one mirror whose key file is not there yet (`config add` before the `wget` of its
/// key) made `config check`, `sync` and `status` all fail. Now `status` works and names the
/// problem, `sync` syncs the sound mirror and fails only the broken one (named, with the fix),
/// `config check` names it; all exit ≠ 0 except `status`.
#[test]
fn a_missing_key_file_fails_only_its_mirror() {
    let env = Env::new(proxmox(0), &[&PVE, &PBS_CLIENT]);
    let missing = env.dir.path().join("not-yet-downloaded.gpg");
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    // The second mirror's key line only (the first keeps the good key).
    let key_line = format!("key = \"{}\"", env.key.display());
    let at = cfg.rfind(&key_line).expect("second mirror's key line");
    let broken = format!("{}key = \"{}\"{}", &cfg[..at], missing.display(), &cfg[at + key_line.len()..]);
    std::fs::write(&env.config, &broken).unwrap();
    let broken_line = broken[..broken.find(&missing.display().to_string()).unwrap()].lines().count();

    let status = env.run(&["status"]);
    let stdout = text(&status.stdout);
    assert!(status.status.success(), "status failed: {}", text(&status.stderr));
    let pbs = stdout.lines().find(|l| l.starts_with(PBS_CLIENT.id)).unwrap_or_else(|| panic!("{stdout}"));
    assert!(pbs.contains("cannot sync") && pbs.contains("not-yet-downloaded.gpg"), "{pbs}");
    assert!(stdout.lines().any(|l| l.starts_with(&format!("{}: new", PVE.id))), "{stdout}");

    let sync = env.run(&["sync"]);
    let (stdout, stderr) = (text(&sync.stdout), text(&sync.stderr));
    assert_eq!(sync.status.code(), Some(1), "a broken mirror fails the run:\n{stdout}\n{stderr}");
    assert!(env.published(PVE.id).is_some(), "the sound mirror was not synced:\n{stdout}\n{stderr}");
    assert!(env.published(PBS_CLIENT.id).is_none());
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("pmirror-fs:")).collect();
    assert_eq!(errors.len(), 1, "one line for the one broken mirror:\n{stderr}");
    let expected = format!(
        "mirror {}: {}:{broken_line}: mirror \"{}\": key file {}: No such file or directory (os error 2); \
         put the repository's OpenPGP release key (binary or armored) there",
        PBS_CLIENT.id,
        env.config.display(),
        PBS_CLIENT.id,
        missing.display()
    );
    assert!(errors[0].ends_with(&expected), "{}\nwant …{expected}", errors[0]);

    // status.json says the same (the mount serves it): failed, with the reason.
    let json: serde_json::Value = serde_json::from_slice(&env.run(&["status", "--json"]).stdout).unwrap();
    let row = json.as_array().unwrap().iter().find(|r| r["name"] == PBS_CLIENT.id).unwrap();
    assert_eq!(row["status"], "failed");
    assert!(row["error_msg"].as_str().unwrap().contains("not-yet-downloaded.gpg"), "{row}");
    assert_eq!(row["configured"], true);

    let check = env.run(&["config", "check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(text(&check.stderr).contains(&format!("mirror \"{}\": key file {}", PBS_CLIENT.id, missing.display())));

    // The key arrives: everything works again.
    std::fs::copy(&env.key, &missing).unwrap();
    env.sync_ok(&[]);
    assert!(env.published(PBS_CLIENT.id).is_some());
    assert!(env.run(&["config", "check"]).status.success());
}

/// Item 3: a mirror removed from the config stayed "failed" forever in `status` and the public
/// `/status.json`, with no way to forget it. Now it is listed as removed (its snapshots are still
/// served), never as failed, and `snapshot forget` deletes its snapshots so `gc` frees them.
#[test]
fn a_removed_mirror_is_marked_and_can_be_forgotten() {
    let mut env = Env::new(proxmox(0), &[&PVE, &PBS_CLIENT]);
    env.sync_ok(&[]);
    // Its last run failed before it was removed: that must not stay on display forever.
    let good = std::fs::read_to_string(&env.config).unwrap();
    env.write_config(&[&PVE, &PBS_CLIENT], "");
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let at = cfg.rfind(PBS_CLIENT.root).unwrap();
    std::fs::write(&env.config, format!("{}nowhere{}", &cfg[..at], &cfg[at + PBS_CLIENT.root.len()..])).unwrap();
    assert_eq!(env.run(&["sync", PBS_CLIENT.id]).status.code(), Some(1));
    std::fs::write(&env.config, good).unwrap();
    env.write_config(&[&PVE], "");

    let out = env.run(&["status"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    let line = stdout.lines().find(|l| l.starts_with(PBS_CLIENT.id)).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("removed from the config") && !line.contains("failed"), "{line}");
    assert!(line.contains(&format!("snapshot forget {}", PBS_CLIENT.id)), "{line}");
    let json: serde_json::Value = serde_json::from_slice(&env.run(&["status", "--json"]).stdout).unwrap();
    let row = json.as_array().unwrap().iter().find(|r| r["name"] == PBS_CLIENT.id).unwrap();
    assert_eq!((row["status"].as_str(), row["configured"].as_bool()), (Some("disabled"), Some(false)), "{row}");
    assert_eq!(row["error_msg"], "", "{row}");

    // A configured mirror cannot be forgotten, an unknown id is an error, both change nothing.
    let refused = env.run(&["snapshot", "forget", PVE.id]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("still configured"), "{}", text(&refused.stderr));
    assert_eq!(env.run(&["snapshot", "forget", "nosuch"]).status.code(), Some(1));
    assert!(env.published(PBS_CLIENT.id).is_some());

    let before = env.pool_objects().len();
    let out = env.run(&["snapshot", "forget", PBS_CLIENT.id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("{}: forgot 1 snapshot", PBS_CLIENT.id)), "{}", text(&out.stdout));
    assert!(env.catalog().mirrors().unwrap().iter().all(|m| m.id != PBS_CLIENT.id));
    let stdout = text(&env.run(&["status"]).stdout);
    assert!(!stdout.contains(PBS_CLIENT.id), "{stdout}");
    // Its objects are unreferenced now; gc frees them (the grace window only keeps superseded
    // files of mirrors that are still published).
    let gc = env.run(&["gc"]);
    assert!(gc.status.success(), "{}", text(&gc.stderr));
    let after = env.pool_objects().len();
    assert!(after < before, "gc freed nothing: {before} → {after}\n{}", text(&gc.stdout));
    assert!(env.published(PVE.id).is_some(), "the configured mirror kept its snapshot");
    env.assert_pool_sound();
}

/// Every file and directory under `dir` with its size and mtime (what "changes nothing" means).
fn tree_state(dir: &Path) -> Vec<(String, u64, i64, i64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path().display().to_string(), meta.len(), meta.mtime(), meta.mtime_nsec()));
        }
    }
    out.sort();
    out
}

/// The `fetched`/`would fetch` figures of a mirror's summary line: (files, size text).
fn fetch_figures(stdout: &str, id: &str, verb: &str) -> (u64, String) {
    let summary = |l: &&str| l.starts_with(&format!("{id}: ")) && l.contains(&format!("; {verb} "));
    let line = stdout.lines().find(summary).unwrap_or_else(|| panic!("no `{verb}` line for {id}:\n{stdout}"));
    let rest = line.split(&format!("; {verb} ")).nth(1).unwrap_or_else(|| panic!("no `{verb}` in {line}"));
    let (files, rest) = rest.split_once(" files (").unwrap();
    (files.parse().unwrap(), rest.split_once(')').unwrap().0.to_owned())
}

/// Item 7: `--dry-run` created the store (pool dirs, catalog, migrations) and reported "fetched
/// 86 files … 77.1 MiB/s" although it fetched nothing. Now it creates and changes nothing, works
/// before the store exists, and says what a sync would fetch — the figures the sync then fetches.
#[test]
fn a_dry_run_creates_and_changes_nothing_and_predicts_the_sync() {
    let env = Env::new(proxmox(0), &[&PVE]);
    assert!(!env.store.exists());
    let out = env.run(&["sync", "--dry-run"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!env.store.exists(), "a dry run created the store: {:?}", tree_state(&env.store));
    assert!(!stdout.contains("fetched") && !stdout.contains("/s"), "{stdout}");
    let predicted = fetch_figures(&stdout, PVE.id, "would fetch");
    assert!(predicted.0 > 0, "{stdout}");
    let synced = env.sync_ok(&[]);
    assert_eq!(fetch_figures(&synced, PVE.id, "fetched"), predicted, "dry run:\n{stdout}\nsync:\n{synced}");

    // On a store that exists, with upstream moved on: nothing in it changes.
    std::thread::sleep(Duration::from_millis(1_100));
    env.server.swap(proxmox(1));
    let before = tree_state(&env.store);
    let out = env.run(&["sync", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(tree_state(&env.store), before, "a dry run changed the store");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["mirrors"][0]["outcome"], "planned", "{json}");
    let out = env.run(&["sync", "--dry-run"]);
    let predicted = fetch_figures(&text(&out.stdout), PVE.id, "would fetch");
    let synced = env.sync_ok(&[]);
    assert_eq!(fetch_figures(&synced, PVE.id, "fetched"), predicted, "sync:\n{synced}");
}
