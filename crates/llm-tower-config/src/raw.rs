//! The config file as written: serde types with strict parsing (`deny_unknown_fields`).
//!
//! Durations (`"500ms"`, `"1h30m"`), money (`"2.50"`), URLs and scopes stay strings here;
//! validation parses them and reports every problem with its JSON path. Strings may hold
//! `${ENV_VAR}` references: the raw form keeps them, so [`Config::save`](crate::Config::save)
//! writes them back instead of the secrets they resolve to.
//!
//! The doc comments of these types are the descriptions in the JSON Schema
//! (`config/llm-tower.schema.json`).

use std::fmt;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::env::{EnvLookup, interpolate};
use crate::error::{Problems, index, join};

/// A string that may be a secret (an API key, a gateway key, a Redis URL with a password).
///
/// `Debug` shows it only when it is a single `${ENV_VAR}` reference; otherwise
/// `[redacted]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl SecretString {
    /// The value. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match crate::env::single_reference(&self.0) {
            Some(_) => write!(f, "{:?}", self.0),
            None => f.write_str("[redacted]"),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "llm-tower configuration")]
pub struct RawConfig {
    /// The JSON Schema of this file, for editors (ignored by llm-tower).
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Providers by name (the name is the `provider` of `provider/model`).
    #[serde(default)]
    pub providers: IndexMap<String, RawProvider>,
    /// Rate limits, applied in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RawRateLimit>,
    /// Retries towards providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RawRetry>,
    /// The circuit breaker in front of every provider/model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<RawCircuitBreaker>,
    /// Spending budgets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<RawBudget>,
    /// Model aliases: an ordered fallback list of `provider/model` targets, or a route
    /// object (a balanced group of targets, fallbacks, hedging, prompt-cache affinity).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub routes: IndexMap<String, RawRoute>,
    /// Where rate-limit and budget state lives (default: memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<RawStore>,
    /// The response cache in front of every route and model (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<RawCache>,
    /// The gateway server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<RawGateway>,
    /// Logging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<RawLogging>,
}

/// The kind of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI's API.
    Openai,
    /// Azure OpenAI.
    Azure,
    /// Anthropic's messages API.
    Anthropic,
    /// AWS Bedrock (Converse / ConverseStream, SigV4).
    Bedrock,
    /// An OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio, hosted APIs).
    OpenaiCompatible,
    /// Google's Gemini API (AI Studio).
    Gemini,
    /// Google Cloud Vertex AI (Gemini models, and Claude models through `rawPredict`).
    Vertex,
    /// The in-process mock provider (no network, no key).
    Mock,
}

impl ProviderKind {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Azure => "azure",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::OpenaiCompatible => "openai_compatible",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Vertex => "vertex",
            ProviderKind::Mock => "mock",
        }
    }
}

