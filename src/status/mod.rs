//! Status as Kubernetes tools read it: typed conditions with kstatus semantics, Events on
//! transitions, and the one way a status is written.

pub mod apply;
pub mod conditions;
pub mod events;
