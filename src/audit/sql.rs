//! The statements both backends run (numbered `$n` parameters work in Postgres and SQLite) and
//! the decoding of the columns they share; each backend binds and reads times and JSON itself.

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::model::{
    AuditPage, AuditQuery, AuditRecord, Intent, IntentId, Outcome, OutcomeKind, RecordedOutcome,
};

/// How many intents one `DELETE` of a prune removes (short statements, short locks).
pub(super) const PRUNE_BATCH: i64 = 10_000;

pub(super) const INSERT_INTENT: &str = "INSERT INTO audit_intents \
     (at, actor, object_kind, object_namespace, object_name, object_uid, generation, phase, \
      operation, node, vmid, params) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id";

/// Idempotent: a retried outcome whose first write did commit changes nothing.
pub(super) const INSERT_OUTCOME: &str = "INSERT INTO audit_outcomes \
     (intent_id, at, outcome, upid, error, error_class, duration_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (intent_id) DO NOTHING";

/// Outcomes go with their intents (`ON DELETE CASCADE`).
pub(super) const PRUNE: &str = "DELETE FROM audit_intents WHERE id IN \
     (SELECT id FROM audit_intents WHERE at < $1 ORDER BY at LIMIT $2)";

const COLUMNS: &str = "SELECT i.id, i.at, i.actor, i.object_kind, i.object_namespace, \
     i.object_name, i.object_uid, i.generation, i.phase, i.operation, i.node, i.vmid, i.params, \
     o.at AS outcome_at, o.outcome, o.upid, o.error, o.error_class, o.duration_ms ";

const BY_OBJECT: &str = "FROM audit_intents i LEFT JOIN audit_outcomes o ON o.intent_id = i.id \
     WHERE i.object_uid = $1 ORDER BY i.at DESC LIMIT $2";

const SINCE: &str = "FROM audit_intents i LEFT JOIN audit_outcomes o ON o.intent_id = i.id \
     WHERE i.at >= $1 ORDER BY i.at ASC LIMIT $2";

const BY_OUTCOME: &str = "FROM audit_outcomes o JOIN audit_intents i ON i.id = o.intent_id \
     WHERE o.outcome = $1 AND o.at >= $2 ORDER BY o.at DESC LIMIT $3";

const PENDING: &str = "FROM audit_intents i LEFT JOIN audit_outcomes o ON o.intent_id = i.id \
     WHERE o.intent_id IS NULL AND i.at >= $1 ORDER BY i.at DESC LIMIT $2";

const RECENT: &str = "FROM audit_intents i LEFT JOIN audit_outcomes o ON o.intent_id = i.id \
     ORDER BY i.at DESC LIMIT $1";

/// The `SELECT` for a query (its parameters are bound in the order of [`AuditQuery`]'s fields,
/// a `ByOutcome` binding the outcome label only when it is not pending).
pub(super) fn select(query: &AuditQuery) -> String {
    let from = match query {
        AuditQuery::ByObject { .. } => BY_OBJECT,
        AuditQuery::Since { .. } => SINCE,
        AuditQuery::ByOutcome {
            outcome: OutcomeKind::Pending,
            ..
        } => PENDING,
        AuditQuery::ByOutcome { .. } => BY_OUTCOME,
        AuditQuery::Recent { .. } => RECENT,
        AuditQuery::Page(page) => return format!("{COLUMNS}{}", page_from(page)),
    };
    format!("{COLUMNS}{from}")
}

/// A parameter of a page query, bound by each backend in its own representation.
pub(super) enum PageParam<'a> {
    Text(&'a str),
    Time(DateTime<Utc>),
    Int(i64),
}

