//! The node's task slots: `maxConcurrentTasks` counts the operator's tasks on a node from the
//! call that starts one until the operator sees it end (its UPID), not only the starting call —
//! a real node serialises creates on storage locks, and a task that merely started still holds
//! them. A caller claims a slot before the audited call; a started task keeps it until
//! [`crate::proxmox::ProxmoxClient::check_task`] finds it stopped. A task found running that this
//! process did not start (after a restart) is counted from then on.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
struct State {
    limit: usize,
    /// Slots claimed for a call not answered yet.
    claimed: usize,
    /// UPIDs of tasks started and not yet seen to end.
    running: HashSet<String>,
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

    /// Tasks running or about to (claimed), and the limit.
    pub fn busy(&self) -> (usize, usize) {
        let s = self.state();
        (s.claimed + s.running.len(), s.limit)
    }

    /// A task seen running (counted even when this process did not start it).
    pub fn running(&self, upid: &str) {
        self.state().running.insert(upid.to_string());
    }

    /// A task seen stopped (or gone): its slot is free.
    pub fn ended(&self, upid: &str) {
        self.state().running.remove(upid);
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
    fn a_task_found_running_after_a_restart_takes_a_slot() {
        let slots = TaskSlots::new(1);
        slots.running("UPID:before-restart");
        assert!(slots.claim().is_none());
        slots.ended("UPID:before-restart");
        assert!(slots.claim().is_some());
    }
}
