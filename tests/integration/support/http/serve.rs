//! Answering one request of the test server: find the file or directory, apply conditional
//! and range headers and the path's fault, write the response.

use super::{http_date, FaultKind, Request, Source, State};
use std::io::{self, Write};
use std::path::{Component, Path};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes appended by `FaultKind::Oversize`: more than any size check could round away.
const OVERSIZE_EXTRA: usize = 4096;
/// nginx's autoindex pads names to this column.
const AUTOINDEX_NAME_COLUMN: usize = 50;

struct DirEntry {
    name: String,
    is_dir: bool,
    size: u64,
    mtime: SystemTime,
}

enum Found {
    File(Arc<[u8]>, SystemTime),
    Dir(Vec<DirEntry>),
    Missing,
}

/// Write the response; `Ok(false)` when the connection must close afterwards.
pub(super) fn respond(state: &State, req: &Request, w: &mut impl Write) -> io::Result<bool> {
    state.record_hit(&req.path);
    if !state.has_required_header(req) {
        state.log(req, 403);
        return empty(w, 403, &[]);
    }
    if !state.authorized(req) {
        state.log(req, 401);
        return empty(w, 401, &[("WWW-Authenticate", "Basic realm=\"pmirror-fs-test\"".into())]);
    }
    let fault = state.take_fault(&req.path);
    let head_only = req.method == "HEAD";
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        state.log(req, 405);
        return empty(w, 405, &[]);
    }
    if let Some(FaultKind::Status(code)) = fault {
        state.log(req, code);
        return empty(w, code, &[]);
    }
    if let Some(FaultKind::Redirect(location)) = fault {
        state.log(req, 302);
        return empty(w, 302, &[("Location", location)]);
    }
    let is_dir_path = req.path.is_empty() || req.path.ends_with('/');
    match lookup(&state.source(), &req.path) {
        Found::File(bytes, mtime) if !is_dir_path => serve_file(state, req, w, (bytes, mtime), fault),
        Found::Dir(_) if !is_dir_path => {
            state.log(req, 301);
            empty(w, 301, &[("Location", format!("/{}/", req.path))])
        }
        Found::Dir(entries) => {
            state.log(req, 200);
            let page = autoindex(&req.path, entries);
            write_head(w, 200, page.len(), &[("Content-Type", "text/html".into())])?;
            if !head_only {
                w.write_all(page.as_bytes())?;
            }
            Ok(true)
        }
        _ => {
            state.log(req, 404);
            empty(w, 404, &[])
        }
    }
}

fn lookup(source: &Source, path: &str) -> Found {
    match source {
        Source::Memory(shared) => {
            let up = shared.read().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = up.get(path) {
                return Found::File(f.bytes.clone(), f.mtime);
            }
            let prefix = if path.is_empty() || path.ends_with('/') { path.to_string() } else { format!("{path}/") };
            let mut entries: Vec<DirEntry> = Vec::new();
            for (p, f) in up.files.range(prefix.clone()..).take_while(|(p, _)| p.starts_with(&prefix)) {
                let rest = &p[prefix.len()..];
                let (name, is_dir) = rest.split_once('/').map_or((rest, false), |(d, _)| (d, true));
                match entries.last_mut() {
                    Some(last) if last.name == name => last.mtime = last.mtime.max(f.mtime),
                    _ => {
                        entries.push(DirEntry { name: name.into(), is_dir, size: f.bytes.len() as u64, mtime: f.mtime })
                    }
                }
            }
            if entries.is_empty() && !prefix.is_empty() {
                Found::Missing
            } else {
                Found::Dir(entries)
            }
        }
        Source::Dir(root) => lookup_dir(root, path),
    }
}

fn lookup_dir(root: &Path, path: &str) -> Found {
    let rel = Path::new(path);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Found::Missing;
    }
    let full = root.join(rel);
    let Ok(meta) = std::fs::metadata(&full) else { return Found::Missing };
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    if meta.is_file() {
        return match std::fs::read(&full) {
            Ok(bytes) => Found::File(bytes.into(), mtime),
            Err(e) => {
                tracing::warn!(path = %full.display(), error = %e, "test server: read failed");
                Found::Missing
            }
        };
    }
    let Ok(dir) = std::fs::read_dir(&full) else { return Found::Missing };
    let mut entries = Vec::new();
    for entry in dir.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        entries.push(DirEntry {
            name: entry.file_name().to_string_lossy().into_owned(),
            is_dir: meta.is_dir(),
            size: meta.len(),
            mtime: meta.modified().unwrap_or(UNIX_EPOCH),
        });
    }
    Found::Dir(entries)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs()
}

fn not_modified(req: &Request, mtime: SystemTime) -> bool {
    let ims = req.headers.get("if-modified-since").and_then(|v| httpdate::parse_http_date(v).ok());
    ims.is_some_and(|ims| secs(mtime) <= secs(ims))
}

