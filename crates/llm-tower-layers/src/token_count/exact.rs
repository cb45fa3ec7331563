//! Exact token counts for OpenAI's encodings, tuned for short texts and small memory.
//!
//! The result is, by construction, the one `tiktoken` gives with `encode_ordinary`: the
//! text is split into pieces by the encoding's regex, and every piece is byte-pair encoded
//! with the merge ranks of the encoding. What makes it fast and small:
//!
//! - pieces are found by hand-written scanners that follow the regex's alternatives in
//!   order: a byte scanner for ASCII text, and, whenever a decision would look at a
//!   non-ASCII character, one over the Unicode classes of every code point (`unicode.rs`,
//!   tables from `regex-syntax` made by `build.rs`), so every script is exact and no
//!   regex is compiled at run time;
//! - the vocabulary is a compact open-addressing hash table that `build.rs` lays out at
//!   build time and the binary holds as static data (`table.rs`): nothing is built at run
//!   time and only the pages a count touches become resident, a few MB at most instead of
//!   the ~70 MB of a full BPE encoder;
//! - a piece that is itself a token (most English words are) costs one lookup;
//! - other pieces go through `tiktoken`'s byte-pair merge over the table (`merge.rs`).
//!
//! `tests/token_exactness.rs` compares the counts with `tiktoken-rs` on every path; the
//! tests here compare the pieces with `bpe-openai`'s compiled regexes, for every code point.

use std::sync::LazyLock;

mod layout;
mod merge;
mod table;
mod unicode;

use table::TokenTable;

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
    table: TokenTable,
}

/// One of the blobs `build.rs` wrote.
macro_rules! blob {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name))
    };
}

static O200K: LazyLock<ExactEncoder> = LazyLock::new(|| ExactEncoder {
    split: Split::O200k,
    table: TokenTable::new(
        blob!("o200k_base.tokens"),
        blob!("o200k_base.slots"),
        blob!("o200k_base.pairs"),
    ),
});
static CL100K: LazyLock<ExactEncoder> = LazyLock::new(|| ExactEncoder {
    split: Split::Cl100k,
    table: TokenTable::new(
        blob!("cl100k_base.tokens"),
        blob!("cl100k_base.slots"),
        blob!("cl100k_base.pairs"),
    ),
});

/// The `o200k_base` encoder (its tables are static data; the first call only sets up
/// pointers into them).
pub(crate) fn o200k() -> &'static ExactEncoder {
    &O200K
}

/// The `cl100k_base` encoder (static tables, like [`o200k`]).
pub(crate) fn cl100k() -> &'static ExactEncoder {
    &CL100K
}

