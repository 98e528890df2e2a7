//! apt's framing of signed Release files, re-implemented line by line (apt-pkg/contrib/gpgv.cc,
//! the same in apt 2.6 and 3.x): `SplitClearSignedFile` takes an InRelease apart into the signed
//! text and its signature blocks, `VerifyDetachedSignatureFile` checks that a Release.gpg is
//! ASCII-armored signature blocks and nothing else. What apt refuses to split is refused here;
//! the verdict on the pieces is [`super::verdict`]'s.

use super::SignatureError;
use openpgp::armor::{Kind, ReaderMode};
use sequoia_openpgp as openpgp;
use std::io::Read;

/// The first line of a clearsigned message (RFC 9580 §7).
const CLEARSIGN_HEADER: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";
/// The armor lines around a signature block.
const SIGNATURE_BEGIN: &[u8] = b"-----BEGIN PGP SIGNATURE-----";
const SIGNATURE_END: &[u8] = b"-----END PGP SIGNATURE-----";

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
pub(super) struct ClearSigned {
    /// The signed text as apt writes it for gpgv/sqv (and later parses it).
    pub(super) text: Vec<u8>,
    /// Each signature block, `BEGIN` to `END` line, one `\n`-terminated line after another.
    pub(super) blocks: Vec<Vec<u8>>,
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
pub(super) fn split_clearsigned(input: &[u8]) -> Result<ClearSigned, SignatureError> {
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
pub(super) fn detached_blocks(signature: &[u8]) -> Result<Vec<Vec<u8>>, SignatureError> {
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

/// The signature packets of armor blocks, one after the other.
pub(super) fn dearmor(blocks: &[Vec<u8>]) -> Result<Vec<u8>, SignatureError> {
    let mut packets = Vec::new();
    for block in blocks {
        let mut reader = openpgp::armor::Reader::from_bytes(block, ReaderMode::Tolerant(Some(Kind::Signature)));
        reader.read_to_end(&mut packets).map_err(|e| SignatureError::Malformed(format!("signature armor: {e}")))?;
    }
    Ok(packets)
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
