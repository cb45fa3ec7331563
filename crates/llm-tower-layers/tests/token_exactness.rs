//! `Tokenizers` counts exactly what `tiktoken-rs` counts (`encode_ordinary(..).len()`),
//! for `o200k_base` and `cl100k_base`, on a varied corpus made here: prose, code, JSON,
//! emoji with joiners, CJK, Arabic, Hindi, long runs of one character, text that looks like
//! special tokens, whitespace mixes and digits. Deterministic: fixed texts, a fixed LCG, and
//! proptest with a fixed seed.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use llm_tower_layers::token_count::{Encoding, TokenCounter, Tokenizers};
use proptest::prelude::*;
use tiktoken_rs::CoreBPE;

static TIKTOKEN_O200K: LazyLock<CoreBPE> = LazyLock::new(|| tiktoken_rs::o200k_base().unwrap());
static TIKTOKEN_CL100K: LazyLock<CoreBPE> = LazyLock::new(|| tiktoken_rs::cl100k_base().unwrap());

/// Asserts both encodings agree with tiktoken on `text`.
#[track_caller]
fn assert_exact(text: &str) {
    let o200k = Encoding::O200kBase.count(text);
    let cl100k = Encoding::Cl100kBase.count(text);
    let tt_o200k = TIKTOKEN_O200K.encode_ordinary(text).len() as u64;
    let tt_cl100k = TIKTOKEN_CL100K.encode_ordinary(text).len() as u64;
    assert_eq!(o200k, tt_o200k, "o200k_base differs on {text:?}");
    assert_eq!(cl100k, tt_cl100k, "cl100k_base differs on {text:?}");
}

const PROSE: &str = "The history of the lighthouse is, in many ways, the history of coastal trade itself. \
Long before electric lamps and automated beacons, keepers climbed narrow stairs every evening to trim wicks, \
polish lenses, and watch the horizon for ships in distress. Their work was lonely and often dangerous; storms \
could cut off supply boats for weeks. \"It reminds you how small you are,\" one guide told me. They don't chase \
novelty; they're grateful for every alert. I'll say it: we'd rather you'VE been warned. DON'T PANIC. O'Neill's \
McDonald's iPhone XMLHttpRequest camelCaseIdentifier SCREAMING_SNAKE_CASE kebab-case-name.";

const RUST: &str = r#"use std::collections::HashMap;

/// A simple cache with a maximum size.
pub struct Cache<K, V> {
    map: HashMap<K, V>,
    capacity: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V> Cache<K, V> {
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            let first = self.map.keys().next().cloned();
            if let Some(k) = first { self.map.remove(&k); }
        }
        self.map.insert(key, value) // returns the old value
    }
}
"#;

const JSON: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What's the capital of France?\n\nAnswer briefly."}],"temperature":0.7,"max_tokens":256,"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"enum":["celsius","fahrenheit"]}},"required":["city"]}}}],"path":"/usr/local/bin//x","url":"https://example.com/a/b?c=1&d=2"}"#;

const EMOJI: &str =
    "Great job team! 🎉🎉 Let's ship it 🚀 👨‍👩‍👧‍👦 family 🏳️‍🌈 and 👍🏽 thanks ❤️ 🧑🏿‍💻 🇫🇷🇯🇵 #️⃣ 1️⃣ ☺︎";