impl ExactEncoder {
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
                _ => self.unicode_piece_end(text, pos),
            };
            let piece = bytes.get(pos..end).unwrap_or_default();
            tokens += self.count_piece(piece);
            pos = end;
        }
        tokens
    }

    /// The end of the piece starting at `pos`, by the scanner for any text. The regexes
    /// are anchored at the piece start and have no look-behind, so splitting the rest of
    /// the text yields the same first piece as splitting the whole text.
    fn unicode_piece_end(&self, text: &str, pos: usize) -> usize {
        let rest = text.get(pos..).unwrap_or_default();
        let len = match self.split {
            Split::O200k => unicode::first_piece_o200k(rest),
            Split::Cl100k => unicode::first_piece_cl100k(rest),
        };
        // At least one byte, so counting always ends.
        pos + len.max(1)
    }

    /// Tokens of one piece.
    #[inline]
    fn count_piece(&self, piece: &[u8]) -> usize {
        if piece.len() <= 1 {
            // Every single byte is a token.
            piece.len()
        } else if self.table.contains(piece) {
            1
        } else {
            merge::count(&self.table, piece)
        }
    }
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
    fn the_tables_hold_tiktokens_vocabulary_by_rank() {
        let tt_o200k = tiktoken_rs::o200k_base().unwrap();
        let tt_cl100k = tiktoken_rs::cl100k_base().unwrap();
        for (encoder, tiktoken, count) in [
            (o200k(), &tt_o200k, 199_998),
            (cl100k(), &tt_cl100k, 100_256),
        ] {
            let mut ranks: Vec<u32> = Vec::new();
            for (rank, bytes) in encoder.table.tokens() {
                assert_eq!(encoder.table.rank(bytes), rank, "token {rank}");
                assert_eq!(
                    tiktoken.decode_bytes(&[rank]).unwrap(),
                    bytes,
                    "token {rank}"
                );
                if let [a, b] = bytes {
                    assert_eq!(encoder.table.pair_rank(*a, *b), rank);
                }
                ranks.push(rank);
            }
            ranks.sort_unstable();
            assert_eq!(ranks, (0..count).collect::<Vec<u32>>());
            for b in 0..=255u8 {
                assert!(encoder.table.contains(&[b]), "byte {b}");
            }
            assert!(!encoder.table.contains(b"definitely not one token"));
            assert!(!encoder.table.contains(b""));
            assert_eq!(encoder.table.pair_rank(0xFF, 0xFE), layout::NO_RANK);
        }
    }

    /// The pieces of `text` by our scanners, and by `bpe-openai`'s compiled regexes.
    fn both_splits(text: &str, split: Split) -> (Vec<&str>, Vec<&str>) {
        let (reference, first_piece): (_, fn(&str) -> usize) = match split {
            Split::O200k => (bpe_openai::o200k_base(), unicode::first_piece_o200k),
            Split::Cl100k => (bpe_openai::cl100k_base(), unicode::first_piece_cl100k),
        };
        let encoder = match split {
            Split::O200k => o200k(),
            Split::Cl100k => cl100k(),
        };
        let mut ours = Vec::new();
        let mut pos = 0;
        while pos < text.len() {
            // The ASCII scanner where it decides, else the scanner for any text; checked
            // on its own below as well.
            let ascii = match split {
                Split::O200k => next_piece_o200k(text.as_bytes(), pos),
                Split::Cl100k => next_piece_cl100k(text.as_bytes(), pos),
            };
            let end = match ascii {
                Some(end) if end > pos => end,
                _ => encoder.unicode_piece_end(text, pos),
            };
            ours.push(&text[pos..end]);
            pos = end;
        }
        let mut alone = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let len = first_piece(rest);
            assert!(len > 0, "empty piece at {rest:?}");
            alone.push(&rest[..len]);
            rest = &rest[len..];
        }
        assert_eq!(ours, alone, "the ASCII scanner disagrees on {text:?}");
        (ours, reference.split(text).collect())
    }

    #[track_caller]
    fn assert_same_pieces(text: &str) {
        for split in [Split::O200k, Split::Cl100k] {
            let (ours, reference) = both_splits(text, split);
            if ours != reference {
                let at = ours.iter().zip(&reference).position(|(a, b)| a != b);
                let at = at.unwrap_or(ours.len().min(reference.len()));
                panic!(
                    "{split:?} splits differently at piece {at}: ours {:?}, regex {:?}",
                    &ours[at.saturating_sub(2)..(at + 3).min(ours.len())],
                    &reference[at.saturating_sub(2)..(at + 3).min(reference.len())],
                );
            }
        }
    }

    /// Every code point in contexts that tell every class apart, by the scanner for any
    /// text alone (the ASCII scanner only matters next to ASCII: see the next test).
    fn every_code_point_splits_like_the_regex(split: Split) {
        let (reference, first_piece): (_, fn(&str) -> usize) = match split {
            Split::O200k => (bpe_openai::o200k_base(), unicode::first_piece_o200k),
            Split::Cl100k => (bpe_openai::cl100k_base(), unicode::first_piece_cl100k),
        };
        let code_points: Vec<char> = (0..=0x10_FFFF).filter_map(char::from_u32).collect();
        for chunk in code_points.chunks(1 << 16) {
            let mut text = String::new();
            for &c in chunk {
                for context in ["A{c}b{c}", " {c}'s1\n"] {
                    for part in context.split_inclusive("{c}") {
                        match part.strip_suffix("{c}") {
                            Some(before) => {
                                text.push_str(before);
                                text.push(c);
                            }
                            None => text.push_str(part),
                        }
                    }
                }
            }
            let mut expected = reference.split(&text);
            let mut rest = &text[..];
            while !rest.is_empty() {
                let len = first_piece(rest);
                let piece = &rest[..len];
                let regex = expected.next();
                if regex != Some(piece) {
                    let before: String = text[..text.len() - rest.len()]
                        .chars()
                        .rev()
                        .take(8)
                        .collect();
                    let before: String = before.chars().rev().collect();
                    let after: String = rest.chars().take(12).collect();
                    panic!(
                        "{split:?}: ours {piece:?}, regex {regex:?}, \
                         in {before:?} + {after:?}"
                    );
                }
                rest = &rest[len..];
            }
            assert_eq!(expected.next(), None);
        }
    }

    #[test]
    fn every_code_point_splits_like_the_o200k_regex() {
        every_code_point_splits_like_the_regex(Split::O200k);
    }

    #[test]
    fn every_code_point_splits_like_the_cl100k_regex() {
        every_code_point_splits_like_the_regex(Split::Cl100k);
    }

    /// One code point of each class (and the apostrophes) in contexts that exercise each
    /// alternative: after and before letters of each case, apostrophes, digits, spaces and
    /// line breaks.
    #[test]
    fn each_class_splits_like_the_regexes_in_every_context() {
        let mut classes = std::collections::BTreeMap::new();
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            classes.entry(unicode::class_of(c)).or_insert(c);
        }
        let contexts = [
            "{c}",
            "a{c}",
            "A{c}b",
            " {c}",
            "{c}{c}x",
            "'{c}",
            "{c}'s",
            "x'{c}",
            "1{c}2",
            "{c}\n",
            "{c} x",
            "  {c}",
            "\n{c}",
            "\u{300}{c}",
            "{c}\u{300}a",
            "\u{4e2d}{c}",
            "{c}\u{1c5}",
            "!{c}",
            "{c}/",
            "'{c}{c}",
            "{c}{c}{c}{c} ",
            "{c}'S",
            "{c}'\u{17f}",
        ];
        let mut text = String::new();
        for c in classes
            .values()
            .copied()
            .chain(['\u{17f}', '\'', ' ', '\n'])
        {
            for context in contexts {
                text.push_str(&context.replace("{c}", &c.to_string()));
                text.push('|');
            }
        }
        assert_same_pieces(&text);
    }

    #[test]
    fn tricky_texts_split_like_the_regexes() {
        for text in [
            "",
            " ",
            "  ",
            "a",
            "\n",
            " \n ",
            "x  ",
            "x\u{3000}\u{3000}y",
            "x \u{a0}y",
            "\u{300}alone",
            "e\u{301}\u{301}'S",
            "\u{1c5}emal \u{1c4} \u{1c8}",
            "x'\u{17f}t 'LL 'Ve '\u{17f}",
            "\u{4e2d}\u{6587}abc\u{4e2d}",
            "ABC\u{3042}def",
            "\u{ff76}\u{ff80}\u{ff76}\u{ff85}",
            "\u{661}\u{662}\u{663}\u{664}",
            "\r\n\u{85}\u{2028}x",
            "a/\n/b",
            "\u{1f600}\u{200d}\u{1f600}'s",
            "\u{2160}\u{2161}x",
            "\t\u{b}\u{c} x",
        ] {
            assert_same_pieces(text);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 3_000,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5917),
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn random_texts_split_like_the_regexes(text in proptest::collection::vec(
            proptest::sample::select(
                "aAbZsStTrReEvVmMlLdD'' \t\n\r\u{b}\u{c}/.,!?-_09{}\"\u{1f}\
                 \u{e9}\u{c9}\u{17f}\u{1c5}\u{aa}\u{2c6}\u{301}\u{a0}\u{85}\u{3000}\
                 \u{4e2d}\u{30fc}\u{d55c}\u{661}\u{b2}\u{bd}\u{1f600}\u{200d}\u{fe0f}\
                 \u{2028}\u{2160}\u{10a0}\u{2d00}\u{e01}\u{e48}\u{915}\u{94d}"
                    .chars()
                    .collect::<Vec<char>>(),
            ),
            0..40,
        )) {
            assert_same_pieces(&text.into_iter().collect::<String>());
        }

        #[test]
        fn arbitrary_texts_split_like_the_regexes(text in proptest::prelude::any::<String>()) {
            assert_same_pieces(&text);
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
