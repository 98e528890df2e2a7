//! Tests of the framing apt imposes on InRelease and Release.gpg (its SplitClearSignedFile and
//! VerifyDetachedSignatureFile cases): what may precede, follow and sit inside the signed text
//! and the signature blocks.

use super::super::tests::{armor, keys, ring, sig_with, RELEASE};
use super::super::{verify_detached, verify_detached_data, verify_inrelease, SignatureError};
use crate::apt::release::parse_release;
use sequoia_openpgp::types::{HashAlgorithm, SignatureType};

#[test]
fn unsigned_data_is_rejected() {
    let keyring = ring(&[&keys().0]);
    let err = verify_inrelease(RELEASE.as_bytes(), &keyring).unwrap_err();
    assert!(matches!(&err, SignatureError::NotSigned(_)), "{err}");
    let err = verify_detached(RELEASE.as_bytes(), b"", &keyring).unwrap_err();
    assert!(matches!(&err, SignatureError::NotSigned(_)), "{err}");
    let err = verify_detached(RELEASE.as_bytes(), b"garbage", &keyring).unwrap_err();
    assert!(matches!(&err, SignatureError::Malformed(_)), "{err}");
    let header_only = b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: x\n";
    let err = verify_inrelease(header_only, &keyring).unwrap_err();
    assert!(matches!(&err, SignatureError::Malformed(_)), "{err}");
    let signed = String::from_utf8(keys().0.clearsign(RELEASE.as_bytes()).unwrap()).unwrap();
    let stripped = &signed[..signed.find("-----BEGIN PGP SIGNATURE").unwrap()];
    let err = verify_inrelease(stripped.as_bytes(), &keyring).unwrap_err();
    assert!(matches!(&err, SignatureError::Malformed(_)), "no signature block: {err}");
}

#[test]
fn appended_unsigned_text_is_not_verified() {
    let (key, _) = keys();
    let keyring = ring(&[key]);
    let inrelease = key.clearsign(RELEASE.as_bytes()).unwrap();
    let extra = b"\nSHA256:\n 00000000000000000000000000000000000000000000000000000000000000ff 1 evil\n";
    let appended = [inrelease.as_slice(), extra].concat();
    let err = verify_inrelease(&appended, &keyring).unwrap_err();
    assert!(matches!(&err, SignatureError::UnsignedData), "{err}");
    // Not even blank lines may follow (apt's SplitClearSignedFile: "contains unsigned lines").
    let padded = [inrelease.as_slice(), b"\n\n  \n"].concat();
    assert!(matches!(verify_inrelease(&padded, &keyring), Err(SignatureError::UnsignedData)));
    // Past the armor check, the parsed text is still the verifier's output, not the input.
    let v = verify_inrelease(&inrelease, &keyring).unwrap();
    assert_eq!(v.release(), &parse_release(RELEASE).unwrap());
    let mut prefixed = b"Origin: Evil\n\n".to_vec();
    prefixed.extend_from_slice(&key.clearsign(RELEASE.as_bytes()).unwrap());
    assert!(matches!(verify_inrelease(&prefixed, &keyring), Err(SignatureError::NotSigned(_))));
}

#[test]
fn dash_escaped_footer_in_text_is_fine() {
    let (key, _) = keys();
    // A line starting with '-' is dash-escaped (`- -----END…`) inside the clearsigned block.
    let text = format!("{RELEASE}-----END PGP SIGNATURE-----: x\n");
    let inrelease = key.clearsign(text.as_bytes()).unwrap();
    let v = verify_inrelease(&inrelease, &ring(&[key])).unwrap();
    assert_eq!(v.signed_text(), text);
}

#[test]
fn nothing_may_precede_the_clearsign_header() {
    let (key, _) = keys();
    let keyring = ring(&[key]);
    let inrelease = key.clearsign(RELEASE.as_bytes()).unwrap();
    // apt's SplitClearSignedFile: "does not start with a signed message block" (GarbageTop).
    for prefix in [&b"\n"[..], b"\r\n", b" \t\n", b"Origin: Evil\n"] {
        let err = verify_inrelease(&[prefix, &inrelease].concat(), &keyring).unwrap_err();
        assert!(matches!(&err, SignatureError::NotSigned(why) if why.contains("does not start")), "{prefix:?}: {err}");
    }
    let err = verify_inrelease(&[b" ", inrelease.as_slice()].concat(), &keyring).unwrap_err();
    assert!(matches!(&err, SignatureError::NotSigned(_)), "{err}");
    // Trailing blanks and CRs are cut off every line (WhitespaceSignedFile), the header's too.
    let text = String::from_utf8(inrelease).unwrap();
    let blanks = text.replacen("MESSAGE-----\n", "MESSAGE----- \t \n", 1);
    assert_eq!(verify_inrelease(blanks.as_bytes(), &keyring).unwrap().signed_text(), RELEASE);
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(verify_inrelease(crlf.as_bytes(), &keyring).unwrap().signed_text(), RELEASE);
    let padded = text.replace('\n', " \n");
    assert_eq!(verify_inrelease(padded.as_bytes(), &keyring).unwrap().signed_text(), RELEASE);
    // Anything else on the header line makes it no header (GarbageHeader).
    let garbage = text.replacen("MESSAGE-----\n", "MESSAGE----- Garbage\n", 1);
    assert!(matches!(verify_inrelease(garbage.as_bytes(), &keyring), Err(SignatureError::NotSigned(_))));
}