/// The `FROM … LIMIT` of a page: only the filters given, numbered in the order of
/// [`page_params`]. A page of one stored outcome walks the outcomes' `(outcome, intent_id)`
/// index (its `intent_id` is the intent's id); every other page walks the intents by id, through
/// `(object_name, id)` or `(object_uid, id)` when one of those is given.
fn page_from(page: &AuditPage) -> String {
    let by_outcome = matches!(page.outcome, Some(OutcomeKind::Succeeded | OutcomeKind::Failed));
    let id = if by_outcome { "o.intent_id" } else { "i.id" };
    let mut clauses = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    if page.uid.is_some() {
        clauses.push(format!("i.object_uid = ${}", next()));
    }
    if page.name.is_some() {
        clauses.push(format!("i.object_name = ${}", next()));
    }
    if page.operation.is_some() {
        clauses.push(format!("i.operation = ${}", next()));
    }
    match page.outcome {
        Some(OutcomeKind::Pending) => clauses.push("o.intent_id IS NULL".into()),
        Some(_) => clauses.push(format!("o.outcome = ${}", next())),
        None => {}
    }
    if page.from.is_some() {
        clauses.push(format!("i.at >= ${}", next()));
    }
    if page.to.is_some() {
        clauses.push(format!("i.at < ${}", next()));
    }
    if page.before.is_some() {
        clauses.push(format!("{id} < ${}", next()));
    }
    let limit = next();
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", clauses.join(" AND "))
    };
    let from = if by_outcome {
        "FROM audit_outcomes o JOIN audit_intents i ON i.id = o.intent_id"
    } else {
        "FROM audit_intents i LEFT JOIN audit_outcomes o ON o.intent_id = i.id"
    };
    format!("{from} {filter}ORDER BY {id} DESC LIMIT ${limit}")
}

/// The parameters of a page query, in the order its statement numbers them.
pub(super) fn page_params(page: &AuditPage) -> Vec<PageParam<'_>> {
    let mut params = Vec::new();
    params.extend(page.uid.as_deref().map(PageParam::Text));
    params.extend(page.name.as_deref().map(PageParam::Text));
    params.extend(page.operation.as_deref().map(PageParam::Text));
    if let Some(outcome) = page.outcome.filter(|o| *o != OutcomeKind::Pending) {
        params.push(PageParam::Text(outcome.as_str()));
    }
    params.extend(page.from.map(PageParam::Time));
    params.extend(page.to.map(PageParam::Time));
    params.extend(page.before.map(|id| PageParam::Int(id.0)));
    params.push(PageParam::Int(i64::from(page.limit)));
    params
}

/// The outcome's columns as stored, without its time and duration.
pub(super) struct OutcomeColumns<'a> {
    pub outcome: &'static str,
    pub upid: Option<&'a str>,
    pub error: Option<&'a str>,
    pub error_class: Option<&'a str>,
}

impl<'a> OutcomeColumns<'a> {
    pub(super) fn of(outcome: &'a Outcome) -> Self {
        match outcome {
            Outcome::Succeeded { upid } => Self {
                outcome: OutcomeKind::Succeeded.as_str(),
                upid: upid.as_deref(),
                error: None,
                error_class: None,
            },
            Outcome::Failed { error, class, upid } => Self {
                outcome: OutcomeKind::Failed.as_str(),
                upid: upid.as_deref(),
                error: Some(error),
                error_class: Some(class),
            },
        }
    }
}

/// Reads a selected row; the backend has already read its times and parameters.
pub(super) fn decode<R>(
    row: &R,
    at: DateTime<Utc>,
    outcome_at: Option<DateTime<Utc>>,
    params: serde_json::Value,
) -> Result<AuditRecord, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    let intent = Intent {
        actor: row.try_get("actor")?,
        object_kind: row.try_get("object_kind")?,
        object_namespace: row.try_get("object_namespace")?,
        object_name: row.try_get("object_name")?,
        object_uid: row.try_get("object_uid")?,
        generation: row.try_get("generation")?,
        phase: row.try_get("phase")?,
        operation: row.try_get("operation")?,
        node: row.try_get("node")?,
        vmid: row.try_get("vmid")?,
        params,
    };
    let outcome_label: Option<String> = row.try_get("outcome")?;
    let outcome = match (outcome_label.as_deref(), outcome_at) {
        (Some(label), Some(at)) => {
            let upid: Option<String> = row.try_get("upid")?;
            let outcome = match label {
                "succeeded" => Outcome::Succeeded { upid },
                "failed" => Outcome::Failed {
                    error: row.try_get::<Option<String>, _>("error")?.unwrap_or_default(),
                    class: row
                        .try_get::<Option<String>, _>("error_class")?
                        .unwrap_or_default(),
                    upid,
                },
                other => {
                    return Err(sqlx::Error::Decode(
                        format!("unknown outcome label {other:?}").into(),
                    ));
                }
            };
            let duration_ms: Option<i64> = row.try_get("duration_ms")?;
            Some(RecordedOutcome {
                at,
                outcome,
                duration_ms: u64::try_from(duration_ms.unwrap_or(0)).unwrap_or(0),
            })
        }
        _ => None,
    };
    Ok(AuditRecord {
        id: IntentId(row.try_get("id")?),
        at,
        intent,
        outcome,
    })
}

/// Milliseconds as stored (saturating: a call does not run for 292 million years).
pub(super) fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
