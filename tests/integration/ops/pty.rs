//! Runs a command on a pseudo-terminal (stdin, stdout and stderr are the pty's slave side), as an
//! operator's shell would, feeding it `input` and collecting everything it printed.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A dialogue that does not finish within this long is stuck (waiting for input it never gets).
const TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(mut cmd: Command, input: &str) -> (ExitStatus, String) {
    let (mut master_fd, mut slave_fd) = (0, 0);
    // SAFETY: openpty fills two fds we own from here on; the other arguments may be null.
    let rc = unsafe {
        libc::openpty(&mut master_fd, &mut slave_fd, std::ptr::null_mut(), std::ptr::null(), std::ptr::null())
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: each fd is owned exactly once.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master_fd), OwnedFd::from_raw_fd(slave_fd)) };
    let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup pty"));
    let mut child = cmd.stdin(stdio(&slave)).stdout(stdio(&slave)).stderr(stdio(&slave)).spawn().expect("spawn on pty");
    // Every copy of the slave side must close for the reader to see the end: ours, and the
    // ones the Command keeps in its stdio configuration.
    drop(cmd);
    drop(slave);
    let mut master = std::fs::File::from(master);
    // The line discipline buffers whole lines until the program reads them.
    master.write_all(input.as_bytes()).expect("write answers");
    let reader_fd = master.as_raw_fd();
    let mut reader = master.try_clone().expect("dup master");
    let collect = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the child (the last holder of the slave side) has exited.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command on the pty did not finish within {TIMEOUT:?} (fd {reader_fd})");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(master);
    (status, collect.join().expect("reader thread"))
}
