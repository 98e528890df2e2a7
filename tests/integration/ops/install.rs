//! The README's install-and-run commands, run for real against the package the build makes: its
//! `apt install` line (simulated against this system), then a real `dpkg` install into a scratch
//! root where the README's nginx, systemd and cron lines run with that root in front of every
//! absolute path, and a real nginx serves the mount the README's cron line started. The command
//! lines are read from README.md's code blocks, so changing one there changes what runs here.
//!
//! Why `dpkg --root` into a scratch directory: installing on this machine would change the host
//! the other tests run on, and a chroot needs a whole Debian inside it (a shell for the
//! maintainer scripts, libc, fuse3) that an offline machine cannot bootstrap. `dpkg --root`
//! still runs dpkg's real unpack, conffile and status-database handling and the maintainer
//! scripts; `--force-script-chrootless` runs those scripts with this system's /bin/sh and
//! DPKG_ROOT set instead of chrooting into a root without a shell, and debian/* leave systemd
//! alone when DPKG_ROOT is set (Debian's convention for such installs). Depends are not forced:
//! the scratch status database holds this system's own records of the packages the .deb depends
//! on, so dpkg checks them as it would here.
//!
//! Not run, because nothing here can run them: `wget` of Proxmox's key and its `sha512sum` (the
//! network is closed; the URL and path are checked against the presets instead). What needs
//! systemd as PID 1 (`enable --now`'s start, `list-timers`, `journalctl`) runs under a booted
//! systemd in a private namespace: see `systemd_boot.rs`.

use super::readme_text::{blocks_in, command_lines, get, localize_site, one_line, readme, sh_lines};
use crate::harness::{is_mounted, text, Env, PVE};
use crate::support::fixture::Upstream;
use crate::support::signing_key;
use crate::sync::wait_for;
use pmirror_fs::config::presets::{KeySource, Preset};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// A detaching `mount` or a sync of the fixture finishes in seconds; a hang fails the test.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `f` holding an exclusive lock on target/debian: scripts/build-deb.sh rewrites
/// target/assets and target/debian in place, and two test processes in one checkout (two
/// people's `scripts/test.sh`) would otherwise read each other's half-written package.
fn with_build_lock<T>(f: impl FnOnce() -> T) -> T {
    let dir = Path::new(ROOT).join("target/debian");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(dir.join(".build.lock")).unwrap();
    // SAFETY: flock on a file we hold open; closing it (the drop below) releases the lock.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
    let out = f();
    drop(lock);
    out
}

/// The package, built by scripts/build-deb.sh from the binary under test once per test binary
/// and shared by every test that needs it, read from a copy in Cargo's test tmpdir that is
/// replaced by rename (never seen half-written, whoever builds next).
pub(super) fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| with_build_lock(build_deb))
}

fn build_deb() -> PathBuf {
    let cargo_deb = Command::new("cargo").args(["deb", "--version"]).output();
    assert!(
        cargo_deb.is_ok_and(|o| o.status.success()),
        "cargo-deb missing: cargo install cargo-deb (scripts/test.sh does)"
    );
    let build = Command::new(Path::new(ROOT).join("scripts/build-deb.sh"))
        .args(["--profile", "dev", "--no-build"])
        .output()
        .expect("run scripts/build-deb.sh");
    assert!(build.status.success(), "build-deb.sh failed:\n{}\n{}", text(&build.stdout), text(&build.stderr));
    let deb = text(&build.stdout).lines().rev().find(|l| l.ends_with(".deb")).map(|l| Path::new(ROOT).join(l));
    let deb = deb.unwrap_or_else(|| panic!("no .deb path in:\n{}", text(&build.stdout)));
    let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join(deb.file_name().unwrap());
    let partial = copy.with_extension(format!("{}.partial", std::process::id()));
    std::fs::copy(&deb, &partial).unwrap();
    std::fs::rename(&partial, &copy).unwrap();
    copy
}

/// The one shell line of README section `title` that starts with `prefix`.
fn readme_line(title: &str, prefix: &str) -> String {
    one_line(&sh_lines(title), prefix)
}

