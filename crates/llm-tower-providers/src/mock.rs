//! The mock provider: a real in-process `Service<LlmRequest>` for demos, tests and
//! benchmarks.
//!
//! - Deterministic replies: the same request always gets the same answer (`Reply::Lorem`
//!   picks words from a hash of the conversation; `Reply::Echo` repeats the last user
//!   message; `Reply::Fixed` returns a given text). `max_tokens` cuts the reply
//!   (`finish_reason: "length"`).
//! - Usage counted with the real tokenizer (exact for OpenAI model names), reported as
//!   provider usage; or no usage at all, like many local servers (`report_usage(false)`).
//! - Configurable latency (before the response) and per-chunk interval for streams,
//!   through the [`Clock`](llm_tower_core::Clock), so paused-time tests are exact.
//! - Streaming like OpenAI: a role chunk, one chunk per word, a finish chunk, and a usage
//!   chunk when `stream_options.include_usage` is set.
//! - `n` choices, each with its own reply.
//! - Tools: when the request offers tools (and `tool_choice` is not `"none"`) and the last
//!   message is the user's, the reply calls the tool `tool_choice` names, else the first,
//!   with arguments made from its JSON schema (every required property, of its type;
//!   `finish_reason: "tool_calls"`).
//! - `response_format`: `json_object` answers a JSON object, `json_schema` a JSON value
//!   made from the schema, so demos parse.
//! - Reasoning: with `reasoning_effort` the reply carries `reasoning_content` and counts
//!   reasoning tokens; with Anthropic's `thinking: {"type": "enabled"}` it also carries a
//!   signed thinking block (streamed as reasoning deltas, then the whole block).
//! - Injected failures at a seeded rate or on a schedule: 429 with retry-after, 5xx,
//!   overloaded, a timeout error, or a stall that never answers (for timeout layers).

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use futures_util::future::BoxFuture;
use llm_tower_core::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, CompletionChoice,
    CompletionResponse, Delta, Embedding, EmbeddingInput, EmbeddingVector, EmbeddingsResponse,
    Error, ErrorKind, LimitOrigin, LlmRequest, LlmResponse, Message, RequestBody, ResponseBody,
    ResponseMeta, Role, SharedClock, ThinkingBlock, TokioClock, ToolCall, Usage, UsageSource,
};
use llm_tower_layers::token_count::{TokenCounter, Tokenizers};
use tower::Service;

/// What the mock answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `words` pseudo-random words chosen from a hash of the conversation.
    Lorem {
        /// Number of words.
        words: usize,
    },
    /// The last user message, prefixed with `"You said: "`.
    Echo,
    /// This text.
    Fixed(String),
}

/// A failure the mock can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 429 with a retry-after.
    RateLimited {
        /// The retry-after sent.
        retry_after: Duration,
    },
    /// An HTTP 5xx.
    ServerError {
        /// The status.
        status: u16,
    },
    /// HTTP 529 overloaded.
    Overloaded,
    /// A timeout error after the configured latency.
    Timeout,
    /// Never answers (until dropped): for testing timeouts and deadlines.
    Stall,
}

impl Failure {
    fn into_error(self, provider: &Arc<str>) -> Error {
        let e = match self {
            Failure::RateLimited { retry_after } => Error::new(
                ErrorKind::RateLimited,
                "mock: rate limit reached (injected)",
            )
            .with_retry_after(retry_after)
            .with_origin(LimitOrigin::Provider),
            Failure::ServerError { status } => Error::new(
                ErrorKind::Provider { status },
                format!("mock: server error {status} (injected)"),
            ),
            Failure::Overloaded => Error::new(ErrorKind::Overloaded, "mock: overloaded (injected)"),
            Failure::Timeout | Failure::Stall => Error::timeout("mock: timed out (injected)"),
        };
        e.with_provider(provider.clone())
    }
}

/// When failures are injected.
#[derive(Debug, Clone, PartialEq)]
pub enum FailurePlan {
    /// Never.
    Never,
    /// Each request fails with `probability` (0.0..=1.0), decided by a generator seeded
    /// with `seed`: the same seed fails the same request numbers.
    Rate {
        /// Probability of a failure.
        probability: f64,
        /// The failure.
        failure: Failure,
        /// Seed.
        seed: u64,
    },
    /// Request number `i` (0-based) fails with `schedule[i % len]` when it is `Some`.
    Schedule(Vec<Option<Failure>>),
    /// Request number `i` fails with `schedule[i]` when it is `Some`; later requests succeed.
    Once(Vec<Option<Failure>>),
}

