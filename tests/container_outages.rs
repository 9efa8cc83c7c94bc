//! Postgres or Redis away: no Proxmox call is made without its audit row or its lock, the
//! container says why, and it converges once the store is back — with no duplicate.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{World, reason};
use test_world::{PrivatePostgres, PrivateRedis};

#[tokio::test]
async fn lost_audit_or_coordination_stops_changes_until_they_return() {
    let mut pg = PrivatePostgres::start().unwrap();
    let mut redis = PrivateRedis::start().unwrap();
    support::operator_with(pg.url(), redis.url());
    let w = World::new("outage", &["pve1"], |c| c).await;
    w.container("warmup", json!({"nodeRef": w.nodes[0]})).await;
    w.ready("warmup").await;

    // The audit database goes away: the container waits, and Proxmox sees no create.
    pg.stop().unwrap();
    w.container("audited", json!({"nodeRef": w.nodes[0]})).await;
    let ct = w
        .wait("audited", "report the audit store away", 60, |ct| {
            reason(ct, "Ready").as_deref() == Some(lxc_operator::audit::AUDIT_UNAVAILABLE_REASON)
        })
        .await;
    let vmid = ct.status.as_ref().and_then(|s| s.vmid).expect("VMID recorded") as u32;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        w.sim.admin().container(vmid).is_none(),
        "nothing created without its audit row"
    );
    assert_eq!(w.operator_writes(vmid), Vec::<String>::new());
    pg.restart().unwrap();
    w.ready("audited").await;
    assert_eq!(
        w.operator_writes(vmid)
            .iter()
            .filter(|r| r.starts_with("POST /nodes/pve1/lxc ->"))
            .count(),
        1
    );

    // Redis goes away: no lock, no change; the container says so and converges afterwards.
    redis.stop();
    w.container("locked-out", json!({"nodeRef": w.nodes[0]})).await;
    w.wait("locked-out", "report coordination away", 60, |ct| {
        reason(ct, "Ready").as_deref() == Some("CoordinationUnavailable")
    })
    .await;
    assert_eq!(
        w.sim.admin().containers().len(),
        2,
        "nothing created while Redis is away"
    );
    redis.restart().unwrap();
    w.ready("locked-out").await;
    assert_eq!(
        w.sim.admin().containers().len(),
        3,
        "one container each, no duplicate"
    );
}