/// A satisfiable single range `bytes=a-b` / `bytes=a-` / `bytes=-n` → (start, end exclusive);
/// `Some(Err(()))` when unsatisfiable; `None` when there is no (applicable) range.
fn byte_range(req: &Request, len: usize, mtime: SystemTime) -> Option<Result<(usize, usize), ()>> {
    let spec = req.headers.get("range")?.strip_prefix("bytes=")?;
    if let Some(validator) = req.headers.get("if-range") {
        if *validator != http_date(mtime) {
            return None;
        }
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim().parse::<usize>().ok(), b.trim().parse::<usize>().ok()) {
        (Some(s), Some(e)) => (s, e.saturating_add(1).min(len)),
        (Some(s), None) => (s, len),
        (None, Some(n)) => (len.saturating_sub(n), len),
        (None, None) => return None,
    };
    Some(if start < end { Ok((start, end)) } else { Err(()) })
}

fn serve_file(
    state: &State,
    req: &Request,
    w: &mut impl Write,
    (bytes, mtime): (Arc<[u8]>, SystemTime),
    fault: Option<FaultKind>,
) -> io::Result<bool> {
    let last_modified = ("Last-Modified", http_date(mtime));
    if not_modified(req, mtime) {
        state.log(req, 304);
        write_head(w, 304, 0, &[last_modified])?;
        return Ok(true);
    }
    let ranges = !state.no_ranges.load(std::sync::atomic::Ordering::SeqCst);
    let range = if ranges { byte_range(req, bytes.len(), mtime) } else { None };
    let (status, body, mut extra) = match range {
        Some(Err(())) => {
            state.log(req, 416);
            return empty(w, 416, &[("Content-Range", format!("bytes */{}", bytes.len()))]);
        }
        Some(Ok((s, e))) => {
            (206, &bytes[s..e], vec![("Content-Range", format!("bytes {s}-{}/{}", e - 1, bytes.len()))])
        }
        None => (200, &bytes[..], Vec::new()),
    };
    extra.push(last_modified);
    state.log(req, status);
    let head_only = req.method == "HEAD";
    match fault {
        Some(FaultKind::Truncate(keep)) if !head_only => {
            write_head(w, status, body.len(), &extra)?;
            w.write_all(&body[..keep.min(body.len())])?;
            Ok(false)
        }
        Some(FaultKind::Oversize) if !head_only => {
            let mut big = body.to_vec();
            big.resize(body.len() + OVERSIZE_EXTRA, b'X');
            write_head(w, status, big.len(), &extra)?;
            w.write_all(&big)?;
            Ok(true)
        }
        Some(FaultKind::Trickle { chunk, every }) if !head_only => {
            write_head(w, status, body.len(), &extra)?;
            for part in body.chunks(chunk.max(1)) {
                w.write_all(part)?;
                w.flush()?;
                std::thread::sleep(every);
            }
            Ok(true)
        }
        Some(FaultKind::Delay(dur)) if !head_only => {
            write_head(w, status, body.len(), &extra)?;
            let (first, rest) = body.split_at(body.len() / 2);
            w.write_all(first)?;
            w.flush()?;
            std::thread::sleep(dur);
            w.write_all(rest)?;
            Ok(true)
        }
        _ => {
            write_head(w, status, body.len(), &extra)?;
            if !head_only {
                w.write_all(body)?;
            }
            Ok(true)
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_head(w: &mut impl Write, status: u16, len: usize, extra: &[(&str, String)]) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nServer: pmirror-fs-test\r\nDate: {}\r\n",
        reason(status),
        http_date(SystemTime::now())
    );
    if status != 304 {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    if status == 200 || status == 206 {
        head.push_str("Accept-Ranges: bytes\r\n");
    }
    if !extra.iter().any(|(k, _)| *k == "Content-Type") {
        head.push_str("Content-Type: application/octet-stream\r\n");
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: keep-alive\r\n\r\n");
    w.write_all(head.as_bytes())
}

fn empty(w: &mut impl Write, status: u16, extra: &[(&str, String)]) -> io::Result<bool> {
    write_head(w, status, 0, extra)?;
    Ok(true)
}

/// Characters an autoindex href may carry unescaped.
fn href(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'~' | b'+' | b'-' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An nginx-style autoindex page: directories first, then files, each sorted by name.
fn autoindex(path: &str, mut entries: Vec<DirEntry>) -> String {
    entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    let title = format!("/{path}");
    let mut out = format!(
        "<html>\r\n<head><title>Index of {title}</title></head>\r\n<body>\r\n\
         <h1>Index of {title}</h1><hr><pre><a href=\"../\">../</a>\r\n"
    );
    let fmt = time::macros::format_description!("[day]-[month repr:short]-[year] [hour]:[minute]");
    for e in entries {
        let name = if e.is_dir { format!("{}/", e.name) } else { e.name.clone() };
        let date = time::OffsetDateTime::from(e.mtime).format(&fmt).unwrap_or_default();
        let size = if e.is_dir { "-".to_string() } else { e.size.to_string() };
        let pad = " ".repeat(AUTOINDEX_NAME_COLUMN.saturating_sub(name.len()) + 1);
        out.push_str(&format!("<a href=\"{}\">{name}</a>{pad}{date} {size:>19}\r\n", href(&name)));
    }
    out.push_str("</pre><hr></body>\r\n</html>\r\n");
    out
}
