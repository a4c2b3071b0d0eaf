//! The client side of the control socket (`vrlb status`, `vrlb conns`):
//! sends one request, reads the daemon's JSON answer. Bounded in time.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::Request;

/// How long the daemon may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the daemon listening on `socket`; returns its JSON answer.
pub fn ask(socket: &Path, request: Request) -> Result<String, String> {
    let at = |e: std::io::Error| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                " (is vrlb run running? --control-socket names another socket)"
            }
            std::io::ErrorKind::PermissionDenied => " (only root may ask)",
            _ => "",
        };
        format!("{}: {e}{hint}", socket.display())
    };
    let mut stream = UnixStream::connect(socket).map_err(at)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(at)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(at)?;
    stream
        .write_all(format!("{}\n", request.word()).as_bytes())
        .map_err(at)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(at)?;
    let answer = answer.trim_end().to_string();
    if answer.is_empty() {
        return Err(format!(
            "{}: the daemon closed without answering",
            socket.display()
        ));
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&answer)
        && let Some(serde_json::Value::String(e)) = map.get("error")
    {
        return Err(format!("{}: the daemon says: {e}", socket.display()));
    }
    Ok(answer)
}
