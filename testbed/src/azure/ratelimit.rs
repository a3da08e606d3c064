//! ARM throttling: token buckets per (subscription, principal) for reads and writes,
//! refilled continuously (defaults as ARM: reads 250 +25/s, writes 200 +10/s).
use std::time::Instant;

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

    /// Takes one token; Ok(remaining) or Err(seconds until one is available).
    pub fn take(&mut self, capacity: u32, refill_per_sec: u32) -> Result<u32, u64> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * refill_per_sec as f64).min(capacity as f64);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(self.tokens.floor() as u32)
        } else if refill_per_sec == 0 {
            Err(60)
        } else {
            let wait = (1.0 - self.tokens) / refill_per_sec as f64;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}
