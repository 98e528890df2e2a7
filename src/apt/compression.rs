//! Decompression of repository index files, chosen by file extension, with a hard cap on the
//! output size: an index is hash-checked before it gets here, but a tiny verified `.xz` can still
//! expand to gigabytes, so every decoder is read through a limit.

use bzip2::read::MultiBzDecoder;
use flate2::read::MultiGzDecoder;
use liblzma::read::XzDecoder;
use liblzma::stream::Stream;
use std::io::Read;

/// Memory the lzma decoders may use for their dictionary. 256 MiB is far above what `xz -9`
/// needs (≈65 MiB to decode), so every real index decodes, and a crafted header cannot make
/// liblzma allocate without bound.
const LZMA_MEMLIMIT: u64 = 256 * 1024 * 1024;

/// Extensions apt repositories may use that this module cannot decode.
const UNSUPPORTED_EXTENSIONS: [&str; 3] = ["zst", "lz4", "Z"];

#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("{name}: decompressed size exceeds the limit of {limit} bytes")]
    TooLarge { name: String, limit: u64 },
    #[error("{name}: corrupt {format} data: {source}")]
    Corrupt {
        name: String,
        format: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{name}: unsupported compression .{extension}")]
    Unsupported { name: String, extension: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Gzip,
    Xz,
    Bzip2,
    Lzma,
}

impl Format {
    fn of(name: &str) -> Option<Format> {
        match extension(name)? {
            "gz" => Some(Format::Gzip),
            "xz" => Some(Format::Xz),
            "bz2" => Some(Format::Bzip2),
            "lzma" => Some(Format::Lzma),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Bzip2 => "bzip2",
            Format::Lzma => "lzma",
        }
    }
}

/// The extension of the last path component, if it has one.
fn extension(name: &str) -> Option<&str> {
    let file = name.rsplit('/').next().unwrap_or(name);
    file.rsplit_once('.').map(|(_, ext)| ext)
}

/// Decompress `bytes` according to `name`'s extension (`.gz`, `.xz`, `.bz2`, `.lzma`; any other
/// or none: copied as is). Output longer than `max_out` bytes is an error, not a truncation.
pub fn decompress(name: &str, bytes: &[u8], max_out: u64) -> Result<Vec<u8>, DecompressError> {
    let too_large = || DecompressError::TooLarge { name: name.to_owned(), limit: max_out };
    let Some(format) = Format::of(name) else {
        if let Some(ext) = extension(name).filter(|e| UNSUPPORTED_EXTENSIONS.contains(e)) {
            return Err(DecompressError::Unsupported { name: name.to_owned(), extension: ext.into() });
        }
        return if bytes.len() as u64 > max_out { Err(too_large()) } else { Ok(bytes.to_vec()) };
    };
    let corrupt = |source| DecompressError::Corrupt { name: name.to_owned(), format: format.label(), source };
    let reader: Box<dyn Read + '_> = match format {
        Format::Gzip => Box::new(MultiGzDecoder::new(bytes)),
        Format::Xz => {
            let stream = Stream::new_stream_decoder(LZMA_MEMLIMIT, liblzma::stream::CONCATENATED)
                .map_err(|e| corrupt(e.into()))?;
            Box::new(XzDecoder::new_stream(bytes, stream))
        }
        Format::Bzip2 => Box::new(MultiBzDecoder::new(bytes)),
        Format::Lzma => {
            let stream = Stream::new_lzma_decoder(LZMA_MEMLIMIT).map_err(|e| corrupt(e.into()))?;
            Box::new(XzDecoder::new_stream(bytes, stream))
        }
    };
    let mut out = Vec::new();
    // Read one byte past the cap so "exactly max_out" and "more than max_out" differ.
    reader.take(max_out.saturating_add(1)).read_to_end(&mut out).map_err(corrupt)?;
    if out.len() as u64 > max_out {
        return Err(too_large());
    }
    Ok(out)
}

