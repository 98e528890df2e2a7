//! Real OpenPGP keys for fixtures: generate one (Cv25519 or RSA), sign Release texts with it
//! (clearsigned or detached), export it. Always compiled, not only for tests: the fixture
//! generator (`examples/make-upstream.rs`) and the demo sign their repositories with it.

use openpgp::cert::{Cert, CertBuilder};
use openpgp::crypto::KeyPair;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Armorer, Message, Signer};
use openpgp::serialize::SerializeInto;
use openpgp::Result;
use sequoia_openpgp as openpgp;
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