const CHINESE: &str = "人工智能正在改变我们的生活方式。从智能手机上的语音助手到自动驾驶汽车，这项技术已经渗透到社会的各个角落。“引号”和（括号）以及１２３全角数字。";
const JAPANESE: &str = "東京は世界で最も人口の多い都市の一つです。ｶﾀｶﾅとカタカナ、ひらがな。";
const KOREAN: &str = "서울은 대한민국의 수도이자 가장 큰 도시입니다.";
const ARABIC: &str = "القاهرة هي عاصمة مصر وأكبر مدينة في العالم العربي. الأرقام: ١٢٣٤٥ و 2024.";
const HINDI: &str = "भारत एक विशाल देश है जिसमें अनेक भाषाएँ, धर्म और संस्कृतियाँ हैं। संख्या: १२३४।";
const OTHERS: &str = "Москва — столица России. Ελληνικά κείμενα. עברית: שלום עולם. ไทย: สวัสดีครับ. \
café naïve Œuvre ſtraße İstanbul ǅemal Ǆ ǈ ǋ ﬁ ﬂ ª º ˆ ʰ e\u{301} n\u{303} \u{300}alone Ⅻ ½ ² ³ ⁴ ₅";
const SPECIALS: &str = "<|endoftext|> <|im_start|>system\nhi<|im_end|>\n<|im_sep|> <|fim_prefix|><|fim_middle|><|fim_suffix|> <|endofprompt|> <|start|>assistant<|message|>";
const WHITESPACE: &str = "a  b   c\t\td \n e\n\n\nf \r\n g\r\r\n\t \n  \t  h\u{a0}i\u{2003}j\u{3000}k\u{85}l\u{2028}m \x0b\x0c n   ";
const DIGITS: &str = "0 1 12 123 1234 12345 123456 3.14159 2,718,281,828 1e10 -42 +7 0x1F 1_000_000 2024-08-06T12:34:56Z $1,000.00 50% 1/2 v1.2.3";
const CONTRACTIONS: &str = "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'Ve 'LL 'D x's x'S X'RE x'x 'x '' ''' '1 's's ' s 'ſ x'ſ xſ 'ſt";
const CONTROL: &str = "\u{0}\u{1}\u{7}\u{8}\u{1b}[0m\u{1c}\u{1d}\u{1e}\u{1f}\u{7f} tab\u{1f}x \u{feff}bom \u{200b}zw\u{200d}j";

const ALL: [&str; 15] = [
    PROSE,
    RUST,
    JSON,
    EMOJI,
    CHINESE,
    JAPANESE,
    KOREAN,
    ARABIC,
    HINDI,
    OTHERS,
    SPECIALS,
    WHITESPACE,
    DIGITS,
    CONTRACTIONS,
    CONTROL,
];

#[test]
fn fixed_texts_match_tiktoken() {
    for text in ["", " ", "a", "hello world"].into_iter().chain(ALL) {
        assert_exact(text);
    }
}

#[test]
fn special_token_lookalikes_count_as_ordinary_text() {
    for text in [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|fim_prefix|>",
    ] {
        assert!(Encoding::O200kBase.count(text) > 1, "{text}");
        assert!(Encoding::Cl100kBase.count(text) > 1, "{text}");
        assert_exact(text);
    }
}

#[test]
fn long_runs_of_one_character_match_tiktoken() {
    for (c, n) in [
        (' ', 10_000),
        ('a', 5_000),
        ('\n', 3_000),
        ('.', 2_000),
        ('A', 1_000),
        ('7', 1_000),
        ('é', 1_000),
        ('中', 1_000),
        ('😀', 500),
        ('\t', 100),
    ] {
        let run: String = std::iter::repeat_n(c, n).collect();
        assert_exact(&run);
        assert_exact(&format!("x{run}y"));
        assert_exact(&format!(" {run} "));
    }
    // Every length up to past the stack-merge limit of 64 bytes (ties between equal pairs
    // are merged leftmost first).
    for c in ['a', 'z', '=', '-', '*', '#', '~', 'é', '!'] {
        for n in 1..=70 {
            assert_exact(&std::iter::repeat_n(c, n).collect::<String>());
        }
    }
    for n in 58..72 {
        assert_exact(&"ab".repeat(n / 2));
        assert_exact(&"xq".repeat(n / 2));
        assert_exact(&"z".repeat(n));
        assert_exact(&"ziggurat".repeat(n / 8 + 1)[..n]);
    }
}

/// One piece of a megabyte (a run of one letter is one regex piece) and one of 200 KB of
/// one CJK character: the merge of long pieces is `O(n log n)` and still exact.
#[test]
fn huge_single_pieces_match_tiktoken() {
    assert_exact(&"a".repeat(1 << 20));
    assert_exact(&"\u{4e2d}".repeat(200_000 / 3));
    assert_exact(&format!(" {}x", "ab".repeat(100_000)));
}

