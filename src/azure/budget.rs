//! The client-side ARM request budget. ARM throttles per subscription and principal with token
//! buckets (by default 250 reads refilled at 25 per second, 200 writes and 200 deletes at 10 per
//! second) and reports what is left in `x-ms-ratelimit-remaining-subscription-reads` / `-writes`
//! / `-deletes` (and the `-global-` variants). The operator keeps a bucket of its own per (subscription, principal,
//! reads|writes), paces every ARM call through it, and lowers its count to what ARM reports, so
//! in normal operation it never causes a 429. Urgent requests (writes, polls of running
//! operations, the first read of a new resource, the fresh read before a write) may use the
//! whole bucket; background reads (resync listings) leave a reserve for them and wait first.
//! (A token bucket this small is written here: the crates on offer, such as `governor`, cannot
//! take the server's remaining count as an input.)

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// ARM's documented bucket sizes and refill rates, and the reserve background reads leave.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetConfig {
    pub read_capacity: f64,
    pub reads_per_second: f64,
    pub write_capacity: f64,
    pub writes_per_second: f64,
    pub delete_capacity: f64,
    pub deletes_per_second: f64,
    /// Fraction of a bucket that only urgent requests may use.
    pub background_reserve: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            read_capacity: 250.0,
            reads_per_second: 25.0,
            write_capacity: 200.0,
            writes_per_second: 10.0,
            delete_capacity: 200.0,
            deletes_per_second: 10.0,
            background_reserve: 0.3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
    Delete,
}

impl Access {
    /// The word ARM's remaining-budget headers use.
    pub fn header_word(&self) -> &'static str {
        match self {
            Access::Read => "reads",
            Access::Write => "writes",
            Access::Delete => "deletes",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Writes, polls, first reads of new resources, fresh reads before a write.
    Urgent,
    /// Periodic resync reads.
    Background,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    /// ARM said wait (429 Retry-After): nothing is sent before this.
    blocked_until: Option<Instant>,
}

pub struct ArmBudget {
    config: BudgetConfig,
    buckets: Mutex<HashMap<(String, String, Access), Bucket>>,
}

impl ArmBudget {
    pub fn new(config: BudgetConfig) -> Self {
        ArmBudget {
            config,
            buckets: Default::default(),
        }
    }

    fn shape(&self, access: Access) -> (f64, f64) {
        match access {
            Access::Read => (self.config.read_capacity, self.config.reads_per_second),
            Access::Write => (self.config.write_capacity, self.config.writes_per_second),
            Access::Delete => (self.config.delete_capacity, self.config.deletes_per_second),
        }
    }

    /// Take a token now, or say how long to wait for one.
    fn try_take(
        &self,
        key: &(String, String, Access),
        priority: Priority,
        now: Instant,
    ) -> Result<(), Duration> {
        let (capacity, rate) = self.shape(key.2);
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: capacity,
            at: now,
            blocked_until: None,
        });
        b.tokens =
            (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(capacity);
        b.at = now;
        if let Some(until) = b.blocked_until {
            if until > now {
                return Err(until - now);
            }
            b.blocked_until = None;
        }
        let floor = match priority {
            Priority::Urgent => 1.0,
            Priority::Background => 1.0 + capacity * self.config.background_reserve,
        };
        if b.tokens >= floor {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (floor - b.tokens) / rate.max(0.001),
            ))
        }
    }

    /// Wait until the budget of (`subscription`, `principal`) allows one more request.
    pub async fn acquire(
        &self,
        subscription: &str,
        principal: &str,
        access: Access,
        priority: Priority,
    ) {
        let key = (
            subscription.to_ascii_lowercase(),
            principal.to_string(),
            access,
        );
        loop {
            match self.try_take(&key, priority, Instant::now()) {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait.max(Duration::from_millis(1))).await,
            }
        }
    }

    /// What ARM said about the bucket after a response: `remaining` from the
    /// `x-ms-ratelimit-remaining-*` headers, `throttled` with Retry-After on a 429.
    pub fn observe(
        &self,
        subscription: &str,
        principal: &str,
        access: Access,
        remaining: Option<u64>,
        throttled: Option<Duration>,
    ) {
        let key = (
            subscription.to_ascii_lowercase(),
            principal.to_string(),
            access,
        );
        let (capacity, _) = self.shape(access);
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            at: now,
            blocked_until: None,
        });
        if let Some(r) = remaining {
            b.tokens = b.tokens.min(r as f64);
        }
        if let Some(wait) = throttled {
            b.tokens = 0.0;
            b.blocked_until = Some(now + wait.max(Duration::from_secs(1)));
        }
    }
}

