//! A mergeable percentile sketch of per-second byte counts: DDSketch's
//! logarithmic buckets with a fixed accuracy, so any two sketches merge by
//! adding counts and a merge of minutes into an hour is exact (the hour's
//! sketch is the one its seconds would have built).
//!
//! Why this shape: one-minute averages hide bursts, and p95 over a month must
//! come from the minutes or hours kept, not from seconds long deleted. A value
//! `x` falls in bucket `k = ceil(log_γ x)` with `γ = (1 + α) / (1 − α)`; the
//! bucket's representative `2γ^k / (γ + 1)` is within relative error `α` of
//! every value in it, so a quantile read from the sketch is within `α` of the
//! exact quantile of the values added (nearest rank). Buckets are fixed, so a
//! value can also be taken out again exactly (a second whose total grew when
//! a late counter arrived).
//!
//! Only positive values are kept: a second without traffic is a zero, and
//! zeros are given when reading, as the number of seconds the range covers
//! beyond the sketch's count (agents send no counters for idle seconds).

use std::cmp::Ordering;

/// Relative accuracy α of every quantile (1 %).
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Highest bucket: the key of `u64::MAX` (values above 2^53 do not occur;
/// the store clamps counters there).
pub const MAX_KEY: u16 = 2218;

/// Encoding version byte; a new layout gets a new number.
const FORMAT: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SketchError {
    #[error("sketch is empty (no format byte)")]
    Empty,
    #[error("sketch format {0} is not one this code reads")]
    Format(u8),
    #[error("sketch ends inside a number at byte {0}")]
    Truncated(usize),
    #[error("sketch number at byte {0} is too long")]
    Overlong(usize),
    #[error("sketch bucket {key} at byte {at} is out of order or above {MAX_KEY}")]
    Key { key: u64, at: usize },
    #[error("sketch bucket {key} has a zero count")]
    ZeroCount { key: u16 },
    #[error("sketch has {0} trailing bytes")]
    Trailing(usize),
}

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

fn ln_gamma() -> f64 {
    gamma().ln()
}

/// The bucket of a positive value.
pub fn key(value: u64) -> u16 {
    let k = ((value.max(1) as f64).ln() / ln_gamma()).ceil();
    // Non-negative (ln 1 = 0) and at most MAX_KEY for any u64.
    k.clamp(0.0, f64::from(MAX_KEY)) as u16
}

/// The value a bucket stands for: within α of everything in it.
pub fn representative(key: u16) -> f64 {
    let g = gamma();
    2.0 * g.powi(i32::from(key)) / (g + 1.0)
}

/// Positive values by bucket: (key, count), keys strictly increasing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketch {
    bins: Vec<(u16, u64)>,
    count: u64,
}

