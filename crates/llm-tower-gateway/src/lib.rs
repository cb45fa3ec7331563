#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod anthropic;
pub mod app;
pub mod auth;
pub mod cli;
#[cfg(feature = "config")]
mod from_config;
pub mod http_limit;
pub mod key;
pub mod openai_error;
mod passthrough;
pub mod responses;
mod routes;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod wire;

pub use app::{AppState, AppStateBuilder, HealthFuture, LlmService, ModelInfo, ProviderHealth};
pub use auth::{Authenticator, NoKeys, StaticKeys};
#[cfg(feature = "config")]
pub use responses::RedisResponseStore;
pub use responses::{MemoryResponseStore, ResponseStore, StoredResponse};
pub use routes::{CACHE_HEADER, REQUEST_ID, TIMEOUT_HEADER};
pub use server::{ConnectionInfo, ServeOptions, Shutdown, bind, serve};
pub use settings::{LogFormat, Settings};
