//! ARM throttling as documented in "Understand how Azure Resource Manager throttles requests"
//! (regional token buckets, 2024): per subscription, per service principal and per operation
//! type — reads 250 +25/s, writes 200 +10/s, deletes 200 +10/s — plus a global subscription
//! bucket across all principals of 15 times those limits. Every answered ARM request carries
//! the caller's remaining count in `x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}`
//! and the subscription's in `x-ms-ratelimit-remaining-subscription-global-{...}`; a request
//! over either limit gets 429 `SubscriptionRequestsThrottled` with `Retry-After`.
//! The emulator is one ARM region, so the per-region split has a single region.
use std::time::Instant;

use super::Inner;
use super::arm::arm_error;
use super::server::{Resp, with_header};

/// What a request costs: ARM counts GET/HEAD as reads, DELETE as deletes, the rest as writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum OpKind {
    Read,
    Write,
    Delete,
}

/// Principal key of the subscription-wide bucket.
const ALL_PRINCIPALS: &str = "*";

impl OpKind {
    pub fn of(method: &str) -> OpKind {
        match method {
            "GET" | "HEAD" => OpKind::Read,
            "DELETE" => OpKind::Delete,
            _ => OpKind::Write,
        }
    }

    fn word(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Delete => "delete",
        }
    }

    pub fn header(self) -> &'static str {
        match self {
            OpKind::Read => "x-ms-ratelimit-remaining-subscription-reads",
            OpKind::Write => "x-ms-ratelimit-remaining-subscription-writes",
            OpKind::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }

    pub fn global_header(self) -> &'static str {
        match self {
            OpKind::Read => "x-ms-ratelimit-remaining-subscription-global-reads",
            OpKind::Write => "x-ms-ratelimit-remaining-subscription-global-writes",
            OpKind::Delete => "x-ms-ratelimit-remaining-subscription-global-deletes",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(capacity: u32) -> Self {
        Bucket {
            tokens: capacity as f64,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, capacity: u32, refill_per_sec: u32) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * refill_per_sec as f64).min(capacity as f64);
    }

    fn left(&self) -> u32 {
        self.tokens.max(0.0).floor() as u32
    }

    /// Seconds until one token is available (0 = one is there).
    fn wait(&self, refill_per_sec: u32) -> u64 {
        if self.tokens >= 1.0 {
            0
        } else if refill_per_sec == 0 {
            60
        } else {
            ((1.0 - self.tokens) / refill_per_sec as f64)
                .ceil()
                .max(1.0) as u64
        }
    }

    /// Spends one token (after `refill`, when `wait` said one is there).
    fn spend(&mut self) {
        self.tokens -= 1.0;
    }
}

/// The remaining counts a throttled or answered request carries.
pub(crate) struct Remaining {
    kind: OpKind,
    own: u32,
    global: u32,
}

impl Remaining {
    pub fn apply(&self, resp: Resp) -> Resp {
        let resp = with_header(resp, self.kind.header(), &self.own.to_string());
        with_header(resp, self.kind.global_header(), &self.global.to_string())
    }
}

impl Inner {
    /// Charges one ARM request of `principal` (token object id) to subscription `sub`.
    /// Ok = the caller's remaining count; Err = Azure's 429.
    #[allow(clippy::result_large_err)]
    pub(crate) fn throttle(
        &self,
        sub: &str,
        principal: &str,
        kind: OpKind,
    ) -> Result<Remaining, Resp> {
        let cfg = self.config.lock().clone();
        let (cap, refill) = match kind {
            OpKind::Read => (cfg.read_capacity, cfg.read_refill_per_sec),
            OpKind::Write => (cfg.write_capacity, cfg.write_refill_per_sec),
            OpKind::Delete => (cfg.delete_capacity, cfg.delete_refill_per_sec),
        };
        let m = cfg.global_limit_multiplier.max(1);
        let (gcap, grefill) = (cap.saturating_mul(m), refill.saturating_mul(m));
        let key = sub.to_ascii_lowercase();
        let mut w = self.world.lock();
        let mut own = w
            .buckets
            .remove(&(key.clone(), principal.to_string(), kind))
            .unwrap_or_else(|| Bucket::new(cap));
        let mut all = w
            .buckets
            .remove(&(key.clone(), ALL_PRINCIPALS.to_string(), kind))
            .unwrap_or_else(|| Bucket::new(gcap));
        own.refill(cap, refill);
        all.refill(gcap, grefill);
        let wait = own.wait(refill).max(all.wait(grefill));
        if wait == 0 {
            own.spend();
            all.spend();
        }
        let remaining = Remaining {
            kind,
            own: own.left(),
            global: all.left(),
        };
        w.buckets
            .insert((key.clone(), principal.to_string(), kind), own);
        w.buckets
            .insert((key, ALL_PRINCIPALS.to_string(), kind), all);
        drop(w);
        if wait == 0 {
            return Ok(remaining);
        }
        Err({
            let r = arm_error(
                429,
                "SubscriptionRequestsThrottled",
                &format!(
                    "Number of '{}' requests for subscription '{sub}' actor '{principal}' exceeded. Please try again after '{wait}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling",
                    kind.word()
                ),
            );
            remaining.apply(with_header(r, "retry-after", &wait.to_string()))
        })
    }
}
