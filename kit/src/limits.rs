//! Rate limits by key (a player, a client address): a token bucket each, in
//! a map bounded by `max_tracked`. When the map is full, the half of the
//! buckets that were used longest ago are forgotten; a forgotten key starts
//! again with a full bucket, which is what an idle key has anyway.

use std::{collections::HashMap, hash::Hash, sync::Mutex, time::Instant};

use crate::rate::Bucket;

/// Token buckets by key (see the module's documentation).
#[derive(Debug)]
pub struct Limits<K> {
    per_second: f64,
    burst: u32,
    max: usize,
    buckets: Mutex<HashMap<K, (Bucket, Instant)>>,
}

impl<K: Hash + Eq + Clone> Limits<K> {
    /// `per_second` tokens a second per key (a fraction for "a few a
    /// minute"), at most `burst` saved up, at most `max` keys tracked.
    pub fn new(per_second: f64, burst: u32, max: usize) -> Self {
        Limits {
            per_second,
            burst,
            max: max.max(2),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; false: over its rate.
    pub fn take(&self, key: &K, now: Instant) -> bool {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.max && !map.contains_key(key) {
            forget_idlest_half(&mut map);
        }
        let (bucket, used) = map
            .entry(key.clone())
            .or_insert_with(|| (Bucket::with_rate(self.per_second, self.burst, now), now));
        *used = now;
        bucket.take(now)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().map(|m| m.len()).unwrap_or_default()
    }
}

fn forget_idlest_half<K>(map: &mut HashMap<K, (Bucket, Instant)>) {
    let mut times: Vec<Instant> = map.values().map(|(_, used)| *used).collect();
    let mid = times.len() / 2;
    let (_, cut, _) = times.select_nth_unstable(mid);
    let cut = *cut;
    map.retain(|_, (_, used)| *used > cut);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_key_over_its_rate_is_refused_and_others_are_not() {
        let limits = Limits::new(1.0, 2, 100);
        let now = Instant::now();
        assert!(limits.take(&1, now));
        assert!(limits.take(&1, now));
        assert!(!limits.take(&1, now));
        assert!(limits.take(&2, now));
        assert!(limits.take(&1, now + Duration::from_secs(1)));
    }

    #[test]
    fn the_map_stays_bounded() {
        let limits = Limits::new(1.0, 1, 10);
        let start = Instant::now();
        for i in 0..1000u32 {
            limits.take(&i, start + Duration::from_millis(u64::from(i)));
            assert!(limits.tracked() <= 10);
        }
        // The busiest recent key is still known: refused again at once.
        assert!(!limits.take(&999, start + Duration::from_millis(999)));
    }

    #[test]
    fn a_rate_below_one_a_second() {
        // 6 a minute: one every 10 s.
        let limits = Limits::new(0.1, 1, 10);
        let t0 = Instant::now();
        assert!(limits.take(&"k", t0));
        assert!(!limits.take(&"k", t0 + Duration::from_secs(9)));
        assert!(limits.take(&"k", t0 + Duration::from_secs(19)));
    }
}
