//! Cost tracking: prices, budgets with reserve -> settle, alerts, analytics.
//!
//! ```
//! use llm_tower_core::Money;
//! use llm_tower_layers::cost::{Budget, BudgetScope, CostTracker, ModelPrice, Period, PriceTable, TrackCostLayer};
//!
//! # fn main() -> Result<(), llm_tower_core::Error> {
//! let prices = PriceTable::new().with("gpt-4o-mini", ModelPrice::usd("0.15", "0.60")?.max_output_tokens(16_384));
//! let tracker = CostTracker::builder()
//!     .prices(prices)
//!     .budget(Budget::new("monthly", BudgetScope::Global, Period::Month, Money::from_usd(100))?)
//!     .alerts(|alert: &llm_tower_layers::cost::BudgetAlert| eprintln!("budget alert: {alert:?}"))
//!     .build()?;
//! let layer = TrackCostLayer::new(tracker.clone());
//! # let _ = layer;
//! # Ok(()) }
//! ```
//!
//! # Reserve -> settle
//! Before the call, the worst-case cost (prompt estimate x input price + output bound x
//! output price) is held in every budget that applies; if any blocking budget cannot
//! hold it, the request fails with `BudgetExceeded` and nothing stays held. After the
//! call the hold is replaced by the real cost. For a stream the [`Reservation`] travels
//! inside the stream and settles when it ends, fails (with the output counted so far) or
//! is dropped (likewise). Concurrent requests can therefore never push settled spend past
//! a blocking budget, as long as real usage stays within the worst case (exact prompt
//! counts; heuristic estimates get a 20 % margin).
//!
//! When a request sets no `max_tokens`, the model's `max_output_tokens` from the price
//! table bounds the reservation.
//!
//! # The cost of a stream
//! A streamed response has no `cost` when it is returned. The chunk that carries the
//! usage carries its cost ([`ChatChunk::cost`](llm_tower_core::ChatChunk::cost); when
//! the provider sends no usage, the token-count layer's appended usage chunk does), and
//! [`ResponseMeta::stream_cost`](llm_tower_core::ResponseMeta::stream_cost) is a
//! [`StreamCost`](llm_tower_core::StreamCost) handle that holds the settled amount once
//! the stream has ended, failed or been dropped.
//!
//! # Alerts
//! Each threshold of a budget fires once per period: the settlement whose atomic update
//! moves spend across it sends one [`BudgetAlert`] to the [`AlertSink`].
//!
//! Reservations keep settled spend at or below a blocking budget's limit, so spend alone
//! rarely reaches 100 %. The 100 % threshold ("exhausted") therefore also fires when a
//! reservation is refused with `BudgetExceeded` (its `spent` is the settled spend then).
//! It still fires once per period, whichever comes first: both paths claim a marker in the
//! [`BudgetStore`] ([`BudgetStore::claim_once`]), which instances sharing a store share.
//!
//! # Errors
//! `BudgetExceeded` (with a retry-after at the end of the period), `Config` when a
//! blocking budget applies to a model without a price, `Store` when the budget store
//! fails. Errors of the inner service pass through (their holds are released).
//!
//! # Clone
//! [`CostTracker`] is one `Arc`: the layer, every service and every clone share prices,
//! budgets, counters and analytics.

mod alert;
mod analytics;
mod budget;
mod price;
mod service;
pub mod store;
mod tracker;

pub use alert::{AlertKind, AlertSink, BudgetAlert};
pub use analytics::{AnalyticsSnapshot, Totals};
pub use budget::{Budget, BudgetAction, BudgetScope, Period, Threshold};
pub use price::{ModelPrice, PriceTable};
pub use service::{CostStream, TrackCost, TrackCostLayer};
pub use store::{
    BudgetStore, BudgetUsage, MemoryBudgetStore, ReservationId, ReserveOutcome, Settled,
};
pub use tracker::{
    BudgetStatus, CostTracker, CostTrackerBuilder, IMPLAUSIBLE_FACTOR, IMPLAUSIBLE_SLACK,
    Reservation,
};
