//! Exact token counts for OpenAI's encodings, tuned for short texts.
//!
//! The result is, by construction, the one `tiktoken` gives with `encode_ordinary`: the
//! text is split into pieces by the encoding's regex, and every piece is byte-pair encoded
//! with the merge ranks of the encoding. Three things make it fast:
//!
//! - pieces of ASCII text are found by a hand-written scanner that follows the regex's
//!   alternatives in order; whenever a decision would look at a non-ASCII character, the
//!   piece is found by `bpe-openai`'s compiled regex instead (so every script is exact);
//! - a piece that is itself a token (most English words are) costs one hash lookup in a
//!   compact open-addressing table of the vocabulary, instead of running the encoder;
//! - only pieces of several tokens go to `bpe-openai`'s backtracking encoder.
//!
//! `tests/token_exactness.rs` compares the result with `tiktoken-rs` on every path.

use std::sync::LazyLock;

use bpe_openai::Tokenizer;
use bpe_openai::byte_pair_encoding::BytePairEncoding;

/// Which regex splits the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    /// `o200k_base`: case-aware words with contraction suffixes.
    O200k,
    /// `cl100k_base`: words of any case, contractions as their own pieces.
    Cl100k,
}

/// An encoding ready for fast counting.
pub(crate) struct ExactEncoder {
    split: Split,
    tokenizer: &'static Tokenizer,
    table: TokenTable,
}

static O200K: LazyLock<ExactEncoder> =
    LazyLock::new(|| ExactEncoder::new(Split::O200k, bpe_openai::o200k_base()));
static CL100K: LazyLock<ExactEncoder> =
    LazyLock::new(|| ExactEncoder::new(Split::Cl100k, bpe_openai::cl100k_base()));

/// The `o200k_base` encoder, built on first use.
pub(crate) fn o200k() -> &'static ExactEncoder {
    &O200K
}

/// The `cl100k_base` encoder, built on first use.
pub(crate) fn cl100k() -> &'static ExactEncoder {
    &CL100K
}

impl ExactEncoder {
    fn new(split: Split, tokenizer: &'static Tokenizer) -> Self {
        ExactEncoder {
            split,
            tokenizer,
            table: TokenTable::new(&tokenizer.bpe),
        }
    }

    /// The number of tokens of `text`, as `tiktoken`'s `encode_ordinary(text).len()`.
    pub(crate) fn count(&self, text: &str) -> usize {
        let bytes = text.as_bytes();
        let mut pos = 0;
        let mut tokens = 0;
        while pos < bytes.len() {
            let scanned = match self.split {
                Split::O200k => next_piece_o200k(bytes, pos),
                Split::Cl100k => next_piece_cl100k(bytes, pos),
            };
            let end = match scanned {
                Some(end) if end > pos => end,
                _ => self.regex_piece_end(text, pos),
            };
            let piece = bytes.get(pos..end).unwrap_or_default();
            tokens += self.count_piece(piece);
            pos = end;
        }
        tokens
    }

    /// The end of the piece starting at `pos`, by the encoding's compiled regex. The regex
    /// is anchored at the piece start and has no look-behind, so splitting the rest of the
    /// text yields the same first piece as splitting the whole text.
    fn regex_piece_end(&self, text: &str, pos: usize) -> usize {
        let rest = text.get(pos..).unwrap_or_default();
        match self.tokenizer.split(rest).next() {
            Some(piece) if !piece.is_empty() => pos + piece.len(),
            // The patterns match every character; should one ever not, count the next
            // character on its own rather than stop.
            _ => pos + rest.chars().next().map_or(1, char::len_utf8),
        }
    }

    /// Tokens of one piece.
    fn count_piece(&self, piece: &[u8]) -> usize {
        if piece.len() <= 1 {
            // Every single byte is a token.
            piece.len()
        } else if self.table.contains(piece) {
            1
        } else {
            // Several tokens: `bpe-openai`'s backtracking encoder (linear time, and as
            // exact as `tiktoken`'s merge loop).
            self.tokenizer.bpe.count(piece)
        }
    }
}

