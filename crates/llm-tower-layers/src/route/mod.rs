//! Routing services over several targets (deployments, API keys, servers of one model):
//!
//! - [`Balance`]: spreads requests over a group of targets, by power of two choices
//!   over each target's PeakEWMA load (the algorithm of tower's `load::PeakEwma`; for
//!   streams the latency to the first token, since providers answer once it arrived) or
//!   by weight, skipping
//!   targets whose circuit is open; with [`Affinity::PromptPrefix`] requests sharing a
//!   cacheable prefix go to the same target while it is healthy and not overloaded, so the
//!   provider's prompt cache stays warm. A retryable failure moves on to the group's other
//!   targets.
//! - [`Fallback`]: tries services in order (each may be a [`Balance`] group): on a
//!   retryable failure, the next.
//! - [`Hedge`]: sends a second attempt when the first has not answered (for streams: not
//!   produced its first token) within a fixed delay or a percentile of recent latencies;
//!   the first answer wins and the other attempt is cancelled.
//!
//! All three are `tower::Service<LlmRequest>`s, cloneable, usable with `ServiceBuilder`
//! and composable with each other:
//!
//! ```
//! use std::time::Duration;
//! use llm_tower_core::{Error, LlmRequest, LlmResponse};
//! use llm_tower_layers::route::{Balance, BalanceTarget, Fallback, Hedge, HedgeDelay, Strategy};
//! use tower::util::BoxCloneSyncService;
//!
//! type Svc = BoxCloneSyncService<LlmRequest, LlmResponse, Error>;
//! # fn provider(_: &str) -> Svc { BoxCloneSyncService::new(llm_tower_providers_stub()) }
//! # fn llm_tower_providers_stub() -> tower::util::ServiceFn<fn(LlmRequest) -> std::future::Ready<Result<LlmResponse, Error>>> {
//! #     tower::service_fn(|_| std::future::ready(Err(Error::internal("stub"))))
//! # }
//! // Two Azure regions balanced, OpenAI behind them; a hedge after 2 s.
//! let group = Balance::new(
//!     "gpt-4o",
//!     Strategy::P2c,
//!     vec![
//!         BalanceTarget::new("azure-east/gpt-4o", provider("east")),
//!         BalanceTarget::new("azure-west/gpt-4o", provider("west")).weight(2),
//!     ],
//! );
//! let route = Fallback::new(vec![Svc::new(group), provider("openai")]);
//! let hedged = Hedge::new("gpt-4o", HedgeDelay::Fixed(Duration::from_secs(2)), 1, route);
//! # let _ = hedged;
//! ```

mod balance;
mod fallback;
mod hedge;

use std::future::Future;

use llm_tower_core::{Error, LlmRequest, LlmResponse};

/// Runs `attempt(step, request)` for `steps` in order until one answers: a retryable
/// error moves on to the next step (logged with `what` and the step's name), any other
/// error, or the last step's, is the answer. The request is cloned for every step but the
/// last.
pub(crate) async fn in_order<F, Fut>(
    steps: usize,
    req: LlmRequest,
    what: &str,
    name: impl Fn(usize) -> String,
    mut attempt: F,
) -> Result<LlmResponse, Error>
where
    F: FnMut(usize, LlmRequest) -> Fut,
    Fut: Future<Output = Result<LlmResponse, Error>>,
{
    let mut req = Some(req);
    let mut last_error = None;
    for n in 0..steps {
        let is_last = n + 1 == steps;
        let one = if is_last {
            req.take()
        } else {
            req.as_ref().cloned()
        };
        let Some(one) = one else { break };
        match attempt(n, one).await {
            Ok(resp) => return Ok(resp),
            Err(e) if !is_last && e.is_retryable() => {
                tracing::info!(step = %name(n), error = %e, "{what}: trying the next");
                last_error = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| Error::internal(format!("{what}: no target to try"))))
}

pub use balance::{Affinity, Attempted, Balance, BalanceTarget, Strategy};
pub use fallback::Fallback;
pub use hedge::{Hedge, HedgeDelay, NoHedge};
