//! E-mail alerts from a running `vrlb run`, received by a small SMTP sink
//! in the client namespace: with `smtp_alert` in global_defs, an instance
//! mails keepalived's alert on entering BACKUP, MASTER and on stopping,
//! each once, and so does its sync group once all members are there (and
//! the group's `notify` script gets `GROUP NAME STATE 0`); a real server
//! whose TCP_CHECK fails mails its DOWN alert, and its virtual server,
//! left without quorum, its own; all from
//! `notification_email_from` to every `notification_email` address,
//! `[router_id]` first in the subject.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vrlb_tests::netns::in_netns;
use vrlb_tests::vrrp_lab::{Instance, Kind, VrrpLab, expect, log, state};

const SINK: &str = "192.0.2.100:2525";
const LONG: Duration = Duration::from_secs(15);

/// One message the sink accepted: the envelope and the text.
#[derive(Debug, Clone)]
struct Mail {
    helo: String,
    rcpt: Vec<String>,
    text: String,
}

impl Mail {
    /// The subject, unfolded (RFC 5322 2.2.3: a long one spans lines).
    fn subject(&self) -> String {
        self.text
            .replace("\r\n ", " ")
            .lines()
            .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
            .unwrap_or_default()
    }
}

/// Accepts SMTP on `listener` until `stop`, keeping every message.
fn sink(listener: TcpListener, stop: Arc<AtomicBool>, mails: Arc<Mutex<Vec<Mail>>>) {
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                if let Some(m) = session(stream) {
                    mails.lock().unwrap().push(m);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// One SMTP session: greets, says yes to everything, keeps the message.
fn session(stream: TcpStream) -> Option<Mail> {
    let mut out = stream.try_clone().ok()?;
    let mut input = BufReader::new(stream);
    let mut mail = Mail {
        helo: String::new(),
        rcpt: Vec::new(),
        text: String::new(),
    };
    out.write_all(b"220 sink.example ESMTP\r\n").ok()?;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            mail.helo = cmd;
            out.write_all(b"250 sink.example\r\n").ok()?;
        } else if let Some(to) = upper.strip_prefix("RCPT TO:") {
            mail.rcpt.push(to.trim().to_ascii_lowercase());
            out.write_all(b"250 ok\r\n").ok()?;
        } else if upper == "DATA" {
            out.write_all(b"354 go on\r\n").ok()?;
            loop {
                line.clear();
                if input.read_line(&mut line).ok()? == 0 {
                    return None;
                }
                if line == ".\r\n" {
                    break;
                }
                mail.text.push_str(&line);
            }
            out.write_all(b"250 queued\r\n").ok()?;
        } else if upper == "QUIT" {
            out.write_all(b"221 bye\r\n").ok()?;
            return Some(mail);
        } else {
            out.write_all(b"250 ok\r\n").ok()?;
        }
    }
}