/// The vocabulary as an open-addressing hash table (linear probing, at most half full),
/// with a copy of every token's bytes so a lookup touches two arrays and calls nothing.
/// Token ids are `tiktoken`'s merge ranks.
struct TokenTable {
    bpe: &'static BytePairEncoding,
    /// Every token's bytes, one after the other.
    arena: Vec<u8>,
    /// Per slot `start << 32 | len << 24 | id` (bytes `arena[start..start + len]`), or
    /// [`EMPTY`]. A token too long or too far into the arena for the layout is marked with
    /// `len` [`LONG`] and compared through `bpe`.
    slots: Vec<u64>,
    shift: u32,
}

const EMPTY: u64 = u64::MAX;
const LONG: u64 = 0xFF;
const ID_BITS: u32 = 24;

impl TokenTable {
    fn new(bpe: &'static BytePairEncoding) -> Self {
        let tokens = bpe.num_tokens().min(1 << ID_BITS);
        let size = tokens.saturating_mul(2).next_power_of_two().max(2);
        let mask = size - 1;
        let shift = 64 - size.trailing_zeros();
        let mut slots = vec![EMPTY; size];
        let mut arena = Vec::new();
        for id in 0..tokens {
            let Ok(id32) = u32::try_from(id) else { break };
            let bytes = bpe.token_bytes(id32);
            let slot = match u32::try_from(arena.len()) {
                Ok(start) if (bytes.len() as u64) < LONG => {
                    arena.extend_from_slice(bytes);
                    u64::from(start) << 32 | (bytes.len() as u64) << ID_BITS | u64::from(id32)
                }
                _ => LONG << ID_BITS | u64::from(id32),
            };
            let mut index = slot_of(bytes, shift);
            while slots[index] != EMPTY {
                index = (index + 1) & mask;
            }
            slots[index] = slot;
        }
        TokenTable {
            bpe,
            arena,
            slots,
            shift,
        }
    }

    /// `true` when `bytes` are one token.
    #[inline]
    fn contains(&self, bytes: &[u8]) -> bool {
        let mask = self.slots.len() - 1;
        let mut index = slot_of(bytes, self.shift);
        loop {
            let slot = self.slots[index];
            if slot == EMPTY {
                return false;
            }
            let id = (slot & ((1 << ID_BITS) - 1)) as u32;
            let len = (slot >> ID_BITS) & 0xFF;
            if len == bytes.len() as u64 {
                let start = (slot >> 32) as usize;
                let token = self.arena.get(start..start + bytes.len());
                if token.is_some_and(|token| same_bytes(token, bytes)) {
                    return true;
                }
            } else if len == LONG && self.long_token_is(id, bytes) {
                return true;
            }
            index = (index + 1) & mask;
        }
    }

    /// Compares a token left out of the arena (never the case for OpenAI's encodings).
    #[cold]
    #[inline(never)]
    fn long_token_is(&self, id: u32, bytes: &[u8]) -> bool {
        self.bpe.token_bytes(id) == bytes
    }
}

/// `a == b` for slices of equal length, without a call for short ones.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        false
    } else if (8..=16).contains(&n) {
        read8(a) == read8(b)
            && read8(a.get(n - 8..).unwrap_or_default())
                == read8(b.get(n - 8..).unwrap_or_default())
    } else if (4..8).contains(&n) {
        read4(a) == read4(b)
            && read4(a.get(n - 4..).unwrap_or_default())
                == read4(b.get(n - 4..).unwrap_or_default())
    } else if n < 4 {
        a.iter().zip(b).all(|(x, y)| x == y)
    } else {
        a == b
    }
}

