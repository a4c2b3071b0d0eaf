//! Cleanup when the run is interrupted. A `Lab` removes its namespaces
//! when it drops, but SIGINT, SIGTERM or SIGHUP end the process without
//! unwinding. So those signals only raise a flag (signal-hook: a handler,
//! not a blocked mask, so the daemons started from here still get their
//! own SIGTERM), and a thread watching it kills every process inside the
//! namespaces of the labs registered here, deletes the namespaces (their
//! bridges, veths and nftables tables go with them) and exits with 128 +
//! the signal. Owns only that; never touches a namespace it was not told
//! about.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Tags (namespace-name prefixes) of the labs alive now.
static TAGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Installs the handlers and starts the thread that acts on them.
pub fn install() {
    let caught = Arc::new(AtomicUsize::new(0));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        let c = caught.clone();
        // The handler only stores the number (async-signal-safe).
        let ok = signal_hook::flag::register_usize(sig, c, sig as usize);
        if ok.is_err() {
            eprintln!(
                "vrlb-bench: cannot handle signal {sig}; an interrupted run may leave namespaces behind"
            );
        }
    }
    std::thread::spawn(move || {
        loop {
            let sig = caught.load(Ordering::SeqCst);
            if sig != 0 {
                eprintln!("\nvrlb-bench: signal {sig}: removing the lab namespaces and stopping");
                let tags = TAGS.lock().map(|t| t.clone()).unwrap_or_default();
                remove_namespaces(&tags);
                std::process::exit(128 + sig as i32);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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