/// One provider. Which fields apply depends on `type`; a field of another type is an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// `openai`, `azure`, `anthropic`, `bedrock`, `openai_compatible`, `gemini`, `vertex` or
    /// `mock`.
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    /// The API key (use `${ENV_VAR}`). Required for openai, azure, anthropic and gemini.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretString>,
    /// Base URL (azure: the resource endpoint `https://NAME.openai.azure.com`, required;
    /// openai_compatible: required, e.g. `http://127.0.0.1:11434/v1`; bedrock: default
    /// `https://bedrock-runtime.{region}.amazonaws.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Timeouts of this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<RawTimeouts>,
    /// The largest non-streamed response body accepted from this provider, in bytes
    /// (default 32 MiB). A larger declared `content-length` fails at once (502) without
    /// reading; a body that grows past it fails as soon as it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    /// openai: the `OpenAI-Organization` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// openai: the `OpenAI-Project` header; vertex: the Google Cloud project id (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// vertex: the region (`us-central1`, `europe-west4`, ...) or `global` (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// vertex: where service-account tokens are fetched (default: the key's `token_uri`;
    /// for tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// azure: the `api-version` (default `2024-10-21`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// azure: `"v1"` for the v1 API (`/openai/v1/...`, model in the body, no
    /// `api-version`), or `"deployments"` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<RawAzureApi>,
    /// azure: Entra ID authentication instead of `api_key` (`entra` or `token_command`);
    /// vertex: how to authenticate (required: exactly one of `service_account_file`,
    /// `token_env`, `token_command`, `access_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<RawAzureAuth>,
    /// bedrock: the AWS region, e.g. `us-east-1` (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// bedrock: where the AWS credentials come from (default `{"env": true}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<RawAwsCredentials>,
    /// azure: model name -> deployment name (default: the model name).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub deployments: IndexMap<String, String>,
    /// anthropic: the `anthropic-version` header (default `2023-06-01`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic_version: Option<String>,
    /// anthropic: `anthropic-beta` features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anthropic_beta: Vec<String>,
    /// anthropic, vertex (Claude models): `max_tokens` sent when a request sets none (the
    /// Messages API requires one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_tokens: Option<u32>,
    /// anthropic: who answers the gateway's `POST /v1/messages/count_tokens` for this
    /// provider's models: `local` (default: the gateway's tokenizer, an estimate for Claude)
    /// or `provider` (Anthropic's own `count_tokens` endpoint, exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_tokens: Option<RawCountTokens>,
    /// openai_compatible: extra headers sent with every request (values may be `${ENV_VAR}`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, SecretString>,
    /// openai, azure, openai_compatible: the wire name of `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<RawMaxTokensField>,
    /// openai_compatible: ask for usage in streams (`stream_options.include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_usage: Option<bool>,
    /// mock: time before each response, e.g. `"20ms"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    /// mock: time between streamed chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_interval: Option<String>,
    /// mock: what to answer (`{"lorem": 24}`, `"echo"` or `{"fixed": "text"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<RawReply>,
    /// mock: injected failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<RawMockFailures>,
    /// mock: whether responses carry usage (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_usage: Option<bool>,
    /// openai, azure, anthropic, openai_compatible, bedrock: adaptive provider limits,
    /// driven by the rate-limit headers of the provider's own answers. `false` turns them
    /// off, `true` or `{"mode": "wait" | "reject", "max_wait": "30s"}` on. Default: on
    /// (`wait`, 30 s at most) for openai, azure and anthropic; off for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_limits: Option<RawAdaptiveLimits>,
    /// The models this provider serves, by the name the provider knows them by.
    #[serde(default)]
    pub models: IndexMap<String, RawModel>,
}

/// A provider's `adaptive_limits`: on or off, or its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawAdaptiveLimits {
    /// `true` (the defaults) or `false` (off).
    Enabled(bool),
    /// On, with options.
    Options(RawAdaptiveOptions),
}

/// Options of `adaptive_limits`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdaptiveOptions {
    /// `wait` (default): hold a request until the provider's reset; `reject`: fail it at
    /// once (retryable, so a route falls back to its next target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RawAdaptiveMode>,
    /// wait: the longest wait (default `30s`); a reset further away, or past the request's
    /// deadline, fails at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<String>,
}

/// `adaptive_limits.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawAdaptiveMode {
    /// Wait for the provider's reset.
    Wait,
    /// Fail at once.
    Reject,
}

/// The Azure OpenAI URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawAzureApi {
    /// `/openai/deployments/{deployment}/...?api-version=...`.
    Deployments,
    /// `/openai/v1/...`.
    V1,
}

/// A provider's token authentication. azure: exactly one of `entra` and `token_command`;
/// vertex: exactly one of `service_account_file`, `token_env`, `token_command` and
/// `access_token`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAzureAuth {
    /// azure: the client-credentials grant of an app registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra: Option<RawEntra>,
    /// A command (program and arguments, no shell) that prints a token (azure: or the JSON
    /// of `az account get-access-token`; vertex: e.g. `["gcloud", "auth",
    /// "print-access-token"]`, run again every 10 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_command: Option<Vec<String>>,
    /// vertex: a service-account key file (`"${GOOGLE_APPLICATION_CREDENTIALS}"`): tokens
    /// are obtained with a signed JWT, cached and refreshed before they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_file: Option<String>,
    /// vertex: the environment variable holding an access token, read at every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// vertex: a fixed access token (use `${ENV_VAR}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<SecretString>,
}

