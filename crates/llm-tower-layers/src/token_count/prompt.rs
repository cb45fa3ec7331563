//! Walking requests, responses and chunks: OpenAI's chat overhead formula and which texts
//! count. Shared by the provided methods of [`TokenCounter`](super::TokenCounter) and by
//! [`Tokenizers`](super::Tokenizers).

use llm_tower_core::{
    ChatChunk, Content, ContentPart, EmbeddingInput, Message, Prompt, RequestBody, ResponseBody,
    ThinkingBlock,
};

use super::counter::TokenCount;

/// Tokens every chat message costs besides its texts (`<|start|>role ... <|end|>`).
pub(crate) const TOKENS_PER_MESSAGE: u64 = 3;
/// Extra tokens for a message's `name`.
pub(crate) const TOKENS_PER_NAME: u64 = 1;
/// Tokens that prime the assistant's reply (`<|start|>assistant<|message|>`).
pub(crate) const REPLY_PRIMING: u64 = 3;
/// An image part with `detail: "low"`.
pub(crate) const IMAGE_LOW_TOKENS: u64 = 85;
/// An image part with any other detail (a 1024x1024 image at `high`).
pub(crate) const IMAGE_HIGH_TOKENS: u64 = 765;

/// The model a request names.
pub(crate) fn model_of(body: &RequestBody) -> &str {
    match body {
        RequestBody::Chat(c) => &c.model,
        RequestBody::Completion(c) => &c.model,
        RequestBody::Embeddings(e) => &e.model,
    }
}

/// Prompt tokens of `body`, counting every text with `count`.
pub(crate) fn count_prompt(
    body: &RequestBody,
    mut count: impl FnMut(&str) -> TokenCount,
) -> TokenCount {
    match body {
        RequestBody::Chat(chat) => {
            let mut total = TokenCount::exact(REPLY_PRIMING);
            for message in &chat.messages {
                total += count_message(message, &mut count);
            }
            for tool in &chat.tools {
                // OpenAI renders tool definitions in an undocumented format; their JSON
                // is a close, deliberately generous stand-in.
                let json = serde_json::to_string(tool).unwrap_or_default();
                total += count(&json).into_estimate();
            }
            total
        }
        RequestBody::Completion(c) => match &c.prompt {
            Prompt::One(text) => count(text),
            Prompt::Many(texts) => sum_texts(texts, &mut count),
        },
        RequestBody::Embeddings(e) => match &e.input {
            EmbeddingInput::One(text) => count(text),
            EmbeddingInput::Many(texts) => sum_texts(texts, &mut count),
            EmbeddingInput::Tokens(tokens) => TokenCount::exact(len_u64(tokens.len())),
            EmbeddingInput::ManyTokens(arrays) => {
                arrays.iter().fold(TokenCount::exact(0), |n, a| {
                    n + TokenCount::exact(len_u64(a.len()))
                })
            }
        },
    }
}

fn count_message(message: &Message, count: &mut impl FnMut(&str) -> TokenCount) -> TokenCount {
    let mut total = TokenCount::exact(TOKENS_PER_MESSAGE) + count(message.role.as_str());
    if let Some(content) = &message.content {
        total += count_content(content, count);
    }
    if let Some(name) = &message.name {
        total += count(name) + TokenCount::exact(TOKENS_PER_NAME);
    }
    total += count_message_extras(message, count);
    if let Some(id) = &message.tool_call_id {
        total += count(id).into_estimate();
    }
    total
}

/// Tool calls, refusal and reasoning of a message (input or output alike).
fn count_message_extras(
    message: &Message,
    count: &mut impl FnMut(&str) -> TokenCount,
) -> TokenCount {
    let mut total = TokenCount::exact(0);
    for call in &message.tool_calls {
        total += (count(&call.function.name) + count(&call.function.arguments)).into_estimate();
        if !call.extra.is_empty() {
            let json = serde_json::to_string(&call.extra).unwrap_or_default();
            total += count(&json).into_estimate();
        }
    }
    if let Some(r) = &message.refusal {
        total += count(r);
    }
    if let Some(r) = &message.reasoning_content {
        total += count(r).into_estimate();
    }
    for block in &message.thinking_blocks {
        total += match block {
            ThinkingBlock::Thinking { thinking, .. } => count(thinking).into_estimate(),
            // Encrypted: its size in base64 is a generous stand-in.
            ThinkingBlock::RedactedThinking { data } => {
                TokenCount::estimate(len_u64(data.len()) / 4)
            }
        };
    }
    total
}

