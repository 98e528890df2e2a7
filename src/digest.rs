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

/// Read size when hashing a file: large sequential reads, bounded memory.
pub const HASH_BUFFER: usize = 1 << 20;

/// A read buffer for hashing a file of about `size` bytes: no larger than the file (plus the
/// read that finds its end), at most [`HASH_BUFFER`]. A zeroed 1 MiB buffer per object would
/// cost a 1 MiB memset for every 4 KiB package a `sync --verify` re-hashes (measured: 1.5× the
/// verify time of 10 000 small packages).
pub fn hash_buffer(size: u64) -> Vec<u8> {
    let len = usize::try_from(size).unwrap_or(HASH_BUFFER).saturating_add(1).clamp(4096, HASH_BUFFER);
    vec![0u8; len]
}

/// Hash a whole reader with `D`, reading through `buf`; returns the digest and the byte count.
/// The one hashing loop of the crate (pool verification, repair checks, SHA-512/MD5 checks).
pub fn hash_with<D: sha2::Digest>(
    mut reader: impl io::Read,
    buf: &mut [u8],
) -> io::Result<(sha2::digest::Output<D>, u64)> {
    let mut hasher = D::new();
    let mut n = 0u64;
    loop {
        match reader.read(buf) {
            Ok(0) => return Ok((hasher.finalize(), n)),
            Ok(k) => {
                hasher.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Hash a whole reader with SHA-256 (pool verification); returns digest and byte count.
pub fn hash_reader(reader: impl io::Read) -> io::Result<(Sha256, u64)> {
    let mut buf = vec![0u8; HASH_BUFFER];
    let (d, n) = hash_with::<sha2::Sha256>(reader, &mut buf)?;
    Ok((Sha256(d.into()), n))
}

/// A fixed-size digest written as hex: parsed from a checksum list, shown as lower-case hex.
macro_rules! hex_digest {
    ($(#[$doc:meta])* $name:ident, $len:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $len]);

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s.trim(), &mut out).map_err(|_| format!(concat!("not ", $what, " hex digest: {:?}"), s))?;
                Ok($name(out))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }
    };
}

hex_digest!(
    /// A SHA-512 digest (aplinfo's `sha512sum`).
    Sha512, 64, "a sha512"
);
hex_digest!(
    /// An MD5 digest (aplinfo's `md5sum`, which pveam checks when a record has no `sha512sum`).
    Md5, 16, "an md5"
);

/// The digest a checksum list demands of a file, in the list's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Sha256(Sha256),
    Sha512(Sha512),
    /// aplinfo's `md5sum`, for a template without `sha512sum` (pveam checks md5 then).
    Md5(Md5),
}

impl Expected {
    /// The digest of `reader` in this one's algorithm.
    pub fn compute_like(&self, reader: impl io::Read) -> io::Result<Expected> {
        let mut buf = vec![0u8; HASH_BUFFER];
        Ok(match self {
            Expected::Sha256(_) => Expected::Sha256(Sha256(hash_with::<sha2::Sha256>(reader, &mut buf)?.0.into())),
            Expected::Sha512(_) => Expected::Sha512(Sha512(hash_with::<sha2::Sha512>(reader, &mut buf)?.0.into())),
            Expected::Md5(_) => Expected::Md5(Md5(hash_with::<md5::Md5>(reader, &mut buf)?.0.into())),
        })
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Sha256(d) => write!(f, "sha256 {d}"),
            Expected::Sha512(d) => write!(f, "sha512 {d}"),
            Expected::Md5(d) => write!(f, "md5 {d}"),
        }
    }
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
