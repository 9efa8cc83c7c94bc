//! The controllers, one folder per kind, each with a short driver that reads like its steps,
//! pure decisions in plain functions, and I/O in small modules. What they share sits here:
//! how a reconcile halts ([`halt`]), the one audited call ([`act`]) and the measure of each
//! reconcile ([`metered`]).

pub mod act;
pub mod container;
pub mod halt;
pub mod metered;
pub mod node;
pub mod template;
