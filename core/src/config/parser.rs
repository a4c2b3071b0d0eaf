//! The statement reader and the top level: turns tokens into statements
//! (a keyword, its arguments, and whether a block follows), dispatches
//! top-level blocks, and follows `include`. The blocks themselves are read
//! in `global.rs`, `vrrp.rs`, `process.rs`, `lvs.rs` and the others.

use heapless::Vec;

use super::diag::{Diagnostic, Kind, Snippet};
use super::keywords::{Block, suggest};
use super::lexer::{LexNote, Token, TokenKind};
use super::model::{Pos, RunAs};
use super::subst::Source;
use super::{Includer, Options, Sink, Summary};

/// Most arguments on one line.
pub const MAX_ARGS: usize = 32;
/// Deepest `include` nesting.
pub const MAX_INCLUDE_DEPTH: u8 = 8;

/// A keyword, its arguments on the same line, and whether a `{` follows
/// (on the same line or the next one).
#[derive(Debug, Clone)]
pub(super) struct Stmt<'t> {
    pub kw: Token<'t>,
    pub args: Vec<Token<'t>, MAX_ARGS>,
    pub block: bool,
}

impl<'t> Stmt<'t> {
    pub fn keyword(&self) -> &'t str {
        self.kw.text
    }
    pub fn pos(&self) -> Pos {
        Pos {
            line: self.kw.line,
            col: self.kw.col,
        }
    }
}

/// Parses one file; recursion into includes creates a new one.
pub(super) struct Parser<'t, 's> {
    pub file: &'t str,
    pub lx: Source<'t, 's>,
    pub sink: &'s mut dyn Sink,
    pub includer: &'s mut dyn Includer,
    pub options: &'s Options<'s>,
    pub summary: &'s mut Summary,
    pub depth: u8,
}

pub(super) type Res<T> = Result<T, Diagnostic>;

impl<'t, 's> Parser<'t, 's> {
    pub fn diag(&self, line: u32, col: u32, kind: Kind) -> Diagnostic {
        Diagnostic::new(self.file, line, col, kind)
    }

    pub fn error_at(&self, tok: &Token<'_>, kind: Kind) -> Diagnostic {
        Diagnostic::new(tok.file.unwrap_or(self.file), tok.line, tok.col, kind)
    }

    pub fn warn(&mut self, line: u32, col: u32, kind: Kind) {
        let d = self.diag(line, col, kind);
        self.summary.warnings += 1;
        self.sink.diagnostic(&d);
    }

    pub fn warn_at(&mut self, tok: &Token<'_>, kind: Kind) {
        let d = self.error_at(tok, kind);
        self.summary.warnings += 1;
        self.sink.diagnostic(&d);
    }

    fn flush_notes(&mut self) {
        while let Some((note, line, col)) = self.lx.take_note() {
            let kind = match note {
                LexNote::UnicodeSpace => Kind::UnicodeSpace,
                LexNote::TrailingSemicolon => Kind::TrailingSemicolon,
                LexNote::UnterminatedQuote => Kind::UnterminatedQuote,
                LexNote::ConditionalSkipped => Kind::ConditionalSkipped,
            };
            self.warn(line, col, kind);
        }
    }

