//! The audit trail: a row before every mutating Proxmox call (who, which object and generation,
//! which phase, which call with its non-secret parameters) and a row after it (outcome,
//! duration, UPID, error). If the intent cannot be written the call is not made
//! ([`AuditStore::guarded`]); secrets are redacted before anything is stored ([`redact`]).
//!
//! Postgres serves when a database URL is given; otherwise an embedded SQLite file does.
//! Migrations are embedded and applied on connect. `sql` holds the statements both backends
//! share; `postgres` and `sqlite` bind and read them; `guard` holds the write-ahead rule and
//! the queue of outcomes waiting for the database; `retention` prunes old rows.

mod error;
mod guard;
mod model;
mod postgres;
pub mod redact;
mod retention;
mod sql;
mod sqlite;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

pub use error::{AUDIT_UNAVAILABLE_REASON, AuditError, Guarded};
pub use guard::{AuditedError, AuditedValue};
pub use model::{
    AuditPage, AuditQuery, AuditRecord, Intent, IntentId, Outcome, OutcomeKind, RecordedOutcome,
};
pub use retention::Retention;

/// How long a statement waits for a connection before the store counts as unavailable: long
/// enough to ride out a blip, short enough that a reconcile fails fast and backs off.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The audit schema's own migrations table, so it can share a database with other schemas.
const MIGRATIONS_TABLE: &str = "_lxc_operator_audit_migrations";

/// The audit store, shared by every controller (cheap to clone).
#[derive(Clone)]
pub struct AuditStore {
    db: Db,
    pending: Arc<guard::PendingOutcomes>,
    observer: crate::observe::Observed,
}

#[derive(Clone)]
enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl std::fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditStore")
            .field("backend", &self.backend())
            .field("pending_outcomes", &self.pending_outcomes())
            .finish()
    }
}

impl AuditStore {
    /// Postgres at `url` (`postgres://` or `postgresql://`), or, without a URL, the SQLite
    /// file at `sqlite_path` (created if missing). Applies the migrations either way.
    pub async fn connect(url: Option<&str>, sqlite_path: &Path) -> Result<Self, AuditError> {
        Self::connect_with(url, sqlite_path, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// [`connect`](Self::connect), giving up on an unreachable database after `acquire_timeout`.
    pub async fn connect_with(
        url: Option<&str>,
        sqlite_path: &Path,
        acquire_timeout: Duration,
    ) -> Result<Self, AuditError> {
        let db = match url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Db::Postgres(postgres::connect(url, acquire_timeout).await?)
            }
            Some(url) => {
                return Err(AuditError::UnsupportedUrl {
                    scheme: url.split_once(':').map_or("", |(scheme, _)| scheme).to_string(),
                });
            }
            None => Db::Sqlite(sqlite::connect(sqlite_path, acquire_timeout).await?),
        };
        Ok(Self {
            db,
            pending: Arc::default(),
            observer: None,
        })
    }

    /// Reports every intent and outcome write, and whether it landed, to `observer`.
    pub fn observed(mut self, observer: crate::observe::Observed) -> Self {
        self.observer = observer;
        self
    }

    fn count_write<T, E>(&self, record: &'static str, result: &Result<T, E>) {
        if let Some(o) = &self.observer {
            o.audit_write(record, if result.is_ok() { "written" } else { "failed" });
        }
    }