/// Builds a [`MockProvider`].
#[derive(Clone)]
pub struct MockConfig {
    name: Arc<str>,
    latency: Duration,
    chunk_interval: Duration,
    reply: Reply,
    failures: FailurePlan,
    report_usage: bool,
    embedding_dims: usize,
    clock: SharedClock,
    counter: Arc<dyn TokenCounter>,
}

impl fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConfig")
            .field("name", &self.name)
            .field("latency", &self.latency)
            .field("chunk_interval", &self.chunk_interval)
            .field("reply", &self.reply)
            .field("failures", &self.failures)
            .field("report_usage", &self.report_usage)
            .finish()
    }
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            name: Arc::from("mock"),
            latency: Duration::ZERO,
            chunk_interval: Duration::ZERO,
            reply: Reply::Lorem { words: 24 },
            failures: FailurePlan::Never,
            report_usage: true,
            embedding_dims: 16,
            clock: TokioClock::shared(),
            counter: Arc::new(Tokenizers::new()),
        }
    }
}

impl MockConfig {
    /// Names the provider (`ResponseMeta::provider`).
    #[must_use]
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Time before the response (and before the first chunk).
    #[must_use]
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Time between streamed chunks.
    #[must_use]
    pub fn chunk_interval(mut self, interval: Duration) -> Self {
        self.chunk_interval = interval;
        self
    }

    /// What to answer.
    #[must_use]
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// When to fail.
    #[must_use]
    pub fn failures(mut self, plan: FailurePlan) -> Self {
        self.failures = plan;
        self
    }

    /// Whether responses carry usage (`false` behaves like a local server without usage).
    #[must_use]
    pub fn report_usage(mut self, yes: bool) -> Self {
        self.report_usage = yes;
        self
    }

    /// Embedding dimensions when the request does not set `dimensions` (default 16).
    #[must_use]
    pub fn embedding_dims(mut self, dims: usize) -> Self {
        self.embedding_dims = dims.clamp(1, 8192);
        self
    }

    /// The clock for latency and `created`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The tokenizer used for usage.
    #[must_use]
    pub fn counter(mut self, counter: Arc<dyn TokenCounter>) -> Self {
        self.counter = counter;
        self
    }

    /// Builds the provider.
    pub fn build(self) -> MockProvider {
        MockProvider {
            inner: Arc::new(Inner {
                config: self,
                calls: AtomicU64::new(0),
            }),
        }
    }
}

struct Inner {
    config: MockConfig,
    calls: AtomicU64,
}

/// The mock provider. Cheap to clone; clones share the call counter and failure schedule.
#[derive(Clone)]
pub struct MockProvider {
    inner: Arc<Inner>,
}

impl fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockProvider")
            .field("config", &self.inner.config)
            .field("calls", &self.calls())
            .finish()
    }
}

impl Default for MockProvider {
    fn default() -> Self {
        MockProvider::new()
    }
}

const WORDS: &[&str] = &[
    "the", "model", "answers", "with", "tokens", "tower", "layer", "service", "request", "stream",
    "budget", "limit", "retry", "provider", "gateway", "latency", "cost", "window", "bucket",
    "caller", "prompt", "reply", "cache", "count", "exact", "fair", "queue", "signal", "metric",
    "trace", "span", "future", "poll", "ready", "shared", "state", "clock", "deadline", "jitter",
    "backoff",
];

impl MockProvider {
    /// A mock with the defaults: no latency, 24-word lorem replies, usage, no failures.
    pub fn new() -> Self {
        MockConfig::default().build()
    }

    /// A configuration to build from.
    pub fn builder() -> MockConfig {
        MockConfig::default()
    }

    /// Requests received so far.
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// Always healthy.
    ///
    /// # Errors
    /// Never.
    pub async fn health(&self) -> Result<(), Error> {
        Ok(())
    }

