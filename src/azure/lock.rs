//! Per-account write slot: at most one Azure deployment write per account at a time (Azure
//! accepts one; a second gets 409 RequestConflict), counting the time its long-running operation
//! runs. A reconcile that gets the slot holds a [`SlotGuard`], which releases the slot when it is
//! dropped — on every early return, error or cancellation — unless it is handed over to the
//! operation Azure accepted ([`SlotGuard::hand_to_operation`]). The operation's hold ends with
//! [`WriteGate::operation_ended`], which gives the guard back so dropping it releases.
//! Non-blocking: a reconcile that cannot get the slot joins a FIFO queue and requeues; a release
//! wakes the head of the queue at once through the wake channel.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

struct Holder {
    who: String,
    since: Instant,
    /// Held by a running Azure operation (not by a live guard).
    by_operation: bool,
}

#[derive(Default)]
struct Slot {
    holder: Option<Holder>,
    waiters: VecDeque<(String, Instant)>,
}

struct Inner {
    slots: Mutex<HashMap<String, Slot>>,
    /// An operation's hold older than this is considered abandoned (its owner vanished).
    max_operation_hold: Duration,
    /// A waiter not seen for this long is dropped from the queue.
    waiter_ttl: Duration,
    /// Who to reconcile next when a slot is released (the head of its queue).
    wake: UnboundedSender<String>,
}

/// What a reconcile sees of its account's slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotView {
    /// Nobody holds it and nobody is queued ahead.
    Free,
    /// This owner's running operation holds it.
    HeldByMyOperation,
    /// Someone else holds it (or is ahead in the queue); `position` in the queue if queued.
    Busy {
        holder: Option<String>,
        position: Option<usize>,
    },
}

#[derive(Clone)]
pub struct WriteGate {
    inner: Arc<Inner>,
}

/// The account's write slot, held while a write is prepared and sent.
pub struct SlotGuard {
    inner: Arc<Inner>,
    account: String,
    who: String,
    armed: bool,
}

impl std::fmt::Debug for SlotGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotGuard({} on {})", self.who, self.account)
    }
}

impl SlotGuard {
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Azure accepted a long-running write: the slot stays taken until the operation ends.
    pub fn hand_to_operation(mut self) {
        self.armed = false;
        let mut slots = self.inner.slots.lock();
        if let Some(h) = slots
            .get_mut(&self.account)
            .and_then(|s| s.holder.as_mut())
            .filter(|h| h.who == self.who)
        {
            h.by_operation = true;
            h.since = Instant::now();
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if self.armed {
            release(&self.inner, &self.account, &self.who);
        }
    }
}

fn release(inner: &Inner, account: &str, who: &str) {
    let next = {
        let mut slots = inner.slots.lock();
        let Some(slot) = slots.get_mut(account) else {
            return;
        };
        if slot.holder.as_ref().is_some_and(|h| h.who == who) {
            slot.holder = None;
        } else {
            return;
        }
        slot.waiters.front().map(|(w, _)| w.clone())
    };
    if let Some(next) = next {
        let _ = inner.wake.send(next);
    }
}

impl WriteGate {
    pub fn new(
        max_operation_hold: Duration,
        waiter_ttl: Duration,
        wake: UnboundedSender<String>,
    ) -> Self {
        WriteGate {
            inner: Arc::new(Inner {
                slots: Default::default(),
                max_operation_hold,
                waiter_ttl,
                wake,
            }),
        }
    }

    /// The slot as `who` sees it (refreshes `who`'s place if queued).
    pub fn view(&self, account: &str, who: &str) -> SlotView {
        let now = Instant::now();
        let mut slots = self.inner.slots.lock();
        let Some(slot) = slots.get_mut(account) else {
            return SlotView::Free;
        };
        self.expire(slot, account, now);
        let position = slot.waiters.iter().position(|(w, _)| w == who);
        if let Some(p) = position {
            slot.waiters[p].1 = now;
        }
        match &slot.holder {
            Some(h) if h.who == who && h.by_operation => SlotView::HeldByMyOperation,
            Some(h) if h.who != who => SlotView::Busy {
                holder: Some(h.who.clone()),
                position,
            },
            Some(_) => SlotView::Free, // a guard of ours (re-entrant)
            None => match (slot.waiters.front(), position) {
                (Some((w, _)), Some(p)) if w != who => SlotView::Busy {
                    holder: None,
                    position: Some(p),
                },
                (Some((w, _)), None) if w != who => SlotView::Busy {
                    holder: None,
                    position: None,
                },
                _ => SlotView::Free,
            },
        }
    }