#[test]
fn nothing_but_signature_blocks_may_follow() {
    let (key, _) = keys();
    let keyring = ring(&[key]);
    let inrelease = key.clearsign(RELEASE.as_bytes()).unwrap();
    assert!(inrelease.ends_with(b"\n-----END PGP SIGNATURE-----\n"));
    // apt's SplitClearSignedFile: "contains unsigned lines" (GarbageBottom), even an empty one.
    for suffix in [&b"\n"[..], b"\r\n", b" ", b"\t\n", b"Garbage", b"\n-----BEGIN PGP SIGNED MESSAGE-----\n"] {
        let err = verify_inrelease(&[&inrelease, suffix].concat(), &keyring).unwrap_err();
        assert!(matches!(&err, SignatureError::UnsignedData), "{suffix:?}: {err}");
    }
    // The newline after the END line is optional and its trailing blanks are cut off.
    let bare = &inrelease[..inrelease.len() - 1];
    assert!(verify_inrelease(bare, &keyring).is_ok());
    assert!(verify_inrelease(&[bare, b" \t\r\n"].concat(), &keyring).is_ok());
}

#[test]
fn lines_starting_with_a_dash_must_be_dash_escaped() {
    let (key, _) = keys();
    let keyring = ring(&[key]);
    let text = String::from_utf8(key.clearsign(RELEASE.as_bytes()).unwrap()).unwrap();
    // apt's StrangeDashArmorFile, StrangeDashMsgFile, StrangeDashSigFile.
    let armor = text.replacen("Hash: SHA512\n", "Hash: SHA512\n-Hash: SHA512\n", 1);
    let msg = text.replacen("Origin: Test\n", "-Origin: Test\n", 1);
    let sig = text.replacen("SIGNATURE-----\n\n", "SIGNATURE-----\n\n-x\n", 1);
    for (part, input) in [("armor", armor), ("msg", msg), ("sig", sig)] {
        let err = verify_inrelease(input.as_bytes(), &keyring).unwrap_err();
        assert!(matches!(&err, SignatureError::Malformed(m) if m.contains(&format!("({part})"))), "{part}: {err}");
    }
    // Any line may be dash-escaped (DashedSignedFile); the escape is not part of the text.
    let escaped = text.replacen("Origin: Test\n", "- Origin: Test\n", 1);
    assert_eq!(verify_inrelease(escaped.as_bytes(), &keyring).unwrap().signed_text(), RELEASE);
    // A block left open (BogusSigStart).
    let open = text.replacen("-----END PGP SIGNATURE-----\n", "", 1);
    assert!(matches!(verify_inrelease(open.as_bytes(), &keyring), Err(SignatureError::Malformed(_))));
}

#[test]
fn release_gpg_must_be_ascii_armor_alone() {
    let (key, _) = keys();
    let keyring = ring(&[key]);
    let release = RELEASE.as_bytes();
    let binary = sig_with(key, SignatureType::Binary, release, HashAlgorithm::SHA512, None);
    let armored = armor(&binary);
    assert!(armored.ends_with(b"-----END PGP SIGNATURE-----\n"));
    assert!(verify_detached(release, &armored, &keyring).is_ok());
    // apt's VerifyDetachedSignatureFile: "is in unsupported binary format".
    let err = verify_detached(release, &binary, &keyring).unwrap_err();
    assert!(matches!(&err, SignatureError::Malformed(m) if m.contains("binary")), "{err}");
    // pveam's bare sqv (and gpgv) take both for SHA256SUMS.asc and aplinfo .asc.
    assert!(verify_detached_data(release, &binary, &keyring).is_ok());
    assert!(verify_detached_data(release, &armored, &keyring).is_ok());
    // "contains lines not belonging to a signature": not even an empty one.
    for (what, sig) in [
        ("blank line before", [b"\n".as_slice(), &armored].concat()),
        ("text before", [b"Signature:\n".as_slice(), &armored].concat()),
        ("blank line after", [armored.as_slice(), b"\n"].concat()),
        ("blank after", [armored.as_slice(), b" "].concat()),
        ("text after", [armored.as_slice(), b"Garbage\n"].concat()),
    ] {
        let err = verify_detached(release, &sig, &keyring).unwrap_err();
        assert!(matches!(&err, SignatureError::UnsignedData), "{what}: {err}");
    }
    // Line ends and trailing blanks do not matter, nor does the last newline.
    let text = String::from_utf8(armored.clone()).unwrap();
    for sig in [text.replace('\n', "\r\n"), text.replace('\n', " \t\n"), text.trim_end().to_owned()] {
        assert!(verify_detached(release, sig.as_bytes(), &keyring).is_ok(), "{sig:?}");
    }
    // "unexpected line starting with a dash", "contains unclosed signatures".
    let dash = text.replacen("SIGNATURE-----\n", "SIGNATURE-----\n-Comment: x\n", 1);
    let open = text.replacen("-----END PGP SIGNATURE-----\n", "", 1);
    for sig in [dash, open] {
        let err = verify_detached(release, sig.as_bytes(), &keyring).unwrap_err();
        assert!(matches!(&err, SignatureError::Malformed(_)), "{err}");
    }
}
