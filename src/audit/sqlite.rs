//! The embedded SQLite backend (the default without a database URL): one file in WAL mode with
//! full sync (an intent is on disk before its call is made), its migrations, and the bindings
//! of the shared statements (times as fixed-width UTC text, which sorts, parameters as JSON text).

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite};

use super::MIGRATIONS_TABLE;
use super::error::AuditError;
use super::model::{AuditQuery, AuditRecord, Intent, Outcome, OutcomeKind};
use super::sql::{self, OutcomeColumns};

pub(super) const BACKEND: &str = "sqlite";

const MAX_CONNECTIONS: u32 = 4;

/// Every stored time has this shape (`2025-01-02T03:04:05.123456Z`), so text order is time order.
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// Opens (creating the file if missing, never its directory: a mistyped path must not keep
/// the trail where nobody looks) and applies the migrations.
pub(super) async fn connect(path: &Path, acquire_timeout: Duration) -> Result<SqlitePool, AuditError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir())
    {
        return Err(AuditError::MissingDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(acquire_timeout);
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|e| AuditError::query(BACKEND, "open", e))?;
    let mut migrator = sqlx::migrate!("src/audit/migrations/sqlite");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.run(&pool).await.map_err(|source| AuditError::Migrate {
        backend: BACKEND,
        source,
    })?;
    Ok(pool)
}

pub(super) async fn insert_intent(
    pool: &SqlitePool,
    at: DateTime<Utc>,
    intent: &Intent,
    params: &serde_json::Value,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sql::INSERT_INTENT)
        .bind(time_text(at))
        .bind(intent.actor.as_str())
        .bind(intent.object_kind.as_str())
        .bind(intent.object_namespace.as_deref())
        .bind(intent.object_name.as_str())
        .bind(intent.object_uid.as_str())
        .bind(intent.generation)
        .bind(intent.phase.as_str())
        .bind(intent.operation.as_str())
        .bind(intent.node.as_deref())
        .bind(intent.vmid)
        .bind(params.to_string())
        .fetch_one(pool)
        .await
}

pub(super) async fn insert_outcome(
    pool: &SqlitePool,
    intent_id: i64,
    at: DateTime<Utc>,
    outcome: &Outcome,
    duration_ms: i64,
) -> Result<(), sqlx::Error> {
    let columns = OutcomeColumns::of(outcome);
    sqlx::query(sql::INSERT_OUTCOME)
        .bind(intent_id)
        .bind(time_text(at))
        .bind(columns.outcome)
        .bind(columns.upid)
        .bind(columns.error)
        .bind(columns.error_class)
        .bind(duration_ms)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn select(pool: &SqlitePool, query: &AuditQuery) -> Result<Vec<AuditRecord>, sqlx::Error> {
    let rows = bind(sqlx::query(AssertSqlSafe(sql::select(query))), query)
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

/// The plan SQLite chooses for a query (`EXPLAIN QUERY PLAN`, one line per step).
pub(super) async fn explain(pool: &SqlitePool, query: &AuditQuery) -> Result<String, sqlx::Error> {
    let text = format!("EXPLAIN QUERY PLAN {}", sql::select(query));
    let rows = bind(sqlx::query(AssertSqlSafe(text)), query)
        .fetch_all(pool)
        .await?;
    let lines: Result<Vec<String>, _> = rows.iter().map(|row| row.try_get("detail")).collect();
    Ok(lines?.join("\n"))
}

/// Deletes intents (with their outcomes) older than `cutoff`, in batches; returns how many.
pub(super) async fn prune(pool: &SqlitePool, cutoff: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let cutoff = time_text(cutoff);
    let mut deleted = 0;
    loop {
        let done = sqlx::query(sql::PRUNE)
            .bind(cutoff.as_str())
            .bind(sql::PRUNE_BATCH)
            .execute(pool)
            .await?
            .rows_affected();
        deleted += done;
        if done < sql::PRUNE_BATCH as u64 {
            return Ok(deleted);
        }
    }
}

fn bind<'q>(q: Query<'q, Sqlite, SqliteArguments>, query: &AuditQuery) -> Query<'q, Sqlite, SqliteArguments> {
    match query {
        AuditQuery::ByObject { uid, limit } => q.bind(uid.clone()).bind(i64::from(*limit)),
        AuditQuery::Since { since, limit } => q.bind(time_text(*since)).bind(i64::from(*limit)),
        AuditQuery::ByOutcome {
            outcome: OutcomeKind::Pending,
            since,
            limit,
        } => q.bind(time_text(*since)).bind(i64::from(*limit)),
        AuditQuery::ByOutcome {
            outcome,
            since,
            limit,
        } => q
            .bind(outcome.as_str())
            .bind(time_text(*since))
            .bind(i64::from(*limit)),
        AuditQuery::Recent { limit } => q.bind(i64::from(*limit)),
        AuditQuery::Page(page) => sql::page_params(page)
            .into_iter()
            .fold(q, |q, param| match param {
                sql::PageParam::Text(text) => q.bind(text.to_string()),
                sql::PageParam::Time(t) => q.bind(time_text(t)),
                sql::PageParam::Int(n) => q.bind(n),
            }),
    }
}

fn decode(row: &SqliteRow) -> Result<AuditRecord, sqlx::Error> {
    let at = parse_time(&row.try_get::<String, _>("at")?)?;
    let outcome_at = match row.try_get::<Option<String>, _>("outcome_at")? {
        Some(text) => Some(parse_time(&text)?),
        None => None,
    };
    let params_text: String = row.try_get("params")?;
    let params = serde_json::from_str(&params_text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    sql::decode(row, at, outcome_at, params)
}

fn time_text(at: DateTime<Utc>) -> String {
    at.format(TIME_FORMAT).to_string()
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