/// `name` without a compression extension this module decodes:
/// `"main/binary-amd64/Packages.xz"` → `"main/binary-amd64/Packages"`. Other names (including
/// `.zst`, which [`decompress`] refuses) are returned unchanged.
pub fn strip_compression(name: &str) -> &str {
    match Format::of(name) {
        Some(_) => name.rsplit_once('.').map_or(name, |(stem, _)| stem),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    fn compress(ext: &str, data: &[u8]) -> Vec<u8> {
        match ext {
            "gz" => {
                let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                w.write_all(data).unwrap();
                w.finish().unwrap()
            }
            "xz" => {
                let mut w = liblzma::write::XzEncoder::new(Vec::new(), 6);
                w.write_all(data).unwrap();
                w.finish().unwrap()
            }
            "bz2" => {
                let mut w = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
                w.write_all(data).unwrap();
                w.finish().unwrap()
            }
            "lzma" => {
                let opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
                let stream = Stream::new_lzma_encoder(&opts).unwrap();
                let mut w = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
                w.write_all(data).unwrap();
                w.finish().unwrap()
            }
            _ => data.to_vec(),
        }
    }

    const FORMATS: [&str; 5] = ["gz", "xz", "bz2", "lzma", ""];

    fn name(ext: &str) -> String {
        if ext.is_empty() {
            "main/binary-amd64/Packages".into()
        } else {
            format!("main/binary-amd64/Packages.{ext}")
        }
    }

    #[test]
    fn round_trip_each_format() {
        let data = "Package: hello\nVersion: 1.0\n\n".repeat(1000).into_bytes();
        for ext in FORMATS {
            let packed = compress(ext, &data);
            assert_eq!(decompress(&name(ext), &packed, data.len() as u64).unwrap(), data, "{ext}");
            assert_eq!(decompress(&name(ext), &compress(ext, b""), 0).unwrap(), b"", "{ext} empty");
        }
    }

    #[test]
    fn concatenated_members_are_all_decoded() {
        for ext in ["gz", "xz", "bz2"] {
            let packed = [compress(ext, b"first\n"), compress(ext, b"second\n")].concat();
            assert_eq!(decompress(&name(ext), &packed, 100).unwrap(), b"first\nsecond\n", "{ext}");
        }
    }

    #[test]
    fn output_is_capped() {
        // 16 MiB of zeros compresses to a few KiB: a miniature zip bomb.
        let bomb = vec![0u8; 16 << 20];
        for ext in FORMATS {
            let packed = compress(ext, &bomb);
            let err = decompress(&name(ext), &packed, (1 << 20) - 1).unwrap_err();
            assert!(matches!(err, DecompressError::TooLarge { limit, .. } if limit == (1 << 20) - 1), "{ext}: {err}");
        }
    }

    #[test]
    fn corrupt_and_unsupported_input_is_an_error() {
        for ext in ["gz", "xz", "bz2", "lzma"] {
            let mut packed = compress(ext, &[7u8; 4096]);
            packed.truncate(packed.len() / 2);
            let err = decompress(&name(ext), &packed, 1 << 20).unwrap_err();
            assert!(matches!(err, DecompressError::Corrupt { .. }), "{ext}: {err}");
            assert!(decompress(&name(ext), b"not compressed at all", 1 << 20).is_err(), "{ext}");
        }
        let err = decompress("Packages.zst", b"x", 10).unwrap_err();
        assert!(matches!(err, DecompressError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn strip_compression_table() {
        let cases = [
            ("main/binary-amd64/Packages.xz", "main/binary-amd64/Packages"),
            ("Packages.gz", "Packages"),
            ("i18n/Translation-en.bz2", "i18n/Translation-en"),
            ("Packages.lzma", "Packages"),
            ("Packages", "Packages"),
            ("Packages.zst", "Packages.zst"),
            ("dep11/Components-amd64.yml", "dep11/Components-amd64.yml"),
            ("dir.gz/Packages", "dir.gz/Packages"),
            ("Release", "Release"),
        ];
        for (input, want) in cases {
            assert_eq!(strip_compression(input), want, "{input}");
        }
    }

    proptest! {
        #[test]
        fn decompress_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), fmt in 0usize..5) {
            let _ = decompress(&name(FORMATS[fmt]), &bytes, 4096);
        }

        #[test]
        fn decompress_never_panics_on_damaged_streams(pos in 0usize..64, byte in any::<u8>(), fmt in 0usize..4) {
            let mut packed = compress(FORMATS[fmt], b"Package: x\nVersion: 1\n");
            let i = pos % packed.len();
            packed[i] = byte;
            let _ = decompress(&name(FORMATS[fmt]), &packed, 4096);
        }
    }
}
