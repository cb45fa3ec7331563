//! Points llm-tower at OpenAI, Anthropic, Azure OpenAI, AWS Bedrock, Gemini, Vertex AI and
//! local OpenAI-compatible servers
//! (Ollama, vLLM) from environment variables, wraps each provider in the real stack
//! (`count_tokens -> track_cost -> llm_rate_limit -> llm_retry -> llm_timeout -> provider`),
//! and sends one chat and one streamed chat through each stack whose variables are set.
//!
//! Run: `cargo run -p llm-tower --example providers`
//!
//! | provider | variables |
//! |---|---|
//! | OpenAI | `OPENAI_API_KEY` (optional: `OPENAI_BASE_URL`, `OPENAI_MODEL`, default `gpt-4o-mini`) |
//! | Anthropic | `ANTHROPIC_API_KEY` (optional: `ANTHROPIC_MODEL`, default `claude-haiku-4-5`) |
//! | Azure OpenAI | `AZURE_OPENAI_ENDPOINT`, `AZURE_OPENAI_DEPLOYMENT`, and `AZURE_OPENAI_API_KEY` or `AZURE_OPENAI_BEARER_TOKEN` (an Entra ID token, sent as `Authorization: Bearer`); optional `AZURE_OPENAI_API_VERSION` |
//! | AWS Bedrock | `AWS_REGION` (or `AWS_DEFAULT_REGION`), and `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (optional `AWS_SESSION_TOKEN`) or `AWS_PROFILE` (a profile of `~/.aws/credentials`); optional `BEDROCK_MODEL`, default `us.anthropic.claude-3-5-haiku-20241022-v1:0` |
//! | Gemini | `GEMINI_API_KEY` (optional: `GEMINI_MODEL`, default `gemini-2.5-flash`) |
//! | Vertex AI | `VERTEX_PROJECT`, `VERTEX_LOCATION` (e.g. `us-central1` or `global`), and `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key file) or `VERTEX_ACCESS_TOKEN`; optional `VERTEX_MODEL`, default `gemini-2.5-flash` |
//! | Ollama | `OLLAMA_BASE_URL`, e.g. `http://localhost:11434/v1` (optional: `OLLAMA_MODEL`, default `llama3.2`) |
//! | vLLM | `VLLM_BASE_URL`, e.g. `http://localhost:8000/v1` (optional: `VLLM_API_KEY`, `VLLM_MODEL`, default `Qwen/Qwen2.5-1.5B-Instruct`) |
//!
//! With none set it prints what it would use and exits 0, so it runs offline.
//!
//! What the stack adds to a bare provider:
//! - `count_tokens` estimates the prompt before the call and fills the usage when the
//!   provider reports none (Ollama, and Azure api-versions before 2024-09-01 in streams):
//!   the printed usage source is then `Counted` or `Estimated` instead of `Provider`.
//! - `track_cost` prices every answer from a small price table and holds a worst-case
//!   reservation in a tiny daily budget (alerts at 50/80/100 % are printed; once it is
//!   spent, requests fail with `BudgetExceeded` before anything is sent).
//! - `llm_rate_limit` keeps each provider (the request's provider key) to 10 requests a
//!   minute, `llm_retry` retries 429s and 5xx with jittered backoff, and `llm_timeout`
//!   bounds each attempt.
//!
//! All providers share one pooled [`HttpClient`]; keys are held in `Secret`s and never
//! printed.

use std::env;
use std::process::ExitCode;
use std::time::Duration;

use llm_tower::layers::cost::BudgetAlert;
use llm_tower::prelude::*;
use llm_tower::providers::anthropic::{Anthropic, AnthropicConfig};
use llm_tower::providers::azure::{AzureAuth, AzureOpenAi, AzureOpenAiConfig};
use llm_tower::providers::bedrock::{AwsCredentials, Bedrock, BedrockConfig};
use llm_tower::providers::gemini::{Gemini, GeminiConfig};
use llm_tower::providers::http::HttpClient;
use llm_tower::providers::openai::{OpenAi, OpenAiConfig};
use llm_tower::providers::openai_compat::{OpenAiCompatible, OpenAiCompatibleConfig};
use llm_tower::providers::vertex::{Vertex, VertexAuth, VertexConfig};
use llm_tower::{StreamOptions, collect_chat_stream};
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder, ServiceExt};

