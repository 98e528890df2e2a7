//! Tests of signature verification: keyrings, the verdict over good, bad, unknown, expired,
//! revoked and weak signatures, apt's algorithm policy, and the test keys. Fixtures shared with
//! the framing tests (`framing_tests.rs`) live here.

use super::testkey::{generate, SigningKey};
use super::*;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::serialize::stream::{Message, Signer};
use openpgp::serialize::{Serialize, SerializeInto};
use openpgp::types::{HashAlgorithm, SignatureType};
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

pub(super) const RELEASE: &str = "Origin: Test\nCodename: bookworm\nDate: Sat, 09 Nov 2024 10:11:12 UTC\n\
    Components: main\nArchitectures: amd64\nSHA256:\n \
    0000000000000000000000000000000000000000000000000000000000000001 10 main/binary-amd64/Packages\n";

/// Key generation costs ~ms each with Cv25519, but share two keys across tests anyway.
pub(super) fn keys() -> &'static (SigningKey, SigningKey) {
    static KEYS: OnceLock<(SigningKey, SigningKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (generate("Test Repo <repo@example.org>").unwrap(), generate("Other <other@example.org>").unwrap())
    })
}

pub(super) fn ring(keys: &[&SigningKey]) -> Keyring {
    let bytes: Vec<u8> = keys.iter().flat_map(|k| k.public_binary().unwrap()).collect();
    Keyring::from_bytes(&bytes).unwrap()
}

