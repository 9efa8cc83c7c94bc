//! Status helpers shared by every controller: typed conditions with kstatus semantics.

pub mod conditions;
pub mod events;