/// The slot of `bytes` in a table of `2^(64 - shift)` slots: a wyhash-style mix of
/// (overlapping) little-endian loads, whose high bits pick the slot.
#[inline]
fn slot_of(bytes: &[u8], shift: u32) -> usize {
    const K0: u64 = 0xA076_1D64_78BD_642F;
    const K1: u64 = 0xE703_7ED1_A0B4_28DB;
    let len = bytes.len();
    let (a, b) = if len >= 8 {
        let mut h = 0u64;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            h = mix(h ^ read8(chunk), K1);
        }
        (h, read8(bytes.get(len - 8..).unwrap_or_default()))
    } else if len >= 4 {
        (
            read4(bytes),
            read4(bytes.get(len - 4..).unwrap_or_default()),
        )
    } else if len > 0 {
        let first = u64::from(bytes[0]);
        let middle = u64::from(bytes[len / 2]);
        let last = u64::from(bytes[len - 1]);
        (first << 16 | middle << 8 | last, 0)
    } else {
        (0, 0)
    };
    let h = mix(a ^ K0 ^ (len as u64), b ^ K1);
    usize::try_from(h.wrapping_mul(K0) >> shift).unwrap_or(0)
}

/// The folded 128-bit product.
fn mix(a: u64, b: u64) -> u64 {
    let product = u128::from(a).wrapping_mul(u128::from(b));
    (product as u64) ^ ((product >> 64) as u64)
}

#[inline]
fn read8(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

#[inline]
fn read4(bytes: &[u8]) -> u64 {
    bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |w| u64::from(u32::from_le_bytes(w)))
}

// Byte classes as the split regexes see ASCII, as bits so a loop tests a set at once.
/// `[a-z]` (`\p{Ll}`).
const LOWER: u8 = 1;
/// `[A-Z]` (`\p{Lu}`).
const UPPER: u8 = 1 << 1;
/// `[0-9]` (`\p{N}`).
const DIGIT: u8 = 1 << 2;
/// `\r` or `\n`.
const NEWLINE: u8 = 1 << 3;
/// Other `\s`: space, tab, vertical tab, form feed.
const SPACE: u8 = 1 << 4;
/// Anything else ASCII (`[^\s\p{L}\p{N}]`): punctuation, symbols, control characters.
const PUNCT: u8 = 1 << 5;
/// A byte of a non-ASCII character: the scanner gives up and the regex decides.
const OTHER: u8 = 1 << 6;
/// No byte: the end of the text.
const END: u8 = 0;

const LETTER: u8 = LOWER | UPPER;
const WHITESPACE: u8 = SPACE | NEWLINE;
/// May precede a word as its one-character prefix (`[^\r\n\p{L}\p{N}]`).
const PREFIX: u8 = SPACE | PUNCT;

/// The class of every byte value.
static CLASS: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = match b as u8 {
            b'a'..=b'z' => LOWER,
            b'A'..=b'Z' => UPPER,
            b'0'..=b'9' => DIGIT,
            b'\r' | b'\n' => NEWLINE,
            b' ' | b'\t' | 0x0B | 0x0C => SPACE,
            _ => PUNCT,
        };
        b += 1;
    }
    table
};

/// The class at `i`, [`END`] past the end.
#[inline]
fn at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).map_or(END, |&b| CLASS[usize::from(b)])
}

/// Skips bytes of the classes in `want` from `i`; `None` if a non-ASCII byte follows them.
#[inline]
fn skip_while(bytes: &[u8], mut i: usize, want: u8) -> Option<usize> {
    loop {
        let class = at(bytes, i);
        if class & want != 0 {
            i += 1;
        } else if class == OTHER {
            return None;
        } else {
            return Some(i);
        }
    }
}

/// The end of a contraction (`'s|'t|'re|'ve|'m|'ll|'d`, any case) starting at `i`, or `i`
/// when there is none; `None` when a non-ASCII byte would decide (case folding).
fn contraction(bytes: &[u8], i: usize) -> Option<usize> {
    if bytes.get(i) != Some(&b'\'') {
        return Some(i);
    }
    let lower = |j: usize| {
        if at(bytes, j) == OTHER {
            None
        } else {
            Some(bytes.get(j).map(u8::to_ascii_lowercase))
        }
    };
    Some(match lower(i + 1)? {
        Some(b's' | b't' | b'm' | b'd') => i + 2,
        Some(first @ (b'r' | b'v' | b'l')) => {
            let second = if first == b'l' { b'l' } else { b'e' };
            if lower(i + 2)? == Some(second) {
                i + 3
            } else {
                i
            }
        }
        _ => i,
    })
}

