//! A fast token estimate for models without a public tokenizer.

use llm_tower_core::RequestBody;

use super::counter::{TokenCount, TokenCounter};

/// Letters of a Latin-script word per token (English words of up to this length are
/// mostly one token).
const LETTERS_PER_TOKEN: u32 = 8;
/// Digits per token (OpenAI's tokenizers split numbers into groups of three).
const DIGITS_PER_TOKEN: u32 = 3;
/// Punctuation characters per token.
const PUNCT_PER_TOKEN: u32 = 3;
/// Spaces per token in a run of spaces (indentation); one space before a word is free.
const SPACES_PER_TOKEN: u32 = 8;
/// Line breaks per token.
const NEWLINES_PER_TOKEN: u32 = 2;
/// Letters per token in alphabetic scripts other than Latin and CJK (Cyrillic, Greek,
/// Arabic, Hebrew, Devanagari, Thai, ...).
const SCRIPT_LETTERS_PER_TOKEN: u32 = 2;

/// The class of a character, for grouping runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Nothing seen yet.
    Start,
    /// A lowercase Latin letter (or any Latin letter inside a word).
    Lower,
    /// An uppercase Latin letter.
    Upper,
    /// A decimal digit.
    Digit,
    /// ASCII punctuation and symbols.
    Punct,
    /// A space or tab.
    Space,
    /// A line break.
    Newline,
    /// A letter of another alphabetic script.
    Script,
    /// A CJK ideograph, kana or hangul syllable.
    Cjk,
    /// Anything else: emoji, symbols, joiners.
    Other,
}

/// The class of every ASCII byte.
static ASCII_CLASS: [Class; 128] = {
    let mut table = [Class::Punct; 128];
    let mut b = 0;
    while b < 128 {
        table[b] = match b as u8 {
            b'a'..=b'z' => Class::Lower,
            b'A'..=b'Z' => Class::Upper,
            b'0'..=b'9' => Class::Digit,
            b'\n' | b'\r' => Class::Newline,
            b' ' | b'\t' | 0x0B | 0x0C => Class::Space,
            0..=0x1F | 0x7F => Class::Other,
            _ => Class::Punct,
        };
        b += 1;
    }
    table
};

fn classify_non_ascii(c: char) -> Class {
    let u = u32::from(c);
    // Common blocks first, by range: the Unicode property lookups below are slow.
    match u {
        0x00D7 | 0x00F7 => Class::Other,
        // Latin-1 letters (upper case up to U+00DE), Latin Extended-A/B, IPA, Latin
        // Extended Additional (their case does not matter here).
        0x00C0..=0x00DE => Class::Upper,
        0x00DF..=0x024F | 0x1E00..=0x1EFF => Class::Lower,
        // Greek, Cyrillic, Armenian, Hebrew, Arabic, Syriac .. NKo, the Indic scripts,
        // Thai, Lao, Georgian: letters and the marks and digits among them.
        0x0370..=0x07FF | 0x0900..=0x0EFF | 0x10A0..=0x10FF => Class::Script,
        // Hangul Jamo, CJK radicals .. Yi, Hangul syllables, CJK compatibility ideographs,
        // halfwidth and fullwidth forms, CJK extension planes.
        0x1100..=0x11FF
        | 0x2E80..=0xA4CF
        | 0xAC00..=0xD7AF
        | 0xF900..=0xFAFF
        | 0xFF00..=0xFFEF
        | 0x20000..=0x3FFFF => Class::Cjk,
        // Symbols, dingbats, variation selectors, emoji.
        0x2190..=0x2BFF | 0xFE00..=0xFE0F | 0x1F000..=0x1FAFF => Class::Other,
        _ if c.is_alphabetic() => Class::Script,
        _ if c.is_whitespace() => {
            if matches!(u, 0x85 | 0x2028 | 0x2029) {
                Class::Newline
            } else {
                Class::Space
            }
        }
        _ if c.is_numeric() => Class::Digit,
        _ => Class::Other,
    }
}

