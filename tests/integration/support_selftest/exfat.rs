//! The exFAT harness, and what an exFAT medium refuses (the constraints `medium sync` must meet,
//! issue 14): names with `:` (snapshot names have it), hard links, symlinks; and what it does
//! support: fsync of files and directories, rename over an existing file (the atomic step), and
//! a clear ENOSPC when full. Survives an unmount and a remount with its content.

use crate::support::exfat::Exfat;
use std::io::Write;

fn errno<T: std::fmt::Debug>(result: std::io::Result<T>) -> Option<i32> {
    result.err().and_then(|e| e.raw_os_error())
}

#[test]
fn an_exfat_medium_refuses_what_fat_refuses_and_keeps_what_it_was_given() {
    let mut medium = Exfat::new(16 << 20, "PMFSTEST");
    let root = medium.path();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let line = mounts.lines().find(|l| l.contains(root.to_str().unwrap())).expect("the medium is mounted");
    assert!(line.contains("fuseblk"), "exfat-fuse on a loop device: {line}");

    std::fs::write(root.join("a.txt"), b"first").unwrap();
    assert!(errno(std::fs::write(root.join("2026-12-01T10:00:00Z"), b"x")).is_some(), "':' is refused");
    assert_eq!(errno(std::fs::hard_link(root.join("a.txt"), root.join("b"))), Some(libc::EPERM), "no hard links");
    assert!(errno(std::os::unix::fs::symlink("a.txt", root.join("c"))).is_some(), "no symlinks");

    // The atomic step a medium sync needs: write, fsync, rename over, fsync the directory.
    let tmp = root.join("a.txt.tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(b"second").unwrap();
    f.sync_all().unwrap();
    drop(f);
    std::fs::rename(&tmp, root.join("a.txt")).unwrap();
    std::fs::File::open(&root).unwrap().sync_all().unwrap();

    // Full: a clear ENOSPC, and what was there before is intact.
    let mut big = std::fs::File::create(root.join("big")).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let full = (0..64).map(|_| big.write_all(&chunk)).find_map(Result::err).expect("a 16 MiB medium fills up");
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC), "{full}");
    drop(big);
    std::fs::remove_file(root.join("big")).unwrap();

    medium.unmount();
    assert!(!root.join("a.txt").exists(), "unmounted");
    medium.remount();
    assert_eq!(std::fs::read(root.join("a.txt")).unwrap(), b"second", "the content survives a remount");
}