impl Sketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Values added (zeros are not).
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Buckets in use: what the encoding's size grows with.
    pub fn buckets(&self) -> usize {
        self.bins.len()
    }

    /// Add `value` once; a zero is not kept (see the module comment).
    pub fn add(&mut self, value: u64) {
        if value > 0 {
            self.add_key(key(value), 1);
        }
    }

    /// Take one `value` out again (the second's total changed). False when
    /// no value of its bucket is in the sketch: then nothing changes.
    pub fn remove(&mut self, value: u64) -> bool {
        if value == 0 {
            return true;
        }
        let k = key(value);
        match self.bins.binary_search_by_key(&k, |b| b.0) {
            Ok(i) => {
                self.bins[i].1 -= 1;
                if self.bins[i].1 == 0 {
                    self.bins.remove(i);
                }
                self.count -= 1;
                true
            }
            Err(_) => false,
        }
    }

    fn add_key(&mut self, k: u16, n: u64) {
        match self.bins.binary_search_by_key(&k, |b| b.0) {
            Ok(i) => self.bins[i].1 = self.bins[i].1.saturating_add(n),
            Err(i) => self.bins.insert(i, (k, n)),
        }
        self.count = self.count.saturating_add(n);
    }

    /// Add every value of `other`: the result is the sketch of both sets.
    pub fn merge(&mut self, other: &Sketch) {
        if other.bins.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.bins.len() + other.bins.len());
        let (mut a, mut b) = (self.bins.iter().peekable(), other.bins.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                    Ordering::Less => a.next().copied(),
                    Ordering::Greater => b.next().copied(),
                    Ordering::Equal => {
                        let (x, y) = (a.next(), b.next());
                        x.zip(y).map(|(x, y)| (x.0, x.1.saturating_add(y.1)))
                    }
                },
                (Some(_), None) => a.next().copied(),
                (None, Some(_)) => b.next().copied(),
                (None, None) => break,
            };
            out.extend(next);
        }
        self.bins = out;
        self.count = self.count.saturating_add(other.count);
    }

    /// The `q` quantile (0 < q ≤ 1, nearest rank) of `total` values: the
    /// sketch's, and `total − count` zeros beside them. A sketch holding
    /// more values than `total` is read over its own count.
    pub fn quantile(&self, q: f64, total: u64) -> f64 {
        let n = total.max(self.count);
        if n == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
        let zeros = n - self.count;
        if rank <= zeros {
            return 0.0;
        }
        let mut seen = zeros;
        for &(k, c) in &self.bins {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return representative(k);
            }
        }
        self.bins.last().map_or(0.0, |b| representative(b.0))
    }

    /// How many values are above `threshold`, by bucket: only values within
    /// α of the threshold can be counted on the wrong side of it.
    pub fn count_above(&self, threshold: f64) -> u64 {
        self.bins
            .iter()
            .filter(|(k, _)| representative(*k) > threshold)
            .map(|(_, c)| *c)
            .sum()
    }

    /// Compact form: format byte, bucket count, then per bucket the key's
    /// distance from the previous one and the count, as LEB128 varints (a
    /// minute of seconds is a few dozen bytes).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT);
        varint(out, self.bins.len() as u64);
        let mut prev = 0u16;
        for (i, &(k, c)) in self.bins.iter().enumerate() {
            let delta = if i == 0 { k } else { k - prev };
            varint(out, u64::from(delta));
            varint(out, c);
            prev = k;
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 3 * self.bins.len());
        self.encode(&mut out);
        out
    }

    /// Read what [`Sketch::encode`] wrote; anything else is an error, never
    /// a panic or a huge allocation.
    pub fn decode(bytes: &[u8]) -> Result<Sketch, SketchError> {
        let (&format, _) = bytes.split_first().ok_or(SketchError::Empty)?;
        if format != FORMAT {
            return Err(SketchError::Format(format));
        }
        let mut at = 1usize;
        let n = read_varint(bytes, &mut at)?;
        // Never trust the length for an allocation: at most one bin per key.
        let mut bins = Vec::with_capacity(n.min(u64::from(MAX_KEY) + 1) as usize);
        let mut count = 0u64;
        let mut prev: Option<u16> = None;
        for _ in 0..n {
            let start = at;
            let delta = read_varint(bytes, &mut at)?;
            let k = match prev {
                None => delta,
                Some(p) if delta > 0 => u64::from(p).saturating_add(delta),
                Some(_) => {
                    return Err(SketchError::Key {
                        key: delta,
                        at: start,
                    })
                }
            };
            if k > u64::from(MAX_KEY) {
                return Err(SketchError::Key { key: k, at: start });
            }
            let k = k as u16;
            let c = read_varint(bytes, &mut at)?;
            if c == 0 {
                return Err(SketchError::ZeroCount { key: k });
            }
            bins.push((k, c));
            count = count.saturating_add(c);
            prev = Some(k);
        }
        if at != bytes.len() {
            return Err(SketchError::Trailing(bytes.len() - at));
        }
        Ok(Sketch { bins, count })
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<u64, SketchError> {
    let start = *at;
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let &b = bytes.get(*at).ok_or(SketchError::Truncated(start))?;
        *at += 1;
        let bits = u64::from(b & 0x7f);
        // One spelling per number: a last byte of 0 after the first is padding.
        if (shift == 63 && bits > 1) || (shift > 0 && b == 0) {
            return Err(SketchError::Overlong(start));
        }
        v |= bits << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(SketchError::Overlong(start))
}

/// The exact nearest-rank `q` quantile of `values` plus `zeros` zeros: what
/// a sketch approximates (and what a one-second step reports as is).
pub fn exact_quantile(values: &mut [u64], zeros: u64, q: f64) -> u64 {
    let n = values.len() as u64 + zeros;
    if n == 0 {
        return 0;
    }
    let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
    if rank <= zeros {
        return 0;
    }
    let i = (rank - zeros - 1) as usize;
    let (_, v, _) = values.select_nth_unstable(i);
    *v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn max_key_is_the_key_of_the_largest_value() {
        let k = ((u64::MAX as f64).ln() / ln_gamma()).ceil() as u64;
        assert_eq!(k, u64::from(MAX_KEY));
        assert_eq!(key(u64::MAX), MAX_KEY);
        assert_eq!(key(1), 0);
    }

    #[test]
    fn representative_is_within_alpha_of_its_bucket() {
        for v in (1..5000u64).chain([1 << 20, 123_456_789, 1 << 53, u64::MAX]) {
            let r = representative(key(v));
            let err = (r - v as f64).abs() / v as f64;
            assert!(err <= RELATIVE_ACCURACY + 1e-9, "{v}: {r} off by {err}");
        }
    }

    #[test]
    fn a_burst_is_the_p95_of_a_minute_that_averages_far_lower() {
        // 2.8 Mbit/s for 4 seconds of a minute, 400 kbit/s otherwise: the
        // minute averages ~560 kbit/s; the p95 (rank 57 of 60) is the burst.
        let mut s = Sketch::new();
        let burst = 2_800_000 / 8;
        for i in 0..60 {
            s.add(if i < 4 { burst } else { 50_000 });
        }
        let p95 = s.quantile(0.95, 60);
        assert!((p95 - burst as f64).abs() <= burst as f64 * RELATIVE_ACCURACY);
        // Only the burst is over 2 Mbit/s.
        assert_eq!(s.count_above(2_000_000.0 / 8.0), 4);
        // Idle seconds are zeros: 3 busy seconds of 60 leave the p95 at 0.
        let mut t = Sketch::new();
        (0..3).for_each(|_| t.add(burst));
        assert_eq!(t.quantile(0.95, 60), 0.0);
        assert!(t.quantile(0.96, 60) > 0.0);
    }

    #[test]
    fn remove_takes_out_what_add_put_in() {
        let mut s = Sketch::new();
        s.add(10);
        s.add(1000);
        let before = s.clone();
        s.add(5000);
        assert!(s.remove(5000));
        assert_eq!(s, before);
        assert!(!s.remove(99_999_999));
        assert_eq!(s, before);
        assert!(s.remove(10) && s.remove(1000));
        assert_eq!(s, Sketch::new());
    }

    #[test]
    fn decode_refuses_what_encode_cannot_write() {
        assert_eq!(Sketch::decode(&[]), Err(SketchError::Empty));
        assert_eq!(Sketch::decode(&[9, 0]), Err(SketchError::Format(9)));
        assert_eq!(Sketch::decode(&[1, 1, 5]), Err(SketchError::Truncated(3)));
        assert_eq!(
            Sketch::decode(&[1, 2, 5, 1, 0, 1]),
            Err(SketchError::Key { key: 0, at: 4 })
        );
        assert_eq!(
            Sketch::decode(&[1, 1, 0xff, 0x7f, 1]),
            Err(SketchError::Key { key: 16383, at: 2 })
        );
        assert_eq!(
            Sketch::decode(&[1, 1, 5, 0]),
            Err(SketchError::ZeroCount { key: 5 })
        );
        assert_eq!(Sketch::decode(&[1, 0, 0]), Err(SketchError::Trailing(1)));
        assert_eq!(
            Sketch::decode(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            Err(SketchError::Overlong(1))
        );
        assert_eq!(Sketch::decode(&[1, 0]), Ok(Sketch::new()));
    }

    #[test]
    fn a_minute_encodes_in_a_few_bytes_per_second() {
        let mut s = Sketch::new();
        for i in 0..60u64 {
            s.add(100_000 + i * 9_000);
        }
        let b = s.to_bytes();
        assert!(b.len() <= 2 + 3 * 60, "{} bytes", b.len());
        assert_eq!(Sketch::decode(&b).unwrap(), s);
    }

    /// Per-second byte counts from 1 B/s to ~10 GB/s, log-uniform, so every
    /// scale of bucket is exercised.
    fn rate() -> impl Strategy<Value = u64> {
        (0.0f64..23.0).prop_map(|e| e.exp() as u64 + 1)
    }

    proptest! {
        #[test]
        fn quantiles_are_within_the_stated_relative_error(
            mut values in prop::collection::vec(rate(), 1..2000),
            zeros in 0u64..500,
            q in prop::sample::select(vec![0.5, 0.9, 0.95, 0.99, 1.0]),
        ) {
            let mut s = Sketch::new();
            values.iter().for_each(|&v| s.add(v));
            let total = values.len() as u64 + zeros;
            let exact = exact_quantile(&mut values, zeros, q) as f64;
            let est = s.quantile(q, total);
            prop_assert!(
                (est - exact).abs() <= exact * (RELATIVE_ACCURACY + 1e-9),
                "q{} exact {} estimate {}", q, exact, est
            );
        }

        #[test]
        fn merging_parts_is_the_sketch_of_the_whole(
            values in prop::collection::vec(rate(), 0..600),
            cuts in prop::collection::vec(0usize..600, 0..8),
        ) {
            let mut whole = Sketch::new();
            values.iter().for_each(|&v| whole.add(v));
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(values.len())).collect();
            cuts.push(0);
            cuts.push(values.len());
            cuts.sort_unstable();
            let mut merged = Sketch::new();
            for w in cuts.windows(2) {
                let mut part = Sketch::new();
                values[w[0]..w[1]].iter().for_each(|&v| part.add(v));
                // Through the stored form, as minutes are merged into hours.
                merged.merge(&Sketch::decode(&part.to_bytes()).unwrap());
            }
            prop_assert_eq!(merged, whole);
        }

        #[test]
        fn a_grown_value_replaced_is_the_sketch_of_the_final_values(
            steps in prop::collection::vec((0usize..30, rate()), 1..300),
        ) {
            // Seconds whose totals grow as counters arrive: remove the old
            // total, add the new one, as ingest does.
            let mut totals = [0u64; 30];
            let mut s = Sketch::new();
            for (i, add) in steps {
                let old = totals[i];
                totals[i] = old.saturating_add(add);
                prop_assert!(s.remove(old));
                s.add(totals[i]);
            }
            let mut fresh = Sketch::new();
            totals.iter().for_each(|&v| fresh.add(v));
            prop_assert_eq!(s, fresh);
        }

        #[test]
        fn decode_never_panics(
            formatted in any::<bool>(),
            mut bytes in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            if formatted {
                bytes.insert(0, FORMAT);
            }
            if let Ok(s) = Sketch::decode(&bytes) {
                prop_assert_eq!(s.to_bytes(), bytes);
            }
        }
    }
}
