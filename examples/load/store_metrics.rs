//! The store's own histograms from the server's `/metrics` (served to loopback clients), read
//! before and after a window: how long writes waited for their durable answer (the writer's
//! queue, applying the batch and its commit), how long each commit took, and how many writes each
//! held. They split a delivery latency into the store's part and the rest (sockets, the hub, the
//! load tool itself).

use serde_json::{Value, json};

const WRITE_WAIT: &str = "chinwag_store_write_wait_seconds";
const COMMIT: &str = "chinwag_store_commit_seconds";
const BATCH: &str = "chinwag_store_commit_batch_size";

/// One Prometheus histogram: cumulative bucket counts by upper bound, sum and count.
#[derive(Clone, Debug, Default, PartialEq)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Histogram {
    /// `name`'s histogram in a `/metrics` text.
    fn parse(text: &str, name: &str) -> Histogram {
        let mut h = Histogram::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(name) else { continue };
            let value = || rest.split_whitespace().last().and_then(|v| v.parse::<f64>().ok());
            if rest.starts_with("_sum ") {
                h.sum = value().unwrap_or(0.0);
            } else if rest.starts_with("_count ") {
                h.count = value().unwrap_or(0.0);
            } else if let Some(le) = rest.strip_prefix("_bucket{le=\"").and_then(|r| r.split('"').next()) {
                let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
                h.buckets.push((bound, value().unwrap_or(0.0)));
            }
        }
        h
    }

    /// What was observed after `before` (the same histogram, read earlier).
    fn since(&self, before: &Histogram) -> Histogram {
        // Cumulative: what `before` had at or below this bound.
        let earlier = |bound: f64| before.buckets.iter().filter(|(b, _)| *b <= bound).map(|(_, n)| *n).fold(0.0, f64::max);
        Histogram {
            buckets: self.buckets.iter().map(|(b, n)| (*b, n - earlier(*b))).collect(),
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// The upper bound of the bucket holding quantile `q` (the histogram's resolution: its
    /// buckets double), `None` when nothing was observed.
    fn quantile_at_most(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        self.buckets.iter().find(|(_, n)| *n >= q * self.count).map(|(b, _)| *b)
    }

    fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }
}

/// The three store histograms at one moment.
#[derive(Clone, Debug, Default)]
pub struct StoreMetrics {
    write_wait: Histogram,
    commit: Histogram,
    batch: Histogram,
}

/// Reads them; `None` if `/metrics` cannot be read (an `--addr` server not on loopback).
pub async fn read(http: &reqwest::Client, base: &str) -> Option<StoreMetrics> {
    let text = http.get(format!("{base}/metrics")).send().await.ok()?.text().await.ok()?;
    Some(parse(&text))
}

fn parse(text: &str) -> StoreMetrics {
    StoreMetrics {
        write_wait: Histogram::parse(text, WRITE_WAIT),
        commit: Histogram::parse(text, COMMIT),
        batch: Histogram::parse(text, BATCH),
    }
}

fn ms(seconds: Option<f64>) -> Value {
    seconds.filter(|s| s.is_finite()).map_or(Value::Null, |s| json!((s * 1e5).round() / 100.0))
}

impl StoreMetrics {
    /// What happened between `before` and `self`, as the report shows it. Quantiles are bucket
    /// bounds: "p99 at most 1.6 ms".
    pub fn json_since(&self, before: &StoreMetrics) -> Value {
        let (wait, commit, batch) =
            (self.write_wait.since(&before.write_wait), self.commit.since(&before.commit), self.batch.since(&before.batch));
        json!({
            "writes": wait.count,
            "write_wait_ms": {"mean": ms(wait.mean()), "p50_at_most": ms(wait.quantile_at_most(0.5)), "p99_at_most": ms(wait.quantile_at_most(0.99))},
            "commits": commit.count,
            "commit_ms": {"mean": ms(commit.mean()), "p50_at_most": ms(commit.quantile_at_most(0.5)), "p99_at_most": ms(commit.quantile_at_most(0.99))},
            "writes_per_commit_mean": batch.mean().map(|m| (m * 10.0).round() / 10.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "chinwag_store_commit_seconds_sum 0.5\nchinwag_store_commit_seconds_count 10\n\
        chinwag_store_commit_seconds_bucket{le=\"0.0001\"} 0\nchinwag_store_commit_seconds_bucket{le=\"0.0002\"} 10\n\
        chinwag_store_commit_seconds_bucket{le=\"+Inf\"} 10\n";
    const AFTER: &str = "chinwag_store_commit_seconds_sum 1.5\nchinwag_store_commit_seconds_count 110\n\
        chinwag_store_commit_seconds_bucket{le=\"0.0001\"} 0\nchinwag_store_commit_seconds_bucket{le=\"0.0002\"} 60\n\
        chinwag_store_commit_seconds_bucket{le=\"0.0004\"} 108\nchinwag_store_commit_seconds_bucket{le=\"+Inf\"} 110\n\
        chinwag_store_commit_seconds_countx 3\n";

    #[test]
    fn the_window_counts_only_what_was_observed_in_it() {
        let (a, b) = (parse(BEFORE), parse(AFTER));
        let h = b.commit.since(&a.commit);
        assert_eq!(h.count, 100.0);
        assert_eq!(h.mean(), Some(0.01));
        // 50 of the 100 within 0.2 ms, 98 within 0.4 ms, the last 2 beyond.
        assert_eq!(h.quantile_at_most(0.5), Some(0.0002));
        assert_eq!(h.quantile_at_most(0.98), Some(0.0004));
        assert_eq!(h.quantile_at_most(0.99), Some(f64::INFINITY));
        assert_eq!(parse("").commit.quantile_at_most(0.5), None);
        let report = b.json_since(&a);
        assert_eq!(report["commit_ms"]["p50_at_most"], json!(0.2));
        assert_eq!(report["commit_ms"]["p99_at_most"], Value::Null);
    }
}
