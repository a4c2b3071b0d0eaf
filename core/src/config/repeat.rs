//! keepalived's sequence and list blocks (keepalived.conf(5), "Sequence
//! blocks" and "List blocks"): a line starting `~SEQ(var, start, step,
//! end)`, `~SEQx(...)` or `~LST(var, v1, v2, ...)` is read once for each
//! value, with `$var` set to it. Several specifications on one line nest,
//! the first outermost. Owns reading the specifications and stepping
//! through their values; the token stream ([`super::subst`]) reads the
//! body and defines the variables.
//!
//! Nothing is stored per value: a loop keeps its specification text and
//! one counter, and reads the text again when it steps.

use super::diag::{Kind, Snippet};
use super::value::is_name;

/// Most specifications on one line.
pub const MAX_LOOPS: usize = 4;
/// Most passes one line makes, all its loops together, and one parse in
/// all: a bound on the work a mistyped end value (`~SEQ(i, 1,
/// 10000000000)`) can cause.
pub const MAX_PASSES: usize = 1 << 20;

/// One loop variable's value for the current pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding<'t> {
    /// A `~SEQ` number, written in decimal or (`~SEQx`) in hexadecimal.
    Number {
        /// The number.
        value: i64,
        /// Written in lower-case hexadecimal without `0x`.
        hex: bool,
    },
    /// A `~LST` value, as written.
    Text(&'t str),
}

/// A sequence or list line being read: its specifications, its body and
/// where each loop stands.
#[derive(Debug, Clone)]
pub struct Repeat<'t> {
    /// The specifications, each `~SEQ(...)`, `~SEQx(...)` or `~LST(...)`.
    specs: &'t str,
    /// What is read once per pass: the rest of the line.
    pub body: &'t str,
    /// Per loop: a `~SEQ`'s current value, a `~LST`'s value index.
    at: [i64; MAX_LOOPS],
    loops: u8,
}

/// One parsed specification.
enum Spec<'t> {
    Seq {
        var: &'t str,
        start: i64,
        step: i64,
        end: i64,
        hex: bool,
    },
    /// The variables (one word, or `{A, B}`) and the values after them.
    List { vars: &'t str, values: &'t str },
}

fn bad(what: &'static str, found: &str) -> Kind {
    Kind::Expected {
        keyword: Snippet::new(found.split('(').next().unwrap_or("~SEQ")),
        what,
        found: Snippet::new(found),
    }
}

/// Whether `word`, first on its line, starts a sequence or list line.
pub fn starts_repeat(word: &str) -> bool {
    word.starts_with("~SEQ") || word.starts_with("~LST")
}

/// keepalived's `strtol(s, 0)`: decimal, `0x` hexadecimal or `0` octal,
/// with an optional sign.
fn number(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, h)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    let n = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -n } else { n })
}

/// The first item of a comma-separated list, trimmed (a `{...}` group
/// stays whole), and the text after its comma, if any.
fn first_item(text: &str) -> (&str, Option<&str>) {
    let mut depth = 0u32;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => return (text[..i].trim(), Some(&text[i + 1..])),
            _ => {}
        }
    }
    (text.trim(), None)
}

/// The items of a comma-separated list, trimmed; `{...}` groups stay whole.
fn items(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    core::iter::from_fn(move || {
        let (item, after) = first_item(rest?);
        rest = after;
        Some(item)
    })
}

/// A `{A, B}` group's items, or a lone item by itself.
fn group(item: &str) -> impl Iterator<Item = &str> {
    let inner = item
        .strip_prefix('{')
        .and_then(|i| i.strip_suffix('}'))
        .unwrap_or(item);
    items(inner)
}

