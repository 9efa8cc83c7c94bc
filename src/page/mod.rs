//! The read-only status page: server-rendered HTML (maud, escaping by default) on its own
//! listener, read from the page's own watch caches and the audit store — no API-server call per
//! view, and the same on a replica that does not lead. Live through server-sent events
//! (`/events`) and one small external script; without JavaScript it is plain pages.
//!
//! `caches` owns the watches and the change feed, `index` the overview's container index kept
//! with them, `server` the routes and the security rules (GET and HEAD only, optional bearer
//! token, CSP and friends), `filter` the query parameters, `views` the HTML.

pub mod caches;
pub mod filter;
mod index;
pub mod server;
mod views;

pub use caches::{Change, ContainerWriter, PageCaches};
pub use server::{PageState, router, serve};
