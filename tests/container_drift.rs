//! Drift of every field and ownership that survives a GUI edit, end to end: a real API server,
//! Postgres audit, Redis locks and pve-sim, the in-process operator with a config sweep of
//! `DRIFT_CHECK_INTERVAL` and nodes polled every `POLL_INTERVAL`. Each change is made behind the
//! operator's back, as root, the way a Proxmox GUI edit lands.

// This test acts on Proxmox directly, behind the operator's back; the operator itself may only
// do so through controllers::act::Actor (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use lxc_operator::pipeline::ownership::{OWNER_TAG, parse_tags, uid_tag};
use lxc_operator::proxmox::property::{Net, Volume};
use serde_json::json;
use support::{DRIFT_CHECK_INTERVAL, POLL_INTERVAL, World, reason, vmid};

/// What a reconcile and a loaded test machine add to the README's worst cases.
const SLACK: Duration = Duration::from_secs(10);

/// The worst case for a field `/cluster/resources` shows: one poll.
fn on_the_poll() -> Duration {
    POLL_INTERVAL + SLACK
}

/// The worst case for a field only the config shows: one sweep interval and one poll.
fn on_the_sweep() -> Duration {
    DRIFT_CHECK_INTERVAL + POLL_INTERVAL + SLACK
}

/// GETs of the container's config the operator (the API token) made.
fn operator_config_reads(w: &World, vmid: u32) -> usize {
    let path = format!("/nodes/pve1/lxc/{vmid}/config");
    w.sim
        .admin()
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .filter(|r| r.identity.as_deref() == Some(w.sim.token_id()))
        .count()
}

/// Requests the operator (the API token) made about the container.
fn operator_requests(w: &World, vmid: u32) -> usize {
    w.sim
        .admin()
        .requests()
        .iter()
        .filter(|r| r.vmid == Some(vmid) && r.identity.as_deref() == Some(w.sim.token_id()))
        .count()
}

/// Waits until the operator has left the container alone for a whole poll interval (and a
/// second): the poll that first observes a new container wakes it, and a reconcile still in
/// flight (or the one its own status write brings) would read the config too, hiding which
/// mechanism saw the next change.
async fn quiet(w: &World, vmid: u32) {
    let window = POLL_INTERVAL + Duration::from_secs(1);
    let mut seen = operator_requests(w, vmid);
    for _ in 0..20 {
        tokio::time::sleep(window).await;
        let now = operator_requests(w, vmid);
        if now == seen {
            return;
        }
        seen = now;
    }
    panic!("the operator never left VMID {vmid} alone");
}