#[test]
fn state_changes_a_failing_real_server_and_the_stop_are_mailed_once_each() {
    let Some(mut lab) = VrrpLab::new(&[]) else {
        return;
    };
    let listener = in_netns(&lab.client, || TcpListener::bind(SINK).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let mails = Arc::new(Mutex::new(Vec::new()));
    let server = {
        let (stop, mails) = (stop.clone(), mails.clone());
        std::thread::spawn(move || sink(listener, stop, mails))
    };
    let instance = Instance {
        name: "VI_1",
        vrid: 51,
        priority: 150,
        version: 2,
        advert_int: "1",
        password: None,
        vips: vec!["192.0.2.240/24".into()],
        nopreempt: false,
        unicast: None,
    };
    let notes = lab.dir.path("group-notes.txt");
    let note = lab.dir.path("note.sh");
    std::fs::write(
        &note,
        format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}\n", notes.display()),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&note, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let second = Instance {
        name: "VI_2",
        vrid: 52,
        vips: vec!["192.0.2.241/24".into()],
        ..instance.clone()
    };
    // Nothing listens on 192.0.2.100:8081: its first check fails.
    let conf = format!(
        "global_defs {{
  router_id LB1
  script_user root
  notification_email {{
    ops@example.com \"On call <oncall@example.com>\"
  }}
  notification_email_from vrlb@example.com
  smtp_server 192.0.2.100 2525
  smtp_helo_name lb1.example.com
  smtp_connect_timeout 5
  smtp_alert
}}
{}{}
vrrp_sync_group G1 {{
  group {{
    VI_1
    VI_2
  }}
  notify {}
}}
virtual_server 192.0.2.240 80 {{
  delay_loop 1
  lb_algo wlc
  lb_kind DR
  protocol TCP
  real_server 192.0.2.100 8081 {{
    TCP_CHECK {{
      connect_timeout 1
    }}
  }}
}}
",
        instance.conf(&lab.ifs[0].clone()),
        second.conf(&lab.ifs[0].clone()),
        note.display()
    );
    let d0 = lab.start(Kind::Vrlb, 0, &conf);
    let subjects = || -> Vec<String> { mails.lock().unwrap().iter().map(Mail::subject).collect() };
    let master = "[LB1] VRRP Instance VI_1 - Entering MASTER state";
    let backup = "[LB1] VRRP Instance VI_1 - Entering BACKUP state";
    let down = "[LB1] Realserver 192.0.2.100:8081 of virtual server 192.0.2.240:80 - DOWN";
    let quorum = "[LB1] Virtualserver 192.0.2.240:80 - DOWN";
    let group_master = "[LB1] VRRP Group G1 - Entering MASTER state";
    let group_backup = "[LB1] VRRP Group G1 - Entering BACKUP state";
    let all = [master, backup, down, quorum, group_master, group_backup];
    expect(
        LONG,
        "instance, group and real server alerts",
        &[&d0],
        || {
            let s = subjects();
            all.iter().all(|w| s.iter().any(|x| x == w))
        },
    );
    assert_eq!(state(&d0, "VI_1").as_deref(), Some("MASTER"));
    let s = subjects();
    let at = |w: &str| s.iter().position(|x| x == w).unwrap();
    assert!(at(backup) < at(master), "{s:?}");
    assert!(at(group_backup) < at(group_master), "{s:?}");
    let group_notes = || std::fs::read_to_string(&notes).unwrap_or_default();
    expect(LONG, "the group's notify script", &[&d0], || {
        group_notes().contains("GROUP G1 MASTER 0\n")
    });
    assert!(
        group_notes().starts_with("GROUP G1 BACKUP 0\n"),
        "{}",
        group_notes()
    );
    {
        let all = mails.lock().unwrap();
        let m = &all[at(master)];
        assert_eq!(m.helo, "EHLO lb1.example.com", "{m:?}");
        assert_eq!(
            m.rcpt,
            ["<ops@example.com>", "<oncall@example.com>"],
            "{m:?}"
        );
        assert!(m.text.contains("From: vrlb@example.com\r\n"), "{}", m.text);
        assert!(
            m.text
                .contains("=> VRRP Instance is now owning VRRP VIPs <="),
            "{}",
            m.text
        );
        let d = &all[at(down)];
        assert!(
            d.text.contains("=> CHECK failed on service <="),
            "{}",
            d.text
        );
        let q = &all[at(quorum)];
        assert!(q.text.contains("=> Lost quorum <="), "{}", q.text);
    }

    lab.stop(&d0);
    expect(LONG, "the stopping alerts", &[&d0], || {
        let s = subjects();
        [
            "[LB1] VRRP Instance VI_1 - Stopping",
            "[LB1] VRRP Group G1 - Stopping",
        ]
        .iter()
        .all(|w| s.iter().any(|x| x == w))
    });
    let s = subjects();
    for w in all {
        assert_eq!(
            s.iter().filter(|x| *x == w).count(),
            1,
            "{w} once: {s:?}\n{}",
            log(&d0)
        );
    }
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
}
