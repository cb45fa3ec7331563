//! Folding a streamed chat completion back into a whole one: [`ChatStreamAccumulator`] and
//! [`collect_chat_stream`].
//!
//! Streams carry text and tool calls in pieces: text deltas per choice, and tool-call
//! deltas that name the call they continue by its `index` (the first delta of a call has
//! its `id`, `type` and `function.name`, later ones only `function.arguments` fragments,
//! and the calls of one choice may be interleaved). The accumulator puts them together.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::chat::{
    ChatChoice, ChatChunk, ChatResponse, ChunkChoice, Content, Delta, FinishReason, FunctionCall,
    FunctionCallDelta, Message, Role, ThinkingBlock, ToolCall, ToolCallDelta,
};
use crate::error::Error;
use crate::response::ChatStream;
use crate::usage::Usage;

/// Folds the chunks of a streamed chat completion into a complete [`ChatResponse`].
///
/// - `id`, `model` and `created` come from the first chunk that sets them.
/// - Each choice (by its `index`) gets its role from the delta that sets it (default
///   `assistant`), its text as the concatenation of its content deltas, and the last
///   `finish_reason` it was sent.
/// - Tool calls are assembled by their `index` within the choice: `id`, `type` and
///   `function.name` are taken from the first delta that carries them, `function.arguments`
///   fragments are concatenated in arrival order. Calls come out sorted by index.
/// - The usage is the one of the usage chunk (the last chunk that carries one); it is
///   returned apart because [`ChatResponse`] has no usage field.
///
/// - Refusal and reasoning text are concatenated like the content; completed thinking
///   blocks are kept in order with their signatures; the `content` arrays of `logprobs`
///   are concatenated.
/// - Fields the provider sent beyond the modelled ones (`system_fingerprint`,
///   `service_tier`, ...) come from the first chunk that carries them.
///
/// A choice that called tools and sent no text gets `content: None`, as in a non-streamed
/// response.
///
/// ```
/// use llm_tower_core::{
///     ChatChunk, ChatStreamAccumulator, ChunkChoice, Delta, FunctionCallDelta, Role,
///     ToolCallDelta, Usage, UsageSource,
/// };
///
/// let chunk = |delta: Delta, finish: Option<&str>| {
///     ChatChunk::new("chatcmpl-1", "gpt-4o-mini", 1_700_000_000)
///         .with_choice(ChunkChoice::new(0, delta, finish.map(Into::into)))
/// };
/// let args = |index: u32, id: Option<&str>, name: Option<&str>, arguments: &str| Delta {
///     tool_calls: vec![ToolCallDelta {
///         index,
///         id: id.map(Into::into),
///         kind: id.map(|_| "function".into()),
///         function: Some(FunctionCallDelta {
///             name: name.map(Into::into),
///             arguments: Some(arguments.into()),
///         }),
///         ..ToolCallDelta::default()
///     }],
///     ..Delta::default()
/// };
///
/// let mut acc = ChatStreamAccumulator::new();
/// acc.push(&chunk(Delta { role: Some(Role::Assistant), ..Delta::default() }, None));
/// acc.push(&chunk(args(0, Some("call_a"), Some("get_weather"), ""), None));
/// acc.push(&chunk(args(1, Some("call_b"), Some("get_time"), ""), None));
/// acc.push(&chunk(args(0, None, None, "{\"city\":"), None));
/// acc.push(&chunk(args(1, None, None, "{\"tz\":\"UTC\"}"), None));
/// acc.push(&chunk(args(0, None, None, "\"Paris\"}"), None));
/// acc.push(&chunk(Delta::default(), Some("tool_calls")));
/// let mut last = chunk(Delta::default(), None);
/// last.choices.clear();
/// last.usage = Some(Usage::new(80, 40, UsageSource::Provider));
/// acc.push(&last);
///
/// let (response, usage) = acc.finish();
/// let choice = &response.choices[0];
/// assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
/// assert_eq!(choice.message.content, None);
/// let calls = &choice.message.tool_calls;
/// assert_eq!((calls[0].id.as_str(), calls[0].function.name.as_str()), ("call_a", "get_weather"));
/// assert_eq!(calls[0].function.arguments, r#"{"city":"Paris"}"#);
/// assert_eq!((calls[1].id.as_str(), calls[1].function.arguments.as_str()), ("call_b", r#"{"tz":"UTC"}"#));
/// assert_eq!(usage.map(|u| u.total_tokens), Some(120));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ChatStreamAccumulator {
    id: String,
    model: String,
    created: u64,
    choices: BTreeMap<u32, ChoiceAcc>,
    usage: Option<Usage>,
    chunks: usize,
    extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default)]
