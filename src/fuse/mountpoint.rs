//! Mountpoint checks before mounting: a directory, not already serving pmirror-fs, not a stale
//! FUSE mount left by a daemon that died ("Transport endpoint is not connected") — that one is
//! lazily unmounted, and the error says what to run when that fails — and empty unless the caller
//! insists (the kernel mounts over files silently; hidden, they look lost).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rustix::mount::UnmountFlags;

use super::{FuseError, MountOptions, FS_NAME};

/// Ways to detach a dead FUSE mount, in order: fusermount3 works for the mount's owner, umount
/// for root; both lazily (`-z`/`-l`) so processes still inside it do not block the detach.
const DETACH_COMMANDS: [(&str, &[&str]); 2] = [("fusermount3", &["-u", "-z"]), ("umount", &["-l"])];

/// A busy mount is retried this often, this far apart (≈1 s: long enough for nginx to drop an
/// fd it was about to close, short enough for a service stop).
const BUSY_RETRIES: u32 = 10;
const BUSY_RETRY_DELAY: Duration = Duration::from_millis(100);

/// How many entries of a non-empty mountpoint the refusal names (enough to recognise it).
const SHOWN_ENTRIES: usize = 3;

/// Check `path` is usable as the mountpoint; clears a stale FUSE mount there (logged). A
/// directory that holds anything is refused unless `opts.nonempty`.
pub fn check_mountpoint(path: &Path, opts: &MountOptions) -> Result<(), FuseError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => refuse_if_mounted(path)?,
        Ok(_) => return Err(FuseError::NotADirectory { path: path.to_owned() }),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => clear_stale(path)?,
        Err(source) => return Err(FuseError::Mountpoint { path: path.to_owned(), source }),
    }
    if opts.nonempty {
        return Ok(());
    }
    refuse_if_nonempty(path)
}

fn refuse_if_nonempty(path: &Path) -> Result<(), FuseError> {
    let io_error = |source| FuseError::Mountpoint { path: path.to_owned(), source };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io_error)?.take(SHOWN_ENTRIES + 1) {
        let entry = entry.map_err(io_error)?;
        let dir = entry.file_type().is_ok_and(|t| t.is_dir());
        names.push(format!("{}{}", entry.file_name().to_string_lossy(), if dir { "/" } else { "" }));
    }
    if names.is_empty() {
        return Ok(());
    }
    if names.len() > SHOWN_ENTRIES {
        names[SHOWN_ENTRIES] = "…".to_owned();
    }
    Err(FuseError::NotEmpty { path: path.to_owned(), shown: names.join(", ") })
}

fn clear_stale(path: &Path) -> Result<(), FuseError> {
    let mut tried = Vec::new();
    for (program, args) in DETACH_COMMANDS {
        let shown = format!("{program} {} {}", args.join(" "), path.display());
        match Command::new(program).args(args).arg(path).output() {
            Ok(out) if out.status.success() && std::fs::metadata(path).is_ok_and(|m| m.is_dir()) => {
                tracing::warn!(path = %path.display(), command = %shown, "stale FUSE mount (transport endpoint is not connected) detached");
                return Ok(());
            }
            Ok(out) if out.status.success() => tried.push(format!("`{shown}` ran, but the path is still unusable")),
            Ok(out) => tried.push(format!("`{shown}`: {}", String::from_utf8_lossy(&out.stderr).trim())),
            Err(e) => tried.push(format!("`{shown}`: {e}")),
        }
    }
    Err(FuseError::StaleMount { path: path.to_owned(), tried: tried.join("; ") })
}

