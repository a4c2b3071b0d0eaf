//! Reads how gratuitous ARPs and unsolicited NAs are spaced:
//! `vrrp_garp_interval` / `vrrp_gna_interval` in `global_defs` and
//! `garp_group` blocks.

use heapless::Vec;

use super::diag::{Kind, Snippet};
use super::keywords::Block;
use super::model::GarpGroupConf;
use super::parser::{Parser, Res, Stmt};
use crate::time::Duration;

/// keepalived's largest interval, 4294.967295 s (a 32-bit count of µs).
const MAX_INTERVAL_US: u64 = u32::MAX as u64;

impl<'t> Parser<'t, '_> {
    /// A burst interval in seconds (µs resolution). 0, which keepalived
    /// refuses, is its default: no delay.
    pub(super) fn burst_interval(&mut self, stmt: &Stmt<'t>) -> Res<Option<Duration>> {
        let d = self.seconds(stmt, 0, MAX_INTERVAL_US, "0..4294.967295 s")?;
        if d == Duration::ZERO {
            self.warn_at(
                &stmt.kw,
                Kind::Assumed {
                    keyword: Snippet::new(stmt.keyword()),
                    note: "0 means no delay (keepalived 2 refuses 0; leave the keyword out)",
                },
            );
            return Ok(None);
        }
        Ok(Some(d))
    }

    /// `garp_group { garp_interval S; gna_interval S; interface IF |
    /// interfaces { IF ... } }`.
    pub(super) fn garp_group(&mut self, head: &Stmt<'t>) -> Res<()> {
        self.require_block(head)?;
        let mut g = GarpGroupConf {
            garp_interval: None,
            gna_interval: None,
            interfaces: Vec::new(),
            pos: head.pos(),
        };
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            match stmt.keyword() {
                "garp_interval" => g.garp_interval = self.burst_interval(&stmt)?,
                "gna_interval" => g.gna_interval = self.burst_interval(&stmt)?,
                "interface" => {
                    let name = self.single(&stmt, "an interface name")?;
                    self.push(
                        &mut g.interfaces,
                        name.text,
                        &name,
                        "interfaces of a garp_group",
                    )?;
                }
                "interfaces" => {
                    self.require_block(&stmt)?;
                    while let Some(i) = self.next_stmt(Some(&stmt.kw))? {
                        self.no_block(&i)?;
                        self.extra_args(&i, 0);
                        self.push(
                            &mut g.interfaces,
                            i.keyword(),
                            &i.kw,
                            "interfaces of a garp_group",
                        )?;
                    }
                }
                _ => self.unknown(Block::GarpGroup, &stmt)?,
            }
        }
        if g.interfaces.is_empty() {
            return Err(self.diag(
                g.pos.line,
                g.pos.col,
                Kind::Missing {
                    block: Snippet::new("garp_group"),
                    keyword: "interface",
                },
            ));
        }
        let result = self.sink.garp_group(&g);
        self.summary.items += 1;
        self.sink_result(g.pos, result)
    }
}
