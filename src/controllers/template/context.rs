//! What the template controller adds to the [`Shared`] context: the downloads this process
//! started, by (node, volid) — the watch cache may hand a reconcile an object whose status does
//! not show the task yet, and a second download of the same template must never start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::cluster::Shared;

/// The template controller's context.
#[derive(Clone)]
pub struct TemplateCtx {
    pub shared: Shared,
    /// Downloads in flight by (node, volid): their UPIDs.
    pub inflight: Arc<Mutex<HashMap<(String, String), String>>>,
}

impl std::ops::Deref for TemplateCtx {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl TemplateCtx {
    pub fn new(shared: Shared) -> Self {
        Self {
            shared,
            inflight: Default::default(),
        }
    }

    /// The download this process started on `key`, if it still runs.
    pub fn inflight(&self, key: &(String, String)) -> Option<String> {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Records (`Some`) or forgets (`None`) the download in flight on `key`.
    pub fn set_inflight(&self, key: (String, String), upid: Option<String>) {
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        match upid {
            Some(upid) => map.insert(key, upid),
            None => map.remove(&key),
        };
    }
}
