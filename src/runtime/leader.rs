//! Leader election on a `coordination.k8s.io` Lease, with kube's API directly: only the
//! holder reconciles. A replica that sees another holder, or cannot renew within the lease
//! duration, stops acting at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, Error};
use tokio::sync::watch;

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

/// Runs the election forever, publishing whether this replica leads on `leading`.
pub async fn run(client: Client, config: LeaderConfig, leading: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut last_renewal: Option<tokio::time::Instant> = None;
    loop {
        let outcome = try_acquire_or_renew(&api, &config).await;
        let now = tokio::time::Instant::now();
        let is_leader = match outcome {
            Ok(true) => {
                last_renewal = Some(now);
                true
            }
            Ok(false) => {
                last_renewal = None;
                false
            }
            // A failed renewal keeps leadership only while the lease we hold is surely valid.
            Err(e) => {
                tracing::warn!(error = %e, "leader election: lease update failed");
                last_renewal.is_some_and(|t| now.duration_since(t) < config.lease_duration * 2 / 3)
            }
        };
        if *leading.borrow() != is_leader {
            tracing::info!(identity = %config.identity, leading = is_leader, "leadership changed");
        }
        leading.send_replace(is_leader);
        tokio::time::sleep(config.retry_period).await;
    }
}

fn lease_spec(config: &LeaderConfig, now: Timestamp, acquire: Timestamp, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.lease_duration.as_secs().max(1) as i32),
        acquire_time: Some(MicroTime(acquire)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

/// One round: creates, renews or takes over an expired lease. True when this replica holds it.
pub async fn try_acquire_or_renew(api: &Api<Lease>, config: &LeaderConfig) -> Result<bool, Error> {
    let now = Timestamp::now();
    let Some(mut lease) = api.get_opt(&config.lease_name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.lease_name.clone()),
                ..Default::default()
            },
            spec: Some(lease_spec(config, now, now, 0)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    let expired = spec.renew_time.as_ref().is_none_or(|t| t.0 + duration < now);
    let transitions = spec.lease_transitions.unwrap_or(0);
    let new_spec = if holder == config.identity {
        let acquired = spec.acquire_time.map_or(now, |t| t.0);
        lease_spec(config, now, acquired, transitions)
    } else if holder.is_empty() || expired {
        lease_spec(config, now, now, transitions + 1)
    } else {
        return Ok(false);
    };
    lease.spec = Some(new_spec);
    // The resourceVersion in `lease` makes this a compare-and-swap: two replicas cannot both win.
    match api
        .replace(&config.lease_name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up (on clean shutdown) so another replica takes over without waiting.
pub async fn release(client: Client, config: &LeaderConfig) -> Result<(), Error> {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    if let Some(mut lease) = api.get_opt(&config.lease_name).await?
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(config.identity.as_str())
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        api.replace(&config.lease_name, &PostParams::default(), &lease)
            .await?;
    }
    Ok(())
}