/// Estimated tokens of `text`: a single pass over its bytes, no allocation.
///
/// Latin words cost one token per 8 letters (a change from lower to upper case starts a
/// new word, as OpenAI's tokenizers split camel case; a contraction such as `'s` costs one;
/// one punctuation character before a word is free), numbers one per 3 digits,
/// punctuation one per 3 characters, a space before a word nothing, other runs of spaces
/// one per 8 and line breaks one per 2, CJK one per character, letters of other scripts
/// one per 2, and anything else one per character (two beyond the basic plane: emoji).
/// Every character adds a non-negative amount that depends only on what came before, so
/// appending text never lowers the estimate, and non-empty text costs at least 1.
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut tokens: u64 = 0;
    let mut run = Class::Start;
    // Characters in the current run so far.
    let mut len: u32 = 0;
    // Characters of the run until the next one costs a token.
    let mut left: u32 = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let (c, class) = if b.is_ascii() {
            i += 1;
            (char::from(b), ASCII_CLASS[usize::from(b)])
        } else {
            match text.get(i..).and_then(|rest| rest.chars().next()) {
                Some(c) => {
                    i += c.len_utf8();
                    (c, classify_non_ascii(c))
                }
                None => {
                    i += 1;
                    continue;
                }
            }
        };
        if c == '\'' && matches!(run, Class::Lower | Class::Upper) {
            // English contractions ('s, 't, 're, ...) are one token, glued to the word.
            tokens += 1;
            run = Class::Lower;
            len = 1;
            left = LETTERS_PER_TOKEN - 1;
            continue;
        }
        let continues = class == run || (run == Class::Upper && class == Class::Lower);
        if continues {
            // `Hello`: the word goes on in lower case, and a later upper-case letter
            // starts a new word (`HelloWorld`).
            run = class;
        } else {
            // One punctuation character glues to the word after it (`.map`, `(the`).
            let glued = run == Class::Punct
                && len == 1
                && matches!(class, Class::Lower | Class::Upper | Class::Script);
            run = class;
            len = 0;
            left = if class == Class::Space {
                // The first space of a run is free: it joins the next word.
                1
            } else if glued {
                per_token(class) - 1
            } else {
                0
            };
        }
        len = len.saturating_add(1);
        if class == Class::Other {
            // Emoji and other characters beyond the basic plane are often two tokens.
            tokens += if u32::from(c) >= 0x1_0000 { 2 } else { 1 };
        } else {
            if left == 0 {
                tokens += 1;
                left = per_token(class);
            }
            left -= 1;
        }
        if class == Class::Lower {
            // The rest of a lower-case word at once: same result as one letter at a time.
            let more = bytes
                .get(i..)
                .unwrap_or_default()
                .iter()
                .take_while(|b| b.is_ascii_lowercase())
                .count();
            if more > 0 {
                let (charged, now_left) = charge_run(more, left, LETTERS_PER_TOKEN);
                tokens += charged;
                left = now_left;
                len = len.saturating_add(u32::try_from(more).unwrap_or(u32::MAX));
                i += more;
            }
        }
    }
    if tokens == 0 && !text.is_empty() {
        1
    } else {
        tokens
    }
}

/// Tokens charged for `units` more characters of a run that charges one token every
/// `per` characters, `left` characters before the next charge; and the new `left`.
fn charge_run(units: usize, left: u32, per: u32) -> (u64, u32) {
    let units = u64::try_from(units).unwrap_or(u64::MAX);
    let (left, per) = (u64::from(left), u64::from(per.max(1)));
    if units <= left {
        (0, u32::try_from(left - units).unwrap_or(0))
    } else {
        let after_first = units - left - 1;
        let charged = after_first / per + 1;
        let now_left = per - 1 - after_first % per;
        (charged, u32::try_from(now_left).unwrap_or(0))
    }
}

/// Characters of a run of `class` per token.
fn per_token(class: Class) -> u32 {
    match class {
        Class::Lower | Class::Upper => LETTERS_PER_TOKEN,
        Class::Digit => DIGITS_PER_TOKEN,
        Class::Punct => PUNCT_PER_TOKEN,
        Class::Space => SPACES_PER_TOKEN,
        Class::Newline => NEWLINES_PER_TOKEN,
        Class::Script => SCRIPT_LETTERS_PER_TOKEN,
        Class::Cjk | Class::Other | Class::Start => 1,
    }
}

/// A [`TokenCounter`] that estimates for every model: fast, allocation-free, and marked
/// [`UsageSource::Estimated`](llm_tower_core::UsageSource::Estimated).
///
/// The estimate is tuned to stay within about 15% of OpenAI's `o200k_base` on English
/// prose; for CJK it assumes a token per character and for other scripts a token per two
/// letters, which tends to over-count (the safe side for budgets and limits). It is never
/// 0 for non-empty text and never decreases when text is appended.
/// [`Tokenizers`](super::Tokenizers) uses it for every model without a known tokenizer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heuristic;

impl Heuristic {
    /// The estimated tokens of `text`, for any model.
    pub fn estimate(text: &str) -> u64 {
        estimate_tokens(text)
    }
}

impl TokenCounter for Heuristic {
    fn count_text(&self, _model: &str, text: &str) -> TokenCount {
        TokenCount::estimate(estimate_tokens(text))
    }

    fn count_prompt(&self, body: &RequestBody) -> TokenCount {
        let model = super::prompt::model_of(body);
        let count = super::prompt::count_prompt(body, |text| self.count_text(model, text));
        match body {
            // Token arrays of an embeddings request are exact even here.
            RequestBody::Embeddings(_) => count,
            RequestBody::Chat(_) | RequestBody::Completion(_) => count.into_estimate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charging_a_run_at_once_equals_one_character_at_a_time() {
        for per in 1..=9 {
            for start in 0..per {
                for units in 0..40 {
                    let (mut left, mut charged) = (start, 0);
                    for _ in 0..units {
                        if left == 0 {
                            charged += 1;
                            left = per;
                        }
                        left -= 1;
                    }
                    assert_eq!(
                        charge_run(units, start, per),
                        (charged, left),
                        "per {per}, left {start}, units {units}"
                    );
                }
            }
        }
    }

    #[test]
    fn camel_case_splits_words() {
        assert_eq!(estimate_tokens("helloworld"), 2);
        assert_eq!(estimate_tokens("HelloWorld"), 2);
        assert_eq!(estimate_tokens("hello"), 1);
        assert_eq!(estimate_tokens("Hello"), 1);
        assert_eq!(estimate_tokens("HELLO"), 1);
        assert_eq!(estimate_tokens(" don't"), 2);
    }
}
