//! The companions served beside InRelease, against generated signed Releases.

use super::*;
use crate::apt::signature::testkey;
use crate::apt::signature::verify_inrelease;

fn release(date: &str) -> String {
    let sha = Sha256::of(b"");
    format!("Suite: stable\nDate: {date}\nSHA256:\n {sha} 0 main/binary-amd64/Packages\n")
}

/// As on deb.debian.org: Release ends with the newline the clearsigned text does not sign.
#[test]
fn release_with_the_final_newline_is_inreleases_text() {
    let key = testkey::generate("Repo <repo@example.org>").unwrap();
    let keyring = Keyring::from_bytes(&key.public_binary().unwrap()).unwrap();
    let text = release("Mon, 30 Nov 2026 02:21:41 UTC");
    // Debian's InRelease as sequoia reads it: the signed text ends without a newline.
    let inrelease = verify_inrelease(&key.clearsign(text.trim_end().as_bytes()).unwrap(), &keyring).unwrap();
    let signed = inrelease.signed_text().as_bytes();
    assert_eq!(signed, text.trim_end().as_bytes());
    for candidate in [text.as_bytes(), text.trim_end().as_bytes()] {
        assert!(same_text(candidate, signed), "{candidate:?} vs {signed:?}");
    }
    assert!(!same_text(format!("{text}\n").as_bytes(), signed));
    assert!(!same_text(text.replace("stable", "stablf").as_bytes(), signed));
    let stale = body(&key.detach_sign(b"an older Release").unwrap());
    let verdict = companion_verdict(Some(&body(text.as_bytes())), Some(&stale), &inrelease, &keyring);
    assert!(matches!(verdict, Companions::ReleaseOnly { gpg_error: Some(_) }), "{verdict:?}");
}

fn body(bytes: &[u8]) -> Body {
    Body { bytes: bytes.to_vec(), last_modified: None }
}

/// Debian's real upstream: Release is InRelease's text, Release.gpg a month older (or bad).
#[test]
fn companions_are_served_only_when_they_verify() {
    let key = testkey::generate("Repo <repo@example.org>").unwrap();
    let other = testkey::generate("Other <other@example.org>").unwrap();
    let keyring = Keyring::from_bytes(&key.public_binary().unwrap()).unwrap();
    let now = release("Mon, 30 Nov 2026 02:21:41 UTC");
    let old = release("Fri, 30 Oct 2026 08:08:02 UTC");
    let inrelease = verify_inrelease(&key.clearsign(now.as_bytes()).unwrap(), &keyring).unwrap();
    let good_gpg = body(&key.detach_sign(now.as_bytes()).unwrap());
    let stale_gpg = body(&key.detach_sign(old.as_bytes()).unwrap());
    let foreign_gpg = body(&other.detach_sign(now.as_bytes()).unwrap());
    let (same, older) = (body(now.as_bytes()), body(old.as_bytes()));
    let verdict = |r: Option<&Body>, g: Option<&Body>| companion_verdict(r, g, &inrelease, &keyring);

    assert_eq!(verdict(Some(&same), Some(&good_gpg)), Companions::Both);
    // Release identical to the signed text; Release.gpg stale, by an unknown key, or absent.
    for gpg in [&stale_gpg, &foreign_gpg] {
        match verdict(Some(&same), Some(gpg)) {
            Companions::ReleaseOnly { gpg_error: Some(e) } => assert!(!e.is_empty()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(verdict(Some(&same), None), Companions::ReleaseOnly { gpg_error: None });
    // An older Release is not served, even with its own good signature: it lists indices
    // this snapshot (InRelease's) does not carry.
    assert!(matches!(verdict(Some(&older), Some(&stale_gpg)), Companions::Neither { why: Some(_) }));
    assert!(matches!(verdict(Some(&older), Some(&good_gpg)), Companions::Neither { why: Some(_) }));
    assert!(matches!(verdict(Some(&older), None), Companions::Neither { why: Some(_) }));
    assert!(matches!(verdict(None, Some(&good_gpg)), Companions::Neither { why: Some(_) }));
    assert_eq!(verdict(None, None), Companions::Neither { why: None });
}