/// The integer after the first `marker` in `text`.
fn number_after(text: &str, marker: &str) -> u64 {
    let at = text.find(marker).unwrap_or_else(|| panic!("{marker:?} not found"));
    let digits: String = text[at + marker.len()..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after {marker:?}"))
}

/// Runs `cmd` and returns its output, or panics after `COMMAND_TIMEOUT` (the output is read to
/// its end: a daemon that kept the pipe open would hang here, and under cron).
fn output_within(mut cmd: Command, what: &str) -> Output {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(cmd.output()));
    let out =
        rx.recv_timeout(COMMAND_TIMEOUT).unwrap_or_else(|_| panic!("{what}: still running after {COMMAND_TIMEOUT:?}"));
    out.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}\n{}{}", out.status, text(&out.stdout), text(&out.stderr));
}

/// A root directory holding the installed package; see the module doc for why this way.
struct Scratch {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    fn install() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        // nginx's workers (www-data) pass through here to the mount.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path().join("root");
        let s = Scratch { dir, root };
        let admin = s.at("/var/lib/dpkg");
        for sub in ["info", "updates", "triggers"] {
            std::fs::create_dir_all(admin.join(sub)).unwrap();
        }
        std::fs::write(admin.join("available"), "").unwrap();
        std::fs::write(admin.join("status"), dependency_records(&admin)).unwrap();
        assert_ok(&s.dpkg(&["--install", deb().to_str().unwrap()]), "dpkg --install");
        s
    }

    /// `abs` (an absolute path) inside the root.
    fn at(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// A command word with the root in front if it is an absolute path.
    fn rooted(&self, word: &str) -> String {
        if word.starts_with('/') {
            self.at(word).display().to_string()
        } else {
            word.to_owned()
        }
    }

    fn dpkg(&self, args: &[&str]) -> Output {
        Command::new("dpkg")
            .arg(format!("--root={}", self.root.display()))
            .arg(format!("--log={}", self.dir.path().join("dpkg.log").display()))
            .arg("--force-script-chrootless")
            .args(args)
            .output()
            .expect("run dpkg")
    }

    /// dpkg's `${field}` for the package in the scratch database ("" once purged).
    fn query(&self, field: &str) -> String {
        let admin = format!("--admindir={}", self.at("/var/lib/dpkg").display());
        let out = Command::new("dpkg-query").arg(admin).args(["-W", "-f", field, "pmirror-fs"]).output().unwrap();
        text(&out.stdout)
    }
}

/// This system's dpkg records of what the .deb depends on (the first installed alternative of
/// each clause), each with an empty file list: these packages own no file in the scratch root.
fn dependency_records(admin: &Path) -> String {
    let depends = text(&Command::new("dpkg-deb").arg("-f").arg(deb()).arg("Depends").output().unwrap().stdout);
    let mut status = String::new();
    for clause in depends.trim().split(',') {
        let record = clause.split('|').find_map(|alt| {
            let name = alt.trim().split([' ', '(', ':']).next().unwrap_or_default();
            let out = Command::new("dpkg-query").args(["-s", name]).output().unwrap();
            let record = text(&out.stdout);
            record.lines().any(|l| l == "Status: install ok installed").then(|| (name.to_owned(), record))
        });
        let (name, record) = record.unwrap_or_else(|| panic!("{clause}: not installed here (apt-get install it)"));
        let id = Command::new("dpkg-query").args(["-W", "-f", "${binary:Package}", &name]).output().unwrap();
        std::fs::write(admin.join(format!("info/{}.list", text(&id.stdout))), "").unwrap();
        status += record.trim_end();
        status += "\n\n";
    }
    status
}

