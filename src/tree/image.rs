//! View images: a built [`View`] written to one file that the mount daemon maps instead of
//! building the tree itself. Whoever publishes builds the view anyway (to refuse path conflicts),
//! so it writes the image before its transaction commits; the daemon then starts and switches in
//! the time it takes to map a file, whatever the size of the catalog, and its tables are page
//! cache (shared, paged in as lookups touch them, reclaimable) rather than heap.
//!
//! # Format (native endianness; an image is a local cache, never copied between machines)
//!
//! ```text
//! 0   header, 64 bytes: magic "PMFSVIEW", endian marker u32, version u32, generation u64,
//!     valid_until i64, node count u64, object count u64, names length u64, inline count u64
//! 64  nodes:        node count × 24 bytes (tree::Node), padded to 8
//!     objects:      object count × 56 bytes (ObjectMeta), sorted by id
//!     inline table: inline count × (offset u64, length u64, mtime i64), offsets into the blob
//!     names:        names length bytes, padded to 8
//!     inline blob
//! ```
//!
//! The file length must be exactly what the header implies. Node and object fields are plain
//! integers, so any bytes are a valid value (zerocopy checks that at compile time and the section
//! sizes and alignment at map time); every index read from them is bounds-checked by the
//! accessors of [`View`] (a damaged image shows wrong names, never undefined behaviour).
//!
//! An image is immutable once renamed into place: it is written to a temporary name, synced and
//! renamed, and nothing ever opens it for writing again. Deleting it while mapped is safe (the
//! mapping keeps the inode alive).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};
use zerocopy::{FromBytes, IntoBytes};

use super::source::ObjectMeta;
use super::{InlineFile, Node, View};

const MAGIC: [u8; 8] = *b"PMFSVIEW";
const ENDIAN: u32 = 0x0102_0304;
const VERSION: u32 = 1;
const HEADER_LEN: usize = 64;
const INLINE_REC: usize = 24;
/// File name suffix of images in the images directory.
pub const SUFFIX: &str = ".view";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not a usable view image: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// What the header of an image says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub generation: u64,
    /// Unix seconds from which the image no longer shows the catalog (a superseded snapshot has
    /// left the grace window); `i64::MAX`: never.
    pub valid_until: i64,
}

/// The name of the image of `generation`; `nonce` (random, recorded in the catalog with the
/// generation) tells it from an image of an attempt that never committed.
pub fn file_name(generation: u64, nonce: u64) -> String {
    format!("{generation:012}-{nonce:016x}{SUFFIX}")
}

#[derive(Clone, Copy)]
struct Counts {
    nodes: u64,
    objects: u64,
    names: u64,
    inline: u64,
}

/// Byte offsets of the sections; `None` when the counts overflow.
struct Layout {
    nodes: usize,
    objects: usize,
    inline_table: usize,
    names: usize,
    blob: usize,
}

fn pad8(n: usize) -> Option<usize> {
    n.checked_add(7).map(|n| n & !7)
}

impl Counts {
    fn layout(&self) -> Option<Layout> {
        let n = |v: u64| usize::try_from(v).ok();
        let nodes = HEADER_LEN;
        let objects = pad8(nodes.checked_add(n(self.nodes)?.checked_mul(std::mem::size_of::<Node>())?)?)?;
        let inline_table = objects.checked_add(n(self.objects)?.checked_mul(std::mem::size_of::<ObjectMeta>())?)?;
        let names = inline_table.checked_add(n(self.inline)?.checked_mul(INLINE_REC)?)?;
        let blob = pad8(names.checked_add(n(self.names)?)?)?;
        Some(Layout { nodes, objects, inline_table, names, blob })
    }
}

const _: () = assert!(std::mem::size_of::<ObjectMeta>() == 56 && std::mem::align_of::<ObjectMeta>() == 8);