/// The end of the digits piece at `pos` (`\p{N}{1,3}`), `pos` holding a digit.
fn digits_piece(bytes: &[u8], pos: usize) -> Option<usize> {
    let mut end = pos + 1;
    while end < pos + 3 {
        match at(bytes, end) {
            DIGIT => end += 1,
            OTHER => return None,
            _ => break,
        }
    }
    Some(end)
}

/// The end of the whitespace piece starting at `pos` (`\s*[\r\n]+`, `\s+(?!\S)`, `\s+`).
fn whitespace_piece(bytes: &[u8], pos: usize) -> Option<usize> {
    let end = skip_while(bytes, pos, WHITESPACE)?;
    let run = bytes.get(pos..end).unwrap_or_default();
    if let Some(last_newline) = run.iter().rposition(|&b| b == b'\r' || b == b'\n') {
        // `\s*[\r\n]+`: up to and including the last line break of the run.
        Some(pos + last_newline + 1)
    } else if end == bytes.len() || end - pos == 1 {
        // `\s+$`, or a single space before something that is not whitespace.
        Some(end)
    } else {
        // `\s+(?!\S)`: the last space goes with what follows.
        Some(end - 1)
    }
}

/// The end of the punctuation piece at `pos` (` ?[^\s\p{L}\p{N}]+` and trailing `extra`
/// bytes), or `Some(pos)` when there is none here.
fn punct_piece(bytes: &[u8], pos: usize, extra: &[u8]) -> Option<usize> {
    let start = if bytes.get(pos) == Some(&b' ') {
        pos + 1
    } else {
        pos
    };
    let mut end = skip_while(bytes, start, PUNCT)?;
    if end == start {
        return Some(pos);
    }
    while bytes.get(end).is_some_and(|b| extra.contains(b)) {
        end += 1;
    }
    Some(end)
}

/// Punctuation, then whitespace, for a piece starting with a space or punctuation that
/// did not start a word.
fn punct_or_whitespace(bytes: &[u8], pos: usize, extra: &[u8]) -> Option<usize> {
    let end = punct_piece(bytes, pos, extra)?;
    if end > pos {
        Some(end)
    } else {
        whitespace_piece(bytes, pos)
    }
}

/// The end of the next `o200k_base` piece at `pos` when ASCII decides it, else `None`.
///
/// The regex, alternatives in order:
/// `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
/// `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
/// `\p{N}{1,3}`, ` ?[^\s\p{L}\p{N}]+[\r\n/]*`, `\s*[\r\n]+`, `\s+(?!\S)`, `\s+`.
fn next_piece_o200k(bytes: &[u8], pos: usize) -> Option<usize> {
    let first = at(bytes, pos);
    if first & (PREFIX | LETTER) != 0 {
        // Words: an optional prefix, upper-case letters, lower-case letters, a
        // contraction. (The first two alternatives together: the second only applies when
        // no lower-case letter follows the upper-case ones, and then ends at the same place.)
        let word_start = if first & PREFIX != 0 { pos + 1 } else { pos };
        let after_upper = skip_while(bytes, word_start, UPPER)?;
        let after_lower = skip_while(bytes, after_upper, LOWER)?;
        if after_lower > word_start {
            return contraction(bytes, after_lower);
        }
    }
    match first {
        DIGIT => digits_piece(bytes, pos),
        SPACE | PUNCT => punct_or_whitespace(bytes, pos, b"\r\n/"),
        NEWLINE => whitespace_piece(bytes, pos),
        // Non-ASCII: the regex decides. (A letter always starts a word, handled above.)
        _ => None,
    }
}