impl RawAzureAuth {
    /// The Vertex AI form, or what is wrong with it.
    pub(crate) fn vertex(&self) -> Result<RawVertexAuth, &'static str> {
        if self.entra.is_some() {
            return Err(
                "entra is for azure; vertex takes service_account_file, token_env, token_command or access_token",
            );
        }
        let forms = [
            self.service_account_file
                .clone()
                .map(RawVertexAuth::ServiceAccountFile),
            self.token_env.clone().map(RawVertexAuth::TokenEnv),
            self.token_command.clone().map(RawVertexAuth::TokenCommand),
            self.access_token.clone().map(RawVertexAuth::AccessToken),
        ];
        let mut set = forms.into_iter().flatten();
        match (set.next(), set.next()) {
            (Some(one), None) => Ok(one),
            (None, _) => {
                Err("set one of service_account_file, token_env, token_command, access_token")
            }
            (Some(_), Some(_)) => {
                Err("set only one of service_account_file, token_env, token_command, access_token")
            }
        }
    }
}

/// Entra ID client credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEntra {
    /// The directory (tenant) id.
    pub tenant_id: String,
    /// The application (client) id.
    pub client_id: String,
    /// The client secret (use `${ENV_VAR}`).
    pub client_secret: SecretString,
    /// The token URL (default
    /// `https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
}

/// AWS credentials: `{"env": true}` (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`), `{"profile": "name"}` (`~/.aws/credentials`), or the keys
/// themselves (use `${ENV_VAR}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAwsCredentials {
    /// Read the `AWS_*` environment variables when the config is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<bool>,
    /// A profile of the shared credentials file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<SecretString>,
    /// The secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<SecretString>,
    /// The session token of temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<SecretString>,
}

/// How a `vertex` provider authenticates: exactly one of the fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawVertexAuth {
    /// A service-account key file (`"${GOOGLE_APPLICATION_CREDENTIALS}"`): tokens are
    /// obtained with a signed JWT, cached and refreshed before they expire.
    ServiceAccountFile(String),
    /// The environment variable holding an access token, read at every request.
    TokenEnv(String),
    /// A command printing an access token (`["gcloud", "auth", "print-access-token"]`),
    /// run again every 10 minutes.
    TokenCommand(Vec<String>),
    /// A fixed access token (use `${ENV_VAR}`).
    AccessToken(SecretString),
}

/// A route: `["p/m", "q/m"]` (ordered fallback) or an object.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawRoute {
    /// `provider/model` targets tried in order.
    List(Vec<String>),
    /// A balanced group with fallbacks.
    Object(RawRouteObject),
}

impl<'de> Deserialize<'de> for RawRoute {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawRoute;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of provider/model names or a route object")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<RawRoute, A::Error> {
                Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(RawRoute::List)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawRoute, A::Error> {
                RawRouteObject::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawRoute::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// A route object: `targets` balanced as one group, then `fallback` targets in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRouteObject {
    /// The group: `provider/model` names, or `{"model": "p/m", "weight": 2}`.
    pub targets: Vec<RawRouteTarget>,
    /// How the group is balanced (default `p2c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<RawBalance>,
    /// `provider/model` targets tried in order when the whole group failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
    /// `prompt_prefix`: requests sharing their first `affinity_tokens` tokens (tools,
    /// system prompt, first messages) go to the same target while it is healthy and not
    /// overloaded, so the provider's prompt cache stays warm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<RawAffinity>,
    /// How many tokens make the prefix for `affinity` (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_tokens: Option<u64>,
    /// Send another attempt when the first is slow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge: Option<RawHedge>,
    /// `false`: requests to this route are never answered from, nor stored in, the
    /// response cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
}

/// A target of a route group.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawRouteTarget {
    /// `provider/model`, weight 1.
    Name(String),
    /// With a weight.
    Weighted {
        /// `provider/model`.
        model: String,
        /// Share of the draws (default 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<u32>,
    },
}

