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
//! [`testkey`] (always compiled: the fixture generator and the demo use it) makes a real key and
//! signs Release texts with it.

use super::release::{parse_release, Release};
use super::ParseError;
use openpgp::armor::{Kind, ReaderMode};
use openpgp::cert::amalgamation::ValidAmalgamation;
use openpgp::cert::{Cert, CertParser};
use openpgp::packet::Tag;
use openpgp::parse::stream::{
    DetachedVerifierBuilder, GoodChecksum, MessageLayer, MessageStructure, VerificationError, VerificationHelper,
};
use openpgp::parse::Parse;
use openpgp::policy::{AsymmetricAlgorithm, HashAlgoSecurity, StandardPolicy};
use openpgp::types::{HashAlgorithm, RevocationStatus};
use openpgp::KeyHandle;
use sequoia_openpgp as openpgp;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first line of a clearsigned message (RFC 9580 §7).
const CLEARSIGN_HEADER: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";
/// The armor lines around a signature block.
const SIGNATURE_BEGIN: &[u8] = b"-----BEGIN PGP SIGNATURE-----";
const SIGNATURE_END: &[u8] = b"-----END PGP SIGNATURE-----";

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

/// The lines of `bytes` as apt's `LineBuffer::readFrom` (apt-pkg/contrib/gpgv.cc) reads them: cut
/// after each `\n` (the last may lack one), then trailing `\r`/`\n`, and after those trailing
/// spaces and tabs, removed (RFC 4880 §7.1).
fn apt_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(strip_end(strip_end(line, b"\r\n"), b" \t"))
    })
}

fn strip_end<'a>(mut line: &'a [u8], chars: &[u8]) -> &'a [u8] {
    while let [head @ .., last] = line {
        if !chars.contains(last) {
            break;
        }
        line = head;
    }
    line
}

/// An InRelease taken apart.
struct ClearSigned {
    /// The signed text as apt writes it for gpgv/sqv (and later parses it).
    text: Vec<u8>,
    /// Each signature block, `BEGIN` to `END` line, one `\n`-terminated line after another.
    blocks: Vec<Vec<u8>>,
}

/// apt's `SplitClearSignedFile`, step by step:
/// - the first line must be the clearsign header (trailing blanks aside): a leading blank line
///   or any other byte before it is refused;
/// - armor headers up to the first empty line, none starting with `-`; their content is ignored
///   (apt does not look at `Hash:` either);
/// - the text up to the line `-----BEGIN PGP SIGNATURE-----`: a line starting with `-` must be
///   dash-escaped (`- `), lines are joined by `\n` with no newline after the last;
/// - then signature blocks only: inside one no line may start with `-` but its `END` line, after
///   one only another `BEGIN` line may follow, not even an empty line (a newline ending the last
///   line is no line); a block left open is refused.
fn split_clearsigned(input: &[u8]) -> Result<ClearSigned, SignatureError> {
    let incomplete = || SignatureError::Malformed("the clearsigned message ends before its signature block".to_owned());
    let dash = |part: &str| SignatureError::Malformed(format!("unexpected line starting with a dash ({part})"));
    let mut lines = apt_lines(input);
    if lines.next() != Some(CLEARSIGN_HEADER) {
        if apt_lines(input).any(|line| line == CLEARSIGN_HEADER) {
            return Err(SignatureError::NotSigned(
                "InRelease does not start with the clearsign header (apt allows nothing before it, not even a blank line)",
            ));
        }
        return Err(SignatureError::NotSigned("InRelease is not a clearsigned message"));
    }
    loop {
        let line = lines.next().ok_or_else(incomplete)?;
        if line.is_empty() {
            break;
        }
        if line.starts_with(b"-") {
            return Err(dash("armor"));
        }
    }
    let mut text = Vec::new();
    let mut first = true;
    loop {
        let mut line = lines.next().ok_or_else(incomplete)?;
        if line.starts_with(b"-") {
            if line == SIGNATURE_BEGIN {
                break;
            }
            line = line.strip_prefix(b"- ").ok_or_else(|| dash("msg"))?;
        }
        if !first {
            text.push(b'\n');
        }
        text.extend_from_slice(line);
        first = false;
    }
    let mut blocks = vec![[SIGNATURE_BEGIN, b"\n"].concat()];
    let mut open = true;
    for line in lines {
        if open {
            if line == SIGNATURE_END {
                open = false;
            } else if line.starts_with(b"-") {
                return Err(dash("sig"));
            }
        } else if line == SIGNATURE_BEGIN {
            open = true;
            blocks.push(Vec::new());
        } else {
            return Err(SignatureError::UnsignedData);
        }
        let block = blocks.last_mut().expect("a block is open or just closed");
        block.extend_from_slice(line);
        block.push(b'\n');
    }
    if open {
        return Err(SignatureError::Malformed("the signature block is not closed".to_owned()));
    }
    Ok(ClearSigned { text, blocks })
}

