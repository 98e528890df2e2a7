//! What a writer publishes for the serving nodes of a shared store (`[store] shared = true`: the
//! store on CephFS or another filesystem several hosts mount). Serving nodes never open the
//! SQLite catalog — SQLite's locking and WAL do not work across hosts — so everything they need
//! is a file in `views/`, each written to a temporary name, flushed and renamed:
//!
//! ```text
//! views/
//! ├── current                      "<generation> <nonce>\n": the image to serve (after the commit)
//! ├── status.json                  the status document (at a run's start and end, after a publish)
//! ├── web/index.html, web/status/  the front page's files ([web]), written before status.json
//! └── <generation>-<nonce>.view    view images; a superseded one stays for [store] gc-delay
//! ```
//!
//! A superseded image stays while a serving node may still map it (a connection pinned to it):
//! it is deleted once the image that replaced it is `gc-delay` old. A crash between a commit and
//! the pointer's rename leaves the pointer on the previous generation; the next writer to open
//! the store writes it again ([`repair_pointer`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::tree::image;

/// The pointer file in `views/`.
pub const POINTER_FILE: &str = "current";
/// The status document in `views/` (the serving nodes' `/status.json`).
pub const STATUS_DOC: &str = "status.json";
/// The front page's files in `views/` (`[web]`), by their path in the view.
pub const WEB_DIR: &str = "web";

/// `views/current` of the images directory `dir`.
pub fn pointer_path(dir: &Path) -> PathBuf {
    dir.join(POINTER_FILE)
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename (flushed first with `fsync`).
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8], fsync: bool) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        if fsync {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(name))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if fsync {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Points serving nodes at the image of `generation` with `nonce`.
pub fn write_pointer(dir: &Path, generation: u64, nonce: u64, fsync: bool) -> io::Result<()> {
    replace_file(dir, POINTER_FILE, format!("{generation} {nonce:016x}\n").as_bytes(), fsync)
}

/// The generation and image nonce the pointer names; `None` before the first publish.
pub fn read_pointer(dir: &Path) -> io::Result<Option<(u64, u64)>> {
    let text = match std::fs::read_to_string(pointer_path(dir)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    parse_pointer(&text).map(Some).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not \"<generation> <nonce>\"", pointer_path(dir).display()),
        )
    })
}

fn parse_pointer(text: &str) -> Option<(u64, u64)> {
    let mut words = text.split_whitespace();
    let generation = words.next()?.parse().ok()?;
    let nonce = u64::from_str_radix(words.next()?, 16).ok()?;
    words.next().is_none().then_some((generation, nonce))
}

/// Rewrites the pointer when it does not name the catalog's `pointer` (a writer that died
/// between its commit and the pointer's rename); true when it did.
pub fn repair_pointer(dir: &Path, pointer: (u64, Option<u64>), fsync: bool) -> io::Result<bool> {
    let (generation, Some(nonce)) = pointer else { return Ok(false) };
    if read_pointer(dir).ok().flatten() == Some((generation, nonce))
        || !dir.join(image::file_name(generation, nonce)).exists()
    {
        return Ok(false);
    }
    write_pointer(dir, generation, nonce, fsync)?;
    Ok(true)
}

/// Deletes the images in `dir` superseded at least `delay` ago — the image after them is that
/// old — except `keep` (the current one); returns how many went. Temporary files of other
/// writers' attempts go once they are `delay` old.
pub fn prune_images(dir: &Path, keep: Option<&str>, delay: Duration, now: SystemTime) -> io::Result<usize> {
    let mut images: Vec<(u64, String, SystemTime)> = Vec::new();
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let old = |t: SystemTime| now.duration_since(t).is_ok_and(|age| age >= delay);
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        let mtime = entry.metadata()?.modified()?;
        if let Some((generation, _)) = image::parse_name(&name) {
            images.push((generation, name, mtime));
        } else if name.starts_with('.') && name.ends_with(".tmp") && old(mtime) {
            removed += remove(&dir.join(&name))?;
        }
    }
    images.sort();
    for pair in images.windows(2) {
        let ((_, name, _), (_, _, successor)) = (&pair[0], &pair[1]);
        if Some(name.as_str()) != keep && old(*successor) {
            removed += remove(&dir.join(name))?;
        }
    }
    Ok(removed)
}

fn remove(path: &Path) -> io::Result<usize> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(1),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pointer_round_trips_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_pointer(dir.path()).unwrap(), None);
        write_pointer(dir.path(), 7, 0xabc, false).unwrap();
        assert_eq!(read_pointer(dir.path()).unwrap(), Some((7, 0xabc)));
        for bad in ["", "7", "7 xyz", "7 1 2", "x 1"] {
            assert_eq!(parse_pointer(bad), None, "{bad:?}");
        }
        std::fs::write(pointer_path(dir.path()), "garbage").unwrap();
        assert!(read_pointer(dir.path()).unwrap_err().to_string().contains("current"));
    }

    #[test]
    fn a_superseded_image_stays_for_the_delay() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (1..=3).map(|g| image::file_name(g, g)).collect();
        for name in &names {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let delay = Duration::from_secs(60);
        let now = SystemTime::now();
        assert_eq!(prune_images(dir.path(), Some(&names[2]), delay, now).unwrap(), 0, "all superseded just now");
        let later = now + Duration::from_secs(61);
        assert_eq!(prune_images(dir.path(), Some(&names[2]), delay, later).unwrap(), 2);
        assert!(dir.path().join(&names[2]).exists(), "the current image stays");
    }

    #[test]
    fn a_lost_pointer_is_repaired_when_its_image_exists() {
        let dir = tempfile::tempdir().unwrap();
        write_pointer(dir.path(), 1, 1, false).unwrap();
        assert!(!repair_pointer(dir.path(), (2, Some(2)), false).unwrap(), "no image of generation 2");
        std::fs::write(dir.path().join(image::file_name(2, 2)), b"x").unwrap();
        assert!(repair_pointer(dir.path(), (2, Some(2)), false).unwrap());
        assert_eq!(read_pointer(dir.path()).unwrap(), Some((2, 2)));
        assert!(!repair_pointer(dir.path(), (2, Some(2)), false).unwrap(), "already right");
    }
}
