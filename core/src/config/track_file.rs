//! Reads `track_file` (and its deprecated spelling `vrrp_track_file`), an
//! instance's `track_file { NAME [weight W] [reverse|noreverse] }` entries
//! and a real server's `FILE_CHECK { track_file NAME; weight W [reverse] }`
//! (keepalived.conf(5) "Track files"; keepalived's track_file.c and
//! check_file.c). Names are resolved when the node is built.

use heapless::Vec;

use super::diag::{Kind, Snippet};
use super::keywords::Block;
use super::model::{InitFile, MAX_FILE_CHECKS, TrackConf, TrackFileConf};
use super::parser::{Parser, Res, Stmt};
use super::value;
use crate::track_file::FILE_CHECK_WEIGHT_MAX;

/// A track_file's `weight`: keepalived 2.2.7 takes -254..254 (track_file.c
/// `track_file_weight_handler`), though keepalived.conf(5) says
/// -2147483647..2147483647.
const FILE_WEIGHT_RANGE: (i64, i64, &str) = (-254, 254, "-254..254");
/// A `FILE_CHECK`'s weight: keepalived's `IPVS_WEIGHT_MAX` either way.
const CHECK_WEIGHT_RANGE: (i64, i64, &str) = (
    -(FILE_CHECK_WEIGHT_MAX as i64),
    FILE_CHECK_WEIGHT_MAX as i64,
    "-2147483647..2147483647",
);

impl<'t> Parser<'t, '_> {
    /// `track_file NAME { file PATH; weight W [reverse]; init_file [VALUE]
    /// [overwrite] }`. Without `file` the block is ignored (with a
    /// warning), as keepalived does, so what tracks it is warned about.
    pub(super) fn track_file(&mut self, head: &Stmt<'t>) -> Res<()> {
        if head.keyword() == "vrrp_track_file" {
            self.warn_at(
                &head.kw,
                Kind::Deprecated {
                    keyword: Snippet::new("vrrp_track_file"),
                    instead: "track_file",
                },
            );
        }
        let name = self.arg(head, 0, "a track_file name")?.text;
        self.require_block(head)?;
        self.extra_args(head, 1);
        let mut f = TrackFileConf {
            name,
            path: "",
            weight: 1,
            reverse: false,
            init: None,
            pos: head.pos(),
        };
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            match stmt.keyword() {
                "file" => {
                    let tok = self.single(&stmt, "a file path")?;
                    if !f.path.is_empty() {
                        // keepalived keeps the first and reports the second.
                        self.warn_at(
                            &tok,
                            Kind::Assumed {
                                keyword: Snippet::new("file"),
                                note: "given twice: the first one is used, as keepalived does",
                            },
                        );
                        continue;
                    }
                    f.path = self.plain_text("file", &tok, "a file path")?;
                }
                "weight" => {
                    let (weight, reverse) = self.weight_reverse(&stmt, FILE_WEIGHT_RANGE, false)?;
                    f.weight = weight;
                    f.reverse = reverse.unwrap_or(false);
                }
                "init_file" => f.init = Some(self.init_file(&stmt)?),
                _ => self.unknown(Block::TrackFile, &stmt)?,
            }
        }
        if f.path.is_empty() {
            self.warn(
                f.pos.line,
                f.pos.col,
                Kind::Assumed {
                    keyword: Snippet::new(name),
                    note: "no 'file' line: the track_file is ignored, as keepalived does",
                },
            );
            return Ok(());
        }
        let result = self.sink.track_file(&f);
        self.summary.items += 1;
        self.sink_result(f.pos, result)
    }

    /// `weight W [reverse]` (and `noreverse` where `noreverse` is true):
    /// a tracked block's own weight, or a `FILE_CHECK`'s.
    pub(super) fn weight_reverse(
        &mut self,
        stmt: &Stmt<'t>,
        (min, max, range): (i64, i64, &'static str),
        noreverse: bool,
    ) -> Res<(i32, Option<bool>)> {
        self.no_block(stmt)?;
        let tok = self.arg(stmt, 0, "a weight")?;
        let weight = self.signed_token(stmt, &tok, min, max, range)? as i32;
        let reverse = match stmt.args.get(1) {
            None => None,
            Some(t) if t.text == "reverse" => Some(true),
            Some(t) if noreverse && t.text == "noreverse" => Some(false),
            Some(t) => {
                return Err(self.error_at(
                    t,
                    Kind::UnknownValue {
                        keyword: Snippet::new("weight"),
                        value: Snippet::new(t.text),
                        expected: if noreverse {
                            "reverse, noreverse"
                        } else {
                            "reverse"
                        },
                    },
                ));
            }
        };
        self.extra_args(stmt, 2);
        Ok((weight, reverse))
    }

    /// `init_file [VALUE] [overwrite]`, in either order.
    fn init_file(&mut self, stmt: &Stmt<'t>) -> Res<InitFile> {
        self.no_block(stmt)?;
        let mut init = InitFile {
            value: 0,
            overwrite: false,
        };
        for tok in stmt.args.iter() {
            if tok.text == "overwrite" {
                init.overwrite = true;
                continue;
            }
            let v = value::int(tok.text)
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| self.expected_in("init_file", tok, "a number or overwrite"))?;
            if !(-254..=254).contains(&v) {
                // keepalived writes it anyway, with this warning.
                self.warn_at(
                    tok,
                    Kind::Assumed {
                        keyword: Snippet::new("init_file"),
                        note: "a value outside -254..254 is written, though no VRRP priority can use it whole",
                    },
                );
            }
            init.value = v;
        }
        Ok(init)
    }

    /// A real server's `FILE_CHECK { track_file NAME; weight W [reverse] }`.
    /// Without `track_file` it is ignored (with a warning), as keepalived
    /// does; weight 0 or none takes the track_file's weight and reverse
    /// (check_file.c `file_end_handler`).
    pub(super) fn file_check(
        &mut self,
        head: &Stmt<'t>,
        checks: &mut Vec<TrackConf<'t>, MAX_FILE_CHECKS>,
    ) -> Res<()> {
        self.require_block(head)?;
        self.extra_args(head, 0);
        let mut name: Option<&'t str> = None;
        let mut weight = None;
        let mut reverse = None;
        while let Some(stmt) = self.next_stmt(Some(&head.kw))? {
            match stmt.keyword() {
                "track_file" => name = Some(self.single(&stmt, "a track_file name")?.text),
                "weight" => {
                    let (w, r) = self.weight_reverse(&stmt, CHECK_WEIGHT_RANGE, true)?;
                    if w == 0 {
                        self.warn_at(
                            &stmt.kw,
                            Kind::Assumed {
                                keyword: Snippet::new("weight"),
                                note: "0 means the track_file's own weight and reverse, as keepalived takes it",
                            },
                        );
                        weight = None;
                        reverse = None;
                    } else {
                        weight = Some(w);
                        reverse = Some(r.unwrap_or(false));
                    }
                }
                _ => self.unknown(Block::FileCheck, &stmt)?,
            }
        }
        let Some(name) = name else {
            self.warn_at(
                &head.kw,
                Kind::Assumed {
                    keyword: Snippet::new("FILE_CHECK"),
                    note: "has no track_file: this checker is ignored",
                },
            );
            return Ok(());
        };
        let check = TrackConf {
            name,
            weight,
            reverse,
            pos: head.pos(),
        };
        self.push(checks, check, &head.kw, "FILE_CHECKs on one real server")
    }
}
