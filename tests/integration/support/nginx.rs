//! A real nginx serving a directory on a free loopback port, for the FUSE/view tests and the
//! apt harness. Config, pid, logs and temp paths live in a tempdir; `daemon off` keeps the
//! master our child, Drop stops it (SIGQUIT to the master, SIGKILL to its process group if it
//! lingers). The server block comes from `scripts/nginx/pmirror-fs.conf` when that file
//! exists (its `listen` replaced, `/srv/pmirror-fs` in its `root` lines replaced by the served
//! directory), so the tests exercise the configuration we ship, pinned index paths included.
//! [`Nginx::start_plain`] serves a plain directory (an upstream) with the same block, its pinned
//! roots pointing at the directory itself. [`Nginx::front_proxy`] starts the shipped front-proxy
//! block (`scripts/nginx/pmirror-fs-proxy.conf`) in front of another instance.
//!
//! nginx missing is a test failure (panic), never a skip.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NGINX_BIN: &str = "/usr/sbin/nginx";
/// nginx binds within milliseconds; a loaded CI machine gets generous slack.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a graceful stop may take before the process group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);
/// Another process may grab the port between our probe and nginx's bind; retry that often.
const BIND_ATTEMPTS: usize = 3;

pub struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The project's server block, if it ships one.
fn project_server_block() -> Option<String> {
    project_file("pmirror-fs.conf")
}

fn project_file(name: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nginx").join(name);
    let text = std::fs::read_to_string(path).ok()?;
    text.contains("server").then_some(text)
}

/// The shipped site's directory (`root` lines start with it).
const SHIPPED_ROOT: &str = "/srv/pmirror-fs";
/// What the shipped site appends to it for pinned index paths.
const PINNED_SUFFIX: &str = "/.pin/$pmirror_pin";

/// `root` lines of `block` with the shipped directory replaced by `root`; for a directory that
/// is not a pmirror-fs mount, the pinned roots point at `root` too.
fn replace_roots(block: &str, root: &str, served: Served) -> String {
    let mut out = String::new();
    for line in block.lines() {
        let mut line = line.to_owned();
        if is_directive(&line, "root") {
            if served == Served::Plain {
                line = line.replace(PINNED_SUFFIX, "");
            }
            line = line.replace(SHIPPED_ROOT, root);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `extra` directives placed first inside the block's `server {`.
fn with_extra(block: &str, extra: &str) -> String {
    match block.find("server {") {
        Some(at) if !extra.is_empty() => {
            let at = at + "server {".len();
            format!("{}\n    {extra}{}", &block[..at], &block[at..])
        }
        _ => block.to_owned(),
    }
}

/// Whether `line` is a `<directive> …;` line (not a comment, not a longer directive name).
fn is_directive(line: &str, directive: &str) -> bool {
    line.trim_start().strip_prefix(directive).is_some_and(|rest| rest.starts_with([' ', '\t']))
}

/// Set the value of every `<directive> …;` line (keeping its indentation); with `only_first`,
/// drop the later ones (several `listen` lines would all become the same address).
fn replace_directive(block: &str, directive: &str, value: &str, only_first: bool) -> String {
    let mut seen = false;
    let mut out = String::new();
    for line in block.lines() {
        if !is_directive(line, directive) {
            out.push_str(line);
            out.push('\n');
        } else if !(only_first && seen) {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("{indent}{directive} {value};\n"));
            seen = true;
        }
    }
    out
}

/// Whether the served directory is a pmirror-fs mount (pinned roots kept) or a plain one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Served {
    Mount,
    Plain,
}

/// Whether the front proxy sends X-Pmirror-Pin (the shipped block does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinHeader {
    Sent,
    Omitted,
}

fn server_block(root: &Path, port: u16, extra: &str, served: Served) -> String {
    let listen = format!("127.0.0.1:{port}");
    let root = root.display().to_string();
    match project_server_block() {
        Some(block) => {
            let block = replace_directive(&block, "listen", &listen, true);
            with_extra(&replace_roots(&block, &root, served), extra)
        }
        None => format!("server {{\n    listen {listen};\n    root {root};\n    autoindex on;\n    sendfile on;\n}}\n"),
    }
}

/// The shipped front-proxy block, listening on `port`, passing to `backend` (`host:port`);
/// without `pin_header`, with its X-Pmirror-Pin line left out.
fn proxy_block(backend: &str, port: u16, pin_header: PinHeader) -> String {
    let block = project_file("pmirror-fs-proxy.conf").expect("scripts/nginx/pmirror-fs-proxy.conf");
    let block = replace_directive(&block, "listen", &format!("127.0.0.1:{port}"), true);
    let upstream_server = |l: &str| l.trim_start().starts_with("server ") && l.trim_end().ends_with(';');
    let line = |l: &str| match upstream_server(l) {
        true => format!("        server {backend};\n"),
        false => format!("{l}\n"),
    };
    let keep = |l: &&str| pin_header == PinHeader::Sent || !l.contains("X-Pmirror-Pin $");
    block.lines().filter(keep).map(line).collect()
}

