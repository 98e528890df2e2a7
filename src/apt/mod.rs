//! Apt repository formats: pure parsers for Release, Packages and pdiff indices, decompression
//! of index files, and OpenPGP verification of InRelease / Release + Release.gpg.
//!
//! Architecture Invariant: nothing in this module does I/O. Parsers take `&str`/`&[u8]` that
//! someone else fetched; the caller decides where bytes come from and where results go.
//!
//! Architecture Invariant: a [`signature::VerifiedRelease`] can only be constructed by
//! [`signature::verify_inrelease`] / [`signature::verify_detached`], and the Release it holds is
//! parsed from exactly the bytes the signature covers. The sync engine takes index hashes only
//! from a `VerifiedRelease`, which is what makes the whole trust chain hang off the signature.
//!
//! ```text
//! InRelease ──verify──▶ VerifiedRelease ──wanted_indices──▶ ReleaseFile{path,size,sha256}
//!                                                             │ (fetched + hash-checked elsewhere)
//!                         decompress ◀────────────────────────┘
//!                             │
//!                 parse_packages ──▶ Package{filename,size,sha256}
//!                 parse_pdiff_index ──▶ PdiffIndex{patches}
//! ```

pub mod compression;
pub mod deb822;
pub mod packages;
pub mod pdiff;
pub mod release;
pub mod signature;

pub use compression::{decompress, strip_compression, DecompressError};
pub use packages::{parse_packages, safe_relative_path, Package, PackagesIndex, UnsafePath};
pub use pdiff::{parse_pdiff_index, PdiffFile, PdiffIndex};
pub use release::{parse_release, Release, ReleaseFile};
pub use signature::{verify_detached, verify_inrelease, Keyring, SignatureError, VerifiedRelease};

/// Why an index (Release, Packages, pdiff Index) was rejected. `stanza` names where: the
/// document kind plus the stanza number (1-based) and, for Packages, the package name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text is not deb822 (a line without a colon, an indented first line, …).
    #[error("{stanza}: deb822 syntax error: {detail}")]
    Syntax { stanza: String, detail: String },
    /// A field the format requires is absent.
    #[error("{stanza}: missing required field {field}")]
    MissingField { stanza: String, field: &'static str },
    /// A field is present but its value is unusable (bad number, bad hash, unsafe path, …).
    #[error("{stanza}: field {field}: {detail}")]
    BadField { stanza: String, field: String, detail: String },
    /// The document has no stanza at all.
    #[error("{what}: empty document")]
    Empty { what: &'static str },
}
