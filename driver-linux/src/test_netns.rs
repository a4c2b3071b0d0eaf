//! For unit tests that need real sockets: runs a closure on a thread of
//! its own in a fresh network namespace (`unshare(CLONE_NEWNET)` applies
//! to the calling thread only), with `lo` up. The namespace goes when the
//! thread ends, so nothing is left behind even when the test fails, and
//! it shares nothing with the host's interfaces or other tests. Needs
//! root: without it the test skips with a printed reason, except under
//! `CI=true`, where it fails ([`root`] says so for any test needing root).

use std::process::Command;

/// Whether this test runs as root: outside CI a test that needs it
/// skips, saying `what` needs root; under `CI=true` this fails instead.
pub fn root(what: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: {what} needs root"
    );
    eprintln!("skipping: {what} needs root");
    false
}

/// Runs `f` in a private network namespace; `None` when it cannot be
/// made (not root) outside CI.
pub fn in_private_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    if !root("a private network namespace") {
        return None;
    }
    let thread = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        // A child forked from this thread starts in its namespace.
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("ip link set lo up");
        assert!(up.success(), "ip link set lo up: {up}");
        f()
    });
    Some(
        thread
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e)),
    )
}
