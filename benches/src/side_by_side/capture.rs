//! Where a failover's time goes: a capture on the client's switch port
//! (tcpdump in the switch namespace, so every frame the client sees or
//! sends is timed on one clock), read back with tshark and cut into the
//! steps between the signal and the first answer: the old master's
//! priority-0 advert, the new master's first advert, its gratuitous ARP,
//! and the probe answered.
//!
//! Owns the tcpdump process and the parsing of tshark's field output;
//! trial times come from `failover`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vrlb_tests::netns::{Lab, have};

/// A capture running on one switch port.
pub struct Capture {
    pid: u32,
    /// The pcap file.
    pub file: PathBuf,
}

/// What tcpdump keeps: VRRP, ARP and the echo service.
const FILTER: &str = "ip proto 112 or arp or udp port 7007";

impl Capture {
    /// Whether tcpdump and tshark are installed (without them the run
    /// goes on, with no breakdown).
    pub fn available() -> bool {
        have("tcpdump") && have("tshark")
    }

    /// Starts tcpdump on `iface` in `ns`, writing `file`; returns once it
    /// listens (or after 5 s, with an error).
    pub fn start(lab: &mut Lab, ns: &str, iface: &str, file: &Path) -> Result<Capture, String> {
        let log = file.with_extension("tcpdump.log");
        let file_s = file.display().to_string();
        let pid = lab.spawn(
            ns,
            &[
                "tcpdump",
                "-i",
                iface,
                "-n",
                "-U",
                "--time-stamp-precision=nano",
                "-w",
                &file_s,
                FILTER,
            ],
            &log,
        );
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("listening on") {
                return Ok(Capture {
                    pid,
                    file: file.to_path_buf(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        lab.signal(pid, "KILL");
        Err(format!("tcpdump did not start (see {})", log.display()))
    }

    /// Stops it (SIGINT, so the file is flushed) and reads the frames back.
    pub fn finish(self, lab: &mut Lab) -> Result<Vec<Frame>, String> {
        lab.signal(self.pid, "INT");
        read(&self.file)
    }
}

/// One captured frame, as far as the breakdown cares.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Capture time, seconds since the epoch.
    pub t: f64,
    /// What it is.
    pub kind: FrameKind,
}

/// The frames the breakdown looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameKind {
    /// A VRRP advert from `src` (Ethernet source `mac`).
    Advert {
        /// IP source.
        src: Ipv4Addr,
        /// Ethernet source.
        mac: String,
        /// Advertised priority.
        prio: u8,
    },
    /// An ARP whose sender protocol address is `sender` (a gratuitous ARP
    /// when it is the VIP), from Ethernet source `mac`.
    Arp {
        /// Sender protocol address.
        sender: Ipv4Addr,
        /// Ethernet source.
        mac: String,
    },
    /// A probe from the client to the echo port.
    Probe,
    /// An answer from the echo port.
    Answer,
}

fn read(file: &Path) -> Result<Vec<Frame>, String> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=,", "-E", "occurrence=f"])
        .args(["-e", "frame.time_epoch", "-e", "eth.src", "-e", "ip.src"])
        .args(["-e", "vrrp.prio", "-e", "arp.src.proto_ipv4"])
        .args(["-e", "udp.srcport", "-e", "udp.dstport"])
        .output()
        .map_err(|e| format!("tshark: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tshark -r {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse(&String::from_utf8_lossy(&out.stdout)))
}

/// Frames from tshark's `-T fields -E separator=,` output of the fields
/// [`read`] asks for; lines that are none of the kinds are skipped.
pub fn parse(text: &str) -> Vec<Frame> {
    let mut frames = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let [t, mac, ip_src, prio, arp_src, sport, dport] = f[..] else {
            continue;
        };
        let Ok(t) = t.parse::<f64>() else {
            continue;
        };
        let kind = if let (Ok(src), Ok(prio)) = (ip_src.parse(), prio.parse()) {
            FrameKind::Advert {
                src,
                mac: mac.into(),
                prio,
            }
        } else if let Ok(sender) = arp_src.parse() {
            FrameKind::Arp {
                sender,
                mac: mac.into(),
            }
        } else if dport == "7007" {
            FrameKind::Probe
        } else if sport == "7007" {
            FrameKind::Answer
        } else {
            continue;
        };
        frames.push(Frame { t, kind });
    }
    frames
}

/// Seconds since the epoch.
pub fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// One trial's steps, each from the previous one (`None`: not seen).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Steps {
    /// Signal to the old master's priority-0 advert (graceful stops).
    pub to_resign: Option<Duration>,
    /// To the new master's first advert: from the priority-0 advert, or
    /// from the signal when there was none (a crash).
    pub to_takeover: Option<Duration>,
    /// From that advert to its gratuitous ARP for the VIP.
    pub to_garp: Option<Duration>,
    /// From the gratuitous ARP to the first answer the client got.
    pub to_answer: Option<Duration>,
    /// Signal to the first answer, on the capture's clock.
    pub total: Option<Duration>,
}

/// One trial as the harness saw it.
#[derive(Debug, Clone, Copy)]
pub struct Trial {
    /// When the signal was sent, epoch seconds.
    pub t0: f64,
    /// The outage the prober measured: frames after `t0 + outage` and a
    /// margin are not looked at.
    pub outage: Duration,
    /// SIGTERM (a priority-0 advert is looked for) rather than SIGKILL.
    pub graceful: bool,
    /// The old master's address.
    pub old: Ipv4Addr,
    /// The new master's address.
    pub new: Ipv4Addr,
}

/// How far past the prober's answer the capture is read (the two clocks
/// differ by the scheduling of one thread).
const MARGIN: Duration = Duration::from_millis(5);

/// The steps of `trial`, `vip` being the VIP.
pub fn steps(frames: &[Frame], trial: &Trial, vip: Ipv4Addr) -> Steps {
    let t0 = trial.t0;
    let (old, new) = (trial.old, trial.new);
    let end = t0 + (trial.outage + MARGIN).as_secs_f64();
    let window = || frames.iter().filter(move |f| f.t >= t0 && f.t <= end);
    let resign = window()
        .filter(|_| trial.graceful)
        .find(|f| matches!(&f.kind, FrameKind::Advert { src, prio: 0, .. } if *src == old))
        .map(|f| f.t);
    let takeover = window().find_map(|f| match &f.kind {
        FrameKind::Advert { src, prio, mac } if *src == new && *prio > 0 => Some((f.t, mac)),
        _ => None,
    });
    let garp = takeover.and_then(|(_, new_mac)| {
        window()
            .find(|f| {
                matches!(&f.kind, FrameKind::Arp { sender, mac } if *sender == vip && mac == new_mac)
            })
            .map(|f| f.t)
    });
    let answer = window().find(|f| f.kind == FrameKind::Answer).map(|f| f.t);
    let gap = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b >= a => Some(Duration::from_secs_f64(b - a)),
        _ => None,
    };
    let takeover_t = takeover.map(|(t, _)| t);
    Steps {
        to_resign: gap(Some(t0), resign),
        to_takeover: gap(resign.or(Some(t0)), takeover_t),
        to_garp: gap(takeover_t, garp),
        to_answer: gap(garp, answer),
        total: gap(Some(t0), answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const NEW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 240);

    #[test]
    fn tshark_fields_become_frames() {
        let text = "\
100.000100,aa:aa:aa:aa:aa:01,192.0.2.1,100,,,\n\
100.000200,02:00:00:00:00:0c,192.0.2.100,,,40000,7007\n\
100.000300,aa:aa:aa:aa:aa:02,,,192.0.2.240,,\n\
100.000400,aa:aa:aa:aa:aa:02,192.0.2.2,,,7007,40000\n\
100.000500,02:00:00:00:00:0c,fe80::1,,,,\n\
not,a,frame,,,,\n";
        let frames = parse(text);
        assert_eq!(frames.len(), 4, "{frames:?}");
        assert_eq!(
            frames[0].kind,
            FrameKind::Advert {
                src: OLD,
                mac: "aa:aa:aa:aa:aa:01".into(),
                prio: 100
            }
        );
        assert_eq!(frames[1].kind, FrameKind::Probe);
        assert_eq!(
            frames[2].kind,
            FrameKind::Arp {
                sender: VIP,
                mac: "aa:aa:aa:aa:aa:02".into()
            }
        );
        assert_eq!(frames[3].kind, FrameKind::Answer);
    }

    fn advert(t: f64, src: Ipv4Addr, prio: u8) -> Frame {
        let mac = if src == OLD { "m:old" } else { "m:new" };
        Frame {
            t,
            kind: FrameKind::Advert {
                src,
                mac: mac.into(),
                prio,
            },
        }
    }

    fn ms(x: f64) -> Option<Duration> {
        Some(Duration::from_secs_f64(x / 1e3))
    }

    fn trial(t0: f64, outage_ms: f64, graceful: bool) -> Trial {
        Trial {
            t0,
            outage: Duration::from_secs_f64(outage_ms / 1e3),
            graceful,
            old: OLD,
            new: NEW,
        }
    }

    fn close(a: Option<Duration>, b: Option<Duration>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => a.abs_diff(b) < Duration::from_micros(2),
            (None, None) => true,
            _ => false,
        }
    }

