//! Latency histograms: lock-free recording, percentiles on demand.
//!
//! Values (nanoseconds) fall into log-linear buckets: 16 sub-buckets per
//! power of two, so a reported percentile is within 1/16 (6.25%) of the true
//! value. Recording is two relaxed atomic adds; memory is fixed
//! (`BUCKETS` counters per histogram).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Covers every `u64` value.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = msb - SUB_BITS;
    let sub = ((v >> shift) as usize) & (SUB - 1);
    ((shift + 1) as usize) * SUB + sub
}

/// The smallest value of bucket `i` (its lower bound).
fn bucket_low(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let shift = (i / SUB - 1) as u32;
    let sub = (i % SUB) as u64;
    (SUB as u64 + sub) << shift
}

/// Percentiles of a histogram at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub count: u64,
    pub mean_ns: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Times `f` and records its duration.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let t = std::time::Instant::now();
        let r = f();
        self.record(t.elapsed());
        r
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return HistogramSnapshot::default();
        }
        let max_ns = self.max_ns.load(Ordering::Relaxed);
        let at = |q: f64| -> u64 {
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_low(i).min(max_ns);
                }
            }
            max_ns
        };
        HistogramSnapshot {
            count: total,
            mean_ns: self.sum_ns.load(Ordering::Relaxed) / total,
            p50_ns: at(0.50),
            p99_ns: at(0.99),
            p999_ns: at(0.999),
            max_ns,
        }
    }
}

impl HistogramSnapshot {
    /// `name_count=.. name_p50_us=..` for the stats pragma.
    pub fn render(&self, name: &str) -> String {
        let us = |ns: u64| ns as f64 / 1000.0;
        format!(
            "{name}_count={} {name}_p50_us={:.1} {name}_p99_us={:.1} {name}_p999_us={:.1} {name}_max_us={:.1}",
            self.count,
            us(self.p50_ns),
            us(self.p99_ns),
            us(self.p999_ns),
            us(self.max_ns)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b >= last, "bucket of {v}");
            assert!(b < BUCKETS);
            assert!(bucket_low(b) <= v);
            // Within 1/16 of the value.
            assert!(v - bucket_low(b) <= v / 16, "{v} {}", bucket_low(b));
            last = b;
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 1000);
        let near = |got: u64, want_us: u64| {
            let want = want_us * 1000;
            assert!(got <= want && want - got <= want / 16, "{got} vs {want}");
        };
        near(s.p50_ns, 500);
        near(s.p99_ns, 990);
        near(s.p999_ns, 999);
        assert_eq!(s.max_ns, 1_000_000);
        assert_eq!(Histogram::default().snapshot().count, 0);
    }
}
