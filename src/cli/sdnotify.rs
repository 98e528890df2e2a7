//! Readiness for systemd: the mount unit is `Type=notify` (scripts/systemd/pmirror-fs-mount.service),
//! so the daemon sends READY=1 once the view is mounted (nginx, ordered after the unit, then finds
//! the mountpoint answering) and STOPPING=1 before it unmounts. systemd passes the socket in
//! NOTIFY_SOCKET; under cron or on a terminal it is unset and both calls do nothing.

use sd_notify::NotifyState;

/// The view is mounted and serving.
pub(crate) fn ready() {
    notify(NotifyState::Ready);
}

/// The daemon is about to unmount and exit.
pub(crate) fn stopping() {
    notify(NotifyState::Stopping);
}

/// Sends `state` to NOTIFY_SOCKET when it is set. A failure is logged, not returned: the mount
/// serves regardless, and systemd reports a missing READY=1 itself (the unit's start times out).
fn notify(state: NotifyState) {
    // Not `notify_and_unset_env`: unsetting the variable is unsound once threads run, and
    // NotifyAccess=main makes systemd ignore whatever the helpers we spawn might send.
    if let Err(e) = sd_notify::notify(std::slice::from_ref(&state)) {
        tracing::warn!(error = %e, state = %state, "could not notify systemd");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::process::{Command, Output};
    use std::time::Duration;

    /// Set only in the re-executed test process: which function it calls.
    const CALL: &str = "PMIRROR_FS_SDNOTIFY_TEST_CALL";
    /// A datagram from a child that already exited is queued; this only bounds a broken run.
    const RECV_TIMEOUT: Duration = Duration::from_secs(10);

    fn this_test() -> String {
        let module = module_path!().split_once("::").map_or(module_path!(), |(_, rest)| rest);
        format!("{module}::ready_and_stopping_reach_the_notify_socket_and_nothing_else")
    }

    /// Runs this test again in a child process whose environment holds NOTIFY_SOCKET (or not),
    /// the way systemd starts the daemon; this multi-threaded test process never sets it.
    fn child(call: &str, socket: Option<&std::path::Path>) -> Output {
        let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
        cmd.args(["--exact", &this_test(), "--nocapture", "--test-threads=1"]).env(CALL, call);
        match socket {
            Some(path) => cmd.env("NOTIFY_SOCKET", path),
            None => cmd.env_remove("NOTIFY_SOCKET"),
        };
        cmd.output().expect("re-run the test binary")
    }

    fn stderr(out: &Output) -> String {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    #[test]
    fn ready_and_stopping_reach_the_notify_socket_and_nothing_else() {
        if let Ok(call) = std::env::var(CALL) {
            // The child: warnings go to stderr for the parent to read.
            let subscriber = tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).finish();
            let _guard = tracing::subscriber::set_default(subscriber);
            match call.as_str() {
                "ready" => super::ready(),
                "stopping" => super::stopping(),
                other => panic!("unknown call {other}"),
            }
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
        for (call, want) in [("ready", "READY=1\n"), ("stopping", "STOPPING=1\n")] {
            let out = child(call, Some(&path));
            assert!(out.status.success() && !stderr(&out).contains("WARN"), "{call}: {}", stderr(&out));
            let mut buf = [0u8; 256];
            let n = socket.recv(&mut buf).unwrap_or_else(|e| panic!("{call}: nothing arrived: {e}"));
            assert_eq!(String::from_utf8_lossy(&buf[..n]), want, "{call}");
        }
        // Outside systemd: nothing to send, nothing to log.
        let out = child("ready", None);
        assert!(out.status.success() && !stderr(&out).contains("notify"), "{}", stderr(&out));
        // A socket nobody listens on any more: logged, and the daemon carries on.
        let out = child("ready", Some(&tmp.path().join("gone.sock")));
        let log = stderr(&out);
        assert!(out.status.success(), "{log}");
        assert!(log.contains("WARN") && log.contains("could not notify systemd") && log.contains("READY=1"), "{log}");
        socket.set_nonblocking(true).unwrap();
        let extra = socket.recv(&mut [0u8; 256]);
        assert!(
            extra.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
            "unexpected datagram: {extra:?}"
        );
    }
}
