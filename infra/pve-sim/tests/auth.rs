//! Authentication and permissions over real HTTPS: tickets, CSRF, renewal, expiry, API tokens,
//! privilege checks and the root-only feature-flag rule.

mod common;
use common::*;
use pve_sim::config::{AclEntry, TokenConfig};
use pve_sim::{Config, PveSim};

#[tokio::test]
async fn login_failure_is_401_with_generic_message() {
    let sim = start(&["pve"]).await;
    let c = Client::new(&sim, Auth::None);
    let (s, v, _) = c
        .call(
            "POST",
            "/access/ticket",
            &[("username", "root@pam"), ("password", "wrong")],
        )
        .await;
    assert_eq!(s, 401);
    assert_eq!(
        v,
        serde_json::json!({"data": null, "message": "authentication failure\n"})
    );
    let (line, _) = raw(&sim, "POST /api2/json/access/ticket HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 32\r\n\r\nusername=root@pam&password=nope1").await;
    assert_eq!(line, "HTTP/1.1 401 authentication failure");
}

#[tokio::test]
async fn ticket_cookie_csrf_renewal_and_expiry() {
    let sim = start(&["pve"]).await;
    let root = Client::root(&sim).await;
    let Auth::Ticket { ticket, csrf } = root.auth.clone() else {
        unreachable!()
    };
    assert!(ticket.starts_with("PVE:root@pam:"), "{ticket}");
    assert_eq!(root.get_ok("/version").await["release"], "9.1");

    // A POST with the cookie but no CSRF token is refused.
    let no_csrf = Client::new(
        &sim,
        Auth::Ticket {
            ticket: ticket.clone(),
            csrf: None,
        },
    );
    let (s, _, body) = no_csrf.call("POST", "/nodes/pve/lxc/100/status/start", &[]).await;
    assert_eq!((s, body.as_str()), (401, ""));
    let (line, _) = raw(&sim, &format!("POST /api2/json/nodes/pve/lxc/100/status/start HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: PVEAuthCookie={ticket}\r\nContent-Length: 0\r\n\r\n")).await;
    assert_eq!(line, "HTTP/1.1 401 Permission denied - invalid csrf token");
    // With the token the same call reaches the handler (no such CT → 500).
    let (s, v, _) = root.call("POST", "/nodes/pve/lxc/100/status/start", &[]).await;
    assert_eq!(s, 500);
    assert_eq!(
        v["message"],
        "Configuration file 'nodes/pve/lxc/100.conf' does not exist\n"
    );

    // Renewal: the ticket as password.
    let anon = Client::new(&sim, Auth::None);
    let (s, v, _) = anon
        .call(
            "POST",
            "/access/ticket",
            &[("username", "root@pam"), ("password", &ticket)],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["data"]["ticket"].as_str().unwrap().starts_with("PVE:root@pam:"));

    // Expire all tickets: the old one fails with an empty body, a fresh login works.
    sim.admin().expire_tickets();
    let (s, _, body) = root.call("GET", "/version", &[]).await;
    assert_eq!((s, body.as_str()), (401, ""));
    let (line, _) = raw(&sim, &format!("GET /api2/json/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: PVEAuthCookie={ticket}\r\n\r\n")).await;
    assert_eq!(line, "HTTP/1.1 401 Authentication failed!");
    let _ = csrf;
    let again = Client::root(&sim).await;
    assert_eq!(again.get_ok("/version").await["version"], "9.1.2");

    let (line, _) = raw(
        &sim,
        "GET /api2/json/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(line, "HTTP/1.1 401 No ticket");
}

#[tokio::test]
async fn short_ticket_lifetime_expires() {
    let cfg = Config {
        ticket_lifetime_secs: 0,
        ..Config::default()
    };
    let sim = PveSim::start(cfg).await.unwrap();
    let root = Client::root(&sim).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (s, _, _) = root.call("GET", "/version", &[]).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn api_token_needs_no_csrf_and_is_not_root() {
    let sim = start(&["pve"]).await;
    let tok = Client::token(&sim);
    assert_eq!(tok.get_ok("/cluster/nextid").await, "100");
    // Keyctl is root@pam's alone, even for root@pam's own token.
    let (s, v, _) = tok
        .call(
            "POST",
            "/nodes/pve/lxc",
            &[
                ("vmid", "100"),
                ("ostemplate", TEMPLATE),
                ("features", "keyctl=1,nesting=1"),
            ],
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(
        v["message"],
        "Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)\n"
    );
    // Nesting alone is fine with VM.Allocate.
    create_ct(&tok, "pve", "100", &[("features", "nesting=1")]).await;
    // A privileged container needs Sys.Modify on /.
    let (s, v, _) = tok
        .call(
            "POST",
            "/nodes/pve/lxc",
            &[("vmid", "101"), ("ostemplate", TEMPLATE), ("unprivileged", "0")],
        )
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (403, Some("Permission check failed (/, Sys.Modify)\n"))
    );
    // root@pam by ticket may set keyctl.
    let root = Client::root(&sim).await;
    create_ct(&root, "pve", "102", &[("features", "keyctl=1")]).await;

    let bad = Client::new(&sim, Auth::Token(format!("PVEAPIToken={}=wrong", sim.token_id())));
    let (s, _, body) = bad.call("GET", "/version", &[]).await;
    assert_eq!((s, body.as_str()), (401, ""));
}

#[tokio::test]
async fn missing_privilege_is_403_before_the_handler() {
    let mut cfg = Config::default();
    cfg.tokens.push(TokenConfig {
        tokenid: "root@pam!audit".into(),
        secret: "s3cret".into(),
        privsep: true,
        acl: vec![AclEntry {
            path: "/vms".into(),
            privs: vec!["VM.Audit".into()],
            propagate: true,
        }],
    });
    let sim = PveSim::start(cfg).await.unwrap();
    let audit = Client::new(&sim, Auth::Token("PVEAPIToken=root@pam!audit=s3cret".into()));
    let (s, v, _) = audit
        .call(
            "POST",
            "/nodes/pve/lxc",
            &[("vmid", "100"), ("ostemplate", TEMPLATE)],
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(v["message"], "Permission check failed (/vms/100, VM.Allocate)\n");
    let (line, _) = raw(&sim, "DELETE /api2/json/nodes/pve/lxc/555 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: PVEAPIToken=root@pam!audit=s3cret\r\n\r\n").await;
    assert_eq!(
        line,
        "HTTP/1.1 403 Permission check failed (/vms/555, VM.Allocate)"
    );
    // Listing works but is filtered; storage needs Datastore rights it lacks.
    assert_eq!(audit.get_ok("/nodes/pve/lxc").await, serde_json::json!([]));
    let (s, _, _) = audit.call("GET", "/nodes/pve/storage/local/content", &[]).await;
    assert_eq!(s, 403);
}
