//! The lab's real-server HTTP service (`vrlb lab serve`): answers every
//! GET with its name, so a client sees which real server it reached.
//! HTTP/1.1 with keep-alive (one TCP connection can carry many requests:
//! a long-lived connection for failover tests). A thread per connection,
//! bounded; idle connections close after a while. Written by hand: the
//! lab needs a dozen lines of HTTP, not a server framework.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 256;
/// An idle keep-alive connection closes after this long.
const IDLE: Duration = Duration::from_secs(300);
/// Longest request head read.
const MAX_HEAD: usize = 8192;

/// The body every answer carries: the server's name and a newline.
pub fn body(name: &str) -> String {
    format!("{name}\n")
}

/// Serves on `listen` until the process is killed.
pub fn serve(listen: SocketAddr, name: &str) -> Result<(), String> {
    let listener = TcpListener::bind(listen).map_err(|e| format!("{listen}: {e}"))?;
    eprintln!("vrlb lab serve: {name} on {listen}");
    let live = Arc::new(AtomicUsize::new(0));
    let body: Arc<str> = body(name).into();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if live.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            continue;
        }
        live.fetch_add(1, Ordering::Relaxed);
        let (count, body) = (live.clone(), body.clone());
        let spawned = std::thread::Builder::new().spawn(move || {
            let _ = connection(stream, &body);
            count.fetch_sub(1, Ordering::Relaxed);
        });
        if spawned.is_err() {
            live.fetch_sub(1, Ordering::Relaxed);
            eprintln!("vrlb lab serve: cannot start a thread");
        }
    }
    Ok(())
}

/// Answers requests on one connection until the client closes, asks to
/// close, or stays idle too long.
fn connection(stream: TcpStream, body: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        let mut close = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if head.len() + line.len() > MAX_HEAD {
                return Ok(());
            }
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
            let end = line == "\r\n" || line == "\n";
            head.push_str(&line);
            if end {
                break;
            }
        }
        if head.starts_with("HTTP/1.0") || head.split_whitespace().nth(2) == Some("HTTP/1.0") {
            close = true;
        }
        let status = if head.starts_with("GET ") || head.starts_with("HEAD ") {
            "200 OK"
        } else {
            "405 Method Not Allowed"
        };
        let text = if head.starts_with("HEAD ") { "" } else { body };
        // One write per answer: one segment on the wire.
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{text}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" },
        );
        writer.write_all(answer.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn answers_with_its_name_and_keeps_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let _ = connection(s, &body("rs1"));
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        for _ in 0..2 {
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut got = Vec::new();
            while !got.ends_with(b"rs1\n") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8(got).unwrap();
            assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
            assert!(text.ends_with("\r\n\r\nrs1\n"), "{text}");
        }
        c.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap();
        assert!(String::from_utf8_lossy(&all).contains("Connection: close"));
    }
}
