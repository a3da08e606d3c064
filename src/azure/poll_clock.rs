//! When to poll an Azure long-running operation. Azure's positive `Retry-After` is honoured;
//! otherwise the first poll is scheduled at the learned duration of that kind of operation on
//! that account (deployment writes of one SKU on one account take about as long as each other),
//! and any further polls follow at 3% of it, widening as the operation overruns. That
//! keeps polls near one per operation — reads count against ARM's per-subscription limit — and
//! hands the account's single write slot on within a few percent of the operation's end.
//! Without history, polls are `poll_interval` apart, as configured.
//!
//! The estimate moves both ways: an operation still running at the first poll raises it to the
//! end of the interval planned after it was last seen running, where it was surely done (a late
//! poll does not inflate it); one already finished at the first poll lowers it by half a percent,
//! so it settles just above the real duration and most operations take one poll.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Shrink factor after an operation that was already done at its first poll.
const DECAY: f64 = 0.995;
/// Follow-up polls of a running operation: this fraction of the estimate apart...
const FOLLOW_UP_OF_ESTIMATE: f64 = 0.03;
/// ...or of its overrun beyond the estimate, whichever is longer (an overrun widens the interval).
const FOLLOW_UP_OF_OVERRUN: f64 = 0.25;

struct Running {
    key: String,
    started: Instant,
    /// When (since `started`) it was last seen still running, and the follow-up interval
    /// planned then: it ended after that, most likely within that interval.
    last_in_progress: Option<(Duration, Duration)>,
    /// The delay planned for the first poll.
    first_poll: Duration,
    /// The next poll is not due before this.
    due: Instant,
}

pub struct PollClock {
    /// Learned duration per `account|what`.
    estimates: Mutex<HashMap<String, Duration>>,
    /// Operations in flight, per owner (`namespace/name`).
    running: Mutex<HashMap<String, Running>>,
    /// Interval with no history; also the widest follow-up interval.
    poll_interval: Duration,
    /// Bounds of any poll delay.
    floor: Duration,
    ceiling: Duration,
}

fn key(account: &str, what: &str) -> String {
    format!("{account}|{what}")
}

fn positive(retry_after: Option<Duration>) -> Option<Duration> {
    retry_after.filter(|d| !d.is_zero())
}

impl PollClock {
    /// Every delay lies in `[floor, max_poll_interval]`.
    pub fn new(poll_interval: Duration, max_poll_interval: Duration, floor: Duration) -> Self {
        let ceiling = max_poll_interval.max(floor);
        PollClock {
            estimates: Default::default(),
            running: Default::default(),
            poll_interval: poll_interval.clamp(floor, ceiling),
            floor,
            ceiling,
        }
    }

    fn bounded(&self, d: Duration, retry_after: Option<Duration>) -> Duration {
        positive(retry_after)
            .map_or(d, |r| r.max(d))
            .clamp(self.floor, self.ceiling)
    }

    fn follow_up(&self, estimate: Option<Duration>, elapsed: Duration) -> Duration {
        match estimate {
            None => self.poll_interval,
            Some(est) => est
                .mul_f64(FOLLOW_UP_OF_ESTIMATE)
                .max(elapsed.saturating_sub(est).mul_f64(FOLLOW_UP_OF_OVERRUN))
                .min(self.poll_interval),
        }
    }

    /// Azure accepted an operation (`what`: its kind and SKU) for `owner` on `account` at
    /// `accepted`: returns how long from now until its first poll. The operation runs in Azure
    /// from that moment, so the time the pass then spends saving status and publishing events
    /// (seconds, on a busy apiserver) is counted, not added: the account's single write slot is
    /// handed on when the operation ends, not that much later, and the learned durations are
    /// Azure's.
    pub fn started_at(
        &self,
        account: &str,
        what: &str,
        owner: &str,
        retry_after: Option<Duration>,
        accepted: Instant,
    ) -> Duration {
        let k = key(account, what);
        let est = self.learned_key(&k);
        let delay = self.bounded(est.unwrap_or(self.poll_interval), retry_after);
        let due = accepted + delay;
        self.running.lock().insert(
            owner.to_string(),
            Running {
                key: k,
                started: accepted,
                last_in_progress: None,
                first_poll: delay,
                due,
            },
        );
        due.saturating_duration_since(Instant::now())
    }

    /// [`Self::started_at`] now: the planned delay of the first poll.
    #[cfg(test)]
    pub fn started(
        &self,
        account: &str,
        what: &str,
        owner: &str,
        retry_after: Option<Duration>,
    ) -> Duration {
        self.started_at(account, what, owner, retry_after, Instant::now());
        self.running.lock()[owner].first_poll
    }

