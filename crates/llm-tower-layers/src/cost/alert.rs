//! Budget alerts: typed events delivered once per threshold and period.

use llm_tower_core::Money;
use serde::Serialize;

use super::budget::{BudgetScope, Period};

/// What raised a [`BudgetAlert`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Settled spend crossed the threshold.
    #[default]
    Crossed,
    /// A request was refused because its worst case would exceed the limit; spend may
    /// still be below the threshold (only the 100 % threshold is raised this way).
    Refused,
}

/// A budget crossed one of its thresholds, or refused a request that would exceed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetAlert {
    /// Whether spend crossed the threshold or a request was refused.
    pub kind: AlertKind,
    /// The budget's name.
    pub budget: String,
    /// The budget's scope.
    pub scope: BudgetScope,
    /// For per-caller budgets, the caller whose counter crossed.
    pub caller: Option<String>,
    /// The period.
    pub period: Period,
    /// Start of the period (Unix seconds).
    pub period_start: u64,
    /// The threshold crossed (or, for [`AlertKind::Refused`], 1000), in per-mille of the
    /// limit (1000 = 100 %).
    pub threshold_per_mille: u16,
    /// Spend after the request that crossed it (for a refusal: the spend when refused).
    pub spent: Money,
    /// The limit.
    pub limit: Money,
}

/// Receives budget alerts. Implemented for closures `Fn(&BudgetAlert)` and for `()`
/// (drop them). Called on the settling task: keep it quick (send to a channel).
pub trait AlertSink: Send + Sync + 'static {
    /// One alert.
    fn on_alert(&self, alert: &BudgetAlert);
}

impl AlertSink for () {
    fn on_alert(&self, _alert: &BudgetAlert) {}
}

impl<F: Fn(&BudgetAlert) + Send + Sync + 'static> AlertSink for F {
    fn on_alert(&self, alert: &BudgetAlert) {
        self(alert)
    }
}

impl AlertSink for tokio::sync::mpsc::UnboundedSender<BudgetAlert> {
    fn on_alert(&self, alert: &BudgetAlert) {
        let _ = self.send(alert.clone());
    }
}