    fn expire(&self, slot: &mut Slot, account: &str, now: Instant) {
        let ttl = self.inner.waiter_ttl;
        slot.waiters
            .retain(|(_, seen)| now.duration_since(*seen) < ttl);
        if let Some(h) = &slot.holder
            && h.by_operation
            && now.duration_since(h.since) >= self.inner.max_operation_hold
        {
            tracing::warn!(account, holder = %h.who, "an operation held the write slot too long; releasing it");
            slot.holder = None;
        }
    }

    /// Take the slot for `who`, or join the queue: `Err(position)`.
    pub fn try_acquire(&self, account: &str, who: &str) -> Result<SlotGuard, usize> {
        let now = Instant::now();
        let mut slots = self.inner.slots.lock();
        let slot = slots.entry(account.to_string()).or_default();
        self.expire(slot, account, now);
        let free_for_me = match &slot.holder {
            Some(h) => h.who == who,
            None => slot.waiters.front().is_none_or(|(w, _)| w == who),
        };
        if free_for_me {
            slot.waiters.retain(|(w, _)| w != who);
            slot.holder = Some(Holder {
                who: who.to_string(),
                since: now,
                by_operation: false,
            });
            return Ok(SlotGuard {
                inner: self.inner.clone(),
                account: account.to_string(),
                who: who.to_string(),
                armed: true,
            });
        }
        let position = match slot.waiters.iter().position(|(w, _)| w == who) {
            Some(p) => {
                slot.waiters[p].1 = now;
                p
            }
            None => {
                slot.waiters.push_back((who.to_string(), now));
                slot.waiters.len() - 1
            }
        };
        Err(position)
    }

    /// A restarted operator resumes an operation that is still running in Azure: the slot is
    /// the operation's until it ends.
    pub fn resume_operation(&self, account: &str, who: &str) {
        let mut slots = self.inner.slots.lock();
        let slot = slots.entry(account.to_string()).or_default();
        slot.waiters.retain(|(w, _)| w != who);
        slot.holder = Some(Holder {
            who: who.to_string(),
            since: Instant::now(),
            by_operation: true,
        });
    }

    /// `who`'s operation ended: the hold becomes a guard again (dropping it releases the slot).
    /// None when `who` did not hold the slot.
    pub fn operation_ended(&self, account: &str, who: &str) -> Option<SlotGuard> {
        let mut slots = self.inner.slots.lock();
        let h = slots.get_mut(account)?.holder.as_mut()?;
        if h.who != who {
            return None;
        }
        h.by_operation = false;
        Some(SlotGuard {
            inner: self.inner.clone(),
            account: account.to_string(),
            who: who.to_string(),
            armed: true,
        })
    }

    /// Free the slot of a holder whose ModelDeployment no longer exists (finalizer removed by hand).
    pub fn evict(&self, account: &str, holder: &str) {
        release(&self.inner, account, holder);
    }

    /// Leave the queue (no write needed any more); wakes the new head if the slot is free.
    pub fn leave_queue(&self, account: &str, who: &str) {
        let next = {
            let mut slots = self.inner.slots.lock();
            let Some(slot) = slots.get_mut(account) else {
                return;
            };
            let was_head = slot.waiters.front().is_some_and(|(w, _)| w == who);
            slot.waiters.retain(|(w, _)| w != who);
            if was_head && slot.holder.is_none() {
                slot.waiters.front().map(|(w, _)| w.clone())
            } else {
                None
            }
        };
        if let Some(next) = next {
            let _ = self.inner.wake.send(next);
        }
    }

    pub fn queue_depth(&self) -> usize {
        self.inner
            .slots
            .lock()
            .values()
            .map(|s| s.waiters.len())
            .sum()
    }

    pub fn busy_accounts(&self) -> usize {
        self.inner
            .slots
            .lock()
            .values()
            .filter(|s| s.holder.is_some())
            .count()
    }

