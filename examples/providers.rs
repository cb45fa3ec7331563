//! Points llm-tower's HTTP providers at OpenAI, Anthropic, Azure OpenAI and a local
//! OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio) from environment
//! variables, and sends one chat to each provider whose variables are set.
//!
//! Run: `cargo run -p llm-tower --example providers`
//!
//! | provider | variables |
//! |---|---|
//! | OpenAI | `OPENAI_API_KEY` (optional: `OPENAI_BASE_URL`, `OPENAI_MODEL`, default `gpt-4o-mini`) |
//! | Anthropic | `ANTHROPIC_API_KEY` (optional: `ANTHROPIC_MODEL`, default `claude-haiku-4-5`) |
//! | Azure OpenAI | `AZURE_OPENAI_ENDPOINT`, `AZURE_OPENAI_API_KEY`, `AZURE_OPENAI_DEPLOYMENT` |
//! | local server | `OLLAMA_BASE_URL`, e.g. `http://localhost:11434/v1` (optional: `OLLAMA_MODEL`, default `llama3.2`) |
//!
//! With none set it says so and exits 0, so it runs offline. All providers share one
//! pooled [`HttpClient`]; keys are held in `Secret`s and never printed.

use std::env;
use std::process::ExitCode;

use llm_tower::providers::anthropic::{Anthropic, AnthropicConfig};
use llm_tower::providers::azure::{AzureAuth, AzureOpenAi, AzureOpenAiConfig};
use llm_tower::providers::http::HttpClient;
use llm_tower::providers::openai::{OpenAi, OpenAiConfig};
use llm_tower::providers::openai_compat::{OpenAiCompatible, OpenAiCompatibleConfig};
use llm_tower::{ChatRequest, Error, LlmRequest, LlmResponse, Message};
use tower::ServiceExt;
use tower::util::BoxCloneService;

type Provider = BoxCloneService<LlmRequest, LlmResponse, Error>;

fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// (label, model to ask for, provider) for every provider whose variables are set.
fn configured(http: &HttpClient) -> Result<Vec<(String, String, Provider)>, Error> {
    let mut out: Vec<(String, String, Provider)> = Vec::new();
    if let Some(key) = var("OPENAI_API_KEY") {
        let mut cfg = OpenAiConfig::new(key);
        if let Some(url) = var("OPENAI_BASE_URL") {
            cfg = cfg.base_url(url);
        }
        let model = var("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into());
        out.push((
            "OpenAI".into(),
            model,
            BoxCloneService::new(OpenAi::new(cfg, http.clone())?),
        ));
    }
    if let Some(key) = var("ANTHROPIC_API_KEY") {
        let model = var("ANTHROPIC_MODEL").unwrap_or_else(|| "claude-haiku-4-5".into());
        let p = Anthropic::new(
            AnthropicConfig::new(key).default_max_tokens(256),
            http.clone(),
        )?;
        out.push(("Anthropic".into(), model, BoxCloneService::new(p)));
    }
    if let (Some(endpoint), Some(key), Some(deployment)) = (
        var("AZURE_OPENAI_ENDPOINT"),
        var("AZURE_OPENAI_API_KEY"),
        var("AZURE_OPENAI_DEPLOYMENT"),
    ) {
        // Requests name the deployment as their model; a mapping would also work:
        // `.deployment("gpt-4o-mini", deployment)`.
        let cfg = AzureOpenAiConfig::new(endpoint, AzureAuth::api_key(key));
        out.push((
            "Azure OpenAI".into(),
            deployment,
            BoxCloneService::new(AzureOpenAi::new(cfg, http.clone())?),
        ));
    }
    if let Some(url) = var("OLLAMA_BASE_URL") {
        let model = var("OLLAMA_MODEL").unwrap_or_else(|| "llama3.2".into());
        let cfg = OpenAiCompatibleConfig::new(url).name("ollama");
        out.push((
            "local server".into(),
            model,
            BoxCloneService::new(OpenAiCompatible::new(cfg, http.clone())?),
        ));
    }
    Ok(out)
}

async fn run() -> Result<bool, Error> {
    let http = HttpClient::new()?;
    let providers = configured(&http)?;
    if providers.is_empty() {
        println!(
            "No provider configured: set OPENAI_API_KEY, ANTHROPIC_API_KEY, \
             AZURE_OPENAI_ENDPOINT + AZURE_OPENAI_API_KEY + AZURE_OPENAI_DEPLOYMENT, \
             or OLLAMA_BASE_URL (e.g. http://localhost:11434/v1) and run again."
        );
        return Ok(true);
    }
    let mut all_ok = true;
    for (label, model, provider) in providers {
        let req = LlmRequest::chat(
            ChatRequest::new(
                model.clone(),
                vec![
                    Message::system("Answer in one short sentence."),
                    Message::user("What is tower middleware in Rust?"),
                ],
            )
            .max_tokens(64),
        );
        match provider.oneshot(req).await {
            Ok(resp) => {
                let text = resp
                    .as_chat()
                    .map(|c| c.text().into_owned())
                    .unwrap_or_default();
                println!(
                    "== {label} ({})",
                    resp.meta.model.as_deref().unwrap_or(&model)
                );
                println!("{}", text.trim());
                match resp.usage {
                    Some(u) => println!(
                        "usage: {} prompt + {} completion tokens ({} cached), latency {:?}",
                        u.prompt_tokens,
                        u.completion_tokens,
                        u.cached_prompt_tokens,
                        resp.meta.latency
                    ),
                    None => println!("usage: not reported, latency {:?}", resp.meta.latency),
                }
                if let Some(r) = resp.meta.provider_limits.and_then(|l| l.requests) {
                    println!("requests left: {:?} of {:?}", r.remaining, r.limit);
                }
            }
            Err(e) => {
                all_ok = false;
                // The error names the provider and never contains a key.
                println!(
                    "== {label}: {e} [{}; retryable: {}]",
                    e.label(),
                    e.is_retryable()
                );
            }
        }
        println!();
    }
    Ok(all_ok)
}

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