#[test]
fn readme_apt_install_takes_the_built_deb_and_dpkg_installs_removes_and_purges_it() {
    let line = readme_line("Quick start", "apt install ");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{line}");
    let built = deb().file_name().unwrap().to_str().unwrap();
    let out = with_build_lock(|| {
        // The README's glob names the package the build made, and only it.
        let expanded = Command::new("sh").args(["-c", &format!("echo {}", words[2])]).current_dir(ROOT).output();
        let expanded = text(&expanded.unwrap().stdout);
        assert_eq!(expanded.trim(), format!("./target/debian/{built}"), "README's {}", words[2]);
        // The real line would install on this machine: with --simulate, apt resolves the file
        // and its Depends against this system's packages and changes nothing.
        let mut apt = Command::new("sh");
        apt.args(["-c", &line.replacen("apt install ", "apt install --simulate ", 1)]).current_dir(ROOT);
        output_within(apt, &line)
    });
    assert_ok(&out, &line);
    assert!(text(&out.stdout).contains("Inst pmirror-fs (") && text(&out.stdout).contains("Conf pmirror-fs ("));

    let s = Scratch::install();
    assert_eq!(s.query("${Status}"), "install ok installed");
    assert!(s.query("${Conffiles}").contains("/etc/pmirror-fs/config.toml"));
    let version = Command::new(s.at("/usr/bin/pmirror-fs")).arg("--version").output().unwrap();
    assert!(text(&version.stdout).starts_with("pmirror-fs "), "installed binary: {}", text(&version.stderr));

    // Removal keeps the conffile, purge drops it; the store is data and survives both.
    std::fs::create_dir_all(s.at("/var/lib/pmirror-fs")).unwrap();
    std::fs::write(s.at("/var/lib/pmirror-fs/catalog.db"), "data").unwrap();
    assert_ok(&s.dpkg(&["--remove", "pmirror-fs"]), "dpkg --remove");
    assert_eq!(s.query("${Status}"), "deinstall ok config-files");
    assert!(!s.at("/usr/bin/pmirror-fs").exists() && s.at("/etc/pmirror-fs/config.toml").exists());
    assert_ok(&s.dpkg(&["--purge", "pmirror-fs"]), "dpkg --purge");
    assert!(!s.at("/etc/pmirror-fs/config.toml").exists(), "purge left the conffile");
    assert!(s.at("/var/lib/pmirror-fs/catalog.db").exists(), "purge removed the store");
}

#[test]
fn readme_systemctl_enable_links_the_installed_units_into_their_targets() {
    let s = Scratch::install();
    // `enable --now` = enable + start; starting needs systemd as PID 1, enabling works on a root.
    let line = readme_line("Run it from systemd", "systemctl enable ");
    let units: Vec<&str> = line.split_whitespace().skip(2).filter(|w| *w != "--now").collect();
    assert!(line.contains(" --now ") && units.len() == 3, "{line}");
    let mut wanted = Vec::new();
    for unit in &units {
        let file = std::fs::read_to_string(s.at(&format!("/lib/systemd/system/{unit}"))).expect(unit);
        let target = file.lines().find_map(|l| l.strip_prefix("WantedBy=")).unwrap_or_else(|| panic!("{unit}"));
        // The target, as this system's systemd ships it (else systemctl warns it does not exist).
        let dest = s.at(&format!("/lib/systemd/system/{target}"));
        std::fs::copy(Path::new("/lib/systemd/system").join(target), dest).expect(target);
        wanted.push(format!("/etc/systemd/system/{target}.wants/{unit}"));
    }
    let root = format!("--root={}", s.root.display());
    let out = Command::new("systemctl").arg(&root).arg("enable").args(&units).output().unwrap();
    assert_ok(&out, "systemctl --root enable");
    let noise: Vec<String> =
        text(&out.stderr).lines().filter(|l| !l.starts_with("Created symlink")).map(Into::into).collect();
    assert!(noise.is_empty(), "systemctl enable: {noise:?}");
    for (link, unit) in wanted.iter().zip(&units) {
        let target = std::fs::read_link(s.at(link)).unwrap_or_else(|e| panic!("{link}: {e}"));
        assert_eq!(target, Path::new("/lib/systemd/system").join(unit), "{link}");
    }
    let enabled = Command::new("systemctl").arg(&root).arg("is-enabled").args(&units).output().unwrap();
    assert_eq!(text(&enabled.stdout), "enabled\n".repeat(units.len()));
}