/// Write `view` as an image.
pub fn write(view: &View, valid_until: i64, out: &mut impl Write) -> io::Result<()> {
    let (nodes, objects, names) = (view.nodes(), view.objects(), view.names());
    let counts = Counts {
        nodes: nodes.len() as u64,
        objects: objects.len() as u64,
        names: names.len() as u64,
        inline: view.inline.len() as u64,
    };
    let layout = counts.layout().ok_or_else(|| io::Error::other("view too large for an image"))?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&ENDIAN.to_ne_bytes());
    header.extend_from_slice(&VERSION.to_ne_bytes());
    header.extend_from_slice(&view.generation.to_ne_bytes());
    header.extend_from_slice(&valid_until.to_ne_bytes());
    for v in [counts.nodes, counts.objects, counts.names, counts.inline] {
        header.extend_from_slice(&v.to_ne_bytes());
    }
    out.write_all(&header)?;
    out.write_all(nodes.as_bytes())?;
    let mut at = layout.nodes + std::mem::size_of_val(nodes);
    out.write_all(&[0; 8][..layout.objects - at])?;
    out.write_all(objects.as_bytes())?;
    let mut blob_off = 0u64;
    for f in &view.inline {
        for v in [blob_off, f.bytes.len() as u64] {
            out.write_all(&v.to_ne_bytes())?;
        }
        out.write_all(&f.mtime.to_ne_bytes())?;
        blob_off += f.bytes.len() as u64;
    }
    out.write_all(names)?;
    at = layout.names + names.len();
    out.write_all(&[0; 8][..layout.blob - at])?;
    for f in &view.inline {
        out.write_all(&f.bytes)?;
    }
    Ok(())
}

/// Write `view` as `<dir>/<name>`: to a temporary name first, synced (when `fsync`) and renamed,
/// so a reader never sees a partial image.
pub fn write_file(view: &View, valid_until: i64, dir: &Path, name: &str, fsync: bool) -> Result<PathBuf, ImageError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| ImageError::Io { path: p, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let file = File::create(&tmp).map_err(io(&tmp))?;
    let mut w = io::BufWriter::with_capacity(1 << 20, file);
    let written = write(view, valid_until, &mut w).and_then(|()| w.flush());
    let result = written
        .map_err(io(&tmp))
        .and_then(|()| w.into_inner().map_err(|e| ImageError::Io { path: tmp.clone(), source: e.into_error() }))
        .and_then(|file| if fsync { file.sync_all().map_err(io(&tmp)) } else { Ok(()) })
        .and_then(|()| std::fs::rename(&tmp, &path).map_err(io(&path)));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if fsync {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    }
    Ok(path)
}

/// The generation and nonce of an image's file name (what [`file_name`] made), else `None`.
pub fn parse_name(name: &str) -> Option<(u64, u64)> {
    let (generation, nonce) = name.strip_suffix(SUFFIX)?.split_once('-')?;
    let ok = generation.len() == 12 && nonce.len() == 16;
    ok.then(|| Some((generation.parse().ok()?, u64::from_str_radix(nonce, 16).ok()?))).flatten()
}

