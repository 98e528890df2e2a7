//! OpenPGP verification of `InRelease` (clearsigned) and `Release` + `Release.gpg` (detached)
//! with sequoia-openpgp — the only place a [`VerifiedRelease`] is made.
//!
//! Rules (the trust anchor of every sync):
//! - At least one signature must verify against a certificate of the configured [`Keyring`];
//!   signatures by unknown keys are ignored when another one is good (Debian signs with several).
//! - sequoia's `StandardPolicy` judges algorithms: it rejects SHA-1 data signatures, MD5, short
//!   RSA/DSA keys and the like. That is our "weak algorithms need an explicit opt-in" stance: there
//!   is no opt-in here, an operator who must accept such a repository has to change this policy.
//! - The signing key must be valid when the signature was made *and* now: an expired or revoked
//!   key fails, as it does for apt (`EXPKEYSIG`/`REVKEYSIG`).
//! - For InRelease, the Release parsed is the text the verifier returns as signed — never the raw
//!   bytes around it. Text before or after the clearsigned block is refused outright, as apt
//!   refuses it (the mirror serves InRelease byte for byte, so clients would reject it anyway).
//!
//! [`testkey`] (always compiled: the fixture generator and the demo use it) makes a real key and
//! signs Release texts with it.

use super::release::{parse_release, Release};
use super::ParseError;
use openpgp::cert::amalgamation::ValidAmalgamation;
use openpgp::cert::{Cert, CertParser};
use openpgp::parse::stream::{
    DetachedVerifierBuilder, GoodChecksum, MessageLayer, MessageStructure, VerificationError, VerificationHelper,
    VerifierBuilder,
};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::types::RevocationStatus;
use openpgp::KeyHandle;
use sequoia_openpgp as openpgp;
use std::io::Read;
use std::time::SystemTime;

/// The first line of a clearsigned message (RFC 9580 §7).
const CLEARSIGN_HEADER: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";
/// The armor line that closes the signature block of a clearsigned message. Matched at a line
/// start only: a signed line that looks like it is dash-escaped (`- -----END…`).
const SIGNATURE_FOOTER: &[u8] = b"\n-----END PGP SIGNATURE-----";

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("cannot read keyring: {0}")]
    Keyring(String),
    #[error("keyring holds no certificate")]
    EmptyKeyring,
    #[error("not signed: {0}")]
    NotSigned(&'static str),
    #[error("unsigned data around the clearsigned message (apt refuses such an InRelease too)")]
    UnsignedData,
    #[error("malformed signature data: {0}")]
    Malformed(String),
    #[error("signed only by keys that are not in the keyring (issuers: {issuers})")]
    UnknownKey { issuers: String },
    #[error("bad signature by key {fingerprint}: the data was modified after signing, or the signature uses an algorithm the standard policy rejects ({reason})")]
    BadSignature { fingerprint: String, reason: String },
    #[error("signing key {fingerprint} has expired ({reason})")]
    KeyExpired { fingerprint: String, reason: String },
    #[error("signing key {fingerprint} is revoked")]
    KeyRevoked { fingerprint: String },
    #[error("signing key {fingerprint} is not usable under the standard policy ({reason})")]
    KeyRejected { fingerprint: String, reason: String },
    #[error("signed text is not UTF-8")]
    NotUtf8,
    #[error("signed Release: {0}")]
    Release(#[from] ParseError),
}

impl SignatureError {
    /// Which failure to report when no signature is good: the most specific about a key the
    /// operator configured comes first, "unknown key" last.
    fn rank(&self) -> u8 {
        match self {
            SignatureError::KeyRevoked { .. } => 0,
            SignatureError::KeyExpired { .. } => 1,
            SignatureError::BadSignature { .. } => 2,
            SignatureError::KeyRejected { .. } => 3,
            SignatureError::Malformed(_) => 4,
            _ => 5,
        }
    }
}

/// The certificates a repository's signature must come from.
#[derive(Clone, Debug)]
pub struct Keyring {
    certs: Vec<Cert>,
}

impl Keyring {
    /// Binary or ASCII-armored; one certificate or several concatenated (as the files in
    /// `/etc/apt/trusted.gpg.d` are). Secret key material, if any, is dropped.
    pub fn from_bytes(bytes: &[u8]) -> Result<Keyring, SignatureError> {
        let parser = CertParser::from_bytes(bytes).map_err(|e| SignatureError::Keyring(format!("{e:#}")))?;
        let certs = parser
            .map(|c| c.map(Cert::strip_secret_key_material))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SignatureError::Keyring(format!("{e:#}")))?;
        if certs.is_empty() {
            return Err(SignatureError::EmptyKeyring);
        }
        Ok(Keyring { certs })
    }

    /// Primary-key fingerprints (upper-case hex), in keyring order.
    pub fn fingerprints(&self) -> Vec<String> {
        self.certs.iter().map(|c| c.fingerprint().to_hex()).collect()
    }
}

