//! The verdict on signature packets, as apt's verifiers reach it: sequoia checks each signature
//! against the configured [`Keyring`] under the algorithm [`policy`] of the caller's [`Rules`],
//! and methods/gpgv.cc `URIAcquire` decides — at least one good signature by a keyring key valid
//! now, and no cryptographically bad one; unknown keys, expired or revoked keys and rejected
//! algorithms neither count nor spoil a good one.

use super::framing::dearmor;
use super::{policy, Keyring, Rules, SignatureError};
use openpgp::cert::amalgamation::ValidAmalgamation;
use openpgp::cert::Cert;
use openpgp::parse::stream::{
    DetachedVerifierBuilder, GoodChecksum, MessageLayer, MessageStructure, VerificationError, VerificationHelper,
};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::types::RevocationStatus;
use openpgp::KeyHandle;
use sequoia_openpgp as openpgp;
use std::time::SystemTime;

/// The signer of `data` by the armored signature `blocks` (at least one), for apt. The two
/// verifiers read a file of several blocks differently: gpgv reads every block, sqv only the
/// first (sequoia's armor reader stops at its `END` line, so trixie's apt never sees the
/// signatures of a second block). The stricter of the two: the good signature must be in the
/// first block, and no block may hold a bad one. (Debian and Proxmox publish one block.)
pub(super) fn blocks_signer(
    data: &[u8],
    blocks: &[Vec<u8>],
    keyring: &Keyring,
    at: SystemTime,
) -> Result<String, SignatureError> {
    let signer = detached_signer(data, &dearmor(&blocks[..1])?, keyring, at, Rules::Apt)?;
    if blocks.len() > 1 {
        detached_signer(data, &dearmor(blocks)?, keyring, at, Rules::Apt)?;
    }
    Ok(signer)
}

/// The fingerprint of the keyring certificate whose detached signature over `data` is good at
/// `at` (binary or armored signature packets; the caller checks the framing apt wants).
pub(super) fn detached_signer(
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