/// apt's `VerifyDetachedSignatureFile` (apt-pkg/contrib/gpgv.cc; in 2.6 the same loop inside
/// `ExecGPGV`), which both the gpgv and the sqv method run on Release.gpg: one or more
/// ASCII-armored signature blocks, back to back, and nothing else — no line before, between or
/// after them (not even an empty one), no line starting with `-` inside one but its `END`, none
/// left open. A binary signature has no armor and is refused ("unsupported binary format").
fn detached_blocks(signature: &[u8]) -> Result<Vec<Vec<u8>>, SignatureError> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut open = false;
    let mut stray = false;
    for line in apt_lines(signature) {
        if open {
            if line == SIGNATURE_END {
                open = false;
            } else if line.starts_with(b"-") {
                return Err(SignatureError::Malformed(
                    "unexpected line starting with a dash in the detached signature".to_owned(),
                ));
            }
        } else if line == SIGNATURE_BEGIN {
            if stray {
                return Err(SignatureError::UnsignedData);
            }
            open = true;
            blocks.push(Vec::new());
        } else {
            if !blocks.is_empty() {
                return Err(SignatureError::UnsignedData);
            }
            stray = true;
            continue;
        }
        let block = blocks.last_mut().expect("a block is open or just closed");
        block.extend_from_slice(line);
        block.push(b'\n');
    }
    if blocks.is_empty() {
        if signature.trim_ascii().is_empty() {
            return Err(SignatureError::NotSigned("the detached signature is empty"));
        }
        if signature[0] & 0x80 != 0 {
            return Err(SignatureError::Malformed(
                "the detached signature is binary; apt accepts only an ASCII-armored one".to_owned(),
            ));
        }
        return Err(SignatureError::Malformed("the detached signature holds no ASCII-armored signature".to_owned()));
    }
    if open {
        return Err(SignatureError::Malformed("the signature block is not closed".to_owned()));
    }
    Ok(blocks)
}

/// The signer of `data` by the armored signature `blocks` (at least one), for apt. The two
/// verifiers read a file of several blocks differently: gpgv reads every block, sqv only the
/// first (sequoia's armor reader stops at its `END` line, so trixie's apt never sees the
/// signatures of a second block). The stricter of the two: the good signature must be in the
/// first block, and no block may hold a bad one. (Debian and Proxmox publish one block.)
fn blocks_signer(data: &[u8], blocks: &[Vec<u8>], keyring: &Keyring, at: SystemTime) -> Result<String, SignatureError> {
    let signer = detached_signer(data, &dearmor(&blocks[..1])?, keyring, at, Rules::Apt)?;
    if blocks.len() > 1 {
        detached_signer(data, &dearmor(blocks)?, keyring, at, Rules::Apt)?;
    }
    Ok(signer)
}

/// The signature packets of armor blocks, one after the other.
fn dearmor(blocks: &[Vec<u8>]) -> Result<Vec<u8>, SignatureError> {
    let mut packets = Vec::new();
    for block in blocks {
        let mut reader = openpgp::armor::Reader::from_bytes(block, ReaderMode::Tolerant(Some(Kind::Signature)));
        reader.read_to_end(&mut packets).map_err(|e| SignatureError::Malformed(format!("signature armor: {e}")))?;
    }
    Ok(packets)
}

