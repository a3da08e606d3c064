//! When to poll an Azure long-running operation. Azure's positive `Retry-After` is honoured;
//! otherwise the first poll is scheduled at the learned duration of that kind of operation on
//! that account (deployment writes on one account take about as long as each other), and any
//! further polls follow at a twentieth of it. That keeps polls near one per operation — reads count
//! against ARM's per-subscription limit — and hands the account's single write slot on within a
//! few percent of the operation's end.
//!
//! The estimate moves both ways: an operation still running at the first poll raises it to the
//! time the operation was seen finished; one already finished at the first poll lowers it by a
//! small step, so it settles just above the real duration.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Shrink factor after an operation that was already done at its first poll.
const DECAY: f64 = 0.93;
/// Further polls of a running operation are this fraction of the estimate apart.
const FOLLOW_UP_FRACTION: f64 = 0.05;

struct Running {
    key: String,
    started: Instant,
    polls_in_progress: u32,
    /// The next poll is not due before this.
    due: Instant,
}

pub struct PollClock {
    /// Learned duration per `account|kind`.
    estimates: Mutex<HashMap<String, Duration>>,
    /// Operations in flight, per owner (`namespace/name`).
    running: Mutex<HashMap<String, Running>>,
    /// Estimate with no history (the configured poll interval).
    initial: Duration,
    /// Bounds of any poll delay.
    floor: Duration,
    ceiling: Duration,
    /// Upper bound of the follow-up interval (the configured poll interval).
    follow_up_max: Duration,
}

fn key(account: &str, kind: &str) -> String {
    format!("{account}|{kind}")
}

fn positive(retry_after: Option<Duration>) -> Option<Duration> {
    retry_after.filter(|d| !d.is_zero())
}

impl PollClock {
    /// `poll_interval` seeds the estimate and bounds the follow-up interval; every delay lies in
    /// `[floor, max_poll_interval]`.
    pub fn new(poll_interval: Duration, max_poll_interval: Duration, floor: Duration) -> Self {
        let ceiling = max_poll_interval.max(floor);
        PollClock {
            estimates: Default::default(),
            running: Default::default(),
            initial: poll_interval.clamp(floor, ceiling),
            floor,
            ceiling,
            follow_up_max: poll_interval.max(floor),
        }
    }

    fn estimate(&self, k: &str) -> Duration {
        self.estimates
            .lock()
            .get(k)
            .copied()
            .unwrap_or(self.initial)
    }

    fn bounded(&self, d: Duration) -> Duration {
        d.clamp(self.floor, self.ceiling)
    }

    /// Azure accepted an operation for `owner`: returns when to poll it first.
    pub fn started(
        &self,
        account: &str,
        kind: &str,
        owner: &str,
        retry_after: Option<Duration>,
    ) -> Duration {
        let k = key(account, kind);
        let est = self.estimate(&k);
        let delay = self.bounded(positive(retry_after).map_or(est, |r| r.max(est)));
        let now = Instant::now();
        self.running.lock().insert(
            owner.to_string(),
            Running {
                key: k,
                started: now,
                polls_in_progress: 0,
                due: now + delay,
            },
        );
        delay
    }

    /// How long until `owner`'s operation is due for its next poll, if it is not due yet:
    /// a reconcile triggered early (a watch event, a hand-off) waits instead of polling.
    pub fn not_due(&self, owner: &str) -> Option<Duration> {
        let r = self.running.lock();
        let left = r.get(owner)?.due.saturating_duration_since(Instant::now());
        // Within a millisecond counts as due (timer granularity).
        (left > Duration::from_millis(1)).then_some(left)
    }

    /// The operation of `owner` is still running: returns when to poll again.
    pub fn in_progress(
        &self,
        account: &str,
        kind: &str,
        owner: &str,
        retry_after: Option<Duration>,
    ) -> Duration {
        let k = key(account, kind);
        let follow_up = self
            .estimate(&k)
            .mul_f64(FOLLOW_UP_FRACTION)
            .min(self.follow_up_max);
        let delay = self.bounded(positive(retry_after).map_or(follow_up, |r| r.max(follow_up)));
        if let Some(r) = self.running.lock().get_mut(owner) {
            r.polls_in_progress += 1;
            r.due = Instant::now() + delay;
        }
        delay
    }

    /// The operation of `owner` ended (`succeeded`: learn its duration; otherwise forget it).
    pub fn finished(&self, owner: &str, succeeded: bool) {
        let Some(r) = self.running.lock().remove(owner) else {
            return;
        };
        if !succeeded {
            return;
        }
        let seen = r.started.elapsed();
        let mut est = self.estimates.lock();
        let cur = est.get(&r.key).copied().unwrap_or(self.initial);
        let next = if r.polls_in_progress == 0 {
            // Done by the first poll: it may have ended well before; try a little earlier.
            cur.min(seen).mul_f64(DECAY)
        } else {
            // Still running at the first poll: it ended between the last two polls.
            let follow_up = cur.mul_f64(FOLLOW_UP_FRACTION).min(self.follow_up_max);
            seen.saturating_sub(follow_up / 2)
        };
        est.insert(r.key, self.bounded(next));
    }

