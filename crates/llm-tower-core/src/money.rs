//! Exact money: an integer number of nano-USD, and prices per million tokens.
//!
//! No floating point is used anywhere in accounting. [`Money`] is an `i64` count of
//! nano-USD (10^-9 USD), which covers about ±9.2 billion USD and adds atomically in
//! memory (`AtomicI64`) and in Redis (`INCRBY`). A [`Price`] is the cost of one million
//! tokens, also in nano-USD, so any price with up to nine decimals of USD per million
//! tokens is exact. The cost of a number of tokens is rounded *up* to the next nano-USD,
//! once per request, so accounting never under-charges.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Nano-USD in one USD.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// An exact amount of US dollars, stored as an integer number of nano-USD.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

impl Money {
    /// Zero dollars.
    pub const ZERO: Money = Money(0);
    /// The largest representable amount.
    pub const MAX: Money = Money(i64::MAX);

    /// Money from a number of nano-USD.
    pub const fn from_nanos(nanos: i64) -> Self {
        Money(nanos)
    }

    /// Money from whole dollars (saturating). For amounts below a dollar use
    /// [`Money::from_usd_str`] (`"0.0002"`) or [`Money::from_nanos`].
    pub const fn from_usd(usd: i64) -> Self {
        Money(usd.saturating_mul(NANOS_PER_USD))
    }

    /// Money from a decimal string of USD, exact to the nano-USD: `"0.0002"`, `"12.50"`.
    ///
    /// The same as `s.parse::<Money>()` and [`Money::parse_usd`]; the error converts into
    /// [`Error`](crate::Error) with `?`.
    ///
    /// ```
    /// use llm_tower_core::Money;
    ///
    /// # fn main() -> Result<(), llm_tower_core::Error> {
    /// let per_call = Money::from_usd_str("0.0002")?;
    /// assert_eq!(per_call.as_nanos(), 200_000);
    /// let limit: Money = "5.25".parse()?;
    /// assert_eq!(limit, Money::from_usd(5) + Money::from_usd_str("0.25")?);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`MoneyParseError`] when the string is not a plain decimal number, has more than
    /// nine fractional digits, or does not fit.
    pub fn from_usd_str(s: &str) -> Result<Money, MoneyParseError> {
        Money::parse_usd(s)
    }

    /// The amount in nano-USD.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Saturating addition.
    pub const fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// Saturating subtraction.
    pub const fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }

    /// `true` if the amount is below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// The amount as a (lossy) `f64` of USD, for display and metrics only.
    pub fn to_usd_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_USD as f64
    }

    /// Parses a decimal string of USD such as `"12.5"`, `"0.000150"` or `"-3"`.
    ///
    /// # Errors
    /// Returns [`MoneyParseError`] when the string is not a plain decimal number, has more
    /// than nine fractional digits, or does not fit.
    pub fn parse_usd(s: &str) -> Result<Money, MoneyParseError> {
        parse_decimal_nanos(s).map(Money)
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        self.saturating_add(rhs)
    }
}

impl std::ops::Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        self.saturating_sub(rhs)
    }
}

impl std::ops::AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = self.saturating_add(rhs);
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Money {
    /// Formats as a decimal USD string without trailing zeros, e.g. `12.5`, `0.00015`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_decimal_nanos(self.0))
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", format_decimal_nanos(self.0))
    }
}

impl FromStr for Money {
    type Err = MoneyParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse_usd(s)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_decimal_nanos(self.0))
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Money::parse_usd(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a decimal money string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyParseError {
    reason: &'static str,
}

impl fmt::Display for MoneyParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid USD amount: {} (expected a decimal string like \"2.50\")",
            self.reason
        )
    }
}

impl std::error::Error for MoneyParseError {}

fn parse_decimal_nanos(s: &str) -> Result<i64, MoneyParseError> {
    let err = |reason| MoneyParseError { reason };
    let t = s.trim();
    let t = t.strip_prefix('$').unwrap_or(t);
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty() {
        return Err(err("empty"));
    }
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(err("no digits"));
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(err("only digits and one '.' are allowed"));
    }
    if frac_part.len() > 9 {
        return Err(err("more than 9 decimal places"));
    }
    let mut value: i128 = 0;
    for b in int_part.bytes() {
        value = value * 10 + i128::from(b - b'0');
        if value > i128::from(i64::MAX) {
            return Err(err("too large"));
        }
    }
    let mut frac: i128 = 0;
    for b in frac_part.bytes() {
        frac = frac * 10 + i128::from(b - b'0');
    }
    for _ in frac_part.len()..9 {
        frac *= 10;
    }
    let total = value * i128::from(NANOS_PER_USD) + frac;
    let total = if neg { -total } else { total };
    i64::try_from(total).map_err(|_| err("too large"))
}