#[test]
fn valid_signatures_verify() {
    let (key, _) = keys();
    let keyring = ring(&[key]);
    let v = verify_inrelease(&key.clearsign(RELEASE.as_bytes()).unwrap(), &keyring).unwrap();
    assert_eq!(v.signer_fingerprint(), key.fingerprint());
    assert_eq!(v.release().codename.as_deref(), Some("bookworm"));
    assert_eq!(v.release().files.len(), 1);
    let sig = key.detach_sign(RELEASE.as_bytes()).unwrap();
    assert!(sig.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
    let v = verify_detached(RELEASE.as_bytes(), &sig, &keyring).unwrap();
    assert_eq!((v.signer_fingerprint(), v.signed_text()), (key.fingerprint().as_str(), RELEASE));
}

#[test]
fn keyrings_with_two_certs_binary_and_armored() {
    let (a, b) = keys();
    let mut armored = Vec::new();
    {
        let mut w = openpgp::armor::Writer::new(&mut armored, openpgp::armor::Kind::PublicKey).unwrap();
        a.cert().serialize(&mut w).unwrap();
        b.cert().serialize(&mut w).unwrap();
        w.finalize().unwrap();
    }
    let binary: Vec<u8> = [a.public_binary().unwrap(), b.public_binary().unwrap()].concat();
    for (what, bytes) in [("armored", armored), ("binary", binary)] {
        let keyring = Keyring::from_bytes(&bytes).unwrap();
        assert_eq!(keyring.fingerprints(), [a.fingerprint(), b.fingerprint()], "{what}");
        for key in [a, b] {
            let v = verify_inrelease(&key.clearsign(RELEASE.as_bytes()).unwrap(), &keyring).unwrap();
            assert_eq!(v.signer_fingerprint(), key.fingerprint(), "{what}");
        }
    }
    let two_blocks = [a.public_armored().unwrap(), b.public_armored().unwrap()].concat();
    let keyring = Keyring::from_bytes(&two_blocks).unwrap();
    assert_eq!(keyring.fingerprints(), [a.fingerprint(), b.fingerprint()], "two armor blocks");
    let single = Keyring::from_bytes(&a.public_armored().unwrap()).unwrap();
    assert_eq!(single.fingerprints(), [a.fingerprint()]);
}

#[test]
fn bad_keyrings_are_rejected() {
    assert!(matches!(Keyring::from_bytes(b""), Err(SignatureError::EmptyKeyring)));
    assert!(Keyring::from_bytes(b"not a key at all").is_err());
    let secret = keys().0.to_tsk_bytes().unwrap();
    let keyring = Keyring::from_bytes(&secret).unwrap();
    assert!(keyring.certs.iter().all(|c| !c.is_tsk()), "secret material is dropped");
}

#[test]
fn wrong_key_is_rejected() {
    let (key, other) = keys();
    let inrelease = key.clearsign(RELEASE.as_bytes()).unwrap();
    let err = verify_inrelease(&inrelease, &ring(&[other])).unwrap_err();
    let signing_subkey = key.keypair().unwrap().public().fingerprint().to_hex();
    assert!(matches!(&err, SignatureError::UnknownKey { issuers } if *issuers == signing_subkey), "{err}");
    let sig = key.detach_sign(RELEASE.as_bytes()).unwrap();
    let err = verify_detached(RELEASE.as_bytes(), &sig, &ring(&[other])).unwrap_err();
    assert!(matches!(&err, SignatureError::UnknownKey { .. }), "{err}");
}

#[test]
fn modified_text_is_rejected() {
    let (key, _) = keys();
    let keyring = ring(&[key]);
    let tampered =
        String::from_utf8(key.clearsign(RELEASE.as_bytes()).unwrap()).unwrap().replace("Origin: Test", "Origin: Evil");
    let err = verify_inrelease(tampered.as_bytes(), &keyring).unwrap_err();
    assert!(matches!(&err, SignatureError::BadSignature { .. }), "{err}");
    let sig = key.detach_sign(RELEASE.as_bytes()).unwrap();
    let modified = RELEASE.replace(" 10 ", " 11 ");
    let err = verify_detached(modified.as_bytes(), &sig, &keyring).unwrap_err();
    assert!(matches!(&err, SignatureError::BadSignature { .. }), "{err}");
}

#[test]
fn expired_and_revoked_keys_are_rejected() {
    let (key, _) = keys();
    // A key valid for one day: good now, expired in two days.
    let (cert, revocation) = openpgp::cert::CertBuilder::general_purpose(Some("Short <s@example.org>"))
        .set_validity_period(Duration::from_secs(24 * 3600))
        .generate()
        .unwrap();
    let short = SigningKey::from_cert(cert.clone()).unwrap();
    let inrelease = short.clearsign(RELEASE.as_bytes()).unwrap();
    let keyring = ring(&[&short]);
    assert!(verify_inrelease(&inrelease, &keyring).is_ok());
    let later = SystemTime::now() + Duration::from_secs(2 * 24 * 3600);
    let err = verify_inrelease_at(&inrelease, &keyring, later).unwrap_err();
    assert!(matches!(&err, SignatureError::KeyExpired { .. }), "{err}");

    // Signed after the key expired: sequoia itself rejects the key.
    let mut late = Vec::new();
    let mut signer = Signer::new(Message::new(&mut late), short.keypair().unwrap())
        .unwrap()
        .cleartext()
        .creation_time(later)
        .build()
        .unwrap();
    signer.write_all(RELEASE.as_bytes()).unwrap();
    signer.finalize().unwrap();
    let err = verify_inrelease_at(&late, &keyring, later).unwrap_err();
    assert!(matches!(&err, SignatureError::KeyExpired { .. }), "{err}");

    let (revoked, _) = cert.insert_packets(Some(revocation)).unwrap();
    let keyring = Keyring::from_bytes(&revoked.to_vec().unwrap()).unwrap();
    let err = verify_inrelease(&inrelease, &keyring).unwrap_err();
    assert!(matches!(&err, SignatureError::KeyRevoked { .. }), "{err}");
    // A good signature from another key in the keyring still wins.
    let both = [revoked.to_vec().unwrap(), key.public_binary().unwrap()].concat();
    let keyring = Keyring::from_bytes(&both).unwrap();
    assert!(verify_inrelease(&key.clearsign(RELEASE.as_bytes()).unwrap(), &keyring).is_ok());
}

#[test]
fn sha1_signatures_are_rejected_by_policy() {
    let (key, _) = keys();
    let mut sink = Vec::new();
    let mut signer = Signer::new(Message::new(&mut sink), key.keypair().unwrap())
        .unwrap()
        .cleartext()
        .hash_algo(HashAlgorithm::SHA1)
        .unwrap()
        .build()
        .unwrap();
    signer.write_all(RELEASE.as_bytes()).unwrap();
    signer.finalize().unwrap();
    // apt's gpgv method calls SHA-1 an "untrusted digest algorithm", not a BADSIG.
    let err = verify_inrelease(&sink, &ring(&[key])).unwrap_err();
    assert!(matches!(&err, SignatureError::WeakSignature { reason, .. } if reason.contains("SHA1")), "{err}");
}

#[test]
fn signed_text_must_be_a_release() {
    let (key, _) = keys();
    let err = verify_inrelease(&key.clearsign(b"Origin: x\n").unwrap(), &ring(&[key])).unwrap_err();
    assert!(matches!(&err, SignatureError::Release(ParseError::MissingField { .. })), "{err}");
}

#[test]
fn detached_data_signatures() {
    let (key, other) = keys();
    let data = b"0123abcd  proxmox-ve_8.2-1.iso\n";
    let sig = key.detach_sign(data).unwrap();
    // (data, signature, keyring, accepted) — the data is not a Release and need not parse.
    let cases: Vec<(&[u8], &[u8], Keyring, bool)> = vec![
        (data, &sig, ring(&[key]), true),
        (data, &sig, ring(&[other, key]), true),
        (b"0123abce  proxmox-ve_8.2-1.iso\n", &sig, ring(&[key]), false),
        (data, &sig, ring(&[other]), false),
        (data, b"  \n", ring(&[key]), false),
        (data, b"garbage", ring(&[key]), false),
    ];
    for (i, (data, sig, keyring, accepted)) in cases.into_iter().enumerate() {
        let got = verify_detached_data(data, sig, &keyring);
        assert_eq!(got.is_ok(), accepted, "case {i}: {got:?}");
    }
}

/// RELEASE as apt splits it off a clearsigned message: no newline after the last line.
pub(super) fn body() -> &'static [u8] {
    RELEASE.trim_end_matches('\n').as_bytes()
}

