//! Kubernetes resource quantities as exact thousandths, for the scheduler's and validation's
//! sums (the rules themselves are `tinykube_machinery::quantity`).

use tinykube_machinery::Quantity;

/// A quantity in thousandths of its unit, rounded up (`100m` → 100, `2` → 2000, `1Ki` →
/// 1_024_000), or Kubernetes' error for text that is no quantity.
pub fn parse_milli(s: &str) -> Result<i128, String> {
    Quantity::parse(s)
        .map(|q| q.milli_value())
        .map_err(|e| e.to_string())
}
