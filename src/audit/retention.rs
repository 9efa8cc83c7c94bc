//! Keeping the trail in shape while the operator runs: queued outcomes are flushed often, and
//! rows older than the configured retention are pruned now and then.

use std::time::Duration;

use super::AuditStore;

/// How long the trail is kept and how often the upkeep runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Calls older than this are deleted; `None` keeps everything.
    pub keep: Option<Duration>,
    /// How often old calls are pruned.
    pub prune_every: Duration,
    /// How often queued outcomes are retried.
    pub flush_every: Duration,
}

impl Default for Retention {
    /// 90 days, pruned hourly; queued outcomes retried every 10 seconds.
    fn default() -> Self {
        Self {
            keep: Some(Duration::from_secs(90 * 24 * 3600)),
            prune_every: Duration::from_secs(3600),
            flush_every: Duration::from_secs(10),
        }
    }
}

impl AuditStore {
    /// Runs the upkeep until the task is dropped or aborted (spawn it next to the controllers).
    /// Failures are logged and tried again at the next tick.
    pub async fn maintain(&self, retention: Retention) {
        let mut flush = tokio::time::interval(retention.flush_every);
        let mut prune = tokio::time::interval(retention.prune_every);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = flush.tick() => {
                    if self.pending_outcomes() > 0 {
                        match self.flush_pending().await {
                            Ok(written) => tracing::info!(written, "queued audit outcomes written"),
                            Err(e) => tracing::warn!(error = %e, "queued audit outcomes still waiting"),
                        }
                    }
                }
                _ = prune.tick() => {
                    let Some(keep) = retention.keep else { continue };
                    match self.prune(keep).await {
                        Ok(0) => {}
                        Ok(deleted) => tracing::info!(deleted, "pruned old audit records"),
                        Err(e) => tracing::warn!(error = %e, "pruning the audit trail failed"),
                    }
                }
            }
        }
    }
}
