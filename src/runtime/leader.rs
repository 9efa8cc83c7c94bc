//! Leader election on a `coordination.k8s.io` Lease, with kube's API directly: only the
//! holder reconciles.
//!
//! Leadership is judged by the local monotonic clock alone. A successful create or renew proves
//! it for two thirds of the lease duration, counted from the moment the request left (client-go's
//! 10 s renew deadline of a 15 s lease); a replica that sees another holder, or fails to renew
//! within that time, stops leading. Another replica's `renewTime` is never compared with our
//! wall clock: a held lease is taken over only after this replica has seen it unchanged for a
//! whole lease duration by its own clock, as client-go does. Every Lease call has a deadline
//! shorter than the retry period, so a hung call never holds up the next round.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, Error};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::fence::Leadership;

/// Leader election settings.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    pub namespace: String,
    pub lease_name: String,
    /// This replica's identity (e.g. the pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews and others retry.
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// How long one successful renewal proves leadership, from the moment it was sent. The
    /// third left over covers a mutation already on the wire when validity ends, and clocks
    /// that run at slightly different rates.
    pub fn valid_for(&self) -> Duration {
        self.lease_duration * 2 / 3
    }

    /// The deadline of one Lease call: shorter than the retry period.
    pub fn call_timeout(&self) -> Duration {
        self.retry_period * 4 / 5
    }

    /// The lease duration written into the Lease, rounded up to whole seconds so that others
    /// never wait less than we assume.
    fn lease_seconds(&self) -> i32 {
        let secs = self.lease_duration.as_millis().div_ceil(1000).max(1);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}

/// Why an election round could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("lease {call} on {lease} got no answer within {after:?}")]
    Timeout {
        call: &'static str,
        lease: String,
        after: Duration,
    },
    #[error("lease {call} on {lease} failed")]
    Api {
        call: &'static str,
        lease: String,
        #[source]
        source: Error,
    },
}

impl ElectionError {
    /// The API server refused a write because the Lease changed since it was read.
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Api { source: Error::Api(s), .. } if s.code == 409)
    }
}

/// Another holder's Lease as this replica last saw it, and since when (local monotonic clock).
#[derive(Debug)]
struct Observed {
    holder: String,
    resource_version: Option<String>,
    since: Instant,
}

/// One replica's side of the election: the Lease API, what it has seen, and the `Leadership`
/// it proves.
pub struct Elector {
    api: Api<Lease>,
    config: LeaderConfig,
    leadership: Leadership,
    observed: Option<Observed>,
}

impl Elector {
    pub fn new(client: Client, config: LeaderConfig, leadership: Leadership) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            leadership,
            observed: None,
        }
    }

    /// The leadership this elector proves.
    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    async fn call<T>(
        &self,
        call: &'static str,
        request: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, ElectionError> {
        let lease = self.config.lease_name.clone();
        let after = self.config.call_timeout();
        match tokio::time::timeout(after, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(ElectionError::Api { call, lease, source }),
            Err(_) => Err(ElectionError::Timeout { call, lease, after }),
        }
    }

    fn won(&mut self, sent: Instant) {
        self.observed = None;
        self.leadership.renewed(sent, self.config.valid_for());
    }

    fn lost(&mut self) {
        if self.leadership.valid_until().is_some() {
            self.leadership.revoke();
        }
    }

    /// Whether `lease`, held by `holder`, has been seen unchanged for a whole lease duration.
    /// The first sight of a new version starts the count.
    fn expired_by_observation(&mut self, holder: &str, lease: &Lease) -> bool {
        let resource_version = lease.metadata.resource_version.clone();
        let now = Instant::now();
        match &self.observed {
            Some(seen) if seen.holder == holder && seen.resource_version == resource_version => {
                let theirs = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_duration_seconds)
                    .map_or(Duration::ZERO, |s| Duration::from_secs(s.max(0) as u64));
                now.duration_since(seen.since) >= self.config.lease_duration.max(theirs)
            }
            _ => {
                self.observed = Some(Observed {
                    holder: holder.to_string(),
                    resource_version,
                    since: now,
                });
                false
            }
        }
    }

    /// When the next round is due: one retry period on, or earlier when the lease we watch
    /// expires by our clock before that.
    pub fn next_round(&self) -> Instant {
        let retry = Instant::now() + self.config.retry_period;
        match &self.observed {
            Some(seen) => retry.min(seen.since + self.config.lease_duration),
            None => retry,
        }
    }

    /// One round: creates, renews or takes over an expired lease, and updates the leadership.
    /// True when this replica holds the lease. On an error the leadership stays as the last
    /// renewal proved it and runs out by itself.
    pub async fn round(&mut self) -> Result<bool, ElectionError> {
        let outcome = self.try_acquire_or_renew().await;
        match &outcome {
            Ok(true) => {}
            Ok(false) => self.lost(),
            Err(e) if e.is_conflict() => {
                // Someone wrote the Lease between our read and our write: maybe a take-over.
                self.lost();
                return Ok(false);
            }
            Err(_) if !self.leadership.is_leading() => self.lost(),
            Err(_) => {}
        }
        outcome
    }

    async fn try_acquire_or_renew(&mut self) -> Result<bool, ElectionError> {
        let name = self.config.lease_name.clone();
        let Some(mut lease) = self.call("get", self.api.get_opt(&name)).await? else {
            let now = Timestamp::now();
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    ..Default::default()
                },
                spec: Some(lease_spec(&self.config, now, now, 0)),
            };
            let sent = Instant::now();
            self.call("create", self.api.create(&PostParams::default(), &lease))
                .await?;
            self.won(sent);
            return Ok(true);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        // `renewTime` is written for people and other tools; it is never read to decide.
        let now = Timestamp::now();
        let new_spec = if holder == self.config.identity {
            let acquired = spec.acquire_time.map_or(now, |t| t.0);
            lease_spec(&self.config, now, acquired, transitions)
        } else if holder.is_empty() || self.expired_by_observation(&holder, &lease) {
            tracing::info!(previous = %holder, "leader election: taking the lease over");
            lease_spec(&self.config, now, now, transitions + 1)
        } else {
            return Ok(false);
        };
        lease.spec = Some(new_spec);
        // The resourceVersion in `lease` makes this a compare-and-swap: two replicas cannot both win.
        let sent = Instant::now();
        self.call("replace", self.api.replace(&name, &PostParams::default(), &lease))
            .await?;
        self.won(sent);
        Ok(true)
    }
}