    #[test]
    fn a_graceful_trial_is_cut_into_its_steps() {
        let arp = |t: f64, mac: &str| Frame {
            t,
            kind: FrameKind::Arp {
                sender: VIP,
                mac: mac.into(),
            },
        };
        let frames = vec![
            // Before the signal: ignored.
            advert(9.990, OLD, 100),
            Frame {
                t: 9.999,
                kind: FrameKind::Answer,
            },
            advert(10.0004, OLD, 0),
            // The old master's own GARP (an earlier takeover) does not count.
            arp(10.0005, "m:old"),
            advert(10.0068, NEW, 100),
            arp(10.0071, "m:new"),
            Frame {
                t: 10.0074,
                kind: FrameKind::Answer,
            },
        ];
        let s = steps(&frames, &trial(10.0, 8.0, true), VIP);
        assert!(close(s.to_resign, ms(0.4)), "{s:?}");
        assert!(close(s.to_takeover, ms(6.4)), "{s:?}");
        assert!(close(s.to_garp, ms(0.3)), "{s:?}");
        assert!(close(s.to_answer, ms(0.3)), "{s:?}");
        assert!(close(s.total, ms(7.4)), "{s:?}");
    }

    #[test]
    fn a_crash_counts_the_takeover_from_the_signal_and_missing_steps_stay_none() {
        // A priority-0 advert after a crash is a later trial's.
        let frames = vec![advert(20.0005, OLD, 0), advert(20.0301, NEW, 100)];
        let s = steps(&frames, &trial(20.0, 31.0, false), VIP);
        assert_eq!(s.to_resign, None);
        assert!(close(s.to_takeover, ms(30.1)), "{s:?}");
        assert_eq!((s.to_garp, s.to_answer, s.total), (None, None, None));
        // Past the outage and its margin: not looked at.
        let s = steps(&frames, &trial(20.0, 20.0, false), VIP);
        assert_eq!(s, Steps::default());
    }
}
