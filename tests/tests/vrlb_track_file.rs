//! `track_file` in a running `vrlb run`, with a second vrlb as the peer:
//!
//! - the master (priority 150) tracks a file with weight -60; writing 1
//!   into it drops its priority to 90, below the backup's 100, and the
//!   backup takes over; writing 0 brings 150 back and it preempts; a file
//!   replaced by a rename and a deleted file are seen too (inotify on the
//!   directory, as keepalived watches);
//! - `init_file` creates the file at start;
//! - a real server's `FILE_CHECK` adds the file's value times its weight
//!   to the server's weight, and a value whose product is -2147483647 or
//!   less takes the server down, as keepalived's check_file.c does.

use std::time::Duration;

use vrlb_tests::vrrp_lab::{Instance, Kind, Running, VrrpLab, counter, expect, log, state};

const LONG: Duration = Duration::from_secs(12);
const VIP: &str = "192.0.2.240";

fn is(d: &Running, want: &str) -> bool {
    state(d, "VI_1").as_deref() == Some(want)
}

fn base() -> Instance<'static> {
    Instance {
        name: "VI_1",
        vrid: 51,
        priority: 150,
        version: 2,
        advert_int: "1",
        password: None,
        vips: vec![format!("{VIP}/24")],
        nopreempt: false,
        unicast: None,
    }
}

#[test]
fn a_number_written_into_the_masters_tracked_file_moves_mastership_and_0_brings_it_back() {
    let Some(mut lab) = VrrpLab::new(&[]) else {
        return;
    };
    let file = lab.dir.path("prio");
    let block = base().conf(&lab.ifs[0].clone());
    let conf0 = format!(
        "track_file prio {{\n  file {file}\n  weight -60\n  init_file\n}}\n{}  track_file {{\n    prio\n  }}\n}}\n",
        block.strip_suffix("}\n").unwrap(),
        file = file.display(),
    );
    let d0 = lab.start(Kind::Vrlb, 0, &conf0);
    expect(LONG, "director 0 master at 150", &[&d0], || {
        is(&d0, "MASTER") && counter(&d0, "VI_1", "priority") == Some(150)
    });
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "0\n",
        "init_file wrote 0"
    );
    let c1 = Instance {
        priority: 100,
        ..base()
    };
    let d1 = lab.start(Kind::Vrlb, 1, &c1.conf(&lab.ifs[1].clone()));
    expect(LONG, "director 1 backup", &[&d0, &d1], || is(&d1, "BACKUP"));

    std::fs::write(&file, "1\n").unwrap();
    expect(LONG, "director 1 takes over", &[&d0, &d1], || {
        is(&d1, "MASTER") && is(&d0, "BACKUP")
    });
    expect(LONG, "director 0 at 90", &[&d0], || {
        counter(&d0, "VI_1", "priority") == Some(90)
    });
    assert!(lab.holds(1, VIP) && !lab.holds(0, VIP));
    let text = log(&d0);
    assert!(
        text.contains(&format!("track_file prio ({}): 1", file.display()))
            && text.contains("VI_1: effective priority 150 -> 90"),
        "{text}"
    );

    // 0, written by a rename: 150 again, and director 0 preempts.
    let tmp = lab.dir.path("prio.tmp");
    std::fs::write(&tmp, "0\n").unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    expect(LONG, "director 0 preempts", &[&d0, &d1], || {
        is(&d0, "MASTER") && is(&d1, "BACKUP")
    });
    expect(LONG, "director 0 at 150", &[&d0], || {
        counter(&d0, "VI_1", "priority") == Some(150)
    });

    // Deleted after 1: reads as 0, so nothing moves.
    std::fs::write(&file, "1\n").unwrap();
    expect(LONG, "director 1 takes over again", &[&d0, &d1], || {
        is(&d1, "MASTER")
    });
    std::fs::remove_file(&file).unwrap();
    expect(
        LONG,
        "director 0 back after the delete",
        &[&d0, &d1],
        || is(&d0, "MASTER") && is(&d1, "BACKUP"),
    );
    assert!(
        log(&d0).contains("the file is gone: reads as 0"),
        "{}",
        log(&d0)
    );
}

#[test]
fn file_check_moves_a_real_servers_weight_and_takes_it_down() {
    let Some(mut lab) = VrrpLab::new(&[]) else {
        return;
    };
    let file = lab.dir.path("rs-weight");
    std::fs::write(&file, "2\n").unwrap();
    let conf = format!(
        "track_file w {{\n  file {file}\n}}\n\
         virtual_server {VIP} 80 {{\n  lb_algo wrr\n  lb_kind DR\n  protocol TCP\n\
         \x20 real_server 192.0.2.100 80 {{\n    weight 3\n    FILE_CHECK {{\n      track_file w\n      weight 5\n    }}\n  }}\n}}\n",
        file = file.display(),
    );
    let d0 = lab.start(Kind::Vrlb, 0, &conf);
    let what = format!("track_file w ({})", file.display());
    // Read at start: 3 + 2 x 5.
    expect(LONG, "the value read at start", &[&d0], || {
        log(&d0).contains(&format!("{what}: 2"))
    });
    std::fs::write(&file, "4\n").unwrap();
    expect(LONG, "weight 13 -> 23", &[&d0], || {
        log(&d0).contains(&format!(
            "{what}: real server 192.0.2.100:80: weight 13 -> 23"
        ))
    });
    // 5 x -429496730 = -2147483650, at most -2147483647: the check fails.
    std::fs::write(&file, "-429496730\n").unwrap();
    expect(LONG, "the server goes down", &[&d0], || {
        log(&d0).contains("real server 192.0.2.100:80: down")
            && log(&d0).contains("real server 192.0.2.100:80: FILE_CHECK fails")
    });
    std::fs::write(&file, "0\n").unwrap();
    expect(LONG, "the server comes back", &[&d0], || {
        log(&d0).contains("real server 192.0.2.100:80: up")
    });
}
