//! Measurement 5: the core's criterion figures and the simulator's speed.
//! Runs every criterion bench of this crate (`benches/benches/*.rs`) in a
//! short mode, or only reads what an earlier `cargo bench` left in
//! `target/criterion`, and pairs each figure with the baseline measured
//! in the same group (the function named like a baseline below).
//!
//! Owns the criterion invocation and its JSON; never judges the numbers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// Function ids that name a group's baseline (measured in the same run),
/// the preferred one of a group first (read-only `get` before the
/// read-modify-write `get_mut`).
pub const BASELINES: [&str; 9] = [
    "linear_reference",
    "hashbrown_get",
    "hashbrown_get_x32",
    "hashbrown_get_mut",
    "hashbrown_get_mut_x32",
    "maglev_crate",
    "baseline_checksum_only",
    "journal_off",
    "classify_only",
];

/// One criterion estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// `group/function`.
    pub group: String,
    /// The function id.
    pub function: String,
    /// Median time per iteration, nanoseconds.
    pub median_ns: f64,
}

/// Everything this measurement found.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Every estimate, sorted by id.
    pub estimates: Vec<Estimate>,
    /// The simulator's own line (`sim: N events in ... = X events/s; ...`).
    pub sim_line: Option<String>,
    /// Events per second from that line.
    pub sim_events_per_s: Option<f64>,
}

impl Figures {
    /// The baseline of `e`'s group, unless `e` is it: the one with the
    /// same batch suffix (`_x32`) if there is one.
    pub fn baseline_of(&self, e: &Estimate) -> Option<&Estimate> {
        if BASELINES.contains(&e.function.as_str()) {
            return None;
        }
        let suffix = |f: &str| {
            f.rfind("_x")
                .map(|i| f[i..].to_string())
                .unwrap_or_default()
        };
        let mut candidates = self
            .estimates
            .iter()
            .filter(|b| b.group == e.group && BASELINES.contains(&b.function.as_str()));
        let mut all: Vec<&Estimate> = candidates.by_ref().collect();
        all.sort_by_key(|b| BASELINES.iter().position(|n| *n == b.function));
        all.iter()
            .find(|b| suffix(&b.function) == suffix(&e.function))
            .or_else(|| all.first())
            .copied()
    }
}

