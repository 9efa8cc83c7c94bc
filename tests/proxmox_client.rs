//! The Proxmox client against pve-sim over real TLS: auth (token, ticket, CSRF, expiry,
//! renewal), trust (pinning, CA bundle), error classes, safe retries, the circuit breaker (and a
//! cancelled trial call), the body size limit, the task waiter, and property strings accepted
//! by the simulator's schema validation.

// This test acts on Proxmox (or the audit trail) directly, behind the operator's back; the
// operator itself may only do so through controllers::act::Actor (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use lxc_operator::pipeline::desired::DesiredContainer;
use lxc_operator::proxmox::api::PowerAction;
use lxc_operator::proxmox::breaker::BreakerConfig;
use lxc_operator::proxmox::client::{ClientConfig, RetryConfig};
use lxc_operator::proxmox::property::{Features, Net, Startup, Volume};
use lxc_operator::proxmox::tls::parse_fingerprint;
use lxc_operator::proxmox::{Credentials, Error, ErrorClass, ProxmoxClient, Secret, TlsTrust};
use pve_sim::{
    Config, ErrorKind, ErrorRule, FaultConfig, LatencyRule, LockRequest, Match, PaddingRule, PveSim,
    TaskFailure,
};

const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

async fn sim() -> PveSim {
    PveSim::start(Config::default_with_nodes(&["pve1", "pve2"]))
        .await
        .expect("start pve-sim")
}

fn pinned(sim: &PveSim) -> TlsTrust {
    TlsTrust::PinnedSha256(parse_fingerprint(sim.fingerprint_sha256()).unwrap())
}

fn fast(mut config: ClientConfig) -> ClientConfig {
    config.retry = RetryConfig {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_attempts: 4,
    };
    config
}

fn token_client(sim: &PveSim) -> ProxmoxClient {
    let creds = Credentials::Token {
        id: sim.token_id().into(),
        secret: Secret::new(sim.token_secret()),
    };
    ProxmoxClient::new(fast(ClientConfig::new(sim.url(), creds, pinned(sim)))).unwrap()
}

fn ticket_config(sim: &PveSim) -> ClientConfig {
    let creds = Credentials::Password {
        username: sim.username().into(),
        password: Secret::new(sim.password()),
    };
    fast(ClientConfig::new(sim.url(), creds, pinned(sim)))
}

fn create(vmid: u32) -> DesiredContainer {
    DesiredContainer {
        vmid,
        ostemplate: TEMPLATE.into(),
        hostname: Some(format!("ct{vmid}")),
        memory: Some(512),
        rootfs: Some(Volume {
            volume: "local-lvm:4".into(),
            ..Default::default()
        }),
        nets: vec![Net {
            name: "eth0".into(),
            bridge: Some("vmbr0".into()),
            ip: Some("dhcp".into()),
            ..Default::default()
        }],
        unprivileged: true,
        ..Default::default()
    }
}

/// Creates a container and waits for the task.
async fn created(client: &ProxmoxClient, vmid: u32) {
    let upid = client
        .create_container("pve1", &create(vmid).create_request())
        .await
        .expect("create");
    client
        .wait_task(&upid, Duration::from_secs(10))
        .await
        .expect("create task");
}

