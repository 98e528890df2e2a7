//! A real exFAT filesystem for the offline-media tests (issue 14): an image file made with
//! Debian's exfatprogs (`mkfs.exfat`), attached to a loop device and mounted with exfat-fuse (the
//! kernel here has no exfat driver; exfat-fuse run as root insists on a block device, hence the
//! loop device). Drop unmounts it and detaches the loop device. Missing tools are a test failure
//! (panic), never a skip.
//!
//! ```text
//! <tempdir>/medium.img     the image (sparse)
//! <tempdir>/mnt/           where it is mounted
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

pub const MKFS_EXFAT: &str = "/usr/sbin/mkfs.exfat";
pub const MOUNT_EXFAT: &str = "/usr/sbin/mount.exfat-fuse";

pub struct Exfat {
    dir: tempfile::TempDir,
    loop_dev: String,
    mounted: bool,
    /// Pulled out: the mount is there but its daemon is gone.
    dead: bool,
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
        false => Err(format!(
            "{program} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

impl Exfat {
    /// A fresh exFAT filesystem of `bytes` (at least a few MiB), labelled `label`, mounted.
    pub fn new(bytes: u64, label: &str) -> Exfat {
        for tool in [MKFS_EXFAT, MOUNT_EXFAT] {
            assert!(Path::new(tool).exists(), "{tool} not found: apt-get install exfatprogs exfat-fuse");
        }
        let dir = tempfile::tempdir().expect("exfat harness: tempdir");
        let image = dir.path().join("medium.img");
        std::fs::File::create(&image).and_then(|f| f.set_len(bytes)).expect("exfat harness: image file");
        let image_arg = image.to_str().expect("utf-8 temp path");
        run(MKFS_EXFAT, &["-L", label, image_arg]).unwrap_or_else(|e| panic!("exfat harness: {e}"));
        let loop_dev = run("losetup", &["-f", "--show", image_arg]).unwrap_or_else(|e| panic!("exfat harness: {e}"));
        let mut medium = Exfat { dir, loop_dev, mounted: false, dead: false };
        std::fs::create_dir(medium.path()).expect("exfat harness: mountpoint");
        let mnt = medium.path();
        run(MOUNT_EXFAT, &[&medium.loop_dev, mnt.to_str().expect("utf-8")])
            .unwrap_or_else(|e| panic!("exfat harness: {e}"));
        medium.mounted = true;
        medium
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Unmount (the medium pulled out); [`Exfat::remount`] brings it back with its content.
    /// A file closed a moment ago may still be released by exfat-fuse: busy is retried for 2 s.
    pub fn unmount(&mut self) {
        if !self.mounted {
            return;
        }
        let mnt = self.path();
        let mut tries = 0;
        while let Err(e) = run("umount", &[mnt.to_str().expect("utf-8")]) {
            tries += 1;
            assert!(tries < 20 && e.contains("busy"), "exfat harness: {e}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.mounted = false;
    }

    /// Bytes written to the medium's block device so far (the loop device's write sectors, after
    /// a sync(2) so exfat-fuse's and the page cache's writes have reached it).
    pub fn bytes_written(&self) -> u64 {
        // SAFETY: sync(2) has no preconditions and no failure.
        unsafe { libc::sync() };
        let name = self.loop_dev.trim_start_matches("/dev/");
        let stat = std::fs::read_to_string(format!("/sys/block/{name}/stat"))
            .unwrap_or_else(|e| panic!("exfat harness: /sys/block/{name}/stat: {e}"));
        // Field 7: sectors written, in 512-byte units whatever the device's sector size.
        let sectors: u64 = stat.split_whitespace().nth(6).and_then(|v| v.parse().ok()).expect("write sectors");
        sectors * 512
    }

    /// The medium pulled out mid-write: exfat-fuse is killed with SIGKILL (whatever it had not
    /// written to the device is lost, as on a stick pulled from its port); the mount stays, dead
    /// (ENOTCONN), as a pulled stick's does. [`Exfat::remount`] plugs it back in.
    pub fn pull_out(&mut self) {
        let want = self.loop_dev.clone();
        let pids = std::fs::read_dir("/proc").expect("/proc").flatten().filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let exfat = args.first().is_some_and(|a| a.ends_with(b"exfat-fuse"));
            (exfat && args.contains(&want.as_bytes())).then_some(pid)
        });
        let pids: Vec<i32> = pids.collect();
        assert!(!pids.is_empty(), "exfat harness: no exfat-fuse process for {want}");
        for pid in pids {
            // SAFETY: kill(2) on a pid of our own test's helper process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        self.dead = true;
    }

    /// Mounts it again (after [`Exfat::unmount`], or after [`Exfat::pull_out`]: then the dead
    /// mount is detached first, once nothing writes through it any more).
    pub fn remount(&mut self) {
        if self.dead {
            let mnt = self.path();
            run("umount", &["-l", mnt.to_str().expect("utf-8")]).unwrap_or_else(|e| panic!("exfat harness: {e}"));
            self.mounted = false;
            self.dead = false;
        }
        if !self.mounted {
            let mnt = self.path();
            run(MOUNT_EXFAT, &[&self.loop_dev, mnt.to_str().expect("utf-8")])
                .unwrap_or_else(|e| panic!("exfat harness: {e}"));
            self.mounted = true;
        }
    }
}

impl Drop for Exfat {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = run("umount", &[self.path().to_str().unwrap_or_default()]) {
                // Busy (a test still holds a file): detach lazily so the loop device can go.
                tracing::warn!(error = %e, "exfat harness: umount failed; detaching lazily");
                let _ = run("umount", &["-l", self.path().to_str().unwrap_or_default()]);
            }
        }
        if let Err(e) = run("losetup", &["-d", &self.loop_dev]) {
            tracing::warn!(error = %e, "exfat harness: losetup -d failed");
        }
    }
}
