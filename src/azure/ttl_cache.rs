//! A small keyed cache whose entries expire after a fixed time, for Azure reads that many
//! reconciles share (an account's model catalog, a subscription's quota usage in a region).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            entries: Default::default(),
        }
    }

    /// The value for `key` if it is younger than the TTL.
    pub fn get(&self, key: &str) -> Option<V> {
        self.entries
            .lock()
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: &str, value: V) {
        let mut e = self.entries.lock();
        let ttl = self.ttl;
        e.retain(|_, (at, _)| at.elapsed() < ttl);
        e.insert(key.to_string(), (Instant::now(), value));
    }

    pub fn remove(&self, key: &str) {
        self.entries.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire_and_can_be_dropped() {
        let c = TtlCache::new(Duration::from_secs(60));
        assert_eq!(c.get("a"), None);
        c.put("a", 1);
        assert_eq!(c.get("a"), Some(1));
        c.remove("a");
        assert_eq!(c.get("a"), None);
        let short = TtlCache::new(Duration::ZERO);
        short.put("a", 1);
        assert_eq!(short.get("a"), None, "expired");
    }
}