/// Characters of many scripts, with the ASCII that glues pieces together.
fn mixed_script_text() -> impl Strategy<Value = String> {
    let chunks: Vec<String> = ALL
        .iter()
        .flat_map(|text| text.chars())
        .chain("aeiouyzqx".chars())
        .map(String::from)
        .collect();
    let words = proptest::collection::vec(proptest::sample::select(chunks), 1..24)
        .prop_map(|chars| chars.concat());
    proptest::collection::vec(
        prop_oneof![
            4 => words,
            1 => proptest::sample::select(vec![" ", "\n", "  ", ", ", ". ", "\u{3000}"])
                .prop_map(String::from),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

/// A deterministic mix of the fixed texts cut at arbitrary character positions.
#[test]
fn shuffled_corpus_matches_tiktoken() {
    let mut state: u64 = 7;
    let mut next = move |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(state >> 33).unwrap() % bound
    };
    let mut whole = String::new();
    for _ in 0..600 {
        let source: Vec<char> = ALL[next(ALL.len())].chars().collect();
        let start = next(source.len());
        let len = next(80) + 1;
        let piece: String = source[start..(start + len).min(source.len())]
            .iter()
            .collect();
        assert_exact(&piece);
        whole.push_str(&piece);
    }
    assert_exact(&whole);
}

#[test]
fn tokenizers_counter_uses_the_right_encoding() {
    let text = "Tokenizers agree: 👨‍👩‍👧‍👦 and 東京 and don't.";
    let o200k = TIKTOKEN_O200K.encode_ordinary(text).len() as u64;
    let cl100k = TIKTOKEN_CL100K.encode_ordinary(text).len() as u64;
    assert_ne!(o200k, cl100k);
    for model in [
        "gpt-4o",
        "openai/gpt-4o-2024-08-06",
        "gpt-4.1-mini",
        "o3-mini",
        "gpt-5",
    ] {
        let count = Tokenizers.count_text(model, text);
        assert!(count.is_exact(), "{model}");
        assert_eq!(count.tokens, o200k, "{model}");
    }
    for model in [
        "gpt-4",
        "gpt-4-turbo",
        "gpt-3.5-turbo",
        "gpt-35-turbo",
        "text-embedding-3-small",
    ] {
        let count = Tokenizers.count_text(model, text);
        assert!(count.is_exact(), "{model}");
        assert_eq!(count.tokens, cl100k, "{model}");
    }
}

/// Characters that exercise every branch of the splitters: case changes, apostrophes and
/// contraction letters, every ASCII whitespace, `/`, digits, and non-ASCII letters, marks,
/// digits, spaces and symbols next to them.
fn tricky_text() -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = "aAbZsStTrReEvVmMlLdD'' \t\n\r\x0b\x0c/.,!?-_0123456789{}\"\u{1f}\
        éÉſǅªˆ\u{301}\u{a0}\u{85}\u{3000}中ー한١²½😀\u{200d}\u{fe0f}"
        .chars()
        .collect();
    proptest::collection::vec(proptest::sample::select(alphabet), 0..48)
        .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2_000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
        ..ProptestConfig::default()
    })]

    #[test]
    fn tricky_strings_match_tiktoken(text in tricky_text()) {
        assert_exact(&text);
    }

    /// Long single pieces of few letters: the byte-pair merge itself.
    #[test]
    fn merge_heavy_words_match_tiktoken(text in "[a-dA=é]{1,80}") {
        assert_exact(&text);
    }

    /// Random runs of characters of every script of the corpus (pieces up to a few hundred
    /// bytes, so both the short and the heap merge run).
    #[test]
    fn mixed_script_strings_match_tiktoken(text in mixed_script_text()) {
        assert_exact(&text);
    }

    /// Random bytes made valid UTF-8 (replacement characters where they are not).
    #[test]
    fn random_bytes_match_tiktoken(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        assert_exact(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_strings_match_tiktoken(text in any::<String>()) {
        assert_exact(&text);
    }
}
