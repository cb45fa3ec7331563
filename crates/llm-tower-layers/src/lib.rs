#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod builder;
pub mod cache;
pub mod classify;
pub mod cost;
pub mod provider_limits;
pub mod rate_limit;
pub mod retry;
pub mod route;
pub mod timeout;
pub mod token_count;
pub mod trace;
