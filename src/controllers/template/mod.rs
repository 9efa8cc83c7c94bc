//! `LxcTemplate` controller: a short driver (`reconcile`) resolves and digests the template's
//! provisioning, then on every Ready node observes the OS template (`observe`), decides
//! (`plan`, pure) and starts a tracked download where it is missing (`download`); `ready`
//! derives the status (pure).

pub mod context;
pub mod download;
pub mod observe;
pub mod plan;
pub mod ready;
pub mod reconcile;

pub use context::TemplateCtx;
