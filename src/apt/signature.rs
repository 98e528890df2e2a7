//! OpenPGP verification of `InRelease` (clearsigned) and `Release` + `Release.gpg` (detached)
//! with sequoia-openpgp — the only place a [`VerifiedRelease`] is made.
//!
//! The rules are apt's: Debian bookworm / Proxmox VE 8 (apt 2.6, gpgv) and trixie / Proxmox VE 9
//! (apt 3.x, sqv). Where the two differ we take the stricter, since no repository Debian or
//! Proxmox publishes falls in between (each case below says so).
//! - Framing is apt's own parser, re-implemented line by line: `SplitClearSignedFile` for
//!   InRelease and `VerifyDetachedSignatureFile` for Release.gpg (apt-pkg/contrib/gpgv.cc, the
//!   same in 2.6 and 3.x). apt hands gpgv/sqv the text and signature blocks *it* split off, so the
//!   signatures here are verified over exactly that text, and the Release parsed is that text too.
//!   Nothing may precede the clearsign header (not even a blank line), nothing but further
//!   signature blocks may follow the signature (not even a blank line), lines starting with `-`
//!   that are not dash-escaped are refused, and Release.gpg must be ASCII armor and nothing else.
//! - Verdict, as methods/gpgv.cc `URIAcquire` (`Good.empty() or !Bad.empty()` is fatal): at least
//!   one good signature by a certificate of the configured [`Keyring`] whose key is valid when it
//!   signed and now, and no cryptographically bad one (gpgv's `BADSIG`) by a keyring key.
//!   Signatures by unknown keys (`NO_PUBKEY`; Debian signs with several keys), by expired or
//!   revoked keys (`EXPKEYSIG`/`REVKEYSIG`) and with algorithms the policy rejects (apt's
//!   "untrusted digest algorithm") do not count, but do not spoil a good one either.
//! - Algorithms: apt's sequoia policy, see [`policy`].
//!
//! Split by responsibility: `framing` takes InRelease and Release.gpg apart as apt does,
//! `verdict` runs sequoia over the pieces and decides as apt's verifiers do, and [`testkey`]
//! (always compiled: the fixture generator and the demo use it) makes a real key and signs
//! Release texts with it.

mod framing;
pub mod testkey;
mod verdict;

use self::framing::{detached_blocks, split_clearsigned};
use self::verdict::{blocks_signer, detached_signer};
use super::release::{parse_release, Release};
use super::ParseError;
use openpgp::cert::{Cert, CertParser};
use openpgp::packet::Tag;
use openpgp::parse::Parse;
use openpgp::policy::{AsymmetricAlgorithm, HashAlgoSecurity, StandardPolicy};
use openpgp::types::HashAlgorithm;
use sequoia_openpgp as openpgp;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("cannot read keyring: {0}")]
    Keyring(String),
    #[error("keyring holds no certificate")]
    EmptyKeyring,
    #[error("not signed: {0}")]
    NotSigned(&'static str),
    #[error("unsigned data after the signature block (apt refuses it too, even a blank line)")]
    UnsignedData,
    #[error("malformed signature data: {0}")]
    Malformed(String),
    #[error("signed only by keys that are not in the keyring (issuers: {issuers})")]
    UnknownKey { issuers: String },
    #[error("bad signature by key {fingerprint}: the data was modified after signing ({reason})")]
    BadSignature { fingerprint: String, reason: String },
    #[error("signature by key {fingerprint} is not acceptable: its algorithm is rejected by apt's policy, or it is expired or predates its key ({reason})")]
    WeakSignature { fingerprint: String, reason: String },
    #[error("signing key {fingerprint} has expired ({reason})")]
    KeyExpired { fingerprint: String, reason: String },
    #[error("signing key {fingerprint} is revoked")]
    KeyRevoked { fingerprint: String },
    #[error("signing key {fingerprint} is not usable under apt's policy ({reason})")]
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
            SignatureError::WeakSignature { .. } => 3,
            SignatureError::KeyRejected { .. } => 4,
            SignatureError::Malformed(_) => 5,
            _ => 6,
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

    /// Exactly the text the signature covers (what `release()` was parsed from). For an InRelease
    /// that is the text as apt splits it off: dash-escaping and trailing blanks removed, lines
    /// joined by `\n`, no newline after the last line (that one belongs to the armor).
    pub fn signed_text(&self) -> &str {
        &self.signed_text
    }
}

/// Whose algorithm policy judges a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rules {
    /// apt (Release, InRelease, Release.gpg): see [`policy`].
    Apt,
    /// A bare `sqv` as pveam runs it (`/usr/bin/sqv --keyring … $sigfn $tmp`, no policy file set;
    /// apt's file is only exported by apt's own sqv method): sequoia's `StandardPolicy`. gpgv,
    /// which users may run instead, accepts everything that passes it.
    Sqv,
}

/// Midnight UTC of a cut-off date of debian/default-sequoia.config, in seconds since the epoch.
const Y2024M2: u64 = 1_706_745_600; // 2024-02-01
const Y2026M2: u64 = 1_769_904_000; // 2026-02-01
const Y2028M2: u64 = 1_832_976_000; // 2028-02-01
const Y2030M2: u64 = 1_896_134_400; // 2030-02-01