impl<'de> Deserialize<'de> for RawRouteTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Weighted {
            model: String,
            #[serde(default)]
            weight: Option<u32>,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawRouteTarget;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a provider/model name or {\"model\": ..., \"weight\": ...}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawRouteTarget, E> {
                Ok(RawRouteTarget::Name(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawRouteTarget, A::Error> {
                let w = Weighted::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawRouteTarget::Weighted {
                    model: w.model,
                    weight: w.weight,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// How a route group is balanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawBalance {
    /// Power of two choices over PeakEWMA load.
    P2c,
    /// At random by weight.
    Weighted,
}

/// Request affinity of a route group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawAffinity {
    /// By the hash of the cacheable prompt prefix.
    PromptPrefix,
}

/// Hedging of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHedge {
    /// `"p90"` (a percentile of recent latencies, to the first token for streams) or a
    /// duration such as `"800ms"`.
    pub after: String,
    /// Extra attempts at most (default 1, at most 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_extra: Option<u32>,
}

/// Who counts tokens for `count_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawCountTokens {
    /// The gateway's tokenizer.
    Local,
    /// The provider's own endpoint.
    Provider,
}

/// The wire name of `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawMaxTokensField {
    /// `max_tokens`.
    MaxTokens,
    /// `max_completion_tokens`.
    MaxCompletionTokens,
}

/// Timeouts of a provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// Time to open a connection (default `"10s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    /// Time for one attempt, until the response (or the first streamed chunk) arrives
    /// (default `"10m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// A stream silent for this long fails (default `"2m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle: Option<String>,
}

/// What the mock answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawReply {
    /// This many deterministic pseudo-random words.
    Lorem(u32),
    /// The last user message, prefixed with "You said: ".
    Echo,
    /// This text.
    Fixed(String),
}

/// Failures the mock injects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMockFailures {
    /// Share of requests that fail, in [0, 1].
    pub rate: f64,
    /// The failure.
    pub kind: RawMockFailureKind,
    /// `http_error`: the HTTP status (400..=599, default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `rate_limited`: the retry-after sent (default `"1s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
    /// Seed of the failure draw (same seed, same failing request numbers; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A failure the mock can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawMockFailureKind {
    /// HTTP 429 with a retry-after.
    RateLimited,
    /// An HTTP error with `status` (5xx are retryable, 4xx are not).
    HttpError,
    /// HTTP 529 overloaded.
    Overloaded,
    /// A timeout error.
    Timeout,
    /// Never answers.
    Stall,
}

/// One model of a provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// Prices in USD per million tokens, as decimal strings. Required when a budget
    /// applies to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<RawPrice>,
    /// The context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// The largest output in tokens (bounds budget reservations of requests without
    /// `max_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// `o200k_base`, `cl100k_base` or `heuristic` (default: by model name, else heuristic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["o200k_base", "cl100k_base", "heuristic", null]))]
    pub tokenizer: Option<String>,
}

/// Prices in USD per million tokens, as decimal strings (`"2.50"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    /// Input tokens.
    pub input: String,
    /// Cached input tokens (default: the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<String>,
    /// Output tokens.
    pub output: String,
    /// Input tokens written to a 5-minute prompt cache (default: the input price;
    /// Anthropic charges 1.25x input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_5m: Option<String>,
    /// Input tokens written to a 1-hour prompt cache (default: the input price; Anthropic
    /// charges 2x input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<String>,
    /// Reasoning output tokens (default: the output price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
}

/// The rate-limit algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawAlgorithm {
    /// Exact sliding window: at most `limit` units in any `window`.
    SlidingWindow,
    /// GCRA leaky bucket: `rate` units per `per`, bursting to `burst`.
    LeakyBucket,
}

/// What a request weighs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawUnit {
    /// Each request weighs 1.
    #[default]
    Requests,
    /// A request weighs its prompt tokens plus its `max_tokens`.
    Tokens,
}

/// What a limit is keyed by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawKey {
    /// One limit for everything.
    #[default]
    Global,
    /// One limit per model (`provider/model` inside the router, the requested name outside).
    Model,
    /// One limit per provider (scope `provider` only).
    Provider,
    /// One limit per caller (gateway key name).
    Caller,
}

/// What happens at the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawMode {
    /// Fail at once with 429 and a retry-after.
    #[default]
    Reject,
    /// Wait for a slot up to `max_wait`.
    Wait,
}

/// Where a limit sits in the stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawScope {
    /// Outside retry and routing: one unit per caller request.
    #[default]
    Caller,
    /// Inside retry, in front of each provider/model: every attempt counts.
    Provider,
}

