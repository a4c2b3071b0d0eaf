//! The HTTP side of `HTTP_GET` and `SSL_GET`: the request keepalived sends,
//! and a response reader fed bytes as they arrive that ends with the
//! status code and the MD5 of the body. Headers are parsed by `httparse`.
//! No I/O: the prober moves the bytes.
//!
//! keepalived's check (check_http.c): `GET PATH HTTP/1.0`, `User-Agent:
//! KeepAliveClient`, `Host:` the virtual host or `ADDRESS:PORT`; the reply
//! is read to the end of the stream; the status must be one of the URL's
//! `status_code`s (default 200-299); with a `digest`, the MD5 of the body
//! (up to `Content-Length` when the server sends one) must match. A reply
//! with no data at all fails.

use std::fmt;
use std::net::SocketAddr;

use md5::{Digest, Md5};

use super::spec::UrlSpec;

/// Most header bytes read before giving up on a reply.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header lines parsed.
const MAX_HEADERS: usize = 64;

/// The request for `url` to `target`.
pub fn request(url: &UrlSpec, target: SocketAddr) -> Vec<u8> {
    let host = match &url.virtualhost {
        Some(h) => h.clone(),
        // SocketAddr's Display brackets IPv6 addresses (RFC 2732), as
        // keepalived's request_template_ipv6 does.
        None => target.to_string(),
    };
    format!(
        "GET {} HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\n\r\n",
        url.path
    )
    .into_bytes()
}

/// Why a reply does not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The stream ended before any data.
    NoData,
    /// The stream ended inside the header.
    Truncated,
    /// Not an HTTP response.
    Malformed(String),
    /// The header is longer than [`MAX_HEAD_BYTES`].
    HeadTooLong,
    /// A status the URL does not accept.
    Status(u16),
    /// The body's MD5 differs from the URL's digest.
    Digest {
        /// What the body hashed to, hex.
        got: String,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::NoData => f.write_str("no data received"),
            HttpError::Truncated => f.write_str("the reply ended inside its header"),
            HttpError::Malformed(e) => write!(f, "not an HTTP reply: {e}"),
            HttpError::HeadTooLong => {
                write!(f, "reply header longer than {MAX_HEAD_BYTES} bytes")
            }
            HttpError::Status(s) => write!(f, "HTTP status code {s} not accepted"),
            HttpError::Digest { got } => write!(f, "MD5 digest error (body hashes to {got})"),
        }
    }
}

/// The header of a reply, once it is complete.
#[derive(Debug, Clone, Copy)]
struct Head {
    status: u16,
    content_length: Option<u64>,
}

/// Reads one reply.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Bytes of the header read so far (cleared once it is parsed).
    head_buf: Vec<u8>,
    head: Option<Head>,
    body_len: u64,
    md5: Md5,
    seen_any: bool,
}

/// A finished reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// MD5 of the body (to `Content-Length` at most).
    pub digest: [u8; 16],
    /// Body bytes received.
    pub body_len: u64,
}

impl Response {
    /// A reader for a new reply.
    pub fn new() -> Self {
        Response::default()
    }

    /// Takes the next bytes of the stream.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), HttpError> {
        if data.is_empty() {
            return Ok(());
        }
        self.seen_any = true;
        if self.head.is_some() {
            self.body(data);
            return Ok(());
        }
        self.head_buf.extend_from_slice(data);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&self.head_buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = parsed.code.unwrap_or(0);
                let content_length = parsed
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                self.head = Some(Head {
                    status,
                    content_length,
                });
                let rest = self.head_buf.split_off(len);
                self.head_buf = Vec::new();
                self.body(&rest);
                Ok(())
            }
            Ok(httparse::Status::Partial) if self.head_buf.len() > MAX_HEAD_BYTES => {
                Err(HttpError::HeadTooLong)
            }
            Ok(httparse::Status::Partial) => Ok(()),
            Err(e) => Err(HttpError::Malformed(e.to_string())),
        }
    }

    fn body(&mut self, data: &[u8]) {
        let take = match self.head.and_then(|h| h.content_length) {
            // keepalived hashes no more than Content-Length announces.
            Some(len) => data.len().min(len.saturating_sub(self.body_len) as usize),
            None => data.len(),
        };
        self.md5.update(&data[..take]);
        self.body_len += take as u64;
    }

    /// Whether the whole body announced by `Content-Length` is here (the
    /// probe need not wait for the server to close).
    pub fn complete(&self) -> bool {
        self.head
            .and_then(|h| h.content_length)
            .is_some_and(|len| self.body_len >= len)
    }

    /// The stream ended: the reply as received.
    pub fn finish(self) -> Result<Reply, HttpError> {
        let Some(head) = self.head else {
            return Err(if self.seen_any {
                HttpError::Truncated
            } else {
                HttpError::NoData
            });
        };
        Ok(Reply {
            status: head.status,
            digest: self.md5.finalize().into(),
            body_len: self.body_len,
        })
    }
}

