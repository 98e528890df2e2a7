//! The README's "Run it from systemd" lines against a real, running systemd: `enable --now` of
//! the shipped units mounts the view (Type=notify: active only after READY=1), nginx starts only
//! once the view answers, `list-timers` shows both timers due, a sync started by its unit lands in
//! the journal and in the mount, and stopping the mount unit unmounts cleanly.
//!
//! This machine is a container whose PID 1 is not systemd, so the test boots one, the way
//! `systemd-nspawn --volatile=overlay -D /` would (nspawn is not installed): `unshare` makes
//! private PID, mount, UTS, IPC and cgroup namespaces, and `SETUP` below, as PID 1 of them,
//!
//! ```text
//! <tmp>/root        overlay: this system's / read-only below, a tmpfs above (writes stay there)
//!   proc            a new procfs; proc/sys read-only
//!   sys             sysfs read-only; sys/fs/cgroup a cgroup2 mount rooted at <cgroup2>/<ours>
//!   dev             tmpfs with null, zero, full, random, urandom, tty, fuse; a new devpts
//!   run, tmp        tmpfs
//!   var/lib/pmirror-fs   the test's store, bind-mounted (this system's filesystem, not the
//!                   overlay: FUSE passthrough refuses backing files on overlayfs with ELOOP)
//!   etc/systemd/system/*.wants/*   removed: nothing the host enabled starts (getty, nginx, …)
//! ```
//!
//! then pivots into it and execs /lib/systemd/systemd with `container=` set (so units meant for
//! real hardware skip themselves) and basic.target as the boot goal, without CAP_SYS_MODULE and
//! CAP_SYS_TIME (modprobe@ and clock units would otherwise change the shared kernel). The network
//! is the host's: the sync reaches the fixture upstream on 127.0.0.1 and nginx listens on a free
//! loopback port, not 80. Inside, dpkg installs the built .deb (units in /lib/systemd/system as
//! shipped; its postinst daemon-reloads the running systemd), the test config replaces
//! /etc/pmirror-fs/config.toml with the store at the default /var/lib/pmirror-fs, and every
//! command runs through `nsenter`. SIGKILL to the namespace's PID 1 ends everything in it, its
//! mounts with it; the test then removes its cgroup, which only succeeds once nothing is left.

