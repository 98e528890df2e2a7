//! A real HTTP proxy from Debian's packages (tinyproxy) on 127.0.0.1, for the proxy tests of
//! issue 15: basic auth required, a `Via` header added to what it forwards (so a test server
//! that requires `Via` answers only what came through it), CONNECT allowed. Drop stops it.
//! A missing tinyproxy is a test failure, never a skip.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TINYPROXY: &str = "/usr/bin/tinyproxy";

pub struct Tinyproxy {
    _dir: tempfile::TempDir,
    log: PathBuf,
    child: Child,
    port: u16,
}

impl Tinyproxy {
    /// tinyproxy on a free loopback port, accepting only `user`:`password`; CONNECT to any port
    /// (no `ConnectPort` line: the test upstreams listen on free ports).
    pub fn start(user: &str, password: &str) -> Tinyproxy {
        assert!(std::path::Path::new(TINYPROXY).exists(), "{TINYPROXY} not found: apt-get install tinyproxy");
        let dir = tempfile::tempdir().expect("tinyproxy: tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let log = dir.path().join("tinyproxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        let text = format!(
            "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nBasicAuth {user} {password}\nTimeout 30\nMaxClients 64\n\
             LogLevel Info\nLogFile \"{}\"\n",
            log.display()
        );
        std::fs::write(&conf, text).expect("tinyproxy: config");
        let child = Command::new(TINYPROXY)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy: spawn");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tinyproxy did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Tinyproxy { _dir: dir, log, child, port }
    }

    /// `http://user:password@127.0.0.1:port`
    pub fn url(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// What it logged (requests it forwarded, refusals).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
