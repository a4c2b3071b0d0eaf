//! Human-readable output: the demo's timeline and summary table, a run's
//! failure report (with the command that replays it), and the JSON trace.

use std::fmt::Write;

use crate::trace::Record;
use crate::world::Outcome;

/// The command that replays `outcome`'s run.
pub fn reproduce_command(outcome: &Outcome) -> String {
    let features = if cfg!(feature = "mutation") && outcome.replay.contains("--mutation") {
        " --features mutation"
    } else {
        ""
    };
    format!(
        "cargo run --release -p vrlb-sim{features} -- {}",
        outcome.replay
    )
}

/// Whether a traced event belongs on the demo's timeline.
fn notable(r: &Record) -> bool {
    [
        "crashes",
        "starts",
        "stops",
        "vrid/state",
        "marks server",
        "mode {b}",
        "VIOLATION",
        "pauses",
        "heal",
        "flood",
        "burst",
    ]
    .iter()
    .any(|k| r.what.contains(k))
}

/// The demo's timeline of notable events.
pub fn timeline(outcome: &Outcome) -> String {
    let mut s = String::new();
    for r in outcome.all.iter().filter(|r| notable(r)) {
        let _ = writeln!(s, "{}", describe(r, outcome));
    }
    s
}

fn director(outcome: &Outcome, d: u64) -> String {
    match outcome.director_addrs.get(d as usize) {
        Some(a) => format!("director {d} ({a})"),
        None => format!("director {d}"),
    }
}

fn server(outcome: &Outcome, s: u64) -> String {
    match outcome.server_addrs.get(s as usize) {
        Some(a) => format!("real server {a}"),
        None => format!("real server {s}"),
    }
}

/// A traced event in words.
pub fn describe(r: &Record, outcome: &Outcome) -> String {
    let t = format!("{:>9.3}s", r.time_us as f64 / 1e6);
    let text = match r.what {
        "director {a} vrid/state {b} (vrid*10 + 0 INIT 1 BACKUP 2 MASTER 3 FAULT)" => {
            let state = ["INIT", "BACKUP", "MASTER", "FAULT"]
                .get((r.b % 10) as usize)
                .copied()
                .unwrap_or("?");
            let code = r.b / 10;
            let vrid = if code >= 1000 {
                format!("VRID {} (IPv6)", code - 1000)
            } else {
                format!("VRID {code}")
            };
            format!("{} is now {state} of {vrid}", director(outcome, r.a))
        }
        "director {a} marks server {b} ((service*1000 + index)*10 + 1 up / 0 down)" => {
            let service = outcome
                .service_names
                .get((r.b / 10_000) as usize)
                .map_or(String::new(), |s| format!(" in {s}"));
            format!(
                "{} marks {} {}{service}",
                director(outcome, r.a),
                server(outcome, r.b / 10 % 1000),
                if r.b % 10 == 1 { "UP" } else { "DOWN" }
            )
        }
        "server {a} mode {b} (0 answer 1 refuse 2 hang 3 slow 4 bad status)" => {
            let mode = [
                "answers again",
                "refuses connections",
                "hangs",
                "answers slowly",
                "answers with errors",
            ]
            .get(r.b as usize)
            .copied()
            .unwrap_or("?");
            format!("{} {mode}", server(outcome, r.a))
        }
        "director {a} crashes" => format!("{} crashes", director(outcome, r.a)),
        "director {a} starts" => format!("{} starts", director(outcome, r.a)),
        "director {a} stops gracefully" => format!("{} stops gracefully", director(outcome, r.a)),
        _ => r
            .to_string()
            .split_once("s  ")
            .map_or(String::new(), |(_, t)| t.to_string()),
    };
    format!("{t}  {text}")
}

/// The demo's summary table.
pub fn summary(title: &str, outcome: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{title}");
    let _ = writeln!(
        s,
        "  {:<34} {}",
        "failovers (master lost -> master)",
        if outcome.failovers_us.is_empty() {
            "none".to_string()
        } else {
            outcome
                .failovers_us
                .iter()
                .map(|f| format!("{:.3}s", *f as f64 / 1e6))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    for (i, n) in outcome.served.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {:<34} {n}",
            format!(
                "requests answered by {}",
                outcome.server_addrs.get(i).map_or("?", |a| a.as_str())
            )
        );
    }
    let (kept, total) = outcome.persistence;
    if outcome.has_persistence {
        let _ = writeln!(
            s,
            "  {:<34} {kept} of {total}",
            "persistent clients kept their server"
        );
    } else {
        let _ = writeln!(s, "  {:<34} not configured", "persistence");
    }
    let (opened, completed, lost) = outcome.flows;
    let _ = writeln!(
        s,
        "  {:<34} {opened} opened, {completed} completed, {lost} lost",
        "flows"
    );
    if outcome.sync_messages > 0 {
        let _ = writeln!(
            s,
            "  {:<34} {} messages received, {} packets of synced flows kept their server",
            "connection sync", outcome.sync_messages, outcome.synced_kept
        );
    }
    let _ = writeln!(
        s,
        "  {:<34} {} ({} events)",
        "trace hash",
        format_args!("{:016x}", outcome.hash),
        outcome.events
    );
    match &outcome.violation {
        Some(v) => {
            let _ = writeln!(s, "  VIOLATION: {v}");
        }
        None => {
            let _ = writeln!(s, "  {:<34} none", "invariant violations");
        }
    }
    s
}

/// What a failing run prints: the seed, the invariant, the last events and
/// the command that replays it.
pub fn failure(outcome: &Outcome, reason: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "seed {}: {reason}", outcome.seed);
    let _ = writeln!(s, "last events:");
    for line in &outcome.tail {
        let _ = writeln!(s, "  {line}");
    }
    let _ = writeln!(s, "reproduce: {}", reproduce_command(outcome));
    s
}

/// A run as a JSON value: its seed, hash, events, figures and violation.
pub fn json_value(outcome: &Outcome) -> serde_json::Value {
    let events: Vec<serde_json::Value> = outcome
        .all
        .iter()
        .map(|r| serde_json::json!({ "t_us": r.time_us, "event": r.what, "a": r.a, "b": r.b }))
        .collect();
    serde_json::json!({
        "seed": outcome.seed,
        "hash": format!("{:016x}", outcome.hash),
        "replay": outcome.replay,
        "directors": outcome.director_addrs,
        "servers": outcome.server_addrs,
        "events": events,
        "served": outcome.served,
        "flows": { "opened": outcome.flows.0, "completed": outcome.flows.1, "lost": outcome.flows.2 },
        "failovers_us": outcome.failovers_us,
        "persistence": if outcome.has_persistence {
            serde_json::json!({ "kept": outcome.persistence.0, "of": outcome.persistence.1 })
        } else {
            serde_json::Value::Null
        },
        "violation": outcome.violation.as_ref().map(|v| serde_json::json!({
            "invariant": v.name,
            "exit": v.code,
            "at_us": v.at_us,
            "detail": v.detail,
        })),
        "reproduce": outcome.violation.as_ref().map(|_| reproduce_command(outcome)),
    })
}

/// The trace as JSON.
pub fn json(outcome: &Outcome) -> String {
    json_value(outcome).to_string()
}