fn config(tmp: &Path, server_block: &str) -> String {
    let t = tmp.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {t}/nginx.pid;\n\
         error_log {t}/error.log info;\nevents {{ worker_connections 256; }}\nhttp {{\n\
         \x20   access_log {t}/access.log;\n    client_body_temp_path {t}/client_body;\n\
         \x20   proxy_temp_path {t}/proxy;\n    fastcgi_temp_path {t}/fastcgi;\n\
         \x20   uwsgi_temp_path {t}/uwsgi;\n    scgi_temp_path {t}/scgi;\n\
         \x20   types {{ text/html html; }}\n    default_type application/octet-stream;\n\
         \x20   sendfile on;\n{server_block}}}\n"
    )
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("nginx harness: bind 127.0.0.1:0");
    l.local_addr().expect("nginx harness: local_addr").port()
}

impl Nginx {
    /// Serve `root` (absolute path) on `127.0.0.1:<free port>`; panics if nginx is missing or
    /// does not come up, with its error log in the message.
    /// `root` must be a pmirror-fs mount: its `.pin` directory must answer (a mount without it
    /// would silently serve index paths unpinned).
    pub fn start(root: &Path) -> Nginx {
        Nginx::start_with(root, "")
    }

    /// [`Nginx::start`] with `extra` directives at the top of the server block (for example
    /// `keepalive_timeout 0;`).
    pub fn start_with(root: &Path, extra: &str) -> Nginx {
        let root = std::fs::canonicalize(root).unwrap_or_else(|e| panic!("nginx root {}: {e}", root.display()));
        assert!(root.join(".pin").is_dir(), "{} has no .pin: not a pmirror-fs mount (use start_plain)", root.display());
        Nginx::launch(&root.display().to_string(), |port| server_block(&root, port, extra, Served::Mount))
    }

    /// [`Nginx::start`] for a mount that only the processes `enter` sets up can see (a node's
    /// mount namespace): nginx is spawned through `enter`, and `root` is not checked from here.
    pub fn start_entered(root: &Path, enter: &dyn Fn(&mut Command)) -> Nginx {
        let block = |port| server_block(root, port, "", Served::Mount);
        Nginx::launch_with(&root.display().to_string(), block, enter)
    }

    /// The shipped block over a plain directory (an upstream's files), pinned roots unpinned.
    pub fn start_plain(root: &Path) -> Nginx {
        let root = std::fs::canonicalize(root).unwrap_or_else(|e| panic!("nginx root {}: {e}", root.display()));
        Nginx::launch(&root.display().to_string(), |port| server_block(&root, port, "", Served::Plain))
    }

    /// A plain upstream over `root` that logs every request to `requests.log` as `$connection
    /// $server_protocol $msec $uri`; over TLS with HTTP/2 when given a certificate and key.
    pub fn start_logged(root: &Path, tls: Option<(&Path, &Path)>) -> Nginx {
        let root = std::fs::canonicalize(root).unwrap_or_else(|e| panic!("nginx root {}: {e}", root.display()));
        let tls_lines = match tls {
            Some((cert, key)) => {
                format!(
                    " ssl http2;\n    ssl_certificate {};\n    ssl_certificate_key {}",
                    cert.display(),
                    key.display()
                )
            }
            None => String::new(),
        };
        let block = |port: u16| {
            format!(
                "log_format requests '$connection $server_protocol $msec $uri';\nserver {{\n    listen 127.0.0.1:{port}{tls_lines};\n\
                 \x20   root {};\n    access_log requests.log requests;\n    keepalive_requests 100000;\n}}\n",
                root.display()
            )
        };
        Nginx::launch(&root.display().to_string(), block)
    }