struct ChoiceAcc {
    role: Option<Role>,
    text: String,
    refusal: Option<String>,
    reasoning: Option<String>,
    thinking: Vec<ThinkingBlock>,
    logprobs: Option<Value>,
    tool_calls: BTreeMap<u32, ToolCallAcc>,
    finish_reason: Option<FinishReason>,
}

/// Appends `more` to an optional string.
fn append(slot: &mut Option<String>, more: Option<&String>) {
    if let Some(m) = more {
        slot.get_or_insert_with(String::new).push_str(m);
    }
}

/// Concatenates the `content` (and `refusal`) arrays of two `logprobs` objects.
fn merge_logprobs(slot: &mut Option<Value>, more: &Value) {
    let Some(acc) = slot else {
        *slot = Some(more.clone());
        return;
    };
    for key in ["content", "refusal"] {
        if let Some(Value::Array(add)) = more.get(key) {
            match acc.get_mut(key) {
                Some(Value::Array(have)) => have.extend(add.iter().cloned()),
                _ => {
                    if let Value::Object(o) = acc {
                        o.insert(key.to_owned(), Value::Array(add.clone()));
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
struct ToolCallAcc {
    id: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    arguments: String,
    extra: Map<String, Value>,
}

/// `slot` takes `value` if it is still unset and `value` is a non-empty string.
fn first(slot: &mut Option<String>, value: Option<&String>) {
    if slot.is_none()
        && let Some(v) = value
        && !v.is_empty()
    {
        *slot = Some(v.clone());
    }
}

impl ToolCallAcc {
    fn push(&mut self, d: &ToolCallDelta) {
        first(&mut self.id, d.id.as_ref());
        first(&mut self.kind, d.kind.as_ref());
        if let Some(f) = &d.function {
            first(&mut self.name, f.name.as_ref());
            if let Some(a) = &f.arguments {
                self.arguments.push_str(a);
            }
        }
        for (k, v) in &d.extra {
            self.extra.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    fn finish(self) -> ToolCall {
        ToolCall {
            id: self.id.unwrap_or_default(),
            kind: self.kind.unwrap_or_else(|| "function".to_owned()),
            function: FunctionCall {
                name: self.name.unwrap_or_default(),
                arguments: self.arguments,
            },
            extra: self.extra,
        }
    }
}

impl ChatStreamAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        ChatStreamAccumulator::default()
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatChunk) {
        self.chunks += 1;
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if self.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if self.created == 0 {
            self.created = chunk.created;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for (k, v) in &chunk.extra {
            if !self.extra.contains_key(k) && !v.is_null() {
                self.extra.insert(k.clone(), v.clone());
            }
        }
        for c in &chunk.choices {
            let acc = self.choices.entry(c.index).or_default();
            if acc.role.is_none() {
                acc.role = c.delta.role;
            }
            if let Some(t) = &c.delta.content {
                acc.text.push_str(t);
            }
            append(&mut acc.refusal, c.delta.refusal.as_ref());
            append(&mut acc.reasoning, c.delta.reasoning_content.as_ref());
            acc.thinking.extend(c.delta.thinking_blocks.iter().cloned());
            if let Some(l) = &c.logprobs {
                merge_logprobs(&mut acc.logprobs, l);
            }
            for d in &c.delta.tool_calls {
                acc.tool_calls.entry(d.index).or_default().push(d);
            }
            if c.finish_reason.is_some() {
                acc.finish_reason.clone_from(&c.finish_reason);
            }
        }
    }

    /// The number of chunks added so far.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// The usage of the usage chunk, once it arrived.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The assembled response and the stream's usage (`None` when no chunk carried one).
    pub fn finish(self) -> (ChatResponse, Option<Usage>) {
        let choices = self
            .choices
            .into_iter()
            .map(|(index, c)| {
                let tool_calls: Vec<ToolCall> = c
                    .tool_calls
                    .into_values()
                    .map(ToolCallAcc::finish)
                    .collect();
                let content =
                    if c.text.is_empty() && (!tool_calls.is_empty() || c.refusal.is_some()) {
                        None
                    } else {
                        Some(Content::Text(c.text))
                    };
                let mut message = Message::empty(c.role.unwrap_or(Role::Assistant));
                message.content = content;
                message.tool_calls = tool_calls;
                message.refusal = c.refusal;
                message.reasoning_content = c.reasoning;
                message.thinking_blocks = c.thinking;
                let mut choice = ChatChoice::new(index, message, c.finish_reason);
                choice.logprobs = c.logprobs;
                choice
            })
            .collect();
        let mut extra = self.extra;
        let system_fingerprint = match extra.remove("system_fingerprint") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let service_tier = match extra.remove("service_tier") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        // Stream-only fields have no place in a whole response.
        extra.remove("obfuscation");
        (
            ChatResponse {
                id: self.id,
                model: self.model,
                created: self.created,
                choices,
                system_fingerprint,
                service_tier,
                extra,
                native: None,
            },
            self.usage,
        )
    }
}

/// A whole response as the chunks of a stream (for a provider that answered a streaming
/// request in one piece): one chunk with each choice's role, text, refusal, reasoning,
/// thinking blocks, tool calls and logprobs, one with the finish reasons, and one with the
/// usage when there is one. [`ChatStreamAccumulator`] folds them back into `resp`.
pub fn response_chunks(resp: &ChatResponse, usage: Option<Usage>) -> Vec<ChatChunk> {
    let base = |choices: Vec<ChunkChoice>| {
        let mut c = ChatChunk::new(resp.id.clone(), resp.model.clone(), resp.created);
        c.choices = choices;
        c
    };
    let deltas = resp
        .choices
        .iter()
        .map(|ch| {
            let m = &ch.message;
            let tool_calls = m
                .tool_calls
                .iter()
                .enumerate()
                .map(|(i, t)| ToolCallDelta {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    id: Some(t.id.clone()),
                    kind: Some(t.kind.clone()),
                    function: (!t.function.is_empty()).then(|| FunctionCallDelta {
                        name: Some(t.function.name.clone()),
                        arguments: Some(t.function.arguments.clone()),
                    }),
                    extra: t.extra.clone(),
                })
                .collect();
            let delta = Delta {
                role: Some(m.role),
                content: m.content.as_ref().map(|t| t.text().into_owned()),
                tool_calls,
                refusal: m.refusal.clone(),
                reasoning_content: m.reasoning_content.clone(),
                thinking_blocks: m.thinking_blocks.clone(),
            };
            let mut c = ChunkChoice::new(ch.index, delta, None);
            c.logprobs.clone_from(&ch.logprobs);
            c
        })
        .collect();
    let mut first = base(deltas);
    if let Some(f) = &resp.system_fingerprint {
        first
            .extra
            .insert("system_fingerprint".into(), Value::String(f.clone()));
    }
    if let Some(t) = &resp.service_tier {
        first
            .extra
            .insert("service_tier".into(), Value::String(t.clone()));
    }
    let finishes = resp
        .choices
        .iter()
        .map(|ch| ChunkChoice::new(ch.index, Delta::default(), ch.finish_reason.clone()))
        .collect();
    let mut out = vec![first, base(finishes)];
    if usage.is_some() {
        let mut last = base(Vec::new());
        last.usage = usage;
        out.push(last);
    }
    out
}

impl Extend<ChatChunk> for ChatStreamAccumulator {
    fn extend<I: IntoIterator<Item = ChatChunk>>(&mut self, chunks: I) {
        for c in chunks {
            self.push(&c);
        }
    }
}

impl<'a> Extend<&'a ChatChunk> for ChatStreamAccumulator {
    fn extend<I: IntoIterator<Item = &'a ChatChunk>>(&mut self, chunks: I) {
        for c in chunks {
            self.push(c);
        }
    }
}

/// Reads a whole [`ChatStream`] and assembles it with a [`ChatStreamAccumulator`]: the
/// complete response and the stream's usage.
///
/// # Errors
///
/// The first error of the stream (what arrived before it is dropped).
///
/// ```
/// use llm_tower_core::{ChatChunk, ChatStream, ChunkChoice, Delta, collect_chat_stream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), llm_tower_core::Error> {
/// let text = |t: &str| {
///     ChatChunk::new("c", "m", 1).with_choice(ChunkChoice::new(
///         0,
///         Delta { content: Some(t.into()), ..Delta::default() },
///         None,
///     ))
/// };
/// let stream: ChatStream = Box::pin(futures_util::stream::iter(vec![
///     Ok(text("Hel")),
///     Ok(text("lo")),
/// ]));
/// let (response, usage) = collect_chat_stream(stream).await?;
/// assert_eq!(response.text(), "Hello");
/// assert!(usage.is_none());
/// # Ok(()) }
/// ```
pub async fn collect_chat_stream(
    mut stream: ChatStream,
) -> Result<(ChatResponse, Option<Usage>), Error> {
    let mut acc = ChatStreamAccumulator::new();
    while let Some(item) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        acc.push(&item?);
    }
    Ok(acc.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::chat::{ChunkChoice, Delta, FunctionCallDelta};
    use crate::error::ErrorKind;
    use crate::usage::UsageSource;

    fn chunk(choices: Vec<ChunkChoice>) -> ChatChunk {
        let mut c = ChatChunk::new("chatcmpl-9", "gpt-4o-2024-08-06", 1_700_000_000);
        c.choices = choices;
        c
    }

    fn choice(index: u32, delta: Delta, finish: Option<&str>) -> ChunkChoice {
        ChunkChoice::new(index, delta, finish.map(Into::into))
    }

    fn text(index: u32, t: &str) -> ChunkChoice {
        choice(
            index,
            Delta {
                content: Some(t.into()),
                ..Delta::default()
            },
            None,
        )
    }

    /// OpenAI's shape: the first delta of a call has id, type, name and empty arguments.
    fn call_start(index: u32, id: &str, name: &str) -> ChunkChoice {
        choice(
            0,
            Delta {
                tool_calls: vec![ToolCallDelta {
                    extra: Default::default(),
                    index,
                    id: Some(id.into()),
                    kind: Some("function".into()),
                    function: Some(FunctionCallDelta {
                        name: Some(name.into()),
                        arguments: Some(String::new()),
                    }),
                }],
                ..Delta::default()
            },
            None,
        )
    }

    /// Later deltas carry only the index and an arguments fragment.
    fn call_args(index: u32, fragment: &str) -> ChunkChoice {
        choice(
            0,
            Delta {
                tool_calls: vec![ToolCallDelta {
                    extra: Default::default(),
                    index,
                    id: None,
                    kind: None,
                    function: Some(FunctionCallDelta {
                        name: None,
                        arguments: Some(fragment.into()),
                    }),
                }],
                ..Delta::default()
            },
            None,
        )
    }

    #[test]
    fn two_parallel_tool_calls_interleaved() {
        let mut acc = ChatStreamAccumulator::new();
        let role = Delta {
            reasoning_content: None,
            refusal: None,
            thinking_blocks: Vec::new(),
            role: Some(Role::Assistant),
            content: None,
            tool_calls: Vec::new(),
        };
        acc.push(&chunk(vec![choice(0, role, None)]));
        acc.push(&chunk(vec![call_start(0, "call_weather", "get_weather")]));
        acc.push(&chunk(vec![call_args(0, "{\"lo")]));
        acc.push(&chunk(vec![call_start(1, "call_time", "get_time")]));
        acc.push(&chunk(vec![call_args(1, "{\"tz\": ")]));
        acc.push(&chunk(vec![call_args(0, "cation\": \"Par")]));
        acc.push(&chunk(vec![call_args(1, "\"Europe/Paris\"}")]));
        acc.push(&chunk(vec![call_args(0, "is\"}")]));
        acc.push(&chunk(vec![choice(
            0,
            Delta::default(),
            Some("tool_calls"),
        )]));
        let mut usage = chunk(Vec::new());
        usage.usage = Some(Usage::new(82, 51, UsageSource::Provider));
        acc.push(&usage);
        assert_eq!(acc.chunks(), 10);

        let (resp, usage) = acc.finish();
        assert_eq!(resp.id, "chatcmpl-9");
        assert_eq!(resp.model, "gpt-4o-2024-08-06");
        assert_eq!(resp.created, 1_700_000_000);
        assert_eq!(usage.unwrap().total_tokens, 133);
        assert_eq!(resp.choices.len(), 1);
        let c = &resp.choices[0];
        assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(c.message.role, Role::Assistant);
        assert_eq!(c.message.content, None);
        assert_eq!(
            c.message.tool_calls,
            vec![
                ToolCall {
                    extra: Default::default(),
                    id: "call_weather".into(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: "get_weather".into(),
                        arguments: r#"{"location": "Paris"}"#.into(),
                    },
                },
                ToolCall {
                    extra: Default::default(),
                    id: "call_time".into(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: "get_time".into(),
                        arguments: r#"{"tz": "Europe/Paris"}"#.into(),
                    },
                },
            ]
        );
        for call in &c.message.tool_calls {
            serde_json::from_str::<serde_json::Value>(&call.function.arguments).unwrap();
        }
    }

    #[test]
    fn text_per_choice_index_and_finish_reasons() {
        let mut acc = ChatStreamAccumulator::new();
        // Choice 1 arrives first; output is still sorted by index.
        acc.push(&chunk(vec![text(1, "Bon"), text(0, "Hel")]));
        acc.push(&chunk(vec![text(0, "lo")]));
        acc.push(&chunk(vec![text(1, "jour")]));
        acc.push(&chunk(vec![
            choice(0, Delta::default(), Some("stop")),
            choice(1, Delta::default(), Some("length")),
        ]));
        let (resp, usage) = acc.finish();
        assert!(usage.is_none());
        assert_eq!(resp.choices.len(), 2);
        assert_eq!(resp.choices[0].index, 0);
        assert_eq!(resp.text(), "Hello");
        assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(resp.choices[1].message.text(), "Bonjour");
        assert_eq!(resp.choices[1].finish_reason.as_deref(), Some("length"));
        assert!(resp.choices[1].message.tool_calls.is_empty());
    }

    #[test]
    fn text_and_a_tool_call_together_and_whole_calls_in_one_delta() {
        let mut acc = ChatStreamAccumulator::new();
        acc.push(&chunk(vec![text(0, "Let me check.")]));
        // Some servers send the whole call in one delta, with the id repeated later.
        let whole = choice(
            0,
            Delta {
                tool_calls: vec![ToolCallDelta {
                    extra: Default::default(),
                    index: 0,
                    id: Some("call_1".into()),
                    kind: None,
                    function: Some(FunctionCallDelta {
                        name: Some("lookup".into()),
                        arguments: Some("{\"q\":1}".into()),
                    }),
                }],
                ..Delta::default()
            },
            Some("tool_calls"),
        );
        acc.push(&chunk(vec![whole]));
        let mut repeat = call_args(0, "");
        repeat.delta.tool_calls[0].id = Some("call_other".into());
        acc.push(&chunk(vec![repeat]));
        let (resp, _) = acc.finish();
        let m = &resp.choices[0].message;
        assert_eq!(m.text(), "Let me check.");
        assert_eq!(m.tool_calls.len(), 1);
        assert_eq!(m.tool_calls[0].id, "call_1");
        assert_eq!(m.tool_calls[0].kind, "function");
        assert_eq!(m.tool_calls[0].function.arguments, "{\"q\":1}");
    }

    #[test]
    fn empty_ids_of_filter_chunks_do_not_win() {
        let mut acc = ChatStreamAccumulator::new();
        let mut filter = chunk(Vec::new());
        filter.id = String::new();
        filter.model = String::new();
        filter.created = 0;
        acc.push(&filter);
        acc.extend(vec![chunk(vec![text(0, "ok")])]);
        let (resp, _) = acc.finish();
        assert_eq!(resp.id, "chatcmpl-9");
        assert_eq!(resp.model, "gpt-4o-2024-08-06");
        assert_eq!(resp.created, 1_700_000_000);
        assert_eq!(resp.text(), "ok");
    }

    #[tokio::test]
    async fn collect_returns_the_response_or_the_first_error() {
        let mut usage = chunk(Vec::new());
        usage.usage = Some(Usage::new(3, 2, UsageSource::Provider));
        let items = vec![
            Ok(chunk(vec![text(0, "a")])),
            Ok(chunk(vec![text(0, "b")])),
            Ok(usage),
        ];
        let s: ChatStream = Box::pin(futures_util::stream::iter(items));
        let (resp, usage) = collect_chat_stream(s).await.unwrap();
        assert_eq!(resp.text(), "ab");
        assert_eq!(usage.unwrap().completion_tokens, 2);

        let items = vec![
            Ok(chunk(vec![text(0, "a")])),
            Err(Error::timeout("stream idle")),
            Ok(chunk(vec![text(0, "b")])),
        ];
        let s: ChatStream = Box::pin(futures_util::stream::iter(items));
        let e = collect_chat_stream(s).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
    }
}
