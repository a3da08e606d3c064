//! Per-account write gate: at most one Azure deployment write (including the time its
//! long-running operation runs) per account, across all reconciles. Non-blocking: a reconcile
//! that cannot get the slot joins a FIFO queue and requeues; the holder releases when its
//! operation ends. Reads and other accounts are not affected.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Slot {
    holder: Option<(String, Instant)>,
    waiters: VecDeque<(String, Instant)>,
}

pub struct WriteGate {
    slots: Mutex<HashMap<String, Slot>>,
    /// A holder older than this is considered gone (crash, deleted object).
    max_hold: Duration,
    /// A waiter not seen for this long is dropped from the queue.
    waiter_ttl: Duration,
}

impl WriteGate {
    pub fn new(max_hold: Duration, waiter_ttl: Duration) -> Self {
        WriteGate {
            slots: Default::default(),
            max_hold,
            waiter_ttl,
        }
    }

    /// Take (or keep) the account's write slot for `who`. On `false`, `who` is queued.
    pub fn try_acquire(&self, account: &str, who: &str) -> bool {
        let now = Instant::now();
        let mut slots = self.slots.lock();
        let slot = slots.entry(account.to_string()).or_default();
        let ttl = self.waiter_ttl;
        slot.waiters
            .retain(|(w, seen)| w == who || now.duration_since(*seen) < ttl);
        if let Some((h, since)) = &slot.holder {
            if h == who {
                return true;
            }
            if now.duration_since(*since) < self.max_hold {
                Self::enqueue(slot, who, now);
                return false;
            }
            tracing::warn!(account, holder = %h, "write slot holder timed out; releasing it");
            slot.holder = None;
        }
        match slot.waiters.front() {
            Some((w, _)) if w != who => {
                Self::enqueue(slot, who, now);
                false
            }
            _ => {
                slot.waiters.retain(|(w, _)| w != who);
                slot.holder = Some((who.to_string(), now));
                true
            }
        }
    }

    /// True while `who` is queued behind a live holder (refreshing its place): the caller can
    /// skip its reads and keep waiting for the hand-off.
    pub fn still_waiting(&self, account: &str, who: &str) -> bool {
        let now = Instant::now();
        let mut slots = self.slots.lock();
        let Some(slot) = slots.get_mut(account) else {
            return false;
        };
        let live_holder = slot
            .holder
            .as_ref()
            .is_some_and(|(h, since)| h != who && now.duration_since(*since) < self.max_hold);
        if !live_holder {
            return false;
        }
        match slot.waiters.iter_mut().find(|(w, _)| w == who) {
            Some(e) => {
                e.1 = now;
                true
            }
            None => false,
        }
    }

    /// Claim the slot unconditionally (resuming an operation already running in Azure).
    pub fn claim(&self, account: &str, who: &str) {
        let mut slots = self.slots.lock();
        let slot = slots.entry(account.to_string()).or_default();
        slot.waiters.retain(|(w, _)| w != who);
        if slot.holder.as_ref().is_none_or(|(h, _)| h != who) {
            slot.holder = Some((who.to_string(), Instant::now()));
        }
    }

    fn enqueue(slot: &mut Slot, who: &str, now: Instant) {
        if let Some(e) = slot.waiters.iter_mut().find(|(w, _)| w == who) {
            e.1 = now;
        } else {
            slot.waiters.push_back((who.to_string(), now));
        }
    }

    /// Release the slot if `who` holds it, and leave the queue. Returns the waiter to wake
    /// when the slot is free and someone is queued (hand-off without waiting for its requeue).
    /// Only a change (`who` held the slot or headed the queue) wakes anyone, so repeated
    /// releases do not wake the next writer again while it is already writing.
    pub fn release(&self, account: &str, who: &str) -> Option<String> {
        let mut slots = self.slots.lock();
        let slot = slots.get_mut(account)?;
        let held = slot.holder.as_ref().is_some_and(|(h, _)| h == who);
        if held {
            slot.holder = None;
        }
        let was_head = slot.waiters.front().is_some_and(|(w, _)| w == who);
        slot.waiters.retain(|(w, _)| w != who);
        if held || was_head {
            Self::next(slot)
        } else {
            None
        }
    }

