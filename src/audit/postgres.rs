//! The Postgres backend: a small pool that gives up quickly when the database is gone (a
//! reconcile must fail fast and back off, not hang), its migrations, and the bindings of the
//! shared statements (times as `timestamptz`, parameters as `jsonb`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Postgres, Row};

use super::MIGRATIONS_TABLE;
use super::error::AuditError;
use super::model::{AuditQuery, AuditRecord, Intent, Outcome, OutcomeKind};
use super::sql::{self, OutcomeColumns};

pub(super) const BACKEND: &str = "postgres";

const MAX_CONNECTIONS: u32 = 8;

/// Connects and applies the migrations (under Postgres' advisory lock, so replicas starting
/// together take turns).
pub(super) async fn connect(url: &str, acquire_timeout: Duration) -> Result<PgPool, AuditError> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| AuditError::query(BACKEND, "parse database URL", e))?;
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|e| AuditError::query(BACKEND, "connect", e))?;
    let mut migrator = sqlx::migrate!("src/audit/migrations/postgres");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.run(&pool).await.map_err(|source| AuditError::Migrate {
        backend: BACKEND,
        source,
    })?;
    Ok(pool)
}

pub(super) async fn insert_intent(
    pool: &PgPool,
    at: DateTime<Utc>,
    intent: &Intent,
    params: &serde_json::Value,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sql::INSERT_INTENT)
        .bind(at)
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
        .bind(Json(params))
        .fetch_one(pool)
        .await
}

pub(super) async fn insert_outcome(
    pool: &PgPool,
    intent_id: i64,
    at: DateTime<Utc>,
    outcome: &Outcome,
    duration_ms: i64,
) -> Result<(), sqlx::Error> {
    let columns = OutcomeColumns::of(outcome);
    sqlx::query(sql::INSERT_OUTCOME)
        .bind(intent_id)
        .bind(at)
        .bind(columns.outcome)
        .bind(columns.upid)
        .bind(columns.error)
        .bind(columns.error_class)
        .bind(duration_ms)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn select(pool: &PgPool, query: &AuditQuery) -> Result<Vec<AuditRecord>, sqlx::Error> {
    let rows = bind(sqlx::query(AssertSqlSafe(sql::select(query))), query)
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

/// The plan Postgres chooses for a query (`EXPLAIN`, one line per plan node).
pub(super) async fn explain(pool: &PgPool, query: &AuditQuery) -> Result<String, sqlx::Error> {
    let text = format!("EXPLAIN {}", sql::select(query));
    let rows = bind(sqlx::query(AssertSqlSafe(text)), query)
        .fetch_all(pool)
        .await?;
    let lines: Result<Vec<String>, _> = rows.iter().map(|row| row.try_get(0)).collect();
    Ok(lines?.join("\n"))
}

/// Deletes intents (with their outcomes) older than `cutoff`, in batches; returns how many.
pub(super) async fn prune(pool: &PgPool, cutoff: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    loop {
        let done = sqlx::query(sql::PRUNE)
            .bind(cutoff)
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

fn bind<'q>(q: Query<'q, Postgres, PgArguments>, query: &AuditQuery) -> Query<'q, Postgres, PgArguments> {
    match query {
        AuditQuery::ByObject { uid, limit } => q.bind(uid.clone()).bind(i64::from(*limit)),
        AuditQuery::Since { since, limit } => q.bind(*since).bind(i64::from(*limit)),
        AuditQuery::ByOutcome {
            outcome: OutcomeKind::Pending,
            since,
            limit,
        } => q.bind(*since).bind(i64::from(*limit)),
        AuditQuery::ByOutcome {
            outcome,
            since,
            limit,
        } => q.bind(outcome.as_str()).bind(*since).bind(i64::from(*limit)),
        AuditQuery::Recent { limit } => q.bind(i64::from(*limit)),
        AuditQuery::Page(page) => sql::page_params(page)
            .into_iter()
            .fold(q, |q, param| match param {
                sql::PageParam::Text(text) => q.bind(text.to_string()),
                sql::PageParam::Time(t) => q.bind(t),
                sql::PageParam::Int(n) => q.bind(n),
            }),
    }
}

fn decode(row: &PgRow) -> Result<AuditRecord, sqlx::Error> {
    let Json(params): Json<serde_json::Value> = row.try_get("params")?;
    sql::decode(row, row.try_get("at")?, row.try_get("outcome_at")?, params)
}
