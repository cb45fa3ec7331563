//! The split regexes for any text: the first piece of a text, found by following the
//! regex's alternatives in order (with the backtracking a regex engine would do) over the
//! character classes of every code point. `exact.rs` tries its ASCII scanner first and
//! comes here when a non-ASCII character decides; this module alone handles any text, and
//! the tests compare it piece by piece with `bpe-openai`'s compiled regexes.
//!
//! `o200k_base`, alternatives in order:
//! `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
//! `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
//! `\p{N}{1,3}`, ` ?[^\s\p{L}\p{N}]+[\r\n/]*`, `\s*[\r\n]+`, `\s+(?!\S)`, `\s+`.
//!
//! `cl100k_base`: `(?i:'s|'t|'re|'ve|'m|'ll|'d)`, `[^\r\n\p{L}\p{N}]?\p{L}+`, `\p{N}{1,3}`,
//! ` ?[^\s\p{L}\p{N}]+[\r\n]*`, `\s*[\r\n]+`, `\s+(?!\S)`, `\s+`.

use super::layout::{
    C_LOWER, C_MARK, C_NEWLINE, C_NUMBER, C_OTHER_LETTER, C_SPACE, C_UPPER, CLASS_BLOCK,
};

include!(concat!(env!("OUT_DIR"), "/unicode_folds.rs"));

/// Block numbers (`u16`, little-endian) per 256 code points, then the blocks.
static CLASSES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/unicode.classes"));
/// Blocks of the table: `0x110000 / 256`.
const BLOCKS: usize = 0x11_0000 / CLASS_BLOCK;

/// `\p{L}`.
const LETTER: u8 = C_UPPER | C_LOWER | C_OTHER_LETTER;
/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`: the case-less and upper-case part of an o200k word.
const WORD_UPPER: u8 = C_UPPER | C_OTHER_LETTER | C_MARK;
/// `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`: the case-less and lower-case part of an o200k word.
const WORD_LOWER: u8 = C_LOWER | C_OTHER_LETTER | C_MARK;

/// The class bits of `c`.
#[inline]
pub(super) fn class_of(c: char) -> u8 {
    let cp = c as usize;
    let block = CLASSES
        .get(2 * (cp / CLASS_BLOCK)..)
        .and_then(|b| b.get(..2))
        .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    CLASSES
        .get(2 * BLOCKS + block * CLASS_BLOCK + cp % CLASS_BLOCK)
        .copied()
        .unwrap_or(0)
}

/// `[^\r\n\p{L}\p{N}]`: may precede a word.
#[inline]
fn is_prefix(class: u8) -> bool {
    class & (C_NEWLINE | LETTER | C_NUMBER) == 0
}

/// `[^\s\p{L}\p{N}]`: punctuation and symbols (and marks, and control characters).
#[inline]
fn is_punct(class: u8) -> bool {
    class & (C_SPACE | LETTER | C_NUMBER) == 0
}

/// A text and the characters in it, by byte offset.
#[derive(Clone, Copy)]
struct Text<'a>(&'a str);

impl Text<'_> {
    /// The character at byte `i` and its class, `None` at the end.
    #[inline]
    fn at(self, i: usize) -> Option<(char, u8)> {
        let c = self.0.get(i..)?.chars().next()?;
        Some((c, class_of(c)))
    }

    /// The end of the run of characters of a class in `want` from `i`.
    #[inline]
    fn run(self, mut i: usize, want: u8) -> usize {
        while let Some((c, class)) = self.at(i) {
            if class & want == 0 {
                break;
            }
            i += c.len_utf8();
        }
        i
    }

    /// The end of `(?i:'s|'t|'re|'ve|'m|'ll|'d)` at `i`, if it is there.
    fn contraction(self, i: usize) -> Option<usize> {
        let (quote, _) = self.at(i)?;
        if fold(quote) != Some(b'\'') {
            return None;
        }
        let i = i + quote.len_utf8();
        let (first, _) = self.at(i)?;
        let i = i + first.len_utf8();
        let second = match fold(first)? {
            b's' | b't' | b'm' | b'd' => return Some(i),
            b'r' | b'v' => b'e',
            b'l' => b'l',
            _ => return None,
        };
        let (c, _) = self.at(i)?;
        (fold(c) == Some(second)).then(|| i + c.len_utf8())
    }

    /// `i` past an optional contraction.
    #[inline]
    fn optional_contraction(self, i: usize) -> usize {
        self.contraction(i).unwrap_or(i)
    }

    /// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+` at `p`: the greedy star
    /// gives back characters until the plus can match.
    fn o200k_lower_word(self, p: usize) -> Option<usize> {
        let mut k = p;
        // The end of the last character of the run that the plus could also take.
        let mut last_lower = None;
        while let Some((c, class)) = self.at(k) {
            if class & WORD_UPPER == 0 {
                break;
            }
            k += c.len_utf8();
            if class & WORD_LOWER != 0 {
                last_lower = Some(k);
            }
        }
        match self.at(k) {
            Some((_, class)) if class & WORD_LOWER != 0 => Some(self.run(k, WORD_LOWER)),
            _ => last_lower,
        }
    }

    /// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*` at `p`.
    fn o200k_upper_word(self, p: usize) -> Option<usize> {
        let k = self.run(p, WORD_UPPER);
        (k > p).then(|| self.run(k, WORD_LOWER))
    }

    /// `\p{N}{1,3}` at 0, the first character being a number.
    fn digits(self, first: char) -> usize {
        let mut end = first.len_utf8();
        for _ in 1..3 {
            match self.at(end) {
                Some((c, class)) if class & C_NUMBER != 0 => end += c.len_utf8(),
                _ => break,
            }
        }
        end
    }

    /// ` ?[^\s\p{L}\p{N}]+` then any of `extra` at 0.
    fn punct(self, first: char, first_class: u8, extra: &[u8]) -> Option<usize> {
        let start = if first == ' ' && self.at(1).is_some_and(|(_, class)| is_punct(class)) {
            1
        } else if is_punct(first_class) {
            0
        } else {
            return None;
        };
        let mut end = self.run_punct(start);
        while self
            .0
            .as_bytes()
            .get(end)
            .is_some_and(|b| extra.contains(b))
        {
            end += 1;
        }
        Some(end)
    }

    /// The end of the run of `[^\s\p{L}\p{N}]` from `i`.
    fn run_punct(self, mut i: usize) -> usize {
        while let Some((c, class)) = self.at(i) {
            if !is_punct(class) {
                break;
            }
            i += c.len_utf8();
        }
        i
    }

    /// `\s*[\r\n]+`, `\s+(?!\S)`, `\s+` at 0, the first character being a space.
    fn whitespace(self) -> usize {
        let mut end = 0;
        let mut last_start = 0;
        let mut last_newline_end = None;
        let mut chars = 0;
        while let Some((c, class)) = self.at(end) {
            if class & C_SPACE == 0 {
                break;
            }
            last_start = end;
            end += c.len_utf8();
            chars += 1;
            if class & C_NEWLINE != 0 {
                last_newline_end = Some(end);
            }
        }
        match last_newline_end {
            // `\s*[\r\n]+`: up to and including the last line break of the run.
            Some(newline_end) => newline_end,
            // `\s+$`, or `\s+` of one space before something else.
            None if end == self.0.len() || chars == 1 => end,
            // `\s+(?!\S)`: the last space goes with what follows.
            None => last_start,
        }
    }
}

