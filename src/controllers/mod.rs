//! The controllers, one folder per kind, each with a short driver that reads like its steps,
//! pure decisions in plain functions, and I/O in small modules. What they share sits here:
//! how a reconcile halts ([`halt`]), the one audited call ([`act`]) and the measure of each
//! reconcile ([`metered`]), and the worker slots with their queue ([`workers`]).

pub mod act;
pub mod container;
pub mod halt;
pub mod metered;
pub mod node;
pub mod template;
pub mod workers;

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use futures::{StreamExt, TryFuture};
use kube::Resource;
use kube::runtime::controller::{Action, Controller};
use serde::de::DeserializeOwned;

/// Runs a built controller until `shutdown` resolves (reconciles in flight finish), or until
/// the returned future is dropped (reconciles in flight are cancelled at their next await).
pub async fn drive<K, Ctx, Fut>(
    controller: Controller<K>,
    reconcile: impl FnMut(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: impl Fn(Arc<K>, &Fut::Error, Arc<Ctx>) -> Action,
    ctx: Ctx,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Debug + Unpin,
    Fut: TryFuture<Ok = Action> + Send + 'static,
    Fut::Error: std::error::Error + Send + 'static,
{
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(ctx))
        .for_each(|_| async {})
        .await;
}