#[tokio::test]
async fn every_field_drift_is_corrected_within_the_stated_time() {
    let w = World::new("allfields", &["pve1"], |c| c).await;
    w.container(
        "web",
        json!({
            "nodeRef": w.nodes[0], "hostname": "web-1",
            "resources": {"cores": 2, "memoryMiB": 512},
            "network": [{"name": "eth0", "firewall": true,
                         "ipv4": {"mode": "Static", "address": "10.0.0.5/24", "gateway": "10.0.0.1"}}],
            "tags": ["web"], "description": "the web box"
        }),
    )
    .await;
    let ct = w.ready("web").await;
    let id = vmid(&ct);
    let uid = ct.metadata.uid.clone().unwrap();
    let want = w.config("pve1", id).await;
    let want_of = |k: &str| want.get(k).map(str::to_string);

    // What no poll shows: a NIC and the description (the text above the marker line).
    let mut nic = Net::parse(want.get("net0").unwrap()).unwrap();
    nic.firewall = Some(false);
    nic.ip = Some("10.0.0.99/24".into());
    let edited = want
        .get("description")
        .unwrap()
        .replacen("the web box", "edited by hand", 1);
    assert_ne!(Some(edited.as_str()), want.get("description"));
    quiet(&w, id).await;
    w.behind_the_back(
        "pve1",
        id,
        &[("net0", &nic.to_string()), ("description", &edited)],
        &[],
    )
    .await;
    let nic_and_notes = w
        .config_until(
            "pve1",
            id,
            "net0 and description corrected",
            on_the_sweep(),
            |c| c.get("net0") == want.get("net0") && c.get("description") == want.get("description"),
        )
        .await;

    // `cores` shows on the poll as `maxcpu`. The sweep read this container a moment ago, so
    // its next read is a whole interval away: only the poll can see this within the bound.
    quiet(&w, id).await;
    w.behind_the_back("pve1", id, &[("cores", "1")], &[]).await;
    let cores = w
        .config_until("pve1", id, "cores corrected", on_the_poll(), |c| {
            c.get("cores").map(str::to_string) == want_of("cores")
        })
        .await;
    quiet(&w, id).await;
    w.behind_the_back("pve1", id, &[("hostname", "hijacked")], &[])
        .await;
    let hostname = w
        .config_until("pve1", id, "hostname corrected", on_the_poll(), |c| {
            c.get("hostname") == Some("web-1")
        })
        .await;
    let foreign_tags = format!("base;hacked;{OWNER_TAG};{}", uid_tag(&uid));
    quiet(&w, id).await;
    w.behind_the_back("pve1", id, &[("tags", &foreign_tags)], &[])
        .await;
    let tags = w
        .config_until("pve1", id, "tags corrected", on_the_poll(), |c| {
            let t = parse_tags(c.get("tags").unwrap_or_default());
            t.contains(&"web".to_string()) && !t.contains(&"hacked".to_string())
        })
        .await;
    println!(
        "drift corrected after: net0 + description {nic_and_notes:?} (bound {:?}), cores {cores:?}, \
         hostname {hostname:?}, tags {tags:?} (bound {:?})",
        on_the_sweep(),
        on_the_poll()
    );
    let cfg = w.config("pve1", id).await;
    for key in ["net0", "description", "cores", "hostname", "memory"] {
        assert_eq!(cfg.get(key), want.get(key), "{key} as the spec says");
    }

    w.ready("web").await;
    // Events of one reason are a series (the first message stays); the audit trail names each key.
    let events = w.events("web").await;
    assert!(events.iter().any(|(r, _)| r == "DriftCorrected"), "{events:?}");
    let trail = support::audit().await.by_object(&uid, 200).await.unwrap();
    for key in ["net0", "description", "cores", "hostname", "tags"] {
        assert!(
            trail.iter().any(
                |r| r.intent.operation == "update container config" && r.intent.params.get(key).is_some()
            ),
            "the {key} correction is audited: {:?}",
            trail
                .iter()
                .map(|r| r.intent.params.to_string())
                .collect::<Vec<_>>()
        );
    }

    // The sweep's cost is bounded: in a quiet window this container's config is read about
    // once per interval, not once per poll.
    let before = operator_config_reads(&w, id);
    tokio::time::sleep(DRIFT_CHECK_INTERVAL / 2).await;
    let reads = operator_config_reads(&w, id) - before;
    assert!(
        reads <= 2,
        "{reads} config reads in {:?} with one container and a {:?} interval",
        DRIFT_CHECK_INTERVAL / 2,
        DRIFT_CHECK_INTERVAL
    );
}