    /// The learned duration for `kind` operations on `account` (for status and metrics).
    pub fn learned(&self, account: &str, kind: &str) -> Option<Duration> {
        self.estimates.lock().get(&key(account, kind)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn clock() -> PollClock {
        PollClock::new(ms(100), ms(5000), ms(5))
    }

    /// Fake elapsed time by back-dating the start of the running operation.
    fn backdate(c: &PollClock, owner: &str, by: Duration) {
        let mut r = c.running.lock();
        let run = r.get_mut(owner).expect("running");
        run.started = Instant::now() - by;
    }

    #[test]
    fn first_poll_uses_the_poll_interval_without_history_and_honours_retry_after() {
        let c = clock();
        assert_eq!(c.started("a", "Create", "ns/x", None), ms(100));
        assert_eq!(
            c.started("a", "Create", "ns/y", Some(Duration::ZERO)),
            ms(100)
        );
        assert_eq!(c.started("a", "Create", "ns/z", Some(ms(700))), ms(700));
        // Bounded by max_poll_interval, however long Azure asks.
        assert_eq!(
            c.started("a", "Create", "ns/w", Some(Duration::from_secs(3600))),
            ms(5000)
        );
    }

    #[test]
    fn an_operation_longer_than_the_estimate_raises_it_to_when_it_was_seen_done() {
        let c = clock();
        c.started("a", "Create", "ns/x", None);
        assert_eq!(c.in_progress("a", "Create", "ns/x", None), ms(5));
        backdate(&c, "ns/x", ms(400));
        c.finished("ns/x", true);
        let est = c.learned("a", "Create").expect("learned");
        assert!(est >= ms(395) && est < ms(450), "{est:?}");
        // The next operation on the account is first polled at the learned duration.
        let first = c.started("a", "Create", "ns/y", None);
        assert_eq!(first, est);
        // Other accounts and kinds keep their own estimates.
        assert_eq!(c.started("b", "Create", "ns/z", None), ms(100));
        assert_eq!(c.started("a", "Update", "ns/u", None), ms(100));
    }

    #[test]
    fn an_operation_done_at_the_first_poll_lowers_the_estimate_by_a_step() {
        let c = clock();
        c.estimates.lock().insert(key("a", "Create"), ms(1000));
        c.started("a", "Create", "ns/x", None);
        backdate(&c, "ns/x", ms(1000));
        c.finished("ns/x", true);
        let est = c.learned("a", "Create").unwrap();
        assert!(est >= ms(920) && est <= ms(935), "{est:?}");
    }

    #[test]
    fn an_early_reconcile_is_told_to_wait_until_the_poll_is_due() {
        let c = clock();
        assert_eq!(c.not_due("ns/x"), None, "unknown operations are due");
        c.started("a", "Create", "ns/x", Some(ms(2000)));
        let left = c.not_due("ns/x").expect("not due yet");
        assert!(left > ms(1900) && left <= ms(2000), "{left:?}");
        backdate(&c, "ns/x", ms(2000));
        c.running.lock().get_mut("ns/x").unwrap().due = Instant::now();
        assert_eq!(c.not_due("ns/x"), None);
        c.in_progress("a", "Create", "ns/x", None);
        assert!(
            c.not_due("ns/x").is_some(),
            "the follow-up poll is scheduled"
        );
        c.finished("ns/x", true);
        assert_eq!(c.not_due("ns/x"), None);
    }

    #[test]
    fn failed_or_unknown_operations_teach_nothing() {
        let c = clock();
        c.started("a", "Create", "ns/x", None);
        backdate(&c, "ns/x", ms(900));
        c.finished("ns/x", false);
        assert_eq!(c.learned("a", "Create"), None);
        // A restarted operator polls operations it did not start: nothing to learn.
        assert_eq!(c.in_progress("a", "Create", "ns/unknown", None), ms(5));
        c.finished("ns/unknown", true);
        assert_eq!(c.learned("a", "Create"), None);
    }

    #[test]
    fn follow_up_polls_are_a_twentieth_of_the_estimate_within_bounds() {
        let c = clock();
        c.estimates.lock().insert(key("a", "Create"), ms(4000));
        assert_eq!(c.in_progress("a", "Create", "ns/x", None), ms(100)); // capped by poll_interval
        c.estimates.lock().insert(key("a", "Create"), ms(600));
        assert_eq!(c.in_progress("a", "Create", "ns/x", None), ms(30));
        c.estimates.lock().insert(key("a", "Create"), ms(20));
        assert_eq!(c.in_progress("a", "Create", "ns/x", None), ms(5)); // floor
        assert_eq!(
            c.in_progress("a", "Create", "ns/x", Some(ms(800))),
            ms(800),
            "Retry-After honoured"
        );
    }

    /// Simulated: operations of a fixed true duration, polled by the clock. The estimate
    /// settles near the duration: about 1.5 polls per operation and a small overshoot.
    #[test]
    fn settles_just_above_the_true_duration() {
        let c = clock();
        let truth = ms(200);
        let (mut polls, mut overshoot) = (0u32, Duration::ZERO);
        let runs = 200;
        for i in 0..runs {
            let owner = format!("ns/{i}");
            let mut t = c.started("a", "Create", &owner, None);
            polls += 1;
            while t < truth {
                t += c.in_progress("a", "Create", &owner, None);
                polls += 1;
            }
            backdate(&c, &owner, t);
            c.finished(&owner, true);
            if i >= 20 {
                overshoot += t - truth;
            }
        }
        let per_op = polls as f64 / runs as f64;
        let mean_over = overshoot / (runs - 20);
        assert!(per_op < 1.8, "polls per operation {per_op}");
        assert!(mean_over < ms(20), "mean overshoot {mean_over:?}");
    }
}