type Stack = BoxCloneService<LlmRequest, LlmResponse, Error>;

/// The daily budget shared by every provider below.
const DAILY_BUDGET_USD: &str = "0.05";

fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A provider whose variables are set, before it is wrapped.
struct Target {
    /// Also the rate-limit key (`KeyBy::Provider`).
    label: &'static str,
    /// What requests ask for (for Azure: the deployment).
    model: String,
    /// Local servers cost nothing.
    local: bool,
    provider: BoxCloneService<LlmRequest, LlmResponse, Error>,
}

/// Known prices in USD per million tokens (input, output). Anything else hosted is
/// priced with a deliberately high placeholder so the budget stays conservative.
fn price_for(model: &str, local: bool) -> Result<(ModelPrice, &'static str), Error> {
    if local {
        return Ok((ModelPrice::usd("0", "0")?, "local, free"));
    }
    let (input, output, note) = match model {
        "gpt-4o-mini" => ("0.15", "0.60", "list price"),
        "gpt-4o" => ("2.50", "10.00", "list price"),
        "claude-haiku-4-5" => ("1.00", "5.00", "list price"),
        "claude-sonnet-4-5" => ("3.00", "15.00", "list price"),
        "us.anthropic.claude-3-5-haiku-20241022-v1:0" => ("0.80", "4.00", "list price"),
        "gemini-2.5-flash" => ("0.30", "2.50", "list price"),
        "gemini-2.5-pro" => ("1.25", "10.00", "list price (prompts up to 200k tokens)"),
        _ => ("5.00", "20.00", "unknown model: placeholder price"),
    };
    Ok((
        ModelPrice::usd(input, output)?.max_output_tokens(4096),
        note,
    ))
}

