//! Token counting (draft).

mod counter;
pub mod future;
mod heuristic;
mod layer;
mod prompt;
mod service;
mod stream;
mod tokenizers;

pub use counter::{TokenCount, TokenCounter};
pub use heuristic::Heuristic;
pub use layer::CountTokensLayer;
pub use service::CountTokens;
pub use tokenizers::{Encoding, Tokenizers};
#[cfg(test)] mod calib;