/// The bench targets of this crate (file stems of `benches/benches/*.rs`).
pub fn bench_names(crate_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(crate_dir.join("benches"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let p = e.path();
                    (p.extension()? == "rs").then(|| p.file_stem()?.to_str().map(str::to_string))?
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Runs `cargo bench` on every bench target with short criterion times,
/// echoing criterion's result lines through `progress`; returns its
/// stdout.
pub fn run_benches(
    workspace: &Path,
    crate_dir: &Path,
    quick: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["bench", "-p", "vrlb-benches"]);
    for b in bench_names(crate_dir) {
        cmd.args(["--bench", &b]);
    }
    cmd.arg("--");
    if quick {
        cmd.args([
            "--warm-up-time",
            "0.1",
            "--measurement-time",
            "0.2",
            "--sample-size",
            "10",
        ]);
    } else {
        cmd.args(["--warm-up-time", "1", "--measurement-time", "2"]);
    }
    progress(&format!("core      running {cmd:?}"));
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run cargo bench: {e}"))?;
    let mut out = String::new();
    if let Some(stdout) = child.stdout.take() {
        let mut current = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // criterion prints `ID` then `time: [...]`, sometimes on one line.
            if !line.starts_with(' ') && !line.trim().is_empty() && !line.contains("time:") {
                current = line.trim().to_string();
            }
            if let Some(i) = line.find("time:") {
                let id = line[..i].trim();
                let id = if id.is_empty() { current.as_str() } else { id };
                progress(&format!("core      {id:<60} {}", line[i..].trim()));
            } else if line.starts_with("sim:") {
                progress(&format!("core      {line}"));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    let status = child.wait().map_err(|e| format!("cargo bench: {e}"))?;
    if !status.success() {
        return Err(format!("cargo bench failed ({status})"));
    }
    Ok(out)
}

/// Parses the simulator bench's summary line.
pub fn parse_sim_line(stdout: &str) -> Option<(String, f64)> {
    let line = stdout.lines().find(|l| l.starts_with("sim: "))?;
    let before = line.split(" events/s").next()?;
    let rate = before.rsplit(' ').next()?.parse().ok()?;
    Some((line.to_string(), rate))
}

/// Reads `criterion/**/new/{benchmark,estimates}.json` under `dir`,
/// keeping those written at or after `since` (when given).
pub fn read_estimates(dir: &Path, since: Option<SystemTime>) -> Vec<Estimate> {
    let mut found = Vec::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            if p.file_name().is_some_and(|n| n == "new") {
                if let Some(est) = read_one(&p, since) {
                    found.push(est);
                }
            } else if p
                .file_name()
                .is_none_or(|n| n != "base" && n != "change" && n != "report")
            {
                stack.push(p);
            }
        }
    }
    found.sort_by(|a, b| (&a.group, &a.function).cmp(&(&b.group, &b.function)));
    found
}

fn read_one(new: &Path, since: Option<SystemTime>) -> Option<Estimate> {
    let est_path = new.join("estimates.json");
    if let Some(since) = since {
        let modified = std::fs::metadata(&est_path).ok()?.modified().ok()?;
        if modified < since {
            return None;
        }
    }
    let bench: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(new.join("benchmark.json")).ok()?).ok()?;
    let est: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(est_path).ok()?).ok()?;
    Some(Estimate {
        group: bench["group_id"].as_str()?.to_string(),
        function: bench["function_id"].as_str().unwrap_or("").to_string(),
        median_ns: est["median"]["point_estimate"].as_f64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_line_and_baseline_pairing() {
        let out = "noise\nsim: 1243221 events in 0.259 s = 4800000 events/s; one simulated hour in 0.259 s\n";
        let (line, rate) = parse_sim_line(out).unwrap();
        assert!(line.starts_with("sim: 1243221"));
        assert_eq!(rate, 4_800_000.0);
        assert_eq!(parse_sim_line("nothing"), None);

        let e = |g: &str, f: &str, ns: f64| Estimate {
            group: g.into(),
            function: f.into(),
            median_ns: ns,
        };
        let figures = Figures {
            estimates: vec![
                e("mh", "maglev_crate", 100.0),
                e("mh", "vrlb", 1.0),
                e("other", "x", 5.0),
                e("est", "hashbrown_get", 2.0),
                e("est", "hashbrown_get_x32", 64.0),
                e("est", "vrlb_classify_batch_x32", 128.0),
                e("est", "vrlb_classify", 4.0),
                e("est", "hashbrown_get_mut", 3.0),
                e("est", "hashbrown_get_mut_x32", 70.0),
            ],
            ..Figures::default()
        };
        assert_eq!(
            figures.baseline_of(&figures.estimates[5]).unwrap().function,
            "hashbrown_get_x32"
        );
        assert_eq!(
            figures.baseline_of(&figures.estimates[6]).unwrap().function,
            "hashbrown_get"
        );
        assert!(figures.baseline_of(&figures.estimates[4]).is_none());
        assert_eq!(
            figures
                .baseline_of(&figures.estimates[1])
                .unwrap()
                .median_ns,
            100.0
        );
        assert!(figures.baseline_of(&figures.estimates[0]).is_none());
        assert!(figures.baseline_of(&figures.estimates[2]).is_none());
        // The read-modify-write baselines are baselines, not vrlb rows.
        assert!(figures.baseline_of(&figures.estimates[7]).is_none());
        assert!(figures.baseline_of(&figures.estimates[8]).is_none());
    }

    #[test]
    fn reads_criterion_json_and_skips_old_results() {
        let dir = std::env::temp_dir().join(format!("vrlb-bench-crit-{}", std::process::id()));
        let new = dir.join("grp").join("fn").join("new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"grp","function_id":"fn","full_id":"grp/fn"}"#,
        )
        .unwrap();
        std::fs::write(
            new.join("estimates.json"),
            r#"{"mean":{"point_estimate":12.0},"median":{"point_estimate":11.5}}"#,
        )
        .unwrap();
        let all = read_estimates(&dir, None);
        assert_eq!(
            all,
            vec![Estimate {
                group: "grp".into(),
                function: "fn".into(),
                median_ns: 11.5
            }]
        );
        let future = SystemTime::now() + std::time::Duration::from_secs(3600);
        assert!(read_estimates(&dir, Some(future)).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