/// The one algorithm policy of this module, judged as of `at` (sqv judges "now").
///
/// For [`Rules::Apt`]: sequoia's `StandardPolicy` with the overrides apt ≥ 2.9.19 ships as
/// `/usr/share/apt/default-sequoia.config` (debian/default-sequoia.config, unchanged from apt
/// 3.0.1 to 3.1.12), which apt's sqv method exports as `SEQUOIA_CRYPTO_POLICY` (methods/sqv.cc
/// `SetPolicy`). It decides at the current time (`VerifyGetSigners` tries "a year ahead" first
/// only to warn). bookworm's gpgv path is looser (it accepts SHA-224 and DSA keys; it refuses only
/// the digests methods/gpgv.cc lists as untrusted: MD5, SHA-1, RIPE-MD/160, which sequoia refuses
/// too), so this is the stricter of the two; Debian and Proxmox sign with RSA 4096 / SHA-512
/// (Debian) and RSA 4096 / SHA-256/512 (Proxmox), which pass both.
/// - `[asymmetric_algorithms]` dsa2048/dsa3072/dsa4096 = 2024-02-01, brainpoolp256/384/512 =
///   2028-02-01, rsa2048 = 2030-02-01;
/// - `[hash_algorithms]` sha1.second_preimage_resistance = 2026-02-01 (self-signatures of old
///   keys; sequoia alone stops in 2023), sha224 = 2026-02-01;
/// - `[packets]` signature.v3 = 2026-02-01 (sequoia alone stops in 2021).
fn policy(at: SystemTime, rules: Rules) -> StandardPolicy<'static> {
    let mut policy = StandardPolicy::at(at);
    if rules == Rules::Apt {
        let date = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        for dsa in [AsymmetricAlgorithm::DSA2048, AsymmetricAlgorithm::DSA3072, AsymmetricAlgorithm::DSA4096] {
            policy.reject_asymmetric_algo_at(dsa, date(Y2024M2));
        }
        for brainpool in
            [AsymmetricAlgorithm::BrainpoolP256, AsymmetricAlgorithm::BrainpoolP384, AsymmetricAlgorithm::BrainpoolP512]
        {
            policy.reject_asymmetric_algo_at(brainpool, date(Y2028M2));
        }
        policy.reject_asymmetric_algo_at(AsymmetricAlgorithm::RSA2048, date(Y2030M2));
        policy.reject_hash_property_at(HashAlgorithm::SHA1, HashAlgoSecurity::SecondPreImageResistance, date(Y2026M2));
        policy.reject_hash_at(HashAlgorithm::SHA224, date(Y2026M2));
        policy.reject_packet_tag_version_at(Tag::Signature, 3, date(Y2026M2));
    }
    policy
}

/// Verify a clearsigned `InRelease` now. See [`verify_inrelease_at`].
pub fn verify_inrelease(inrelease: &[u8], keyring: &Keyring) -> Result<VerifiedRelease, SignatureError> {
    verify_inrelease_at(inrelease, keyring, SystemTime::now())
}

/// Verify a clearsigned `InRelease` as of `at` (key validity and the algorithm policy are judged
/// at `at` too), then parse the signed text as a Release. The file is taken apart as apt does
/// ([`split_clearsigned`]); whatever apt refuses to split is refused: the mirror serves these
/// bytes unchanged, and clients would reject them. Several signature blocks are fine (apt's
/// test/libapt/openmaybeclearsignedfile_test.cc `SignedFileWithTwoSignatures`), judged as
/// [`blocks_signer`] says.
pub fn verify_inrelease_at(
    inrelease: &[u8],
    keyring: &Keyring,
    at: SystemTime,
) -> Result<VerifiedRelease, SignatureError> {
    let split = split_clearsigned(inrelease)?;
    let signer = blocks_signer(&split.text, &split.blocks, keyring, at)?;
    verified(split.text, signer)
}

/// Verify `Release` against the detached `Release.gpg` now. See [`verify_detached_at`].
pub fn verify_detached(release: &[u8], signature: &[u8], keyring: &Keyring) -> Result<VerifiedRelease, SignatureError> {
    verify_detached_at(release, signature, keyring, SystemTime::now())
}

/// Verify `Release` against the detached `Release.gpg` as of `at`. Release.gpg must be what apt
/// accepts ([`detached_blocks`]): ASCII-armored signature blocks and nothing else, never a binary
/// signature.
pub fn verify_detached_at(
    release: &[u8],
    signature: &[u8],
    keyring: &Keyring,
    at: SystemTime,
) -> Result<VerifiedRelease, SignatureError> {
    let signer = blocks_signer(release, &detached_blocks(signature)?, keyring, at)?;
    verified(release.to_vec(), signer)
}

/// Verify arbitrary signed data (a tree's `SHA256SUMS`, an aplinfo `.dat`) against a detached
/// signature now, as a bare sqv does (pveam, users checking an ISO): binary or armored, with
/// sequoia's own policy; the verdict rules are those of a Release. The data is not parsed.
pub fn verify_detached_data(data: &[u8], signature: &[u8], keyring: &Keyring) -> Result<(), SignatureError> {
    let signer = detached_signer(data, signature, keyring, SystemTime::now(), Rules::Sqv)?;
    tracing::debug!(signer = %signer, bytes = data.len(), "detached signature verified");
    Ok(())
}

fn verified(signed: Vec<u8>, signer: String) -> Result<VerifiedRelease, SignatureError> {
    let signed_text = String::from_utf8(signed).map_err(|_| SignatureError::NotUtf8)?;
    let release = parse_release(&signed_text)?;
    tracing::debug!(signer = %signer, files = release.files.len(), "Release signature verified");
    Ok(VerifiedRelease { release, signer, signed_text })
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;
