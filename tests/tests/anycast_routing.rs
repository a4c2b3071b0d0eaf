//! The routing half of active-active directors (docs/anycast.md), with the
//! shipped BGP configurations in `examples/anycast/` used as they are: BIRD
//! on three directors exports the VIP while it is on `lo`, BIRD on the
//! router merges the routes into one ECMP route, a removed VIP and a killed
//! director withdraw their next hop. The FRR configurations are checked by
//! FRR's own parser. (vrlb itself adding and removing the VIP is the
//! daemon's part, tested with it.)
//!
//! Topology: router 198.51.100.1 and directors 198.51.100.11-13 on one
//! bridge; the VIP 192.0.2.240/32 on each director's `lo`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vrlb_tests::netns::{Lab, TempDir, have, in_ns, prerequisite, run, wait_until};

const VIP: &str = "192.0.2.240";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/anycast")
        .join(name)
}

/// The router's next hops for the VIP, sorted.
fn next_hops(router: &str) -> Vec<String> {
    let text = in_ns(router, &["ip", "route", "show", VIP]);
    let mut hops: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.position(|x| x == "via")?;
            w.next().map(str::to_string)
        })
        .collect();
    hops.sort();
    hops
}

fn hops(n: &[u8]) -> Vec<String> {
    n.iter().map(|i| format!("198.51.100.1{i}")).collect()
}

#[test]
fn bird_configs_announce_merge_and_withdraw() {
    let Some(mut lab) = Lab::new(&["bird", "birdc"]) else {
        return;
    };
    let dir = TempDir::new("anycast");
    let seg = lab.netns("s");
    let router = lab.netns("r");
    let br = lab.name("br");
    lab.bridge(&seg, &br);
    let attach = |lab: &mut Lab, ns: &str, ifname: &str, port: &str, addr: &str| {
        lab.veth(ns, ifname, &seg, port);
        run(&["ip", "-n", &seg, "link", "set", port, "master", &br]);
        run(&["ip", "-n", ns, "addr", "add", addr, "dev", ifname]);
    };
    let port = lab.name("pr");
    attach(&mut lab, &router, "eth0", &port, "198.51.100.1/24");
    run(&[
        "ip",
        "netns",
        "exec",
        &router,
        "sysctl",
        "-qw",
        "net.ipv4.fib_multipath_hash_policy=1",
    ]);
    let bird = |lab: &mut Lab, ns: &str, conf: &Path, tag: &str| {
        let sock = dir.path(&format!("{tag}.ctl"));
        let args = [
            "bird",
            "-f",
            "-c",
            conf.to_str().unwrap(),
            "-s",
            sock.to_str().unwrap(),
        ];
        lab.spawn(ns, &args, &dir.path(&format!("{tag}.log")))
    };
    bird(&mut lab, &router, &example("bird-router.conf"), "router");
    let director_conf = std::fs::read_to_string(example("bird-director.conf")).unwrap();
    let mut directors = Vec::new();
    for i in 1..=3u8 {
        let ns = lab.netns(&format!("d{i}"));
        let port = lab.name(&format!("p{i}"));
        attach(&mut lab, &ns, "eth0", &port, &format!("198.51.100.1{i}/24"));
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{VIP}/32"),
            "dev",
            "lo",
        ]);
        // The example is director 1's; the others differ in their address.
        let conf = dir.path(&format!("d{i}.conf"));
        std::fs::write(
            &conf,
            director_conf.replace("198.51.100.11", &format!("198.51.100.1{i}")),
        )
        .unwrap();
        let pid = bird(&mut lab, &ns, &conf, &format!("d{i}"));
        directors.push((ns, pid));
    }

    let all = hops(&[1, 2, 3]);
    assert!(
        wait_until(Duration::from_secs(20), || next_hops(&router) == all).is_some(),
        "no ECMP route over all three directors: {:?}",
        next_hops(&router)
    );

    // The VIP leaves lo (vrlb lost quorum or stopped): its route goes.
    run(&[
        "ip",
        "-n",
        &directors[1].0,
        "addr",
        "del",
        &format!("{VIP}/32"),
        "dev",
        "lo",
    ]);
    let took = wait_until(Duration::from_secs(5), || {
        next_hops(&router) == hops(&[1, 3])
    });
    assert!(
        took.is_some(),
        "withdrawn VIP still routed: {:?}",
        next_hops(&router)
    );
    run(&[
        "ip",
        "-n",
        &directors[1].0,
        "addr",
        "add",
        &format!("{VIP}/32"),
        "dev",
        "lo",
    ]);
    assert!(wait_until(Duration::from_secs(10), || next_hops(&router) == all).is_some());

    // A director dies without a word: the 3 s hold time removes its route.
    let (_, pid) = directors[2].clone();
    lab.signal(pid, "KILL");
    let took = wait_until(Duration::from_secs(8), || {
        next_hops(&router) == hops(&[1, 2])
    });
    assert!(
        took.is_some(),
        "dead director still routed: {:?}",
        next_hops(&router)
    );
    let took = took.unwrap();
    assert!(
        took <= Duration::from_secs(5),
        "withdrawal took {took:?}, hold time is 3 s"
    );
}

#[test]
fn frr_configs_parse() {
    if !prerequisite(have("vtysh"), "FRR (vtysh) is not installed") {
        return;
    }
    for name in ["frr-director.conf", "frr-router.conf"] {
        let path = example(name);
        let out = std::process::Command::new("vtysh")
            .args(["-C", "-f", path.to_str().unwrap()])
            .output()
            .expect("vtysh runs");
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