    /// `requests.log` of [`Nginx::start_logged`]: (connection, protocol, unix seconds, path).
    pub fn requests(&self) -> Vec<(u64, String, f64, String)> {
        let text = std::fs::read_to_string(self.dir.path().join("requests.log")).unwrap_or_default();
        let parse = |l: &str| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.first()?.parse().ok()?, f.get(1)?.to_string(), f.get(2)?.parse().ok()?, f.get(3)?.to_string()))
        };
        text.lines().filter_map(parse).collect()
    }

    /// The shipped front-proxy block in front of `backend` (an upstream keep-alive pool), with or
    /// without the X-Pmirror-Pin header that names the client's connection.
    pub fn front_proxy(backend: &Nginx, pin_header: PinHeader) -> Nginx {
        let to = format!("127.0.0.1:{}", backend.port());
        Nginx::launch(&format!("a proxy to {to}"), |port| proxy_block(&to, port, pin_header))
    }

    fn launch(what: &str, block: impl Fn(u16) -> String) -> Nginx {
        Nginx::launch_with(what, block, &|_| {})
    }

    fn launch_with(what: &str, block: impl Fn(u16) -> String, enter: &dyn Fn(&mut Command)) -> Nginx {
        assert!(
            Path::new(NGINX_BIN).exists(),
            "{NGINX_BIN} not found: install nginx (apt-get install nginx-light) — these tests need the real server"
        );
        let mut last_log = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let dir = tempfile::tempdir().expect("nginx harness: tempdir");
            let port = free_port();
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config(dir.path(), &block(port))).expect("nginx harness: write config");
            match spawn_and_wait(&conf, dir.path(), port, enter) {
                Ok(child) => return Nginx { child, port, dir },
                Err(log) => last_log = log,
            }
        }
        panic!("nginx did not start serving {what}:\n{last_log}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url(), path.trim_start_matches('/'))
    }

    /// nginx's error log so far (for assertion messages).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }
}

/// Spawn nginx in its own process group and wait for the port; `Err(error log)` if it exits.
fn spawn_and_wait(conf: &Path, prefix: &Path, port: u16, enter: &dyn Fn(&mut Command)) -> Result<Child, String> {
    let mut command = Command::new(NGINX_BIN);
    enter(&mut command);
    let mut child = command
        .arg("-c")
        .arg(conf)
        .arg("-p")
        .arg(prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(prefix.join("stderr.log")).map_err(|e| format!("stderr.log: {e}"))?))
        .process_group(0)
        .spawn()
        .map_err(|e| format!("spawning {NGINX_BIN}: {e}"))?;
    let logs = || {
        let read = |name: &str| std::fs::read_to_string(prefix.join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    };
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("nginx exited with {status}\n{}", logs()));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(child);
        }
        std::thread::sleep(POLL);
    }
    stop(&mut child);
    Err(format!("nginx did not listen on {port} within {START_TIMEOUT:?}\n{}", logs()))
}

/// SIGQUIT (graceful: the master stops its workers and exits after them); if the master is
/// still there after `STOP_TIMEOUT`, SIGKILL its whole process group (which is ours alone).
fn stop(child: &mut Child) {
    let Ok(pid) = i32::try_from(child.id()) else { return };
    // SAFETY: kill(2) on the pid of our own, not yet reaped, child.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => {
                tracing::warn!(error = %e, "nginx harness: try_wait failed");
                break;
            }
        }
    }
    // SAFETY: the child is not reaped yet, so its pid still names our process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    if let Err(e) = child.wait() {
        tracing::warn!(error = %e, "nginx harness: wait failed");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_block_gets_our_listen_and_root() {
        let block = "server {\n    listen 80;\n    listen [::]:80;\n    # listen 8080;\n    listen_x y;\n\
                     \x20   root /mnt/mirror;\n    location / { autoindex on; }\n}\n";
        let got = replace_directive(&replace_directive(block, "listen", "127.0.0.1:9", true), "root", "/srv", false);
        let want = "server {\n    listen 127.0.0.1:9;\n    # listen 8080;\n    listen_x y;\n    root /srv;\n\
                    \x20   location / { autoindex on; }\n}\n";
        assert_eq!(got, want);
    }

    #[test]
    fn pinned_roots_follow_the_served_directory() {
        let block = "server {\n    root /srv/pmirror-fs;\n    location ~ /dists/ {\n        root /srv/pmirror-fs/.pin/$pmirror_pin;\n    }\n}\n";
        let mount = replace_roots(block, "/m", Served::Mount);
        assert!(mount.contains("root /m;\n") && mount.contains("root /m/.pin/$pmirror_pin;\n"), "{mount}");
        let plain = replace_roots(block, "/d", Served::Plain);
        assert_eq!(plain.matches("root /d;\n").count(), 2, "{plain}");
        assert_eq!(
            with_extra("x\nserver {\n}\n", "keepalive_timeout 0;"),
            "x\nserver {\n    keepalive_timeout 0;\n}\n"
        );
        let proxy = proxy_block("127.0.0.1:7", 9, PinHeader::Omitted);
        assert!(proxy.contains("server 127.0.0.1:7;") && proxy.contains("listen 127.0.0.1:9;"), "{proxy}");
        assert!(
            !proxy.contains("X-Pmirror-Pin $")
                && proxy_block("127.0.0.1:7", 9, PinHeader::Sent).contains("X-Pmirror-Pin $")
        );
        assert!(proxy.contains("server {"), "the server block itself stays: {proxy}");
    }
}