fn count(sim: &PveSim, method: &str, path: &str) -> usize {
    sim.admin()
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

/// No request of a test was refused by parameter validation unless the test meant it.
fn assert_no_400(sim: &PveSim) {
    let refused: Vec<_> = sim
        .admin()
        .requests()
        .into_iter()
        .filter(|r| r.status == 400)
        .collect();
    assert!(refused.is_empty(), "requests refused by validation: {refused:?}");
}

#[tokio::test]
async fn token_auth_reads_and_writes() {
    let sim = sim().await;
    let client = token_client(&sim);
    assert!(!client.version().await.unwrap().version.is_empty());
    created(&client, 200).await;
    let config = client.container_config("pve1", 200).await.unwrap();
    assert_eq!(config.get("hostname"), Some("ct200"));
    assert!(!config.digest.is_empty());
    let identities: Vec<_> = sim
        .admin()
        .requests()
        .into_iter()
        .filter_map(|r| r.identity)
        .collect();
    assert!(
        identities.iter().all(|i| i == "root@pam!operator"),
        "{identities:?}"
    );
    assert_no_400(&sim);
}

#[tokio::test]
async fn ticket_auth_sends_csrf_on_writes_and_relogs_in_after_expiry() {
    let sim = sim().await;
    let client = ProxmoxClient::new(ticket_config(&sim)).unwrap();
    created(&client, 201).await; // a POST: needs the CSRF token
    assert_eq!(count(&sim, "POST", "/access/ticket"), 1);
    sim.admin().expire_tickets();
    let status = client
        .container_status("pve1", 201)
        .await
        .expect("transparent re-login after a 401");
    assert_eq!(status.status, "stopped");
    assert_eq!(count(&sim, "POST", "/access/ticket"), 2, "exactly one re-login");
    assert_no_400(&sim);
}

#[tokio::test]
async fn tickets_are_renewed_before_they_expire() {
    let sim = sim().await;
    let mut config = ticket_config(&sim);
    config.ticket_renew_after = Duration::ZERO;
    let client = ProxmoxClient::new(config).unwrap();
    for _ in 0..3 {
        client.version().await.unwrap();
    }
    let logins: Vec<_> = sim
        .admin()
        .requests()
        .into_iter()
        .filter(|r| r.path == "/access/ticket")
        .collect();
    assert_eq!(logins.len(), 3, "one login, then a renewal before each use");
    assert!(logins.iter().all(|r| r.status == 200));
}

#[tokio::test]
async fn a_write_without_csrf_is_refused() {
    let sim = sim().await;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(lxc_operator::proxmox::tls::client_config(&pinned(&sim)).unwrap())
        .build()
        .unwrap();
    let login: serde_json::Value = http
        .post(format!("{}/access/ticket", sim.api_base()))
        .form(&[("username", sim.username()), ("password", sim.password())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = login["data"]["ticket"].as_str().unwrap();
    let response = http
        .post(format!("{}/nodes/pve1/lxc", sim.api_base()))
        .header("Cookie", format!("PVEAuthCookie={ticket}"))
        .form(&[("vmid", "202"), ("ostemplate", TEMPLATE)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(sim.admin().container(202).is_none(), "nothing was created");
}

#[tokio::test]
async fn a_wrong_pin_is_refused_before_any_credential_is_sent() {
    let sim = sim().await;
    let creds = Credentials::Password {
        username: sim.username().into(),
        password: Secret::new(sim.password()),
    };
    let client = ProxmoxClient::new(fast(ClientConfig::new(
        sim.url(),
        creds,
        TlsTrust::PinnedSha256([7; 32]),
    )))
    .unwrap();
    let err = client.version().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Tls, "{err}");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    assert!(sim.admin().requests().is_empty(), "no request reached the server");
    // The system roots do not know a self-signed certificate either; the CA bundle does.
    let creds = Credentials::Token {
        id: sim.token_id().into(),
        secret: Secret::new(sim.token_secret()),
    };
    let roots = ProxmoxClient::new(fast(ClientConfig::new(
        sim.url(),
        creds.clone(),
        TlsTrust::SystemRoots,
    )))
    .unwrap();
    assert_eq!(roots.version().await.unwrap_err().class(), ErrorClass::Tls);
    let bundle = TlsTrust::CaBundle(sim.cert_pem().to_string());
    let ca = ProxmoxClient::new(fast(ClientConfig::new(sim.url(), creds, bundle))).unwrap();
    ca.version().await.expect("trusted through the CA bundle");
}

#[tokio::test]
async fn every_error_class_is_produced_and_classified() {
    let sim = sim().await;
    let client = token_client(&sim);
    created(&client, 210).await;

    let wrong = Credentials::Token {
        id: sim.token_id().into(),
        secret: Secret::new("not-the-secret"),
    };
    let bad = ProxmoxClient::new(fast(ClientConfig::new(sim.url(), wrong, pinned(&sim)))).unwrap();
    assert_eq!(bad.version().await.unwrap_err().class(), ErrorClass::Unauthorized);

    let mut root_only = create(211);
    root_only.features = Some(Features {
        keyctl: Some(true),
        ..Default::default()
    });
    let forbidden = client
        .create_container("pve1", &root_only.create_request())
        .await
        .unwrap_err();
    assert_eq!(forbidden.class(), ErrorClass::Forbidden, "{forbidden}");

    assert_eq!(
        client.container_config("pve1", 999).await.unwrap_err().class(),
        ErrorClass::NotFound
    );
    let exists = client
        .create_container("pve1", &create(210).create_request())
        .await
        .unwrap_err();
    assert_eq!(exists.class(), ErrorClass::AlreadyExists, "{exists}");

    let mut invalid = create(212);
    invalid.memory = Some(8);
    let err = client
        .create_container("pve1", &invalid.create_request())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidParameters);
    let Error::Api { fields, .. } = &err else {
        panic!("{err}")
    };
    assert!(fields.contains_key("memory"), "{fields:?}");

    let upid = client
        .container_power("pve1", 210, PowerAction::Start)
        .await
        .unwrap();
    client.wait_task(&upid, Duration::from_secs(10)).await.unwrap();
    let running = client.destroy_container("pve1", 210).await.unwrap_err();
    assert_eq!(running.class(), ErrorClass::Server, "{running}");
    assert!(running.to_string().contains("container is running"), "{running}");

    let mut once = ticket_config(&sim);
    once.retry.max_attempts = 1;
    let no_retry = ProxmoxClient::new(once).unwrap();
    assert!(sim.admin().lock_ct(LockRequest {
        vmid: 210,
        seconds: 5.0,
        lock: Some("backup".into())
    }));
    let locked = no_retry
        .container_power("pve1", 210, PowerAction::Stop)
        .await
        .unwrap_err();
    assert_eq!(locked.class(), ErrorClass::Locked, "{locked}");
}

#[tokio::test]
async fn a_locked_container_is_retried_until_free() {
    let sim = sim().await;
    let creds = Credentials::Token {
        id: sim.token_id().into(),
        secret: Secret::new(sim.token_secret()),
    };
    let mut config = ClientConfig::new(sim.url(), creds, pinned(&sim));
    config.retry = RetryConfig {
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        max_attempts: 8,
    };
    let client = ProxmoxClient::new(config).unwrap();
    created(&client, 220).await;
    assert!(sim.admin().lock_ct(LockRequest {
        vmid: 220,
        seconds: 0.3,
        lock: Some("backup".into())
    }));
    let upid = client
        .container_power("pve1", 220, PowerAction::Start)
        .await
        .expect("retried until unlocked");
    client.wait_task(&upid, Duration::from_secs(10)).await.unwrap();
    let attempts = count(&sim, "POST", "/nodes/pve1/lxc/220/status/start");
    assert!(
        attempts >= 2,
        "the first attempt met the lock ({attempts} attempts)"
    );
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_but_never_for_creates() {
    let sim = sim().await;
    let client = token_client(&sim);
    let rule = |path: &str, method: &str| ErrorRule {
        on: Match {
            path_prefix: path.into(),
            method: Some(method.into()),
        },
        rate: 1.0,
        kind: ErrorKind::Internal,
        message: Some("injected".into()),
    };
    sim.admin().add_error_rule(rule("/version", "GET"));
    assert_eq!(client.version().await.unwrap_err().class(), ErrorClass::Server);
    assert_eq!(
        count(&sim, "GET", "/version"),
        4,
        "a read is retried (max 4 attempts)"
    );

    sim.admin().add_error_rule(rule("/nodes/pve1/lxc", "POST"));
    assert_eq!(
        client
            .create_container("pve1", &create(230).create_request())
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Server
    );
    assert_eq!(count(&sim, "POST", "/nodes/pve1/lxc"), 1, "a create is sent once");
}

#[tokio::test]
async fn the_circuit_breaker_opens_and_closes() {
    let port = test_world::free_port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let creds = Credentials::Token {
        id: "root@pam!operator".into(),
        secret: Secret::new("x"),
    };
    let mut config = fast(ClientConfig::new(
        format!("https://{addr}"),
        creds,
        TlsTrust::InsecureSkipVerify,
    ));
    config.retry.max_attempts = 1;
    config.breaker = BreakerConfig {
        failure_threshold: 3,
        open_for: Duration::from_millis(400),
    };
    let client = ProxmoxClient::new(config).unwrap();
    for _ in 0..3 {
        assert_eq!(client.version().await.unwrap_err().class(), ErrorClass::Connect);
    }
    let open = client.version().await.unwrap_err();
    assert_eq!(open.class(), ErrorClass::CircuitOpen, "{open}");
    assert!(open.to_string().contains("not calling it again"), "{open}");

    let sim = PveSim::start_on(
        Config::default_with_nodes(&["pve1"]),
        addr,
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    assert!(sim.admin().requests().is_empty());
    tokio::time::sleep(Duration::from_millis(450)).await;
    let err = client.version().await.unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Unauthorized,
        "the trial call reached the server: {err}"
    );
    assert_ne!(
        client.version().await.unwrap_err().class(),
        ErrorClass::CircuitOpen,
        "closed again"
    );
}

#[tokio::test]
async fn a_cancelled_trial_call_does_not_keep_the_breaker_open() {
    let sim = sim().await;
    let admin = sim.admin();
    let creds = Credentials::Token {
        id: sim.token_id().into(),
        secret: Secret::new(sim.token_secret()),
    };
    let mut config = fast(ClientConfig::new(sim.url(), creds, pinned(&sim)));
    config.retry.max_attempts = 1;
    config.breaker = BreakerConfig {
        failure_threshold: 1,
        open_for: Duration::from_millis(300),
    };
    let client = ProxmoxClient::new(config).unwrap();
    let version = Match {
        path_prefix: "/version".into(),
        method: None,
    };
    admin.add_error_rule(ErrorRule {
        on: version.clone(),
        rate: 1.0,
        kind: ErrorKind::Reset,
        message: None,
    });
    assert_eq!(client.version().await.unwrap_err().class(), ErrorClass::Connect);
    assert_eq!(
        client.version().await.unwrap_err().class(),
        ErrorClass::CircuitOpen
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    admin.set_faults(FaultConfig::default());
    admin.add_latency(LatencyRule {
        on: version,
        ms: 5_000,
    });
    let trial = tokio::time::timeout(Duration::from_millis(300), client.version()).await;
    assert!(
        trial.is_err(),
        "the trial call was let through, hung, and was cancelled"
    );

    admin.set_faults(FaultConfig::default());
    let next = client.version().await;
    assert!(
        next.is_ok(),
        "the cancelled trial freed its slot; the next call is the new trial: {next:?}"
    );
}

#[tokio::test]
async fn oversized_answers_are_refused_without_being_read_whole() {
    let sim = sim().await;
    let admin = sim.admin();
    let pad = |bytes: u64, chunked: bool| {
        admin.set_faults(FaultConfig::default());
        admin.add_padding(PaddingRule {
            on: Match {
                path_prefix: "/version".into(),
                method: None,
            },
            bytes,
            chunked,
        });
    };
    const MIB: u64 = 1 << 20;

    // The default limit is 16 MiB.
    let default = token_client(&sim);
    pad(15 * MIB, true);
    default
        .version()
        .await
        .expect("15 MiB is under the default limit");
    pad(17 * MIB, false);
    let err = default.version().await.unwrap_err();
    assert!(
        matches!(err, Error::BodyTooLarge { limit_bytes, .. } if limit_bytes == 16 << 20),
        "{err}"
    );

    let creds = Credentials::Token {
        id: sim.token_id().into(),
        secret: Secret::new(sim.token_secret()),
    };
    let mut config = fast(ClientConfig::new(sim.url(), creds, pinned(&sim)));
    config.max_body_bytes = MIB as usize;
    let client = ProxmoxClient::new(config).unwrap();
    pad(MIB / 2, false);
    assert_eq!(
        client.version().await.expect("under the limit").version,
        sim.config().version
    );

    // Announced by Content-Length, or only found out while reading a chunked body.
    for chunked in [false, true] {
        pad(256 * MIB, chunked);
        admin.clear_requests();
        let sent_before = admin.padding_sent();
        let err = client.version().await.unwrap_err();
        let Error::BodyTooLarge {
            operation,
            limit_bytes,
        } = &err
        else {
            panic!("chunked={chunked}: {err}")
        };
        assert_eq!((operation.as_str(), *limit_bytes), ("get version", MIB as usize));
        assert!(err.to_string().starts_with("get version: "), "{err}");
        assert_eq!(err.class(), ErrorClass::Server);
        assert_eq!(
            count(&sim, "GET", "/version"),
            1,
            "an oversized answer is not retried"
        );
        // The client hung up: the simulator stopped producing the 256 MiB early.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = admin.padding_sent() - sent_before;
        assert!(
            sent < 32 * MIB,
            "chunked={chunked}: {sent} bytes of filler went out"
        );
    }
}

#[tokio::test]
async fn a_failed_task_carries_its_exit_status_and_log_tail() {
    let sim = sim().await;
    let client = token_client(&sim);
    created(&client, 240).await;
    sim.admin().fail_tasks(TaskFailure {
        task_type: Some("vzstart".into()),
        vmid: Some(240),
        message: "startup for container '240' failed".into(),
        count: 1,
    });
    let upid = client
        .container_power("pve1", 240, PowerAction::Start)
        .await
        .unwrap();
    let err = client
        .wait_task(&upid, Duration::from_secs(10))
        .await
        .unwrap_err();
    let Error::TaskFailed {
        exit_status,
        log_tail,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(exit_status, "startup for container '240' failed");
    assert!(
        log_tail.last().is_some_and(|l| l.contains("TASK ERROR")),
        "{log_tail:?}"
    );
}

#[tokio::test]
async fn every_property_string_shape_is_accepted_and_reads_back() {
    let sim = sim().await;
    let client = ProxmoxClient::new(ticket_config(&sim)).unwrap(); // root@pam: may set every feature
    let mut c = create(250);
    c.nets = vec![
        Net {
            name: "eth0".into(),
            bridge: Some("vmbr0".into()),
            ip: Some("dhcp".into()),
            ip6: Some("auto".into()),
            ..Default::default()
        },
        Net {
            name: "eth1".into(),
            bridge: Some("vmbr0".into()),
            firewall: Some(true),
            ip: Some("192.168.20.10/24".into()),
            gw: Some("192.168.20.1".into()),
            ip6: Some("fd00:20::10/64".into()),
            gw6: Some("fd00:20::1".into()),
            hwaddr: Some("BC:24:11:00:00:01".into()),
            mtu: Some(1500),
            rate: Some(12.5),
            tag: Some(20),
            ..Default::default()
        },
    ];
    c.mount_points = vec![Volume {
        volume: "local-lvm:2".into(),
        mp: Some("/srv/data".into()),
        backup: Some(true),
        ro: Some(false),
        ..Default::default()
    }];
    c.features = Some(Features {
        nesting: Some(true),
        keyctl: Some(true),
        fuse: Some(false),
        mount: vec!["nfs".into(), "cifs".into()],
        ..Default::default()
    });
    c.startup = Some(Startup {
        order: Some(3),
        up: Some(5),
        down: Some(10),
    });
    let upid = client
        .create_container("pve1", &c.create_request())
        .await
        .expect("accepted by the schema");
    client.wait_task(&upid, Duration::from_secs(10)).await.unwrap();
    let config = client.container_config("pve1", 250).await.unwrap();
    let net1 = Net::parse(config.get("net1").unwrap()).unwrap();
    assert_eq!(
        (net1.ip.as_deref(), net1.gw.as_deref(), net1.tag, net1.mtu),
        (
            Some("192.168.20.10/24"),
            Some("192.168.20.1"),
            Some(20),
            Some(1500)
        )
    );
    assert_eq!(net1.hwaddr.as_deref(), Some("BC:24:11:00:00:01"));
    assert!(
        Net::parse(config.get("net0").unwrap()).unwrap().hwaddr.is_some(),
        "Proxmox generates a MAC"
    );
    let mp0 = Volume::parse(config.get("mp0").unwrap()).unwrap();
    assert_eq!(
        (mp0.mp.as_deref(), mp0.size_gib(), mp0.backup),
        (Some("/srv/data"), Some(2), Some(true))
    );
    assert_eq!(
        Volume::parse(config.get("rootfs").unwrap()).unwrap().size_gib(),
        Some(4)
    );
    assert_eq!(
        Features::parse(config.get("features").unwrap()).unwrap(),
        c.features.clone().unwrap()
    );
    assert_eq!(
        Startup::parse(config.get("startup").unwrap()).unwrap(),
        c.startup.clone().unwrap()
    );
    assert_no_400(&sim);
}

#[tokio::test]
async fn task_starting_calls_are_capped_per_node() {
    let sim = sim().await;
    let admin = sim.admin();
    let elapsed_with = |cap: usize| {
        let sim = &sim;
        async move {
            let creds = Credentials::Token {
                id: sim.token_id().into(),
                secret: Secret::new(sim.token_secret()),
            };
            let mut config = fast(ClientConfig::new(sim.url(), creds, pinned(sim)));
            config.max_concurrent_tasks = cap;
            let client = ProxmoxClient::new(config).unwrap();
            let base = 300 + 10 * cap as u32;
            let started = std::time::Instant::now();
            let creates = (0..3).map(|i| {
                let client = client.clone();
                async move {
                    client
                        .create_container("pve1", &create(base + i).create_request())
                        .await
                        .unwrap()
                }
            });
            futures::future::join_all(creates).await;
            started.elapsed()
        }
    };
    admin.add_latency(pve_sim::LatencyRule {
        on: Match {
            path_prefix: "/nodes/pve1/lxc".into(),
            method: Some("POST".into()),
        },
        ms: 300,
    });
    let serial = elapsed_with(1).await;
    let parallel = elapsed_with(3).await;
    assert!(
        serial >= Duration::from_millis(900),
        "cap 1: one create at a time ({serial:?})"
    );
    assert!(
        parallel < Duration::from_millis(800),
        "cap 3: all three at once ({parallel:?})"
    );
}

/// The objects of one kind in a multi-document YAML file of `examples/`.
fn example_specs<T: serde::de::DeserializeOwned>(file: &str, kind: &str) -> Vec<(String, T)> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(file),
    )
    .unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| <serde_json::Value as serde::Deserialize>::deserialize(doc).unwrap())
        .filter(|v| v["kind"] == kind)
        .map(|v| {
            (
                v["metadata"]["name"].as_str().unwrap().to_string(),
                serde_json::from_value(v["spec"].clone()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_example_container_maps_to_parameters_proxmox_accepts() {
    use lxc_operator::crd::{LxcContainerSpec, LxcTemplateSpec, ProxmoxNodeSpec};
    use lxc_operator::pipeline::desired::{Subject, desired_container};
    let sim = sim().await;
    let client = ProxmoxClient::new(ticket_config(&sim)).unwrap();
    let (_, node): (String, ProxmoxNodeSpec) = example_specs("10-proxmoxnode.yaml", "ProxmoxNode").remove(0);
    let (_, template): (String, LxcTemplateSpec) =
        example_specs("20-lxctemplate-debian-web.yaml", "LxcTemplate").remove(0);
    let mut vmid = 600;
    for file in [
        "30-lxccontainer-web.yaml",
        "31-lxccontainer-static.yaml",
        "32-lxccontainer-stopped.yaml",
    ] {
        for (name, spec) in example_specs::<LxcContainerSpec>(file, "LxcContainer") {
            let subject = Subject {
                name: &name,
                uid: "uid-1",
                spec: &spec,
                template: &template,
                node: &node,
            };
            let params = desired_container(&subject, vmid);
            let upid = client
                .create_container("pve1", &params.create_request())
                .await
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            client.wait_task(&upid, Duration::from_secs(10)).await.unwrap();
            let config = client.container_config("pve1", vmid).await.unwrap();
            assert_eq!(config.get("hostname"), params.hostname.as_deref(), "{file}");
            let owner = lxc_operator::pipeline::ownership::owner(
                config.get("tags"),
                config.get("description"),
                "uid-1",
                false,
            );
            assert_eq!(
                owner,
                lxc_operator::pipeline::ownership::Owner::This,
                "{file}: the marker survives Proxmox"
            );
            vmid += 1;
        }
    }
    assert_eq!(vmid, 603, "all three example containers were created");
    assert_no_400(&sim);
}