/// A binary detached signature packet over `text`.
pub(super) fn sig_with(
    key: &SigningKey,
    typ: SignatureType,
    text: &[u8],
    hash: HashAlgorithm,
    at: Option<SystemTime>,
) -> Vec<u8> {
    let mut sink = Vec::new();
    let template = SignatureBuilder::new(typ);
    let mut signer = Signer::with_template(Message::new(&mut sink), key.keypair().unwrap(), template)
        .unwrap()
        .detached()
        .hash_algo(hash)
        .unwrap();
    if let Some(at) = at {
        signer = signer.creation_time(at);
    }
    let mut w = signer.build().unwrap();
    w.write_all(text).unwrap();
    w.finalize().unwrap();
    sink
}

/// A text signature, as in a clearsigned message.
pub(super) fn text_sig(key: &SigningKey, text: &[u8]) -> Vec<u8> {
    sig_with(key, SignatureType::Text, text, HashAlgorithm::SHA512, None)
}

/// One armored signature block holding `packets`.
pub(super) fn armor(packets: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = openpgp::armor::Writer::new(&mut out, openpgp::armor::Kind::Signature).unwrap();
    w.write_all(packets).unwrap();
    w.finalize().unwrap();
    out
}

/// A clearsigned message of `text` (no line of it starting with `-`) followed by `blocks`.
pub(super) fn clearsigned(text: &[u8], blocks: &[Vec<u8>]) -> Vec<u8> {
    [b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n".as_slice(), text, b"\n", &blocks.concat()].concat()
}

pub(super) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn an_rsa_signature_over_other_data_is_bad_not_weak() {
    // deb.debian.org's stale Release.gpg: an RSA signature by the archive key over an older
    // Release. The pure-Rust RSA verifier says "verification error", not BadSignature.
    let rsa = testkey::generate_rsa("Archive <archive@example.org>").unwrap();
    let keyring = ring(&[&rsa]);
    let stale = text_sig(&rsa, b"Origin: Debian\nDate: Fri, 30 Oct 2026 08:08:02 UTC\n");
    let got = verify_detached(body(), &armor(&stale), &keyring);
    assert!(matches!(got, Err(SignatureError::BadSignature { .. })), "{got:?}");
    let good = text_sig(&rsa, body());
    let got = verify_detached(body(), &armor(&[good.as_slice(), stale.as_slice()].concat()), &keyring);
    assert!(matches!(got, Err(SignatureError::BadSignature { .. })), "a bad one spoils a good one: {got:?}");
    assert!(verify_detached(body(), &armor(&good), &keyring).is_ok());
}

#[test]
fn a_bad_signature_spoils_a_good_one() {
    let (a, b) = keys();
    let stranger = generate("Stranger <stranger@example.org>").unwrap();
    let good = text_sig(a, body());
    let bad = text_sig(b, b"Origin: Evil");
    let unknown = text_sig(&stranger, body());
    let sha1 = sig_with(b, SignatureType::Text, body(), HashAlgorithm::SHA1, None);
    // What the verdict must be: accepted, signed by `a`, or refused with this error.
    #[derive(Debug)]
    enum Want {
        SignedByA,
        Bad,
        Unknown,
        Weak,
    }
    let cases: Vec<(&str, Vec<&[u8]>, Keyring, Want)> = vec![
        // methods/gpgv.cc: a BADSIG by a keyring key is fatal beside a GOODSIG.
        ("good+bad", vec![&good, &bad], ring(&[a, b]), Want::Bad),
        ("bad+good", vec![&bad, &good], ring(&[a, b]), Want::Bad),
        ("bad alone", vec![&bad], ring(&[b]), Want::Bad),
        // The same bad signature by a key not in the keyring is only a NO_PUBKEY.
        ("good+bad by unknown key", vec![&good, &bad], ring(&[a]), Want::SignedByA),
        ("unknown+good", vec![&unknown, &good], ring(&[a, b]), Want::SignedByA),
        ("unknown alone", vec![&unknown], ring(&[a, b]), Want::Unknown),
        // An untrusted digest (apt: Worthless, sqv: not good) neither counts nor spoils.
        ("sha1+good", vec![&sha1, &good], ring(&[a, b]), Want::SignedByA),
        ("sha1 alone", vec![&sha1], ring(&[a, b]), Want::Weak),
    ];
    let meets = |got: &Result<VerifiedRelease, SignatureError>, want: &Want| match (got, want) {
        (Ok(v), Want::SignedByA) => v.signer_fingerprint() == a.fingerprint(),
        (Err(SignatureError::BadSignature { .. }), Want::Bad)
        | (Err(SignatureError::UnknownKey { .. }), Want::Unknown)
        | (Err(SignatureError::WeakSignature { .. }), Want::Weak) => true,
        _ => false,
    };
    for (what, sigs, keyring, want) in cases {
        let packets = sigs.concat();
        let got = verify_inrelease(&clearsigned(body(), &[armor(&packets)]), &keyring);
        assert!(meets(&got, &want), "InRelease {what}: want {want:?}, got {got:?}");
        let got = verify_detached(body(), &armor(&packets), &keyring);
        assert!(meets(&got, &want), "Release.gpg {what}: want {want:?}, got {got:?}");
    }
}

#[test]
fn several_signature_blocks() {
    let (a, b) = keys();
    let (sa, sb) = (armor(&text_sig(a, body())), armor(&text_sig(b, body())));
    let bad_b = armor(&text_sig(b, b"Origin: Evil"));
    // apt's SignedFileWithTwoSignatures: the split accepts it.
    let two = clearsigned(body(), &[sa.clone(), sb.clone()]);
    assert_eq!(verify_inrelease(&two, &ring(&[a])).unwrap().signer_fingerprint(), a.fingerprint());
    assert_eq!(verify_inrelease(&two, &ring(&[b, a])).unwrap().signer_fingerprint(), a.fingerprint());
    // sqv reads the first block only, so a good signature in the second alone is not enough.
    let err = verify_inrelease(&two, &ring(&[b])).unwrap_err();
    assert!(matches!(&err, SignatureError::UnknownKey { .. }), "{err}");
    // gpgv reads every block, so a bad signature in the second spoils the first one's.
    let spoiled = clearsigned(body(), &[sa.clone(), bad_b.clone()]);
    let err = verify_inrelease(&spoiled, &ring(&[a, b])).unwrap_err();
    assert!(matches!(&err, SignatureError::BadSignature { .. }), "{err}");
    assert!(verify_inrelease(&spoiled, &ring(&[a])).is_ok(), "a bad one by an unknown key is a NO_PUBKEY");
    // Blocks follow each other directly.
    let gap = clearsigned(body(), &[sa.clone(), b"\n".to_vec(), sb.clone()]);
    assert!(matches!(verify_inrelease(&gap, &ring(&[a])), Err(SignatureError::UnsignedData)));
    // Release.gpg alike.
    let gpg = [sa.clone(), sb.clone()].concat();
    assert_eq!(verify_detached(body(), &gpg, &ring(&[a])).unwrap().signer_fingerprint(), a.fingerprint());
    assert!(matches!(verify_detached(body(), &gpg, &ring(&[b])), Err(SignatureError::UnknownKey { .. })));
    let gpg = [sa.clone(), bad_b].concat();
    assert!(matches!(verify_detached(body(), &gpg, &ring(&[a, b])), Err(SignatureError::BadSignature { .. })));
    let gpg = [sa, b"\n".to_vec(), sb].concat();
    assert!(matches!(verify_detached(body(), &gpg, &ring(&[a])), Err(SignatureError::UnsignedData)));
}

#[test]
fn apt_policy_is_debians_default_sequoia_config() {
    use AsymmetricAlgorithm::*;
    let now = SystemTime::now();
    let (apt, sqv, standard) = (policy(now, Rules::Apt), policy(now, Rules::Sqv), StandardPolicy::new());
    let cut = |secs| Some(at(secs));
    for algo in [DSA2048, DSA3072, DSA4096] {
        assert_eq!(apt.asymmetric_algo_cutoff(algo), cut(Y2024M2), "{algo:?}");
    }
    for algo in [BrainpoolP256, BrainpoolP384, BrainpoolP512] {
        assert_eq!(apt.asymmetric_algo_cutoff(algo), cut(Y2028M2), "{algo:?}");
    }
    assert_eq!(apt.asymmetric_algo_cutoff(RSA2048), cut(Y2030M2));
    for sec in [HashAlgoSecurity::CollisionResistance, HashAlgoSecurity::SecondPreImageResistance] {
        assert_eq!(apt.hash_cutoff(HashAlgorithm::SHA224, sec), cut(Y2026M2), "{sec:?}");
        assert_eq!(sqv.hash_cutoff(HashAlgorithm::SHA224, sec), None, "{sec:?}");
    }
    assert_eq!(apt.hash_cutoff(HashAlgorithm::SHA1, HashAlgoSecurity::SecondPreImageResistance), cut(Y2026M2));
    let sha1 = |p: &StandardPolicy| p.hash_cutoff(HashAlgorithm::SHA1, HashAlgoSecurity::CollisionResistance);
    assert_eq!(sha1(&apt), sha1(&standard));
    assert_eq!(apt.packet_tag_version_cutoff(Tag::Signature, 3), cut(Y2026M2));
    // Untouched by apt's file: sequoia's own cut-offs.
    assert_eq!(apt.asymmetric_algo_cutoff(RSA1024), standard.asymmetric_algo_cutoff(RSA1024));
    assert_eq!(
        apt.hash_cutoff(HashAlgorithm::MD5, HashAlgoSecurity::SecondPreImageResistance),
        standard.hash_cutoff(HashAlgorithm::MD5, HashAlgoSecurity::SecondPreImageResistance)
    );
    assert_eq!(sqv.asymmetric_algo_cutoff(DSA2048), standard.asymmetric_algo_cutoff(DSA2048));
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(apt.time().map(secs), Some(secs(now)), "judged as of the verification time");
}

#[test]
fn sha224_signatures_are_refused_from_february_2026() {
    let (cert, _) = openpgp::cert::CertBuilder::general_purpose(Some("Old <old@example.org>"))
        .set_creation_time(at(Y2026M2 - 200 * 86_400))
        .set_validity_period(None)
        .generate()
        .unwrap();
    let old = SigningKey::from_cert(cert).unwrap();
    let keyring = ring(&[&old]);
    let signed = Some(at(Y2026M2 - 10 * 86_400));
    let sha224 = sig_with(&old, SignatureType::Text, body(), HashAlgorithm::SHA224, signed);
    let sha512 = sig_with(&old, SignatureType::Text, body(), HashAlgorithm::SHA512, signed);
    let (before, after) = (at(Y2026M2 - 86_400), at(Y2026M2 + 86_400));
    let inrelease = clearsigned(body(), &[armor(&sha224)]);
    assert!(verify_inrelease_at(&inrelease, &keyring, before).is_ok());
    let err = verify_inrelease_at(&inrelease, &keyring, after).unwrap_err();
    assert!(matches!(&err, SignatureError::WeakSignature { reason, .. } if reason.contains("SHA224")), "{err}");
    let err = verify_detached_at(body(), &armor(&sha224), &keyring, after).unwrap_err();
    assert!(matches!(&err, SignatureError::WeakSignature { .. }), "{err}");
    assert!(verify_inrelease_at(&clearsigned(body(), &[armor(&sha512)]), &keyring, after).is_ok());
    // Beside a good signature it is passed over, not fatal.
    let both = clearsigned(body(), &[armor(&[sha224.as_slice(), &sha512].concat())]);
    assert!(verify_inrelease_at(&both, &keyring, after).is_ok());
    // A bare sqv (pveam) has no such cut-off.
    assert!(verify_detached_data(body(), &sha224, &keyring).is_ok());
}

#[test]
fn tsk_round_trip() {
    let (key, _) = keys();
    let reloaded = SigningKey::from_tsk_bytes(&key.to_tsk_bytes().unwrap()).unwrap();
    assert_eq!(reloaded.fingerprint(), key.fingerprint());
    let v = verify_inrelease(&reloaded.clearsign(RELEASE.as_bytes()).unwrap(), &ring(&[key])).unwrap();
    assert_eq!(v.signer_fingerprint(), key.fingerprint());
    assert!(SigningKey::from_tsk_bytes(&key.public_armored().unwrap()).is_err(), "public key cannot sign");
}