/// The subscription an ARM URL or path concerns (`/subscriptions/{id}/...`).
pub fn subscription_of(url_or_path: &str) -> Option<&str> {
    let i = url_or_path.to_ascii_lowercase().find("/subscriptions/")?;
    let rest = &url_or_path[i + "/subscriptions/".len()..];
    rest.split(['/', '?']).next().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(access: Access) -> (String, String, Access) {
        ("sub".into(), "me".into(), access)
    }

    #[test]
    fn a_bucket_drains_then_refills_at_its_rate() {
        let b = ArmBudget::new(BudgetConfig {
            read_capacity: 3.0,
            reads_per_second: 2.0,
            background_reserve: 0.0,
            ..Default::default()
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.try_take(&key(Access::Read), Priority::Urgent, t0).is_ok());
        }
        let wait = b
            .try_take(&key(Access::Read), Priority::Urgent, t0)
            .unwrap_err();
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert!(
            b.try_take(
                &key(Access::Read),
                Priority::Urgent,
                t0 + Duration::from_millis(500)
            )
            .is_ok()
        );
        // Writes have a bucket of their own.
        assert!(
            b.try_take(&key(Access::Write), Priority::Urgent, t0)
                .is_ok()
        );
    }

    #[test]
    fn background_reads_leave_a_reserve_for_urgent_ones() {
        let b = ArmBudget::new(BudgetConfig {
            read_capacity: 10.0,
            reads_per_second: 1.0,
            background_reserve: 0.5,
            ..Default::default()
        });
        let t0 = Instant::now();
        let mut background = 0;
        while b
            .try_take(&key(Access::Read), Priority::Background, t0)
            .is_ok()
        {
            background += 1;
        }
        assert_eq!(
            background, 5,
            "10 tokens, 5 of them reserved for urgent requests"
        );
        let mut urgent = 0;
        while b.try_take(&key(Access::Read), Priority::Urgent, t0).is_ok() {
            urgent += 1;
        }
        assert_eq!(urgent, 5);
    }

    #[test]
    fn arm_reports_lower_the_count_and_a_429_blocks() {
        let b = ArmBudget::new(BudgetConfig::default());
        let t0 = Instant::now();
        assert!(b.try_take(&key(Access::Read), Priority::Urgent, t0).is_ok());
        b.observe("SUB", "me", Access::Read, Some(0), None);
        assert!(
            b.try_take(&key(Access::Read), Priority::Urgent, Instant::now())
                .is_err(),
            "ARM says none are left (subscriptions are case-insensitive)"
        );
        b.observe(
            "sub",
            "me",
            Access::Write,
            None,
            Some(Duration::from_secs(5)),
        );
        let wait = b
            .try_take(&key(Access::Write), Priority::Urgent, Instant::now())
            .unwrap_err();
        assert!(wait > Duration::from_secs(4), "{wait:?}");
        // Other principals are not affected.
        let other = ("sub".to_string(), "you".to_string(), Access::Write);
        assert!(b.try_take(&other, Priority::Urgent, Instant::now()).is_ok());
    }

    #[test]
    fn subscriptions_from_urls() {
        assert_eq!(
            subscription_of("https://h/subscriptions/abc/resourceGroups/x?api-version=1"),
            Some("abc")
        );
        assert_eq!(subscription_of("/Subscriptions/abc"), Some("abc"));
        assert_eq!(subscription_of("https://h/providers/x"), None);
    }
}
