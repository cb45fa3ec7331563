#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod rate_limit;
pub mod token_count;
