//! Durations as Kubernetes' Go code reads and prints them: `time.ParseDuration` for flags
//! (`--timeout=1m30s`, `--sync-period=500ms`), `time.Duration.String` for messages, and
//! `duration.HumanDuration` for ages (`5s`, `3m20s`, `2d3h`).

use std::time::Duration;

/// Why a duration did not parse, worded as Go's `time.ParseDuration`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("time: invalid duration \"{0}\"")]
    Invalid(String),
    #[error("time: missing unit in duration \"{0}\"")]
    MissingUnit(String),
    #[error("time: unknown unit \"{unit}\" in duration \"{input}\"")]
    UnknownUnit { unit: String, input: String },
    /// Go allows a sign; a `std::time::Duration` cannot be negative.
    #[error("time: negative duration \"{0}\"")]
    Negative(String),
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers, each with an optional fraction
/// and a unit (`300ms`, `1.5h`, `2h45m`); `0` alone needs no unit. Fractions below a
/// nanosecond are dropped, as Go drops them.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(s.to_string());
    let mut rest = s;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let whole_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let whole = &rest[..whole_end];
        rest = &rest[whole_end..];
        let mut frac = "";
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            frac = &r[..end];
            rest = &r[end..];
        }
        if whole.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        let unit_end = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(s.to_string()));
        }
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_string(),
            input: s.to_string(),
        })?;
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| invalid())?
        };
        let mut part = whole.checked_mul(scale).ok_or_else(invalid)?;
        // The fraction as Go adds it: the digits that fit an int64, scaled in floating
        // point and truncated (so `0.3333333333333333333h` is 20m exactly, as in Go).
        if !frac.is_empty() {
            let (mut digits, mut div) = (0u64, 1f64);
            for c in frac.bytes() {
                match digits
                    .checked_mul(10)
                    .and_then(|x| x.checked_add(u64::from(c - b'0')))
                {
                    Some(x) if x <= i64::MAX as u64 => {
                        digits = x;
                        div *= 10.0;
                    }
                    _ => break,
                }
            }
            part += (digits as f64 * (scale as f64 / div)) as u128;
        }
        total = total.checked_add(part).ok_or_else(invalid)?;
    }
    // Go's durations stop at 2^63-1 ns.
    if total > i64::MAX as u128 {
        return Err(invalid());
    }
    if negative && total > 0 {
        return Err(DurationError::Negative(s.to_string()));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// `frac` nanoseconds-of-a-unit as Go prints a fraction: `.` and the digits without trailing
/// zeros, or nothing.
fn fraction(value: u128, digits: u32) -> String {
    let s = format!("{value:0width$}", width = digits as usize);
    let s = s.trim_end_matches('0');
    if s.is_empty() {
        String::new()
    } else {
        format!(".{s}")
    }
}

/// Go's `time.Duration.String`: `0s`, `1.5µs`, `43ms`, `1.5s`, `2m3.004s`, `1h0m0s`.
pub fn format(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}{}\u{b5}s", ns / 1_000, fraction(ns % 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}{}ms", ns / 1_000_000, fraction(ns % 1_000_000, 6));
    }
    let secs = ns / 1_000_000_000;
    let s = format!("{}{}s", secs % 60, fraction(ns % 1_000_000_000, 9));
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

