//! Reads `vrrp_track_process` blocks (keepalived.conf(5) "VRRP track
//! processes"): which processes to count and what quorum means up.

use heapless::Vec;

use super::diag::{Kind, Snippet};
use super::keywords::Block;
use super::model::{ParamMatch, TrackProcessConf};
use super::parser::{Parser, Res, Stmt};
use crate::time::Duration;

/// keepalived's longest `fork_delay` / `terminate_delay`: one hour.
const MAX_DELAY_US: u64 = 3_600_000_000;
/// keepalived's largest `quorum` / `quorum_max`.
const MAX_QUORUM: u64 = 65535;

impl<'t> Parser<'t, '_> {
    pub(super) fn vrrp_track_process(&mut self, head: &Stmt<'t>) -> Res<()> {
        let name = self.block_name(head, "a tracked process name")?;
        let mut p = TrackProcessConf {
            name,
            process: "",
            params: Vec::new(),
            param_match: ParamMatch::Ignore,
            full_command: false,
            weight: 0,
            reverse: false,
            quorum: 1,
            quorum_max: u32::MAX,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
            pos: head.pos(),
        };
        let mut quorum = None;
        let mut quorum_max = None;
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            match stmt.keyword() {
                "process" => {
                    self.no_block(&stmt)?;
                    p.process = self.arg(&stmt, 0, "a process name or path")?.text;
                    p.params.clear();
                    for tok in stmt.args.iter().skip(1) {
                        self.push(&mut p.params, tok.text, tok, "parameters of one process")?;
                    }
                    if !p.params.is_empty() && p.param_match == ParamMatch::Ignore {
                        p.param_match = ParamMatch::Exact;
                    }
                }
                "param_match" => {
                    self.no_block(&stmt)?;
                    p.param_match = match stmt.args.first().map(|t| t.text) {
                        None => ParamMatch::Exact,
                        Some("initial") => ParamMatch::Initial,
                        Some("partial") => ParamMatch::Partial,
                        Some(other) => {
                            return Err(self.error_at(
                                &stmt.args[0],
                                Kind::UnknownValue {
                                    keyword: Snippet::new("param_match"),
                                    value: Snippet::new(other),
                                    expected: "initial or partial (or nothing: exact)",
                                },
                            ));
                        }
                    };
                    self.extra_args(&stmt, 1);
                }
                "weight" => {
                    let (weight, reverse) =
                        self.weight_reverse(&stmt, (-254, 254, "-254..254"), false)?;
                    (p.weight, p.reverse) = (weight, reverse.unwrap_or(false));
                }
                "quorum" => {
                    quorum = Some((self.number(&stmt, 1, MAX_QUORUM, "1..65535")? as u32, stmt))
                }
                "quorum_max" => {
                    quorum_max = Some((self.number(&stmt, 0, MAX_QUORUM, "0..65535")? as u32, stmt))
                }
                "fork_delay" => p.fork_delay = self.process_delay(&stmt)?,
                "terminate_delay" => p.terminate_delay = self.process_delay(&stmt)?,
                "delay" => {
                    p.fork_delay = self.process_delay(&stmt)?;
                    p.terminate_delay = p.fork_delay;
                }
                "full_command" => p.full_command = self.flag(&stmt)?,
                _ => self.unknown(Block::TrackProcess, &stmt)?,
            }
        }
        if p.param_match != ParamMatch::Ignore {
            p.full_command = true;
        }
        self.process_quorum(&mut p, quorum, quorum_max)?;
        if p.process.is_empty() {
            return Err(self.diag(
                p.pos.line,
                p.pos.col,
                Kind::Missing {
                    block: Snippet::new(name),
                    keyword: "process",
                },
            ));
        }
        let result = self.sink.vrrp_track_process(&p);
        self.summary.items += 1;
        self.sink_result(p.pos, result)
    }

    fn process_delay(&mut self, stmt: &Stmt<'t>) -> Res<Duration> {
        self.seconds(stmt, 1, MAX_DELAY_US, "0.000001..3600 s")
    }

    /// keepalived's rules, in any order of the lines: `quorum_max 0`
    /// alone means up while no matching process runs; otherwise
    /// `quorum` may not exceed `quorum_max`.
    fn process_quorum(
        &mut self,
        p: &mut TrackProcessConf<'t>,
        quorum: Option<(u32, Stmt<'t>)>,
        quorum_max: Option<(u32, Stmt<'t>)>,
    ) -> Res<()> {
        if let Some((max, _)) = &quorum_max {
            p.quorum_max = *max;
        }
        match (quorum, quorum_max) {
            (Some((q, stmt)), Some((max, _))) if q > max => Err(self.error_at(
                &stmt.args[0],
                Kind::Invalid {
                    what: "quorum",
                    note: "is greater than quorum_max: no count of processes could be up",
                },
            )),
            (Some((q, _)), _) => {
                p.quorum = q;
                Ok(())
            }
            (None, Some((0, _))) => {
                p.quorum = 0;
                Ok(())
            }
            (None, _) => Ok(()),
        }
    }
}
