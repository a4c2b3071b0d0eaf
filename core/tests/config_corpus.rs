//! The corpus (`../shared/corpus`): keepalived's own samples must all
//! parse and build; each real-world file either builds or fails at its
//! real defect. Each file is parsed and then built into a node (as `vrlb
//! check` and `vrlb run` do: driver-linux/tests/check_corpus.rs must agree
//! on every file). The full outcome (result, every parser and builder
//! warning, with file, line and column) is compared with a committed
//! snapshot so any change is visible in review; `VRLB_BLESS=1` rewrites
//! the snapshots.

mod common;

use common::world::{Env, node_for};
use common::{corpus_dir, corpus_files, parse, read_text};
use vrlb_core::config::{NoIncludes, Options};
use vrlb_core::node::build;

/// Each file's name and its item count or rendered error.
type Results = Vec<(String, Result<u32, String>)>;

/// Parses and builds every file of `sub` and renders the outcome as text.
fn outcome(sub: &str) -> Option<(String, Results)> {
    let dir = corpus_dir(sub)?;
    let mut text = String::new();
    let mut results = Vec::new();
    for path in corpus_files(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = read_text(&path);
        let (rec, parsed) = parse(&name, &source);
        let mut env = Env::default();
        let result = parsed.map_err(|e| e.to_string()).and_then(|_| {
            let mut node = node_for(&source);
            build::build(
                &mut node,
                &mut env,
                &name,
                &source,
                &Options::default(),
                &mut NoIncludes,
            )
            .map(|s| s.items)
            .map_err(|e| e.to_string())
        });
        match &result {
            Ok(items) => text.push_str(&format!("== {name}: ok, {items} items\n")),
            Err(e) => text.push_str(&format!("== {name}: REJECTED {e}\n")),
        }
        for w in &rec.warnings {
            text.push_str(&format!("   {w}\n"));
        }
        // The builder's own warnings (the parser's come again in its pass).
        for w in env.warnings.iter().filter(|w| !rec.warnings.contains(w)) {
            text.push_str(&format!("   build: {w}\n"));
        }
        results.push((name, result));
    }
    Some((text, results))
}

fn compare_snapshot(name: &str, actual: &str) {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var("VRLB_BLESS").is_ok() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let diff: Vec<String> = actual
            .lines()
            .zip(expected.lines().chain(std::iter::repeat("<missing>")))
            .filter(|(a, e)| a != e)
            .take(5)
            .map(|(a, e)| format!("  now:      {a}\n  snapshot: {e}"))
            .collect();
        panic!(
            "{path} differs (VRLB_BLESS=1 to accept):\n{}",
            diff.join("\n")
        );
    }
}

#[test]
fn every_keepalived_sample_parses() {
    let Some((text, results)) = outcome("keepalived-samples") else {
        return;
    };
    assert_eq!(results.len(), 25, "sample count changed");
    for (name, result) in &results {
        assert!(result.is_ok(), "{name}: {result:?}");
    }
    compare_snapshot("corpus-samples.txt", &text);
}

#[test]
fn wild_files_parse_or_fail_at_their_defect() {
    let Some((text, results)) = outcome("keepalived-wild") else {
        return;
    };
    assert_eq!(results.len(), 40, "wild corpus count changed");
    // The files vrlb refuses, with the real defect's place.
    // Kept in step with driver-linux/tests/check_corpus.rs.
    let rejected = [
        ("03-Tgentimc-keepalived_conf.conf", "33:14", "priority"),
        (
            "10-zznan0o0-AutoInstallShell.conf",
            "98:1",
            "vrrp_instance 'VI_1' is already defined at line 14",
        ),
        ("12-sweet-red-kubernetes.conf", "21:13", "lb_algo"),
        ("18-snemarch-dns-doodle.conf", "27:9", "quorum"),
        ("20-KailongLi-elb-test.conf", "9:17", "FNAT"),
    ];
    for (name, result) in &results {
        match rejected.iter().find(|r| r.0 == name) {
            Some((_, at, what)) => {
                let err = result.as_ref().expect_err(name);
                assert!(err.starts_with(&format!("{name}:{at}: error:")), "{err}");
                assert!(err.contains(what), "{err}");
            }
            None => assert!(result.is_ok(), "{name}: {result:?}"),
        }
    }
    compare_snapshot("corpus-wild.txt", &text);
}
