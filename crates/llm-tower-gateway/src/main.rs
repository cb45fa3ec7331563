//! The `llm-tower` binary: see [`llm_tower_gateway::cli`].

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    llm_tower_gateway::cli::main()
}