/// The end of the next `cl100k_base` piece at `pos` when ASCII decides it, else `None`.
///
/// The regex, alternatives in order: `(?i:'s|'t|'re|'ve|'m|'ll|'d)`,
/// `[^\r\n\p{L}\p{N}]?\p{L}+`, `\p{N}{1,3}`, ` ?[^\s\p{L}\p{N}]+[\r\n]*`, `\s*[\r\n]+`,
/// `\s+(?!\S)`, `\s+`.
fn next_piece_cl100k(bytes: &[u8], pos: usize) -> Option<usize> {
    let first = at(bytes, pos);
    if first == OTHER {
        return None;
    }
    let end = contraction(bytes, pos)?;
    if end > pos {
        return Some(end);
    }
    if first & (PREFIX | LETTER) != 0 {
        let word_start = if first & PREFIX != 0 { pos + 1 } else { pos };
        let end = skip_while(bytes, word_start, LETTER)?;
        if end > word_start {
            return Some(end);
        }
    }
    match first {
        DIGIT => digits_piece(bytes, pos),
        SPACE | PUNCT => punct_or_whitespace(bytes, pos, b"\r\n"),
        NEWLINE => whitespace_piece(bytes, pos),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_and_every_byte_is_in_the_table() {
        for encoder in [o200k(), cl100k()] {
            let bpe = &encoder.tokenizer.bpe;
            for id in 0..u32::try_from(bpe.num_tokens()).unwrap() {
                assert!(encoder.table.contains(bpe.token_bytes(id)), "token {id}");
            }
            for b in 0..=255u8 {
                assert!(encoder.table.contains(&[b]), "byte {b}");
            }
            assert!(!encoder.table.contains(b"definitely not one token"));
            assert!(!encoder.table.contains(b""));
        }
    }

    #[test]
    fn scanner_gives_up_on_non_ascii_only_where_it_matters() {
        // ASCII decides the first piece although non-ASCII text follows.
        assert_eq!(next_piece_o200k(b"hello \xc3\xa9", 0), Some(5));
        assert_eq!(next_piece_o200k(b"123\xc2\xb2", 0), Some(3));
        // A non-ASCII character could continue the piece: the regex decides.
        assert_eq!(next_piece_o200k("caf\u{e9}".as_bytes(), 0), None);
        assert_eq!(next_piece_o200k("12\u{b2}".as_bytes(), 0), None);
        assert_eq!(next_piece_cl100k("  \u{a0}x".as_bytes(), 0), None);
        assert_eq!(next_piece_cl100k("'\u{17f}".as_bytes(), 0), None);
    }

    #[test]
    fn pieces_follow_the_regex_alternatives() {
        fn pieces(text: &str, next: fn(&[u8], usize) -> Option<usize>) -> Vec<&str> {
            let bytes = text.as_bytes();
            let mut pos = 0;
            let mut out = Vec::new();
            while pos < bytes.len() {
                let end = next(bytes, pos).unwrap();
                out.push(&text[pos..end]);
                pos = end;
            }
            out
        }
        assert_eq!(
            pieces("Don't  stop HTTPServer 12345\n\n  x./y", next_piece_o200k),
            [
                "Don't",
                " ",
                " stop",
                " HTTPServer",
                " ",
                "123",
                "45",
                "\n\n",
                " ",
                " x",
                "./",
                "y"
            ]
        );
        assert_eq!(
            pieces("Don't  stop HTTPServer 12345\n\n  x./y", next_piece_cl100k),
            [
                "Don",
                "'t",
                " ",
                " stop",
                " HTTPServer",
                " ",
                "123",
                "45",
                "\n\n",
                " ",
                " x",
                "./",
                "y"
            ]
        );
        // Per o200k, words split at a lower-to-upper case change; `\s+$` keeps trailing
        // spaces together.
        assert_eq!(
            pieces("camelCase  ", next_piece_o200k),
            ["camel", "Case", "  "]
        );
    }
}
