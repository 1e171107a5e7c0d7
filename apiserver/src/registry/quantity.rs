//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1e3`) as exact thousandths.

/// Parses a quantity into thousandths of its unit (`100m` → 100, `2` → 2000, `1Ki` → 1_024_000).
pub fn parse_milli(s: &str) -> Result<i128, String> {
    let err = || {
        format!("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (got {s:?})")
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(err());
    }
    let (sign, rest) = match s.as_bytes()[0] {
        b'-' => (-1i128, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(err());
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    // value = digits * 10^-frac_len, kept as (mantissa, exponent10) until the suffix applies.
    let digits = format!("{int_part}{frac_part}");
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| err())?
    };
    let mut exp10: i32 = -(frac_part.len() as i32);
    let mut mult: i128 = 1;
    match suffix {
        "" => {}
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => mult = 1 << 10,
        "Mi" => mult = 1 << 20,
        "Gi" => mult = 1 << 30,
        "Ti" => mult = 1 << 40,
        "Pi" => mult = 1 << 50,
        "Ei" => mult = 1 << 60,
        e if e.starts_with(['e', 'E']) => {
            exp10 += e[1..].parse::<i32>().map_err(|_| err())?;
        }
        _ => return Err(err()),
    }
    // Thousandths: shift by 3 more, rounding up what is finer than a thousandth.
    exp10 += 3;
    let mut value = mantissa.checked_mul(mult).ok_or_else(err)?;
    if exp10 >= 0 {
        for _ in 0..exp10 {
            value = value.checked_mul(10).ok_or_else(err)?;
        }
    } else {
        let div = 10i128.checked_pow((-exp10) as u32).ok_or_else(err)?;
        value = (value + div - 1) / div;
    }
    Ok(sign * value)
}

#[cfg(test)]
mod tests {
    use super::parse_milli;

    #[test]
    fn parses_kubernetes_quantities() {
        for (s, want) in [
            ("100m", 100),
            ("1", 1000),
            ("1.5", 1500),
            ("0.5", 500),
            ("2k", 2_000_000),
            ("1Ki", 1_024_000),
            ("128Mi", 128 * 1024 * 1024 * 1000),
            ("1e3", 1_000_000),
            ("0.1m", 1),
            ("-1", -1000),
        ] {
            assert_eq!(parse_milli(s).unwrap(), want, "{s}");
        }
        for bad in ["", "abc", "1x", "1..2", "Mi"] {
            assert!(parse_milli(bad).is_err(), "{bad}");
        }
    }
}