    /// `"postgres"` or `"sqlite"` (for `/readyz` and the status page).
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Postgres(_) => postgres::BACKEND,
            Db::Sqlite(_) => sqlite::BACKEND,
        }
    }

    /// Writes the intent of a call (its parameters redacted). Make the call only when this
    /// succeeds; [`guarded`](Self::guarded) does that for you.
    pub async fn record_intent(&self, intent: &Intent) -> Result<IntentId, AuditError> {
        let params = redact::redact_params(&intent.params);
        let at = now();
        let id = match &self.db {
            Db::Postgres(pool) => postgres::insert_intent(pool, at, intent, &params).await,
            Db::Sqlite(pool) => sqlite::insert_intent(pool, at, intent, &params).await,
        }
        .map_err(|e| AuditError::query(self.backend(), "record intent", e));
        self.count_write("intent", &id);
        Ok(IntentId(id?))
    }

    /// Writes how the call of intent `id` ended, and how long it took. Writing the same
    /// outcome twice is harmless (the first one stays).
    pub async fn record_outcome(
        &self,
        id: IntentId,
        outcome: &Outcome,
        duration: Duration,
    ) -> Result<(), AuditError> {
        self.write_outcome(id, now(), outcome, sql::millis(duration))
            .await
    }

    async fn write_outcome(
        &self,
        id: IntentId,
        at: DateTime<Utc>,
        outcome: &Outcome,
        duration_ms: i64,
    ) -> Result<(), AuditError> {
        let written = match &self.db {
            Db::Postgres(pool) => postgres::insert_outcome(pool, id.0, at, outcome, duration_ms).await,
            Db::Sqlite(pool) => sqlite::insert_outcome(pool, id.0, at, outcome, duration_ms).await,
        }
        .map_err(|e| AuditError::query(self.backend(), "record outcome", e));
        self.count_write("outcome", &written);
        written
    }

    /// Runs one of the trail's queries.
    pub async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, AuditError> {
        match &self.db {
            Db::Postgres(pool) => postgres::select(pool, query).await,
            Db::Sqlite(pool) => sqlite::select(pool, query).await,
        }
        .map_err(|e| AuditError::query(self.backend(), "query audit trail", e))
    }

    /// The database's plan for a query, to check that it uses its index.
    pub async fn explain(&self, query: &AuditQuery) -> Result<String, AuditError> {
        match &self.db {
            Db::Postgres(pool) => postgres::explain(pool, query).await,
            Db::Sqlite(pool) => sqlite::explain(pool, query).await,
        }
        .map_err(|e| AuditError::query(self.backend(), "explain audit query", e))
    }

    /// The calls made for one object, newest first.
    pub async fn by_object(&self, uid: &str, limit: u32) -> Result<Vec<AuditRecord>, AuditError> {
        self.query(&AuditQuery::ByObject {
            uid: uid.to_string(),
            limit,
        })
        .await
    }

    /// The calls made at or after `since`, oldest first.
    pub async fn since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<AuditRecord>, AuditError> {
        self.query(&AuditQuery::Since { since, limit }).await
    }

    /// The calls that ended as `outcome` at or after `since` (pending: begun at or after it),
    /// newest first.
    pub async fn by_outcome(
        &self,
        outcome: OutcomeKind,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        self.query(&AuditQuery::ByOutcome {
            outcome,
            since,
            limit,
        })
        .await
    }

    /// The latest calls, newest first (for the status page).
    pub async fn recent(&self, limit: u32) -> Result<Vec<AuditRecord>, AuditError> {
        self.query(&AuditQuery::Recent { limit }).await
    }

    /// One filtered page of the trail, newest first (for the status page's audit view): pass
    /// the last id of a page as `before` to read the next.
    pub async fn page(&self, page: AuditPage) -> Result<Vec<AuditRecord>, AuditError> {
        self.query(&AuditQuery::Page(page)).await
    }

    /// The newest intent's id (0 when the trail is empty): the status page polls it to tell
    /// its viewers that the trail changed, whichever replica wrote it.
    pub async fn latest_id(&self) -> Result<i64, AuditError> {
        let page = AuditPage {
            limit: 1,
            ..AuditPage::default()
        };
        Ok(self.page(page).await?.first().map_or(0, |r| r.id.0))
    }

    /// Deletes the calls whose intent is older than `older_than` (with their outcomes);
    /// returns how many calls were removed.
    pub async fn prune(&self, older_than: Duration) -> Result<u64, AuditError> {
        let cutoff = chrono::Duration::from_std(older_than)
            .ok()
            .and_then(|age| Utc::now().checked_sub_signed(age))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        match &self.db {
            Db::Postgres(pool) => postgres::prune(pool, cutoff).await,
            Db::Sqlite(pool) => sqlite::prune(pool, cutoff).await,
        }
        .map_err(|e| AuditError::query(self.backend(), "prune audit trail", e))
    }
}

/// Now, at the microsecond precision both backends store.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
