//! keepalived's parameter substitution (keepalived.conf(5), "Parameter
//! substitution"): `$NAME=VALUE` lines define a parameter, and a later
//! `$NAME` at the end of a word or `${NAME}` anywhere is replaced by its
//! value, recursively, at the time of use; an undefined name stays as
//! written. Owns the parser's token stream: the file's lexer and a stack
//! of lexers over values being expanded.
//!
//! Zero-copy where it can be: a word that is exactly one parameter reads
//! its value straight from the definition's text. A word the value joins
//! other text to (`VI_$IF`) is built in a bounded scratch buffer the
//! parse owns. Tokens from a value carry the place where it is used, so
//! diagnostics point at the text as written.
//!
//! Sequence and list lines (`~SEQ`, `~LST`, [`super::repeat`]) are read
//! here too: the body is a frame of its own, read once per pass with the
//! loop variables defined as parameters.

use core::cell::Cell;
use core::fmt::Write;

use heapless::Vec;

use super::diag::Kind;
use super::lexer::{LexNote, Lexer, Mark, Token, TokenKind};
use super::repeat::{Binding, MAX_PASSES, Repeat, split_line, starts_repeat};
use super::value::is_name;

/// Most parameters defined at once.
pub const MAX_PARAMETERS: usize = 64;
/// Deepest nesting of values expanded inside values.
pub const MAX_DEPTH: usize = 8;
/// Longest word after substitution.
pub const MAX_WORD: usize = 512;

/// Built words, bump-allocated for the whole parse.
#[derive(Debug)]
pub struct Scratch<'t> {
    free: &'t mut [u8],
}

impl<'t> Scratch<'t> {
    /// Scratch over `buf`.
    pub fn new(buf: &'t mut [u8]) -> Self {
        Scratch { free: buf }
    }

    /// A copy of `s` that lives as long as the buffer.
    fn keep(&mut self, s: &str) -> Option<&'t str> {
        let n = s.len();
        if n > self.free.len() {
            return None;
        }
        let (piece, rest) = core::mem::take(&mut self.free).split_at_mut(n);
        self.free = rest;
        piece.copy_from_slice(s.as_bytes());
        let piece: &'t [u8] = piece;
        core::str::from_utf8(piece).ok()
    }
}

#[derive(Debug, Clone)]
struct Frame<'t, 'c> {
    lexer: Lexer<'t, 'c>,
    /// The file a spliced include's text came from (its tokens keep their
    /// own places); a value being expanded inherits its user's.
    file: Option<&'t str>,
    /// When the frame is a sequence line's body: its loops.
    looping: Option<Looping<'t>>,
}

/// A sequence line being read, and where it is (every token of its body
/// is placed there).
#[derive(Debug, Clone)]
struct Looping<'t> {
    repeat: Repeat<'t>,
    line: u32,
    col: u32,
}

/// A resumable place in the token stream.
#[derive(Debug, Clone)]
pub struct SourceMark<'t, 'c> {
    main: Mark,
    stack: Vec<Frame<'t, 'c>, MAX_DEPTH>,
    /// `${_RANDOM}` draws so far: text read again draws the same numbers.
    draws: u64,
}

/// The parser's tokens: the file's, with parameters substituted.
#[derive(Debug)]
pub struct Source<'t, 'c> {
    main: Lexer<'t, 'c>,
    stack: Vec<Frame<'t, 'c>, MAX_DEPTH>,
    params: Vec<(&'t str, Binding<'t>), MAX_PARAMETERS>,
    scratch: Scratch<'t>,
    config_id: Option<&'c str>,
    /// `${_PWD}`: the directory of the file.
    pwd: &'t str,
    /// Passes of sequence lines read so far, nested ones included.
    passes: usize,
    /// `${_RANDOM}`'s seed for this file, and how many it drew.
    random_seed: u64,
    draws: Cell<u64>,
    /// `${_ENV NAME}`'s environment.
    env: &'c [(&'c str, &'c str)],
}

/// SplitMix64's output function: `${_RANDOM}`'s numbers, one per draw.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a of `s`: an included file's own `${_RANDOM}` stream.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn name_len(s: &str) -> usize {
    s.bytes()
        .position(|c| !(c.is_ascii_alphanumeric() || c == b'_'))
        .unwrap_or(s.len())
}

