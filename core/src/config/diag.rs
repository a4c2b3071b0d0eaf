//! Diagnostics: every warning and error the parser reports, with the file,
//! line and column it concerns and what was expected. Texts quoted from the
//! configuration are copied into short bounded snippets so a diagnostic
//! outlives the text it came from (an included file, say).

use core::fmt;

/// Longest quoted text kept in a diagnostic; longer text is cut with "…".
pub const SNIPPET_LEN: usize = 48;
/// Longest file name kept in a diagnostic.
pub const FILE_LEN: usize = 96;

/// A bounded copy of configuration text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Snippet(heapless::String<SNIPPET_LEN>);

impl Snippet {
    /// Copies `text`, cutting it at a character boundary if too long.
    pub fn new(text: &str) -> Snippet {
        Snippet(truncated(text))
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn truncated<const N: usize>(text: &str) -> heapless::String<N> {
    let mut s = heapless::String::new();
    for c in text.chars() {
        if s.len() + c.len_utf8() > N.saturating_sub(3) {
            let _ = s.push('…');
            break;
        }
        let _ = s.push(c);
    }
    s
}

impl fmt::Debug for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Control characters are shown escaped (`\u{7}`): they would be
/// invisible, or act on the terminal, if written as they are.
impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.as_str().chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// Warning or error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The file is usable; something was ignored or assumed.
    Warning,
    /// The file is refused.
    Error,
}

/// What a diagnostic says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    // ---- warnings ----
    /// A keyword vrlb does not know; its statement (and block) was skipped.
    UnknownKeyword {
        /// The keyword.
        keyword: Snippet,
        /// The block it appeared in.
        block: &'static str,
        /// A known keyword it resembles.
        suggestion: Option<&'static str>,
    },
    /// A keyword vrlb knows but does not act on.
    Unsupported {
        /// The keyword.
        keyword: Snippet,
        /// Why, or what vrlb does instead.
        note: &'static str,
    },
    /// A deprecated spelling, accepted.
    Deprecated {
        /// The keyword used.
        keyword: Snippet,
        /// The current spelling.
        instead: &'static str,
    },
    /// Non-ASCII white space (U+00A0, ...) treated as a space.
    UnicodeSpace,
    /// A trailing `;` was dropped (`auth_type PASS;`).
    TrailingSemicolon,
    /// A quoted string was not closed before the end of its line.
    UnterminatedQuote,
    /// A `}` with no open block; ignored.
    StrayCloseBrace,
    /// Arguments beyond what the keyword takes; ignored.
    ExtraArguments {
        /// The keyword.
        keyword: Snippet,
        /// The first ignored argument.
        extra: Snippet,
    },
    /// An assumption made for a missing or zero value.
    Assumed {
        /// The keyword.
        keyword: Snippet,
        /// What was assumed.
        note: &'static str,
    },
    /// Lines for another config id (`@name`) were skipped.
    ConditionalSkipped,
    /// A block after a keyword that takes none; skipped.
    UnexpectedBlock {
        /// The keyword.
        keyword: Snippet,
    },
    // ---- errors ----
    /// Something else was expected here.
    Expected {
        /// The keyword whose value this is ("" when not about a value).
        keyword: Snippet,
        /// What was expected.
        what: &'static str,
        /// What was found ("" at the end of a line).
        found: Snippet,
    },
    /// A number outside its range.
    OutOfRange {
        /// The keyword.
        keyword: Snippet,
        /// The value given.
        value: Snippet,
        /// The accepted range.
        range: &'static str,
    },
    /// A value not among the accepted ones.
    UnknownValue {
        /// The keyword.
        keyword: Snippet,
        /// The value given.
        value: Snippet,
        /// The accepted values.
        expected: &'static str,
    },
    /// A block was still open at the end of the file.
    UnclosedBlock {
        /// The block's keyword.
        keyword: Snippet,
    },
    /// More entries than vrlb has room for in one block.
    TooMany {
        /// What overflowed.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// A required setting is missing from a block.
    Missing {
        /// The block.
        block: Snippet,
        /// The missing keyword.
        keyword: &'static str,
    },
    /// Two items of the same name, or another inconsistency a sink found.
    Conflict {
        /// What conflicts.
        what: &'static str,
        /// Its name.
        name: Snippet,
        /// Where the first one is.
        first_line: u32,
    },
    /// A reference to something the configuration does not define.
    Undefined {
        /// What kind of thing.
        what: &'static str,
        /// The name used.
        name: Snippet,
    },
    /// A value the configuration gives that vrlb cannot apply.
    Invalid {
        /// The block or keyword.
        what: &'static str,
        /// What is wrong.
        note: &'static str,
    },
    /// An `include` failed.
    Include {
        /// The pattern.
        pattern: Snippet,
        /// Why.
        reason: &'static str,
    },
}

impl Kind {
    /// Whether this refuses the file.
    pub fn severity(&self) -> Severity {
        match self {
            Kind::Expected { .. }
            | Kind::OutOfRange { .. }
            | Kind::UnknownValue { .. }
            | Kind::UnclosedBlock { .. }
            | Kind::TooMany { .. }
            | Kind::Missing { .. }
            | Kind::Conflict { .. }
            | Kind::Invalid { .. }
            | Kind::Undefined { .. }
            | Kind::Include { .. } => Severity::Error,
            _ => Severity::Warning,
        }
    }
}

/// A diagnostic at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file's name as the driver gave it.
    pub file: heapless::String<FILE_LEN>,
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
    /// What it says.
    pub kind: Kind,
}

