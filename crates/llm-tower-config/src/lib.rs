//! JSON configuration for llm-tower: a file -> a validated config -> the whole stack.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use llm_tower_config::{Config, build};
//! use llm_tower_core::{ChatRequest, LlmRequest, Message};
//! use tower::ServiceExt;
//!
//! let config = Config::load("config/example.json")?; // ${OPENAI_API_KEY} etc. from the env
//! let stack = build(&config).await?;
//! print!("{}", stack.describe());
//! let req = LlmRequest::chat(ChatRequest::new("fast", vec![Message::user("Hi!")]));
//! let resp = stack.service().oneshot(req).await?;
//! println!("{:?} cost {:?}", resp.usage, resp.cost);
//! # Ok(()) }
//! ```
//!
//! # Loading
//! 1. **Strict parsing** into [`RawConfig`]: unknown fields and wrong types are errors with
//!    their JSON path (`providers.openai.modles: unknown field ...`).
//! 2. **`${ENV_VAR}` interpolation** in every string value (see [`env`](mod@env)): a missing
//!    variable is an error naming the variable and the path; secrets never appear in
//!    errors, `Debug` output or logs.
//! 3. **Validation** reporting every problem at once, one per line, each with its path
//!    ([`ConfigError`], [`Problem`]): prices (`providers.openai.models.gpt-4o.price.input:
//!    must be >= 0`), budgets over models without a price (`budgets[0]: model
//!    "openai/gpt-4o" has no price`), routes naming unknown models
//!    (`routes.fast[1]: unknown model "openai/gpt-5x"`), zero limits, windows and bursts
//!    (`rate_limits[2].burst: must be > 0`), alert thresholds outside (0, 1], bad URLs,
//!    unknown tokenizers, duplicate gateway keys, fields that do not belong to a provider's
//!    type, ...
//!
//! [`Config::save`] writes the file back as written, `${ENV_VAR}` references included.
//! [`Config::json_schema`] is the JSON Schema for editors (`config/llm-tower.schema.json`).
//! [`Config::embedded_default`] is the mock-only config the gateway runs with when given
//! none.
//!
//! # Names a request may use
//! A route alias (`"fast"` -> an ordered fallback list), a `provider/model`
//! (`"openai/gpt-4o"`), or a model name served by exactly one provider (`"gpt-4o-mini"`).
//! A route alias wins over a model name it shadows (a route `"gpt-4o"` may list
//! `openai/gpt-4o` then `azure/gpt-4o`). Anything else fails with
//! `Error::model_not_found` (`InvalidRequest` with code `model_not_found`: the gateway
//! answers 404).
//!
//! # The stack [`build`] composes
//! ```text
//! trace -> count_tokens -> resolve -> rate_limit (scope "caller", in config order)
//!       -> rate_limit (each gateway key's own) -> router
//!       -> for each target of the route, in order:
//!            circuit -> track_cost -> retry -> rate_limit (scope "provider") -> timeout -> provider
//! ```
//! - **count_tokens** is outermost, so every limit and budget sees the estimate; one shared
//!   counter uses the tokenizer configured per model ([`ConfigTokenizers`]).
//! - **resolve** rejects unknown models before any limit counts them.
//! - **caller-scope limits** sit outside retry and routing: one unit per caller request.
//!   Each gateway key's own limits key only that caller.
//! - **router**: on a retryable failure (5xx, timeout, transport, overloaded, a
//!   provider-scope rate limit, an open circuit) the next target of the route is tried; any
//!   other error (bad request, budget exceeded, ...) is returned at once.
//! - **circuit** ([`circuit`]): per provider/model, opens after N consecutive failures,
//!   probes once after a cooldown.
//! - **track_cost** (one [`CostTracker`](llm_tower_layers::cost::CostTracker) with every
//!   price and budget, gateway keys' budgets as `BudgetScope::Caller(name)`) sits outside
//!   retry, so it accounts what the caller received once per target, and *inside* the router,
//!   unlike the bare layer order of `llm-tower-layers`: the cost layer prices a request by
//!   the model it names when it reserves, and only inside the router is that the model that
//!   actually answers (`provider/model`), so fallbacks are priced right and `model:` and
//!   `provider:` budgets apply. A target that fails and falls back releases its
//!   reservation and is recorded as an error of that provider in the analytics.
//! - **provider-scope limits** sit inside retry: every attempt consumes provider quota.
//! - **timeout** bounds each attempt (`providers.*.timeouts.request`).
//!
//! [`BuiltStack::describe`] prints this per route and model.
//!
//! # Without an async runtime
//! [`build_blocking`] builds the same stack as [`build`] from plain threads (nothing in the
//! build awaits: providers and Redis connect on first use).
//!
//! # Cargo features
//! | feature | default | what |
//! |---|---|---|
//! | `redis` | yes | the `redis` store (`store.type: "redis"`, through `llm-tower-redis`); without it such a config is refused at `store.type` |
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod build;
mod cache;
mod catalog;
pub mod circuit;
mod config;
mod counter;
pub mod duration;
pub mod env;
mod error;
pub mod raw;
mod router;
mod settings;
mod validate;

pub use build::{
    BuildOptions, BuiltStack, ModelEntry, ProviderHealth, build, build_blocking,
    build_blocking_with, build_with,
};
pub use circuit::{CircuitBreaker, CircuitBreakerLayer, CircuitState};
pub use config::{Config, DEFAULT_CONFIG_JSON, parse_raw};
pub use counter::ConfigTokenizers;
pub use error::{ConfigError, Problem};
pub use raw::RawConfig;
pub use settings::{DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES, GatewaySettings, LogFormat};
