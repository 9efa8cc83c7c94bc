//! The audit trail against real PostgreSQL (the test world's server, and a private one that is
//! stopped mid-run) and the embedded SQLite default: write-ahead, nothing lost after an outage,
//! migrations on empty and migrated databases, redaction, queries served by their indexes.

// This test acts on Proxmox (or the audit trail) directly, behind the operator's back; the
// operator itself may only do so through controllers::act::Actor (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use lxc_operator::audit::{
    AuditError, AuditQuery, AuditStore, Guarded, Intent, Outcome, OutcomeKind, redact::REDACTED,
};
use lxc_operator::proxmox::{Error as ProxmoxError, ErrorClass, Upid};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

const UPID_CREATE: &str = "UPID:pve1:000A1B2C:0000ABCD:65A1B2C3:vzcreate:120:root@pam!operator:";
const UPID_START: &str = "UPID:pve1:000A1B2D:0000ABCE:65A1B2C4:vzstart:120:root@pam!operator:";
const UPID_DESTROY: &str = "UPID:pve1:000A1B2E:0000ABCF:65A1B2C5:vzdestroy:120:root@pam!operator:";

fn seq() -> usize {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A fresh, empty database on the test world's Postgres (tests never share one).
async fn fresh_database() -> String {
    create_database(&test_world::postgres().url(), test_world::postgres().port).await
}

async fn create_database(admin_url: &str, port: u16) -> String {
    let name = format!("audit_{}_{}", std::process::id(), seq());
    let mut conn = PgConnection::connect(admin_url).await.expect("connect as admin");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    format!("postgres://postgres@127.0.0.1:{port}/{name}")
}

/// A SQLite path inside a fresh directory (the store creates the file, never the directory).
fn sqlite_path() -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("lxc-audit-test-{}-{}", std::process::id(), seq()))
        .join("state");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("audit.db")
}