impl<'t, 'c> Source<'t, 'c> {
    /// The tokens of `text` (read from `file`), building substituted words
    /// in `scratch`.
    pub fn new(
        file: &'t str,
        text: &'t str,
        config_id: Option<&'c str>,
        scratch: Scratch<'t>,
    ) -> Self {
        let pwd = match file.rfind('/') {
            Some(0) => "/",
            Some(i) => &file[..i],
            None => ".",
        };
        Source {
            main: Lexer::new(text, config_id),
            stack: Vec::new(),
            params: Vec::new(),
            scratch,
            config_id,
            pwd,
            passes: 0,
            random_seed: 0,
            draws: Cell::new(0),
            env: &[],
        }
    }

    /// `${_RANDOM}` seeded with `seed` (an included file's own stream is
    /// derived from it and the file's name) and `${_ENV}` reading `env`.
    pub fn with_builtins(mut self, seed: u64, env: &'c [(&'c str, &'c str)]) -> Self {
        self.random_seed = seed;
        self.env = env;
        self
    }

    /// The same for an included file: it sees the parameters defined so
    /// far and builds in what is left of `scratch`.
    pub fn included<'u>(&'u mut self, file: &'u str, text: &'u str) -> Source<'u, 'c>
    where
        't: 'u,
    {
        let mut inner = Source::new(
            file,
            text,
            self.config_id,
            Scratch::new(&mut *self.scratch.free),
        )
        .with_builtins(self.random_seed ^ fnv1a(file), self.env);
        for p in &self.params {
            let _ = inner.params.push(*p);
        }
        inner
    }

    /// Where the stream stands.
    pub fn mark(&self) -> SourceMark<'t, 'c> {
        SourceMark {
            main: self.main.mark(),
            stack: self.stack.clone(),
            draws: self.draws.get(),
        }
    }

    /// Goes back to `mark` (parameters defined since stay defined: reading
    /// the text again defines them again, in order).
    pub fn reset(&mut self, mark: SourceMark<'t, 'c>) {
        self.main.reset(mark.main);
        self.stack = mark.stack;
        self.draws.set(mark.draws);
        // The loops' variables as they were at the mark (their names are
        // defined already, so this cannot run out of room).
        for i in 0..self.stack.len() {
            if let Some(l) = self.stack[i].looping.clone() {
                let _ = self.bind_pass(&l.repeat);
            }
        }
    }

    /// The next pending note of any lexer, if any.
    pub fn take_note(&mut self) -> Option<(LexNote, u32, u32)> {
        if let Some(n) = self.main.take_note() {
            return Some(n);
        }
        self.stack.iter_mut().find_map(|f| f.lexer.take_note())
    }

    /// Reads the text of `file` next, then the rest (an `include` inside a
    /// block): both are copied into the scratch. Call once per file in
    /// order, then [`Source::spliced`] with the depth from before.
    pub fn splice(&mut self, file: &str, text: &str) -> Result<(), Kind> {
        let full = || Kind::TooMany {
            what: "bytes of files included inside blocks and substituted words",
            max: SCRATCH_BYTES,
        };
        let file = self.scratch.keep(file).ok_or_else(full)?;
        let text = self.scratch.keep(text).ok_or_else(full)?;
        self.stack
            .push(Frame {
                lexer: Lexer::new(text, self.config_id),
                file: Some(file),
                looping: None,
            })
            .map_err(|_| nested())
    }

    /// How many texts are being read inside the file's own.
    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    /// Puts the files spliced since `depth` in reading order.
    pub fn spliced(&mut self, depth: usize) {
        if depth < self.stack.len() {
            self.stack[depth..].reverse();
        }
    }

    /// The value of parameter `name` (the predefined ones first).
    fn value(&self, name: &str) -> Option<Binding<'t>> {
        match name {
            "_HASH" => return Some(Binding::Text("#")),
            "_BANG" => return Some(Binding::Text("!")),
            "_PWD" => return Some(Binding::Text(self.pwd)),
            _ => {}
        }
        self.params
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// Appends the value of `name` to `out`; `None` when it is undefined.
    /// `${_INSTANCE}` is the config id (keepalived's `-i`), undefined
    /// without one; `${_RANDOM [MIN [MAX]]}` and `${_ENV NAME}` take
    /// arguments (a name so written holds them after a space).
    fn push_value(
        &self,
        name: &str,
        out: &mut heapless::String<MAX_WORD>,
    ) -> Option<Result<(), ()>> {
        let (base, args) = name.split_once([' ', '\t']).unwrap_or((name, ""));
        if !is_name(base) {
            return None;
        }
        let defined = self.params.iter().any(|(n, _)| *n == base);
        match base {
            "_RANDOM" if !defined => {
                let value = self.random(args)?;
                return Some(write!(out, "{value}").map_err(|_| ()));
            }
            "_ENV" if !defined => {
                let var = args.trim();
                let (_, value) = self.env.iter().find(|(n, _)| *n == var)?;
                return Some(out.push_str(value).map_err(|_| ()));
            }
            _ if !args.is_empty() => return None,
            _ => {}
        }
        if name == "_INSTANCE" && !defined {
            return self.config_id.map(|id| out.push_str(id).map_err(|_| ()));
        }
        Some(match self.value(name)? {
            Binding::Text(v) => out.push_str(v).map_err(|_| ()),
            Binding::Number { value, hex: false } => write!(out, "{value}").map_err(|_| ()),
            Binding::Number { value, hex: true } => write!(out, "{value:x}").map_err(|_| ()),
        })
    }

    /// The next `${_RANDOM [MIN [MAX]]}` draw: in MIN..=MAX (default 0 and
    /// 32767, as keepalived), `None` (left as written, as keepalived
    /// leaves it) when the arguments are not one or two such numbers.
    fn random(&self, args: &str) -> Option<u64> {
        let mut words = args.split_whitespace();
        let number = |w: Option<&str>, default: u64| match w {
            None => Some(default),
            Some(w) if w.bytes().all(|b| b.is_ascii_digit()) => w.parse().ok(),
            Some(_) => None,
        };
        let min = number(words.next(), 0)?;
        let max = number(words.next(), 32767)?;
        if words.next().is_some() || min > max {
            return None;
        }
        let k = self.draws.get();
        self.draws.set(k + 1);
        let span = max - min;
        let r = splitmix64(self.random_seed.wrapping_add(k));
        Some(min + if span == u64::MAX { r } else { r % (span + 1) })
    }

    /// Defines `name` as `value`, or gives it that value.
    fn bind(&mut self, name: &'t str, value: Binding<'t>) -> Result<(), Kind> {
        if let Some(slot) = self.params.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
            return Ok(());
        }
        self.params.push((name, value)).map_err(|_| Kind::TooMany {
            what: "parameter definitions",
            max: MAX_PARAMETERS,
        })
    }

    /// Defines the variables of `repeat`'s current pass.
    fn bind_pass(&mut self, repeat: &Repeat<'t>) -> Result<(), Kind> {
        repeat.bindings(|name, value| self.bind(name, value))
    }

    /// `text` (as written, or a round's result) with one round of
    /// substitution into `out`; whether anything was replaced. `$NAME`
    /// counts only at the end of the text or before white space, `,` or
    /// `)`, as in keepalived.
    fn substitute_once(
        &self,
        text: &str,
        out: &mut heapless::String<MAX_WORD>,
        as_written: bool,
    ) -> Result<bool, ()> {
        let mut changed = false;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            // A sequence line that a value brought in is substituted at
            // each pass, with that pass's variables, not now (keepalived
            // stops likewise). What was written is substituted as usual.
            if line.trim_start().starts_with('~') && !(as_written && i == 0) {
                out.push_str(line).map_err(|_| ())?;
            } else {
                changed |= self.substitute_line(line, out)?;
            }
        }
        Ok(changed)
    }

    /// [`Self::substitute_once`] for one line.
    fn substitute_line(
        &self,
        text: &str,
        out: &mut heapless::String<MAX_WORD>,
    ) -> Result<bool, ()> {
        let mut changed = false;
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]).map_err(|_| ())?;
            let after = &rest[i + 1..];
            let (name, used) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(j) => (&braced[..j], j + 2),
                    None => ("", 0),
                }
            } else {
                let n = name_len(after);
                let at_end = after[n..]
                    .chars()
                    .next()
                    .is_none_or(|c| c.is_whitespace() || c == ',' || c == ')');
                if at_end { (&after[..n], n) } else { ("", 0) }
            };
            match self.push_value(name, out) {
                Some(pushed) => {
                    pushed?;
                    changed = true;
                    rest = &after[used..];
                }
                None => {
                    out.push('$').map_err(|_| ())?;
                    rest = after;
                }
            }
        }
        out.push_str(rest).map_err(|_| ())?;
        Ok(changed)
    }

    /// `text` with every parameter substituted: `None` when nothing
    /// changes, else the new text. With `word`, `text` is a word to be
    /// read again as tokens, and when it is exactly one parameter its
    /// value comes back as written: each of its words is substituted when
    /// read, after the definitions before it in the value (keepalived's
    /// multiline values read line by line), and nothing is copied.
    fn expand(&mut self, text: &'t str, word: bool) -> Result<Option<&'t str>, Kind> {
        if !text.contains('$') {
            return Ok(None);
        }
        let whole = text
            .strip_prefix("${")
            .and_then(|t| t.strip_suffix('}'))
            .or_else(|| text.strip_prefix('$'))
            .filter(|n| is_name(n));
        if let Some(Binding::Text(v)) = whole.and_then(|n| self.value(n))
            && (word || !v.contains('$'))
        {
            return Ok(Some(v));
        }
        let too_long = Kind::TooMany {
            what: "characters in one word after parameter substitution",
            max: MAX_WORD,
        };
        let mut current: heapless::String<MAX_WORD> = heapless::String::new();
        if !self
            .substitute_once(text, &mut current, true)
            .map_err(|_| too_long.clone())?
        {
            return Ok(None);
        }
        for _ in 0..MAX_DEPTH {
            let mut next = heapless::String::new();
            if !self
                .substitute_once(&current, &mut next, false)
                .map_err(|_| too_long.clone())?
            {
                return self.scratch.keep(&current).map(Some).ok_or(Kind::TooMany {
                    what: "bytes of substituted words in one parse",
                    max: SCRATCH_BYTES,
                });
            }
            current = next;
        }
        Err(nested())
    }

    /// The next token, with definitions taken in and parameters replaced.
    /// An error comes with the token it concerns.
    pub fn next_token(&mut self) -> Result<Token<'t>, (Token<'t>, Kind)> {
        loop {
            let (tok, fixed, file) = match self.stack.last_mut() {
                Some(f) => {
                    let mut t = f.lexer.next_token();
                    if t.kind == TokenKind::End {
                        if f.looping.is_some() {
                            return self.end_pass(t);
                        }
                        self.stack.pop();
                        continue;
                    }
                    t.file = f.file;
                    (t, true, f.file)
                }
                None => (self.main.next_token(), false, None),
            };
            match tok.kind {
                TokenKind::Word if tok.first && self.define(&tok, fixed)? => continue,
                TokenKind::Word if tok.first && starts_repeat(tok.text) => {
                    self.start_repeat(&tok, fixed, file).map_err(|k| (tok, k))?;
                    continue;
                }
                TokenKind::Word | TokenKind::Quoted => {}
                _ => return Ok(tok),
            }
            let word = tok.kind == TokenKind::Word;
            let Some(text) = self.expand(tok.text, word).map_err(|k| (tok, k))? else {
                return Ok(tok);
            };
            if tok.kind == TokenKind::Quoted {
                return Ok(Token { text, ..tok });
            }
            let lexer = Lexer::expansion(text, self.config_id, tok.line, tok.col, tok.first);
            self.stack
                .push(Frame {
                    lexer,
                    file,
                    looping: None,
                })
                .map_err(|_| (tok, nested()))?;
        }
    }

    /// Takes in `tok` if it starts a definition (`$NAME=VALUE`, the value
    /// running to the end of the line, or over lines ending in `\`).
    fn define(&mut self, tok: &Token<'t>, fixed: bool) -> Result<bool, (Token<'t>, Kind)> {
        let Some(eq) = tok.text.find('=') else {
            return Ok(false);
        };
        let Some(name) = tok.text[..eq].strip_prefix('$').filter(|n| is_name(n)) else {
            return Ok(false);
        };
        let lexer = match self.stack.last_mut() {
            Some(f) if fixed => &mut f.lexer,
            _ => &mut self.main,
        };
        let value = strip_comment(lexer.rest_of_definition(tok.offset + eq + 1)).trim();
        self.bind(name, Binding::Text(value))
            .map_err(|k| (*tok, k))?;
        Ok(true)
    }

    /// At the end of a sequence line's pass (`end`, its frame's last
    /// token): a newline ending the pass's statement, with the next pass
    /// ready or the line done.
    #[inline(never)]
    fn end_pass(&mut self, end: Token<'t>) -> Result<Token<'t>, (Token<'t>, Kind)> {
        let mut newline = Token {
            kind: TokenKind::Newline,
            ..end
        };
        if let Some(Frame {
            lexer,
            file,
            looping: Some(l),
        }) = self.stack.last_mut()
        {
            newline.file = *file;
            if l.repeat.step() {
                *lexer = Lexer::expansion(l.repeat.body, self.config_id, l.line, l.col, true);
                let repeat = l.repeat.clone();
                self.bind_pass(&repeat).map_err(|k| (newline, k))?;
                self.count_pass().map_err(|k| (newline, k))?;
                return Ok(newline);
            }
        }
        self.stack.pop();
        Ok(newline)
    }

    /// Counts a pass against the parse's bound: sequence lines nested
    /// through values multiply, and a mistyped end must not hang a parse.
    fn count_pass(&mut self) -> Result<(), Kind> {
        self.passes += 1;
        if self.passes > MAX_PASSES {
            return Err(Kind::TooMany {
                what: "passes of ~SEQ and ~LST lines in one parse",
                max: MAX_PASSES,
            });
        }
        Ok(())
    }

    /// Starts reading the sequence line `tok` begins: its first pass's
    /// variables are defined and its body is the next frame.
    #[inline(never)]
    fn start_repeat(
        &mut self,
        tok: &Token<'t>,
        fixed: bool,
        file: Option<&'t str>,
    ) -> Result<(), Kind> {
        let lexer = match self.stack.last_mut() {
            Some(f) if fixed => &mut f.lexer,
            _ => &mut self.main,
        };
        let (specs, body) = split_line(strip_comment(lexer.rest_of_line(tok.offset)));
        // keepalived substitutes parameters in the specifications.
        let specs = self.expand(specs, false)?.unwrap_or(specs);
        let repeat = Repeat::new(specs, body)?;
        self.count_pass()?;
        self.bind_pass(&repeat)?;
        let lexer = Lexer::expansion(body, self.config_id, tok.line, tok.col, true);
        let looping = Some(Looping {
            repeat,
            line: tok.line,
            col: tok.col,
        });
        self.stack
            .push(Frame {
                lexer,
                file,
                looping,
            })
            .map_err(|_| nested())
    }
}

