//! Gemini's response JSON (`GenerateContentResponse`, `BatchEmbedContentsResponse`).
//!
//! Every field is optional and unknown fields are ignored, so a response from a newer API
//! version still parses; the request side is built as JSON values in `convert`.

use serde::Deserialize;
use serde_json::{Map, Value};

/// A `generateContent` response, or one chunk of a `streamGenerateContent` stream.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct GenerateContentResponse {
    pub candidates: Vec<Candidate>,
    pub prompt_feedback: Option<PromptFeedback>,
    pub usage_metadata: Option<UsageMetadata>,
    pub model_version: Option<String>,
    pub response_id: Option<String>,
    /// An error reported inside a stream.
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Candidate {
    pub content: Option<WireContent>,
    pub finish_reason: Option<String>,
    pub finish_message: Option<String>,
    pub index: Option<u32>,
    pub safety_ratings: Option<Value>,
    pub citation_metadata: Option<Value>,
    pub grounding_metadata: Option<Value>,
    pub avg_logprobs: Option<Value>,
    pub logprobs_result: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct WireContent {
    pub parts: Vec<Part>,
    pub role: Option<String>,
}

/// One part of a candidate's content.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Part {
    pub text: Option<String>,
    /// `true` for a thought summary.
    pub thought: Option<bool>,
    pub thought_signature: Option<String>,
    pub function_call: Option<FunctionCall>,
    /// Other part kinds (`inlineData`, `executableCode`, ...).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct FunctionCall {
    pub id: Option<String>,
    pub name: String,
    pub args: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct PromptFeedback {
    pub block_reason: Option<String>,
    pub block_reason_message: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct UsageMetadata {
    pub prompt_token_count: u64,
    pub cached_content_token_count: u64,
    pub candidates_token_count: u64,
    pub thoughts_token_count: u64,
    pub tool_use_prompt_token_count: u64,
    pub total_token_count: u64,
}

/// A `batchEmbedContents` response.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct BatchEmbedResponse {
    pub embeddings: Vec<EmbeddingValues>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EmbeddingValues {
    pub values: Vec<f32>,
}

/// Vertex AI's `:predict` response for text-embedding models.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct VertexPredictResponse {
    pub predictions: Vec<VertexPrediction>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct VertexPrediction {
    pub embeddings: VertexEmbedding,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct VertexEmbedding {
    pub values: Vec<f32>,
    pub statistics: VertexStatistics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct VertexStatistics {
    /// A float in Vertex's JSON (`5.0`).
    pub token_count: f64,
}
