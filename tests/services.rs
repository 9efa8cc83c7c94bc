//! The test world's PostgreSQL, Redis and OpenSSH servers are real and reachable.

#[tokio::test]
async fn postgres_answers_queries() {
    let pg = test_world::postgres();
    let pool = sqlx::PgPool::connect(&pg.url())
        .await
        .expect("connect to test postgres");
    let (version,): (String,) = sqlx::query_as("SELECT version()").fetch_one(&pool).await.unwrap();
    assert!(version.starts_with("PostgreSQL"), "{version}");
    sqlx::query("CREATE TABLE IF NOT EXISTS probe (n int)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO probe VALUES (41), (1)")
        .execute(&pool)
        .await
        .unwrap();
    let (sum,): (i64,) = sqlx::query_as("SELECT sum(n) FROM probe")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sum, 42);
}

#[tokio::test]
async fn redis_stores_and_expires_keys() {
    let redis = test_world::redis();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to test redis");
    let _: () = redis::cmd("SET")
        .arg("probe")
        .arg("42")
        .arg("PX")
        .arg(200)
        .query_async(&mut conn)
        .await
        .unwrap();
    let value: Option<String> = redis::cmd("GET")
        .arg("probe")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("42"));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let value: Option<String> = redis::cmd("GET")
        .arg("probe")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, None, "the key should have expired");
}

#[test]
fn sshd_runs_commands_with_the_pinned_host_key() {
    let sshd = test_world::sshd();
    assert!(
        sshd.host_key_fingerprint.starts_with("SHA256:"),
        "{}",
        sshd.host_key_fingerprint
    );
    let out = sshd.ssh().args(["echo", "hello-from-sshd"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello-from-sshd");
}
