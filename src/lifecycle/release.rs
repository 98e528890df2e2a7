//! What `snapshot publish` warns about before a rollback (it publishes anyway): a Release whose
//! `Valid-Until` has passed (apt refuses it: "Release file … is expired"), or an InRelease that no
//! longer verifies with the mirror's configured key (apt would refuse the signature).
//!
//! The Release is read from the snapshot's own objects in the pool. An InRelease is verified
//! again with the mirror's key, and only the signed text is parsed (the only way this crate makes
//! a Release out of a clearsigned file). Without a configured key (the mirror left the config) the
//! detached `Release` beside it is parsed as plain text — its signature is not re-checked then.

use super::LifecycleError;
use crate::apt::release::{parse_release, Release};
use crate::apt::signature::{verify_inrelease, Keyring};
use crate::catalog::{snapshot_name, Catalog, PublishedFile};
use crate::pool::Pool;
use crate::tree::source::EntryKind;

/// What a publish is about to do, for [`publish_warnings`].
#[derive(Debug, Clone, Copy)]
pub struct PublishCheck<'a> {
    pub snapshot: i64,
    /// The mirror's currently published snapshot.
    pub current: Option<i64>,
    /// The mirror's configured keyring (file content), when the config has the mirror.
    pub key: Option<&'a [u8]>,
    pub now: i64,
}

/// Warnings (one line each) about publishing `check.snapshot`: its Release no longer verifies or
/// has expired, or it is older than the current one (apt clients that fetched the current one
/// ignore an older Release: a rollback reaches only clients without it).
pub fn publish_warnings(
    catalog: &Catalog,
    pool: &Pool,
    check: &PublishCheck<'_>,
) -> Result<Vec<String>, LifecycleError> {
    let (release, mut warnings) = snapshot_release(catalog, pool, check.snapshot, check.key)?;
    let Some(release) = release else { return Ok(warnings) };
    warnings.extend(expiry_warning(release.valid_until, check.now));
    if let Some(current) = check.current.filter(|c| *c != check.snapshot) {
        let (now_served, _) = snapshot_release(catalog, pool, current, check.key)?;
        warnings.extend(downgrade_warning(release.date, now_served.and_then(|r| r.date)));
    }
    Ok(warnings)
}

/// The Release of a snapshot (verified InRelease, else the plain Release) and why it could not
/// be read, if so.
fn snapshot_release(
    catalog: &Catalog,
    pool: &Pool,
    snapshot: i64,
    key: Option<&[u8]>,
) -> Result<(Option<Release>, Vec<String>), LifecycleError> {
    let files = catalog.snapshot_files(snapshot)?;
    let release = |name: &str| files.iter().find(|f| f.kind == EntryKind::Release && file_name(&f.path) == name);
    let (file, parsed) = match (release("InRelease"), key, release("Release")) {
        (Some(inrelease), Some(key), _) => (inrelease, verified(pool, inrelease, key)),
        (_, _, Some(plain)) => (plain, read(pool, plain).and_then(|b| plain_release(&b))),
        _ => return Ok((None, Vec::new())),
    };
    match parsed {
        Ok(r) => Ok((Some(r), Vec::new())),
        Err(why) if file_name(&file.path) == "InRelease" => Ok((
            None,
            vec![format!("{}: does not verify with the configured key ({why}); apt clients will refuse it", file.path)],
        )),
        Err(why) => Ok((None, vec![format!("{}: cannot check Valid-Until ({why})", file.path)])),
    }
}

/// The warning for rolling back to a Release dated `target` while clients may hold one dated
/// `current`: apt treats a Release older than the one it has as "not modified" (its protection
/// against downgrade attacks), so those clients keep their newer lists.
pub fn downgrade_warning(target: Option<i64>, current: Option<i64>) -> Option<String> {
    let (target, current) = (target?, current?);
    (target < current).then(|| {
        format!(
            "its Release (Date {}) is older than the one published now (Date {}); apt clients that already \
             fetched the newer one keep it (apt ignores an older Release to prevent downgrades) — they see this \
             rollback only after their lists are cleared (rm /var/lib/apt/lists/*_InRelease); new clients see it at once",
            snapshot_name(target),
            snapshot_name(current)
        )
    })
}

/// The warning for a Release valid until `valid_until` (unix s), published at `now`.
pub fn expiry_warning(valid_until: Option<i64>, now: i64) -> Option<String> {
    let until = valid_until?;
    (until <= now).then(|| {
        format!(
            "its Release was valid until {} ({} ago); apt clients refuse it as expired unless they set Acquire::Check-Valid-Until=false",
            snapshot_name(until),
            human_age(now - until)
        )
    })
}