/// Delete every image (and leftover temporary file) in `dir` but `keep`; returns how many went.
/// A daemon that has one of them mapped keeps it until it switches away.
pub fn prune(dir: &Path, keep: Option<&str>) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = name.ends_with(SUFFIX) || (name.starts_with('.') && name.ends_with(".view.tmp"));
        if ours && Some(name) != keep {
            match std::fs::remove_file(dir.join(name)) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// A read-only shared mapping of the first `len` bytes (the whole length) of an image file.
fn map_file(file: &File, len: usize) -> io::Result<Mmap> {
    // SAFETY: mapping a file is undefined behaviour only if the file changes while mapped (the
    // `&[u8]` the mapping derefs to would change under it). This one cannot: `file` was opened
    // read-only, and an image is written under a temporary name and renamed into place complete;
    // nothing in pmirror-fs opens an image for writing, truncates or rewrites it after the
    // rename, and a new generation is a new file (prune only unlinks, which leaves a mapped
    // inode intact). Only someone writing into the store's views/ by hand could break this.
    unsafe { MmapOptions::new().len(len).map(file) }
}

/// A section of `count` records of `T` at byte `offset` of `bytes`; `None` when it does not lie
/// inside or is not aligned for `T`.
fn records<T: FromBytes + zerocopy::Immutable + zerocopy::KnownLayout>(
    bytes: &[u8],
    (offset, count): (usize, usize),
) -> Option<&[T]> {
    <[T]>::ref_from_prefix_with_elems(bytes.get(offset..)?, count).ok().map(|(section, _)| section)
}

/// The tables of a view, in a mapped image.
pub(super) struct Mapped {
    map: Mmap,
    /// (byte offset, record count) of each section; map() checked that they fit.
    nodes: (usize, usize),
    objects: (usize, usize),
    names: (usize, usize),
}

impl Mapped {
    pub(super) fn nodes(&self) -> &[Node] {
        records(&self.map, self.nodes).expect("node section checked by map()")
    }

    pub(super) fn objects(&self) -> &[ObjectMeta] {
        records(&self.map, self.objects).expect("object section checked by map()")
    }

    pub(super) fn names(&self) -> &[u8] {
        &self.map[self.names.0..self.names.0 + self.names.1]
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(v)
}

/// Map the image at `path` as a view.
pub fn map(path: &Path) -> Result<(View, ImageInfo), ImageError> {
    let invalid = |reason: String| ImageError::Invalid { path: path.to_owned(), reason };
    let file = File::open(path).map_err(|source| ImageError::Io { path: path.to_owned(), source })?;
    let len = file.metadata().map_err(|source| ImageError::Io { path: path.to_owned(), source })?.len();
    let len = usize::try_from(len).map_err(|_| invalid("larger than the address space".into()))?;
    if len < HEADER_LEN {
        return Err(invalid(format!("{len} bytes, shorter than the header")));
    }
    let map = map_file(&file, len).map_err(|source| ImageError::Io { path: path.to_owned(), source })?;
    let b = &map[..];
    if b[..8] != MAGIC {
        return Err(invalid("wrong magic".into()));
    }
    let endian = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
    let version = u32::from_ne_bytes([b[12], b[13], b[14], b[15]]);
    if endian != ENDIAN || version != VERSION {
        return Err(invalid(format!("format {version} (endianness {endian:#x}); this build reads {VERSION}")));
    }
    let info = ImageInfo { generation: read_u64(b, 16), valid_until: read_u64(b, 24) as i64 };
    let counts =
        Counts { nodes: read_u64(b, 32), objects: read_u64(b, 40), names: read_u64(b, 48), inline: read_u64(b, 56) };
    let layout = counts.layout().ok_or_else(|| invalid("section sizes overflow".into()))?;
    // Inline records are few; read them now (their total must account for the rest of the file).
    let inline_count = counts.inline as usize;
    let mut inline = Vec::with_capacity(inline_count);
    let mut blob_len = 0usize;
    for i in 0..inline_count {
        let rec = layout.inline_table + i * INLINE_REC;
        let (off, n, mtime) = (read_u64(b, rec), read_u64(b, rec + 8), read_u64(b, rec + 16) as i64);
        let start = usize::try_from(off).ok().and_then(|o| layout.blob.checked_add(o));
        let end = start.zip(usize::try_from(n).ok()).and_then(|(s, n)| s.checked_add(n));
        let (Some(start), Some(end)) = (start, end) else { return Err(invalid("inline record out of range".into())) };
        if end > len {
            return Err(invalid("inline record out of range".into()));
        }
        blob_len = blob_len.max(end - layout.blob);
        inline.push(InlineFile { bytes: Arc::from(&b[start..end]), mtime });
    }
    if layout.blob.checked_add(blob_len) != Some(len) {
        return Err(invalid(format!("{len} bytes, but the header describes {}", layout.blob + blob_len)));
    }
    if counts.nodes == 0 {
        return Err(invalid("no root node".into()));
    }
    let mapped = Mapped {
        nodes: (layout.nodes, counts.nodes as usize),
        objects: (layout.objects, counts.objects as usize),
        names: (layout.names, counts.names as usize),
        map,
    };
    // Inside the file and aligned by construction of the layout; checked once here so that the
    // accessors' conversions cannot fail.
    if records::<Node>(&mapped.map, mapped.nodes).is_none()
        || records::<ObjectMeta>(&mapped.map, mapped.objects).is_none()
    {
        return Err(invalid("node or object section outside the file or misaligned".into()));
    }
    Ok((View::from_mapped(info.generation, mapped, inline), info))
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