fn remove_sqlite(path: &Path) {
    if let Some(dir) = path.parent().and_then(Path::parent) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn intent(uid: &str, operation: &str, params: serde_json::Value) -> Intent {
    Intent {
        actor: "lxc-operator/lxc-operator-0".into(),
        object_kind: "LxcContainer".into(),
        object_namespace: Some("web".into()),
        object_name: "frontend".into(),
        object_uid: uid.into(),
        generation: 3,
        phase: "apply".into(),
        operation: operation.into(),
        node: Some("pve1".into()),
        vmid: Some(120),
        params,
    }
}

fn upid(text: &str) -> Upid {
    Upid::parse(text).expect("valid UPID")
}

fn locked(message: &str) -> ProxmoxError {
    ProxmoxError::Api {
        operation: "start container".into(),
        status: 500,
        class: ErrorClass::Locked,
        message: message.into(),
        fields: Default::default(),
    }
}

/// Intents, outcomes and every query, the same on both backends.
async fn records_and_queries(store: &AuditStore) {
    let uid = format!("uid-behaviour-{}", seq());
    let before = Utc::now() - chrono::Duration::seconds(1);
    let created = store
        .guarded(
            &intent(
                &uid,
                "create container",
                json!({"vmid": 120, "hostname": "frontend"}),
            ),
            || async { Ok::<_, ProxmoxError>(upid(UPID_CREATE)) },
        )
        .await
        .expect("create succeeds");
    assert_eq!(created.as_str(), UPID_CREATE);
    let failed = store
        .guarded(&intent(&uid, "start container", json!({})), || async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Err::<Upid, _>(locked("CT 120 is locked (create)"))
        })
        .await;
    assert!(
        matches!(
            &failed,
            Err(Guarded::Call(ProxmoxError::Api {
                class: ErrorClass::Locked,
                ..
            }))
        ),
        "the call's own error comes back: {failed:?}"
    );
    let pending = store
        .record_intent(&intent(&uid, "destroy container", json!({"purge": 1})))
        .await
        .unwrap();

    let records = store.by_object(&uid, 10).await.unwrap();
    let ops: Vec<&str> = records.iter().map(|r| r.intent.operation.as_str()).collect();
    assert_eq!(
        ops,
        ["destroy container", "start container", "create container"],
        "newest first"
    );
    let [destroy, start, create] = records.as_slice() else {
        unreachable!()
    };
    assert_eq!(
        create.intent,
        intent(
            &uid,
            "create container",
            json!({"vmid": 120, "hostname": "frontend"})
        )
    );
    assert_eq!(create.outcome_kind(), OutcomeKind::Succeeded);
    let create_outcome = create.outcome.as_ref().unwrap();
    assert_eq!(create_outcome.outcome.upid(), Some(UPID_CREATE));
    assert!(create_outcome.at >= create.at);
    let start_outcome = start.outcome.as_ref().unwrap();
    assert_eq!(
        start_outcome.outcome,
        Outcome::Failed {
            error: "start container: Proxmox answered 500: CT 120 is locked (create)".into(),
            class: "locked".into(),
            upid: None,
        }
    );
    assert!(
        start_outcome.duration_ms >= 30,
        "duration recorded: {}",
        start_outcome.duration_ms
    );
    assert_eq!(destroy.id, pending);
    assert_eq!(destroy.outcome_kind(), OutcomeKind::Pending);

    let is_ours = |r: &&lxc_operator::audit::AuditRecord| r.intent.object_uid == uid;
    let by = |kind| async move { store.by_outcome(kind, before, 1000).await.unwrap() };
    assert_eq!(by(OutcomeKind::Failed).await.iter().filter(is_ours).count(), 1);
    assert_eq!(by(OutcomeKind::Succeeded).await.iter().filter(is_ours).count(), 1);
    let pending_now = by(OutcomeKind::Pending).await;
    assert_eq!(
        pending_now
            .iter()
            .filter(is_ours)
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        [pending]
    );

    // The outcome arrives; writing it twice (a retried flush) changes nothing.
    let destroyed = Outcome::Succeeded {
        upid: Some(UPID_DESTROY.into()),
    };
    store
        .record_outcome(pending, &destroyed, Duration::from_millis(1500))
        .await
        .unwrap();
    store
        .record_outcome(pending, &Outcome::Succeeded { upid: None }, Duration::ZERO)
        .await
        .unwrap();
    assert!(!by(OutcomeKind::Pending).await.iter().any(|r| r.id == pending));
    let destroy = &store.by_object(&uid, 1).await.unwrap()[0];
    assert_eq!(
        destroy.outcome.as_ref().map(|o| (&o.outcome, o.duration_ms)),
        Some((&destroyed, 1500))
    );

    let since: Vec<_> = store.since(before, 10_000).await.unwrap();
    let ours: Vec<_> = since.iter().filter(is_ours).map(|r| r.id).collect();
    assert_eq!(
        ours,
        records.iter().rev().map(|r| r.id).collect::<Vec<_>>(),
        "oldest first"
    );
    assert!(since.windows(2).all(|w| w[0].at <= w[1].at));
    let recent = store.recent(2).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert!(recent[0].at >= recent[1].at, "newest first");
}

