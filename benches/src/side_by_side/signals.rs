//! Cleanup when the run is interrupted. A `Lab` removes its namespaces
//! when it drops, but SIGINT, SIGTERM or SIGHUP end the process without
//! unwinding. So those signals are blocked in every thread and one thread
//! waits for them: it kills every process inside the namespaces of the
//! labs registered here, deletes the namespaces (their bridges, veths and
//! nftables tables go with them) and exits with 128 + the signal.
//! Owns only that; never touches a namespace it was not told about.

use std::process::Command;
use std::sync::Mutex;

use nix::sys::signal::{SigSet, Signal};

/// Tags (namespace-name prefixes) of the labs alive now.
static TAGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (call first, before
/// any other thread exists, so they all inherit the mask) and starts the
/// thread that handles them. Child processes start with an empty mask
/// (std's `Command` resets it).
pub fn install() {
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        eprintln!(
            "vrlb-bench: cannot block signals; an interrupted run may leave namespaces behind"
        );
        return;
    }
    std::thread::spawn(move || {
        let Ok(sig) = set.wait() else {
            return;
        };
        eprintln!("\nvrlb-bench: {sig}: removing the lab namespaces and stopping");
        let tags = TAGS.lock().map(|t| t.clone()).unwrap_or_default();
        remove_namespaces(&tags);
        std::process::exit(128 + sig as i32);
    });
}

/// Registers a lab's tag while it lives.
pub fn register(tag: &str) {
    if let Ok(mut t) = TAGS.lock() {
        t.push(tag.to_string());
    }
}

/// Forgets a tag (its lab dropped and cleaned up).
pub fn unregister(tag: &str) {
    if let Ok(mut t) = TAGS.lock() {
        t.retain(|x| x != tag);
    }
}

/// The namespaces named `TAG...` for one of `tags`, in `ip netns list`
/// output.
pub fn matching(list: &str, tags: &[String]) -> Vec<String> {
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| {
            tags.iter()
                .any(|t| !t.is_empty() && name.starts_with(t.as_str()))
        })
        .map(str::to_string)
        .collect()
}

fn remove_namespaces(tags: &[String]) {
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for ns in matching(&list, tags) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registered_prefixes_match() {
        let list = "v12340s (id: 3)\nv12340dd\nother\nv99990s (id: 1)\n";
        assert_eq!(
            matching(list, &["v12340".into()]),
            vec!["v12340s", "v12340dd"]
        );
        assert!(matching(list, &[String::new()]).is_empty());
        assert!(matching(list, &[]).is_empty());
    }
}