impl Diagnostic {
    /// A diagnostic at `line`:`col` of `file`.
    pub fn new(file: &str, line: u32, col: u32, kind: Kind) -> Diagnostic {
        Diagnostic {
            file: truncated(file),
            line,
            col,
            kind,
        }
    }

    /// Whether this refuses the file.
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity() {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(
            f,
            "{}:{}:{}: {level}: {}",
            self.file, self.line, self.col, self.kind
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::UnknownKeyword {
                keyword,
                block,
                suggestion,
            } => {
                match suggestion {
                    // Known, but in another block.
                    Some(s) if *s == keyword.as_str() => {
                        write!(f, "'{keyword}' does not belong in {block}, skipped")
                    }
                    Some(s) => write!(
                        f,
                        "unknown keyword '{keyword}' in {block}, skipped (did you mean '{s}'?)"
                    ),
                    None => write!(f, "unknown keyword '{keyword}' in {block}, skipped"),
                }
            }
            Kind::Unsupported { keyword, note } => {
                write!(f, "'{keyword}' is not supported by vrlb: {note}")
            }
            Kind::Deprecated { keyword, instead } => {
                write!(f, "'{keyword}' is deprecated, use '{instead}'")
            }
            Kind::UnicodeSpace => {
                f.write_str("non-ASCII white space (such as U+00A0) treated as a space")
            }
            Kind::TrailingSemicolon => {
                f.write_str("trailing ';' ignored: keepalived.conf needs no terminator")
            }
            Kind::UnterminatedQuote => {
                f.write_str("quoted string not closed before the end of the line")
            }
            Kind::StrayCloseBrace => f.write_str("'}' closes no block, ignored"),
            Kind::ExtraArguments { keyword, extra } => {
                write!(
                    f,
                    "'{keyword}' takes fewer arguments: '{extra}' and after ignored"
                )
            }
            Kind::Assumed { keyword, note } => write!(f, "'{keyword}': {note}"),
            Kind::ConditionalSkipped => f.write_str(
                "conditional lines (@id ...) for another config id are skipped from here on",
            ),
            Kind::UnexpectedBlock { keyword } => {
                write!(f, "'{keyword}' takes no block: the block was skipped")
            }
            Kind::Expected {
                keyword,
                what,
                found,
            } => {
                if !keyword.as_str().is_empty() {
                    write!(f, "'{keyword}': ")?;
                }
                if found.as_str().is_empty() {
                    write!(f, "expected {what}, found the end of the line")
                } else {
                    write!(f, "expected {what}, found '{found}'")
                }
            }
            Kind::OutOfRange {
                keyword,
                value,
                range,
            } => {
                write!(
                    f,
                    "'{keyword}' value '{value}' is out of range: expected {range}"
                )
            }
            Kind::UnknownValue {
                keyword,
                value,
                expected,
            } => {
                write!(f, "'{keyword}' value '{value}' is not one of: {expected}")
            }
            Kind::UnclosedBlock { keyword } => {
                write!(f, "block '{keyword}' is not closed with '}}'")
            }
            Kind::TooMany { what, max } => write!(f, "too many {what}: vrlb holds at most {max}"),
            Kind::Missing { block, keyword } => write!(f, "'{block}' needs '{keyword}'"),
            Kind::Conflict {
                what,
                name,
                first_line,
            } => {
                write!(f, "{what} '{name}' is already defined at line {first_line}")
            }
            Kind::Invalid { what, note } => write!(f, "{what}: {note}"),
            Kind::Undefined { what, name } => write!(f, "'{name}' is not a defined {what}"),
            Kind::Include { pattern, reason } => write!(f, "include '{pattern}': {reason}"),
        }
    }
}

impl core::error::Error for Diagnostic {}