fn human_age(secs: i64) -> String {
    const DAY: i64 = 86_400;
    const HOUR: i64 = 3_600;
    match secs {
        s if s >= DAY => format!("{}d {}h", s / DAY, s % DAY / HOUR),
        s if s >= HOUR => format!("{}h {}m", s / HOUR, s % HOUR / 60),
        s => format!("{s}s"),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Bytes of a snapshot file from the pool, checked against its digest.
fn read(pool: &Pool, f: &PublishedFile) -> Result<Vec<u8>, String> {
    let bytes = crate::lifecycle::read_object(pool, f)?;
    Ok(bytes)
}

fn verified(pool: &Pool, inrelease: &PublishedFile, key: &[u8]) -> Result<Release, String> {
    let bytes = read(pool, inrelease)?;
    let keyring = Keyring::from_bytes(key).map_err(|e| e.to_string())?;
    verify_inrelease(&bytes, &keyring).map(|v| v.release().clone()).map_err(|e| e.to_string())
}

fn plain_release(bytes: &[u8]) -> Result<Release, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    parse_release(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Sha256;

    #[test]
    fn downgrade_table() {
        let cases = [
            (None, Some(5), false),
            (Some(5), None, false),
            (Some(5), Some(5), false),
            (Some(6), Some(5), false),
            (Some(4), Some(5), true),
        ];
        for (target, current, warns) in cases {
            assert_eq!(downgrade_warning(target, current).is_some(), warns, "{target:?} {current:?}");
        }
    }

    #[test]
    fn expiry_table() {
        let cases = [
            (None, 100, None),
            (Some(200), 100, None),
            (Some(100), 100, Some("0s ago")),
            (Some(0), 90_061, Some("1d 1h ago")),
            (Some(0), 3_700, Some("1h 1m ago")),
        ];
        for (until, now, want) in cases {
            let got = expiry_warning(until, now);
            match want {
                None => assert_eq!(got, None, "{until:?} {now}"),
                Some(w) => assert!(got.as_deref().is_some_and(|g| g.contains(w)), "{got:?} lacks {w}"),
            }
        }
    }

    /// A snapshot whose InRelease (signed by a test key) says `Valid-Until`, recorded in a catalog.
    fn snapshot_with(valid_until: &str) -> (tempfile::TempDir, Catalog, Pool, i64, Vec<u8>) {
        use crate::apt::signature::testkey;
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(dir.path(), false).unwrap();
        let mut cat = Catalog::open(dir.path()).unwrap();
        cat.upsert_mirror("m", "mirror", "debian/x", "http://example/debian/x").unwrap();
        let key = testkey::generate("t <t@pmirror-fs.invalid>").unwrap();
        let text = format!(
            "Codename: x\nDate: Mon, 01 Jan 2024 00:00:00 UTC\nValid-Until: {valid_until}\nSHA256:\n {} 0 main/binary-amd64/Packages\n",
            Sha256::of(b"").to_hex()
        );
        let signed = key.clearsign(text.as_bytes()).unwrap();
        let mut entries = Vec::new();
        for (path, bytes) in [("dists/x/InRelease", signed.clone()), ("dists/x/Release", text.into_bytes())] {
            let sha = Sha256::of(&bytes);
            pool.put_bytes(&bytes, &sha).unwrap();
            let size = bytes.len() as u64;
            entries.push(crate::catalog::NewEntry {
                path: path.into(),
                sha256: sha,
                size,
                mtime: 1,
                kind: EntryKind::Release,
                other_hashes: vec![],
            });
        }
        let snap = crate::catalog::NewSnapshot {
            mirror_id: "m".into(),
            created_at: 1,
            release_sha256: None,
            release_last_modified: None,
            entries,
        };
        let id = cat.record_snapshot(&snap).unwrap().0;
        (dir, cat, pool, id, key.public_binary().unwrap())
    }

    #[test]
    fn warns_about_an_expired_release_and_a_foreign_key() {
        const JAN_2024: i64 = 1_704_067_200;
        let (_d, cat, pool, id, key) = snapshot_with("Tue, 02 Jan 2024 00:00:00 UTC");
        fn check(id: i64, key: Option<&[u8]>, now: i64) -> PublishCheck<'_> {
            PublishCheck { snapshot: id, current: None, key, now }
        }
        let at = |now| publish_warnings(&cat, &pool, &check(id, Some(&key), now)).unwrap();
        assert!(at(JAN_2024).is_empty());
        let late = at(JAN_2024 + 2 * 86_400);
        assert_eq!(late.len(), 1, "{late:?}");
        assert!(late[0].contains("2024-01-02T00:00:00Z") && late[0].contains("1d 0h ago"), "{late:?}");
        // No key configured: the plain Release says the same.
        assert_eq!(publish_warnings(&cat, &pool, &check(id, None, JAN_2024 + 2 * 86_400)).unwrap(), late);
        // Another key: the InRelease does not verify any more.
        let other = crate::apt::signature::testkey::generate("o <o@pmirror-fs.invalid>").unwrap();
        let other = other.public_binary().unwrap();
        let w = publish_warnings(&cat, &pool, &check(id, Some(&other), JAN_2024)).unwrap();
        assert!(w.len() == 1 && w[0].contains("dists/x/InRelease: does not verify"), "{w:?}");
    }
}
