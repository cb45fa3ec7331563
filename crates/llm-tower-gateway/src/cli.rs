//! The `llm-tower` command line.
//!
//! ```text
//! llm-tower serve [--config FILE] [--listen ADDR] [--workers N]
//! llm-tower check-config FILE
//! llm-tower count-tokens --model MODEL [FILE]
//! ```
//!
//! - `serve` runs the gateway. Without `--config` it serves the embedded default config
//!   (the mock provider, no keys, no network) on `127.0.0.1:8080` and prints one line
//!   saying so with a `curl` example. `--listen` overrides the config's address (port 0
//!   picks a free port; the printed line has the bound address). `--workers` sets the
//!   number of runtime threads (default: one per core; `1` runs everything on one thread,
//!   for a gateway that must stay on one core). SIGTERM or ctrl-c shuts down gracefully.
//! - `check-config` validates a config file and prints the composed stack per route and
//!   model; on error it prints every problem with its JSON path and exits with status 1.
//! - `count-tokens` prints the number of tokens of the text in FILE (stdin by default)
//!   for a model, and whether it is exact or an estimate.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use llm_tower_layers::token_count::{Encoding, TokenCounter, Tokenizers};

/// The `llm-tower` command line.
#[derive(Debug, Parser)]
#[command(
    name = "llm-tower",
    version,
    about = "An OpenAI-compatible gateway with rate limits, retries, token counting and cost tracking"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the embedded default config, a mock provider, when no --config).
    Serve {
        /// The JSON config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen on this address instead of the config's (e.g. 127.0.0.1:0).
        #[arg(long, short)]
        listen: Option<SocketAddr>,
        /// Runtime worker threads (default: one per core; 1: a single-threaded runtime).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
        workers: Option<u16>,
    },
    /// Validate a config file and print the composed stack per route.
    CheckConfig {
        /// The JSON config file.
        file: PathBuf,
    },
    /// Count the tokens of a text (stdin by default) for a model.
    CountTokens {
        /// The model whose tokenizer to use.
        #[arg(long, short)]
        model: String,
        /// The text file (stdin when absent or `-`).
        file: Option<PathBuf>,
    },
}

/// Parses the command line and runs it; the process exit code.
pub fn main() -> ExitCode {
    run(Cli::parse())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::CountTokens { model, file } => count_tokens(&model, file.as_deref()),
        Command::CheckConfig { file } => with_runtime(None, || check_config(&file)),
        Command::Serve {
            config,
            listen,
            workers,
        } => with_runtime(workers, || serve(config, listen)),
    }
}

fn with_runtime<F, Fut>(workers: Option<u16>, f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let mut builder = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(usize::from(n));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    match builder.enable_all().build() {
        Ok(rt) => rt.block_on(f()),
        Err(e) => {
            eprintln!("llm-tower: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_input(file: Option<&Path>) -> std::io::Result<String> {
    let mut text = String::new();
    match file {
        Some(p) if p != Path::new("-") => {
            text = std::fs::read_to_string(p)?;
        }
        _ => {
            std::io::stdin().read_to_string(&mut text)?;
        }
    }
    Ok(text)
}

fn count_tokens(model: &str, file: Option<&Path>) -> ExitCode {
    let text = match read_input(file) {
        Ok(t) => t,
        Err(e) => {
            let what = file.map_or("stdin".to_owned(), |p| p.display().to_string());
            eprintln!("llm-tower: cannot read {what}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let count = Tokenizers::new().count_text(model, &text);
    let how = match Encoding::for_model(model) {
        Some(enc) if count.is_exact() => format!("exact, {}", enc.name()),
        _ => format!("estimate: no public tokenizer for model {model:?}"),
    };
    write_stdout(&format!("{} tokens ({how})\n", count.tokens))
}

/// Writes to stdout; a closed pipe (`llm-tower check-config FILE | head`) ends the
/// command quietly instead of panicking as `println!` does.
fn write_stdout(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llm-tower: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "config")]
fn load_config(file: &Path) -> Result<llm_tower_config::Config, ExitCode> {
    llm_tower_config::Config::load(file).map_err(|e| {
        let problems = e.problems();
        eprintln!(
            "llm-tower: {} is not valid ({} problem{}):",
            file.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in problems {
            eprintln!("  {p}");
        }
        ExitCode::FAILURE
    })
}

#[cfg(feature = "config")]
async fn check_config(file: &Path) -> ExitCode {
    let config = match load_config(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match llm_tower_config::build(&config).await {
        Ok(built) => write_stdout(&format!(
            "{}{}ok: {} is valid
",
            built.describe_gateway(),
            built.describe(),
            file.display()
        )),
        Err(e) => {
            eprintln!("llm-tower: {} cannot be built: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "config"))]
async fn check_config(_file: &Path) -> ExitCode {
    eprintln!("llm-tower: built without the `config` feature");
    ExitCode::FAILURE
}

#[cfg(not(feature = "config"))]
async fn serve(_config: Option<PathBuf>, _listen: Option<SocketAddr>) -> ExitCode {
    eprintln!("llm-tower: built without the `config` feature");
    ExitCode::FAILURE
}

#[cfg(feature = "config")]
async fn serve(config_file: Option<PathBuf>, listen: Option<SocketAddr>) -> ExitCode {
    use crate::app::AppState;
    use crate::server::{ServeOptions, serve, shutdown_signal};
    use crate::telemetry;
    use std::io::Write;

    let config = match &config_file {
        Some(f) => match load_config(f) {
            Ok(c) => c,
            Err(code) => return code,
        },
        None => match llm_tower_config::Config::embedded_default() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("llm-tower: the embedded default config is invalid: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let built = match llm_tower_config::build(&config).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("llm-tower: cannot build the stack: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut builder = AppState::builder_from_built(&built);
    let mut settings = crate::settings::Settings::from(built.gateway());
    if let Some(addr) = listen {
        settings.listen = addr;
    }
    if let Err(e) = telemetry::init_logging(&settings) {
        eprintln!("llm-tower: {e}");
    }
    match telemetry::prometheus() {
        Ok(h) => builder = builder.prometheus(h),
        Err(e) => tracing::warn!(error = %e, "metrics disabled"),
    }
    let state = builder.settings(settings.clone()).build();
    // Load the exact tokenizers the listed models use now, so the first request does not
    // pay for it (and those no model uses are never loaded: o200k_base alone takes ~70 MB).
    let encodings: std::collections::HashSet<Encoding> = state
        .models()
        .iter()
        .filter_map(|m| Encoding::for_model(&m.id))
        .collect();
    let _ = tokio::task::spawn_blocking(move || {
        for e in encodings {
            e.count("warm up");
        }
    })
    .await;
    let listener = match crate::server::bind(settings.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("llm-tower: cannot listen on {}: {e}", settings.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(settings.listen);
    let model = state
        .models()
        .first()
        .map_or("gpt-4o-mini", |m| m.id.as_str());
    let line = match &config_file {
        None => format!(
            "llm-tower: serving the embedded default config (mock provider, no keys) on http://{addr} \
             -- try: curl http://{addr}/v1/chat/completions -H 'content-type: application/json' \
             -d '{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'"
        ),
        Some(f) => format!("llm-tower: serving {} on http://{addr}", f.display()),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    drop(out);
    if let Some(d) = state.describe() {
        tracing::debug!(stack = %d, "composed stack");
    }
    tracing::info!(%addr, models = state.models().len(), auth_required = state.auth_required(), "gateway started");
    match serve(
        listener,
        state.router(),
        ServeOptions::from(state.settings()),
        shutdown_signal(),
    )
    .await
    {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llm-tower: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