#[test]
fn readme_release_key_download_is_the_key_the_presets_configure() {
    // Only the names are checked: the download cannot run, the network is closed here.
    let wget = readme_line("Quick start", "wget ");
    let words: Vec<&str> = wget.split_whitespace().collect();
    let (url, path) = match words[..] {
        ["wget", url, "-O", path] => (url, path),
        _ => panic!("unexpected wget line: {wget}"),
    };
    assert_eq!(readme_line("Quick start", "sha512sum "), format!("sha512sum {path}"));
    let readme = readme();
    let presets: Vec<Preset> = blocks_in(&readme, "Quick start")
        .iter()
        .flat_map(|(_, body)| command_lines(body))
        .filter_map(|l| {
            l.split_once("--preset ").map(|(_, p)| p.split_whitespace().next().unwrap_or_default().to_owned())
        })
        .map(|p| p.parse().unwrap_or_else(|e| panic!("{p}: {e}")))
        .collect();
    assert!(presets.len() >= 3, "{presets:?}");
    for p in &presets {
        assert_eq!((&p.key_source, p.key.as_str()), (&KeySource::Download(url.into()), path), "preset {}", p.spec());
    }
    let example = blocks_in(&readme, "Configuration").into_iter().find(|(info, _)| info == "toml").unwrap().1;
    assert!(example.contains(&format!("key = \"{path}\"")), "the example config names another key");
}

#[test]
fn readme_worker_rlimit_nofile_covers_the_site_files_open_file_cache() {
    let readme = readme();
    let section = &readme[readme.find("## Serve it with nginx").unwrap()..];
    let readme_limit = number_after(section, "`worker_rlimit_nofile ");
    let site = std::fs::read_to_string(Path::new(ROOT).join("scripts/nginx/pmirror-fs.conf")).unwrap();
    let site_limit = number_after(&site, "#     worker_rlimit_nofile ");
    // Cached fds, plus up to two per connection of the stock nginx.conf the README edits.
    let cache = number_after(&site, "open_file_cache max=");
    let connections = number_after(&std::fs::read_to_string("/etc/nginx/nginx.conf").unwrap(), "worker_connections ");
    assert!(readme_limit >= site_limit, "README says {readme_limit}, the site file needs {site_limit}");
    assert!(site_limit > cache + 2 * connections, "{site_limit} <= {cache} cached + 2 x {connections} connections");
}

/// The cron file of the README: its path (from the `# /etc/cron.d/…` first line) and text.
fn cron_file() -> (String, String) {
    let readme = readme();
    let blocks = blocks_in(&readme, "… or from cron");
    let body = blocks.into_iter().find(|(_, b)| b.starts_with("# /etc/cron.d/")).expect("cron block").1;
    let path = body.lines().next().unwrap().trim_start_matches("# ").to_owned();
    (path, body)
}

struct CronJob {
    schedule: Vec<String>,
    user: String,
    command: String,
}

struct CronFile {
    vars: Vec<(String, String)>,
    jobs: Vec<CronJob>,
}

/// (environment, jobs) of a cron.d file; `Err` names the first line that is neither.
fn parse_cron(body: &str) -> Result<CronFile, String> {
    let (mut vars, mut jobs) = (Vec::new(), Vec::new());
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let name_end = line.find('=').unwrap_or(0);
        if name_end > 0 && line[..name_end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            vars.push((line[..name_end].to_owned(), line[name_end + 1..].to_owned()));
            continue;
        }
        let n = if line.starts_with('@') { 1 } else { 5 };
        let mut rest = line;
        let mut fields = Vec::new();
        for _ in 0..=n {
            let end = rest.find(char::is_whitespace).ok_or_else(|| format!("too few fields: {line}"))?;
            fields.push(rest[..end].to_owned());
            rest = rest[end..].trim_start();
        }
        let user = fields.pop().unwrap_or_default();
        jobs.push(CronJob { schedule: fields, user, command: rest.to_owned() });
    }
    Ok(CronFile { vars, jobs })
}