impl<'t> Spec<'t> {
    /// The specification `text` (`~SEQ(...)` and so on, whole).
    fn parse(text: &'t str) -> Result<Spec<'t>, Kind> {
        let open = text.find('(').unwrap_or(text.len());
        let inner = text[open..]
            .strip_prefix('(')
            .and_then(|t| t.strip_suffix(')'))
            .ok_or_else(|| bad("a specification in parentheses", text))?;
        let (var, Some(args)) = first_item(inner) else {
            return Err(bad(
                "a variable and at least one value after it, separated by commas",
                text,
            ));
        };
        match text[..open].trim_end() {
            kw @ ("~SEQ" | "~SEQx") => {
                let hex = kw == "~SEQx";
                if !is_name(var) {
                    return Err(bad("a variable name (letters, digits, _)", text));
                }
                let mut n = [0i64; 3];
                let mut count = 0;
                for a in items(args) {
                    if count == 3 {
                        return Err(bad("at most start, step and end", text));
                    }
                    n[count] = number(a).ok_or_else(|| bad("an integer", text))?;
                    count += 1;
                }
                let (start, step, end) = match count {
                    1 => {
                        let end = n[0];
                        (
                            if end < 0 { -1 } else { 1 },
                            if end < 1 { -1 } else { 1 },
                            end,
                        )
                    }
                    2 => (n[0], if n[0] <= n[1] { 1 } else { -1 }, n[1]),
                    _ => (n[0], n[1], n[2]),
                };
                if step == 0 || (start < end && step < 0) || (start > end && step > 0) {
                    return Err(bad("a step that goes from start towards end", text));
                }
                if hex && (start < 0 || end < 0) {
                    return Err(bad("numbers of at least 0 (~SEQx)", text));
                }
                Ok(Spec::Seq {
                    var,
                    start,
                    step,
                    end,
                    hex,
                })
            }
            "~LST" => {
                let width = group(var).count();
                if group(var).any(|v| !is_name(v)) || width > MAX_LOOPS {
                    return Err(bad("a variable name, or up to 4 in braces ({A, B})", text));
                }
                if items(args).any(|v| group(v).count() != width) {
                    return Err(bad("as many values in each group as variables", text));
                }
                Ok(Spec::List {
                    vars: var,
                    values: args,
                })
            }
            _ => Err(bad("~SEQ(...), ~SEQx(...) or ~LST(...)", text)),
        }
    }

    /// How many values the loop takes (64-bit arithmetic only: 128-bit
    /// division would pull unwinding support into a firmware link).
    fn count(&self) -> u64 {
        match self {
            Spec::Seq {
                start, step, end, ..
            } => (end.abs_diff(*start) / step.unsigned_abs()).saturating_add(1),
            Spec::List { values, .. } => items(values).count() as u64,
        }
    }

    fn first(&self) -> i64 {
        match self {
            Spec::Seq { start, .. } => *start,
            Spec::List { .. } => 0,
        }
    }

    /// The counter after `at`, if the loop goes on.
    fn after(&self, at: i64) -> Option<i64> {
        match self {
            Spec::Seq { step, end, .. } => {
                let next = at.checked_add(*step)?;
                let on = if *step > 0 {
                    next <= *end
                } else {
                    next >= *end
                };
                on.then_some(next)
            }
            Spec::List { values, .. } => {
                let next = at + 1;
                (items(values).count() as i64 > next).then_some(next)
            }
        }
    }

    /// Each variable and its value when the counter is `at`.
    fn bindings(
        &self,
        at: i64,
        mut bind: impl FnMut(&'t str, Binding<'t>) -> Result<(), Kind>,
    ) -> Result<(), Kind> {
        match self {
            Spec::Seq { var, hex, .. } => bind(
                var,
                Binding::Number {
                    value: at,
                    hex: *hex,
                },
            ),
            Spec::List { vars, values } => {
                let tuple = items(values).nth(at as usize).unwrap_or("");
                for (var, value) in group(vars).zip(group(tuple)) {
                    bind(var, Binding::Text(value))?;
                }
                Ok(())
            }
        }
    }
}

/// The specifications of `specs`, each whole (`~SEQ(...)`).
fn each_spec(specs: &str) -> impl Iterator<Item = &str> {
    let mut rest = specs.trim_start();
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(')').map_or(rest.len(), |i| i + 1);
        let (spec, after) = rest.split_at(end);
        rest = after.trim_start();
        Some(spec)
    })
}