/// The providers whose variables are set; prints one line per provider either way.
fn configured(http: &HttpClient) -> Result<Vec<Target>, Error> {
    let mut out = Vec::new();

    let openai_model = var("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into());
    let openai_url = var("OPENAI_BASE_URL").unwrap_or_else(|| "https://api.openai.com/v1".into());
    if let Some(key) = var("OPENAI_API_KEY") {
        let cfg = OpenAiConfig::new(key).base_url(openai_url.clone());
        println!("OpenAI: {openai_model} at {openai_url}");
        out.push(Target {
            label: "openai",
            model: openai_model,
            local: false,
            provider: BoxCloneService::new(OpenAi::new(cfg, http.clone())?),
        });
    } else {
        println!(
            "OpenAI: not configured (set OPENAI_API_KEY; would ask {openai_model} at {openai_url})"
        );
    }

    let anthropic_model = var("ANTHROPIC_MODEL").unwrap_or_else(|| "claude-haiku-4-5".into());
    if let Some(key) = var("ANTHROPIC_API_KEY") {
        let p = Anthropic::new(
            AnthropicConfig::new(key).default_max_tokens(256),
            http.clone(),
        )?;
        println!("Anthropic: {anthropic_model}");
        out.push(Target {
            label: "anthropic",
            model: anthropic_model,
            local: false,
            provider: BoxCloneService::new(p),
        });
    } else {
        println!("Anthropic: not configured (set ANTHROPIC_API_KEY; would ask {anthropic_model})");
    }

    let azure_auth = match (
        var("AZURE_OPENAI_API_KEY"),
        var("AZURE_OPENAI_BEARER_TOKEN"),
    ) {
        (Some(key), _) => Some(("api-key", AzureAuth::api_key(key))),
        (None, Some(token)) => Some(("bearer token", AzureAuth::bearer_token(token))),
        (None, None) => None,
    };
    match (
        var("AZURE_OPENAI_ENDPOINT"),
        var("AZURE_OPENAI_DEPLOYMENT"),
        azure_auth,
    ) {
        (Some(endpoint), Some(deployment), Some((auth_name, auth))) => {
            // Requests name the deployment as their model; a mapping would also work:
            // `.deployment("gpt-4o-mini", deployment)`.
            let mut cfg = AzureOpenAiConfig::new(endpoint.clone(), auth);
            if let Some(v) = var("AZURE_OPENAI_API_VERSION") {
                cfg = cfg.api_version(v);
            }
            println!(
                "Azure OpenAI: deployment {deployment} at {endpoint}, api-version {} ({auth_name}; \
                 stream usage {})",
                cfg.api_version,
                if cfg.sends_stream_usage() {
                    "reported by Azure"
                } else {
                    "counted here"
                }
            );
            out.push(Target {
                label: "azure",
                model: deployment,
                local: false,
                provider: BoxCloneService::new(AzureOpenAi::new(cfg, http.clone())?),
            });
        }
        _ => println!(
            "Azure OpenAI: not configured (set AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_DEPLOYMENT and \
             AZURE_OPENAI_API_KEY or AZURE_OPENAI_BEARER_TOKEN; optional AZURE_OPENAI_API_VERSION, \
             default {})",
            llm_tower::providers::azure::DEFAULT_API_VERSION
        ),
    }

    let bedrock_model = var("BEDROCK_MODEL")
        .unwrap_or_else(|| "us.anthropic.claude-3-5-haiku-20241022-v1:0".into());
    let credentials = if var("AWS_ACCESS_KEY_ID").is_some() {
        Some(("environment", AwsCredentials::from_env()?))
    } else if let Some(profile) = var("AWS_PROFILE") {
        Some(("profile", AwsCredentials::from_profile(Some(&profile))?))
    } else {
        None
    };
    match (
        var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
        credentials,
    ) {
        (Some(region), Some((from, creds))) => {
            let p = Bedrock::new(BedrockConfig::new(region.clone(), creds), http.clone())?;
            println!("AWS Bedrock: {bedrock_model} in {region} (credentials from the {from})");
            out.push(Target {
                label: "bedrock",
                model: bedrock_model,
                local: false,
                provider: BoxCloneService::new(p),
            });
        }
        _ => println!(
            "AWS Bedrock: not configured (set AWS_REGION and AWS_ACCESS_KEY_ID / \
             AWS_SECRET_ACCESS_KEY or AWS_PROFILE; would ask {bedrock_model})"
        ),
    }

    let gemini_model = var("GEMINI_MODEL").unwrap_or_else(|| "gemini-2.5-flash".into());
    if let Some(key) = var("GEMINI_API_KEY") {
        println!("Gemini: {gemini_model}");
        out.push(Target {
            label: "gemini",
            model: gemini_model,
            local: false,
            provider: BoxCloneService::new(Gemini::new(GeminiConfig::new(key), http.clone())?),
        });
    } else {
        println!("Gemini: not configured (set GEMINI_API_KEY; would ask {gemini_model})");
    }

    let vertex_model = var("VERTEX_MODEL").unwrap_or_else(|| "gemini-2.5-flash".into());
    let vertex_auth = match (
        var("GOOGLE_APPLICATION_CREDENTIALS"),
        var("VERTEX_ACCESS_TOKEN"),
    ) {
        (Some(file), _) => Some((
            "service-account key",
            VertexAuth::service_account_file(file)?,
        )),
        (None, Some(token)) => Some(("access token", VertexAuth::access_token(token))),
        (None, None) => None,
    };
    match (var("VERTEX_PROJECT"), var("VERTEX_LOCATION"), vertex_auth) {
        (Some(project), Some(location), Some((auth_name, auth))) => {
            println!("Vertex AI: {vertex_model} in {project}/{location} ({auth_name})");
            out.push(Target {
                label: "vertex",
                model: vertex_model,
                local: false,
                provider: BoxCloneService::new(Vertex::new(
                    VertexConfig::new(project, location, auth),
                    http.clone(),
                )?),
            });
        }
        _ => println!(
            "Vertex AI: not configured (set VERTEX_PROJECT, VERTEX_LOCATION and \
             GOOGLE_APPLICATION_CREDENTIALS or VERTEX_ACCESS_TOKEN; would ask {vertex_model})"
        ),
    }

    let ollama_model = var("OLLAMA_MODEL").unwrap_or_else(|| "llama3.2".into());
    if let Some(url) = var("OLLAMA_BASE_URL") {
        let cfg = OpenAiCompatibleConfig::new(url.clone()).name("ollama");
        println!("Ollama: {ollama_model} at {url}");
        out.push(Target {
            label: "ollama",
            model: ollama_model,
            local: true,
            provider: BoxCloneService::new(OpenAiCompatible::new(cfg, http.clone())?),
        });
    } else {
        println!(
            "Ollama: not configured (set OLLAMA_BASE_URL, e.g. http://localhost:11434/v1; would ask {ollama_model})"
        );
    }

    let vllm_model = var("VLLM_MODEL").unwrap_or_else(|| "Qwen/Qwen2.5-1.5B-Instruct".into());
    if let Some(url) = var("VLLM_BASE_URL") {
        let mut cfg = OpenAiCompatibleConfig::new(url.clone()).name("vllm");
        let auth = match var("VLLM_API_KEY") {
            Some(key) => {
                cfg = cfg.api_key(key);
                "with a key"
            }
            None => "without a key",
        };
        println!("vLLM: {vllm_model} at {url} ({auth})");
        out.push(Target {
            label: "vllm",
            model: vllm_model,
            local: true,
            provider: BoxCloneService::new(OpenAiCompatible::new(cfg, http.clone())?),
        });
    } else {
        println!(
            "vLLM: not configured (set VLLM_BASE_URL, e.g. http://localhost:8000/v1, optional VLLM_API_KEY; would ask {vllm_model})"
        );
    }
    Ok(out)
}

/// The stack around one provider. The tracker and the rate-limit layer are shared by all
/// stacks (one budget; one limiter keyed by provider).
fn stack<S>(provider: S, tracker: &CostTracker, per_provider: &RateLimitLayer) -> Stack
where
    S: Service<LlmRequest, Response = LlmResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    BoxCloneService::new(
        ServiceBuilder::new()
            .count_tokens()
            .track_cost(tracker.clone())
            .llm_rate_limit(per_provider.clone())
            .llm_retry(
                RetryLayer::new()
                    .max_retries(2)
                    .backoff(Duration::from_millis(200), Duration::from_secs(5)),
            )
            .llm_timeout(Duration::from_secs(60))
            .service(provider),
    )
}