/// A Release whose signature verified. Only this module can construct one.
#[derive(Debug, Clone)]
pub struct VerifiedRelease {
    release: Release,
    signer: String,
    signed_text: String,
}

impl VerifiedRelease {
    pub fn release(&self) -> &Release {
        &self.release
    }

    /// Primary-key fingerprint (upper-case hex) of the certificate that made the good signature.
    pub fn signer_fingerprint(&self) -> &str {
        &self.signer
    }

    /// Exactly the text the signature covers (what `release()` was parsed from).
    pub fn signed_text(&self) -> &str {
        &self.signed_text
    }
}

/// Verify a clearsigned `InRelease` now. See [`verify_inrelease_at`].
pub fn verify_inrelease(inrelease: &[u8], keyring: &Keyring) -> Result<VerifiedRelease, SignatureError> {
    verify_inrelease_at(inrelease, keyring, SystemTime::now())
}

/// Verify a clearsigned `InRelease` as of `at` (key validity is judged at `at` too), then parse
/// the signed text as a Release. Input that does not start with the clearsign header is refused,
/// and so is anything but whitespace after the signature block (as apt does): the mirror serves
/// these bytes unchanged, and clients would reject them.
pub fn verify_inrelease_at(
    inrelease: &[u8],
    keyring: &Keyring,
    at: SystemTime,
) -> Result<VerifiedRelease, SignatureError> {
    if !inrelease.trim_ascii_start().starts_with(CLEARSIGN_HEADER) {
        return Err(SignatureError::NotSigned("InRelease is not a clearsigned message"));
    }
    if has_trailing_data(inrelease) {
        return Err(SignatureError::UnsignedData);
    }
    let policy = StandardPolicy::new();
    let mut outcome = None;
    let helper = Helper { keyring, policy: &policy, at, outcome: &mut outcome };
    let mut signed = Vec::new();
    let result = VerifierBuilder::from_bytes(inrelease)
        .and_then(|b| b.with_policy(&policy, Some(at), helper))
        .and_then(|mut v| v.read_to_end(&mut signed).map_err(Into::into));
    let signer = finish(result, outcome)?;
    verified(signed, signer)
}

/// Whether non-whitespace follows the first signature footer. Without a footer sequoia reports
/// the broken armor itself; a footer-like line inside the signed text is dash-escaped.
fn has_trailing_data(inrelease: &[u8]) -> bool {
    let footer = inrelease.windows(SIGNATURE_FOOTER.len()).position(|w| w == SIGNATURE_FOOTER);
    footer.is_some_and(|at| !inrelease[at + SIGNATURE_FOOTER.len()..].trim_ascii().is_empty())
}

/// Verify `Release` against the detached `Release.gpg` now. See [`verify_detached_at`].
pub fn verify_detached(release: &[u8], signature: &[u8], keyring: &Keyring) -> Result<VerifiedRelease, SignatureError> {
    verify_detached_at(release, signature, keyring, SystemTime::now())
}

/// Verify `Release` against the detached (binary or armored) `Release.gpg` as of `at`.
pub fn verify_detached_at(
    release: &[u8],
    signature: &[u8],
    keyring: &Keyring,
    at: SystemTime,
) -> Result<VerifiedRelease, SignatureError> {
    let signer = detached_signer(release, signature, keyring, at)?;
    verified(release.to_vec(), signer)
}

/// The fingerprint of the keyring certificate whose detached signature over `data` is good at `at`.
fn detached_signer(data: &[u8], signature: &[u8], keyring: &Keyring, at: SystemTime) -> Result<String, SignatureError> {
    if signature.trim_ascii().is_empty() {
        return Err(SignatureError::NotSigned("the detached signature is empty"));
    }
    let policy = StandardPolicy::new();
    let mut outcome = None;
    let helper = Helper { keyring, policy: &policy, at, outcome: &mut outcome };
    let result = DetachedVerifierBuilder::from_bytes(signature)
        .and_then(|b| b.with_policy(&policy, Some(at), helper))
        .and_then(|mut v| v.verify_bytes(data));
    finish(result, outcome)
}

