//! The `LxcContainer` controller: a short driver (`reconcile`) walks the pipeline phases, each
//! in its own module doing the I/O around the pure decisions of `crate::pipeline`. `run` keeps
//! the per-reconcile state (status being built, conditions, audit intents, Events); `delete`
//! is the finalizer's cleanup.

pub mod allocate;
pub mod context;
pub mod create;
pub mod delete;
pub mod discover;
pub mod locate;
pub mod power;
pub mod provision;
pub mod reconcile;
pub mod run;
pub mod settle;
pub mod ssh;
pub mod tune;

pub use context::ContainerCtx;
pub use reconcile::{FINALIZER, Prepared, prepare};
