//! [`Tokenizers`]: exact counts for OpenAI models, the heuristic for the rest.

use llm_tower_core::RequestBody;

use super::counter::{TokenCount, TokenCounter};
use super::exact::{self, ExactEncoder};
use super::heuristic::estimate_tokens;
use super::prompt;

/// One of OpenAI's byte-pair encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// `o200k_base`: GPT-4o, GPT-4.1, GPT-4.5, GPT-5, o1, o3, o4, gpt-oss.
    O200kBase,
    /// `cl100k_base`: GPT-4, GPT-3.5, `text-embedding-ada-002`, `text-embedding-3-*`.
    Cl100kBase,
}

/// Model-name prefixes of `o200k_base`, checked before [`CL100K`] (`gpt-4o` before `gpt-4`).
const O200K: &[&str] = &[
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "chatgpt-4o",
    "gpt-oss",
    "o1",
    "o3",
    "o4",
];

/// Model-name prefixes of `cl100k_base` (`gpt-35` is Azure's spelling of `gpt-3.5`).
const CL100K: &[&str] = &[
    "gpt-4",
    "gpt-3.5",
    "gpt-35",
    "text-embedding-ada-002",
    "text-embedding-3-",
    "davinci-002",
    "babbage-002",
];

impl Encoding {
    /// The encoding of `model`, or `None` for a model without a known public tokenizer.
    ///
    /// Only the model name matters: a provider prefix (`openai/gpt-4o`), a date or other
    /// suffix (`gpt-4o-2024-08-06`, `gpt-4o-mini`), a fine-tune id
    /// (`ft:gpt-4o-mini-2024-07-18:org::abc`) and letter case are all accepted. A prefix
    /// matches only at a word boundary, so `gpt-4` does not claim `gpt-4o`-like names
    /// it does not know. An Azure *deployment* name is not a model name: pass the model.
    pub fn for_model(model: &str) -> Option<Encoding> {
        let name = base_model(model);
        if O200K.iter().any(|p| matches_prefix(name, p)) {
            Some(Encoding::O200kBase)
        } else if CL100K.iter().any(|p| matches_prefix(name, p)) {
            Some(Encoding::Cl100kBase)
        } else {
            None
        }
    }

    /// The encoding's name as OpenAI spells it (`o200k_base`).
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    /// The exact number of tokens of `text` (special tokens such as `<|endoftext|>` are
    /// counted as ordinary text, as OpenAI does for user content).
    ///
    /// The tables are static data compiled into the binary: nothing is built at run time.
    pub fn count(self, text: &str) -> u64 {
        let n = self.encoder().count(text);
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    fn encoder(self) -> &'static ExactEncoder {
        match self {
            Encoding::O200kBase => exact::o200k(),
            Encoding::Cl100kBase => exact::cl100k(),
        }
    }
}

/// The model name without provider prefix or fine-tune decoration.
fn base_model(model: &str) -> &str {
    let name = model.trim();
    let name = name.rsplit('/').next().unwrap_or(name);
    match name.strip_prefix("ft:") {
        Some(rest) => rest.split(':').next().unwrap_or(rest),
        None => name,
    }
}

/// `name` starts with `prefix` (ASCII case-insensitive), followed by the end, or by a
/// character that is not a letter or digit (or the prefix itself ends in `-`).
fn matches_prefix(name: &str, prefix: &str) -> bool {
    let (n, p) = (name.as_bytes(), prefix.as_bytes());
    if n.len() < p.len() || !n[..p.len()].eq_ignore_ascii_case(p) {
        return false;
    }
    match n.get(p.len()) {
        None => true,
        Some(next) => p.ends_with(b"-") || !next.is_ascii_alphanumeric(),
    }
}

/// The default [`TokenCounter`]: exact counts for OpenAI models, an estimate for others.
///
/// Models are mapped to an [`Encoding`] by [`Encoding::for_model`] (`o200k_base` for
/// GPT-4o and newer, `cl100k_base` for GPT-4, GPT-3.5 and the embedding models) and counted
/// exactly: the counts are `tiktoken`'s (`encode_ordinary(text).len()`, special tokens
/// counted as ordinary text). The vocabularies are turned into static tables at build
/// time (from `bpe-openai`'s data); text is split into pieces by hand-written scanners
/// (ASCII, and a table of Unicode character classes), a whole-token piece costs one hash
/// lookup and other pieces go through tiktoken's byte-pair merge (a heap for long
/// pieces), which makes counting several times faster than `tiktoken-rs` (see
/// `benches/tokens.rs`). Every other model (Claude, Llama, Mistral, Gemini, an unknown
/// name or a route alias) gets the [`Heuristic`](super::Heuristic) estimate, marked
/// [`Estimated`](llm_tower_core::UsageSource::Estimated).
///
/// The encoders are process-wide statics over data compiled into the binary: only the
/// pages a count touches become resident (a process counting short English prompts with
/// `o200k_base` stays under 10 MB RSS); `Tokenizers` itself holds nothing and is free to
/// copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokenizers;

impl Tokenizers {
    /// The default counter.
    pub fn new() -> Self {
        Tokenizers
    }

    /// Sets up both encoders now (cheap: their tables are static data).
    pub fn warm_up() {
        for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
            let _ = encoding.encoder();
        }
    }

    /// The encoding used for `model`, `None` when its tokens are estimated.
    pub fn encoding_for(model: &str) -> Option<Encoding> {
        Encoding::for_model(model)
    }
}

impl TokenCounter for Tokenizers {
    fn count_text(&self, model: &str, text: &str) -> TokenCount {
        match Encoding::for_model(model) {
            Some(encoding) => TokenCount::exact(encoding.count(text)),
            None => TokenCount::estimate(estimate_tokens(text)),
        }
    }

    fn count_prompt(&self, body: &RequestBody) -> TokenCount {
        // Resolve the encoding once per request, not once per message.
        match Encoding::for_model(prompt::model_of(body)) {
            Some(encoding) => {
                prompt::count_prompt(body, |text| TokenCount::exact(encoding.count(text)))
            }
            None => {
                let count =
                    prompt::count_prompt(body, |text| TokenCount::estimate(estimate_tokens(text)));
                match body {
                    // Token arrays of an embeddings request are exact for any model.
                    RequestBody::Embeddings(_) => count,
                    RequestBody::Chat(_) | RequestBody::Completion(_) => count.into_estimate(),
                }
            }
        }
    }
}