use super::install::deb;
use super::readme_text::{get, localize_site, one_line, sh_lines};
use crate::harness::{text, Env, PVE};
use crate::support::fixture::Upstream;
use crate::support::signing_key;
use crate::sync::wait_for;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Booting to basic.target takes about 0.3 s here; a loaded machine gets ample room.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// dpkg (with man-db's trigger) and the fixture sync take seconds; a hang fails the test.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// `FUSE_SUPER_MAGIC` from linux/magic.h, as `stat -f -c %t` prints it.
const FUSE_MAGIC: &str = "65735546";
const MOUNT_UNIT: &str = "pmirror-fs-mount.service";
/// The test's stand-ins for multi-user.target and shutdown.target
/// (`assert_nginx_ordered_after_the_mount`).
const UP_TARGET: &str = "pmirror-fs-test-up.target";
const DOWN_TARGET: &str = "pmirror-fs-test-down.target";
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs as PID 1 of the new namespaces; `$1` is the work directory, `$2` the store. See the
/// module doc.
const SETUP: &str = r#"set -eu
T=$1 R=$1/root
mount --make-rprivate /
mount -t tmpfs -o mode=755 layers "$T/layers"
mkdir "$T/layers/upper" "$T/layers/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/layers/upper,workdir=$T/layers/work" "$R"
mount -t proc proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys" && mount -o remount,bind,ro "$R/proc/sys"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=755 dev "$R/dev"
for n in null zero full random urandom tty fuse; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs shm "$R/dev/shm"
mount -t tmpfs -o mode=755 run "$R/run"
mount -t tmpfs -o mode=1777 tmp "$R/tmp"
mkdir -p "$R/var/lib/pmirror-fs" && mount --bind "$2" "$R/var/lib/pmirror-fs"
rm -f "$R"/etc/systemd/system/*.wants/*
cd "$R" && mkdir old && pivot_root . old && umount -l /old && rmdir /old
exec setpriv --bounding-set -sys_module,-sys_time env -i container=pmirror-fs-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --system --unit=basic.target
"#;

/// A systemd booted in private namespaces over a throwaway copy of this system.
struct Machine {
    dir: tempfile::TempDir,
    unshare: Child,
    /// The namespace's PID 1 (systemd), as this system numbers it.
    init: i32,
    cgroup: PathBuf,
}

impl Machine {
    fn boot(store: &Path) -> Machine {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["layers", "root"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let cgroup = cgroup2_mount().join(format!("pmirror-fs-boot-{}", std::process::id()));
        std::fs::create_dir(&cgroup).unwrap_or_else(|e| panic!("{}: {e}", cgroup.display()));
        let procs = std::ffi::CString::new(cgroup.join("cgroup.procs").into_os_string().into_encoded_bytes()).unwrap();
        let console = std::fs::File::create(dir.path().join("console.log")).unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount", "--uts", "--ipc", "--cgroup", "--kill-child", "sh", "-c", SETUP]);
        cmd.arg("setup")
            .arg(dir.path())
            .arg(store)
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console);
        // SAFETY: between fork and exec only async-signal-safe calls on memory prepared before
        // the fork: join our cgroup (so the new cgroup namespace is rooted there), and die with
        // the thread that spawned us (then --kill-child takes the namespace down too).
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 || libc::close(fd) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            })
        };
        let unshare = cmd.spawn().expect("spawn unshare");
        let mut m = Machine { dir, unshare, init: 0, cgroup };
        m.wait_for_init();
        m
    }

    /// Waits for systemd's private socket, then for the boot to finish, and wants it clean.
    fn wait_for_init(&mut self) {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let id = self.unshare.id();
        loop {
            let children = std::fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap_or_default();
            self.init = children.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let proc = PathBuf::from(format!("/proc/{}", self.init));
            let systemd = std::fs::read_to_string(proc.join("comm")).is_ok_and(|c| c.trim() == "systemd");
            if self.init > 0 && systemd && proc.join("root/run/systemd/private").exists() {
                break;
            }
            let exited = self.unshare.try_wait().unwrap();
            assert!(exited.is_none() && Instant::now() < deadline, "no systemd ({exited:?}):\n{}", self.console());
            std::thread::sleep(Duration::from_millis(20));
        }
        let state = self.sh("systemctl is-system-running --wait");
        let failed = || self.sh("systemctl --failed --no-pager; journalctl -b --no-pager | tail -n 40");
        assert_eq!(text(&state.stdout).trim(), "running", "{}", text(&failed().stdout));
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }

    /// `args` run inside the machine (all its namespaces, its root), `stdin` fed to it.
    fn exec(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.init.to_string(), "-a", "--"]).args(args).env_clear().env("PATH", PATH);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let (tx, rx) = std::sync::mpsc::channel();
        let input = stdin.to_vec();
        std::thread::spawn(move || {
            let mut run = || -> std::io::Result<Output> {
                let mut child = cmd.spawn()?;
                child.stdin.take().expect("piped stdin").write_all(&input)?;
                child.wait_with_output()
            };
            tx.send(run())
        });
        let out = rx.recv_timeout(COMMAND_TIMEOUT).unwrap_or_else(|_| panic!("{args:?}: still running"));
        out.unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn sh(&self, line: &str) -> Output {
        self.exec(&["/bin/sh", "-c", line], b"")
    }

    /// `line`'s stdout; it must succeed.
    fn ok(&self, line: &str) -> String {
        let out = self.sh(line);
        assert!(out.status.success(), "{line}: {}\n{}{}", out.status, text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    /// Writes a file inside the machine (never through /proc/<pid>/root: a symlink there would
    /// resolve against this system's root).
    fn write(&self, path: &str, contents: &[u8]) {
        let out = self.exec(&["/bin/sh", "-c", "cat > \"$1\"", "write", path], contents);
        assert!(out.status.success(), "write {path}: {}", text(&out.stderr));
    }

    /// `systemctl show -p …` of `unit`, as a map.
    fn show(&self, unit: &str, props: &[&str]) -> BTreeMap<String, String> {
        let out = self.ok(&format!("systemctl show -p {} {unit}", props.join(",")));
        out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    /// A `…TimestampMonotonic` of `unit`; 0 (never, or the unit was unloaded) fails the test.
    fn timestamp(&self, unit: &str, prop: &str) -> u64 {
        let value = self.show(unit, &[prop]).remove(prop).unwrap_or_default();
        value.parse().ok().filter(|t| *t > 0).unwrap_or_else(|| panic!("{unit} {prop}={value:?}"))
    }

    /// Kills the namespace's PID 1 (the kernel then kills everything in it, and its mounts go
    /// with the namespace; before it is known, unshare, whose --kill-child does the same) and
    /// removes the cgroup, which fails while any process is left in it.
    fn shutdown(&mut self) -> std::io::Result<()> {
        if self.unshare.try_wait()?.is_none() {
            if self.init > 0 {
                // SAFETY: kill(2) on the PID 1 of namespaces this test made.
                unsafe { libc::kill(self.init, libc::SIGKILL) };
            } else {
                self.unshare.kill()?;
            }
            self.unshare.wait()?;
        }
        remove_cgroup_tree(&self.cgroup)
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if self.cgroup.exists() {
            if let Err(e) = self.shutdown() {
                eprintln!("tearing down the booted systemd: {}: {e}", self.cgroup.display());
            }
        }
    }
}

/// Where this system mounts the cgroup2 hierarchy, joined with this process's cgroup in it.
fn cgroup2_mount() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split(' ').next() == Some("cgroup2")).then(|| left.split(' ').nth(4).map(PathBuf::from))?
    });
    let mount = mount.expect("no cgroup2 mount: systemd needs one (mount -t cgroup2 none /sys/fs/cgroup/unified)");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = own.lines().find_map(|l| l.strip_prefix("0::")).expect("no cgroup2 line in /proc/self/cgroup");
    mount.join(own.trim_start_matches('/'))
}

/// rmdir of `dir` and every cgroup below it, deepest first; retried while the kernel finishes
/// reaping what SIGKILL ended.
fn remove_cgroup_tree(dir: &Path) -> std::io::Result<()> {
    fn subdirs(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                subdirs(&entry.path(), out)?;
            }
        }
        out.push(dir.to_owned());
        Ok(())
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut dirs = Vec::new();
        subdirs(dir, &mut dirs)?;
        match dirs.iter().try_for_each(std::fs::remove_dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            done => return done,
        }
    }
}

/// Installs the built .deb with dpkg and puts the test's config (and its key) in place.
fn install(m: &Machine, env: &Env) {
    let deb = deb();
    let inside = format!("/root/{}", deb.file_name().unwrap().to_str().unwrap());
    m.write(&inside, &std::fs::read(deb).unwrap());
    m.ok(&format!("dpkg --install {inside}"));
    m.write("/etc/pmirror-fs/key.gpg", &std::fs::read(&env.key).unwrap());
    let config = std::fs::read_to_string(&env.config).unwrap();
    let (store, key) = (env.store.display().to_string(), env.key.display().to_string());
    assert!(config.contains(&store) && config.contains(&key), "{config}");
    let config = config.replace(&store, "/var/lib/pmirror-fs").replace(&key, "/etc/pmirror-fs/key.gpg");
    m.write("/etc/pmirror-fs/config.toml", config.as_bytes());
}

/// nginx as the host would run it (the stock default site, here on a free loopback port), then
/// the README's site in its place on the same port. Tried a few times: another test may take the
/// port between the probe and nginx's bind.
fn start_nginx(m: &Machine) -> u16 {
    let default = m.ok("cat /etc/nginx/sites-available/default");
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        m.write("/etc/nginx/sites-available/default", localize_site(&default, port, str::to_owned).as_bytes());
        if m.sh("systemctl start nginx.service").status.success() {
            for line in sh_lines("Serve it with nginx") {
                m.ok(&line);
            }
            let site = m.ok("cat /etc/nginx/sites-available/pmirror-fs");
            m.write("/etc/nginx/sites-available/pmirror-fs", localize_site(&site, port, str::to_owned).as_bytes());
            return port;
        }
        m.ok("systemctl reset-failed nginx.service");
    }
    panic!("nginx did not start:\n{}", m.ok("journalctl -u nginx.service --no-pager"));
}

fn assert_mounted(m: &Machine) {
    let state = m.show(MOUNT_UNIT, &["Type", "NotifyAccess", "ActiveState", "SubState"]);
    let want = [("ActiveState", "active"), ("NotifyAccess", "main"), ("SubState", "running"), ("Type", "notify")];
    assert_eq!(state, want.map(|(k, v)| (k.to_owned(), v.to_owned())).into(), "READY=1 not seen");
    assert_eq!(m.ok("stat -f -c %t /srv/pmirror-fs").trim(), FUSE_MAGIC, "no FUSE mount at /srv/pmirror-fs");
}

/// `systemctl list-timers` lists `unit` with a next elapse (not `-` or `n/a`).
fn assert_due(listing: &str, unit: &str) {
    let line = listing.lines().find(|l| l.split_whitespace().any(|w| w == unit));
    let line = line.unwrap_or_else(|| panic!("{unit} not listed:\n{listing}"));
    assert!(!line.starts_with('-') && !line.starts_with("n/a"), "{unit} has no next elapse:\n{listing}");
}

/// A boot and a shutdown each move both units in one transaction (multi-user.target's, then
/// shutdown.target's, whose Conflicts= stop what runs): nginx starts only once the mount unit is
/// active (READY=1), and is gone before the mount unit stops. Two targets of the test's stand in
/// (multi-user.target would also start getty & co.); two `systemctl start`s would not do: order
/// holds only between jobs queued together, and nginx's could run before the mount's arrives.
fn assert_nginx_ordered_after_the_mount(m: &Machine) {
    let both = format!("nginx.service {MOUNT_UNIT}");
    // A target is ordered after what it Wants= by default, not after what it Conflicts= with
    // (shutdown.target is, through each service's default Before=shutdown.target): say it, so
    // that `systemctl start` returns once both units are down.
    for (target, dependency) in [(UP_TARGET, "Wants"), (DOWN_TARGET, "Conflicts")] {
        let unit = format!("[Unit]\nRequires=basic.target\nAfter=basic.target {both}\n{dependency}={both}\n");
        m.write(&format!("/etc/systemd/system/{target}"), unit.as_bytes());
    }
    m.ok("systemctl daemon-reload");
    let log = || m.ok(&format!("journalctl -o short-monotonic --no-pager -u nginx.service -u {MOUNT_UNIT} -n 20"));
    m.ok(&format!("systemctl start {DOWN_TARGET}"));
    let nginx_down = m.timestamp("nginx.service", "InactiveEnterTimestampMonotonic");
    let mount_stopping = m.timestamp(MOUNT_UNIT, "ActiveExitTimestampMonotonic");
    assert!(nginx_down <= mount_stopping, "the mount stopped first: {nginx_down} > {mount_stopping}\n{}", log());
    m.ok(&format!("systemctl start {UP_TARGET}"));
    let mount_up = m.timestamp(MOUNT_UNIT, "ActiveEnterTimestampMonotonic");
    let nginx_up = m.timestamp("nginx.service", "InactiveExitTimestampMonotonic");
    assert!(mount_up <= nginx_up, "nginx started first: {mount_up} > {nginx_up}\n{}", log());
}

#[test]
fn readme_systemd_lines_run_the_shipped_units_under_a_booted_systemd() {
    let upstream = Upstream::proxmox(0, signing_key()).expect("fixture");
    let env = Env::new(upstream.clone(), &[&PVE]);
    std::fs::create_dir(&env.store).unwrap();
    let mut m = Machine::boot(&env.store);
    install(&m, &env);
    let port = start_nginx(&m);
    let lines = sh_lines("Run it from systemd");

    m.ok(&one_line(&lines, "systemctl enable --now "));
    assert_mounted(&m);
    for unit in [MOUNT_UNIT, "pmirror-fs-sync.timer", "pmirror-fs-verify.timer"] {
        assert_eq!(m.ok(&format!("systemctl is-enabled {unit}")).trim(), "enabled", "{unit}");
    }
    m.ok(&one_line(&lines, "systemctl reload nginx"));
    wait_for(|| get(port, "/status.json").body == m.ok("cat /srv/pmirror-fs/status.json").as_bytes());
    let timers = m.ok(&one_line(&lines, "systemctl list-timers "));
    assert_due(&timers, "pmirror-fs-sync.timer");
    assert_due(&timers, "pmirror-fs-verify.timer");
    assert!(timers.contains("2 timers listed."), "{timers}");

    // What the timer starts, started by hand: a sync from the fixture upstream into the store.
    m.ok("systemctl start pmirror-fs-sync.service");
    assert_eq!(m.show("pmirror-fs-sync.service", &["Result"])["Result"], "success");
    let journal = one_line(&lines, "journalctl -u pmirror-fs-sync.service");
    // journald takes the service's stdout asynchronously: the line may trail the unit's end.
    wait_for(|| m.ok(&journal).contains(&format!("{}: new snapshot", PVE.id)));
    let inrelease = upstream.suites.iter().find(|x| x.root == PVE.root).unwrap().inrelease_path();
    wait_for(|| get(port, &format!("/{inrelease}")).body == upstream.bytes(&inrelease).unwrap());

    assert_nginx_ordered_after_the_mount(&m);
    assert_mounted(&m);
    assert_eq!(get(port, &format!("/{inrelease}")).body, upstream.bytes(&inrelease).unwrap());

    m.ok(&format!("systemctl stop {MOUNT_UNIT}"));
    let state = m.show(MOUNT_UNIT, &["ActiveState", "SubState", "Result"]);
    assert_eq!(
        (&state["ActiveState"][..], &state["SubState"][..], &state["Result"][..]),
        ("inactive", "dead", "success")
    );
    assert!(!m.sh("mountpoint -q /srv/pmirror-fs").status.success(), "still mounted after stop");
    let log = m.ok(&format!("journalctl -u {MOUNT_UNIT} --no-pager"));
    assert!(log.contains("unmounting") && !log.contains(" WARN ") && !log.contains(" ERROR "), "{log}");

    m.shutdown().expect("namespace torn down, its cgroup removed");
}
