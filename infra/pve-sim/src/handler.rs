//! The contract between the request pipeline and the API handlers: what a handler sees (`Ctx`),
//! what it answers (`Reply`), and its signature (`Handler`). Handlers and the route table both
//! depend on this module; it depends on neither.

use crate::auth::Identity;
use crate::error::ApiResult;
use crate::state::{Sim, State};
use crate::tasks::Action;
use crate::validate::Params;
use crate::worker::Spec;
use serde_json::Value;
use std::sync::Arc;

/// A successful answer: `data` plus optional envelope extras (`total`).
pub struct Reply {
    pub data: Value,
    pub total: Option<usize>,
}

impl From<Value> for Reply {
    fn from(data: Value) -> Self {
        Reply { data, total: None }
    }
}

/// What a handler sees.
pub struct Ctx<'a> {
    pub sim: &'a Arc<Sim>,
    /// None only for unauthenticated endpoints.
    pub id: Option<&'a Identity>,
    pub params: &'a Params,
}

impl Ctx<'_> {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
    pub fn flag(&self, key: &str) -> bool {
        self.str(key) == Some("1")
    }
    pub fn node(&self) -> &str {
        self.str("node").unwrap_or_default()
    }
    pub fn vmid(&self) -> u32 {
        self.str("vmid").and_then(|v| v.parse().ok()).unwrap_or_default()
    }
    pub fn ident(&self) -> &Identity {
        self.id.expect("authenticated endpoint")
    }

    /// Starts a task on this request's node as this caller; returns the UPID as the reply.
    pub fn task(
        &self,
        st: &mut State,
        kind: &str,
        id: &str,
        lock: Option<&str>,
        action: Action,
        fail: Option<String>,
    ) -> Reply {
        let authid = self.ident().authid();
        let spec = Spec {
            node: self.node(),
            kind,
            id,
            authid: &authid,
            lock,
            action,
            fail,
        };
        Value::String(crate::worker::start(self.sim, st, spec)).into()
    }
}

/// An endpoint's handler; the pipeline has already authenticated, checked the declared
/// permission and validated the parameters.
pub type Handler = fn(&Ctx) -> ApiResult<Reply>;
