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

fn classify(c: char) -> Class {
    if c.is_ascii() {
        match c {
            'a'..='z' => Class::Lower,
            'A'..='Z' => Class::Upper,
            '0'..='9' => Class::Digit,
            '\n' | '\r' => Class::Newline,
            ' ' | '\t' => Class::Space,
            '\x0b' | '\x0c' => Class::Space,
            _ if c.is_ascii_control() => Class::Other,
            _ => Class::Punct,
        }
    } else {
        classify_non_ascii(c)
    }
}

fn classify_non_ascii(c: char) -> Class {
    let u = u32::from(c);
    match u {
        // Latin-1 letters, Latin Extended-A/B, IPA, Latin Extended Additional.
        0x00C0..=0x024F | 0x1E00..=0x1EFF if c.is_alphabetic() => {
            if c.is_uppercase() {
                Class::Upper
            } else {
                Class::Lower
            }
        }
        // Hangul Jamo, CJK radicals .. Yi, Hangul syllables, CJK compatibility ideographs,
        // halfwidth and fullwidth forms, CJK extension planes.
        0x1100..=0x11FF
        | 0x2E80..=0xA4CF
        | 0xAC00..=0xD7AF
        | 0xF900..=0xFAFF
        | 0xFF00..=0xFFEF
        | 0x20000..=0x3FFFF => Class::Cjk,
        _ if c.is_whitespace() => {
            if matches!(u, 0x85 | 0x2028 | 0x2029) {
                Class::Newline
            } else {
                Class::Space
            }
        }
        _ if c.is_numeric() => Class::Digit,
        _ if c.is_alphabetic() => Class::Script,
        _ => Class::Other,
    }
}

/// Estimated tokens of `text`: a single pass over its characters, no allocation.
///
/// Latin words cost one token per 6 letters (a case change from lower to upper starts a
/// new word, as OpenAI's tokenizers split camel case), numbers one per 3 digits,
/// punctuation one per 2 characters, a space before a word nothing, other runs of spaces
/// and line breaks a token per few characters, CJK one token per character, letters of
/// other scripts one per 2, and anything else (emoji, symbols) one per character.
/// Every character adds a non-negative amount that depends only on what came before, so
/// appending text never lowers the estimate, and non-empty text costs at least 1.
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    let mut tokens: u64 = 0;
    let mut run = Class::Start;
    // Characters in the current run so far.
    let mut len: u32 = 0;
    for c in text.chars() {
        let class = classify(c);
        if c == '\'' && matches!(run, Class::Lower | Class::Upper) {
            // English contractions ('s, 't, 're, ...) are one token, glued to the word.
            tokens += 1;
            run = Class::Lower;
            len = 1;
            continue;
        }
        let continues = class == run || (run == Class::Upper && class == Class::Lower);
        if !continues {
            // One punctuation character glues to the word after it (`.map`, `(the`).
            let glued = run == Class::Punct
                && len == 1
                && matches!(class, Class::Lower | Class::Upper | Class::Script);
            run = class;
            len = u32::from(glued);
        }
        let per = match class {
            Class::Lower | Class::Upper => LETTERS_PER_TOKEN,
            Class::Digit => DIGITS_PER_TOKEN,
            Class::Punct => PUNCT_PER_TOKEN,
            Class::Newline => NEWLINES_PER_TOKEN,
            Class::Script => SCRIPT_LETTERS_PER_TOKEN,
            Class::Cjk | Class::Start => 1,
            Class::Other => {
                // Emoji and other characters beyond the basic plane are often two tokens.
                tokens += if u32::from(c) >= 0x1_0000 { 2 } else { 1 };
                continue;
            }
            Class::Space => {
                // The first space of a run is free (it joins the next word); the rest
                // cost one token per few spaces.
                if len % SPACES_PER_TOKEN == 1 {
                    tokens += 1;
                }
                len = len.saturating_add(1);
                continue;
            }
        };
        if len % per == 0 {
            tokens += 1;
        }
        len = len.saturating_add(1);
    }
    if tokens == 0 && !text.is_empty() {
        1
    } else {
        tokens
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
