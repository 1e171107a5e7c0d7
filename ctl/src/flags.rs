//! Flag values as kubectl parses them, with its error wording.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::client::Res;

/// A duration flag as pflag parses it (Go's time.ParseDuration), with kubectl's error wording.
pub fn duration(flag: &str, value: &str) -> Res<Duration> {
    tinykube_machinery::duration::parse(value).map_err(|e| {
        format!("error: invalid argument \"{value}\" for \"--{flag}\" flag: {e}").into()
    })
}

/// `k1=v1,k2=v2` (`run --labels`).
pub fn pairs(s: &str) -> Res<BTreeMap<String, String>> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("error: invalid label spec: {p}").into())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_pflag_takes_them() {
        assert_eq!(duration("timeout", "0"), Ok(Duration::ZERO));
        assert_eq!(duration("timeout", "1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            duration("timeout", "5").unwrap_err().to_string(),
            "error: invalid argument \"5\" for \"--timeout\" flag: time: missing unit in duration \"5\""
        );
    }

    #[test]
    fn label_pairs() {
        assert_eq!(
            pairs("a=1,b=").unwrap(),
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), "".into())])
        );
        assert_eq!(
            pairs("a").unwrap_err().to_string(),
            "error: invalid label spec: a"
        );
    }
}
