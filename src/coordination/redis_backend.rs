//! The Redis backend: `SET NX PX` to lock, Lua scripts to renew and release only by the owner,
//! and one set per cluster (with expiry) as the VMID cache.

use std::collections::BTreeSet;
use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Backend, Unavailable};

const RELEASE: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
"#;

const RENEW: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
"#;

/// Adds (ARGV[2] == "1") or removes one VMID, only in a live cache: the existence check and
/// the change are one step, so a cache that expires in between is not recreated without expiry.
const VMIDS_UPDATE: &str = r#"
if redis.call("EXISTS", KEYS[1]) == 0 then
  return 0
end
if ARGV[2] == "1" then
  redis.call("SADD", KEYS[1], ARGV[1])
else
  redis.call("SREM", KEYS[1], ARGV[1])
end
return 1
"#;

/// Redis-backed coordination.
#[derive(Clone)]
pub struct RedisBackend {
    conn: ConnectionManager,
    release: Script,
    renew: Script,
    vmids_update: Script,
}

fn unavailable(e: redis::RedisError) -> Unavailable {
    Unavailable(e.to_string())
}

fn vmid_key(cluster: &str) -> String {
    format!("lxc-operator:vmids:{cluster}")
}

impl RedisBackend {
    /// Connects (and reconnects by itself after Redis restarts).
    pub async fn connect(url: &str) -> Result<Self, Unavailable> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            conn,
            release: Script::new(RELEASE),
            renew: Script::new(RENEW),
            vmids_update: Script::new(VMIDS_UPDATE),
        })
    }
}

#[async_trait::async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn try_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Unavailable> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    async fn renew(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, Unavailable> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .renew
            .key(key)
            .arg(token)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    async fn release(&self, key: &str, token: &str) -> Result<bool, Unavailable> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .release
            .key(key)
            .arg(token)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    async fn vmids_replace(
        &self,
        cluster: &str,
        vmids: &BTreeSet<u32>,
        ttl: Duration,
    ) -> Result<(), Unavailable> {
        let key = vmid_key(cluster);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        // An empty cluster is cached too: a marker member keeps the key (and its expiry) alive.
        pipe.sadd(&key, "-").ignore();
        if !vmids.is_empty() {
            pipe.sadd(&key, vmids.iter().collect::<Vec<_>>()).ignore();
        }
        pipe.pexpire(&key, ttl.as_millis() as i64).ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn vmids(&self, cluster: &str) -> Result<Option<BTreeSet<u32>>, Unavailable> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(vmid_key(cluster))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if members.is_empty() {
            return Ok(None);
        }
        Ok(Some(members.iter().filter_map(|m| m.parse().ok()).collect()))
    }

    async fn vmids_update(&self, cluster: &str, vmid: u32, present: bool) -> Result<(), Unavailable> {
        let mut conn = self.conn.clone();
        self.vmids_update
            .key(vmid_key(cluster))
            .arg(vmid)
            .arg(if present { "1" } else { "0" })
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
