//! Kubernetes' resource quantities (`k8s.io/apimachinery/pkg/api/resource.Quantity`): `100m`,
//! `1.5`, `128Mi`, `1e3`, with Kubernetes' parsing, rounding, canonical form and comparison.
//!
//! A quantity is kept exactly as a whole number of nano-units (an `i128`): Kubernetes rounds
//! anything finer than `1n` up (away from zero), so nothing below that is ever needed, and the
//! range covers ±1.7e29 (Kubernetes' own values are capped at 2^63-1 for binary ones).

use std::cmp::Ordering;
use std::fmt;

/// How a quantity was written, and so how it prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `12e6`, `1e-3`.
    DecimalExponent,
    /// `5Gi`, `128Mi`, `1Ki`.
    BinarySI,
    /// `5G`, `100m`, `2k`, `1.5`.
    DecimalSI,
}

/// Why a quantity did not parse: Kubernetes' own three errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    FormatWrong,
    #[error("unable to parse quantity's numeric value")]
    Numeric,
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// A resource quantity (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    pub format: Format,
}

const NANO: i128 = 1_000_000_000;
/// Binary quantities are capped at the largest int64, as Kubernetes caps them.
const MAX_BINARY: i128 = (i64::MAX as i128) * NANO;

impl Quantity {
    /// Zero, printed `0`.
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSI,
    };

    /// `value` whole units in `format`.
    pub fn new(value: i64, format: Format) -> Quantity {
        Quantity {
            nanos: value as i128 * NANO,
            format,
        }
    }

    /// `value` thousandths in `format` (Kubernetes' `NewMilliQuantity`).
    pub fn from_milli(value: i64, format: Format) -> Quantity {
        Quantity {
            nanos: value as i128 * 1_000_000,
            format,
        }
    }

    /// Parses a quantity as Kubernetes' `ParseQuantity` does, edge cases included (`.` and
    /// `+` are zero, `1.` is one, a bare suffix such as `Mi` is zero).
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::FormatWrong);
        }
        let parts = split(s)?;
        let (base, exponent, format) = interpret_suffix(parts.suffix)?;
        // value = (num.denom) × base^exponent, rounded up to nano-units.
        let digits = format!("{}{}", parts.num, parts.denom);
        let digits = digits.trim_start_matches('0');
        let mut num: i128 = if digits.is_empty() {
            0
        } else {
            // More digits than an i128 holds is beyond any quantity we can represent.
            digits.parse().map_err(|_| QuantityError::Numeric)?
        };
        // The power of ten that takes the digits to nano-units.
        let mut exp10: i32 = 9 - parts.denom.len() as i32;
        if base == 10 {
            exp10 += exponent;
        } else {
            num = num
                .checked_mul(1i128 << exponent)
                .ok_or(QuantityError::Numeric)?;
        }
        let nanos = if exp10 >= 0 {
            10i128
                .checked_pow(exp10 as u32)
                .and_then(|p| num.checked_mul(p))
                .ok_or(QuantityError::Numeric)?
        } else {
            // Finer than a nano-unit: rounded up (Kubernetes: "if you want some resources,
            // you should get some resources").
            match 10i128.checked_pow((-exp10) as u32) {
                Some(div) => num / div + i128::from(num % div != 0),
                None => i128::from(num != 0),
            }
        };
        let mut q = Quantity { nanos, format };
        if format == Format::BinarySI && q.nanos > MAX_BINARY {
            q.nanos = MAX_BINARY;
        }
        if format == Format::BinarySI && q.nanos > 0 && q.nanos < NANO {
            q.format = Format::DecimalSI;
        }
        if !parts.positive {
            q.nanos = -q.nanos;
        }
        Ok(q)
    }

    /// A quantity as JSON carries it (a string, or a number written without quotes in a
    /// manifest); zero for anything else or what does not parse (for display, never for
    /// limits).
    pub fn from_json(v: &serde_json::Value) -> Quantity {
        match v {
            serde_json::Value::String(s) => Quantity::parse(s).unwrap_or(Quantity::ZERO),
            serde_json::Value::Number(n) => {
                Quantity::parse(&n.to_string()).unwrap_or(Quantity::ZERO)
            }
            _ => Quantity::ZERO,
        }
    }

    /// The value in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The value rounded up (away from zero) to a whole number, as Kubernetes' `Value()`:
    /// `500m` → 1, `1.5` → 2, `1Pi` → 1125899906842624.
    pub fn value(&self) -> i128 {
        div_away(self.nanos, NANO)
    }

    /// The value in thousandths, rounded up (away from zero): Kubernetes' `MilliValue()`.
    pub fn milli_value(&self) -> i128 {
        div_away(self.nanos, 1_000_000)
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;

    /// `self + other`; a zero takes the other's format (Kubernetes' `Add`).
    fn add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos + other.nanos,
            format: if self.nanos == 0 {
                other.format
            } else {
                self.format
            },
        }
    }
}

