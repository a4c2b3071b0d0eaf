//! keepalived's free hex format for UDP_CHECK's `payload` and
//! `require_reply` (keepalived.conf(5) "UDP_CHECK", utils.c
//! `read_hex_str`): words of hex digits separated by blanks, read two
//! digits to a byte, a word's odd last digit a byte of its own
//! (`Ab12f 3 456` is `AB 12 0F 03 45 06`); in a pattern `X`/`x` is a
//! wildcard nibble. Pure functions, no diagnostics: the parser words the
//! errors.

use heapless::Vec;

/// Why a hex string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HexError {
    /// Not a hex digit (nor a wildcard where they are allowed), in word
    /// number `word` (from 0) of the ones given.
    BadDigit {
        /// Which word.
        word: usize,
    },
    /// More bytes than the buffer holds.
    TooLong,
}

/// One nibble: its value and whether it is a wildcard.
fn nibble(c: u8, wildcards: bool) -> Option<(u8, bool)> {
    match c {
        b'0'..=b'9' => Some((c - b'0', false)),
        b'a'..=b'f' => Some((c - b'a' + 10, false)),
        b'A'..=b'F' => Some((c - b'A' + 10, false)),
        b'x' | b'X' if wildcards => Some((0, true)),
        _ => None,
    }
}

/// Reads `words` (each may itself hold blanks, as a quoted word does) into
/// `bytes`, and into `mask` the bits of each byte a wildcard leaves
/// unchecked (all zero when `wildcards` is off).
pub fn read<'a, const N: usize>(
    words: impl IntoIterator<Item = &'a str>,
    wildcards: bool,
    bytes: &mut Vec<u8, N>,
    mask: &mut Vec<u8, N>,
) -> Result<(), HexError> {
    bytes.clear();
    mask.clear();
    for (word, text) in words.into_iter().enumerate() {
        for part in text.split([' ', '\t']).filter(|p| !p.is_empty()) {
            for pair in part.as_bytes().chunks(2) {
                let mut value = 0u8;
                let mut wild = 0u8;
                for &c in pair {
                    let (v, w) = nibble(c, wildcards).ok_or(HexError::BadDigit { word })?;
                    value = (value << 4) | v;
                    wild = (wild << 4) | if w { 0x0f } else { 0 };
                }
                bytes.push(value).map_err(|_| HexError::TooLong)?;
                mask.push(wild).map_err(|_| HexError::TooLong)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_example() {
        let (mut b, mut m) = (Vec::<u8, 16>::new(), Vec::<u8, 16>::new());
        read(["Ab12f", "3", "456", "546443123"], false, &mut b, &mut m).unwrap();
        assert_eq!(
            &b[..],
            &[
                0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03
            ]
        );
        assert!(m.iter().all(|&x| x == 0));
    }

    #[test]
    fn wildcards_only_where_allowed() {
        let (mut b, mut m) = (Vec::<u8, 4>::new(), Vec::<u8, 4>::new());
        read(["1X x2"], true, &mut b, &mut m).unwrap();
        assert_eq!((&b[..], &m[..]), (&[0x10, 0x02][..], &[0x0f, 0xf0][..]));
        assert_eq!(
            read(["00", "1X"], false, &mut b, &mut m),
            Err(HexError::BadDigit { word: 1 })
        );
        assert_eq!(
            read(["0g"], true, &mut b, &mut m),
            Err(HexError::BadDigit { word: 0 })
        );
        assert_eq!(
            read(["0102030405"], true, &mut b, &mut m),
            Err(HexError::TooLong)
        );
    }
}