/// The fingerprint of the keyring certificate whose detached signature over `data` is good at
/// `at` (binary or armored signature packets; the caller checks the framing apt wants).
fn detached_signer(
    data: &[u8],
    signature: &[u8],
    keyring: &Keyring,
    at: SystemTime,
    rules: Rules,
) -> Result<String, SignatureError> {
    if signature.trim_ascii().is_empty() {
        return Err(SignatureError::NotSigned("the detached signature is empty"));
    }
    let policy = policy(at, rules);
    let mut outcome = None;
    let helper = Helper { keyring, policy: &policy, at, outcome: &mut outcome };
    let result = DetachedVerifierBuilder::from_bytes(signature)
        .and_then(|b| b.with_policy(&policy, Some(at), helper))
        .and_then(|mut v| v.verify_bytes(data));
    finish(result, outcome)
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

/// methods/gpgv.cc `URIAcquire`: fatal when there is no good signature or there is a bad one
/// (`if (Signers.Good.empty() or !Signers.Bad.empty())`). apt ≥ 2.9.19's sqv method accepts as
/// soon as sqv names one good signer (methods/sqv.cc `URIAcquire`; sqv counts good signatures
/// and passes over bad ones), so a good signature beside a bad one divides them: we refuse, as
/// gpgv does — no real repository carries a bad signature. Everything else that is not good
/// (unknown key, expired/revoked key, rejected algorithm, malformed) is passed over by both.
/// The signer reported is the first good one.
fn judge(structure: MessageStructure, policy: &StandardPolicy, at: SystemTime) -> Result<String, SignatureError> {
    let mut good = None;
    let mut bad = None;
    let mut failures = Vec::new();
    for layer in structure.into_iter() {
        match layer {
            MessageLayer::SignatureGroup { results } => {
                for result in results {
                    match result {
                        Ok(checksum) => match still_valid(&checksum, policy, at) {
                            Ok(signer) => {
                                good.get_or_insert(signer);
                            }
                            Err(e) => failures.push(e),
                        },
                        Err(err) => match classify(err) {
                            e @ SignatureError::BadSignature { .. } => {
                                bad.get_or_insert(e);
                            }
                            e => failures.push(e),
                        },
                    }
                }
            }
            MessageLayer::Compression { .. } => {}
            MessageLayer::Encryption { .. } => {
                return Err(SignatureError::Malformed("the message is encrypted".into()))
            }
        }
    }
    if let Some(bad) = bad {
        return Err(bad);
    }
    let best = || failures.into_iter().min_by_key(SignatureError::rank);
    good.ok_or_else(|| best().unwrap_or(SignatureError::NotSigned("the message carries no signature")))
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
        VerificationError::BadSignature { sig, ka, error, .. } => {
            let fingerprint = ka.cert().fingerprint().to_hex();
            let reason = format!("{error:#}");
            // gpgv's BADSIG is the math failing (sequoia: `BadSignature`, or `ManipulatedMessage`
            // when the digest does not match). sequoia also reports here a policy rejection
            // (`PolicyViolation`: apt's "untrusted digest algorithm"), an expired or future
            // signature (gpgv: `EXPSIG`), and a signature older than its key, which gpgv accepts
            // under apt's `--ignore-time-conflict` and sqv does not: none of those is a BADSIG.
            // Judged by exclusion: the crypto backend reports a mismatch in its own words (the
            // pure-Rust RSA verifier's "verification error", as on deb.debian.org's stale
            // Release.gpg), so anything that is not a policy or time verdict is the math failing.
            let verdict = error.chain().any(|e| {
                matches!(
                    e.downcast_ref::<openpgp::Error>(),
                    Some(
                        openpgp::Error::PolicyViolation(..)
                            | openpgp::Error::Expired(_)
                            | openpgp::Error::NotYetLive(_)
                    )
                )
            });
            let math = !verdict;
            let predates_key = sig.signature_creation_time().is_some_and(|t| t < ka.key().creation_time());
            if math && !predates_key {
                SignatureError::BadSignature { fingerprint, reason }
            } else {
                SignatureError::WeakSignature { fingerprint, reason }
            }
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

    /// An RSA-2048 signing key (Debian's and Proxmox's archive keys are RSA): the crypto
    /// backend reports an RSA mismatch in its own words, unlike Ed25519's.
    pub fn generate_rsa(userid: &str) -> Result<SigningKey> {
        let (cert, _revocation) = CertBuilder::general_purpose(Some(userid))
            .set_cipher_suite(openpgp::cert::CipherSuite::RSA2k)
            .set_validity_period(None)
            .generate()?;
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
    use openpgp::packet::signature::SignatureBuilder;
    use openpgp::serialize::stream::{Message, Signer};
    use openpgp::serialize::{Serialize, SerializeInto};
    use openpgp::types::{HashAlgorithm, SignatureType};
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

    /// RELEASE as apt splits it off a clearsigned message: no newline after the last line.
    fn body() -> &'static [u8] {
        RELEASE.trim_end_matches('\n').as_bytes()
    }

    /// A binary detached signature packet over `text`.
    fn sig_with(
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
    fn text_sig(key: &SigningKey, text: &[u8]) -> Vec<u8> {
        sig_with(key, SignatureType::Text, text, HashAlgorithm::SHA512, None)
    }

    /// One armored signature block holding `packets`.
    fn armor(packets: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = openpgp::armor::Writer::new(&mut out, openpgp::armor::Kind::Signature).unwrap();
        w.write_all(packets).unwrap();
        w.finalize().unwrap();
        out
    }

    /// A clearsigned message of `text` (no line of it starting with `-`) followed by `blocks`.
    fn clearsigned(text: &[u8], blocks: &[Vec<u8>]) -> Vec<u8> {
        [b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n".as_slice(), text, b"\n", &blocks.concat()].concat()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn nothing_may_precede_the_clearsign_header() {
        let (key, _) = keys();
        let keyring = ring(&[key]);
        let inrelease = key.clearsign(RELEASE.as_bytes()).unwrap();
        // apt's SplitClearSignedFile: "does not start with a signed message block" (GarbageTop).
        for prefix in [&b"\n"[..], b"\r\n", b" \t\n", b"Origin: Evil\n"] {
            let err = verify_inrelease(&[prefix, &inrelease].concat(), &keyring).unwrap_err();
            assert!(
                matches!(&err, SignatureError::NotSigned(why) if why.contains("does not start")),
                "{prefix:?}: {err}"
            );
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
}