    fn failure_for(&self, n: u64) -> Option<Failure> {
        match &self.inner.config.failures {
            FailurePlan::Never => None,
            FailurePlan::Rate {
                probability,
                failure,
                seed,
            } => {
                let draw = splitmix64(seed.wrapping_add(n)) as f64 / u64::MAX as f64;
                (draw < *probability).then_some(*failure)
            }
            FailurePlan::Schedule(s) if !s.is_empty() => s
                .get(usize::try_from(n).unwrap_or(0) % s.len())
                .copied()
                .flatten(),
            FailurePlan::Schedule(_) => None,
            FailurePlan::Once(s) => usize::try_from(n)
                .ok()
                .and_then(|i| s.get(i))
                .copied()
                .flatten(),
        }
    }

    fn reply_text(
        &self,
        seed_text: &str,
        last_user: &str,
        max_tokens: Option<u32>,
        model: &str,
    ) -> (String, &'static str) {
        let cfg = &self.inner.config;
        let full = match &cfg.reply {
            Reply::Fixed(t) => t.clone(),
            Reply::Echo => format!("You said: {last_user}"),
            Reply::Lorem { words } => {
                let mut h = DefaultHasher::new();
                seed_text.hash(&mut h);
                let mut state = h.finish();
                let mut out = String::new();
                for i in 0..*words {
                    state = splitmix64(state);
                    let w = WORDS[usize::try_from(state % WORDS.len() as u64).unwrap_or(0)];
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(w);
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out
            }
        };
        let Some(max) = max_tokens else {
            return (full, "stop");
        };
        if cfg.counter.count_text(model, &full).tokens <= u64::from(max) {
            return (full, "stop");
        }
        // Cut word by word until it fits.
        let mut cut = String::new();
        for (i, w) in full.split(' ').enumerate() {
            let candidate = if i == 0 {
                w.to_owned()
            } else {
                format!("{cut} {w}")
            };
            if cfg.counter.count_text(model, &candidate).tokens > u64::from(max) {
                break;
            }
            cut = candidate;
        }
        (cut, "length")
    }

    fn chat(
        &self,
        id: String,
        created: u64,
        chat: &ChatRequest,
        body: &RequestBody,
    ) -> (ChatResponse, Usage) {
        let cfg = &self.inner.config;
        let last_user = chat
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.text().into_owned())
            .unwrap_or_default();
        let seed: String = chat
            .messages
            .iter()
            .map(|m| m.text().into_owned())
            .collect::<Vec<_>>()
            .join("\n");
        let prompt = cfg.counter.count_prompt(body).tokens;
        let n = chat.n.unwrap_or(1).clamp(1, llm_tower_core::MAX_CHOICES);
        let thinking = chat
            .extra
            .get("thinking")
            .and_then(|t| t.get("type"))
            .and_then(serde_json::Value::as_str)
            .is_some_and(|t| t == "enabled" || t == "adaptive");
        let reasoning = thinking || chat.extra.contains_key("reasoning_effort");
        let mut choices = Vec::new();
        let mut completion = 0u64;
        let mut reasoning_tokens = 0u64;
        for index in 0..n {
            let seed = if index == 0 {
                seed.clone()
            } else {
                format!("{seed}#{index}")
            };
            let (mut message, finish, tokens) = self.reply(&id, index, &seed, &last_user, chat);
            completion = completion.saturating_add(tokens);
            if reasoning {
                let (thought, _) =
                    self.reply_text(&format!("think:{seed}"), &last_user, Some(24), &chat.model);
                let thought = format!("Let me think. {thought}");
                let t = cfg.counter.count_text(&chat.model, &thought).tokens;
                reasoning_tokens = reasoning_tokens.saturating_add(t);
                completion = completion.saturating_add(t);
                if thinking {
                    let mut h = DefaultHasher::new();
                    thought.hash(&mut h);
                    message.thinking_blocks = vec![ThinkingBlock::Thinking {
                        thinking: thought.clone(),
                        signature: format!("mock-sig-{:016x}", h.finish()),
                    }];
                }
                message.reasoning_content = Some(thought);
            }
            choices.push(ChatChoice::new(index, message, Some(finish.to_owned())));
        }
        let mut resp = ChatResponse::new(id, chat.model.clone(), created, choices);
        resp.system_fingerprint = Some("mock".to_owned());
        (
            resp,
            Usage::new(prompt, completion, UsageSource::Provider).with_reasoning(reasoning_tokens),
        )
    }