/// `value` up to an unquoted `#` or `!` that starts a word (a comment).
fn strip_comment(value: &str) -> &str {
    let mut quoted = false;
    let mut prev_space = true;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' | '!' if !quoted && prev_space => return &value[..i],
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    value
}

fn nested() -> Kind {
    Kind::Invalid {
        what: "parameter substitution",
        note: "nested more than 8 deep (does a parameter use itself?)",
    }
}

/// Bytes of substituted words and files included inside blocks one parse
/// holds.
pub const SCRATCH_BYTES: usize = 8192;

#[cfg(test)]
mod tests {
    use super::*;
    use heapless::{String, Vec};

    /// A word's text (copied: it may live in the scratch buffer), line and
    /// column; room for every word of a test text.
    type Words = Vec<(String<32>, u32, u32), 16>;

    fn words(text: &str) -> Words {
        words_with(text, 0, &[])
    }

    /// [`words`] with `${_RANDOM}`'s seed and `${_ENV}`'s environment.
    fn words_with(text: &str, seed: u64, env: &[(&str, &str)]) -> Words {
        let mut buf = [0u8; 256];
        let mut s = Source::new("dir/k.conf", text, Some("main"), Scratch::new(&mut buf))
            .with_builtins(seed, env);
        let mut out = Words::new();
        loop {
            let t = s.next_token().map_err(|e| e.1).unwrap();
            match t.kind {
                TokenKind::End => return out,
                TokenKind::Newline => {}
                _ => {
                    let word = String::try_from(t.text).expect("a word of at most 32 bytes");
                    out.push((word, t.line, t.col))
                        .expect("at most 16 words in a test text");
                }
            }
        }
    }