    /// The next token, parameters substituted.
    fn token(&mut self) -> Res<Token<'t>> {
        self.lx
            .next_token()
            .map_err(|(tok, kind)| self.error_at(&tok, kind))
    }

    /// The next statement of the current block, or `None` at its `}` (or
    /// at the end of the text, which `closing` turns into an error when a
    /// block is open).
    pub fn next_stmt(&mut self, closing: Option<&Token<'_>>) -> Res<Option<Stmt<'t>>> {
        loop {
            let tok = self.token()?;
            self.flush_notes();
            match tok.kind {
                TokenKind::Newline => continue,
                TokenKind::End => {
                    return match closing {
                        Some(open) => Err(self.error_at(
                            open,
                            Kind::UnclosedBlock {
                                keyword: Snippet::new(open.text),
                            },
                        )),
                        None => Ok(None),
                    };
                }
                TokenKind::Close => {
                    if closing.is_some() {
                        return Ok(None);
                    }
                    self.warn_at(&tok, Kind::StrayCloseBrace);
                    continue;
                }
                TokenKind::Open => {
                    // A block with no keyword: skip it whole.
                    self.warn_at(
                        &tok,
                        Kind::UnexpectedBlock {
                            keyword: Snippet::new("{"),
                        },
                    );
                    self.skip_block(&tok)?;
                    continue;
                }
                TokenKind::Word | TokenKind::Quoted => {
                    let stmt = self.finish_stmt(tok)?;
                    // keepalived reads an include anywhere: inside a block
                    // its files are read in place.
                    if closing.is_some() && stmt.keyword() == "include" {
                        self.include_here(&stmt)?;
                        continue;
                    }
                    return Ok(Some(stmt));
                }
            }
        }
    }

    fn finish_stmt(&mut self, kw: Token<'t>) -> Res<Stmt<'t>> {
        let mut stmt = Stmt {
            kw,
            args: Vec::new(),
            block: false,
        };
        loop {
            let mark = self.lx.mark();
            let tok = self.token()?;
            self.flush_notes();
            match tok.kind {
                TokenKind::Word | TokenKind::Quoted => {
                    if stmt.args.push(tok).is_err() {
                        return Err(self.error_at(
                            &tok,
                            Kind::TooMany {
                                what: "arguments on one line",
                                max: MAX_ARGS,
                            },
                        ));
                    }
                }
                TokenKind::Open => {
                    stmt.block = true;
                    return Ok(stmt);
                }
                TokenKind::Close | TokenKind::End => {
                    // Leave it for the block reader.
                    self.lx.reset(mark);
                    return Ok(stmt);
                }
                TokenKind::Newline => {
                    // keepalived allows the `{` on the next line.
                    let after = self.lx.mark();
                    loop {
                        let next = self.token()?;
                        match next.kind {
                            TokenKind::Newline => continue,
                            TokenKind::Open => {
                                self.flush_notes();
                                stmt.block = true;
                                return Ok(stmt);
                            }
                            _ => {
                                self.lx.reset(after);
                                return Ok(stmt);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Skips the rest of a block whose `{` was just read.
    pub fn skip_block(&mut self, open: &Token<'_>) -> Res<()> {
        let mut depth = 1u32;
        loop {
            let tok = self.token()?;
            match tok.kind {
                TokenKind::Open => depth += 1,
                TokenKind::Close => {
                    depth -= 1;
                    if depth == 0 {
                        self.flush_notes();
                        return Ok(());
                    }
                }
                TokenKind::End => {
                    return Err(self.error_at(
                        open,
                        Kind::UnclosedBlock {
                            keyword: Snippet::new(open.text),
                        },
                    ));
                }
                _ => {}
            }
        }
    }

    /// Skips the block of `stmt`, if it has one.
    pub fn skip_stmt_block(&mut self, stmt: &Stmt<'t>) -> Res<()> {
        if stmt.block {
            self.skip_block(&stmt.kw)
        } else {
            Ok(())
        }
    }

    /// Reports a keyword this block does not know (with a suggestion) or
    /// one vrlb ignores, and skips its block.
    pub fn unknown(&mut self, block: Block, stmt: &Stmt<'t>) -> Res<()> {
        let kw = stmt.keyword();
        let kind = match block.ignored(kw) {
            Some(note) => Kind::Unsupported {
                keyword: Snippet::new(&kw[..kw.find('(').unwrap_or(kw.len())]),
                note,
            },
            None => Kind::UnknownKeyword {
                keyword: Snippet::new(stmt.keyword()),
                block: block.name(),
                suggestion: suggest(block, stmt.keyword()),
            },
        };
        self.warn_at(&stmt.kw, kind);
        self.skip_stmt_block(stmt)
    }

    /// A keyword that takes no block: a block after it is skipped.
    pub fn no_block(&mut self, stmt: &Stmt<'t>) -> Res<()> {
        if stmt.block {
            self.warn_at(
                &stmt.kw,
                Kind::UnexpectedBlock {
                    keyword: Snippet::new(stmt.keyword()),
                },
            );
            self.skip_block(&stmt.kw)?;
        }
        Ok(())
    }

    /// The `i`th argument, or an error saying `what` was expected.
    pub fn arg(&self, stmt: &Stmt<'t>, i: usize, what: &'static str) -> Res<Token<'t>> {
        stmt.args
            .get(i)
            .copied()
            .ok_or_else(|| self.missing(stmt, stmt.keyword(), what))
    }

    /// `keyword` expected `what` after the last word of `stmt`'s line.
    pub fn missing(&self, stmt: &Stmt<'t>, keyword: &str, what: &'static str) -> Diagnostic {
        let at = stmt.args.last().unwrap_or(&stmt.kw);
        // Point just past the last word on the line.
        let col =
            at.col + at.text.chars().count() as u32 + u32::from(at.kind == TokenKind::Quoted) * 2;
        self.diag(
            at.line,
            col,
            Kind::Expected {
                keyword: Snippet::new(keyword),
                what,
                found: Snippet::default(),
            },
        )
    }

    /// Warns about arguments past the first `used`.
    pub fn extra_args(&mut self, stmt: &Stmt<'t>, used: usize) {
        if let Some(extra) = stmt.args.get(used).copied() {
            self.warn_at(
                &extra,
                Kind::ExtraArguments {
                    keyword: Snippet::new(stmt.keyword()),
                    extra: Snippet::new(extra.text),
                },
            );
        }
    }

    /// `USER [GROUP]` (`script_user`, a script's `user`).
    pub fn run_as(&mut self, stmt: &Stmt<'t>) -> Res<RunAs<'t>> {
        self.no_block(stmt)?;
        let user = self.arg(stmt, 0, "a user name")?.text;
        let group = stmt.args.get(1).map(|t| t.text);
        self.extra_args(stmt, 2);
        Ok(RunAs { user, group })
    }

    /// The single argument of a keyword that takes exactly one value.
    pub fn single(&mut self, stmt: &Stmt<'t>, what: &'static str) -> Res<Token<'t>> {
        self.no_block(stmt)?;
        let tok = self.arg(stmt, 0, what)?;
        self.extra_args(stmt, 1);
        Ok(tok)
    }

    /// An unsigned number within `min..=max` (`range` describes it).
    pub fn number(&mut self, stmt: &Stmt<'t>, min: u64, max: u64, range: &'static str) -> Res<u64> {
        let tok = self.single(stmt, "a number")?;
        self.number_token(stmt, &tok, min, max, range)
    }

    pub fn number_token(
        &self,
        stmt: &Stmt<'t>,
        tok: &Token<'t>,
        min: u64,
        max: u64,
        range: &'static str,
    ) -> Res<u64> {
        match super::value::uint(tok.text) {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            Some(_) => Err(self.error_at(
                tok,
                Kind::OutOfRange {
                    keyword: Snippet::new(stmt.keyword()),
                    value: Snippet::new(tok.text),
                    range,
                },
            )),
            None => Err(self.expected_in(stmt.keyword(), tok, "a number")),
        }
    }

    /// A signed number within `min..=max`.
    pub fn signed_token(
        &self,
        stmt: &Stmt<'t>,
        tok: &Token<'t>,
        min: i64,
        max: i64,
        range: &'static str,
    ) -> Res<i64> {
        match super::value::int(tok.text) {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            Some(_) => Err(self.error_at(
                tok,
                Kind::OutOfRange {
                    keyword: Snippet::new(stmt.keyword()),
                    value: Snippet::new(tok.text),
                    range,
                },
            )),
            None => Err(self.expected_in(stmt.keyword(), tok, "a number")),
        }
    }

    /// Decimal seconds within `min_us..=max_us`.
    pub fn seconds(
        &mut self,
        stmt: &Stmt<'t>,
        min_us: u64,
        max_us: u64,
        range: &'static str,
    ) -> Res<crate::time::Duration> {
        let tok = self.single(stmt, "a time in seconds")?;
        match super::value::seconds_us(tok.text) {
            Some(us) if (min_us..=max_us).contains(&us) => {
                Ok(crate::time::Duration::from_micros(us))
            }
            Some(_) => Err(self.error_at(
                &tok,
                Kind::OutOfRange {
                    keyword: Snippet::new(stmt.keyword()),
                    value: Snippet::new(tok.text),
                    range,
                },
            )),
            None => Err(self.expected_in(stmt.keyword(), &tok, "a time in seconds")),
        }
    }

    /// A flag keyword: no argument means true, or an explicit boolean.
    pub fn flag(&mut self, stmt: &Stmt<'t>) -> Res<bool> {
        self.no_block(stmt)?;
        match stmt.args.first() {
            None => Ok(true),
            Some(tok) => {
                let v = super::value::boolean(tok.text)
                    .ok_or_else(|| self.expected_in(stmt.keyword(), tok, "true or false"))?;
                self.extra_args(stmt, 1);
                Ok(v)
            }
        }
    }

    /// An IP address argument.
    pub fn address(&self, tok: &Token<'t>) -> Res<core::net::IpAddr> {
        super::value::ip(tok.text).ok_or_else(|| self.expected(tok, "an IPv4 or IPv6 address"))
    }

    /// `tok`'s text, if not empty and free of control characters: it goes
    /// into a protocol line or a mail header as it is, where a CR or LF
    /// would start another.
    pub fn plain_text(&self, keyword: &str, tok: &Token<'t>, what: &'static str) -> Res<&'t str> {
        if tok.text.is_empty() || tok.text.chars().any(char::is_control) {
            return Err(self.expected_in(keyword, tok, what));
        }
        Ok(tok.text)
    }

    pub fn expected(&self, tok: &Token<'_>, what: &'static str) -> Diagnostic {
        self.expected_in("", tok, what)
    }

    /// `keyword`'s value `tok` is not `what`.
    pub fn expected_in(&self, keyword: &str, tok: &Token<'_>, what: &'static str) -> Diagnostic {
        self.error_at(
            tok,
            Kind::Expected {
                keyword: Snippet::new(keyword),
                what,
                found: Snippet::new(tok.text),
            },
        )
    }

    /// A script command: the first argument, quoted or not. keepalived reads
    /// further unquoted words as a user and group, which vrlb does not use.
    pub fn script(&mut self, stmt: &Stmt<'t>) -> Res<&'t str> {
        let tok = self.single(stmt, "a script path or quoted command")?;
        Ok(tok.text)
    }

    /// Pushes into a bounded list, or errors naming what overflowed.
    pub fn push<T, const N: usize>(
        &self,
        list: &mut Vec<T, N>,
        item: T,
        at: &Token<'_>,
        what: &'static str,
    ) -> Res<()> {
        list.push(item)
            .map_err(|_| self.error_at(at, Kind::TooMany { what, max: N }))
    }

    /// Wraps a sink's refusal of an item at `pos`.
    pub fn sink_result(&self, pos: Pos, result: Result<(), Kind>) -> Res<()> {
        result.map_err(|kind| self.diag(pos.line, pos.col, kind))
    }

    /// Reads the whole file.
    pub fn top(&mut self) -> Res<()> {
        while let Some(stmt) = self.next_stmt(None)? {
            match stmt.keyword() {
                "global_defs" => self.global_defs(&stmt)?,
                "vrrp_script" | "vrrp_track_script" => self.vrrp_script(&stmt)?,
                "vrrp_track_process" => self.vrrp_track_process(&stmt)?,
                "track_file" | "vrrp_track_file" => self.track_file(&stmt)?,
                "vrrp_instance" => self.vrrp_instance(&stmt)?,
                "vrrp_sync_group" => self.sync_group(&stmt)?,
                "virtual_server_group" => self.virtual_server_group(&stmt)?,
                "virtual_server" => self.virtual_server(&stmt)?,
                "include" => self.include(&stmt)?,
                "static_routes" => self.static_routes(&stmt)?,
                "garp_group" => self.garp_group(&stmt)?,
                _ if stmt.keyword().starts_with('$') => {
                    self.warn_at(
                        &stmt.kw,
                        Kind::Assumed {
                            keyword: Snippet::new(stmt.keyword()),
                            note: "not a defined parameter nor a definition ($NAME=value, NAME of letters, digits and _): the line is skipped",
                        },
                    );
                    self.skip_stmt_block(&stmt)?;
                }
                _ => self.unknown(Block::Top, &stmt)?,
            }
        }
        Ok(())
    }

    /// A top-level `static_routes` block, handed to the sink whole.
    fn static_routes(&mut self, head: &Stmt<'t>) -> Res<()> {
        let mut routes = Vec::new();
        self.routes_block(head, &mut routes)?;
        let result = self.sink.static_routes(&routes);
        self.sink_result(head.pos(), result)?;
        self.summary.items += 1;
        Ok(())
    }

    /// The body of a block that must open with `{` after its header.
    pub fn require_block(&self, stmt: &Stmt<'t>) -> Res<()> {
        if stmt.block {
            return Ok(());
        }
        let at = stmt.args.last().unwrap_or(&stmt.kw);
        Err(self.diag(
            at.line,
            at.col + at.text.chars().count() as u32,
            Kind::Expected {
                keyword: Snippet::new(stmt.keyword()),
                what: "'{' to open the block",
                found: Snippet::default(),
            },
        ))
    }

    /// A top-level `include`: each file is parsed in turn (zero-copy),
    /// seeing the parameters defined so far.
    fn include(&mut self, stmt: &Stmt<'t>) -> Res<()> {
        let pattern = self.single(stmt, "a file name or pattern")?;
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(self.error_at(
                &pattern,
                Kind::Include {
                    pattern: Snippet::new(pattern.text),
                    reason: "includes nested too deep (8 levels)",
                },
            ));
        }
        let depth = self.depth + 1;
        let options = self.options;
        let summary = &mut *self.summary;
        let sink = &mut *self.sink;
        let lx = &mut self.lx;
        let result = self.includer.include(
            pattern.text,
            &mut |includer: &mut dyn Includer, file: &str, text: &str| {
                let mut inner = Parser {
                    file,
                    lx: lx.included(file, text),
                    sink: &mut *sink,
                    includer,
                    options,
                    summary: &mut *summary,
                    depth,
                };
                inner.summary.files += 1;
                inner.top()
            },
        );
        self.include_result(&pattern, result)
    }

    /// An `include` inside a block: its files are read in place, copied
    /// into the parse's scratch (their own includes are relative to the
    /// main file's).
    fn include_here(&mut self, stmt: &Stmt<'t>) -> Res<()> {
        let pattern = self.single(stmt, "a file name or pattern")?;
        let depth = self.lx.depth();
        let summary = &mut *self.summary;
        let lx = &mut self.lx;
        let at = pattern;
        let file = at.file.unwrap_or(self.file);
        let result = self.includer.include(
            pattern.text,
            &mut |_: &mut dyn Includer, name: &str, text: &str| {
                summary.files += 1;
                lx.splice(name, text)
                    .map_err(|kind| Diagnostic::new(file, at.line, at.col, kind))
            },
        );
        self.lx.spliced(depth);
        self.include_result(&pattern, result)
    }

    fn include_result(
        &self,
        pattern: &Token<'t>,
        result: Result<(), super::IncludeError>,
    ) -> Res<()> {
        match result {
            Ok(()) => Ok(()),
            Err(super::IncludeError::Parse(d)) => Err(d),
            Err(super::IncludeError::Failed(reason)) => Err(self.error_at(
                pattern,
                Kind::Include {
                    pattern: Snippet::new(pattern.text),
                    reason,
                },
            )),
        }
    }
}