    /// One choice's message, finish reason and output tokens.
    fn reply(
        &self,
        id: &str,
        index: u32,
        seed: &str,
        last_user: &str,
        chat: &ChatRequest,
    ) -> (Message, &'static str, u64) {
        let cfg = &self.inner.config;
        let choice = chat.tool_choice.as_ref();
        let wants_tool = !chat.tools.is_empty()
            && choice.and_then(|c| c.as_str()) != Some("none")
            && chat.messages.last().is_some_and(|m| m.role == Role::User);
        let named = choice
            .and_then(|c| {
                c.get("function")
                    .and_then(|f| f.get("name"))
                    .or(c.get("name"))
            })
            .and_then(serde_json::Value::as_str);
        let tool = chat
            .tools
            .iter()
            .find(|t| named.is_some_and(|n| t.name() == Some(n)))
            .or(chat.tools.first());
        if let Some(tool) = tool.filter(|_| wants_tool) {
            let schema = tool.function.as_ref().and_then(|f| f.parameters.as_ref());
            let mut state = hash_str(seed);
            let args = schema.map_or_else(
                || serde_json::Value::Object(serde_json::Map::new()),
                |s| sample_json(s, &mut state, 0),
            );
            let call = ToolCall::function(
                format!("call_{id}_{index}"),
                tool.name().unwrap_or("tool"),
                args.to_string(),
            );
            let tokens = cfg
                .counter
                .count_text(&chat.model, &call.function.arguments)
                .tokens
                .saturating_add(
                    cfg.counter
                        .count_text(&chat.model, &call.function.name)
                        .tokens,
                );
            let mut m = Message::empty(Role::Assistant);
            m.tool_calls = vec![call];
            return (m, "tool_calls", tokens);
        }
        let format = chat
            .response_format
            .as_ref()
            .and_then(|f| f.get("type"))
            .and_then(serde_json::Value::as_str);
        let text = match format {
            Some("json_object") => {
                let (t, _) = self.reply_text(seed, last_user, Some(16), &chat.model);
                Some(serde_json::json!({ "answer": t }).to_string())
            }
            Some("json_schema") => chat
                .response_format
                .as_ref()
                .and_then(|f| f.get("json_schema"))
                .and_then(|j| j.get("schema"))
                .map(|schema| sample_json(schema, &mut hash_str(seed), 0).to_string()),
            _ => None,
        };
        let (text, finish) = match text {
            Some(t) => (t, "stop"),
            None => self.reply_text(seed, last_user, chat.max_tokens, &chat.model),
        };
        let tokens = cfg.counter.count_text(&chat.model, &text).tokens;
        (Message::assistant(text), finish, tokens)
    }