    /// How long until `owner`'s operation is due for its next poll, if it is not due yet:
    /// a reconcile triggered early (a watch event, a hand-off) waits instead of polling.
    pub fn not_due(&self, owner: &str) -> Option<Duration> {
        let r = self.running.lock();
        let left = r.get(owner)?.due.saturating_duration_since(Instant::now());
        // Within a millisecond counts as due (timer granularity).
        (left > Duration::from_millis(1)).then_some(left)
    }

    /// The operation of `owner` is still running: returns when to poll again. (A restarted
    /// operator polls operations it did not start; those poll at `poll_interval`.)
    pub fn in_progress(&self, owner: &str, retry_after: Option<Duration>) -> Duration {
        let mut running = self.running.lock();
        let Some(r) = running.get_mut(owner) else {
            return self.bounded(self.poll_interval, retry_after);
        };
        let est = self.estimates.lock().get(&r.key).copied();
        let elapsed = r.started.elapsed();
        let follow_up = self.follow_up(est, elapsed);
        let delay = self.bounded(follow_up, retry_after);
        r.last_in_progress = Some((elapsed, delay));
        r.due = Instant::now() + delay;
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
        let next = match r.last_in_progress {
            // Seen running, then done: it ended after that, within the planned interval (a
            // poll that ran late must not inflate the estimate); the next is first polled at the
            // end of that interval, where this one was surely done.
            Some((running_at, interval)) => {
                running_at + seen.saturating_sub(running_at).min(interval)
            }
            // Done by the first poll: it may have ended well before; try a little earlier than
            // planned (again, not than the poll actually ran, which may have been late).
            None => r.first_poll.min(seen).mul_f64(DECAY),
        };
        est.insert(r.key, next.clamp(self.floor, self.ceiling));
    }

    fn learned_key(&self, k: &str) -> Option<Duration> {
        self.estimates.lock().get(k).copied()
    }