    pub fn operations_running(&self) -> usize {
        self.inner
            .slots
            .lock()
            .values()
            .filter(|s| s.holder.as_ref().is_some_and(|h| h.by_operation))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    fn gate() -> (WriteGate, UnboundedReceiver<String>) {
        let (tx, rx) = unbounded_channel();
        (
            WriteGate::new(Duration::from_secs(60), Duration::from_secs(60), tx),
            rx,
        )
    }

    fn woken(rx: &mut UnboundedReceiver<String>) -> Vec<String> {
        let mut v = vec![];
        while let Ok(w) = rx.try_recv() {
            v.push(w);
        }
        v
    }

    #[test]
    fn one_holder_per_account_fifo_and_release_on_drop() {
        let (g, mut rx) = gate();
        let a = g.try_acquire("acc", "a").expect("free");
        assert_eq!(g.try_acquire("acc", "b").unwrap_err(), 0);
        assert_eq!(g.try_acquire("acc", "c").unwrap_err(), 1);
        assert_eq!(g.try_acquire("acc", "b").unwrap_err(), 0, "keeps its place");
        let other = g
            .try_acquire("other", "c")
            .expect("other accounts are independent");
        assert_eq!(
            g.view("acc", "b"),
            SlotView::Busy {
                holder: Some("a".into()),
                position: Some(0)
            }
        );
        drop(a);
        assert_eq!(woken(&mut rx), vec!["b"], "the head of the queue is woken");
        assert!(g.try_acquire("acc", "c").is_err(), "b queued first");
        let b = g.try_acquire("acc", "b").expect("b's turn");
        drop(b);
        assert_eq!(woken(&mut rx), vec!["c"]);
        drop(other);
        assert_eq!(g.queue_depth(), 1);
    }

    #[test]
    fn an_early_return_cannot_leak_the_slot() {
        let (g, _rx) = gate();
        fn write_that_fails(g: &WriteGate) -> Result<(), &'static str> {
            let _guard = g.try_acquire("acc", "a").map_err(|_| "busy")?;
            Err("Azure said no")
        }
        assert!(write_that_fails(&g).is_err());
        assert!(
            g.try_acquire("acc", "b").is_ok(),
            "released by the early return"
        );
    }

    #[test]
    fn an_operation_keeps_the_slot_until_it_ends() {
        let (g, mut rx) = gate();
        g.try_acquire("acc", "a").unwrap().hand_to_operation();
        assert_eq!(g.view("acc", "a"), SlotView::HeldByMyOperation);
        assert!(g.try_acquire("acc", "b").is_err());
        assert!(woken(&mut rx).is_empty(), "handing over releases nothing");
        assert!(
            g.operation_ended("acc", "b").is_none(),
            "only the holder ends it"
        );
        let back = g.operation_ended("acc", "a").expect("a's operation");
        assert!(
            g.try_acquire("acc", "b").is_err(),
            "still held by the guard"
        );
        drop(back);
        assert_eq!(woken(&mut rx), vec!["b"]);
        assert!(g.try_acquire("acc", "b").is_ok());
    }

    #[test]
    fn resumed_operations_hold_and_abandoned_ones_expire() {
        let (tx, _rx) = unbounded_channel();
        let g = WriteGate::new(Duration::ZERO, Duration::from_secs(60), tx);
        g.resume_operation("acc", "a");
        assert!(
            g.try_acquire("acc", "b").is_ok(),
            "an abandoned hold expires"
        );
        let (g, _rx) = gate();
        g.resume_operation("acc", "a");
        assert_eq!(g.view("acc", "a"), SlotView::HeldByMyOperation);
        assert!(g.try_acquire("acc", "b").is_err());
        g.evict("acc", "a");
        assert!(g.try_acquire("acc", "b").is_ok());
    }

    #[test]
    fn leaving_the_queue_wakes_the_next_when_free() {
        let (g, mut rx) = gate();
        let a = g.try_acquire("acc", "a").unwrap();
        assert!(g.try_acquire("acc", "b").is_err());
        assert!(g.try_acquire("acc", "c").is_err());
        g.leave_queue("acc", "b");
        assert!(woken(&mut rx).is_empty(), "the slot is still held");
        drop(a);
        assert_eq!(woken(&mut rx), vec!["c"]);
    }
}
