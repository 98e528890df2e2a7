//! A real nginx serving a directory on a free loopback port, for the FUSE/view tests and the
//! apt harness. Config, pid, logs and temp paths live in a tempdir; `daemon off` keeps the
//! master our child, Drop stops it (SIGQUIT to the master, SIGKILL to its process group if it
//! lingers). The server block comes from `scripts/nginx/pmirror-fs.conf` when that file
//! exists (its `listen`/`root` replaced), so the tests exercise the configuration we ship.
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
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nginx/pmirror-fs.conf");
    let text = std::fs::read_to_string(path).ok()?;
    text.contains("server").then_some(text)
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

fn server_block(root: &Path, port: u16) -> String {
    let listen = format!("127.0.0.1:{port}");
    let root = root.display().to_string();
    match project_server_block() {
        Some(block) => {
            let block = replace_directive(&block, "listen", &listen, true);
            replace_directive(&block, "root", &root, false)
        }
        None => format!("server {{\n    listen {listen};\n    root {root};\n    autoindex on;\n    sendfile on;\n}}\n"),
    }
}

fn config(tmp: &Path, root: &Path, port: u16) -> String {
    let t = tmp.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {t}/nginx.pid;\n\
         error_log {t}/error.log info;\nevents {{ worker_connections 256; }}\nhttp {{\n\
         \x20   access_log {t}/access.log;\n    client_body_temp_path {t}/client_body;\n\
         \x20   proxy_temp_path {t}/proxy;\n    fastcgi_temp_path {t}/fastcgi;\n\
         \x20   uwsgi_temp_path {t}/uwsgi;\n    scgi_temp_path {t}/scgi;\n\
         \x20   types {{ text/html html; }}\n    default_type application/octet-stream;\n\
         \x20   sendfile on;\n{}}}\n",
        server_block(root, port)
    )
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("nginx harness: bind 127.0.0.1:0");
    l.local_addr().expect("nginx harness: local_addr").port()
}

impl Nginx {
    /// Serve `root` (absolute path) on `127.0.0.1:<free port>`; panics if nginx is missing or
    /// does not come up, with its error log in the message.
    pub fn start(root: &Path) -> Nginx {
        assert!(
            Path::new(NGINX_BIN).exists(),
            "{NGINX_BIN} not found: install nginx (apt-get install nginx-light) — these tests need the real server"
        );
        let root = std::fs::canonicalize(root).unwrap_or_else(|e| panic!("nginx root {}: {e}", root.display()));
        let mut last_log = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let dir = tempfile::tempdir().expect("nginx harness: tempdir");
            let port = free_port();
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config(dir.path(), &root, port)).expect("nginx harness: write config");
            match spawn_and_wait(&conf, dir.path(), port) {
                Ok(child) => return Nginx { child, port, dir },
                Err(log) => last_log = log,
            }
        }
        panic!("nginx did not start serving {}:\n{last_log}", root.display());
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
fn spawn_and_wait(conf: &Path, prefix: &Path, port: u16) -> Result<Child, String> {
    let mut child = Command::new(NGINX_BIN)
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
}
