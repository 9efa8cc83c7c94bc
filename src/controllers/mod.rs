//! The controllers, one folder per kind. Each has a short reconcile driver; decisions are pure
//! functions tested without I/O.

pub mod container;
pub mod node;
pub mod template;
