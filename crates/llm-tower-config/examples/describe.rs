//! Validates a config file (or the embedded default) and prints the composed stack.
//!
//! ```text
//! cargo run -p llm-tower-config --example describe               # the embedded default
//! cargo run -p llm-tower-config --example describe -- my.json    # a file (env vars from the environment)
//! ```

use llm_tower_config::{Config, build};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let config = match std::env::args().nth(1) {
        Some(path) => Config::load(&path),
        None => Config::embedded_default(),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid config:\n{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match build(&config).await {
        Ok(stack) => {
            print!("{}", stack.describe());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot build the stack: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