/// Whether one of the five time fields is valid for `(lo, hi)`: lists of `*`, `n` or `a-b`,
/// each optionally `/step`.
fn valid_time_field(field: &str, (lo, hi): (u32, u32)) -> bool {
    let num = |s: &str| s.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n));
    field.split(',').all(|item| {
        let (range, step) = item.split_once('/').map_or((item, None), |(r, s)| (r, Some(s)));
        let step_ok = step.is_none_or(|s| s.parse::<u32>().is_ok_and(|n| (1..=hi).contains(&n)));
        let range_ok = match range.split_once('-') {
            _ if range == "*" => true,
            Some((a, b)) => num(a).zip(num(b)).is_some_and(|(a, b)| a <= b),
            None => num(range).is_some() && step.is_none(),
        };
        step_ok && range_ok
    })
}

/// The programs a cron command runs: the first word of each simple command and substitution.
fn programs(command: &str) -> Vec<String> {
    let flat = command.replace("$(", ";").replace(')', ";").replace("&&", ";").replace("||", ";").replace('|', ";");
    flat.split(';').filter_map(|part| part.split_whitespace().next()).map(str::to_owned).collect()
}

/// PATH for a cron command in the scratch root: each directory of the cron file's PATH inside
/// the root (the installed package) and then on this system (the base system).
fn cron_path(s: &Scratch, vars: &[(String, String)]) -> Vec<PathBuf> {
    let path = vars.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).expect("the cron file sets PATH");
    let dirs: Vec<&str> = path.split(':').collect();
    dirs.iter().map(|d| s.at(d)).chain(dirs.iter().map(PathBuf::from)).collect()
}

#[test]
fn readme_cron_file_is_valid_cron_d_and_its_programs_are_installed() {
    let (path, body) = cron_file();
    let name = path.strip_prefix("/etc/cron.d/").unwrap();
    // cron skips files in cron.d whose names are not run-parts names (a dot, for one).
    assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'), "{path}");
    assert!(body.ends_with('\n'), "cron ignores a last line without a newline");
    let CronFile { vars, jobs } = parse_cron(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(jobs.len(), 3, "mount at boot, sync, verify");
    let s = Scratch::install();
    let path_dirs = cron_path(&s, &vars);
    let users = std::fs::read_to_string("/etc/passwd").unwrap();
    const RANGES: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for job in &jobs {
        match &job.schedule[..] {
            [special] => assert!(["@reboot", "@hourly", "@daily", "@weekly", "@monthly"].contains(&special.as_str())),
            fields => assert!(fields.iter().zip(RANGES).all(|(f, r)| valid_time_field(f, r)), "{:?}", job.schedule),
        }
        assert!(users.lines().any(|l| l.starts_with(&format!("{}:", job.user))), "no user {}", job.user);
        // cron turns an unescaped % into a newline.
        assert!(!job.command.contains('%'), "{}", job.command);
        for program in programs(&job.command) {
            let found = path_dirs
                .iter()
                .map(|d| d.join(&program))
                .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0));
            let found = found.unwrap_or_else(|| panic!("{program} (in {}) is not on the cron PATH", job.command));
            if program == "pmirror-fs" {
                assert!(found.starts_with(&s.root), "pmirror-fs resolved outside the package: {}", found.display());
            }
        }
    }
    assert!(
        !valid_time_field("60", RANGES[0])
            && !valid_time_field("*/0", RANGES[0])
            && valid_time_field("1-5/2", RANGES[4])
    );
}

/// Stops a `pmirror-fs mount` that detached from us: SIGTERM to the processes whose command
/// line names this mountpoint (only ours can: it is inside our tempdir), then the unmount.
struct DetachedMount(PathBuf);

impl DetachedMount {
    fn pids(&self) -> Vec<i32> {
        crate::harness::mount_daemons(&self.0)
    }
}

impl Drop for DetachedMount {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: kill(2) on a pmirror-fs daemon this test started (its mountpoint is ours).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while is_mounted(&self.0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if is_mounted(&self.0) {
            let _ = Command::new("fusermount3").args(["-u", "-z"]).arg(&self.0).status();
        }
    }
}

/// nginx run the way Debian's nginx.service runs it (ExecStartPre's `-t`, ExecReload's line),
/// but in the foreground so it stays our child: SIGQUIT on drop, SIGKILL to its group after 5 s.
struct NginxService {
    child: Child,
    flags: Vec<String>,
}