    /// Leave the queue without touching the slot (no write needed any more).
    /// Returns the new head of the queue to wake if the slot is free.
    pub fn leave_queue(&self, account: &str, who: &str) -> Option<String> {
        let mut slots = self.slots.lock();
        let slot = slots.get_mut(account)?;
        let was_head = slot.waiters.front().is_some_and(|(w, _)| w == who);
        slot.waiters.retain(|(w, _)| w != who);
        if was_head { Self::next(slot) } else { None }
    }

    fn next(slot: &Slot) -> Option<String> {
        if slot.holder.is_some() {
            return None;
        }
        slot.waiters.front().map(|(w, _)| w.clone())
    }

    /// Current holder of the account's slot.
    pub fn holder(&self, account: &str) -> Option<String> {
        self.slots
            .lock()
            .get(account)?
            .holder
            .as_ref()
            .map(|(h, _)| h.clone())
    }

    /// `who`'s place in the account's queue (0 = next), if queued.
    pub fn position(&self, account: &str, who: &str) -> Option<usize> {
        self.slots
            .lock()
            .get(account)?
            .waiters
            .iter()
            .position(|(w, _)| w == who)
    }

    pub fn holds(&self, account: &str, who: &str) -> bool {
        self.slots
            .lock()
            .get(account)
            .and_then(|s| s.holder.as_ref())
            .is_some_and(|(h, _)| h == who)
    }

    pub fn queue_depth(&self) -> usize {
        self.slots.lock().values().map(|s| s.waiters.len()).sum()
    }

    pub fn busy_accounts(&self) -> usize {
        self.slots
            .lock()
            .values()
            .filter(|s| s.holder.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_per_account_fifo() {
        let g = WriteGate::new(Duration::from_secs(60), Duration::from_secs(60));
        assert!(g.try_acquire("acc", "a"));
        assert!(g.try_acquire("acc", "a"), "re-entrant for the holder");
        assert!(!g.try_acquire("acc", "b"));
        assert!(!g.try_acquire("acc", "c"));
        assert_eq!(g.position("acc", "b"), Some(0));
        assert_eq!(g.position("acc", "c"), Some(1));
        assert_eq!(g.position("acc", "a"), None, "the holder is not queued");
        assert!(
            g.try_acquire("other", "c"),
            "other accounts are independent"
        );
        assert_eq!(
            g.release("acc", "a").as_deref(),
            Some("b"),
            "hand-off to the head of the queue"
        );
        assert!(!g.try_acquire("acc", "c"), "b queued first");
        assert!(g.try_acquire("acc", "b"));
        assert_eq!(g.queue_depth(), 1);
        assert_eq!(g.release("acc", "b").as_deref(), Some("c"));
        assert!(g.try_acquire("acc", "c"));
        assert_eq!(g.queue_depth(), 0);
    }

    #[test]
    fn a_repeated_release_wakes_nobody() {
        let g = WriteGate::new(Duration::from_secs(60), Duration::from_secs(60));
        assert!(g.try_acquire("acc", "a"));
        assert!(!g.try_acquire("acc", "b"));
        assert_eq!(g.release("acc", "a").as_deref(), Some("b"));
        // a releases again (e.g. after verifying its result) before b took the slot.
        assert_eq!(g.release("acc", "a"), None);
        assert!(g.try_acquire("acc", "b"));
        assert_eq!(g.release("acc", "a"), None, "b holds it now");
    }

    #[test]
    fn stale_holders_and_waiters_expire() {
        let g = WriteGate::new(Duration::from_millis(0), Duration::from_millis(0));
        assert!(g.try_acquire("acc", "a"));
        std::thread::sleep(Duration::from_millis(2));
        assert!(g.try_acquire("acc", "b"), "holder timed out");
        g.claim("acc", "a");
        assert!(g.holds("acc", "a"));
        let _ = g.leave_queue("acc", "b");
        assert_eq!(g.queue_depth(), 0);
    }
}
