use super::*;

struct World {
    _dir: tempfile::TempDir,
    pool: PathBuf,
    cache: PathBuf,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (pool, cache) = (dir.path().join("pool"), dir.path().join("cache"));
    World { _dir: dir, pool, cache }
}

impl World {
    /// Puts `content` into the pool; returns its digest and size.
    fn object(&self, content: &[u8]) -> (Sha256, u64) {
        let sha = Sha256::of(content);
        let path = crate::pool::object_path(&self.pool, &sha);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        (sha, content.len() as u64)
    }

    fn open(&self, capacity: u64) -> Arc<ReadCache> {
        ReadCache::open(&self.cache, capacity, self.pool.clone()).unwrap()
    }

    fn entry(&self, sha: &Sha256) -> PathBuf {
        crate::pool::object_path(&self.cache, sha)
    }
}

fn read(mut file: File) -> Vec<u8> {
    let mut out = Vec::new();
    io::Read::read_to_end(&mut file, &mut out).unwrap();
    out
}

#[test]
fn a_first_open_copies_and_the_next_is_a_hit() {
    let w = world();
    let (sha, size) = w.object(b"package one");
    let cache = w.open(1 << 20);
    assert_eq!(read(cache.open_object(&sha, size).unwrap()), b"package one");
    assert!(w.entry(&sha).is_file(), "copied into the cache");
    std::fs::remove_file(crate::pool::object_path(&w.pool, &sha)).unwrap();
    assert_eq!(read(cache.open_object(&sha, size).unwrap()), b"package one", "served from the cache alone");
    let stats = cache.stats();
    assert_eq!((stats.copies, stats.hits, stats.copied_bytes), (1, 1, size));
}

#[test]
fn a_damaged_entry_is_dropped_and_copied_again() {
    let w = world();
    let (sha, size) = w.object(b"the right bytes");
    let cache = w.open(1 << 20);
    drop(cache.open_object(&sha, size).unwrap());
    // Same size, other bytes: only the change of the file's times tells.
    let mut f = OpenOptions::new().write(true).open(w.entry(&sha)).unwrap();
    f.write_all(b"THE WRONG BYTES").unwrap();
    drop(f);
    assert_eq!(read(cache.open_object(&sha, size).unwrap()), b"the right bytes");
    assert_eq!(cache.stats().dropped, 1);
    assert_eq!(cache.stats().copies, 2);
}

#[test]
fn entries_of_an_earlier_daemon_are_hashed_before_use() {
    let w = world();
    let (good, good_size) = w.object(b"kept across restarts");
    let (bad, bad_size) = w.object(b"damaged while down");
    let cache = w.open(1 << 20);
    drop(cache.open_object(&good, good_size).unwrap());
    drop(cache.open_object(&bad, bad_size).unwrap());
    drop(cache);
    std::fs::write(w.entry(&bad), b"DAMAGED WHILE DOWN").unwrap();
    std::fs::write(w.cache.join("tmp").join("leftover"), b"x").unwrap();
    let cache = w.open(1 << 20);
    assert!(!w.cache.join("tmp/leftover").exists(), "tmp/ is emptied");
    assert_eq!(read(cache.open_object(&good, good_size).unwrap()), b"kept across restarts");
    assert_eq!(read(cache.open_object(&bad, bad_size).unwrap()), b"damaged while down");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.dropped, stats.copies), (1, 1, 1), "{stats:?}");
}

#[test]
fn the_least_recently_used_go_first() {
    let w = world();
    let objects: Vec<_> = (0..4).map(|i| w.object(&[b'a' + i; 400])).collect();
    let cache = w.open(1000);
    for (sha, size) in &objects[..2] {
        drop(cache.open_object(sha, *size).unwrap());
    }
    drop(cache.open_object(&objects[0].0, 400).unwrap()); // 0 is now newer than 1
    drop(cache.open_object(&objects[2].0, 400).unwrap()); // 1200 bytes: 1 goes
    assert!(!w.entry(&objects[1].0).exists(), "least recently used evicted");
    assert!(w.entry(&objects[0].0).exists() && w.entry(&objects[2].0).exists());
    assert_eq!(cache.bytes(), 800);
    assert_eq!(cache.stats().evicted, 1);
}

#[test]
fn a_pool_object_that_does_not_match_is_not_served() {
    let w = world();
    let (sha, size) = w.object(b"original");
    std::fs::write(crate::pool::object_path(&w.pool, &sha), b"tampered").unwrap();
    let cache = w.open(1 << 20);
    let err = cache.open_object(&sha, size).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert!(!w.entry(&sha).exists(), "nothing cached");
    assert_eq!(cache.stats().bad_objects, 1);
}

#[test]
fn an_object_larger_than_the_cache_is_served_from_the_pool() {
    let w = world();
    let (sha, size) = w.object(&[7u8; 2048]);
    let cache = w.open(1024);
    assert_eq!(read(cache.open_object(&sha, size).unwrap()).len(), 2048);
    assert!(!w.entry(&sha).exists());
    assert_eq!(cache.stats().direct, 1);
}

#[test]
fn one_daemon_per_cache() {
    let w = world();
    let _first = w.open(1 << 20);
    let err = ReadCache::open(&w.cache, 1 << 20, w.pool.clone()).err().expect("refused");
    assert!(err.to_string().contains("another mount daemon"), "{err}");
}