    fn respond(&self, req: &LlmRequest, n: u64) -> LlmResponse {
        let cfg = &self.inner.config;
        let id = format!("mock-{n}");
        let created = cfg.clock.unix_secs();
        let (body, usage) = match &req.body {
            RequestBody::Chat(chat) if chat.stream => {
                let (resp, usage) = self.chat(id, created, chat, &req.body);
                let include_usage = chat
                    .stream_options
                    .as_ref()
                    .is_some_and(|o| o.include_usage)
                    && cfg.report_usage;
                (
                    ResponseBody::Stream(self.stream(resp, include_usage.then_some(usage))),
                    None,
                )
            }
            RequestBody::Chat(chat) => {
                let (resp, usage) = self.chat(id, created, chat, &req.body);
                (ResponseBody::Chat(resp), Some(usage))
            }
            RequestBody::Completion(c) => {
                let prompt = cfg.counter.count_prompt(&req.body).tokens;
                let texts = c.prompt.texts();
                let mut choices = Vec::new();
                let mut completion = 0;
                for (i, p) in texts.iter().enumerate() {
                    let (text, finish) = self.reply_text(p, p, c.max_tokens, &c.model);
                    completion += cfg.counter.count_text(&c.model, &text).tokens;
                    choices.push(CompletionChoice {
                        index: u32::try_from(i).unwrap_or(u32::MAX),
                        text,
                        finish_reason: Some(finish.to_owned()),
                    });
                }
                let resp = CompletionResponse {
                    id,
                    model: c.model.clone(),
                    created,
                    choices,
                };
                (
                    ResponseBody::Completion(resp),
                    Some(Usage::new(prompt, completion, UsageSource::Provider)),
                )
            }
            RequestBody::Embeddings(e) => {
                let inputs: Vec<String> = match &e.input {
                    EmbeddingInput::One(s) => vec![s.clone()],
                    EmbeddingInput::Many(v) => v.clone(),
                    EmbeddingInput::Tokens(t) => vec![format!("{t:?}")],
                    EmbeddingInput::ManyTokens(v) => v.iter().map(|t| format!("{t:?}")).collect(),
                };
                let dims = e.dimensions.map_or(cfg.embedding_dims, |d| {
                    usize::try_from(d).unwrap_or(16).clamp(1, 8192)
                });
                let as_base64 = e.encoding_format.as_deref() == Some("base64");
                let data = inputs
                    .iter()
                    .enumerate()
                    .map(|(i, text)| {
                        let v = embed(text, dims);
                        let embedding = if as_base64 {
                            let mut bytes = Vec::with_capacity(v.len() * 4);
                            for x in &v {
                                bytes.extend_from_slice(&x.to_le_bytes());
                            }
                            EmbeddingVector::Base64(
                                base64::engine::general_purpose::STANDARD.encode(&bytes),
                            )
                        } else {
                            EmbeddingVector::Float(v)
                        };
                        Embedding {
                            index: u32::try_from(i).unwrap_or(u32::MAX),
                            embedding,
                        }
                    })
                    .collect();
                let prompt = cfg.counter.count_prompt(&req.body).tokens;
                let resp = EmbeddingsResponse {
                    model: e.model.clone(),
                    data,
                };
                (
                    ResponseBody::Embeddings(resp),
                    Some(Usage::new(prompt, 0, UsageSource::Provider)),
                )
            }
        };
        let mut resp = LlmResponse::new(body);
        resp.usage = if cfg.report_usage { usage } else { None };
        let mut meta = ResponseMeta::default();
        meta.provider = Some(cfg.name.clone());
        meta.model = Some(req.model().to_owned());
        meta.latency = cfg.latency;
        resp.meta = meta;
        resp
    }

    fn stream(&self, resp: ChatResponse, usage: Option<Usage>) -> llm_tower_core::ChatStream {
        let cfg = &self.inner.config;
        let base = |choice: Option<ChunkChoice>| {
            let mut c = ChatChunk::new(resp.id.clone(), resp.model.clone(), resp.created);
            c.choices.extend(choice);
            c
        };
        let delta = |index: u32, delta: Delta| Some(ChunkChoice::new(index, delta, None));
        let mut chunks = Vec::new();
        for c in &resp.choices {
            let i = c.index;
            chunks.push(base(delta(
                i,
                Delta {
                    role: Some(Role::Assistant),
                    content: Some(String::new()),
                    ..Delta::default()
                },
            )));
            let m = &c.message;
            if let Some(r) = &m.reasoning_content {
                for piece in words(r) {
                    chunks.push(base(delta(
                        i,
                        Delta {
                            reasoning_content: Some(piece),
                            ..Delta::default()
                        },
                    )));
                }
                if !m.thinking_blocks.is_empty() {
                    chunks.push(base(delta(
                        i,
                        Delta {
                            thinking_blocks: m.thinking_blocks.clone(),
                            ..Delta::default()
                        },
                    )));
                }
            }
            for piece in words(&m.text()) {
                chunks.push(base(delta(
                    i,
                    Delta {
                        content: Some(piece),
                        ..Delta::default()
                    },
                )));
            }
            for (k, call) in m.tool_calls.iter().enumerate() {
                chunks.push(base(delta(
                    i,
                    Delta {
                        tool_calls: vec![llm_tower_core::ToolCallDelta {
                            extra: Default::default(),
                            index: u32::try_from(k).unwrap_or(0),
                            id: Some(call.id.clone()),
                            kind: Some("function".to_owned()),
                            function: Some(llm_tower_core::FunctionCallDelta {
                                name: Some(call.function.name.clone()),
                                arguments: Some(call.function.arguments.clone()),
                            }),
                        }],
                        ..Delta::default()
                    },
                )));
            }
            chunks.push(base(Some(ChunkChoice::new(
                i,
                Delta::default(),
                c.finish_reason.clone(),
            ))));
        }
        if let Some(u) = usage {
            let mut last = base(None);
            last.usage = Some(u);
            chunks.push(last);
        }
        let interval = cfg.chunk_interval;
        let clock = cfg.clock.clone();
        Box::pin(futures_util::stream::unfold(
            chunks.into_iter(),
            move |mut it| {
                let clock = clock.clone();
                async move {
                    let next = it.next()?;
                    if !interval.is_zero() {
                        clock.sleep(interval).await;
                    }
                    Some((Ok(next), it))
                }
            },
        ))
    }
}

