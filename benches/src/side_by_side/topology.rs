//! The namespace topology of a side-by-side run: a switch namespace with
//! one bridge per segment, two directors with one interface on each
//! segment (`eth0`, `eth1`, ...), and optionally a client on segment 0.
//! Addresses come from 192.0.2.0/24 only. Everything is made through the
//! lab, so it is removed when the lab drops.

use std::process::Command;

use vrlb_tests::netns::{Lab, run};

/// The client's address on segment 0.
pub const CLIENT: &str = "192.0.2.100";

/// The namespaces and links of one topology.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The switch namespace.
    pub sw: String,
    /// The directors' namespaces.
    pub directors: [String; 2],
    /// The client's namespace, if there is one.
    pub client: Option<String>,
    /// Interface names inside each director (the same in both).
    pub ifaces: Vec<String>,
}

/// Director `d`'s address on segment `k`: 192.0.2.(10k + d + 1).
pub fn director_addr(d: usize, k: usize) -> String {
    format!("192.0.2.{}", 10 * k + d + 1)
}

impl Topology {
    /// Builds it; `prefix` (one or two characters) keeps the namespace
    /// names of several topologies in one lab apart.
    pub fn build(lab: &mut Lab, prefix: &str, segments: usize, client: bool) -> Topology {
        let sw = lab.netns(&format!("{prefix}s"));
        let directors = [
            lab.netns(&format!("{prefix}0")),
            lab.netns(&format!("{prefix}1")),
        ];
        let mut ifaces = Vec::new();
        for k in 0..segments {
            let br = format!("br{k}");
            lab.bridge(&sw, &br);
            let iface = format!("eth{k}");
            for (d, ns) in directors.iter().enumerate() {
                let port = port_name(d, k);
                lab.veth(ns, &iface, &sw, &port);
                run(&["ip", "-n", &sw, "link", "set", &port, "master", &br]);
                run(&[
                    "ip",
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{}/24", director_addr(d, k)),
                    "dev",
                    &iface,
                ]);
            }
            ifaces.push(iface);
        }
        let client = client.then(|| {
            let c = lab.netns(&format!("{prefix}c"));
            lab.veth(&c, "eth0", &sw, "cl0");
            run(&["ip", "-n", &sw, "link", "set", "cl0", "master", "br0"]);
            run(&[
                "ip",
                "-n",
                &c,
                "addr",
                "add",
                &format!("{CLIENT}/24"),
                "dev",
                "eth0",
            ]);
            c
        });
        Topology {
            sw,
            directors,
            client,
            ifaces,
        }
    }

    /// Cuts director `d` off segment 0 (its switch port down) or joins
    /// it again.
    pub fn link(&self, d: usize, up: bool) {
        run(&[
            "ip",
            "-n",
            &self.sw,
            "link",
            "set",
            &port_name(d, 0),
            if up { "up" } else { "down" },
        ]);
    }

    /// Removes `addr/32` from director `d`'s `eth0` if it is there (a
    /// crashed daemon leaves its VIP behind).
    pub fn drop_addr(&self, d: usize, addr: &str) {
        let _ = Command::new("ip")
            .args([
                "-n",
                &self.directors[d],
                "addr",
                "del",
                &format!("{addr}/32"),
                "dev",
                "eth0",
            ])
            .output();
    }
}

fn port_name(d: usize, k: usize) -> String {
    format!("d{d}p{k}")
}