/// A rate limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// A unique name (metrics label, store namespace).
    pub name: String,
    /// `sliding_window` (`limit`, `window`) or `leaky_bucket` (`rate`, `per`, `burst`).
    pub algorithm: RawAlgorithm,
    /// sliding_window: units per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// sliding_window: the window, e.g. `"1m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// leaky_bucket: units per `per`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// leaky_bucket: the period of `rate`, e.g. `"1m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
    /// leaky_bucket: units that may pass at once (default: `rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// `requests` (default) or `tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<RawUnit>,
    /// `global` (default), `model`, `provider` or `caller`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RawKey>,
    /// `reject` (default) or `wait`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RawMode>,
    /// mode wait: the longest wait (default `"10s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<String>,
    /// `caller` (default: outside retry, per request) or `provider` (inside retry, per attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<RawScope>,
    /// scope provider: only in front of these providers (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    /// unit tokens: the output bound of requests without `max_tokens` (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_output_tokens: Option<u32>,
}

/// Retries towards providers (per provider/model, each with its own retry budget).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Retries after the first attempt (default 3; 0 disables retrying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Backoff base (default `"250ms"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Backoff ceiling (default `"8s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
    /// The longest `retry-after` honoured (default `"60s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_cap: Option<String>,
    /// Retry budget: retries may add this percent of the recent request rate (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_percent: Option<u32>,
    /// Retry budget: retries always allowed per second on top (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_min_per_second: Option<u32>,
}

/// The circuit breaker per provider/model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Consecutive failures that open the circuit (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// How long an open circuit refuses before one probe goes through (default `"30s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
}

/// A budget period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawPeriod {
    /// Every clock hour (UTC).
    Hour,
    /// Every UTC day.
    Day,
    /// Every UTC calendar month.
    Month,
    /// Never resets.
    Total,
}

/// What a full budget does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawAction {
    /// Refuse requests that may not fit (HTTP 402).
    #[default]
    Block,
    /// Only alert.
    Alert,
}

/// A spending budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    /// A unique name.
    pub name: String,
    /// `global`, `each_caller`, `caller:<name>`, `model:<provider/model>` or `provider:<name>`.
    pub scope: String,
    /// `hour`, `day`, `month` or `total`.
    pub period: RawPeriod,
    /// The limit in USD, a decimal string.
    pub limit_usd: String,
    /// Alert thresholds as fractions of the limit, each in (0, 1] (default 0.5, 0.8, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<f64>>,
    /// `block` (default) or `alert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RawAction>,
}

/// A gateway key's own budget (scope: that key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKeyBudget {
    /// `hour`, `day`, `month` or `total`.
    pub period: RawPeriod,
    /// The limit in USD, a decimal string.
    pub limit_usd: String,
    /// Alert thresholds as fractions of the limit, each in (0, 1] (default 0.5, 0.8, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<f64>>,
    /// `block` (default) or `alert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RawAction>,
}

/// The kind of state store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawStoreKind {
    /// In this process.
    #[default]
    Memory,
    /// Redis, shared by several instances.
    Redis,
}

/// What a Redis store does while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawOnError {
    /// Refuse requests (HTTP 503) until Redis is back.
    FailClosed,
    /// Decide with local in-memory limits until Redis is back.
    FailOpenLocal,
}

/// Where rate-limit and budget state lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `memory` or `redis`.
    #[serde(rename = "type")]
    pub kind: RawStoreKind,
    /// redis: `redis://[[user]:password@]host[:port][/db]` (use `${ENV_VAR}` for the password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<SecretString>,
    /// redis: the key prefix (default `llm-tower`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// redis: `fail_closed` (default) or `fail_open_local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<RawOnError>,
    /// redis: time limit of one call in milliseconds (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// redis: time between reconnect checks in milliseconds (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_interval_ms: Option<u64>,
    /// redis: how long a budget's spend counter is kept after its last settlement, e.g.
    /// `"40d"`; at least the longest budget period (`31d` with a `month` budget). Default:
    /// its period plus one day (`hour`, `day`, `month`). `total` counters are kept forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_retention: Option<String>,
    /// redis: how long a request's reservation (its worst-case cost) stays held when its
    /// instance never settles it, e.g. after a crash (default `"10m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_ttl: Option<String>,
}