/// The contraction letter (or `'`) that `c` matches case-insensitively.
#[inline]
fn fold(c: char) -> Option<u8> {
    if c.is_ascii() {
        Some((c as u8).to_ascii_lowercase())
    } else {
        non_ascii_fold(c)
    }
}

/// The length of the first `o200k_base` piece of `text` (at least one character, unless
/// `text` is empty).
pub(super) fn first_piece_o200k(text: &str) -> usize {
    let t = Text(text);
    let Some((first, class)) = t.at(0) else {
        return 0;
    };
    let after_prefix = is_prefix(class).then_some(first.len_utf8());
    let word = after_prefix
        .and_then(|p| t.o200k_lower_word(p))
        .or_else(|| t.o200k_lower_word(0))
        .or_else(|| after_prefix.and_then(|p| t.o200k_upper_word(p)))
        .or_else(|| t.o200k_upper_word(0));
    if let Some(end) = word {
        return t.optional_contraction(end);
    }
    rest_of_piece(t, first, class, b"\r\n/")
}

/// The length of the first `cl100k_base` piece of `text` (at least one character, unless
/// `text` is empty).
pub(super) fn first_piece_cl100k(text: &str) -> usize {
    let t = Text(text);
    let Some((first, class)) = t.at(0) else {
        return 0;
    };
    if let Some(end) = t.contraction(0) {
        return end;
    }
    let len = first.len_utf8();
    if is_prefix(class) && t.at(len).is_some_and(|(_, next)| next & LETTER != 0) {
        return t.run(len, LETTER);
    }
    if class & LETTER != 0 {
        return t.run(0, LETTER);
    }
    rest_of_piece(t, first, class, b"\r\n")
}

/// The alternatives after the words: numbers, punctuation, whitespace.
fn rest_of_piece(t: Text<'_>, first: char, class: u8, extra: &[u8]) -> usize {
    if class & C_NUMBER != 0 {
        t.digits(first)
    } else if let Some(end) = t.punct(first, class, extra) {
        end
    } else if class & C_SPACE != 0 {
        t.whitespace()
    } else {
        // Every character is a letter, number, space or punctuation; should one not be,
        // it is a piece of its own rather than the end of counting.
        first.len_utf8()
    }
}