fn format_decimal_nanos(n: i64) -> String {
    let neg = n < 0;
    let abs = i128::from(n).unsigned_abs();
    let int = abs / NANOS_PER_USD as u128;
    let frac = abs % NANOS_PER_USD as u128;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(&int.to_string());
    if frac != 0 {
        let f = format!("{frac:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out
}

/// A price per one million tokens, exact in nano-USD.
///
/// Construct with [`Price::per_million`] or parse a decimal string of USD per million
/// tokens (`"2.50"`). Prices are never negative.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(Money);

impl Price {
    /// A price of zero.
    pub const FREE: Price = Price(Money::ZERO);

    /// A price per million tokens.
    ///
    /// # Errors
    /// Returns an error when the amount is negative.
    pub fn per_million(amount: Money) -> Result<Price, PriceError> {
        if amount.is_negative() {
            return Err(PriceError::Negative(amount));
        }
        Ok(Price(amount))
    }

    /// Parses a decimal string of USD per million tokens.
    ///
    /// # Errors
    /// Returns an error when the string is not a decimal or the price is negative.
    pub fn parse_per_million(s: &str) -> Result<Price, PriceError> {
        let m = Money::parse_usd(s).map_err(PriceError::Parse)?;
        Price::per_million(m)
    }

    /// The price of one million tokens.
    pub const fn per_million_tokens(self) -> Money {
        self.0
    }

    /// The exact cost of `tokens` tokens in femto-USD-precision, before rounding.
    ///
    /// Returned as nano-USD times one million (an `i128`) so that several components can
    /// be summed before the single rounding step of [`Price::round_up`].
    pub fn cost_scaled(self, tokens: u64) -> i128 {
        i128::from(self.0.as_nanos()) * i128::from(tokens)
    }

    /// Rounds a sum of [`Price::cost_scaled`] values up to whole nano-USD.
    pub fn round_up(scaled: i128) -> Money {
        let nanos = scaled.div_euclid(1_000_000) + i128::from(scaled.rem_euclid(1_000_000) != 0);
        Money::from_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    /// The cost of `tokens` tokens, rounded up to whole nano-USD.
    pub fn cost(self, tokens: u64) -> Money {
        Price::round_up(self.cost_scaled(tokens))
    }
}

impl fmt::Debug for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/Mtok", self.0)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Price {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Money::deserialize(d)?;
        Price::per_million(m).map_err(serde::de::Error::custom)
    }
}

/// Why a price is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceError {
    /// The price is below zero.
    Negative(Money),
    /// The price string is not a decimal number.
    Parse(MoneyParseError),
}

impl fmt::Display for PriceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceError::Negative(m) => write!(f, "must be >= 0 (got {m})"),
            PriceError::Parse(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PriceError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_formats_decimal_usd() {
        assert_eq!(Money::parse_usd("12.5").unwrap().as_nanos(), 12_500_000_000);
        assert_eq!(Money::parse_usd("0.000000001").unwrap().as_nanos(), 1);
        assert_eq!(Money::parse_usd("-3").unwrap().as_nanos(), -3_000_000_000);
        assert_eq!(Money::parse_usd(".5").unwrap().as_nanos(), 500_000_000);
        assert_eq!(Money::from_nanos(150).to_string(), "0.00000015");
        assert_eq!(Money::from_usd(2).to_string(), "2");
        assert_eq!(Money::from_nanos(-1_500_000_000).to_string(), "-1.5");
        assert_eq!(Money::from_usd_str("0.0002").unwrap().as_nanos(), 200_000);
        assert_eq!(Money::from_usd_str("$0.5").unwrap().as_nanos(), 500_000_000);
        assert!(Money::from_usd_str("0.2 USD").is_err());
    }

    #[test]
    fn rejects_bad_money_strings() {
        for bad in [
            "",
            ".",
            "1.2.3",
            "abc",
            "1e5",
            "0.0000000001",
            "99999999999999999999",
        ] {
            assert!(Money::parse_usd(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn price_rounds_up_once_per_sum() {
        // $0.0375 per million tokens is 37.5 nano-USD per token.
        let p = Price::parse_per_million("0.0375").unwrap();
        assert_eq!(p.cost(1), Money::from_nanos(38));
        assert_eq!(p.cost(2), Money::from_nanos(75));
        assert_eq!(p.cost(1000), Money::from_nanos(37_500));
        assert_eq!(p.cost(0), Money::ZERO);
        let gpt4o_in = Price::parse_per_million("2.50").unwrap();
        assert_eq!(
            gpt4o_in.cost(1_000_000),
            Money::from_usd(2) + Money::from_nanos(500_000_000)
        );
    }

    #[test]
    fn negative_price_is_an_error() {
        assert!(matches!(
            Price::parse_per_million("-1"),
            Err(PriceError::Negative(_))
        ));
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(n in any::<i64>()) {
            let m = Money::from_nanos(n);
            prop_assert_eq!(Money::parse_usd(&m.to_string()).unwrap(), m);
        }

        #[test]
        fn cost_is_never_below_exact(nanos in 0i64..1_000_000_000_000, tokens in 0u64..10_000_000) {
            let p = Price::per_million(Money::from_nanos(nanos)).unwrap();
            let c = p.cost(tokens).as_nanos() as i128;
            let exact_scaled = i128::from(nanos) * i128::from(tokens);
            prop_assert!(c * 1_000_000 >= exact_scaled);
            prop_assert!((c - 1) * 1_000_000 < exact_scaled);
        }
    }
}