impl std::ops::AddAssign for Quantity {
    fn add_assign(&mut self, other: Quantity) {
        *self = *self + other;
    }
}

impl std::ops::Sub for Quantity {
    type Output = Quantity;

    /// `self - other`; a zero takes the other's format (Kubernetes' `Sub`).
    fn sub(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos - other.nanos,
            format: if self.nanos == 0 {
                other.format
            } else {
                self.format
            },
        }
    }
}

/// `n / d` rounded away from zero.
fn div_away(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if n > 0 {
        q + 1
    } else {
        q - 1
    }
}

/// A quantity's text cut into its parts, as Kubernetes' `parseQuantityString` cuts it.
struct Parts<'a> {
    positive: bool,
    /// The whole digits, without leading zeros.
    num: &'a str,
    /// The digits after the dot.
    denom: &'a str,
    suffix: &'a str,
}

fn split(s: &str) -> Result<Parts<'_>, QuantityError> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < b.len() && b[pos] == b'0' {
        pos += 1;
    }
    let zero = Parts {
        positive,
        num: "",
        denom: "",
        suffix: "",
    };
    if pos == b.len() {
        return Ok(zero);
    }
    let start = pos;
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = &s[start..pos];
    let mut denom = "";
    if pos < b.len() && b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[start..pos];
    }
    // The suffix: letters of "eEinumkKMGTP", an optional sign, then digits to the end.
    let suffix_start = pos;
    while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < b.len() && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < b.len() {
        return Err(QuantityError::FormatWrong);
    }
    Ok(Parts {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// A suffix's base, exponent and format (Kubernetes' `suffixer.interpret`).
fn interpret_suffix(s: &str) -> Result<(u32, i32, Format), QuantityError> {
    use Format::*;
    Ok(match s {
        "" => (10, 0, DecimalSI),
        "n" => (10, -9, DecimalSI),
        "u" => (10, -6, DecimalSI),
        "m" => (10, -3, DecimalSI),
        "k" => (10, 3, DecimalSI),
        "M" => (10, 6, DecimalSI),
        "G" => (10, 9, DecimalSI),
        "T" => (10, 12, DecimalSI),
        "P" => (10, 15, DecimalSI),
        "E" => (10, 18, DecimalSI),
        "Ki" => (2, 10, BinarySI),
        "Mi" => (2, 20, BinarySI),
        "Gi" => (2, 30, BinarySI),
        "Ti" => (2, 40, BinarySI),
        "Pi" => (2, 50, BinarySI),
        "Ei" => (2, 60, BinarySI),
        e if e.len() > 1 && e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| QuantityError::Suffix)?;
            (10, exp, DecimalExponent)
        }
        _ => return Err(QuantityError::Suffix),
    })
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl PartialEq for Quantity {
    /// Equal values are equal quantities, whatever their formats (`1Ki` == `1024`).
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl fmt::Display for Quantity {
    /// The canonical form Kubernetes serializes: the largest suffix that keeps the number
    /// whole and loses nothing (`1.5` → `1500m`, `1.5Gi` → `1536Mi`, `1000` → `1k`,
    /// `0.9Gi` → `966367641600m`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySI {
            let whole = self.nanos % NANO == 0;
            if self.nanos.abs() < 1024 * NANO || !whole {
                format = Format::DecimalSI;
            }
        }
        if format == Format::BinarySI {
            // The largest power of 1024 that divides the whole number.
            let mut n = self.nanos / NANO;
            let mut exp = 0;
            while exp < 6 && n % 1024 == 0 {
                n /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return write!(f, "{n}{suffix}");
        }
        // Decimal: strip trailing zeros, then lower the exponent to a multiple of three.
        let mut n = self.nanos;
        let mut exp: i32 = -9;
        while n % 10 == 0 {
            n /= 10;
            exp += 1;
        }
        match exp.rem_euclid(3) {
            1 => {
                n *= 10;
                exp -= 1;
            }
            2 => {
                n *= 100;
                exp -= 2;
            }
            _ => {}
        }
        let si = match exp {
            -9 => Some("n"),
            -6 => Some("u"),
            -3 => Some("m"),
            0 => Some(""),
            3 => Some("k"),
            6 => Some("M"),
            9 => Some("G"),
            12 => Some("T"),
            15 => Some("P"),
            18 => Some("E"),
            _ => None,
        };
        match (format, si) {
            (Format::DecimalSI, Some(suffix)) => write!(f, "{n}{suffix}"),
            (_, _) if exp == 0 => write!(f, "{n}"),
            _ => write!(f, "{n}e{exp}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// Kubernetes' own examples (quantity_test.go and the API docs).
    #[test]
    fn canonical_forms_as_kubernetes_serializes_them() {
        for (input, want) in [
            ("0", "0"),
            ("0Ki", "0"),
            ("1", "1"),
            ("1.5", "1500m"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("0.9Gi", "966367641600m"),
            ("1Ki", "1Ki"),
            ("1024", "1024"),
            ("1024Ki", "1Mi"),
            ("1.5Ki", "1536"),
            ("1536Ki", "1536Ki"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("0.1m", "100u"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1e-3", "1e-3"),
            ("12e6", "12e6"),
            ("1000000", "1M"),
            ("1G", "1G"),
            ("128Mi", "128Mi"),
            ("1Pi", "1Pi"),
            ("1Ei", "1Ei"),
            ("-1", "-1"),
            ("-100m", "-100m"),
            ("+5", "5"),
            ("1n", "1n"),
            ("0.1n", "1n"),
            ("0.30000000000000004", "300000001n"),
            ("5.", "5"),
            (".5", "500m"),
            ("1000E", "1e21"),
            ("0.5Ki", "512"),
        ] {
            assert_eq!(q(input).to_string(), want, "{input}");
        }
    }

    #[test]
    fn values_round_up_away_from_zero() {
        assert_eq!(q("500m").value(), 1);
        assert_eq!(q("1.5").value(), 2);
        assert_eq!(q("-1.5").value(), -2);
        assert_eq!(q("1Pi").value(), 1 << 50);
        assert_eq!(q("1E").value(), 1_000_000_000_000_000_000);
        assert_eq!(q("128Mi").value(), 128 << 20);
        assert_eq!(q("1e6").value(), 1_000_000);
        assert_eq!(q("0.1m").milli_value(), 1);
        assert_eq!(q("250m").milli_value(), 250);
        assert_eq!(q("2").milli_value(), 2000);
        assert_eq!(q("1n").milli_value(), 1);
        // Binary quantities stop at the largest int64.
        assert_eq!(q("16Ei").value(), i64::MAX as i128);
    }

    #[test]
    fn errors_are_kubernetes_own() {
        use QuantityError::*;
        for (input, want) in [
            ("", FormatWrong),
            ("abc", FormatWrong),
            ("1..2", FormatWrong),
            ("1.2.3", FormatWrong),
            ("1x", FormatWrong),
            ("1Mb", FormatWrong),
            ("1 Mi", FormatWrong),
            (" 1", FormatWrong),
            ("1e", Suffix),
            ("1e+", Suffix),
            ("1ee3", Suffix),
            ("1ki", Suffix),
            ("1Kix", FormatWrong),
            ("1mi", Suffix),
        ] {
            assert_eq!(Quantity::parse(input), Err(want), "{input:?}");
        }
        // Kubernetes' parser takes these for zero (and `1.` for one).
        for zero in [".", "+", "-", "Mi", "0.0", "-0"] {
            assert!(q(zero).is_zero(), "{zero}");
        }
        assert_eq!(q("1.").to_string(), "1");
        assert_eq!(
            FormatWrong.to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn comparison_and_arithmetic_ignore_the_format() {
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1"), q("1000m"));
        assert!(q("100m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        let sum = q("100m") + q("1.9");
        assert_eq!(sum.to_string(), "2");
        assert_eq!((Quantity::ZERO + q("1Ki")).to_string(), "1Ki");
        assert_eq!((q("1Gi") - q("512Mi")).to_string(), "512Mi");
        assert_eq!(
            Quantity::from_milli(1500, Format::DecimalSI).to_string(),
            "1500m"
        );
        assert_eq!(Quantity::new(2048, Format::BinarySI).to_string(), "2Ki");
    }
}