/// Kubernetes' `duration.HumanDuration`, how `kubectl get` and `describe` print ages:
/// `5s`, `3m20s`, `15m`, `5h`, `2d3h`, `3y`; `<invalid>` for a time well in the future.
pub fn human(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let with = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    let minutes = seconds / 60;
    if minutes < 10 {
        return with(minutes, "m", seconds % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return with(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return with(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's time package tests (parseDurationTests), the ones a Duration can hold.
    #[test]
    fn parses_as_go_does() {
        let ms = Duration::from_millis;
        for (input, want) in [
            ("0", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("30s", Duration::from_secs(30)),
            ("1478s", Duration::from_secs(1478)),
            ("+5s", Duration::from_secs(5)),
            ("-0", Duration::ZERO),
            ("5.0s", Duration::from_secs(5)),
            ("5.6s", ms(5600)),
            ("5.s", Duration::from_secs(5)),
            (".5s", ms(500)),
            ("1.0s", Duration::from_secs(1)),
            ("1.00s", Duration::from_secs(1)),
            ("1.004s", ms(1004)),
            ("100.00100s", ms(100_001)),
            ("10ns", Duration::from_nanos(10)),
            ("11us", Duration::from_micros(11)),
            ("12\u{b5}s", Duration::from_micros(12)),
            ("12\u{3bc}s", Duration::from_micros(12)),
            ("13ms", ms(13)),
            ("14s", Duration::from_secs(14)),
            ("15m", Duration::from_secs(15 * 60)),
            ("16h", Duration::from_secs(16 * 3600)),
            ("3h30m", Duration::from_secs(3 * 3600 + 30 * 60)),
            ("10.5s4m", Duration::from_secs(4 * 60 + 10) + ms(500)),
            ("1h2m3s4ms5us6ns", Duration::new(3723, 4_005_006)),
            (
                "39h9m14.425s",
                Duration::from_secs(39 * 3600 + 9 * 60 + 14) + ms(425),
            ),
            ("52763797000ns", Duration::from_nanos(52_763_797_000)),
            (
                "0.3333333333333333333h",
                Duration::from_nanos(20 * 60 * 1_000_000_000),
            ),
            (
                "9007199254740993ns",
                Duration::from_nanos(9_007_199_254_740_993),
            ),
            (
                "9223372036854775807ns",
                Duration::from_nanos(i64::MAX as u64),
            ),
            ("0.100000000000000000000h", Duration::from_secs(360)),
        ] {
            assert_eq!(parse(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn errors_are_worded_as_go_words_them() {
        for (input, want) in [
            ("", "time: invalid duration \"\""),
            ("3", "time: missing unit in duration \"3\""),
            ("-", "time: invalid duration \"-\""),
            ("s", "time: invalid duration \"s\""),
            (".", "time: invalid duration \".\""),
            ("-.", "time: invalid duration \"-.\""),
            (".s", "time: invalid duration \".s\""),
            ("+.s", "time: invalid duration \"+.s\""),
            ("1d", "time: unknown unit \"d\" in duration \"1d\""),
            ("3000000h", "time: invalid duration \"3000000h\""),
            (
                "9223372036854775808ns",
                "time: invalid duration \"9223372036854775808ns\"",
            ),
            ("-1s", "time: negative duration \"-1s\""),
        ] {
            assert_eq!(parse(input).unwrap_err().to_string(), want, "{input:?}");
        }
    }

    /// Go's durationTests (time_test.go).
    #[test]
    fn prints_as_go_does() {
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1100), "1.1\u{b5}s"),
            (Duration::from_micros(2200), "2.2ms"),
            (Duration::from_millis(3300), "3.3s"),
            (Duration::from_secs(4 * 60 + 5), "4m5s"),
            (Duration::from_millis(4 * 60_000 + 5001), "4m5.001s"),
            (
                Duration::from_millis(5 * 3_600_000 + 6 * 60_000 + 7001),
                "5h6m7.001s",
            ),
            (
                Duration::from_nanos(8 * 60_000_000_000 + 1),
                "8m0.000000001s",
            ),
            (
                Duration::from_nanos(i64::MAX as u64),
                "2562047h47m16.854775807s",
            ),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(43), "43ms"),
        ] {
            assert_eq!(format(d), want);
        }
    }

    /// Kubernetes' duration_test.go (TestHumanDuration).
    #[test]
    fn ages_as_kubectl_prints_them() {
        let m = 60;
        let h = 3600;
        let d = 24 * h;
        let y = 365 * d;
        for (secs, want) in [
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (1, "1s"),
            (59, "59s"),
            (60, "60s"),
            (119, "119s"),
            (2 * m, "2m"),
            (2 * m + 1, "2m1s"),
            (9 * m + 59, "9m59s"),
            (10 * m, "10m"),
            (179 * m, "179m"),
            (3 * h, "3h"),
            (3 * h + 5 * m, "3h5m"),
            (8 * h, "8h"),
            (47 * h, "47h"),
            (48 * h, "2d"),
            (2 * d + 3 * h, "2d3h"),
            (8 * d, "8d"),
            (729 * d, "729d"),
            (2 * y, "2y"),
            (2 * y + 5 * d, "2y5d"),
            (8 * y, "8y"),
            (100 * y, "100y"),
        ] {
            assert_eq!(human(secs), want, "{secs}");
        }
    }
}
