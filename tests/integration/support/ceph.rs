//! A real single-node Ceph cluster, and "nodes" that mount its CephFS: for the multi-node tests
//! (a writer and serving nodes sharing one CephFS, as the nodes of a Proxmox cluster do).
//!
//! [`Ceph::start`] runs `scripts/ceph-single.sh start` in a tempdir: MON, MGR, MDS and one
//! bluestore OSD on a sparse file, pool size 1, on 127.0.0.1, without systemd (about 12 s); Drop
//! runs `stop`. Without root, /dev/fuse or Debian's ceph packages it is `Err(reason)`, which
//! [`start_or_skip`] turns into the project's loud skip (`SKIPPED: ceph tier: …` on stderr and
//! in `$PMIRROR_SKIP_REPORT`), or into a panic when `CI` is set or `PMIRROR_REQUIRE_CEPH=1`.
//!
//! A [`Node`] is a mount namespace of its own, held by a `sleep infinity` started with
//! `unshare --mount --propagation private`, in which its own `ceph-fuse` (in the foreground, a
//! child of the test) mounts the CephFS at [`CEPH_MOUNT`]: the same path on every node, as every
//! Proxmox node mounts CephFS at one path, and mounted in no other namespace (the empty directory
//! itself is on the host's disk: a mount point has to exist). [`Node::command`] runs a program
//! inside the namespace (`setns` between fork and exec: the child's pid is the program's, a test
//! can kill it); [`Node::host_path`] reaches the node's view from the host, through
//! `/proc/<holder>/root`.
//!
//! Every node holds the cluster (an `Arc`): the cluster stops after the last node is gone,
//! whatever order a test drops them in. A test killed outright leaves its daemons running
//! (`scripts/ceph-single.sh stop <dir>` stops them) but no mount in the host namespace: the
//! mounts live and die with the nodes' namespaces.
//!
//! A dead client: the MDS keeps a killed client's session, and the caps it held, until the
//! file system's `session_timeout` (60 s); until then a writer that needs one of those caps (a
//! rename in a directory the dead node had read) waits, measured 59.5 s. [`Node::kill_ceph_fuse`]
//! therefore also evicts the session (what the MDS would do after the timeout; the same rename
//! then takes milliseconds); [`Node::kill_ceph_fuse_keep_session`] does not.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where every node mounts the CephFS (inside its own namespace only).
pub const CEPH_MOUNT: &str = "/mnt/pmirror-ceph";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ceph-single.sh");
/// The MDS of the cluster the script makes.
const MDS: &str = "mds.a";
const MOUNT_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
const TAIL_LINES: usize = 40;

/// What a node needs, with each binary's Debian package.
const BINARIES: [(&str, &str); 8] = [
    ("ceph-mon", "ceph-mon"),
    ("ceph-mgr", "ceph-mgr"),
    ("ceph-mds", "ceph-mds"),
    ("ceph-osd", "ceph-osd"),
    ("ceph", "ceph-common"),
    ("ceph-fuse", "ceph-fuse"),
    ("unshare", "util-linux"),
    ("umount", "mount"),
];

/// The running cluster; stopped when the last [`Ceph`] or [`Node`] holding it is dropped.
struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    keyring: PathBuf,
}