    /// The first error reading `text` as file `k` with `buf` as scratch.
    fn first_error<'t>(text: &'t str, buf: &'t mut [u8]) -> (Token<'t>, Kind) {
        let mut s = Source::new("k", text, None, Scratch::new(buf));
        loop {
            match s.next_token() {
                Ok(t) if t.kind == TokenKind::End => panic!("no error"),
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    }

    fn located(w: &Words) -> Vec<(&str, u32, u32), 16> {
        w.iter().map(|(s, l, c)| (s.as_str(), *l, *c)).collect()
    }

    fn texts(w: &Words) -> Vec<&str, 16> {
        w.iter().map(|w| w.0.as_str()).collect()
    }

    #[test]
    fn definitions_and_uses() {
        let text = "$IF0=eth0\n$IF1=eth1 # c\ninterface $IF0\ngroup {\n  VI_$IF0 VI_${IF1}x\n}\n";
        assert_eq!(
            located(&words(text)),
            [
                ("interface", 3, 1),
                ("eth0", 3, 11),
                ("group", 4, 1),
                ("{", 4, 7),
                ("VI_eth0", 5, 3),
                ("VI_eth1x", 5, 11),
                ("}", 6, 1),
            ]
        );
    }

    #[test]
    fn random_numbers_are_in_range_and_the_same_for_the_same_seed() {
        let text = "${_RANDOM} ${_RANDOM 7} ${_RANDOM 3 5} x${_RANDOM 9 9}y ${_RANDOM  1   2 }\n";
        let a = words_with(text, 42, &[]);
        assert_eq!(texts(&a).len(), 5, "one word each: {a:?}");
        let n = |w: &Words, i: usize| w[i].0.parse::<u64>().unwrap();
        assert!(n(&a, 0) <= 32767);
        assert!((7..=32767).contains(&n(&a, 1)));
        assert!((3..=5).contains(&n(&a, 2)));
        assert_eq!(a[3].0.as_str(), "x9y");
        assert!((1..=2).contains(&n(&a, 4)));
        // The same seed, the same numbers: a driver parses a file several
        // times for one load. Another seed, other numbers.
        assert_eq!(words_with(text, 42, &[]), a);
        let many = "${_RANDOM} ${_RANDOM} ${_RANDOM} ${_RANDOM}\n";
        assert_ne!(words_with(many, 1, &[]), words_with(many, 2, &[]));
        // Not numbers, too many, or MIN above MAX: left as written, as an
        // undefined parameter is. A definition of the name overrides it.
        assert_eq!(
            texts(&words_with(
                "${_RANDOM a} ${_RANDOM 1 2 3} ${_RANDOM 5 4}\n",
                1,
                &[]
            )),
            ["${_RANDOM a}", "${_RANDOM 1 2 3}", "${_RANDOM 5 4}"]
        );
        assert_eq!(
            texts(&words_with("$_RANDOM=4\n${_RANDOM}\n", 1, &[])),
            ["4"]
        );
    }

    #[test]
    fn env_reads_the_given_environment() {
        let env = [("IF", "eth7"), ("EMPTY", "")];
        assert_eq!(
            texts(&words_with(
                "interface ${_ENV IF} a${_ENV EMPTY}b ${_ENV UNSET}\n",
                0,
                &env
            )),
            ["interface", "eth7", "ab", "${_ENV UNSET}"]
        );
    }

    /// keepalived.conf(5)'s own examples.
    #[test]
    fn the_man_page_examples() {
        let text = "$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}\n$ADDRESS_BASE_SUB=0\n${ADDRESS_BASE}.100/32\n$ADDRESS_BASE_SUB=10\n${ADDRESS_BASE}.100/32\n";
        assert_eq!(texts(&words(text)), ["10.2.0.100/32", "10.2.10.100/32"]);
        // With conditional lines, a value of several words, an empty one,
        // an undefined name and the predefined ones.
        let text = "@main $PRIORITY=240\n@backup $PRIORITY=200\n$ALPHA=\n$V=a \"b c\"\npriority $PRIORITY $ALPHA $V ${UNDEF} \"x ${_HASH} $V\" ${_PWD}\n";
        assert_eq!(
            texts(&words(text)),
            [
                "priority",
                "240",
                "a",
                "b c",
                "${UNDEF}",
                "x # a \"b c\"",
                "dir"
            ]
        );
        // Definitions inside a value hold for the words after them (the
        // man page's nested virtual and real servers).
        let text = "$RS=rs ${RS_NUM}\n$VS= \\\n vs { \\\n $RS_NUM=1 \\\n $RS \\\n $RS_NUM=2 \\\n $RS \\\n }\n$VS\n";
        assert_eq!(texts(&words(text)), ["vs", "{", "rs", "1", "rs", "2", "}"]);
        // Multiline values define blocks.
        let text = "$INST= \\\n vrrp_instance VI_${NUM} { \\\n  interface eth${NUM} \\\n }\n$NUM=1\n$INST\n";
        assert_eq!(
            texts(&words(text)),
            ["vrrp_instance", "VI_1", "{", "interface", "eth1", "}"]
        );
    }

    fn words_as(text: &str, config_id: Option<&str>) -> Words {
        let mut buf = [0u8; 256];
        let mut s = Source::new("k.conf", text, config_id, Scratch::new(&mut buf));
        let mut out = Words::new();
        loop {
            let t = s.next_token().map_err(|e| e.1).unwrap();
            match t.kind {
                TokenKind::End => return out,
                TokenKind::Newline => {
                    let _ = out.push((String::try_from("/").unwrap(), t.line, t.col));
                }
                _ => out
                    .push((String::try_from(t.text).unwrap(), t.line, t.col))
                    .expect("at most 16 tokens in a test text"),
            }
        }
    }

    /// Each pass of a sequence line is a statement of its own, placed at
    /// the `~SEQ`; the next line reads on as usual.
    #[test]
    fn sequence_lines_repeat_their_body() {
        let text = "  ~SEQ(SUBNET, 0, 1) ip_address 10.0.${SUBNET}.1 # c\nnext\n";
        assert_eq!(
            located(&words_as(text, None)),
            [
                ("ip_address", 1, 3),
                ("10.0.0.1", 1, 3),
                ("/", 1, 3),
                ("ip_address", 1, 3),
                ("10.0.1.1", 1, 3),
                ("/", 1, 3),
                ("/", 1, 53),
                ("next", 2, 1),
                ("/", 2, 5),
            ]
        );
        // A multiline value as the body; parameters in the specification
        // (before `,` or `)`, as keepalived reads them); lists of pairs.
        let text = "$RS= \\\n rs 192.0.2.${i} { \\\n }\n$N=2\n~SEQ(i, 1, $N) $RS\n";
        assert_eq!(
            texts(&words(text)),
            ["rs", "192.0.2.1", "{", "}", "rs", "192.0.2.2", "{", "}"]
        );
        let text = "~LST({A, B}, {x, 1}, {y, 2}) ${A}${B}\n";
        assert_eq!(texts(&words_as(text, None)), ["x1", "/", "y2", "/", "/"]);
        // A sequence line inside a value used by one.
        let text = "$IN= \\\n ~SEQx(j, 9, 10) ${i}.${j} \\\n\n~SEQ(i, 1, 2) $IN\n";
        assert_eq!(texts(&words(text)), ["1.9", "1.a", "2.9", "2.a"]);
        // A one-line value that is a sequence line, used twice.
        let text = "$L=~SEQ(i, 1, 2) x${i}\n$L\n$L\n";
        assert_eq!(texts(&words(text)), ["x1", "x2", "x1", "x2"]);
    }

    #[test]
    fn instance_is_the_config_id() {
        assert_eq!(
            texts(&words_as("x${_INSTANCE}\n", Some("lb1"))),
            ["xlb1", "/"]
        );
        assert_eq!(
            texts(&words_as("${_INSTANCE}\n", None)),
            ["${_INSTANCE}", "/"]
        );
    }

    #[test]
    fn nested_sequences_are_bounded_in_all() {
        let mut buf = [0u8; 64];
        let text = "$X=~SEQ(j, 1, 1000000) x\n~SEQ(i, 1, 1000000) $X\n";
        let err = first_error(text, &mut buf);
        assert!(
            matches!(
                err.1,
                Kind::TooMany {
                    max: MAX_PASSES,
                    ..
                }
            ),
            "{:?}",
            err.1
        );
    }

    #[test]
    fn a_bad_sequence_is_an_error_at_its_line() {
        let mut buf = [0u8; 64];
        let text = "a\n  ~SEQ(i, 1, -1, 3) x\n";
        let err = first_error(text, &mut buf);
        assert_eq!((err.0.line, err.0.col), (2, 3));
        assert!(matches!(err.1, Kind::Expected { .. }), "{:?}", err.1);
    }

    #[test]
    fn self_reference_and_overflow_are_errors() {
        let mut buf = [0u8; 8];
        let err = first_error("$A=${A}x\n${A}\n", &mut buf);
        assert_eq!((err.0.line, err.0.col), (2, 1));
        let mut buf = [0u8; 4];
        let err = first_error("$A=long\nx$A\n", &mut buf);
        assert!(matches!(err.1, Kind::TooMany { .. }), "{:?}", err.1);
    }
}