/// Unmount `path` (canonical) that umount refused with EBUSY: retry, then detach lazily.
pub(super) fn detach_busy(path: &Path) -> Result<(), FuseError> {
    let unmount_error = |errno: rustix::io::Errno| FuseError::Unmount { path: path.to_owned(), source: errno.into() };
    for _ in 0..BUSY_RETRIES {
        std::thread::sleep(BUSY_RETRY_DELAY);
        match rustix::mount::unmount(path, UnmountFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::BUSY) => {}
            Err(e) => return Err(unmount_error(e)),
        }
    }
    rustix::mount::unmount(path, UnmountFlags::DETACH).map_err(unmount_error)?;
    tracing::warn!(mountpoint = %path.display(), "mount still in use; detached lazily (gone once the last user closes it)");
    Ok(())
}

fn refuse_if_mounted(path: &Path) -> Result<(), FuseError> {
    let wanted =
        std::fs::canonicalize(path).map_err(|source| FuseError::Mountpoint { path: path.to_owned(), source })?;
    let mountinfo = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => text,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read /proc/self/mountinfo; not checking for a running mount");
            return Ok(());
        }
    };
    if !mountinfo.lines().filter_map(parse_mountinfo).any(|m| m.point == wanted && m.is_ours()) {
        return Ok(());
    }
    // stat may be answered from the kernel's attribute cache even when the daemon is gone;
    // statfs always reaches the daemon, so it tells a live mount from a dead one.
    match probe_statfs(&wanted) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => clear_stale(path),
        _ => Err(FuseError::AlreadyMounted { path: path.to_owned() }),
    }
}

fn probe_statfs(path: &Path) -> std::io::Result<()> {
    rustix::fs::statfs(path)?;
    Ok(())
}

struct MountLine {
    point: PathBuf,
    fstype: String,
    source: String,
}

impl MountLine {
    fn is_ours(&self) -> bool {
        self.fstype.starts_with("fuse") && self.source == FS_NAME
    }
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw` → point, fstype, source.
fn parse_mountinfo(line: &str) -> Option<MountLine> {
    let (fields, tail) = line.split_once(" - ")?;
    let point = fields.split(' ').nth(4)?;
    let mut tail = tail.split(' ');
    let fstype = tail.next()?.to_owned();
    let source = unescape(tail.next()?);
    Some(MountLine { point: PathBuf::from(unescape(point)), fstype, source })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let cases = [
            (
                "36 35 98:0 / /srv/pmirror-fs rw,nosuid - fuse pmirror-fs ro,user_id=0",
                Some(("/srv/pmirror-fs", "fuse", "pmirror-fs")),
            ),
            (
                "36 35 98:0 / /mnt/with\\040space rw shared:1 - ext4 /dev/vda rw",
                Some(("/mnt/with space", "ext4", "/dev/vda")),
            ),
            ("garbage", None),
        ];
        for (line, want) in cases {
            let got = parse_mountinfo(line).map(|m| (m.point.display().to_string(), m.fstype, m.source));
            let want = want.map(|(p, t, s)| (p.to_owned(), t.to_owned(), s.to_owned()));
            assert_eq!(got, want, "{line}");
        }
    }

    #[test]
    fn rejects_missing_non_directories_and_non_empty_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (empty, full) = (dir.path().join("empty"), dir.path().join("full"));
        std::fs::create_dir(&empty).expect("mkdir");
        std::fs::create_dir_all(full.join("sub")).expect("mkdir");
        let file = full.join("f");
        std::fs::write(&file, b"").expect("write");
        let (strict, nonempty) = (MountOptions::default(), MountOptions { nonempty: true, ..Default::default() });
        assert!(matches!(check_mountpoint(&file, &strict), Err(FuseError::NotADirectory { .. })));
        assert!(matches!(check_mountpoint(&dir.path().join("missing"), &strict), Err(FuseError::Mountpoint { .. })));
        assert!(check_mountpoint(&empty, &strict).is_ok());
        match check_mountpoint(&full, &strict) {
            Err(e @ FuseError::NotEmpty { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&full.display().to_string()) && msg.contains("sub/") && msg.contains("--nonempty"),
                    "{msg}"
                );
            }
            other => panic!("non-empty mountpoint accepted: {other:?}"),
        }
        assert!(check_mountpoint(&full, &nonempty).is_ok());
    }
}
