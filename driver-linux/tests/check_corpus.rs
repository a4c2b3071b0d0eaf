//! `vrlb check` over the real-world corpus: each file is accepted, or
//! refused with an error at its real defect, never a panic.

use std::path::PathBuf;

use vrlb_core::config::Options;
use vrlb_linux::check::check;

#[test]
fn wild_corpus_through_vrlb_check() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/keepalived-wild");
    if !dir.is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "corpus missing at {}",
            dir.display()
        );
        eprintln!("skipping: {} not found", dir.display());
        return;
    }
    // (file, error suffix) for the files vrlb refuses: the same files, at
    // the same places, as core/tests/config_corpus.rs.
    let refused = [
        (
            "03-Tgentimc-keepalived_conf.conf",
            ":33:14: error: 'priority': expected a number, found '100,主从要不一致'",
        ),
        (
            "10-zznan0o0-AutoInstallShell.conf",
            ":98:1: error: vrrp_instance 'VI_1' is already defined at line 14",
        ),
        (
            "12-sweet-red-kubernetes.conf",
            ":21:13: error: 'lb_algo' value 'loadbalance' is not one of: rr, wrr, lc, wlc, sed, nq, sh, dh, mh, fo, ovf",
        ),
        (
            "18-snemarch-dns-doodle.conf",
            ":27:9: error: 'quorum' value '0' is out of range: expected 1..4294967295",
        ),
        (
            "20-KailongLi-elb-test.conf",
            ":9:17: error: 'lb_kind' value 'FNAT' is not one of: DR, NAT, TUN",
        ),
    ];
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 40);
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let report = check(&path, &Options::default());
        match refused.iter().find(|r| r.0 == name) {
            Some((_, suffix)) => {
                let err = report.error.unwrap_or_else(|| panic!("{name} accepted"));
                assert!(err.ends_with(suffix), "{name}: {err}");
            }
            None => assert_eq!(report.error, None, "{name}"),
        }
    }
}
