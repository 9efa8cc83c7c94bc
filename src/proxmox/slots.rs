//! The node's task slots: `maxConcurrentTasks` counts the operator's tasks on a node from the
//! call that starts one until the operator sees it end (its UPID), not only the starting call —
//! a real node serialises creates on storage locks, and a task that merely started still holds
//! them. A caller claims a slot before the audited call; a started task keeps it until
//! [`crate::proxmox::ProxmoxClient::check_task`] finds it stopped. A task found running that this
//! process did not start (after a restart) is counted from then on.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// Wakes one waiter (for a container: sends its reconcile to the controller).
pub type Waker = Box<dyn FnOnce() + Send>;

struct State {
    limit: usize,
    /// Slots claimed for a call not answered yet.
    claimed: usize,
    /// UPIDs of tasks started and not yet seen to end.
    running: HashSet<String>,
    /// Who waits for a slot, first come first served, by key (one place per key).
    waiting: VecDeque<(String, Waker)>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("limit", &self.limit)
            .field("claimed", &self.claimed)
            .field("running", &self.running)
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

impl State {
    fn free(&self) -> usize {
        self.limit.saturating_sub(self.claimed + self.running.len())
    }

    /// The waiters to wake now: one per free slot, first come first served.
    fn due(&mut self) -> Vec<Waker> {
        let n = self.free().min(self.waiting.len());
        self.waiting.drain(..n).map(|(_, w)| w).collect()
    }
}

/// The slots of one node.
#[derive(Debug, Clone)]
pub struct TaskSlots(Arc<Mutex<State>>);

impl TaskSlots {
    pub fn new(limit: usize) -> Self {
        Self(Arc::new(Mutex::new(State {
            limit: limit.max(1),
            claimed: 0,
            running: HashSet::new(),
            waiting: VecDeque::new(),
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot, if fewer than the limit are claimed or running.
    pub fn claim(&self) -> Option<TaskSlot> {
        let mut s = self.state();
        if s.claimed + s.running.len() >= s.limit {
            return None;
        }
        s.claimed += 1;
        Some(TaskSlot {
            slots: self.clone(),
            done: false,
        })
    }

    /// A slot, or else `key` joins the queue (keeping its place if it is in it already) and
    /// `wake` is called once a slot frees — so a waiter need not ask again and again. A woken
    /// waiter leaves the queue; whoever asks first while a slot is free takes it (a waiter
    /// that went away never holds up the others).
    pub fn claim_or_wait(&self, key: &str, wake: Waker) -> Option<TaskSlot> {
        let mut s = self.state();
        if s.free() > 0 {
            s.waiting.retain(|(k, _)| k != key);
            s.claimed += 1;
            return Some(TaskSlot {
                slots: self.clone(),
                done: false,
            });
        }
        match s.waiting.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = wake,
            None => s.waiting.push_back((key.to_string(), wake)),
        }
        None
    }

    /// Sets the limit (the node's `maxConcurrentTasks` changed); a raised one wakes waiters.
    pub fn set_limit(&self, limit: usize) {
        self.state().limit = limit.max(1);
        self.wake_due();
    }

    /// How many wait for a slot.
    pub fn waiting(&self) -> usize {
        self.state().waiting.len()
    }

    /// Wakes the waiters that free slots can serve (outside the lock).
    fn wake_due(&self) {
        let due = self.state().due();
        due.into_iter().for_each(|w| w());
    }

    /// Tasks running or about to (claimed), and the limit.
    pub fn busy(&self) -> (usize, usize) {
        let s = self.state();
        (s.claimed + s.running.len(), s.limit)
    }

    /// A task seen running (counted even when this process did not start it).
    pub fn running(&self, upid: &str) {
        self.state().running.insert(upid.to_string());
    }

    /// A task seen stopped (or gone): its slot is free, for the first waiter.
    pub fn ended(&self, upid: &str) {
        let removed = self.state().running.remove(upid);
        if removed {
            self.wake_due();
        }
    }
}

/// A claimed slot: [`TaskSlot::started`] hands it to the task; dropped unused, it is free again.
#[derive(Debug)]
pub struct TaskSlot {
    slots: TaskSlots,
    done: bool,
}

impl TaskSlot {
    /// The call started this task: the slot is its until it is seen to end.
    pub fn started(mut self, upid: &str) {
        let mut s = self.slots.state();
        s.claimed -= 1;
        s.running.insert(upid.to_string());
        self.done = true;
    }
}

impl Drop for TaskSlot {
    fn drop(&mut self) {
        if !self.done {
            self.slots.state().claimed -= 1;
            self.slots.wake_due();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_held_from_the_claim_until_the_task_is_seen_to_end() {
        let slots = TaskSlots::new(2);
        let a = slots.claim().expect("first slot");
        let b = slots.claim().expect("second slot");
        assert!(slots.claim().is_none(), "two claimed of two");
        drop(b);
        assert_eq!(slots.busy(), (1, 2), "an unused claim is given back");
        a.started("UPID:a");
        slots.claim().expect("one free").started("UPID:b");
        assert!(slots.claim().is_none(), "both running");
        // Asked about again while running: still one slot each.
        slots.running("UPID:a");
        assert_eq!(slots.busy(), (2, 2));
        slots.ended("UPID:a");
        assert!(slots.claim().is_some(), "an ended task frees its slot");
    }

    #[test]
    fn waiters_are_woken_one_per_freed_slot_in_the_order_they_came() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let slots = TaskSlots::new(1);
        let woken = Arc::new(Mutex::new(Vec::new()));
        let waker = |key: &'static str| -> Waker {
            let woken = woken.clone();
            Box::new(move || woken.lock().unwrap().push(key))
        };
        slots.claim_or_wait("a", waker("a")).unwrap().started("UPID:1");
        assert!(slots.claim_or_wait("b", waker("b")).is_none());
        assert!(slots.claim_or_wait("c", waker("c")).is_none());
        // Asking again keeps b's place (and takes its latest waker).
        assert!(slots.claim_or_wait("b", waker("b")).is_none());
        assert_eq!(slots.waiting(), 2);
        assert!(woken.lock().unwrap().is_empty(), "nothing freed yet");
        slots.ended("UPID:1");
        assert_eq!(
            *woken.lock().unwrap(),
            ["b"],
            "one slot freed: the first waiter only"
        );
        let b = slots.claim_or_wait("b", waker("b")).expect("a free slot");
        assert_eq!(slots.waiting(), 1, "c still waits");
        // b's claim given back unused: c is woken, and takes it.
        drop(b);
        assert_eq!(*woken.lock().unwrap(), ["b", "c"]);
        assert!(slots.claim_or_wait("c", waker("c")).is_some());
        assert_eq!(slots.waiting(), 0);
        // A task ended twice (two polls) frees one slot, not two.
        let calls = Arc::new(AtomicUsize::new(0));
        let counting = || -> Waker {
            let calls = calls.clone();
            Box::new(move || {
                calls.fetch_add(1, Ordering::SeqCst);
            })
        };
        let slots = TaskSlots::new(1);
        slots.claim().unwrap().started("UPID:x");
        assert!(slots.claim_or_wait("d", counting()).is_none());
        assert!(slots.claim_or_wait("e", counting()).is_none());
        slots.ended("UPID:x");
        slots.ended("UPID:x");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_task_found_running_after_a_restart_takes_a_slot() {
        let slots = TaskSlots::new(1);
        slots.running("UPID:before-restart");
        assert!(slots.claim().is_none());
        slots.ended("UPID:before-restart");
        assert!(slots.claim().is_some());
    }
}
