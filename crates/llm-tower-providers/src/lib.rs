//! LLM providers as `tower::Service<LlmRequest>`: OpenAI, Azure OpenAI, Anthropic, AWS
//! Bedrock, Gemini, Vertex AI, OpenAI-compatible servers, and a mock.
#![forbid(unsafe_code)]

pub mod mock;

// HTTP providers.
pub mod anthropic;
pub mod azure;
pub mod bedrock;
mod common;
mod error_map;
pub mod gemini;
pub mod headers;
pub mod http;
pub mod openai;
pub mod openai_compat;
pub mod secret;
pub mod sse;
pub mod vertex;

pub use crate::http::{HttpClient, HttpConfig};
pub use anthropic::{Anthropic, AnthropicConfig};
pub use azure::{AzureApi, AzureAuth, AzureOpenAi, AzureOpenAiConfig, EntraTokenSource};
pub use bedrock::{AwsCredentials, AwsCredentialsProvider, Bedrock, BedrockConfig};
pub use gemini::{Gemini, GeminiConfig};
pub use openai::{MaxTokensField, OpenAi, OpenAiConfig};
pub use openai_compat::{OpenAiCompatible, OpenAiCompatibleConfig};
pub use secret::Secret;
pub use vertex::{Vertex, VertexAuth, VertexConfig};