    /// The learned duration of `what` operations on `account`.
    #[cfg(test)]
    pub fn learned(&self, account: &str, what: &str) -> Option<Duration> {
        self.learned_key(&key(account, what))
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

    /// Fake the time the running operation of `owner` has run.
    fn at(c: &PollClock, owner: &str, elapsed: Duration) {
        let mut r = c.running.lock();
        let run = r.get_mut(owner).expect("running");
        run.started = Instant::now() - elapsed;
    }

    /// Equal within a millisecond (the clock reads real time).
    fn close(a: Option<Duration>, b: Duration) {
        let a = a.expect("a duration");
        assert!(a.abs_diff(b) < ms(2), "{a:?} vs {b:?}");
    }

    fn learn(c: &PollClock, what: &str, d: Duration) {
        c.estimates.lock().insert(key("a", what), d);
    }

    #[test]
    fn the_first_poll_counts_from_when_azure_accepted() {
        let c = clock();
        learn(&c, "Create/S", ms(1000));
        let accepted = Instant::now() - ms(300);
        let wait = c.started_at("a", "Create/S", "ns/x", None, accepted);
        assert!(wait <= ms(700) && wait > ms(690), "{wait:?}");
        close(c.not_due("ns/x"), wait);
        // A pass that took longer than the estimate polls at once.
        let late = Instant::now() - ms(1500);
        assert_eq!(
            c.started_at("a", "Create/S", "ns/y", None, late),
            Duration::ZERO
        );
        assert_eq!(c.not_due("ns/y"), None);
        // The duration learned is Azure's, from acceptance.
        c.finished("ns/y", true);
        let learned = c.learned("a", "Create/S").unwrap();
        assert!(learned >= ms(990) && learned < ms(1000), "{learned:?}");
    }

    #[test]
    fn without_history_polls_are_the_poll_interval_apart_and_retry_after_is_honoured() {
        let c = clock();
        assert_eq!(c.started("a", "Create/S", "ns/x", None), ms(100));
        assert_eq!(c.in_progress("ns/x", None), ms(100));
        assert_eq!(
            c.started("a", "Create/S", "ns/y", Some(Duration::ZERO)),
            ms(100)
        );
        assert_eq!(c.started("a", "Create/S", "ns/z", Some(ms(700))), ms(700));
        assert_eq!(c.in_progress("ns/z", Some(ms(900))), ms(900));
        // Bounded by max_poll_interval, however long Azure asks.
        assert_eq!(
            c.started("a", "Create/S", "ns/w", Some(Duration::from_secs(3600))),
            ms(5000)
        );
        // A restarted operator's operations (not started here) poll at the interval.
        assert_eq!(c.in_progress("ns/unknown", None), ms(100));
    }

    #[test]
    fn the_first_operation_teaches_the_next_when_to_poll() {
        let c = clock();
        c.started("a", "Create/S", "ns/x", None);
        at(&c, "ns/x", ms(100));
        assert_eq!(c.in_progress("ns/x", None), ms(100));
        at(&c, "ns/x", ms(200));
        assert_eq!(c.in_progress("ns/x", None), ms(100));
        at(&c, "ns/x", ms(300));
        c.finished("ns/x", true);
        // Ended within the last 100 ms interval: learned as its end, where it was surely done.
        close(c.learned("a", "Create/S"), ms(300));
        close(Some(c.started("a", "Create/S", "ns/y", None)), ms(300));
        // Follow-ups are 3% of the estimate.
        at(&c, "ns/y", ms(300));
        close(Some(c.in_progress("ns/y", None)), ms(9));
        // Other accounts and other kinds or SKUs keep their own estimates.
        assert_eq!(c.started("b", "Create/S", "ns/z", None), ms(100));
        assert_eq!(c.started("a", "Create/PTU", "ns/u", None), ms(100));
    }

    #[test]
    fn a_late_follow_up_poll_does_not_inflate_the_estimate() {
        let c = clock();
        learn(&c, "Create/S", ms(200));
        c.started("a", "Create/S", "ns/x", None);
        at(&c, "ns/x", ms(200));
        close(Some(c.in_progress("ns/x", None)), ms(6));
        // The follow-up ran 800 ms late (a busy operator): the operation ended within the 6 ms
        // planned, not at 1006 ms.
        at(&c, "ns/x", ms(1006));
        c.finished("ns/x", true);
        close(c.learned("a", "Create/S"), ms(206));
    }

    #[test]
    fn a_late_first_poll_does_not_inflate_the_estimate() {
        let c = clock();
        c.started("a", "Create/S", "ns/x", None);
        // Planned at 100 ms, ran at 1500 ms (the operator was busy) and found it done.
        at(&c, "ns/x", ms(1500));
        c.finished("ns/x", true);
        close(c.learned("a", "Create/S"), ms(99));
    }

    #[test]
    fn an_operation_done_at_the_first_poll_lowers_the_estimate_by_a_step() {
        let c = clock();
        learn(&c, "Create/S", ms(1000));
        c.started("a", "Create/S", "ns/x", None);
        at(&c, "ns/x", ms(1000));
        c.finished("ns/x", true);
        let est = c.learned("a", "Create/S").unwrap();
        assert!(est >= ms(993) && est <= ms(997), "{est:?}");
    }

    #[test]
    fn an_overrunning_operation_is_polled_less_and_less_often() {
        let c = clock();
        learn(&c, "Create/S", ms(200));
        c.started("a", "Create/S", "ns/x", None);
        at(&c, "ns/x", ms(200));
        close(Some(c.in_progress("ns/x", None)), ms(6));
        at(&c, "ns/x", ms(400));
        close(Some(c.in_progress("ns/x", None)), ms(50)); // a quarter of the 200 ms overrun
        at(&c, "ns/x", ms(10_000));
        assert_eq!(
            c.in_progress("ns/x", None),
            ms(100),
            "capped at poll_interval"
        );
    }

    #[test]
    fn an_early_reconcile_is_told_to_wait_until_the_poll_is_due() {
        let c = clock();
        assert_eq!(c.not_due("ns/x"), None, "unknown operations are due");
        c.started("a", "Create/S", "ns/x", Some(ms(2000)));
        let left = c.not_due("ns/x").expect("not due yet");
        assert!(left > ms(1900) && left <= ms(2000), "{left:?}");
        c.running.lock().get_mut("ns/x").unwrap().due = Instant::now();
        assert_eq!(c.not_due("ns/x"), None);
        c.in_progress("ns/x", None);
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
        c.started("a", "Create/S", "ns/x", None);
        at(&c, "ns/x", ms(900));
        c.finished("ns/x", false);
        assert_eq!(c.learned("a", "Create/S"), None);
        c.finished("ns/unknown", true);
        assert_eq!(c.learned("a", "Create/S"), None);
    }

    /// Simulated: operations of a fixed true duration, polled by the clock. The estimate
    /// settles near the duration: under 1.25 polls per operation and a small overshoot.
    #[test]
    fn settles_just_above_the_true_duration() {
        let c = clock();
        let truth = ms(200);
        let (mut polls, mut overshoot) = (0u32, Duration::ZERO);
        let (warmup, runs) = (20, 400);
        for i in 0..runs {
            let owner = format!("ns/{i}");
            let mut t = c.started("a", "Create/S", &owner, None);
            let mut n = 1;
            while t < truth {
                at(&c, &owner, t);
                t += c.in_progress(&owner, None);
                n += 1;
            }
            at(&c, &owner, t);
            c.finished(&owner, true);
            if i >= warmup {
                polls += n;
                overshoot += t - truth;
            }
        }
        let per_op = polls as f64 / (runs - warmup) as f64;
        let mean_over = overshoot / (runs - warmup);
        eprintln!("polls per operation {per_op}, mean overshoot {mean_over:?}");
        assert!(per_op < 1.25, "polls per operation {per_op}");
        assert!(mean_over < ms(10), "mean overshoot {mean_over:?}");
    }
}