#[tokio::test]
async fn a_notes_edit_in_the_gui_is_drift_and_delete_still_removes_it() {
    let w = World::new("notes", &["pve1"], |c| c).await;
    for name in ["notes", "quick"] {
        w.container(
            name,
            json!({"nodeRef": w.nodes[0], "network": [{"name": "eth0"}], "description": "my notes"}),
        )
        .await;
    }
    let notes = w.ready("notes").await;
    let quick = w.ready("quick").await;
    let (id, quick_id) = (vmid(&notes), vmid(&quick));
    let marked = w.config("pve1", id).await.get("description").unwrap().to_string();
    assert!(marked.contains("lxc-operator-uid: "), "{marked}");

    // The Notes field rewritten wholesale in the GUI: the marker line goes with it.
    w.behind_the_back("pve1", id, &[("description", "rewritten in the GUI")], &[])
        .await;
    // The other one loses its notes and its uid tag too, and is deleted at once: only its
    // recorded status still says it is ours.
    w.behind_the_back(
        "pve1",
        quick_id,
        &[("tags", &format!("base;{OWNER_TAG}"))],
        &["description"],
    )
    .await;
    w.delete("quick").await;
    assert!(
        w.sim.admin().container(quick_id).is_none(),
        "a Delete container whose marker was edited away is destroyed, not left behind"
    );

    let restored = w
        .config_until("pve1", id, "the marker restored", on_the_sweep(), |c| {
            c.get("description").map(str::trim_end) == Some(marked.trim_end())
        })
        .await;
    println!(
        "ownership marker restored after {restored:?} (bound {:?})",
        on_the_sweep()
    );
    let ct = w.ready("notes").await;
    assert_ne!(reason(&ct, "Created").as_deref(), Some("Conflict"));
    let events = w.events("notes").await;
    assert!(
        events.iter().any(|(r, _)| r == "OwnershipMarkerRestored"),
        "{events:?}"
    );
    assert!(!events.iter().any(|(r, _)| r == "Conflict"), "{events:?}");
    w.delete("notes").await;
    assert!(w.sim.admin().container(id).is_none(), "destroyed in Proxmox");
}

#[tokio::test]
async fn a_marker_naming_another_object_is_a_conflict() {
    let w = World::new("othermark", &["pve1"], |c| c).await;
    let other = "6f1c2d8e-0000-4000-8000-00000000beef";
    let root = w.root();
    // 270: another object's uid tag (its notes edited away); 271: another object's marker line.
    for (vmid, tags, description) in [
        (270, uid_tag(other), None),
        (
            271,
            OWNER_TAG.to_string(),
            Some(format!("lxc-operator-uid: {other}\n")),
        ),
    ] {
        let create = lxc_operator::pipeline::desired::DesiredContainer {
            vmid,
            ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
            rootfs: Some(Volume::parse("local-lvm:4").unwrap()),
            unprivileged: true,
            tags: Some(tags),
            description,
            ..Default::default()
        };
        let upid = root
            .create_container("pve1", &create.create_request())
            .await
            .unwrap();
        root.wait_task(&upid, Duration::from_secs(10)).await.unwrap();
    }
    let before = [w.config("pve1", 270).await, w.config("pve1", 271).await];
    w.container("tagged", json!({"nodeRef": w.nodes[0], "vmid": 270}))
        .await;
    w.container("described", json!({"nodeRef": w.nodes[0], "vmid": 271}))
        .await;
    for (name, vmid) in [("tagged", 270), ("described", 271)] {
        let ct = w
            .wait(name, "stall on the conflict", 60, |ct| {
                reason(ct, "Stalled").as_deref() == Some("Conflict")
            })
            .await;
        let created = ct
            .status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Created")
            .unwrap();
        assert!(
            created.message.contains("another LxcContainer") && created.message.contains(other),
            "{name}: {}",
            created.message
        );
        assert_eq!(
            w.operator_writes(vmid),
            Vec::<String>::new(),
            "no mutating call on {vmid}"
        );
    }
    // A sweep and a poll later, still untouched; deleting the objects leaves both alone.
    tokio::time::sleep(POLL_INTERVAL * 2).await;
    w.delete("tagged").await;
    w.delete("described").await;
    assert_eq!(
        [w.config("pve1", 270).await, w.config("pve1", 271).await],
        before,
        "configs untouched (digests included)"
    );
    assert_eq!(w.operator_writes(270), Vec::<String>::new());
    assert_eq!(w.operator_writes(271), Vec::<String>::new());
}