/// Audio tokens of base64 audio: about 10 tokens a second (OpenAI's audio input), taking
/// 16 kB of audio for a second (compressed formats are generous this way).
fn audio_tokens(base64_len: usize) -> u64 {
    (len_u64(base64_len) * 3 / 4).div_ceil(1_600)
}

/// Tokens of a message content: plain text exactly; parts one by one (images by their
/// detail), an estimate when there is more than one part or an image.
fn count_content(content: &Content, count: &mut impl FnMut(&str) -> TokenCount) -> TokenCount {
    match content {
        Content::Text(text) => count(text),
        Content::Parts(parts) => {
            let mut total = TokenCount::exact(0);
            for part in parts {
                total += match part {
                    ContentPart::Text { text, .. } => count(text),
                    ContentPart::InputAudio { input_audio, .. } => {
                        TokenCount::estimate(audio_tokens(input_audio.data.len()))
                    }
                    // A document's tokens depend on the provider's rendering (text and page
                    // images); a quarter of its base64 size is a generous stand-in, and an
                    // uploaded file's id is priced as one page image.
                    ContentPart::File { file, .. } => TokenCount::estimate(
                        file.file_data
                            .as_ref()
                            .map_or(IMAGE_HIGH_TOKENS, |d| len_u64(d.len()) / 4),
                    ),
                    ContentPart::Other(v) => {
                        let json = serde_json::to_string(v).unwrap_or_default();
                        count(&json).into_estimate()
                    }
                    ContentPart::ImageUrl { image_url, .. } => {
                        let low = image_url
                            .detail
                            .as_deref()
                            .is_some_and(|d| d.eq_ignore_ascii_case("low"));
                        TokenCount::estimate(if low {
                            IMAGE_LOW_TOKENS
                        } else {
                            IMAGE_HIGH_TOKENS
                        })
                    }
                };
            }
            if parts.len() > 1 {
                total.into_estimate()
            } else {
                total
            }
        }
    }
}

fn sum_texts(texts: &[String], count: &mut impl FnMut(&str) -> TokenCount) -> TokenCount {
    texts
        .iter()
        .fold(TokenCount::exact(0), |n, text| n + count(text))
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// Output tokens of a complete response body.
pub(crate) fn count_output(
    body: &ResponseBody,
    mut count: impl FnMut(&str) -> TokenCount,
) -> TokenCount {
    match body {
        ResponseBody::Chat(chat) => {
            let mut total = TokenCount::exact(0);
            for choice in &chat.choices {
                let message = &choice.message;
                if let Some(content) = &message.content {
                    total += count_content(content, &mut count);
                }
                total += count_message_extras(message, &mut count);
            }
            total
        }
        ResponseBody::Completion(c) => c
            .choices
            .iter()
            .fold(TokenCount::exact(0), |n, choice| n + count(&choice.text)),
        ResponseBody::Embeddings(_) | ResponseBody::Stream(_) => TokenCount::exact(0),
    }
}

/// Output tokens of one streamed chunk.
pub(crate) fn count_chunk(
    chunk: &ChatChunk,
    mut count: impl FnMut(&str) -> TokenCount,
) -> TokenCount {
    let mut total = TokenCount::exact(0);
    for choice in &chunk.choices {
        if let Some(text) = &choice.delta.content {
            total += count(text);
        }
        if let Some(text) = &choice.delta.refusal {
            total += count(text);
        }
        if let Some(text) = &choice.delta.reasoning_content {
            total += count(text).into_estimate();
        }
        for call in &choice.delta.tool_calls {
            if let Some(function) = &call.function {
                let mut part = TokenCount::exact(0);
                if let Some(name) = &function.name {
                    part += count(name);
                }
                if let Some(arguments) = &function.arguments {
                    part += count(arguments);
                }
                total += part.into_estimate();
            }
        }
    }
    total
}
