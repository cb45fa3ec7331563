//! Prices per model.

use std::collections::HashMap;

use llm_tower_core::{Money, Price, Usage};
use serde::{Deserialize, Serialize};

/// What one model costs and how much it can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// Input tokens, per million.
    pub input: Price,
    /// Cached input tokens, per million (defaults to `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<Price>,
    /// Output tokens, per million.
    pub output: Price,
    /// Input tokens written to a 5-minute prompt cache, per million (defaults to `input`;
    /// Anthropic charges 1.25x input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_5m: Option<Price>,
    /// Input tokens written to a 1-hour prompt cache, per million (defaults to `input`;
    /// Anthropic charges 2x input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<Price>,
    /// Reasoning output tokens, per million (defaults to `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Price>,
    /// The model's largest output, which bounds a reservation when a request sets no
    /// `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// The model's context window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
}

impl ModelPrice {
    /// A price with input and output per million tokens.
    pub fn new(input: Price, output: Price) -> Self {
        ModelPrice {
            input,
            cached_input: None,
            cache_write_5m: None,
            cache_write_1h: None,
            reasoning: None,
            output,
            max_output_tokens: None,
            context_window: None,
        }
    }

    /// Parses decimal USD-per-million strings, e.g. `ModelPrice::usd("2.50", "10.00")`.
    ///
    /// # Errors
    /// A message naming the bad field when a string is not a non-negative decimal.
    pub fn usd(input: &str, output: &str) -> Result<Self, llm_tower_core::Error> {
        let p = |field: &str, s: &str| {
            Price::parse_per_million(s)
                .map_err(|e| llm_tower_core::Error::config(format!("price.{field}: {e}")))
        };
        Ok(ModelPrice::new(p("input", input)?, p("output", output)?))
    }

    /// Sets the cached-input price.
    #[must_use]
    pub fn cached_input(mut self, price: Price) -> Self {
        self.cached_input = Some(price);
        self
    }

    /// Sets the 5-minute cache-write price.
    #[must_use]
    pub fn cache_write_5m(mut self, price: Price) -> Self {
        self.cache_write_5m = Some(price);
        self
    }

    /// Sets the 1-hour cache-write price.
    #[must_use]
    pub fn cache_write_1h(mut self, price: Price) -> Self {
        self.cache_write_1h = Some(price);
        self
    }

    /// Sets the reasoning-token price.
    #[must_use]
    pub fn reasoning(mut self, price: Price) -> Self {
        self.reasoning = Some(price);
        self
    }

    /// Sets the maximum output tokens.
    #[must_use]
    pub fn max_output_tokens(mut self, n: u32) -> Self {
        self.max_output_tokens = Some(n);
        self
    }

    /// Sets the context window.
    #[must_use]
    pub fn context_window(mut self, n: u32) -> Self {
        self.context_window = Some(n);
        self
    }

    /// The exact cost of a usage, summed over every tier at its own price and rounded up
    /// once to whole nano-USD: plain input, cached reads, 5-minute and 1-hour cache writes,
    /// plain output and reasoning output.
    pub fn cost(&self, usage: &Usage) -> Money {
        let cached = usage.cached_prompt_tokens.min(usage.prompt_tokens);
        let mut left = usage.prompt_tokens - cached;
        let write_5m = usage.cache_write_5m_tokens.min(left);
        left -= write_5m;
        let write_1h = usage.cache_write_1h_tokens.min(left);
        left -= write_1h;
        let reasoning = usage.reasoning_tokens.min(usage.completion_tokens);
        let output = usage.completion_tokens - reasoning;
        Price::round_up(
            self.input
                .cost_scaled(left)
                .saturating_add(self.cached_input.unwrap_or(self.input).cost_scaled(cached))
                .saturating_add(
                    self.cache_write_5m
                        .unwrap_or(self.input)
                        .cost_scaled(write_5m),
                )
                .saturating_add(
                    self.cache_write_1h
                        .unwrap_or(self.input)
                        .cost_scaled(write_1h),
                )
                .saturating_add(self.output.cost_scaled(output))
                .saturating_add(self.reasoning.unwrap_or(self.output).cost_scaled(reasoning)),
        )
    }

    /// The worst-case cost of `prompt` input tokens and `output` output tokens: each
    /// priced at the dearest tier it could be billed at (a prompt may be written to a
    /// cache; output may be reasoning).
    pub fn worst_case(&self, prompt: u64, output: u64) -> Money {
        let input = [self.cache_write_5m, self.cache_write_1h]
            .into_iter()
            .flatten()
            .fold(self.input, Price::max);
        let out = self.reasoning.map_or(self.output, |r| r.max(self.output));
        Price::round_up(
            input
                .cost_scaled(prompt)
                .saturating_add(out.cost_scaled(output)),
        )
    }
}

/// Prices by model name. A lookup tries the exact name, then the longest configured prefix
/// that ends at a `-` (so `gpt-4o-2024-08-06` finds `gpt-4o`), after dropping a
/// `provider/` prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PriceTable {
    models: HashMap<String, ModelPrice>,
}

impl PriceTable {
    /// An empty table.
    pub fn new() -> Self {
        PriceTable::default()
    }

    /// Adds or replaces a model's price.
    #[must_use]
    pub fn with(mut self, model: impl Into<String>, price: ModelPrice) -> Self {
        self.models.insert(model.into(), price);
        self
    }

    /// Adds or replaces a model's price.
    pub fn insert(&mut self, model: impl Into<String>, price: ModelPrice) {
        self.models.insert(model.into(), price);
    }

    /// The price of `model`.
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        model_candidates(model).find_map(|name| self.models.get(name))
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// `true` when no model has a price.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Iterates over models and prices.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.models.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// The names a lookup for `model` tries, in order: the exact name, the name after a
/// `provider/` prefix, then its prefixes ending at a `-`, longest first
/// (`openai/gpt-4o-2024-08-06` -> `gpt-4o-2024-08-06`, `gpt-4o-2024-08`, `gpt-4o-2024`,
/// `gpt-4o`, `gpt`). Prices and model budgets both match this way.
pub(crate) fn model_candidates(model: &str) -> impl Iterator<Item = &str> {
    let name = model.rsplit_once('/').map_or(model, |(_, m)| m);
    let prefixes = std::iter::successors(Some(name), |cut| cut.rsplit_once('-').map(|(h, _)| h));
    std::iter::once(model).chain(prefixes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_tower_core::UsageSource;

    #[test]
    fn cost_is_exact_with_cached_tokens() {
        let p = ModelPrice::usd("2.50", "10.00")
            .unwrap()
            .cached_input(Price::parse_per_million("1.25").unwrap());
        let u = Usage::new(1000, 500, UsageSource::Provider).with_cached(400);
        // 600 * 2.5 + 400 * 1.25 + 500 * 10 = 1500 + 500 + 5000 = 7000 per million -> $0.007
        assert_eq!(p.cost(&u), Money::parse_usd("0.007").unwrap());
    }

    #[test]
    fn lookup_by_prefix_and_provider() {
        let t = PriceTable::new().with("gpt-4o", ModelPrice::usd("2.5", "10").unwrap());
        assert!(t.get("gpt-4o-2024-08-06").is_some());
        assert!(t.get("openai/gpt-4o").is_some());
        assert!(t.get("gpt-4").is_none());
    }
}