/// Verify arbitrary signed data (a tree's `SHA256SUMS`, an aplinfo `.dat`) against a detached
/// (binary or armored) signature now, with the same rules as a Release: a good signature by a
/// keyring certificate whose key is valid when it signed and now. The data is not parsed.
pub fn verify_detached_data(data: &[u8], signature: &[u8], keyring: &Keyring) -> Result<(), SignatureError> {
    let signer = detached_signer(data, signature, keyring, SystemTime::now())?;
    tracing::debug!(signer = %signer, bytes = data.len(), "detached signature verified");
    Ok(())
}

/// Combine sequoia's result with the helper's verdict. The verdict wins: sequoia reports our
/// rejection as an opaque error, and a parse failure leaves no verdict at all.
fn finish<T>(
    result: openpgp::Result<T>,
    outcome: Option<Result<String, SignatureError>>,
) -> Result<String, SignatureError> {
    match (outcome, result) {
        (Some(Ok(signer)), Ok(_)) => Ok(signer),
        (Some(Err(e)), _) => Err(e),
        (Some(Ok(_)) | None, Err(e)) => Err(SignatureError::Malformed(format!("{e:#}"))),
        (None, Ok(_)) => Err(SignatureError::NotSigned("no signature was checked")),
    }
}

fn verified(signed: Vec<u8>, signer: String) -> Result<VerifiedRelease, SignatureError> {
    let signed_text = String::from_utf8(signed).map_err(|_| SignatureError::NotUtf8)?;
    let release = parse_release(&signed_text)?;
    tracing::debug!(signer = %signer, files = release.files.len(), "Release signature verified");
    Ok(VerifiedRelease { release, signer, signed_text })
}

/// Hands sequoia the keyring and records the verdict on the message structure.
struct Helper<'a> {
    keyring: &'a Keyring,
    policy: &'a StandardPolicy<'a>,
    at: SystemTime,
    outcome: &'a mut Option<Result<String, SignatureError>>,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.keyring.certs.clone())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        let verdict = judge(structure, self.policy, self.at);
        let accepted = verdict.is_ok();
        *self.outcome = Some(verdict);
        if accepted {
            Ok(())
        } else {
            Err(anyhow::anyhow!("no acceptable signature"))
        }
    }
}

/// Accept the first good signature whose key is still valid at `at`; otherwise the most
/// telling failure.
fn judge(structure: MessageStructure, policy: &StandardPolicy, at: SystemTime) -> Result<String, SignatureError> {
    let mut failures = Vec::new();
    for layer in structure.into_iter() {
        match layer {
            MessageLayer::SignatureGroup { results } => {
                for result in results {
                    match result.map_err(classify).and_then(|good| still_valid(&good, policy, at)) {
                        Ok(signer) => return Ok(signer),
                        Err(e) => failures.push(e),
                    }
                }
            }
            MessageLayer::Compression { .. } => {}
            MessageLayer::Encryption { .. } => {
                return Err(SignatureError::Malformed("the message is encrypted".into()))
            }
        }
    }
    let best = failures.into_iter().min_by_key(SignatureError::rank);
    Err(best.unwrap_or(SignatureError::NotSigned("the message carries no signature")))
}

fn classify(err: VerificationError<'_>) -> SignatureError {
    match err {
        VerificationError::MissingKey { sig } => {
            let mut issuers: Vec<String> = sig.get_issuers().iter().map(|h| h.to_hex()).collect();
            // A key ID is the tail of the fingerprint usually listed beside it.
            let all = issuers.clone();
            issuers.retain(|id| !all.iter().any(|other| other.len() > id.len() && other.ends_with(id.as_str())));
            SignatureError::UnknownKey { issuers: issuers.join(", ") }
        }
        VerificationError::UnboundKey { cert, error, .. } => {
            SignatureError::KeyRejected { fingerprint: cert.fingerprint().to_hex(), reason: format!("{error:#}") }
        }
        VerificationError::BadKey { ka, error, .. } => {
            let fingerprint = ka.cert().fingerprint().to_hex();
            let revoked = matches!(ka.revocation_status(), RevocationStatus::Revoked(_))
                || matches!(ka.valid_cert().revocation_status(), RevocationStatus::Revoked(_));
            if revoked {
                SignatureError::KeyRevoked { fingerprint }
            } else if ka.alive().is_err() || ka.valid_cert().alive().is_err() {
                SignatureError::KeyExpired { fingerprint, reason: format!("{error:#}") }
            } else {
                SignatureError::KeyRejected { fingerprint, reason: format!("{error:#}") }
            }
        }
        VerificationError::BadSignature { ka, error, .. } => {
            SignatureError::BadSignature { fingerprint: ka.cert().fingerprint().to_hex(), reason: format!("{error:#}") }
        }
        VerificationError::MalformedSignature { error, .. } => SignatureError::Malformed(format!("{error:#}")),
        // UnknownSignature, and variants newer sequoia versions may add.
        _ => SignatureError::Malformed("unsupported signature packet".into()),
    }
}