impl NginxService {
    /// `Err(error log)` if nginx exits instead of listening on `port` (someone else took it).
    fn start(s: &Scratch, port: u16) -> Result<NginxService, String> {
        let conf = s.at("/etc/nginx/nginx.conf").display().to_string();
        let flags = vec!["-c".to_owned(), conf, "-e".to_owned(), s.rooted("/var/log/nginx/error.log")];
        assert_ok(&Command::new("/usr/sbin/nginx").args(&flags).args(["-t", "-q"]).output().unwrap(), "nginx -t");
        let mut child = Command::new("/usr/sbin/nginx")
            .args(&flags)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start nginx");
        let log = || std::fs::read_to_string(s.at("/var/log/nginx/error.log")).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if child.try_wait().unwrap().is_some() {
                return Err(log());
            }
            if Instant::now() > deadline {
                drop(NginxService { child, flags });
                panic!("nginx does not listen on {port}: {}", log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(NginxService { child, flags })
    }

    /// What `systemctl reload nginx` runs: nginx.service's ExecReload line, with our flags.
    fn reload(&self) {
        let unit = std::fs::read_to_string("/lib/systemd/system/nginx.service").expect("nginx.service");
        let exec = unit.lines().find_map(|l| l.strip_prefix("ExecReload=")).expect("ExecReload=");
        let out = Command::new("sh").args(["-c", &format!("{exec} {}", self.flags.join(" "))]).output().unwrap();
        assert_ok(&out, exec);
    }

    /// The soft open-file limit of each worker process.
    fn worker_fd_limits(&self) -> Vec<u64> {
        let master = self.child.id().to_string();
        let procs = std::fs::read_dir("/proc").unwrap().flatten().map(|e| e.path());
        let workers = procs.filter(|p| {
            let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
            stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').nth(1)) == Some(master.as_str())
        });
        let limits = workers.filter_map(|p| std::fs::read_to_string(p.join("limits")).ok());
        limits
            .filter_map(|l| {
                l.lines().find_map(|l| l.strip_prefix("Max open files"))?.split_whitespace().next()?.parse().ok()
            })
            .collect()
    }
}

impl Drop for NginxService {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: signalling our own, not yet reaped, child (and then its process group).
        unsafe { libc::kill(pid, libc::SIGQUIT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().is_ok_and(|s| s.is_none()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: the child is not reaped yet, so -pid still names its (our) process group.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// This system's /etc/nginx (the stock Debian layout: nginx.conf including sites-enabled/*,
/// the default site enabled) copied into the root. Links into /etc/nginx are re-pointed into
/// the copy, so nothing the test edits is the host's; the main config's paths move into the root.
fn install_stock_nginx(s: &Scratch) {
    fn copy(s: &Scratch, src: &Path) {
        let dest = s.at(src.to_str().unwrap());
        let meta = std::fs::symlink_metadata(src).unwrap();
        if meta.is_symlink() {
            let target = std::fs::read_link(src).unwrap();
            let target = if target.starts_with("/etc/nginx") { s.at(target.to_str().unwrap()) } else { target };
            std::os::unix::fs::symlink(target, dest).unwrap();
        } else if meta.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            for entry in std::fs::read_dir(src).unwrap().flatten() {
                copy(s, &entry.path());
            }
        } else {
            std::fs::copy(src, dest).unwrap();
        }
    }
    copy(s, Path::new("/etc/nginx"));
    let conf = std::fs::read_to_string(s.at("/etc/nginx/nginx.conf")).unwrap();
    let mut conf =
        conf.replace("/etc/nginx/", &s.rooted("/etc/nginx/")).replace("/var/log/nginx/", &s.rooted("/var/log/nginx/"));
    conf = conf.replace("pid /run/nginx.pid;", &format!("pid {};", s.rooted("/run/nginx.pid")));
    let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("\t{t}_temp_path {};\n", s.rooted(&format!("/var/lib/nginx/{t}"))))
        .collect();
    conf = conf.replacen("http {\n", &format!("http {{\n{temp}"), 1);
    std::fs::write(s.at("/etc/nginx/nginx.conf"), conf).unwrap();
    for dir in ["/var/log/nginx", "/run", "/var/lib/nginx", "/var/www/html"] {
        std::fs::create_dir_all(s.at(dir)).unwrap();
    }
}

/// nginx as the package leaves it: the stock default site, on a free loopback port (tried a few
/// times: another test's server may take the port between the probe and nginx's bind).
fn start_stock_nginx(s: &Scratch) -> (NginxService, u16) {
    let mut log = String::new();
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        localize_site_file(s, &s.at("/etc/nginx/sites-available/default"), port);
        match NginxService::start(s, port) {
            Ok(nginx) => return (nginx, port),
            Err(e) => log = e,
        }
    }
    panic!("nginx did not start:\n{log}");
}

/// Moves the site file at `site` to our loopback port, its `root` inside the scratch root.
fn localize_site_file(s: &Scratch, site: &Path, port: u16) {
    let text = std::fs::read_to_string(site).unwrap();
    std::fs::write(site, localize_site(&text, port, |root| s.rooted(root))).unwrap();
}

/// Runs one cron command the way cron does (`/bin/sh -c`, the file's environment), inside the
/// scratch root: absolute paths in the command moved into it, PATH from `cron_path`. The
/// config is the test's, through $PMIRROR_FS_CONFIG: the README's commands name none.
fn run_cron(s: &Scratch, vars: &[(String, String)], command: &str, config: &Path) -> Output {
    let rooted: Vec<String> = command.split_whitespace().map(|w| s.rooted(w)).collect();
    let path = std::env::join_paths(cron_path(s, vars)).unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(rooted.join(" ")).env_clear().env("PATH", path).env("PMIRROR_FS_CONFIG", config);
    cmd.envs(vars.iter().filter(|(k, _)| k != "PATH").map(|(k, v)| (k, v))).env("HOME", "/root").stdin(Stdio::null());
    output_within(cmd, command)
}

/// The README cron file's jobs, in order (the boot mount, the sync, the verifying sync), each as
/// cron runs it, inside the scratch root; the mount must be up when its command returns.
fn run_cron_jobs(s: &Scratch, config: &Path, mnt: &Path) {
    let (_, body) = cron_file();
    let CronFile { vars, jobs } = parse_cron(&body).unwrap_or_else(|e| panic!("{e}"));
    for job in &jobs {
        let mut command = job.command.clone();
        if let Some((sleep, rest)) = command.split_once(" && ").filter(|(first, _)| first.starts_with("sleep ")) {
            // The random delay is evaluated, not slept: it must stay inside the timer's spread.
            let delay = run_cron(s, &vars, &format!("echo {}", &sleep["sleep ".len()..]), config);
            let delay: u64 = text(&delay.stdout).trim().parse().expect("a delay in seconds");
            let timer = std::fs::read_to_string(s.at("/lib/systemd/system/pmirror-fs-sync.timer")).unwrap();
            let spread = timer.lines().find_map(|l| l.strip_prefix("RandomizedDelaySec=")?.strip_suffix("min"));
            let spread: u64 = spread.and_then(|m| m.parse().ok()).expect("RandomizedDelaySec=<n>min");
            assert!(delay < 60 * spread, "{delay} s exceed the timer's {spread} min");
            command = rest.to_owned();
        }
        let out = run_cron(s, &vars, &command, config);
        assert_ok(&out, &command);
        if command.contains(" mount ") {
            assert!(is_mounted(mnt), "`{command}` returned before the view was mounted");
        }
    }
}

#[test]
fn readme_nginx_site_cron_jobs_and_nginx_reload_serve_the_installed_packages_mount() {
    let upstream = Upstream::proxmox(0, signing_key()).expect("fixture");
    let env = Env::new(upstream.clone(), &[&PVE]);
    let s = Scratch::install();
    install_stock_nginx(&s);
    std::fs::write(s.at("/var/www/html/index.html"), "stock default site\n").unwrap();
    let (nginx, port) = start_stock_nginx(&s);
    assert_eq!(get(port, "/").body, b"stock default site\n");

    // README: put the site in place and drop the default one (cp, ln -s, rm), raise the fd limit.
    let readme = readme();
    let (_, block) = blocks_in(&readme, "Serve it with nginx").into_iter().find(|(info, _)| info == "sh").unwrap();
    for line in command_lines(&block) {
        let words: Vec<String> = line.split_whitespace().map(|w| s.rooted(w)).collect();
        assert_ok(&Command::new(&words[0]).args(&words[1..]).output().unwrap(), &line);
    }
    localize_site_file(&s, &s.at("/etc/nginx/sites-available/pmirror-fs"), port);
    let limit = number_after(&readme[readme.find("## Serve it with nginx").unwrap()..], "`worker_rlimit_nofile ");
    let conf = std::fs::read_to_string(s.at("/etc/nginx/nginx.conf")).unwrap();
    std::fs::write(s.at("/etc/nginx/nginx.conf"), format!("worker_rlimit_nofile {limit};\n{conf}")).unwrap();

    let mnt = s.at("/srv/pmirror-fs");
    let _daemon = DetachedMount(mnt.clone());
    run_cron_jobs(&s, &env.config, &mnt);
    let inrelease = upstream.suites.iter().find(|x| x.root == PVE.root).unwrap().inrelease_path();
    wait_for(|| mnt.join(&inrelease).exists());

    // README: `systemctl reload nginx`; the mirror's site replaces the default one.
    nginx.reload();
    // The old workers (default site, no fd limit) drain away; the new ones run with the
    // README's main-context limit.
    wait_for(|| {
        let limits = nginx.worker_fd_limits();
        !limits.is_empty() && limits.iter().all(|l| *l == limit)
    });
    // nginx serves the mount's files: status.json byte for byte as the mount has it now.
    wait_for(|| get(port, "/status.json").body == std::fs::read(mnt.join("status.json")).unwrap());
    let status: serde_json::Value = serde_json::from_slice(&get(port, "/status.json").body).unwrap();
    assert_eq!(status[0]["name"], PVE.id);
    assert_eq!(get(port, &format!("/{inrelease}")).body, upstream.bytes(&inrelease).unwrap());
    let index = text(&get(port, "/").body);
    assert!(index.contains("href=\"debian/\""), "not the mirror's autoindex:\n{index}");
}

/// The mount unit is `Type=notify`: systemd holds nginx back until READY=1 and fails the start
/// without it, so the daemon sends it once the view is mounted, and STOPPING=1 on SIGTERM.
#[test]
fn mount_unit_is_type_notify_and_the_daemon_notifies_ready_once_mounted_and_stopping() {
    let unit = std::fs::read_to_string(Path::new(ROOT).join("scripts/systemd/pmirror-fs-mount.service")).unwrap();
    assert!(unit.contains("\nType=notify\n") && unit.contains("\nNotifyAccess=main\n"), "{unit}");
    let upstream = Upstream::proxmox(0, signing_key()).expect("fixture");
    let env = Env::new(upstream.clone(), &[&PVE]);
    env.sync_ok(&[]);
    let socket_path = env.dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
    let recv = || {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap_or_else(|e| panic!("no notification: {e}"));
        text(&buf[..n])
    };
    let mnt = env.dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _guard = DetachedMount(mnt.clone());
    let mut cmd = env.cmd(&["mount", mnt.to_str().unwrap(), "--foreground", "--allow-other"]);
    let mut daemon = cmd.env("NOTIFY_SOCKET", &socket_path).spawn().expect("spawn pmirror-fs mount");
    assert_eq!(recv(), "READY=1\n");
    let inrelease = upstream.suites.iter().find(|x| x.root == PVE.root).unwrap().inrelease_path();
    assert!(is_mounted(&mnt) && mnt.join(inrelease).exists(), "READY=1 before the view was mounted");
    // SAFETY: signalling our own, not yet reaped, child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    assert_eq!(recv(), "STOPPING=1\n");
    assert!(daemon.wait().unwrap().success());
    assert!(!is_mounted(&mnt));
}
