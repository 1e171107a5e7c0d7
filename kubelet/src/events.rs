//! What the kubelet does with an event before it writes it, as client-go's event correlator
//! does: the same event again (same object, field, type, reason and message) counts up the
//! first one (`kubectl describe` shows `(x12 over 3m)`); and once an object has had 10
//! events of one type and reason with different messages within 10 minutes, the next ones
//! are folded into a single event, `(combined from similar events): <message>`, counted up
//! in turn (the aggregator). Pure: the caller writes what it decides.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How many distinct events are remembered for counting repeats (client-go's LRU holds
/// 4096).
const CACHE: usize = 4096;
/// Distinct messages of one kind of event before they are combined (client-go's
/// maxEvents), and the window they count in (maxIntervalInSeconds).
const MAX_SIMILAR: usize = 10;
const SIMILAR_WINDOW: Duration = Duration::from_secs(600);
pub const COMBINED: &str = "(combined from similar events): ";

/// What to write for one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A new event named `name` with `message`.
    New { name: String, message: String },
    /// Event `name`, written before, now counts `count`, with `message`.
    Again {
        name: String,
        count: u32,
        message: String,
    },
}

/// One event as the correlator tells it from others.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// The object: its namespace and UID.
    pub object: &'a str,
    /// The container field (`spec.containers{c}`), if any.
    pub field: &'a str,
    pub type_: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
}

#[derive(Default)]
pub struct Correlator {
    /// Dedup key → (event name, count).
    seen: HashMap<String, (String, u32)>,
    /// Aggregate key (object, type, reason) → distinct messages and when the last came.
    similar: HashMap<String, (HashSet<String>, Instant)>,
}

impl Correlator {
    /// Decides for event `e`; `fresh` is the name a new event gets.
    pub fn observe(&mut self, e: Event<'_>, fresh: String, now: Instant) -> Decision {
        let Event {
            object,
            field,
            type_,
            reason,
            message,
        } = e;
        let aggregate = format!("{object}\0{type_}\0{reason}");
        if self.similar.len() >= CACHE && !self.similar.contains_key(&aggregate) {
            self.similar.clear();
        }
        let record = self
            .similar
            .entry(aggregate.clone())
            .or_insert_with(|| (HashSet::new(), now));
        if now.duration_since(record.1) > SIMILAR_WINDOW {
            record.0.clear();
        }
        record.0.insert(message.to_string());
        record.1 = now;
        let (key, message) = if record.0.len() < MAX_SIMILAR {
            (
                format!("{object}\0{field}\0{type_}\0{reason}\0{message}"),
                message.to_string(),
            )
        } else {
            // Do not grow the set past the threshold (client-go pops one).
            let any = record.0.iter().next().cloned();
            if let Some(m) = any.filter(|m| m != message) {
                record.0.remove(&m);
            }
            (
                format!("{aggregate}\0combined"),
                format!("{COMBINED}{message}"),
            )
        };
        if self.seen.len() >= CACHE && !self.seen.contains_key(&key) {
            self.seen.clear();
        }
        match self.seen.get_mut(&key) {
            Some((name, count)) => {
                *count += 1;
                Decision::Again {
                    name: name.clone(),
                    count: *count,
                    message,
                }
            }
            None => {
                self.seen.insert(key, (fresh.clone(), 1));
                Decision::New {
                    name: fresh,
                    message,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_count_up_and_similar_ones_combine() {
        let mut c = Correlator::default();
        let t = Instant::now();
        let mut n = 0;
        fn event(msg: &str) -> Event<'_> {
            Event {
                object: "ns\0uid",
                field: "spec.containers{c}",
                type_: "Warning",
                reason: "Unhealthy",
                message: msg,
            }
        }
        let mut obs = |c: &mut Correlator, msg: &str, at: Instant| {
            n += 1;
            c.observe(event(msg), format!("e{n}"), at)
        };
        assert_eq!(
            obs(&mut c, "m0", t),
            Decision::New {
                name: "e1".into(),
                message: "m0".into()
            }
        );
        assert_eq!(
            obs(&mut c, "m0", t),
            Decision::Again {
                name: "e1".into(),
                count: 2,
                message: "m0".into()
            }
        );
        // Nine distinct messages are nine events; the tenth distinct one is combined, and
        // so is every other after it, into one event counted up.
        for i in 1..9 {
            assert!(matches!(
                obs(&mut c, &format!("m{i}"), t),
                Decision::New { .. }
            ));
        }
        assert_eq!(
            obs(&mut c, "m9", t),
            Decision::New {
                name: "e11".into(),
                message: format!("{COMBINED}m9")
            }
        );
        assert_eq!(
            obs(&mut c, "m10", t),
            Decision::Again {
                name: "e11".into(),
                count: 2,
                message: format!("{COMBINED}m10")
            }
        );
        // Ten minutes of quiet start over.
        let later = t + SIMILAR_WINDOW + Duration::from_secs(1);
        assert!(matches!(
            obs(&mut c, "m11", later),
            Decision::New { message, .. } if message == "m11"
        ));
        // Another reason is another count.
        assert!(matches!(
            c.observe(
                Event {
                    reason: "Pulled",
                    type_: "Normal",
                    ..event("m0")
                },
                "x".into(),
                t
            ),
            Decision::New { .. }
        ));
    }
}
