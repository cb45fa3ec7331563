//! Budgets: scope, period, limit, alert thresholds, action.

use std::fmt;

use llm_tower_core::{Error, Money};
use serde::{Deserialize, Serialize};

/// What a budget counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum BudgetScope {
    /// Every request.
    Global,
    /// Each caller key separately (one counter per caller).
    EachCaller,
    /// One caller key.
    Caller(String),
    /// One model, matched like a price lookup: the exact name, then the name without a
    /// `provider/` prefix, then its longest prefix ending at a `-` that names a model
    /// budget. A budget on `gpt-4o` covers `gpt-4o-2024-08-06` and `openai/gpt-4o`
    /// (and `gpt-4o-mini`, unless a `gpt-4o-mini` budget exists, which then takes it).
    Model(String),
    /// One provider, matched against `RequestContext::provider`. That field is set by a
    /// router (the config-built stack's router sets it for each target) or by the caller
    /// with `LlmRequest::with_provider`. In a plain stack with neither, no request names a
    /// provider before the call, so a provider budget never applies: the provider that
    /// answered is known only afterwards, too late to refuse.
    Provider(String),
}

/// When a budget starts over (UTC calendar periods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// Every clock hour.
    Hour,
    /// Every UTC day.
    Day,
    /// Every UTC calendar month.
    Month,
    /// Never.
    Total,
}

impl Period {
    /// The period containing `unix_secs`: its id (used in store keys), start and end (Unix
    /// seconds; `end` is `u64::MAX` for `Total`).
    pub fn window(self, unix_secs: u64) -> (u64, u64, u64) {
        match self {
            Period::Hour => {
                let id = unix_secs / 3600;
                (id, id * 3600, (id + 1) * 3600)
            }
            Period::Day => {
                let id = unix_secs / 86_400;
                (id, id * 86_400, (id + 1) * 86_400)
            }
            Period::Month => {
                let days = i64::try_from(unix_secs / 86_400).unwrap_or(i64::MAX);
                let (y, m, _) = civil_from_days(days);
                let start = days_from_civil(y, m, 1);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let end = days_from_civil(ny, nm, 1);
                let id = u64::try_from(y * 12 + i64::from(m) - 1).unwrap_or(0);
                let secs = |d: i64| u64::try_from(d).unwrap_or(0) * 86_400;
                (id, secs(start), secs(end))
            }
            Period::Total => (0, 0, u64::MAX),
        }
    }

    /// A short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
            Period::Total => "total",
        }
    }
}

// Howard Hinnant's civil-date algorithms (public domain).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What happens when a budget is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetAction {
    /// Refuse requests that cannot fit (`BudgetExceeded`).
    #[default]
    Block,
    /// Only alert; never refuse.
    Alert,
}

/// An alert threshold: a fraction of the limit in (0, 1], kept in per-mille.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Threshold(u16);

impl Threshold {
    /// A threshold in per-mille (1..=1000).
    ///
    /// # Errors
    /// `Config` outside (0, 1000].
    pub fn per_mille(p: u16) -> Result<Self, Error> {
        if p == 0 || p > 1000 {
            return Err(Error::config(format!(
                "alert threshold must be in (0, 1], got {}",
                f64::from(p) / 1000.0
            )));
        }
        Ok(Threshold(p))
    }

    /// A threshold in percent (1..=100).
    ///
    /// # Errors
    /// `Config` outside (0, 100].
    pub fn percent(p: u16) -> Result<Self, Error> {
        if p == 0 || p > 100 {
            return Err(Error::config(format!(
                "alert threshold must be in (0, 1], got {}",
                f64::from(p) / 100.0
            )));
        }
        Threshold::per_mille(p * 10)
    }

    /// The threshold in per-mille.
    pub fn as_per_mille(self) -> u16 {
        self.0
    }

    /// The spend at which this threshold is crossed for `limit`.
    pub fn amount(self, limit: Money) -> Money {
        let v = i128::from(limit.as_nanos()) * i128::from(self.0) / 1000;
        Money::from_nanos(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl fmt::Debug for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", f64::from(self.0) / 10.0)
    }
}

/// A budget: a limit on spend in a scope and a period, with alert thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub(crate) name: String,
    pub(crate) scope: BudgetScope,
    pub(crate) period: Period,
    pub(crate) limit: Money,
    pub(crate) thresholds: Vec<Threshold>,
    pub(crate) action: BudgetAction,
}

impl Budget {
    /// A blocking budget with alerts at 50 %, 80 % and 100 %.
    ///
    /// # Errors
    /// `Config` when the limit is not above zero or the name is empty.
    pub fn new(
        name: impl Into<String>,
        scope: BudgetScope,
        period: Period,
        limit: Money,
    ) -> Result<Self, Error> {
        let name = name.into();
        if name.is_empty() {
            return Err(Error::config("budget name must not be empty"));
        }
        if limit <= Money::ZERO {
            return Err(Error::config(format!(
                "budget {name:?}: limit must be > 0, got {limit}"
            )));
        }
        let thresholds = [500, 800, 1000].into_iter().map(Threshold).collect();
        Ok(Budget {
            name,
            scope,
            period,
            limit,
            thresholds,
            action: BudgetAction::Block,
        })
    }

    /// Replaces the alert thresholds (fractions of the limit, each in (0, 1]).
    #[must_use]
    pub fn thresholds(mut self, mut thresholds: Vec<Threshold>) -> Self {
        thresholds.sort();
        thresholds.dedup();
        self.thresholds = thresholds;
        self
    }

    /// Sets the action.
    #[must_use]
    pub fn action(mut self, action: BudgetAction) -> Self {
        self.action = action;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scope.
    pub fn scope(&self) -> &BudgetScope {
        &self.scope
    }

    /// The period.
    pub fn period(&self) -> Period {
        self.period
    }

    /// The limit.
    pub fn limit(&self) -> Money {
        self.limit
    }

    /// The action.
    pub fn get_action(&self) -> BudgetAction {
        self.action
    }

    /// The alert thresholds, ascending.
    pub fn get_thresholds(&self) -> &[Threshold] {
        &self.thresholds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_windows_follow_the_calendar() {
        // 2024-02-15T12:00:00Z
        let (_, start, end) = Period::Month.window(1_707_998_400);
        assert_eq!(start, 1_706_745_600); // 2024-02-01
        assert_eq!(end, 1_709_251_200); // 2024-03-01 (leap year)
        let (_, s2, e2) = Period::Month.window(1_735_603_200); // 2024-12-31
        assert_eq!(s2, 1_733_011_200);
        assert_eq!(e2, 1_735_689_600); // 2025-01-01
    }

    #[test]
    fn bad_thresholds_and_limits_are_errors() {
        assert!(Threshold::percent(0).is_err());
        assert!(Threshold::percent(101).is_err());
        assert!(Threshold::per_mille(1000).is_ok());
        assert!(Budget::new("b", BudgetScope::Global, Period::Day, Money::ZERO).is_err());
        assert!(Budget::new("", BudgetScope::Global, Period::Day, Money::from_usd(1)).is_err());
    }
}