impl Cluster {
    /// `ceph <args>` against this cluster: its stdout, or why it failed.
    fn ceph(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ceph")
            .arg("-c")
            .arg(&self.conf)
            .args(["--connect-timeout", "20"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run ceph: {e}"))?;
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(format!("ceph {} failed ({}): {}", args.join(" "), out.status, tail(&out.stderr))),
        }
    }

    /// Close the MDS session of the (dead) ceph-fuse whose pid was `pid`, if it still has one.
    fn evict(&self, pid: u32) -> Result<(), String> {
        let json = self.ceph(&["tell", MDS, "session", "ls", "--format", "json"])?;
        let sessions: serde_json::Value = serde_json::from_str(&json).map_err(|e| format!("session ls: {e}"))?;
        let pid = pid.to_string();
        let ids = sessions.as_array().into_iter().flatten().filter_map(|s| {
            let theirs = s["client_metadata"]["pid"].as_str()?;
            (theirs == pid).then(|| s["id"].as_u64()).flatten()
        });
        for id in ids.collect::<Vec<_>>() {
            self.ceph(&["tell", MDS, "client", "evict", &format!("id={id}")])?;
        }
        Ok(())
    }

    fn log(&self, file: &str) -> PathBuf {
        self.dir.path().join("log").join(file)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stop = Command::new("bash").arg(SCRIPT).arg("stop").arg(self.dir.path()).stdin(Stdio::null()).output();
        match stop {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("ceph: {SCRIPT} stop failed ({}): {}", out.status, tail(&out.stderr)),
            Err(e) => eprintln!("ceph: run {SCRIPT} stop: {e}"),
        }
    }
}

/// A single-node Ceph cluster with one CephFS (see the module documentation).
pub struct Ceph {
    cluster: Arc<Cluster>,
    startup: Duration,
}

impl Ceph {
    /// Start a new cluster in a tempdir, or say why it cannot run here (with the tail of the
    /// script's stderr when the script failed).
    pub fn start() -> Result<Ceph, String> {
        preflight()?;
        let dir = tempfile::Builder::new().prefix("pmirror-ceph-").tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("start")
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {SCRIPT}: {e}"))?;
        let startup = started.elapsed();
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let what = stderr.lines().find_map(|l| l.strip_prefix("ceph-single: FAILED: ")).unwrap_or("see below");
            return Err(format!("scripts/ceph-single.sh start failed ({}): {what}\n{}", out.status, tail(&out.stderr)));
        }
        // From here on, dropping `cluster` stops what the script started.
        let mut cluster = Cluster { dir, conf: PathBuf::new(), keyring: PathBuf::new() };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let var = |name: &str| stdout.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix('=')).map(PathBuf::from);
        match (var("CEPH_CONF"), var("CEPH_KEYRING")) {
            (Some(conf), Some(keyring)) => (cluster.conf, cluster.keyring) = (conf, keyring),
            _ => return Err(format!("{SCRIPT} start printed no CEPH_CONF/CEPH_KEYRING:\n{stdout}")),
        }
        Ok(Ceph { cluster: Arc::new(cluster), startup })
    }

    /// The cluster's ceph.conf (`ceph -c`, `ceph-fuse -c`).
    pub fn conf(&self) -> &Path {
        &self.cluster.conf
    }

    /// client.admin's keyring.
    pub fn keyring(&self) -> &Path {
        &self.cluster.keyring
    }

    /// Everything of the cluster: data, logs (`log/`, a node's ceph-fuse in `log/node-<name>.*`).
    pub fn dir(&self) -> &Path {
        self.cluster.dir.path()
    }

    /// How long `scripts/ceph-single.sh start` took.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// `ceph <args>` against this cluster (e.g. `["fs", "status"]`); panics on failure.
    pub fn ceph(&self, args: &[&str]) -> String {
        self.cluster.ceph(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Resident memory of every process of this cluster: its daemons and its nodes' ceph-fuse.
    pub fn rss_bytes(&self) -> u64 {
        let conf = self.cluster.conf.as_os_str().as_encoded_bytes();
        let Ok(procs) = std::fs::read_dir("/proc") else { return 0 };
        let ours = procs.flatten().filter(|p| {
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            cmdline.split(|&b| b == 0).any(|arg| arg == conf)
        });
        ours.filter_map(|p| std::fs::read_to_string(p.path().join("status")).ok())
            .filter_map(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix(" kB")?.parse().ok()))
            .map(|kb: u64| kb * 1024)
            .sum()
    }

    /// A new node named `name` (its ceph-fuse logs to `log/node-<name>.*`): a mount namespace
    /// with the CephFS mounted at [`CEPH_MOUNT`], answering.
    pub fn node(&self, name: &str) -> Node {
        std::fs::create_dir_all(CEPH_MOUNT).unwrap_or_else(|e| panic!("create {CEPH_MOUNT}: {e}"));
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "infinity"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("node {name}: run unshare: {e}"));
        let ns = wait_for_namespace(holder.id());
        let mut node = Node { name: name.to_owned(), cluster: self.cluster.clone(), holder, ns, fuse: None };
        node.mount();
        node
    }
}

/// The cluster, or `None` after a loud skip: `SKIPPED: ceph tier: <why>` on stderr and appended
/// to `$PMIRROR_SKIP_REPORT`. Panics instead when `CI` is set (not empty) or
/// `PMIRROR_REQUIRE_CEPH=1`: there the tier must run.
pub fn start_or_skip() -> Option<Ceph> {
    let why = match Ceph::start() {
        Ok(ceph) => return Some(ceph),
        Err(why) => why,
    };
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let required = std::env::var("PMIRROR_REQUIRE_CEPH").is_ok_and(|v| v == "1");
    assert!(!ci && !required, "the ceph tier must run here (CI or PMIRROR_REQUIRE_CEPH=1) but cannot: {why}");
    let (first, rest) = why.split_once('\n').unwrap_or((&why, ""));
    let line = format!("SKIPPED: ceph tier: {first}");
    eprintln!("{line}");
    if !rest.is_empty() {
        eprintln!("{rest}");
    }
    if let Some(path) = std::env::var_os("PMIRROR_SKIP_REPORT") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("$PMIRROR_SKIP_REPORT {}: {e}", Path::new(&path).display()));
        writeln!(f, "{line}").unwrap_or_else(|e| panic!("$PMIRROR_SKIP_REPORT: {e}"));
    }
    None
}

