//! How many reconciles of one controller run at once, and how many wait: kube's runner hands
//! over every ready object's reconcile (it still runs one reconcile per object at a time), and
//! [`Workers`] admits `limit` of them; the others wait here, counted as the controller's queue
//! (controller-runtime's `workqueue_depth`: objects due for a reconcile that no worker has
//! taken yet). A requeue still waiting for its time is not in the queue, as there.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::cluster::ReconcileMetrics;

/// The worker slots of one controller.
#[derive(Clone)]
pub struct Workers {
    slots: Option<Arc<Semaphore>>,
    controller: &'static str,
    metrics: Option<Arc<dyn ReconcileMetrics>>,
}

/// A worker slot, held for one reconcile.
pub struct Slot(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl Workers {
    /// `limit` reconciles of `controller` at once (0: no limit, nothing ever queues).
    pub fn new(limit: u16, controller: &'static str, metrics: Option<Arc<dyn ReconcileMetrics>>) -> Self {
        Self {
            slots: (limit > 0).then(|| Arc::new(Semaphore::new(usize::from(limit)))),
            controller,
            metrics,
        }
    }

    /// Waits for a free worker, counted in the queue while it waits (a cancelled wait leaves it).
    pub async fn admit(&self) -> Slot {
        let Some(slots) = &self.slots else {
            return Slot(None);
        };
        let _queued = Queued::enter(self);
        // The semaphore is never closed.
        Slot(slots.clone().acquire_owned().await.ok())
    }
}

/// One entry in the queue, for as long as it lives.
struct Queued<'a>(&'a Workers);

impl<'a> Queued<'a> {
    fn enter(workers: &'a Workers) -> Self {
        if let Some(m) = &workers.metrics {
            m.queued(workers.controller, 1);
        }
        Self(workers)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if let Some(m) = &self.0.metrics {
            m.queued(self.0.controller, -1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Depth(AtomicI64);

    impl ReconcileMetrics for Depth {
        fn reconciled(&self, _: &'static str, _: &'static str, _: &'static str, _: &str, _: f64) {}
        fn active(&self, _: &'static str, _: i64) {}
        fn queued(&self, _: &'static str, delta: i64) {
            self.0.fetch_add(delta, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn reconciles_beyond_the_limit_wait_and_are_counted_as_the_queue() {
        let depth = Arc::new(Depth::default());
        let workers = Workers::new(2, "LxcContainer", Some(depth.clone()));
        let (release, released) = tokio::sync::watch::channel(false);
        let running = Arc::new(AtomicI64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (workers, running, mut released) = (workers.clone(), running.clone(), released.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = workers.admit().await;
                running.fetch_add(1, Ordering::SeqCst);
                let _ = released.wait_for(|r| *r).await;
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(running.load(Ordering::SeqCst), 2, "two workers");
        assert_eq!(depth.0.load(Ordering::SeqCst), 3, "three wait");
        // A waiting reconcile cancelled (leadership lost) leaves the queue.
        tasks.pop().unwrap().abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(depth.0.load(Ordering::SeqCst), 2);
        release.send(true).unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(running.load(Ordering::SeqCst), 4);
        assert_eq!(depth.0.load(Ordering::SeqCst), 0, "the queue drains");
    }

    #[tokio::test]
    async fn without_a_limit_nothing_queues() {
        let depth = Arc::new(Depth::default());
        let workers = Workers::new(0, "ProxmoxNode", Some(depth.clone()));
        let slots: Vec<Slot> = futures::future::join_all((0..50).map(|_| workers.admit())).await;
        assert_eq!(slots.len(), 50);
        assert_eq!(depth.0.load(Ordering::SeqCst), 0);
    }
}