fn chat(model: &str, label: &str, stream: bool) -> LlmRequest {
    let mut c = ChatRequest::new(
        model,
        vec![
            Message::system("Answer in one short sentence."),
            Message::user("What is tower middleware in Rust?"),
        ],
    )
    .max_tokens(64);
    if stream {
        c.stream = true;
        c.stream_options = Some(StreamOptions {
            extra: Default::default(),
            include_usage: true,
        });
    }
    LlmRequest::chat(c)
        .with_caller("providers-example")
        .with_provider(label.to_owned())
}

fn print_usage(usage: Option<Usage>, cost: Option<Money>) {
    match usage {
        Some(u) => println!(
            "   usage: {} prompt + {} completion tokens ({} cached, {:?}), cost ${}",
            u.prompt_tokens,
            u.completion_tokens,
            u.cached_prompt_tokens,
            u.source,
            cost.map_or_else(|| "?".to_owned(), |c| c.to_string())
        ),
        None => println!("   usage: none"),
    }
}

async fn run() -> Result<bool, Error> {
    let http = HttpClient::new()?;
    let targets = configured(&http)?;

    let mut prices = PriceTable::new();
    for t in &targets {
        let (price, note) = price_for(&t.model, t.local)?;
        println!("{} prices {}: {note}", t.label, t.model);
        prices.insert(t.model.clone(), price);
    }
    let budget = Money::parse_usd(DAILY_BUDGET_USD).map_err(|e| Error::config(e.to_string()))?;
    let tracker = CostTracker::builder()
        .prices(prices)
        .budget(
            Budget::new("example-daily", BudgetScope::Global, Period::Day, budget)?.thresholds(
                vec![
                    Threshold::percent(50)?,
                    Threshold::percent(80)?,
                    Threshold::percent(100)?,
                ],
            ),
        )
        .alerts(|a: &BudgetAlert| {
            println!(
                "   ALERT budget {:?} crossed {}%: ${} of ${}",
                a.budget,
                a.threshold_per_mille / 10,
                a.spent,
                a.limit
            );
        })
        .build()?;
    let per_provider = RateLimitLayer::new(Algorithm::sliding_window(10, Duration::from_secs(60))?)
        .name("per_provider")
        .key(KeyBy::Provider);

    println!(
        "stack: count_tokens -> track_cost (budget ${DAILY_BUDGET_USD}/day) -> llm_rate_limit \
         (10/min per provider) -> llm_retry (2 retries) -> llm_timeout (60 s) -> provider"
    );
    if targets.is_empty() {
        println!("No provider configured: set the variables above and run again.");
        return Ok(true);
    }

    let mut all_ok = true;
    for t in targets {
        let svc = stack(t.provider, &tracker, &per_provider);
        println!();

        match svc.clone().oneshot(chat(&t.model, t.label, false)).await {
            Ok(resp) => {
                println!(
                    "== {} ({}), {} attempt(s), latency {:?}",
                    t.label,
                    resp.meta.model.as_deref().unwrap_or(&t.model),
                    resp.meta.attempts,
                    resp.meta.latency
                );
                let text = resp
                    .as_chat()
                    .map(|c| c.text().into_owned())
                    .unwrap_or_default();
                println!("   {}", text.trim());
                print_usage(resp.usage, resp.cost);
                if let Some(r) = resp.meta.provider_limits.and_then(|l| l.requests) {
                    println!("   requests left: {:?} of {:?}", r.remaining, r.limit);
                }
            }
            Err(e) => {
                all_ok = false;
                // The error names the provider and never contains a key.
                println!(
                    "== {}: {e} [{}; retryable: {}]",
                    t.label,
                    e.label(),
                    e.is_retryable()
                );
                continue;
            }
        }

        // The same through a stream, assembled back into one response. When the server
        // reports no usage, count_tokens appends a counted usage chunk.
        let streamed = async {
            let resp = svc.oneshot(chat(&t.model, t.label, true)).await?;
            let ttft = resp.meta.time_to_first_token;
            let stream = resp
                .into_stream()
                .ok_or_else(|| Error::internal("expected a stream"))?;
            let (chat, usage) = collect_chat_stream(stream).await?;
            Ok::<_, Error>((chat, usage, ttft))
        };
        match streamed.await {
            Ok((chat, usage, ttft)) => {
                println!(
                    "   streamed (first token after {ttft:?}): {}",
                    chat.text().trim()
                );
                let cost = usage.and_then(|u| tracker.cost_of(&t.model, &u));
                print_usage(usage, cost);
            }
            Err(e) => {
                all_ok = false;
                println!("   stream failed: {e} [{}]", e.label());
            }
        }
    }

    let snap = tracker.snapshot();
    println!(
        "\ntotal: {} requests, {} errors, {} tokens, ${} spent of ${DAILY_BUDGET_USD}",
        snap.total.requests,
        snap.total.errors,
        snap.total.prompt_tokens + snap.total.completion_tokens,
        snap.total.cost
    );
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