/// Whether `reply` passes `url`'s tests (status first, then digest, as
/// keepalived's http_handle_response).
pub fn judge(url: &UrlSpec, reply: &Reply) -> Result<(), HttpError> {
    if !url.accepts(reply.status) {
        return Err(HttpError::Status(reply.status));
    }
    if let Some(want) = url.digest
        && want != reply.digest
    {
        return Err(HttpError::Digest {
            got: hex(&reply.digest),
        });
    }
    Ok(())
}

/// Lower-case hex, as keepalived's genhash prints digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(codes: &[(u16, u16)], digest: Option<&str>) -> UrlSpec {
        UrlSpec {
            path: "/health".into(),
            digest: digest.and_then(super::super::spec::parse_digest),
            status_codes: codes.to_vec(),
            virtualhost: None,
        }
    }

    #[test]
    fn request_is_keepalived_s() {
        let mut u = url(&[], None);
        let v4: SocketAddr = "192.0.2.5:8080".parse().unwrap();
        assert_eq!(
            request(&u, v4),
            b"GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 192.0.2.5:8080\r\n\r\n"
        );
        let v6: SocketAddr = "[2001:db8::5]:80".parse().unwrap();
        assert!(
            String::from_utf8(request(&u, v6))
                .unwrap()
                .contains("Host: [2001:db8::5]:80\r\n")
        );
        u.virtualhost = Some("www.example.com".into());
        assert!(
            String::from_utf8(request(&u, v6))
                .unwrap()
                .contains("Host: www.example.com\r\n")
        );
    }

    #[test]
    fn reply_in_pieces_gives_status_and_body_md5() {
        let mut r = Response::new();
        let text = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\n";
        for chunk in text.chunks(3) {
            r.feed(chunk).unwrap();
        }
        assert!(!r.complete(), "no Content-Length: read to the end");
        let reply = r.finish().unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body_len, 6);
        // md5("hello\n")
        assert_eq!(hex(&reply.digest), "b1946ac92492d2347c6235b4d2611184");
        assert_eq!(
            judge(&url(&[], Some("b1946ac92492d2347c6235b4d2611184")), &reply),
            Ok(())
        );
        assert!(matches!(
            judge(&url(&[], Some("00000000000000000000000000000000")), &reply),
            Err(HttpError::Digest { .. })
        ));
    }

    #[test]
    fn content_length_bounds_the_digest_and_completes_the_reply() {
        let mut r = Response::new();
        r.feed(b"HTTP/1.1 503 Busy\r\ncontent-length: 5\r\n\r\nhel")
            .unwrap();
        assert!(!r.complete());
        r.feed(b"lo, and more").unwrap();
        assert!(r.complete());
        let reply = r.finish().unwrap();
        assert_eq!(reply.body_len, 5);
        // md5("hello")
        assert_eq!(hex(&reply.digest), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(judge(&url(&[], None), &reply), Err(HttpError::Status(503)));
        assert_eq!(judge(&url(&[(500, 599)], None), &reply), Ok(()));
    }

    #[test]
    fn empty_truncated_and_garbage_replies_fail() {
        assert_eq!(Response::new().finish(), Err(HttpError::NoData));
        let mut r = Response::new();
        r.feed(b"HTTP/1.0 200 OK\r\nServer:").unwrap();
        assert_eq!(r.finish(), Err(HttpError::Truncated));
        let mut r = Response::new();
        assert!(matches!(
            r.feed(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        let mut r = Response::new();
        let mut long = b"HTTP/1.0 200 OK\r\nX: ".to_vec();
        long.resize(MAX_HEAD_BYTES + 10, b'a');
        assert_eq!(r.feed(&long), Err(HttpError::HeadTooLong));
    }
}
