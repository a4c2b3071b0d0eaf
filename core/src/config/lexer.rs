//! Splits keepalived.conf text into tokens with their line and column.
//!
//! keepalived's syntax is line-oriented: a statement is a keyword and its
//! arguments up to the end of the line, a `{` or a `}`. Comments start at
//! an unquoted `#` or `!`. Double quotes group words. Braces are tokens of
//! their own even when glued to a word (`VG_1{`). Any Unicode white space
//! separates tokens; non-ASCII white space (the U+00A0 of text pasted from
//! web pages) is reported once. Lines may end in CRLF; the last line needs
//! no newline. Borrows the text: nothing is copied.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A bare word.
    Word,
    /// A double-quoted string; `text` excludes the quotes.
    Quoted,
    /// `{`
    Open,
    /// `}`
    Close,
    /// End of a line (ends a statement).
    Newline,
    /// End of the text.
    End,
}

/// One token and where it starts (1-based line and column, in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'t> {
    /// Its kind.
    pub kind: TokenKind,
    /// Its text (for words and quoted strings).
    pub text: &'t str,
    /// Line number, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
    /// Byte offset of `text` in the lexer's text.
    pub offset: usize,
    /// The first token of its line (after a true `@id` prefix).
    pub first: bool,
    /// The file it comes from when not the parser's own (a file an
    /// `include` inside a block spliced in).
    pub file: Option<&'t str>,
}

/// Something about the text itself worth a warning, found while lexing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LexNote {
    /// Non-ASCII white space (e.g. U+00A0) was treated as a space.
    UnicodeSpace,
    /// A word ended in `;`, which was dropped.
    TrailingSemicolon,
    /// A quoted string ran to the end of the line.
    UnterminatedQuote,
    /// A conditional line (`@id ...`) for another config id was skipped.
    ConditionalSkipped,
}

/// The tokenizer. Also handles keepalived's conditional lines: a line
/// starting with `@id` counts only when the config id is `id`, `@^id` only
/// when it is not.
#[derive(Debug, Clone)]
pub struct Lexer<'t, 'c> {
    text: &'t str,
    /// Byte offset of the next unread character.
    pos: usize,
    line: u32,
    line_start: usize,
    at_line_start: bool,
    config_id: Option<&'c str>,
    /// Notes found and not yet taken, with the position of the first of each.
    notes: heapless::Vec<(LexNote, u32, u32), 4>,
    /// Notes already reported once (bit per `LexNote`), kept across `reset`.
    noted: u8,
    /// Every token and note is placed here instead (the text is a
    /// parameter's value, expanded where it is used).
    fixed: Option<(u32, u32)>,
}

/// A resumable position, for reading a block twice.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    pos: usize,
    line: u32,
    line_start: usize,
    at_line_start: bool,
}

/// Where the `}` closing a `${...}` parameter is in `text` (from its
/// `{`), when it closes before white space, or, for the predefined ones
/// that take arguments (`${_RANDOM 1 10}`, `${_ENV HOME}`), before the
/// line ends.
fn braced_len(text: &str) -> Option<usize> {
    let inner = &text[1..];
    let takes_args = ["_RANDOM", "_ENV"].iter().any(|name| {
        inner
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with([' ', '\t']))
    });
    let close = if takes_args {
        text.find(['}', '\n'])?
    } else {
        text.find(|c: char| c == '}' || c.is_whitespace())?
    };
    text[close..].starts_with('}').then_some(close)
}

impl<'t, 'c> Lexer<'t, 'c> {
    /// A lexer over `text`; `config_id` selects conditional lines.
    pub fn new(text: &'t str, config_id: Option<&'c str>) -> Self {
        Lexer {
            text,
            pos: 0,
            line: 1,
            line_start: 0,
            at_line_start: true,
            config_id,
            notes: heapless::Vec::new(),
            noted: 0,
            fixed: None,
        }
    }

    /// A lexer over a parameter's value used at `line`:`col`: every token
    /// is placed there, and a `\` ending a line of a multiline value
    /// only continues it (keepalived.conf(5), "Parameter substitution").
    pub fn expansion(
        text: &'t str,
        config_id: Option<&'c str>,
        line: u32,
        col: u32,
        at_line_start: bool,
    ) -> Self {
        let mut lx = Lexer::new(text, config_id);
        lx.fixed = Some((line, col));
        lx.at_line_start = at_line_start;
        lx
    }