/// Splits a sequence line into its specifications and its body: the
/// specifications run while the text starts with `~` (each up to its `)`).
pub fn split_line(line: &str) -> (&str, &str) {
    let mut rest = line.trim_start();
    while rest.starts_with('~') {
        rest = rest.find(')').map_or("", |i| rest[i + 1..].trim_start());
    }
    (line[..line.len() - rest.len()].trim(), rest.trim())
}

impl<'t> Repeat<'t> {
    /// The loops of `specs` over `body`, at their first values.
    pub fn new(specs: &'t str, body: &'t str) -> Result<Repeat<'t>, Kind> {
        let mut r = Repeat {
            specs,
            body,
            at: [0; MAX_LOOPS],
            loops: 0,
        };
        let mut passes = 1u64;
        for text in each_spec(specs) {
            let spec = Spec::parse(text)?;
            passes = passes.saturating_mul(spec.count());
            if passes > MAX_PASSES as u64 {
                return Err(Kind::TooMany {
                    what: "passes of one ~SEQ or ~LST line",
                    max: MAX_PASSES,
                });
            }
            let i = usize::from(r.loops);
            if i == MAX_LOOPS {
                return Err(Kind::TooMany {
                    what: "~SEQ and ~LST specifications on one line",
                    max: MAX_LOOPS,
                });
            }
            r.at[i] = spec.first();
            r.loops += 1;
        }
        if body.is_empty() {
            return Err(bad(
                "something after the specification to repeat",
                specs.trim(),
            ));
        }
        Ok(r)
    }

    fn specs(&self) -> impl Iterator<Item = Spec<'t>> + use<'t> {
        // Every specification parsed when the loop was made.
        each_spec(self.specs).filter_map(|s| Spec::parse(s).ok())
    }

    /// Moves to the next pass (the last loop fastest); false when every
    /// pass has been read.
    pub fn step(&mut self) -> bool {
        let n = usize::from(self.loops);
        for i in (0..n).rev() {
            let Some(spec) = self.specs().nth(i) else {
                return false;
            };
            if let Some(next) = spec.after(self.at[i]) {
                self.at[i] = next;
                for (j, later) in self.specs().enumerate().skip(i + 1) {
                    self.at[j] = later.first();
                }
                return true;
            }
        }
        false
    }

    /// Calls `bind` with each variable of the current pass and its value.
    pub fn bindings(
        &self,
        mut bind: impl FnMut(&'t str, Binding<'t>) -> Result<(), Kind>,
    ) -> Result<(), Kind> {
        for (i, spec) in self.specs().enumerate() {
            spec.bindings(self.at[i], &mut bind)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapless::{String, Vec};

    /// Every pass's bindings, written `A=1 B=x`.
    fn passes(line: &str) -> Vec<String<32>, 32> {
        let (specs, body) = split_line(line);
        let mut r = Repeat::new(specs, body).unwrap();
        let mut out = Vec::new();
        loop {
            let mut s = String::<32>::new();
            r.bindings(|var, b| {
                use core::fmt::Write;
                let _ = match b {
                    Binding::Number { value, hex: false } => write!(s, "{var}={value} "),
                    Binding::Number { value, hex: true } => write!(s, "{var}={value:x} "),
                    Binding::Text(t) => write!(s, "{var}={t} "),
                };
                Ok(())
            })
            .unwrap();
            out.push(s).unwrap();
            if !r.step() {
                return out;
            }
        }
    }

    #[test]
    fn the_man_page_sequences() {
        assert_eq!(
            passes("~SEQ(SUBNET, 0, 3) ip_address 10.0.${SUBNET}.1"),
            ["SUBNET=0 ", "SUBNET=1 ", "SUBNET=2 ", "SUBNET=3 "]
        );
        assert_eq!(
            passes("~SEQx(SUBNET, 0x90, 0x10, 0xc0) x"),
            ["SUBNET=90 ", "SUBNET=a0 ", "SUBNET=b0 ", "SUBNET=c0 "]
        );
        assert_eq!(
            passes("~SEQx(AD2, 0x90, 0x10, 0xa0) ~SEQx(AD1, 0x12, -1, 0x11) x"),
            [
                "AD2=90 AD1=12 ",
                "AD2=90 AD1=11 ",
                "AD2=a0 AD1=12 ",
                "AD2=a0 AD1=11 "
            ]
        );
        // Defaults: start 1 (or -1), step towards end.
        assert_eq!(passes("~SEQ(i,3) x"), ["i=1 ", "i=2 ", "i=3 "]);
        assert_eq!(passes("~SEQ(i,-2) x"), ["i=-1 ", "i=-2 "]);
        assert_eq!(passes("~SEQ(i,0) x"), ["i=1 ", "i=0 "]);
        assert_eq!(passes("~SEQ(i,5,3) x"), ["i=5 ", "i=4 ", "i=3 "]);
        assert_eq!(passes("~SEQ(i, 1, 4, 10) x"), ["i=1 ", "i=5 ", "i=9 "]);
        assert_eq!(passes("~SEQ(i, 010, 8) x"), ["i=8 "]);
    }

    #[test]
    fn the_man_page_lists() {
        assert_eq!(
            passes("~LST({IP, IP1}, {10,1},{20,4},{5,6}) 192.168.${IP}.${IP1}"),
            ["IP=10 IP1=1 ", "IP=20 IP1=4 ", "IP=5 IP1=6 "]
        );
        assert_eq!(passes("~LST(IP, 1, 2) ~LST(IP1, 5,6,7) x").len(), 6);
        assert_eq!(
            passes("~LST({IP, IP1}, {10,1},{20,4}) ~SEQ(IP2,168,2,170) x"),
            [
                "IP=10 IP1=1 IP2=168 ",
                "IP=10 IP1=1 IP2=170 ",
                "IP=20 IP1=4 IP2=168 ",
                "IP=20 IP1=4 IP2=170 "
            ]
        );
    }

    #[test]
    fn bad_specifications_say_what_was_expected() {
        for line in [
            "~SEQ(i) x",
            "~SEQ(i, a) x",
            "~SEQ(i, 1, -1, 5) x",
            "~SEQ(i, 1, 0, 5) x",
            "~SEQx(i, -3, 2) x",
            "~SEQ(1i, 3) x",
            "~SEQ(i, 1, 2, 3, 4) x",
            "~SEQ(i, 3",
            "~LST({A, B}, {1}, {2, 3}) x",
            "~LST(A-B, 1) x",
            "~FOO(i, 3) x",
            "~SEQ(i, 3)",
            "~SEQ(a,1) ~SEQ(b,1) ~SEQ(c,1) ~SEQ(d,1) ~SEQ(e,1) x",
            "~SEQ(i, 1, 10000000000) x",
            "~SEQ(i, 1024) ~SEQ(j, 1025) x",
        ] {
            let (specs, body) = split_line(line);
            let err = Repeat::new(specs, body).expect_err(line);
            assert!(
                matches!(err, Kind::Expected { .. } | Kind::TooMany { .. }),
                "{line}: {err:?}"
            );
        }
    }

    #[test]
    fn split_line_finds_the_body() {
        assert_eq!(
            split_line("~SEQ(A, 1, 2) ~LST({B, C}, {1, 2}) real_server $RS"),
            ("~SEQ(A, 1, 2) ~LST({B, C}, {1, 2})", "real_server $RS")
        );
        assert_eq!(split_line("~SEQ(A, 3"), ("~SEQ(A, 3", ""));
    }
}
