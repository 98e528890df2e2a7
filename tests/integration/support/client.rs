//! A minimal blocking HTTP/1.1 client for assertions on what a server sends (status, headers,
//! exact body bytes, keep-alive), with nothing between the test and the socket. Bodies are
//! read by Content-Length; a body cut short is an `UnexpectedEof` error.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response never takes this long from a loopback test server unless a test stalls it.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Lower-cased names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// One persistent connection (to test keep-alive, or to send many requests cheaply).
pub struct Conn {
    host: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Connect to `host:port`.
    pub fn open(host_port: &str) -> io::Result<Conn> {
        let stream = TcpStream::connect(host_port)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Conn { host: host_port.to_string(), reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    /// Send `method path` with extra headers and read the whole response.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: pmirror-fs-tests\r\n", self.host);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.writer.write_all(head.as_bytes())?;
        self.read_response(method == "HEAD")
    }

    fn read_response(&mut self, head_only: bool) -> io::Result<Response> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"));
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {line:?}")))?;
        let mut headers = HashMap::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let no_body = head_only || status == 304;
        let chunked = headers.get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let body = if no_body {
            Vec::new()
        } else if chunked {
            self.read_chunked()?
        } else {
            let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body)?;
            body
        };
        Ok(Response { status, headers, body })
    }

    /// A `Transfer-Encoding: chunked` body (nginx sends autoindex pages that way).
    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let size_field = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size_field, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {line:?}")))?;
            let start = body.len();
            body.resize(start + size, 0);
            self.reader.read_exact(&mut body[start..])?;
            line.clear();
            self.reader.read_line(&mut line)?; // CRLF after the chunk (or the trailer's end)
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

/// Split `http://host:port/path` into (`host:port`, `/path`).
fn split_url(url: &str) -> io::Result<(String, String)> {
    let parsed =
        url::Url::parse(url).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{url}: {e}")))?;
    let host = parsed.host_str().unwrap_or("127.0.0.1");
    let port = parsed.port_or_known_default().unwrap_or(80);
    Ok((format!("{host}:{port}"), parsed.path().to_string()))
}

/// One request on a fresh connection.
pub fn request(url: &str, method: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
    let (host, path) = split_url(url)?;
    let mut all = headers.to_vec();
    all.push(("Connection", "close"));
    Conn::open(&host)?.request(method, &path, &all)
}

pub fn get(url: &str) -> io::Result<Response> {
    request(url, "GET", &[])
}