/// A text split into words, each but the first with its leading space.
fn words(text: &str) -> Vec<String> {
    text.split(' ')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_owned()
            } else {
                format!(" {w}")
            }
        })
        .filter(|p| !p.is_empty())
        .collect()
}

fn hash_str(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// A JSON value that satisfies the common parts of a JSON schema: objects with every
/// required property (and the others), strings (the first `enum` value or a word),
/// numbers, integers, booleans, arrays of one item, `anyOf`/`oneOf` (the first), `const`.
fn sample_json(schema: &serde_json::Value, state: &mut u64, depth: u32) -> serde_json::Value {
    use serde_json::{Map, Value};
    if depth > 8 {
        return Value::Null;
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return sample_json(first, state, depth + 1);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    *state = splitmix64(*state);
    match kind {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    out.insert(name.clone(), sample_json(sub, state, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let item = schema
                .get("items")
                .map_or(Value::Null, |i| sample_json(i, state, depth + 1));
            Value::Array(vec![item])
        }
        "integer" => Value::from(*state % 100),
        "number" => Value::from((*state % 10_000) as f64 / 100.0),
        "boolean" => Value::Bool(state.is_multiple_of(2)),
        "null" => Value::Null,
        _ => Value::String(
            WORDS[usize::try_from(*state % WORDS.len() as u64).unwrap_or(0)].to_owned(),
        ),
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn embed(text: &str, dims: usize) -> Vec<f32> {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    let mut state = h.finish();
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            state = splitmix64(state);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

impl Service<LlmRequest> for MockProvider {
    type Response = LlmResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<LlmResponse, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let n = self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        Box::pin(async move {
            let cfg = &this.inner.config;
            if !cfg.latency.is_zero() {
                cfg.clock.sleep(cfg.latency).await;
            }
            match this.failure_for(n) {
                Some(Failure::Stall) => {
                    std::future::pending::<()>().await;
                    Err(Failure::Stall.into_error(&cfg.name))
                }
                Some(f) => Err(f.into_error(&cfg.name)),
                None => {
                    // Only the chat translation of a Responses API request is served.
                    llm_tower_core::ResponsesBody::check_translatable(&req)
                        .map_err(|e| e.with_provider(cfg.name.clone()))?;
                    Ok(this.respond(&req, n))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tower::ServiceExt;

    fn chat(model: &str) -> LlmRequest {
        LlmRequest::chat(ChatRequest::new(
            model,
            vec![Message::user("Say something about towers.")],
        ))
    }

    fn with(f: impl FnOnce(&mut ChatRequest)) -> LlmRequest {
        let mut c = ChatRequest::new("gpt-4o", vec![Message::user("Plan a trip to Paris.")]);
        f(&mut c);
        LlmRequest::chat(c)
    }

    async fn answer(req: LlmRequest) -> (ChatResponse, Usage) {
        let r = MockProvider::new().oneshot(req).await.unwrap();
        let usage = r.usage.unwrap();
        (r.as_chat().unwrap().clone(), usage)
    }

    #[tokio::test]
    async fn n_choices_each_with_its_own_reply() {
        let (resp, usage) = answer(with(|c| c.n = Some(3))).await;
        assert_eq!(resp.choices.len(), 3);
        let texts: std::collections::HashSet<String> = resp
            .choices
            .iter()
            .map(|c| c.message.text().into_owned())
            .collect();
        assert_eq!(texts.len(), 3, "{texts:?}");
        let one = answer(with(|_| {})).await.1;
        assert!(usage.completion_tokens > 2 * one.completion_tokens);
    }

    #[tokio::test]
    async fn tool_arguments_satisfy_the_schema_and_tool_choice_is_honoured() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "stops": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["city", "days", "unit"]
        });
        let tool = |name: &str| {
            let mut f = llm_tower_core::FunctionDef::new(name);
            f.parameters = Some(schema.clone());
            llm_tower_core::Tool::function(f)
        };
        let (resp, _) = answer(with(|c| {
            c.tools = vec![tool("first"), tool("weather")];
            c.tool_choice =
                Some(serde_json::json!({"type": "function", "function": {"name": "weather"}}));
        }))
        .await;
        let call = &resp.choices[0].message.tool_calls[0];
        assert_eq!(call.function.name, "weather");
        let args: serde_json::Value = serde_json::from_str(&call.function.arguments).unwrap();
        assert!(args["city"].is_string(), "{args}");
        assert!(args["days"].is_u64(), "{args}");
        assert_eq!(args["unit"], "celsius");
        assert!(args["stops"].is_array());
        assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    }

    #[tokio::test]
    async fn response_formats_answer_valid_json() {
        let (resp, _) = answer(with(|c| {
            c.response_format = Some(serde_json::json!({"type": "json_object"}));
        }))
        .await;
        let v: serde_json::Value = serde_json::from_str(&resp.text()).unwrap();
        assert!(v.is_object());
        let (resp, _) = answer(with(|c| {
            c.response_format = Some(serde_json::json!({"type": "json_schema", "json_schema": {
                "name": "trip", "schema": {"type": "object", "properties": {
                    "city": {"type": "string"}, "nights": {"type": "integer"}},
                    "required": ["city", "nights"]}}}));
        }))
        .await;
        let v: serde_json::Value = serde_json::from_str(&resp.text()).unwrap();
        assert!(v["city"].is_string() && v["nights"].is_u64(), "{v}");
    }

    #[tokio::test]
    async fn thinking_streams_as_reasoning_then_a_signed_block_and_folds_back() {
        let req = || {
            with(|c| {
                c.extra.insert(
                    "thinking".into(),
                    serde_json::json!({"type": "enabled", "budget_tokens": 1024}),
                );
            })
        };
        let (whole, usage) = answer(req()).await;
        let m = &whole.choices[0].message;
        assert!(
            m.reasoning_content
                .as_deref()
                .unwrap()
                .starts_with("Let me think.")
        );
        let ThinkingBlock::Thinking {
            thinking,
            signature,
        } = &m.thinking_blocks[0]
        else {
            panic!("a thinking block");
        };
        assert_eq!(Some(thinking.as_str()), m.reasoning_content.as_deref());
        assert!(signature.starts_with("mock-sig-"));
        assert!(usage.reasoning_tokens > 0 && usage.reasoning_tokens < usage.completion_tokens);

        let mut streamed = req();
        if let RequestBody::Chat(c) = &mut streamed.body {
            c.stream = true;
        }
        let r = MockProvider::new().oneshot(streamed).await.unwrap();
        let (folded, _) = llm_tower_core::collect_chat_stream(r.into_stream().unwrap())
            .await
            .unwrap();
        assert_eq!(folded.choices[0].message.thinking_blocks, m.thinking_blocks);
        assert_eq!(
            folded.choices[0].message.reasoning_content,
            m.reasoning_content
        );
        assert_eq!(folded.text(), whole.text());
    }

    #[tokio::test]
    async fn replies_are_deterministic_with_real_token_usage() {
        let m = MockProvider::new();
        let a = m.clone().oneshot(chat("gpt-4o")).await.unwrap();
        let b = m.clone().oneshot(chat("gpt-4o")).await.unwrap();
        let (ta, tb) = (
            a.as_chat().unwrap().text().into_owned(),
            b.as_chat().unwrap().text().into_owned(),
        );
        assert_eq!(ta, tb);
        let u = a.usage.unwrap();
        let expected = Tokenizers::new().count_text("gpt-4o", &ta).tokens;
        assert_eq!(u.completion_tokens, expected);
        assert_eq!(u.source, UsageSource::Provider);
        assert!(u.prompt_tokens > 5);
        assert_eq!(m.calls(), 2);
    }

    #[tokio::test]
    async fn max_tokens_cuts_the_reply() {
        let m = MockProvider::new();
        let r = m
            .oneshot(LlmRequest::chat(
                ChatRequest::new("gpt-4o", vec![Message::user("hi")]).max_tokens(5),
            ))
            .await
            .unwrap();
        let c = r.as_chat().unwrap();
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("length"));
        assert!(r.usage.unwrap().completion_tokens <= 5);
    }

    #[tokio::test]
    async fn streams_chunks_then_usage() {
        let m = MockProvider::builder()
            .reply(Reply::Fixed("one two three".into()))
            .build();
        let r = m
            .oneshot(LlmRequest::chat(
                ChatRequest::new("gpt-4o", vec![Message::user("hi")]).streaming(),
            ))
            .await
            .unwrap();
        let chunks: Vec<_> = r.into_stream().unwrap().collect().await;
        let text: String = chunks.iter().map(|c| c.as_ref().unwrap().text()).collect();
        assert_eq!(text, "one two three");
        let last = chunks.last().unwrap().as_ref().unwrap();
        assert_eq!(last.usage.unwrap().completion_tokens, 3);
        assert!(last.choices.is_empty());
    }

    #[tokio::test]
    async fn schedule_injects_failures_in_order() {
        let m = MockProvider::builder()
            .failures(FailurePlan::Once(vec![
                Some(Failure::RateLimited {
                    retry_after: Duration::from_secs(2),
                }),
                Some(Failure::ServerError { status: 503 }),
                None,
            ]))
            .build();
        let e = m.clone().oneshot(chat("gpt-4o")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(e.provider(), Some("mock"));
        let e = m.clone().oneshot(chat("gpt-4o")).await.unwrap_err();
        assert!(e.is_retryable());
        assert!(m.clone().oneshot(chat("gpt-4o")).await.is_ok());
        assert!(m.oneshot(chat("gpt-4o")).await.is_ok());
    }

    #[tokio::test]
    async fn failure_rate_is_seeded() {
        let plan = FailurePlan::Rate {
            probability: 0.3,
            failure: Failure::ServerError { status: 500 },
            seed: 7,
        };
        let run = || async {
            let m = MockProvider::builder().failures(plan.clone()).build();
            let mut v = Vec::new();
            for _ in 0..200 {
                v.push(m.clone().oneshot(chat("gpt-4o")).await.is_err());
            }
            v
        };
        let (a, b) = (run().await, run().await);
        assert_eq!(a, b);
        let fails = a.iter().filter(|x| **x).count();
        assert!((30..90).contains(&fails), "{fails}");
    }

    #[tokio::test(start_paused = true)]
    async fn latency_uses_the_clock() {
        let m = MockProvider::builder()
            .latency(Duration::from_millis(250))
            .build();
        let start = tokio::time::Instant::now();
        m.oneshot(chat("gpt-4o")).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(250));
    }

    #[tokio::test]
    async fn tools_get_a_tool_call_and_embeddings_are_normalised() {
        let mut req = ChatRequest::new("gpt-4o", vec![Message::user("weather?")]);
        req.tools = vec![llm_tower_core::Tool::function(
            llm_tower_core::FunctionDef {
                extra: Default::default(),
                name: "get_weather".into(),
                description: None,
                parameters: None,
                strict: None,
            },
        )];
        let r = MockProvider::new()
            .oneshot(LlmRequest::chat(req))
            .await
            .unwrap();
        let c = r.as_chat().unwrap();
        assert_eq!(
            c.choices[0].message.tool_calls[0].function.name,
            "get_weather"
        );
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));

        let e = llm_tower_core::EmbeddingsRequest {
            model: "text-embedding-3-small".into(),
            input: EmbeddingInput::Many(vec!["a".into(), "b".into()]),
            encoding_format: None,
            dimensions: Some(8),
            user: None,
            extra: Default::default(),
        };
        let r = MockProvider::new()
            .oneshot(LlmRequest::embeddings(e))
            .await
            .unwrap();
        let ResponseBody::Embeddings(e) = r.body else {
            panic!()
        };
        assert_eq!(e.data.len(), 2);
        let EmbeddingVector::Float(v) = &e.data[0].embedding else {
            panic!()
        };
        assert_eq!(v.len(), 8);
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
    }
}