fn preflight() -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("not root (the daemons, FUSE and mount namespaces need it)".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is missing (ceph-fuse needs it)".into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<String> = BINARIES
        .iter()
        .filter(|(bin, _)| !std::env::split_paths(&path).any(|dir| dir.join(bin).is_file()))
        .map(|(bin, package)| format!("{bin} (package {package})"))
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(format!("missing: {}", missing.join(", "))),
    }
}

/// The holder's mount namespace once `unshare` has made it private and become `sleep`.
fn wait_for_namespace(pid: u32) -> File {
    let host = std::fs::read_link("/proc/self/ns/mnt").expect("read /proc/self/ns/mnt");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt"));
        if comm.trim() == "sleep" && ns.is_ok_and(|ns| ns != host) {
            let path = format!("/proc/{pid}/ns/mnt");
            return File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        }
        assert!(Instant::now() < deadline, "unshare (pid {pid}) made no mount namespace within 10 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Between fork and exec: join the namespace `ns`, and go back to the working directory the
/// child had (setns moves it to the namespace's root), by the same path seen from inside.
/// System calls on stack memory only: nothing here may allocate.
fn enter_namespace(ns: &File) -> io::Result<()> {
    let mut cwd = [0u8; 4096];
    // SAFETY: getcwd writes at most `cwd.len()` bytes, its NUL included, into the buffer.
    let have_cwd = !unsafe { libc::getcwd(cwd.as_mut_ptr().cast(), cwd.len()) }.is_null();
    // SAFETY: setns reads only its two integer arguments; `ns` is an open namespace file.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `cwd` holds the NUL-terminated path getcwd wrote.
    if have_cwd && unsafe { libc::chdir(cwd.as_ptr().cast()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One node: a mount namespace with its own ceph-fuse client at [`CEPH_MOUNT`].
pub struct Node {
    name: String,
    cluster: Arc<Cluster>,
    /// `sleep infinity` in the namespace: the namespace lives as long as it (or anything run in it).
    holder: Child,
    ns: File,
    /// The running ceph-fuse (`-f`); None once killed.
    fuse: Option<Child>,
}

impl Node {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` to be run inside this node's mount namespace (the working directory, if set,
    /// is the same path seen from inside). The spawned pid is `program`'s own.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        self.enter(&mut cmd);
        cmd
    }

    /// Makes `cmd` run inside this node's mount namespace (as [`Node::command`] does).
    pub fn enter(&self, cmd: &mut Command) {
        let ns = self.ns.try_clone().expect("duplicate the namespace fd");
        // SAFETY: the closure runs in the forked child before exec; enter_namespace makes only
        // system calls on memory it owns and allocates nothing.
        unsafe { cmd.pre_exec(move || enter_namespace(&ns)) };
    }

    /// `/bin/sh -c script` inside the node, for test setup; panics with its output on failure.
    pub fn sh(&self, script: &str) -> Output {
        let out = self
            .command("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("node {}: run sh: {e}", self.name));
        assert!(
            out.status.success(),
            "node {}: sh -c {script:?} failed ({}):\nstdout: {}\nstderr: {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `rel` (relative) under [`CEPH_MOUNT`]: a path for programs run by [`Node::command`].
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        Path::new(CEPH_MOUNT).join(rel)
    }

    /// The same file as [`Node::path`], reachable from the test itself (through
    /// `/proc/<holder>/root`, so through this node's ceph-fuse).
    pub fn host_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{CEPH_MOUNT}", self.holder.id())).join(rel)
    }

    /// The pid of the process holding the namespace (`nsenter -t <pid> -m` enters it).
    pub fn holder_pid(&self) -> u32 {
        self.holder.id()
    }

    /// The running ceph-fuse's pid.
    pub fn ceph_fuse_pid(&self) -> Option<u32> {
        self.fuse.as_ref().map(Child::id)
    }

    /// The client dies (SIGKILL) and the MDS evicts its session (see the module documentation).
    /// Its mount stays behind, dead (ENOTCONN), until [`Node::remount`].
    pub fn kill_ceph_fuse(&mut self) {
        let pid = self.kill_ceph_fuse_keep_session();
        self.cluster.evict(pid).unwrap_or_else(|e| panic!("node {}: evict the dead client: {e}", self.name));
    }

    /// The client dies (SIGKILL); its MDS session lives on until `session_timeout`. Its pid.
    pub fn kill_ceph_fuse_keep_session(&mut self) -> u32 {
        let mut fuse = self.fuse.take().unwrap_or_else(|| panic!("node {}: ceph-fuse is not running", self.name));
        let pid = fuse.id();
        fuse.kill().unwrap_or_else(|e| panic!("node {}: kill ceph-fuse: {e}", self.name));
        fuse.wait().unwrap_or_else(|e| panic!("node {}: wait for ceph-fuse: {e}", self.name));
        pid
    }

    /// The client comes back: a running ceph-fuse is killed first, a dead mount detached, then
    /// a new ceph-fuse mounts, answering when this returns.
    pub fn remount(&mut self) {
        if self.fuse.is_some() {
            self.kill_ceph_fuse();
        }
        if self.mounted() {
            self.umount().unwrap_or_else(|e| panic!("node {}: {e}", self.name));
        }
        self.mount();
    }

    /// Start ceph-fuse in the namespace and wait until the mount answers.
    fn mount(&mut self) {
        let log = self.cluster.log(&format!("node-{}.out", self.name));
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open the ceph-fuse log");
        let fuse = self
            .command("ceph-fuse")
            .arg("-f")
            .arg("-c")
            .arg(&self.cluster.conf)
            .args(["-n", "client.admin", "--keyring"])
            .arg(&self.cluster.keyring)
            .arg("--log-file")
            .arg(self.cluster.log(&format!("node-{}.log", self.name)))
            .arg(CEPH_MOUNT)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup the log fd"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("node {}: run ceph-fuse: {e}", self.name));
        self.fuse = Some(fuse);
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        while !(self.mounted() && std::fs::metadata(self.host_path("")).is_ok()) {
            let fuse = self.fuse.as_mut().expect("just started");
            if let Ok(Some(status)) = fuse.try_wait() {
                self.fuse = None;
                panic!("node {}: ceph-fuse exited ({status}) without mounting:\n{}", self.name, log_tail(&log));
            }
            assert!(
                Instant::now() < deadline,
                "node {}: no mount within {MOUNT_TIMEOUT:?}:\n{}",
                self.name,
                log_tail(&log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the namespace has a FUSE mount at [`CEPH_MOUNT`] (alive or dead).
    fn mounted(&self) -> bool {
        let mounts = std::fs::read_to_string(format!("/proc/{}/mounts", self.holder.id())).unwrap_or_default();
        mounts.lines().any(|line| {
            let mut fields = line.split(' ').skip(1);
            fields.next() == Some(CEPH_MOUNT) && fields.next().is_some_and(|t| t.starts_with("fuse"))
        })
    }

    /// Unmount [`CEPH_MOUNT`] in the namespace: `umount`, or `umount -l` when busy. Whether it
    /// had to be lazy.
    fn umount(&self) -> Result<bool, String> {
        let run = |lazy: bool| {
            let mut cmd = self.command("umount");
            cmd.args(lazy.then_some("-l")).arg(CEPH_MOUNT).stdin(Stdio::null());
            cmd.output().map_err(|e| format!("run umount: {e}"))
        };
        if run(false)?.status.success() {
            return Ok(false);
        }
        let out = run(true)?;
        match out.status.success() {
            true => Ok(true),
            false => Err(format!("umount -l {CEPH_MOUNT}: {}", tail(&out.stderr))),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut fuse) = self.fuse.take() {
            // Clean: ceph-fuse closes its session and exits. Lazy (busy): it would linger.
            let clean = matches!(self.umount(), Ok(false)) && exited_within(&mut fuse, EXIT_TIMEOUT);
            if !clean {
                let _ = fuse.kill();
                let _ = fuse.wait();
                if let Err(e) = self.cluster.evict(fuse.id()) {
                    eprintln!("ceph: node {}: {e}", self.name);
                }
            }
        }
        if self.mounted() {
            if let Err(e) = self.umount() {
                eprintln!("ceph: node {}: {e}", self.name);
            }
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn exited_within(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The last [`TAIL_LINES`] lines of `bytes`.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

fn log_tail(path: &Path) -> String {
    tail(&std::fs::read(path).unwrap_or_default())
}