#[tokio::test]
async fn sqlite_is_the_default_and_records_and_queries() {
    let path = sqlite_path();
    let store = AuditStore::connect(None, &path).await.expect("open sqlite");
    assert_eq!(store.backend(), "sqlite");
    assert!(path.exists(), "file and directory created");
    records_and_queries(&store).await;
    let mode: String = {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(mode, "wal");
    remove_sqlite(&path);
}

#[tokio::test]
async fn postgres_records_and_queries() {
    let store = AuditStore::connect(Some(&fresh_database().await), Path::new("unused.db"))
        .await
        .expect("connect to postgres");
    assert_eq!(store.backend(), "postgres");
    records_and_queries(&store).await;
}

/// The write-ahead rule across a real outage: Postgres stops in the middle of a call.
#[tokio::test]
async fn write_ahead_holds_when_postgres_stops_mid_run() {
    let mut pg = test_world::PrivatePostgres::start().expect("start private postgres");
    let url = create_database(&pg.url(), pg.port).await;
    // Unavailable after one second, so the outage costs the test little time.
    let store = AuditStore::connect_with(Some(&url), Path::new("unused.db"), Duration::from_secs(1))
        .await
        .unwrap();
    let calls = AtomicUsize::new(0);
    let uid = "uid-outage";

    let calls_ref = &calls;
    store
        .guarded(&intent(uid, "create container", json!({})), move || async move {
            calls_ref.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ProxmoxError>(upid(UPID_CREATE))
        })
        .await
        .expect("first call while postgres is up");

    // Postgres goes away while the call runs: the call's result still comes back, and its
    // outcome waits in memory.
    let pg_ref = &mut pg;
    let started = store
        .guarded(&intent(uid, "start container", json!({})), move || async move {
            calls_ref.fetch_add(1, Ordering::SeqCst);
            pg_ref.stop().expect("stop postgres");
            Ok::<_, ProxmoxError>(upid(UPID_START))
        })
        .await
        .expect("the call was made; its result is returned");
    assert_eq!(started.as_str(), UPID_START);
    let call_ended = Utc::now();
    assert_eq!(store.pending_outcomes(), 1);

    // While it is away no call is made at all.
    let waited = Instant::now();
    let refused = store
        .guarded(&intent(uid, "stop container", json!({})), move || async move {
            calls_ref.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ProxmoxError>(())
        })
        .await;
    match refused {
        Err(Guarded::AuditUnavailable(e)) => {
            eprintln!("while postgres is down: {e}");
            assert!(e.is_unavailable(), "{e}");
        }
        other => panic!("expected AuditUnavailable, got {other:?}"),
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "no Proxmox call without an intent row"
    );
    assert!(
        waited.elapsed() < Duration::from_secs(3),
        "fails fast: {:?}",
        waited.elapsed()
    );
    assert!(store.flush_pending().await.is_err(), "still away");
    assert_eq!(store.pending_outcomes(), 1, "kept for later");

    // It returns: the queued outcome is written, calls are made again, nothing was lost.
    pg.restart().expect("restart postgres");
    assert_eq!(store.flush_pending().await.unwrap(), 1);
    assert_eq!(store.pending_outcomes(), 0);
    store
        .guarded(&intent(uid, "destroy container", json!({})), move || async move {
            calls_ref.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ProxmoxError>(upid(UPID_DESTROY))
        })
        .await
        .expect("calls go through again");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let records = store.by_object(uid, 10).await.unwrap();
    let seen: Vec<(&str, Option<&str>)> = records
        .iter()
        .map(|r| {
            let upid = r.outcome.as_ref().and_then(|o| o.outcome.upid());
            (r.intent.operation.as_str(), upid)
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("destroy container", Some(UPID_DESTROY)),
            ("start container", Some(UPID_START)),
            ("create container", Some(UPID_CREATE)),
        ],
        "every call made is in the trail with its outcome; the refused one is not"
    );
    let flushed = records[1].outcome.as_ref().unwrap();
    assert!(
        flushed.at <= call_ended,
        "the outcome keeps the time the call ended"
    );
}

#[tokio::test]
async fn unreachable_postgres_is_reported_unavailable() {
    let url = format!(
        "postgres://postgres:hunter2@127.0.0.1:{}/audit",
        test_world::free_port()
    );
    let tried = Instant::now();
    let err = AuditStore::connect_with(Some(&url), Path::new("unused.db"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        tried.elapsed() < Duration::from_secs(2),
        "gives up after its timeout"
    );
    assert!(
        !err.to_string().contains("hunter2"),
        "no password in errors: {err}"
    );
    let err = AuditStore::connect(Some("mysql://root:hunter2@db/audit"), Path::new("unused.db"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuditError::UnsupportedUrl { scheme } if scheme == "mysql"),
        "{err}"
    );
    assert!(!err.to_string().contains("hunter2"));
}

#[tokio::test]
async fn migrations_apply_to_empty_and_to_migrated_databases() {
    // Postgres: empty, then again (already migrated), then two replicas at once.
    let url = fresh_database().await;
    let first = AuditStore::connect(Some(&url), Path::new("unused.db"))
        .await
        .unwrap();
    let id = first
        .record_intent(&intent("uid-migrate", "create container", json!({})))
        .await
        .unwrap();
    drop(first);
    let again = AuditStore::connect(Some(&url), Path::new("unused.db"))
        .await
        .expect("re-run migrations");
    assert_eq!(
        again.by_object("uid-migrate", 5).await.unwrap()[0].id,
        id,
        "data kept"
    );
    let url = fresh_database().await;
    let (a, b) = tokio::join!(
        AuditStore::connect(Some(&url), Path::new("unused.db")),
        AuditStore::connect(Some(&url), Path::new("unused.db")),
    );
    a.expect("replica a");
    b.expect("replica b");

    // SQLite: a new file, then the same file again.
    let path = sqlite_path();
    let first = AuditStore::connect(None, &path).await.unwrap();
    let id = first
        .record_intent(&intent("uid-migrate", "create container", json!({})))
        .await
        .unwrap();
    drop(first);
    let again = AuditStore::connect(None, &path)
        .await
        .expect("re-open migrated sqlite");
    assert_eq!(
        again.by_object("uid-migrate", 5).await.unwrap()[0].id,
        id,
        "data kept"
    );
    remove_sqlite(&path);
}

const SECRET: &str = "S3cr3t-Root-Pa55";
const TOKEN: &str = "0b1e9c5e-7d2a-4c1f-9e8b-token-value";

/// A call with secret parameters whose error text echoes one of them.
async fn call_with_secrets(store: &AuditStore, uid: &str) {
    let params = json!({
        "hostname": "visible-hostname",
        "password": SECRET,
        "ssh-public-keys": "ssh-ed25519 AAAAC3visible-key",
        "auth": {"tokenSecret": TOKEN},
    });
    let result = store
        .guarded(&intent(uid, "create container", params), || async {
            Err::<Upid, _>(locked(&format!("bad value {SECRET} for password")))
        })
        .await;
    assert!(matches!(result, Err(Guarded::Call(_))));
    let record = &store.by_object(uid, 1).await.unwrap()[0];
    assert_eq!(record.intent.params["password"], REDACTED);
    assert_eq!(record.intent.params["auth"]["tokenSecret"], REDACTED);
    assert_eq!(
        record.intent.params["ssh-public-keys"],
        "ssh-ed25519 AAAAC3visible-key"
    );
    let Some(Outcome::Failed { error, .. }) = record.outcome.as_ref().map(|o| &o.outcome) else {
        panic!("failed outcome expected");
    };
    assert_eq!(
        error,
        &format!("start container: Proxmox answered 500: bad value {REDACTED} for password")
    );
}

#[tokio::test]
async fn secrets_never_reach_postgres() {
    let url = fresh_database().await;
    let store = AuditStore::connect(Some(&url), Path::new("unused.db"))
        .await
        .unwrap();
    call_with_secrets(&store, "uid-secrets").await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let mut text = String::new();
    for table in ["audit_intents", "audit_outcomes"] {
        let sql = format!("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {table} t");
        let rows: String = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        text.push_str(&rows);
    }
    assert!(
        text.contains("visible-hostname"),
        "the scan sees stored values: {text}"
    );
    assert!(
        !text.contains(SECRET) && !text.contains(TOKEN),
        "secret stored: {text}"
    );
}

#[tokio::test]
async fn secrets_never_reach_the_sqlite_file() {
    let path = sqlite_path();
    let store = AuditStore::connect(None, &path).await.unwrap();
    call_with_secrets(&store, "uid-secrets").await;
    // The raw bytes of the database and its write-ahead log.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("visible-hostname"), "the scan sees stored values");
    assert!(
        !text.contains(SECRET) && !text.contains(TOKEN),
        "secret stored in the file"
    );
    remove_sqlite(&path);
}

/// 100 000 calls over 1 000 objects and ~28 hours, 0.5 % failed: the queries use their
/// indexes, and pruning removes old calls with their outcomes.
#[tokio::test]
async fn postgres_indexes_serve_the_queries_at_100k_rows() {
    let url = fresh_database().await;
    let store = AuditStore::connect(Some(&url), Path::new("unused.db"))
        .await
        .unwrap();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let filled = Instant::now();
    sqlx::query(
        "WITH i AS (
           INSERT INTO audit_intents (at, actor, object_kind, object_namespace, object_name,
                                      object_uid, generation, phase, operation, node, vmid, params)
           SELECT now() - g * interval '1 second', 'lxc-operator/bench', 'LxcContainer', 'bench',
                  'ct-' || (g % 1000), 'uid-' || (g % 1000), 1, 'apply', 'update container config',
                  'pve1', 1000 + g % 1000, '{\"cores\": \"2\"}'::jsonb
           FROM generate_series(1, 100000) AS g
           RETURNING id, at)
         INSERT INTO audit_outcomes (intent_id, at, outcome, error, error_class, duration_ms)
         SELECT id, at + interval '2 seconds',
                CASE WHEN id % 200 = 0 THEN 'failed' ELSE 'succeeded' END,
                CASE WHEN id % 200 = 0 THEN 'CT is locked' END,
                CASE WHEN id % 200 = 0 THEN 'locked' END, 2000
         FROM i",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
    eprintln!("100k calls written in {:?}", filled.elapsed());

    let hour_ago = Utc::now() - chrono::Duration::hours(1);
    let day_ago = Utc::now() - chrono::Duration::days(2);
    let cases = [
        (
            AuditQuery::ByObject {
                uid: "uid-7".into(),
                limit: 50,
            },
            "audit_intents_object_uid_at",
            50,
        ),
        (
            AuditQuery::ByOutcome {
                outcome: OutcomeKind::Failed,
                since: day_ago,
                limit: 1000,
            },
            "audit_outcomes_outcome_at",
            500,
        ),
        (
            AuditQuery::Since {
                since: hour_ago,
                limit: 100,
            },
            "audit_intents_at",
            100,
        ),
        (AuditQuery::Recent { limit: 50 }, "audit_intents_at", 50),
        (
            AuditQuery::ByOutcome {
                outcome: OutcomeKind::Pending,
                since: hour_ago,
                limit: 100,
            },
            "audit_intents_at",
            0,
        ),
    ];
    for (query, index, expected) in cases {
        let plan = store.explain(&query).await.unwrap();
        eprintln!("{query:?}:\n{plan}");
        assert!(
            plan.contains("Index Scan") && plan.contains(index),
            "{query:?} must use {index}:\n{plan}"
        );
        let timer = Instant::now();
        let rows = store.query(&query).await.unwrap();
        eprintln!("{query:?}: {} rows in {:?}", rows.len(), timer.elapsed());
        assert_eq!(rows.len(), expected, "{query:?}");
    }

    let pruned = store.prune(Duration::from_secs(24 * 3600)).await.unwrap();
    let (intents, outcomes): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM audit_intents), (SELECT count(*) FROM audit_outcomes)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(
        (13_500..=13_700).contains(&pruned),
        "about 100000 - 86400 calls pruned: {pruned}"
    );
    assert_eq!(intents + i64::try_from(pruned).unwrap(), 100_000);
    assert_eq!(outcomes, intents, "outcomes went with their intents");
}

#[tokio::test]
async fn sqlite_queries_use_their_indexes() {
    let path = sqlite_path();
    let store = AuditStore::connect(None, &path).await.unwrap();
    let since = Utc::now();
    let cases = [
        (
            AuditQuery::ByObject {
                uid: "uid-1".into(),
                limit: 5,
            },
            "audit_intents_object_uid_at",
        ),
        (
            AuditQuery::ByOutcome {
                outcome: OutcomeKind::Failed,
                since,
                limit: 5,
            },
            "audit_outcomes_outcome_at",
        ),
        (AuditQuery::Since { since, limit: 5 }, "audit_intents_at"),
    ];
    for (query, index) in cases {
        let plan = store.explain(&query).await.unwrap();
        assert!(
            plan.contains(&format!("USING INDEX {index}")),
            "{query:?} must use {index}:\n{plan}"
        );
    }
    remove_sqlite(&path);
}

#[tokio::test]
async fn retention_prunes_old_calls_with_their_outcomes() {
    let path = sqlite_path();
    let store = AuditStore::connect(None, &path).await.unwrap();
    let ok = || async { Ok::<_, ProxmoxError>(()) };
    store
        .guarded(&intent("uid-old", "create container", json!({})), ok)
        .await
        .unwrap();
    // Wide margins: a loaded machine may take a while between the write and the prune.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    store
        .guarded(&intent("uid-new", "create container", json!({})), ok)
        .await
        .unwrap();
    assert_eq!(store.prune(Duration::from_millis(1500)).await.unwrap(), 1);
    assert!(store.by_object("uid-old", 5).await.unwrap().is_empty());
    assert_eq!(store.by_object("uid-new", 5).await.unwrap().len(), 1);
    assert_eq!(store.prune(Duration::from_secs(3600)).await.unwrap(), 0);

    // The upkeep task applies the configured retention by itself.
    let upkeep = tokio::spawn({
        let store = store.clone();
        async move {
            let retention = lxc_operator::audit::Retention {
                keep: Some(Duration::from_millis(100)),
                prune_every: Duration::from_millis(50),
                flush_every: Duration::from_millis(50),
            };
            store.maintain(retention).await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !store.recent(5).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "upkeep did not prune");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    upkeep.abort();
    remove_sqlite(&path);
}
