//! The delay proxy (`examples/delay-proxy.rs`, built by `cargo build --examples` as
//! scripts/test.sh does): a TCP relay on 127.0.0.1 that adds a one-way delay to each direction
//! (and to the handshake), standing in for a far upstream — the kernel here has no netem.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct DelayProxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl DelayProxy {
    /// A relay to `127.0.0.1:to` adding `delay_ms` each way.
    pub fn start(to: u16, delay_ms: u64) -> DelayProxy {
        let bin = Path::new(crate::harness::BIN).parent().expect("target dir").join("examples/delay-proxy");
        assert!(bin.exists(), "{} missing: run `cargo build --examples` first (scripts/test.sh does)", bin.display());
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("connections.log");
        let mut child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0", "--to", &format!("127.0.0.1:{to}"), "--delay-ms", &delay_ms.to_string()])
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("delay-proxy's first line");
        let port = line
            .trim()
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("delay-proxy said {line:?}"));
        DelayProxy { child, port, log, _dir: dir }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections it has closed so far (one line each).
    pub fn closed_connections(&self) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().count()
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
