//! Content digests: the `Sha256` newtype that names pool objects, and a writer
//! that hashes every byte it passes on (so a download is hashed while it streams).

use sha2::Digest as _;
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

/// A SHA-256 digest. Pool objects, catalog rows and verified index entries are keyed by it.
/// Plain bytes (the zerocopy traits), so a view image can hold it as it is.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable,
)]
#[repr(transparent)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// Digest of a byte slice held in memory (indices, Release files).
    pub fn of(bytes: &[u8]) -> Self {
        Sha256(sha2::Sha256::digest(bytes).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a sha256 hex digest: {0:?}")]
pub struct BadDigest(pub String);

impl FromStr for Sha256 {
    type Err = BadDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| BadDigest(s.to_owned()))?;
        Ok(Sha256(out))
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

/// Passes writes through to `inner` while hashing them and counting bytes.
pub struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: sha2::Sha256::new(), written: 0 }
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The digest of everything written so far, and the inner writer.
    pub fn finish(self) -> (Sha256, W) {
        (Sha256(self.hasher.finalize().into()), self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hash a whole reader (pool verification); returns digest and byte count.
pub fn hash_reader(mut reader: impl io::Read) -> io::Result<(Sha256, u64)> {
    let mut w = HashingWriter::new(io::sink());
    let n = io::copy(&mut reader, &mut w)?;
    let (d, _) = w.finish();
    Ok((d, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ];
        for (input, hex) in cases {
            assert_eq!(Sha256::of(input).to_hex(), *hex);
            assert_eq!(hex.parse::<Sha256>().unwrap(), Sha256::of(input));
            let (d, n) = hash_reader(*input).unwrap();
            assert_eq!((d.to_hex().as_str(), n), (*hex, input.len() as u64));
        }
    }

    #[test]
    fn rejects_bad_hex() {
        for bad in ["", "zz", "abc", &"0".repeat(63), &"0".repeat(65)] {
            assert!(bad.parse::<Sha256>().is_err(), "{bad:?}");
        }
    }
}
