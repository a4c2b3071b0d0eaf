//! Human-readable output: the demo's timeline and summary table, a run's
//! failure report, and the JSON trace.

use std::fmt::Write;

use crate::swarm::reproduce_command;
use crate::trace::Record;
use crate::world::Outcome;

/// Whether a traced event belongs on the demo's timeline.
fn notable(r: &Record) -> bool {
    [
        "crashes",
        "starts",
        "stops",
        "-> {b}",
        "marks server",
        "mode {b}",
        "VIOLATION",
        "pauses",
        "heal",
    ]
    .iter()
    .any(|k| r.what.contains(k))
}

/// The demo's timeline of notable events.
pub fn timeline(outcome: &Outcome) -> String {
    let mut s = String::new();
    for r in outcome.all.iter().filter(|r| notable(r)) {
        let _ = writeln!(s, "{}", describe(r));
    }
    s
}

/// A traced event in words.
pub fn describe(r: &Record) -> String {
    let t = format!("{:>9.3}s", r.time_us as f64 / 1e6);
    let text = match r.what {
        "director {a} -> {b} (0 INIT 1 BACKUP 2 MASTER 3 FAULT)" => {
            let state = ["INIT", "BACKUP", "MASTER", "FAULT"]
                .get(r.b as usize)
                .copied()
                .unwrap_or("?");
            format!("director {} is now {state}", r.a)
        }
        "director {a} marks server .{b} up/down" => {
            format!(
                "director {} marks real server .{} {}",
                r.a,
                r.b / 10,
                if r.b % 10 == 1 { "UP" } else { "DOWN" }
            )
        }
        "server {a} mode {b} (0 answer 1 refuse 2 hang 3 slow)" => {
            let mode = [
                "answers again",
                "refuses connections",
                "hangs",
                "answers slowly",
            ]
            .get(r.b as usize)
            .copied()
            .unwrap_or("?");
            format!("real server {} {mode}", r.a)
        }
        _ => r
            .to_string()
            .split_once("s  ")
            .map_or(String::new(), |(_, t)| t.to_string()),
    };
    format!("{t}  {text}")
}

/// The demo's summary table.
pub fn summary(title: &str, outcome: &Outcome, servers: &[std::net::Ipv4Addr]) -> String {
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
                servers.get(i).map_or("?".into(), |a| a.to_string())
            )
        );
    }
    let (kept, total) = outcome.persistence;
    let _ = writeln!(
        s,
        "  {:<34} {kept} of {total}",
        "persistent clients kept their server"
    );
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

/// What a failing run prints.
pub fn failure(outcome: &Outcome, reason: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "seed {}: {reason}", outcome.seed);
    let _ = writeln!(s, "last events:");
    for line in &outcome.tail {
        let _ = writeln!(s, "  {line}");
    }
    let _ = writeln!(s, "reproduce: {}", reproduce_command(outcome.seed));
    s
}

/// The trace as JSON lines.
pub fn json(outcome: &Outcome) -> String {
    let events: Vec<serde_json::Value> = outcome
        .all
        .iter()
        .map(|r| serde_json::json!({ "t_us": r.time_us, "event": r.what, "a": r.a, "b": r.b }))
        .collect();
    serde_json::json!({
        "seed": outcome.seed,
        "hash": format!("{:016x}", outcome.hash),
        "events": events,
        "served": outcome.served,
        "flows": { "opened": outcome.flows.0, "completed": outcome.flows.1, "lost": outcome.flows.2 },
        "failovers_us": outcome.failovers_us,
        "violation": outcome.violation.as_ref().map(|v| v.to_string()),
    })
    .to_string()
}