/// The response cache: repeated deterministic requests are answered without calling the
/// provider, at no cost (see the README's "Response cache").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `memory` (default: this process) or `redis` (the Redis of `store`, which must be a
    /// redis store: every instance shares the entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<RawStoreKind>,
    /// How long an entry is kept, e.g. `"10m"` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// memory: most bytes of entries kept in all (default 268435456, 256 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// memory: most entries kept (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<u64>,
    /// The largest entry stored, in bytes (default 1048576, 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entry_bytes: Option<u64>,
    /// Also cache sampled requests (`temperature` above 0, or unset: the provider's
    /// default of 1): the same question then gets the first answer until it expires.
    /// Default false: only `temperature: 0` chat and completions, and embeddings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nondeterministic: Option<bool>,
    /// `caller` (default: each gateway key has its own entries) or `global` (shared by
    /// every caller; a caller can then tell from a hit that someone asked the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<RawCacheScope>,
}

/// Whose requests share cache entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawCacheScope {
    /// Each caller its own.
    #[default]
    Caller,
    /// Every caller shares.
    Global,
}

/// The gateway server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// The listen address (default `127.0.0.1:8080`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// API keys; none means the gateway is open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<RawGatewayKey>,
    /// The largest request body (default 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// A bound on the bytes buffered from all upstream response bodies at once
    /// (default 64 MiB); a body that would pass it fails with 502.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_upstream_buffer_bytes: Option<u64>,
    /// The longest a request may take (default `"5m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
    /// Time to read a request's headers (default `"10s"`); for a new connection it runs
    /// from the accept, covering the first byte and the HTTP/2 preface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_read_timeout: Option<String>,
    /// A connection with no request in flight for this long is closed (default `"60s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// How often HTTP/2 connections are pinged (default `"20s"`; `"0s"` sends no pings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keep_alive_interval: Option<String>,
    /// How long an HTTP/2 ping may go unanswered before the connection is closed
    /// (default `"20s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keep_alive_timeout: Option<String>,
    /// The most client connections open at once, at least 1 (default: half of the
    /// descriptor limit `ulimit -n` left after a reserve of 64, so each connection can
    /// also hold an upstream socket). Beyond it new connections wait in the listen backlog
    /// and idle ones are closed to make room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    /// Time given to requests in flight at shutdown (default `"30s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<String>,
}

/// A gateway API key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayKey {
    /// The caller's name (the caller key of limits, budgets and analytics).
    pub name: String,
    /// Hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sha256: Option<String>,
    /// The key itself, only as a `${ENV_VAR}` reference; hashed when loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SecretString>,
    /// Limits for this key only (same shape as `rate_limits`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RawRateLimit>,
    /// A budget for this key only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RawKeyBudget>,
    /// `GET /v1/usage` shows this key everybody's usage (default: its own only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawLogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    /// `human` (default) or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<RawLogFormat>,
    /// A level (`info`) or filter directives (`info,llm_tower=debug`); default `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Interpolation over every string value, with JSON paths.

pub(crate) struct InterpCx<'a> {
    pub(crate) env: EnvLookup<'a>,
    pub(crate) problems: Problems,
}