/// sequoia judged the key as of the signature's creation; apt also wants it valid now.
fn still_valid(good: &GoodChecksum<'_>, policy: &StandardPolicy, at: SystemTime) -> Result<String, SignatureError> {
    let cert = good.ka.cert();
    let fingerprint = cert.fingerprint().to_hex();
    let rejected =
        |e: anyhow::Error| SignatureError::KeyRejected { fingerprint: fingerprint.clone(), reason: format!("{e:#}") };
    let expired =
        |e: anyhow::Error| SignatureError::KeyExpired { fingerprint: fingerprint.clone(), reason: format!("{e:#}") };
    let valid = cert.with_policy(policy, at).map_err(rejected)?;
    let key = valid
        .keys()
        .key_handle(good.ka.key().key_handle())
        .next()
        .ok_or_else(|| rejected(anyhow::anyhow!("the signing key is no longer bound to the certificate")))?;
    let revoked = matches!(valid.revocation_status(), RevocationStatus::Revoked(_))
        || matches!(key.revocation_status(), RevocationStatus::Revoked(_));
    if revoked {
        return Err(SignatureError::KeyRevoked { fingerprint });
    }
    valid.alive().map_err(expired)?;
    key.alive().map_err(expired)?;
    Ok(fingerprint)
}

/// A real OpenPGP signing key for fixture repositories, the demo and tests. Not for production
/// keys: the secret key is stored unencrypted by [`SigningKey::to_tsk_bytes`].
pub mod testkey {
    use super::openpgp;
    use openpgp::cert::{Cert, CertBuilder};
    use openpgp::crypto::KeyPair;
    use openpgp::parse::Parse;
    use openpgp::policy::StandardPolicy;
    use openpgp::serialize::stream::{Armorer, Message, Signer};
    use openpgp::serialize::SerializeInto;
    use openpgp::Result;
    use std::io::Write;

    /// A certificate with its secret keys.
    #[derive(Clone, Debug)]
    pub struct SigningKey {
        cert: Cert,
    }

    /// A general-purpose Cv25519 key for `userid` that never expires (so a fixture key stored
    /// in a repository keeps working).
    pub fn generate(userid: &str) -> Result<SigningKey> {
        let (cert, _revocation) = CertBuilder::general_purpose(Some(userid)).set_validity_period(None).generate()?;
        Ok(SigningKey { cert })
    }

    impl SigningKey {
        /// Wrap a certificate that has secret key material.
        pub fn from_cert(cert: Cert) -> Result<SigningKey> {
            let key = SigningKey { cert };
            key.keypair()?;
            Ok(key)
        }

        pub fn cert(&self) -> &Cert {
            &self.cert
        }

        /// Primary-key fingerprint, upper-case hex (what `signer_fingerprint` reports).
        pub fn fingerprint(&self) -> String {
            self.cert.fingerprint().to_hex()
        }

        /// The signing subkey as a key pair, for callers that build their own `Signer`.
        pub fn keypair(&self) -> Result<KeyPair> {
            let policy = StandardPolicy::new();
            let key = self
                .cert
                .keys()
                .secret()
                .with_policy(&policy, None)
                .supported()
                .alive()
                .revoked(false)
                .for_signing()
                .next()
                .ok_or_else(|| anyhow::anyhow!("certificate has no usable secret signing key"))?;
            key.key().clone().into_keypair()
        }

        /// `text` as a clearsigned message (an InRelease).
        pub fn clearsign(&self, text: &[u8]) -> Result<Vec<u8>> {
            let mut sink = Vec::new();
            let mut signer = Signer::new(Message::new(&mut sink), self.keypair()?)?.cleartext().build()?;
            signer.write_all(text)?;
            signer.finalize()?;
            Ok(sink)
        }