fn lease_spec(config: &LeaderConfig, now: Timestamp, acquire: Timestamp, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.lease_seconds()),
        acquire_time: Some(MicroTime(acquire)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

fn publish(leading: &watch::Sender<bool>, identity: &str, is_leader: bool, why: &str) {
    leading.send_if_modified(|current| {
        if *current == is_leader {
            return false;
        }
        tracing::info!(identity, leading = is_leader, why, "leadership changed");
        *current = is_leader;
        true
    });
}

/// Publishes `false` the moment the leadership lapses by the local clock, even while the
/// election loop is stuck in a call or not scheduled (e.g. after the process was frozen).
async fn publish_lapses(leadership: Leadership, leading: watch::Sender<bool>, identity: String) {
    let mut published = leading.subscribe();
    loop {
        if published.wait_for(|l| *l).await.is_err() {
            return;
        }
        leadership.lapsed().await;
        // Checked under the channel's lock: a renewal that raced us has already won.
        leading.send_if_modified(|current| {
            if !*current || leadership.is_leading() {
                return false;
            }
            tracing::warn!(identity, "leadership lapsed: no renewal within its validity");
            *current = false;
            true
        });
    }
}

/// Runs the election forever, proving `leadership` and publishing whether this replica leads
/// on `leading` (for `/readyz`, metrics and the controllers).
pub async fn run(client: Client, config: LeaderConfig, leadership: Leadership, leading: watch::Sender<bool>) {
    run_reporting(client, config, leadership, leading, watch::channel(None).0).await
}

/// [`run`], publishing on `problem` why this replica cannot take part in the election (`None`
/// while it can): `/readyz` is false meanwhile. Each new problem is logged once, clearly, and
/// its end once; rounds that fail the same way again stay quiet.
pub async fn run_reporting(
    client: Client,
    config: LeaderConfig,
    leadership: Leadership,
    leading: watch::Sender<bool>,
    problem: watch::Sender<Option<String>>,
) {
    let identity = config.identity.clone();
    let lapses = tokio::spawn(publish_lapses(
        leadership.clone(),
        leading.clone(),
        identity.clone(),
    ));
    let _stop_lapses = AbortOnDrop(lapses);
    let mut elector = Elector::new(client, config.clone(), leadership.clone());
    loop {
        let why = match elector.round().await {
            Ok(leads) => {
                problem.send_if_modified(|p| {
                    let had = p.take();
                    if had.is_some() {
                        tracing::info!(identity, "leader election works again");
                    }
                    had.is_some()
                });
                if leads {
                    "renewed"
                } else {
                    "another replica holds the lease"
                }
            }
            Err(e) if !lasting(&e) => {
                // A timed-out or conflicting round (e.g. the first one after the process was
                // frozen) is retried at once: readiness does not flap on it.
                tracing::warn!(identity, error = %explain(&e, &config), "leader election round failed; retrying");
                "renewal failed past its validity"
            }
            Err(e) => {
                let explained = explain(&e, &config);
                problem.send_if_modified(|p| {
                    if p.as_deref() == Some(explained.as_str()) {
                        return false;
                    }
                    tracing::error!(identity, problem = %explained, "cannot take part in leader election (retrying; said once)");
                    *p = Some(explained.clone());
                    true
                });
                "renewal failed past its validity"
            }
        };
        publish(&leading, &identity, leadership.is_leading(), why);
        tokio::time::sleep_until(elector.next_round()).await;
    }
}

/// A failed round in words a person can act on: a missing namespace named as such, anything
/// else as its error chain (never a debug dump).
/// Whether an election error says something about the setup that retrying alone will not mend
/// (the API server refused: the Lease's namespace is missing, RBAC forbids the Lease, ...), as
/// opposed to a round that timed out or lost a race.
fn lasting(error: &ElectionError) -> bool {
    matches!(
        error,
        ElectionError::Api {
            source: Error::Api(status),
            ..
        } if matches!(status.code, 400..=499) && status.code != 409 && status.code != 429
    )
}

pub fn explain(error: &ElectionError, config: &LeaderConfig) -> String {
    if let ElectionError::Api {
        source: Error::Api(status),
        ..
    } = error
        && status.code == 404
        && status.message.contains("namespaces")
    {
        return format!(
            "namespace {} does not exist, so the leader Lease {} cannot be created there: \
             create the namespace, or set --namespace (LXC_OPERATOR_NAMESPACE) to one that exists",
            config.namespace, config.lease_name
        );
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Aborts a background task when its owner goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Gives the lease up (on clean shutdown) so another replica takes over without waiting.
pub async fn release(client: Client, config: &LeaderConfig) -> Result<(), ElectionError> {
    let elector = Elector::new(client, config.clone(), Leadership::elected());
    let name = config.lease_name.as_str();
    if let Some(mut lease) = elector.call("get", elector.api.get_opt(name)).await?
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(config.identity.as_str())
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        elector
            .call(
                "release",
                elector.api.replace(name, &PostParams::default(), &lease),
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(lease_ms: u64, retry_ms: u64) -> LeaderConfig {
        LeaderConfig {
            namespace: "ns".into(),
            lease_name: "lxc-operator".into(),
            identity: "me".into(),
            lease_duration: Duration::from_millis(lease_ms),
            retry_period: Duration::from_millis(retry_ms),
        }
    }

    #[test]
    fn validity_and_deadlines_stay_inside_the_lease() {
        let c = config(15_000, 3_000);
        assert_eq!(c.valid_for(), Duration::from_secs(10));
        assert!(c.call_timeout() < c.retry_period);
        assert_eq!(c.lease_seconds(), 15);
        assert_eq!(config(1_500, 300).lease_seconds(), 2, "rounded up, never down");
    }

    fn lease(holder: &str, resource_version: &str, seconds: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                resource_version: Some(resource_version.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(seconds),
                // A renewTime far in the past: it must not matter.
                renew_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
                ..Default::default()
            }),
        }
    }

    fn elector(config: LeaderConfig) -> Elector {
        // The client is never used by these tests; any URL builds one.
        let kube_config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(kube_config).unwrap();
        Elector::new(client, config, Leadership::elected())
    }

    #[tokio::test]
    async fn a_lease_expires_only_after_a_lease_duration_unchanged_on_our_clock() {
        let mut e = elector(config(1_000, 100));
        let a1 = lease("other", "1", 1);
        assert!(
            !e.expired_by_observation("other", &a1),
            "an ancient renewTime is not expiry: first sight starts the count"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!e.expired_by_observation("other", &a1));
        // The holder renewed: the count starts again.
        let a2 = lease("other", "2", 1);
        assert!(!e.expired_by_observation("other", &a2));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            !e.expired_by_observation("other", &a2),
            "600 ms since the renewal"
        );
        let due = e.next_round();
        assert!(due <= Instant::now() + Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(e.expired_by_observation("other", &a2), "1.1 s unchanged");
        // A holder that announces a longer lease than ours is waited for that long.
        let b = lease("slow", "3", 2);
        assert!(!e.expired_by_observation("slow", &b));
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert!(!e.expired_by_observation("slow", &b), "its 2 s, not our 1 s");
    }

    #[tokio::test]
    async fn next_round_wakes_when_the_watched_lease_expires() {
        let mut e = elector(config(300, 1_000));
        assert!(e.next_round() > Instant::now() + Duration::from_millis(900));
        e.expired_by_observation("other", &lease("other", "1", 1));
        let due = e.next_round();
        assert!(
            due <= Instant::now() + Duration::from_millis(300),
            "at the lease's end, not a whole retry later"
        );
    }
}
