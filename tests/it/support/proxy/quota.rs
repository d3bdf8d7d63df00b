//! AWS's request quotas, which moto does not enforce: one token bucket per API (per account and
//! Region on AWS), refilling at its rate and holding at most one second of it (the burst). A
//! request that finds no token gets AWS's own throttling answer and never reaches moto. The
//! fleet benchmark scales the real quotas down; tests may set any rate.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

pub(super) struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    stamp: Instant,
}

impl Bucket {
    pub(super) fn new(rate: f64) -> Self {
        let capacity = rate.max(1.0);
        Bucket {
            rate,
            capacity,
            tokens: capacity,
            stamp: Instant::now(),
        }
    }

    pub(super) fn rate(&self) -> f64 {
        self.rate
    }

    pub(super) fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.stamp).as_secs_f64() * self.rate;
        self.tokens = self.capacity.min(self.tokens + refill);
        self.stamp = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What passed and what was throttled, per action, and the passed calls per second since the
/// first call (where a bucket sat idle).
#[derive(Default)]
pub(super) struct Traffic {
    counts: BTreeMap<String, (u64, u64)>,
    timeline: BTreeMap<String, Vec<u64>>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Traffic {
    pub(super) fn record(&mut self, action: &str, throttled: bool) {
        let now = Instant::now();
        let first = *self.first.get_or_insert(now);
        self.last = Some(now);
        let c = self.counts.entry(action.to_string()).or_default();
        if throttled {
            c.1 += 1;
            return;
        }
        c.0 += 1;
        let second = now.duration_since(first).as_secs() as usize;
        let line = self.timeline.entry(action.to_string()).or_default();
        if line.len() <= second {
            line.resize(second + 1, 0);
        }
        line[second] += 1;
    }

    /// `{"rates", "actions": {A: {"forwarded", "throttled"}}, "active_seconds", "timeline"}`.
    pub(super) fn stats(&self, buckets: &BTreeMap<String, Bucket>) -> Value {
        let actions: serde_json::Map<String, Value> = self
            .counts
            .iter()
            .map(|(a, (f, t))| (a.clone(), json!({ "forwarded": f, "throttled": t })))
            .collect();
        let rates: serde_json::Map<String, Value> = buckets
            .iter()
            .map(|(k, b)| (k.clone(), json!(b.rate)))
            .collect();
        let span = match (self.first, self.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        json!({
            "rates": rates,
            "actions": actions,
            "active_seconds": span,
            "timeline": self.timeline,
        })
    }
}