        /// An ASCII-armored detached signature of `text` (a Release.gpg).
        pub fn detach_sign(&self, text: &[u8]) -> Result<Vec<u8>> {
            let mut sink = Vec::new();
            let message = Armorer::new(Message::new(&mut sink)).kind(openpgp::armor::Kind::Signature).build()?;
            let mut signer = Signer::new(message, self.keypair()?)?.detached().build()?;
            signer.write_all(text)?;
            signer.finalize()?;
            Ok(sink)
        }

        /// The public certificate, binary (like `/etc/apt/trusted.gpg.d/*.gpg`).
        pub fn public_binary(&self) -> Result<Vec<u8>> {
            self.cert.to_vec()
        }

        /// The public certificate, ASCII-armored (like `*.asc`).
        pub fn public_armored(&self) -> Result<Vec<u8>> {
            self.cert.armored().to_vec()
        }

        /// Secret and public key material, armored, for storing the key in a file.
        pub fn to_tsk_bytes(&self) -> Result<Vec<u8>> {
            self.cert.as_tsk().armored().to_vec()
        }

        /// Reload a key saved with [`SigningKey::to_tsk_bytes`].
        pub fn from_tsk_bytes(bytes: &[u8]) -> Result<SigningKey> {
            SigningKey::from_cert(Cert::from_bytes(bytes)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkey::{generate, SigningKey};
    use super::*;
    use openpgp::serialize::stream::{Message, Signer};
    use openpgp::serialize::{Serialize, SerializeInto};
    use openpgp::types::HashAlgorithm;
    use std::io::Write;
    use std::sync::OnceLock;
    use std::time::Duration;

    const RELEASE: &str = "Origin: Test\nCodename: bookworm\nDate: Sat, 09 Nov 2024 10:11:12 UTC\n\
        Components: main\nArchitectures: amd64\nSHA256:\n \
        0000000000000000000000000000000000000000000000000000000000000001 10 main/binary-amd64/Packages\n";

    /// Key generation costs ~ms each with Cv25519, but share two keys across tests anyway.
    fn keys() -> &'static (SigningKey, SigningKey) {
        static KEYS: OnceLock<(SigningKey, SigningKey)> = OnceLock::new();
        KEYS.get_or_init(|| {
            (generate("Test Repo <repo@example.org>").unwrap(), generate("Other <other@example.org>").unwrap())
        })
    }

    fn ring(keys: &[&SigningKey]) -> Keyring {
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
        let tampered = String::from_utf8(key.clearsign(RELEASE.as_bytes()).unwrap())
            .unwrap()
            .replace("Origin: Test", "Origin: Evil");
        let err = verify_inrelease(tampered.as_bytes(), &keyring).unwrap_err();
        assert!(matches!(&err, SignatureError::BadSignature { .. }), "{err}");
        let sig = key.detach_sign(RELEASE.as_bytes()).unwrap();
        let modified = RELEASE.replace(" 10 ", " 11 ");
        let err = verify_detached(modified.as_bytes(), &sig, &keyring).unwrap_err();
        assert!(matches!(&err, SignatureError::BadSignature { .. }), "{err}");
    }

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
        // Trailing whitespace is harmless, and the release comes from the signed text only.
        let padded = [inrelease.as_slice(), b"\n\n  \n"].concat();
        assert_eq!(verify_inrelease(&padded, &keyring).unwrap().signed_text(), RELEASE);
        // Past the armor check, the parsed text is still the verifier's output, not the input.
        let v = verify_inrelease(&inrelease, &keyring).unwrap();
        assert_eq!(v.release(), &parse_release(RELEASE).unwrap());
        let mut prefixed = b"Origin: Evil\n\n".to_vec();
        prefixed.extend_from_slice(&key.clearsign(RELEASE.as_bytes()).unwrap());
        assert!(matches!(verify_inrelease(&prefixed, &keyring), Err(SignatureError::NotSigned(_))));
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
        let err = verify_inrelease(&sink, &ring(&[key])).unwrap_err();
        assert!(matches!(&err, SignatureError::BadSignature { reason, .. } if reason.contains("SHA1")), "{err}");
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

    #[test]
    fn tsk_round_trip() {
        let (key, _) = keys();
        let reloaded = SigningKey::from_tsk_bytes(&key.to_tsk_bytes().unwrap()).unwrap();
        assert_eq!(reloaded.fingerprint(), key.fingerprint());
        let v = verify_inrelease(&reloaded.clearsign(RELEASE.as_bytes()).unwrap(), &ring(&[key])).unwrap();
        assert_eq!(v.signer_fingerprint(), key.fingerprint());
        assert!(SigningKey::from_tsk_bytes(&key.public_armored().unwrap()).is_err(), "public key cannot sign");
    }
}