pub(crate) trait Interp {
    fn interp(&mut self, path: &str, cx: &mut InterpCx<'_>);
}

impl Interp for String {
    fn interp(&mut self, path: &str, cx: &mut InterpCx<'_>) {
        match interpolate(self, cx.env) {
            Ok(v) => *self = v,
            Err(errors) => {
                for e in errors {
                    cx.problems.push(path, e);
                }
            }
        }
    }
}

impl Interp for SecretString {
    fn interp(&mut self, path: &str, cx: &mut InterpCx<'_>) {
        self.0.interp(path, cx);
    }
}

impl<T: Interp> Interp for Option<T> {
    fn interp(&mut self, path: &str, cx: &mut InterpCx<'_>) {
        if let Some(v) = self {
            v.interp(path, cx);
        }
    }
}

impl<T: Interp> Interp for Vec<T> {
    fn interp(&mut self, path: &str, cx: &mut InterpCx<'_>) {
        for (i, v) in self.iter_mut().enumerate() {
            v.interp(&index(path, i), cx);
        }
    }
}

impl<T: Interp> Interp for IndexMap<String, T> {
    fn interp(&mut self, path: &str, cx: &mut InterpCx<'_>) {
        for (k, v) in self.iter_mut() {
            v.interp(&join(path, k), cx);
        }
    }
}

macro_rules! interp_fields {
    ($ty:ty { $($field:ident),* $(,)? }) => {
        impl Interp for $ty {
            fn interp(&mut self, path: &str, cx: &mut InterpCx<'_>) {
                $( self.$field.interp(&join(path, stringify!($field)), cx); )*
            }
        }
    };
}

impl Interp for RawRoute {
    fn interp(&mut self, path: &str, cx: &mut InterpCx<'_>) {
        match self {
            RawRoute::List(v) => v.interp(path, cx),
            RawRoute::Object(o) => {
                o.targets.interp(&join(path, "targets"), cx);
                o.fallback.interp(&join(path, "fallback"), cx);
            }
        }
    }
}

impl Interp for RawRouteTarget {
    fn interp(&mut self, path: &str, cx: &mut InterpCx<'_>) {
        match self {
            RawRouteTarget::Name(m) => m.interp(path, cx),
            RawRouteTarget::Weighted { model, .. } => model.interp(&join(path, "model"), cx),
        }
    }
}

interp_fields!(RawConfig {
    providers,
    rate_limits,
    retry,
    circuit_breaker,
    budgets,
    routes,
    store,
    cache,
    gateway,
    logging
});
interp_fields!(RawProvider {
    api_key,
    base_url,
    timeouts,
    organization,
    project,
    location,
    auth,
    token_url,
    api_version,
    auth,
    region,
    credentials,
    deployments,
    anthropic_version,
    anthropic_beta,
    headers,
    latency,
    chunk_interval,
    reply,
    failures,
    models
});
interp_fields!(RawAzureAuth {
    entra,
    token_command,
    service_account_file,
    token_env,
    access_token
});
interp_fields!(RawEntra {
    tenant_id,
    client_id,
    client_secret,
    token_url
});
interp_fields!(RawAwsCredentials {
    profile,
    access_key_id,
    secret_access_key,
    session_token
});
interp_fields!(RawTimeouts {
    connect,
    request,
    stream_idle
});
interp_fields!(RawMockFailures { retry_after });
interp_fields!(RawModel { price, tokenizer });
interp_fields!(RawPrice {
    input,
    cached_input,
    output
});
interp_fields!(RawRateLimit {
    name,
    window,
    per,
    max_wait,
    providers
});
interp_fields!(RawRetry {
    base,
    max,
    retry_after_cap
});
interp_fields!(RawCircuitBreaker { cooldown });
interp_fields!(RawBudget {
    name,
    scope,
    limit_usd
});
interp_fields!(RawKeyBudget { limit_usd });
interp_fields!(RawStore {
    url,
    prefix,
    budget_retention,
    reservation_ttl
});
interp_fields!(RawCache { ttl });
interp_fields!(RawGateway {
    listen,
    keys,
    request_timeout,
    header_read_timeout,
    idle_timeout,
    http2_keep_alive_interval,
    http2_keep_alive_timeout,
    shutdown_grace
});
interp_fields!(RawGatewayKey {
    name,
    key_sha256,
    key,
    rate_limits,
    budget
});
interp_fields!(RawLogging { level });

impl Interp for RawVertexAuth {
    fn interp(&mut self, path: &str, cx: &mut InterpCx<'_>) {
        match self {
            RawVertexAuth::ServiceAccountFile(f) => {
                f.interp(&join(path, "service_account_file"), cx)
            }
            RawVertexAuth::TokenEnv(v) => v.interp(&join(path, "token_env"), cx),
            RawVertexAuth::TokenCommand(argv) => argv.interp(&join(path, "token_command"), cx),
            RawVertexAuth::AccessToken(t) => t.interp(&join(path, "access_token"), cx),
        }
    }
}

impl Interp for RawReply {
    fn interp(&mut self, path: &str, cx: &mut InterpCx<'_>) {
        if let RawReply::Fixed(text) = self {
            text.interp(&join(path, "fixed"), cx);
        }
    }
}