    /// The text from byte `from` to the end of its line, and on over the
    /// following lines while a line ends with `\` (a parameter
    /// definition's value); the lexer moves to that end. Inside a value
    /// (whose lines all end with `\`) a definition is its line alone.
    pub fn rest_of_definition(&mut self, from: usize) -> &'t str {
        if self.fixed.is_some() {
            return self.rest_of_line(from);
        }
        let from = from.min(self.text.len());
        let mut end = from;
        loop {
            let line_end = self.text[end..]
                .find('\n')
                .map_or(self.text.len(), |i| end + i);
            let continued = self.text[end..line_end].trim_end().ends_with('\\');
            if !continued || line_end == self.text.len() {
                end = line_end;
                break;
            }
            // Into the next line.
            end = line_end + 1;
            self.line += 1;
            self.line_start = end;
        }
        self.pos = end;
        &self.text[from..end]
    }

    /// The text from byte `from` to the end of its line (without a
    /// multiline value's closing `\\`); the lexer moves to that end.
    pub fn rest_of_line(&mut self, from: usize) -> &'t str {
        let from = from.min(self.text.len());
        let end = self.text[from..]
            .find('\n')
            .map_or(self.text.len(), |i| from + i);
        self.pos = end;
        let line = self.text[from..end].trim_end();
        match line.strip_suffix('\\') {
            Some(l) if self.fixed.is_some() => l.trim_end(),
            _ => line,
        }
    }

    /// Where the lexer stands now.
    pub fn mark(&self) -> Mark {
        Mark {
            pos: self.pos,
            line: self.line,
            line_start: self.line_start,
            at_line_start: self.at_line_start,
        }
    }

    /// Goes back to `mark`.
    pub fn reset(&mut self, mark: Mark) {
        self.pos = mark.pos;
        self.line = mark.line;
        self.line_start = mark.line_start;
        self.at_line_start = mark.at_line_start;
    }

    /// Takes the next pending note, if any.
    pub fn take_note(&mut self) -> Option<(LexNote, u32, u32)> {
        self.notes.pop()
    }

    fn note(&mut self, note: LexNote, line: u32, col: u32) {
        // Once per kind is enough to tell the user.
        let bit = 1u8 << (note as u8);
        if self.noted & bit == 0 {
            self.noted |= bit;
            let (line, col) = self.fixed.unwrap_or((line, col));
            let _ = self.notes.push((note, line, col));
        }
    }

    fn col_of(&self, byte: usize) -> u32 {
        let start = self.line_start.min(byte);
        self.text[start..byte].chars().count() as u32 + 1
    }

    fn token(&self, kind: TokenKind, text: &'t str, start: usize) -> Token<'t> {
        let (line, col) = self
            .fixed
            .unwrap_or_else(|| (self.line, self.col_of(start)));
        Token {
            kind,
            text,
            line,
            col,
            offset: start,
            first: false,
            file: None,
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn skip_to_line_end(&mut self) {
        match self.text[self.pos..].find('\n') {
            Some(i) => self.pos += i,
            None => self.pos = self.text.len(),
        }
    }

    fn is_space(&mut self, c: char) -> bool {
        if c == '\n' {
            return false;
        }
        if c.is_whitespace() || c == '\u{feff}' {
            if !c.is_ascii() {
                let (line, col) = (self.line, self.col_of(self.pos));
                self.note(LexNote::UnicodeSpace, line, col);
            }
            return true;
        }
        false
    }

    /// Whether only white space is left on the current line.
    fn rest_is_blank(&self) -> bool {
        let rest = &self.text[self.pos..];
        rest[..rest.find('\n').unwrap_or(rest.len())]
            .trim()
            .is_empty()
    }

    /// Whether a `@id` / `@^id` prefix keeps the line.
    fn condition_holds(&self, word: &str) -> bool {
        let (negate, id) = match word.strip_prefix("@^") {
            Some(id) => (true, id),
            None => (false, &word[1..]),
        };
        let matches = self.config_id == Some(id);
        matches != negate
    }

    /// The next token.
    pub fn next_token(&mut self) -> Token<'t> {
        loop {
            let Some(c) = self.peek_char() else {
                let start = self.pos;
                return self.token(TokenKind::End, "", start);
            };
            if c == '\n' {
                let tok = self.token(TokenKind::Newline, "", self.pos);
                self.pos += 1;
                if self.fixed.is_some() {
                    self.at_line_start = true;
                    return tok;
                }
                self.line += 1;
                self.line_start = self.pos;
                self.at_line_start = true;
                return tok;
            }
            if self.is_space(c) {
                self.pos += c.len_utf8();
                continue;
            }
            if c == '#' || c == '!' {
                self.skip_to_line_end();
                continue;
            }
            let start = self.pos;
            let first_on_line = core::mem::replace(&mut self.at_line_start, false);
            match c {
                '{' => {
                    self.pos += 1;
                    return self.token(TokenKind::Open, "{", start);
                }
                '}' => {
                    self.pos += 1;
                    return self.token(TokenKind::Close, "}", start);
                }
                '"' => {
                    let body = start + 1;
                    let rest = &self.text[body..];
                    let line_len = rest.find('\n').unwrap_or(rest.len());
                    let (end, next) = match rest[..line_len].find('"') {
                        Some(q) => (body + q, body + q + 1),
                        None => {
                            let (line, col) = (self.line, self.col_of(start));
                            self.note(LexNote::UnterminatedQuote, line, col);
                            let end = body + line_len;
                            (end, end)
                        }
                    };
                    self.pos = next;
                    let text = self.text[body..end].trim_end_matches('\r');
                    let mut tok = self.token(TokenKind::Quoted, text, start);
                    tok.offset = body;
                    tok.first = first_on_line;
                    return tok;
                }
                _ => {}
            }
            let mut end = start;
            // `${NAME}` belongs to its word (parameter substitution).
            let mut braced_to = 0;
            for (i, ch) in self.text[start..].char_indices() {
                let at = start + i;
                if at < braced_to {
                    end = at + ch.len_utf8();
                    continue;
                }
                if ch == '{'
                    && self.text[..at].ends_with('$')
                    && let Some(close) = braced_len(&self.text[at..])
                {
                    braced_to = at + close + 1;
                    end = at + 1;
                    continue;
                }
                if ch == '{'
                    || ch == '}'
                    || ch == '"'
                    || ch == '\n'
                    || ch.is_whitespace()
                    || ch == '\u{feff}'
                {
                    break;
                }
                // An unquoted # or ! inside a word starts a comment only
                // after white space, as in keepalived; `pa#ss` is a word.
                end = start + i + ch.len_utf8();
            }
            self.pos = end;
            let mut text = &self.text[start..end];
            if first_on_line && text.starts_with('@') && text.len() > 1 {
                if self.condition_holds(text) {
                    // The rest of the line reads as if the prefix were not there.
                    self.at_line_start = true;
                    continue;
                }
                let (line, col) = (self.line, self.col_of(start));
                self.note(LexNote::ConditionalSkipped, line, col);
                self.skip_to_line_end();
                continue;
            }
            if text.len() > 1 && text.ends_with(';') {
                let (line, col) = (self.line, self.col_of(end - 1));
                self.note(LexNote::TrailingSemicolon, line, col);
                text = text.trim_end_matches(';');
            }
            if self.fixed.is_some() && text == "\\" && self.rest_is_blank() {
                // A multiline value's line continuation.
                continue;
            }
            let mut tok = self.token(TokenKind::Word, text, start);
            tok.first = first_on_line;
            return tok;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapless::Vec;

    fn kinds(text: &str) -> Vec<(TokenKind, &str, u32, u32), 16> {
        let mut lx = Lexer::new(text, None);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token();
            out.push((t.kind, t.text, t.line, t.col))
                .expect("at most 16 tokens in a test text");
            if t.kind == TokenKind::End {
                return out;
            }
        }
    }

    #[test]
    fn words_braces_comments_and_quotes() {
        use TokenKind::*;
        let toks = kinds("a b{ # c\r\n  \"x y\" }! z\nVG_1{}");
        assert_eq!(
            toks,
            [
                (Word, "a", 1, 1),
                (Word, "b", 1, 3),
                (Open, "{", 1, 4),
                (Newline, "", 1, 10),
                (Quoted, "x y", 2, 3),
                (Close, "}", 2, 9),
                (Newline, "", 2, 13),
                (Word, "VG_1", 3, 1),
                (Open, "{", 3, 5),
                (Close, "}", 3, 6),
                (End, "", 3, 7),
            ]
        );
    }

    #[test]
    fn columns_count_characters_and_nbsp_is_space() {
        let mut lx = Lexer::new("优先 priority\u{a0}100", None);
        lx.next_token();
        let t = lx.next_token();
        assert_eq!((t.text, t.col), ("priority", 4));
        assert_eq!(lx.next_token().text, "100");
        assert_eq!(lx.take_note().map(|n| n.0), Some(LexNote::UnicodeSpace));
    }

    #[test]
    fn semicolons_and_conditionals() {
        let mut lx = Lexer::new(
            "auth_type PASS;\n@high priority 170\n@^high priority 85\n",
            None,
        );
        assert_eq!(lx.next_token().text, "auth_type");
        assert_eq!(lx.next_token().text, "PASS");
        assert_eq!(
            lx.take_note().map(|n| n.0),
            Some(LexNote::TrailingSemicolon)
        );
        lx.next_token();
        lx.next_token(); // the skipped line's newline
        let t = lx.next_token();
        assert_eq!((t.text, t.line), ("priority", 3));
        assert_eq!(lx.next_token().text, "85");
        assert_eq!(
            lx.take_note().map(|n| (n.0, n.1)),
            Some((LexNote::ConditionalSkipped, 2))
        );

        let mut lx = Lexer::new("@high priority 170", Some("high"));
        assert_eq!(lx.next_token().text, "priority");
    }
}
