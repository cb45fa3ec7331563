//! Per-request overhead of the OpenAI provider (placeholder until written).
fn main() {}
