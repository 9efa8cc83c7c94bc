//! Parameter verification and envelope rules over HTTPS: per-parameter 400 bodies, form
//! booleans, JSON bodies, bodies on GET/DELETE, unknown paths, 500 reason phrases.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn bad_parameters_give_400_with_errors_per_parameter() {
    let sim = start(&["pve"]).await;
    let tok = Client::token(&sim);
    let (s, v, _) = tok
        .call(
            "POST",
            "/nodes/pve/lxc",
            &[
                ("vmid", "100"),
                ("onboot", "true"),
                ("cores", "abc"),
                ("memory", "8"),
                ("cmode", "serial"),
                ("net0", "bridge=vmbr0"),
                ("bogus", "1"),
                ("startup", "first"),
            ],
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(v["message"], "Parameter verification failed.\n");
    assert_eq!(v["data"], serde_json::Value::Null);
    let e = &v["errors"];
    assert_eq!(e["ostemplate"], "property is missing and it is not optional");
    assert_eq!(e["onboot"], "type check ('boolean') failed - got 'true'");
    assert_eq!(e["cores"], "type check ('integer') failed - got 'abc'");
    assert_eq!(e["memory"], "value must have a minimum value of 16");
    assert_eq!(
        e["cmode"],
        "value 'serial' does not have a value in the enumeration 'shell, console, tty'"
    );
    assert!(
        e["net0"]
            .as_str()
            .unwrap()
            .contains("net0.name: property is missing and it is not optional")
    );
    assert_eq!(
        e["bogus"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    assert!(e["startup"].as_str().unwrap().starts_with("invalid format - "));
    assert!(e.get("vmid").is_none());
    let (line, _) = raw(&sim, &format!("GET /api2/json/nodes/pve/lxc/abc/config HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {}\r\n\r\n", sim.token_header())).await;
    assert_eq!(line, "HTTP/1.1 400 Parameter verification failed.");
}

#[tokio::test]
async fn json_bodies_accept_real_booleans() {
    let sim = start(&["pve"]).await;
    let tok = Client::token(&sim);
    let (s, v, _) = tok
        .call_json("POST", "/nodes/pve/lxc", &json!({"vmid": 100, "ostemplate": TEMPLATE, "onboot": true, "cores": 2, "rootfs": "local-lvm:8"}))
        .await;
    assert_eq!(s, 200, "{v}");
    let upid = v["data"].as_str().unwrap();
    assert_eq!(tok.wait(upid).await, "OK");
    let conf = tok.get_ok("/nodes/pve/lxc/100/config").await;
    assert_eq!(conf["onboot"], 1);
    assert_eq!(conf["cores"], 2);
    let (s, v, _) = tok
        .call_json("PUT", "/nodes/pve/lxc/100/config", &json!({"onboot": "true"}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["errors"]["onboot"],
        "type check ('boolean') failed - got 'true'"
    );
}

#[tokio::test]
async fn get_and_delete_refuse_a_body_and_unknown_paths_are_501() {
    let sim = start(&["pve"]).await;
    let auth = sim.token_header();
    let (line, body) = raw(&sim, &format!("DELETE /api2/json/nodes/pve/lxc/100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\npurge=1")).await;
    assert_eq!(line, "HTTP/1.1 501 Unexpected content for method 'DELETE'");
    assert_eq!(body, "Unexpected content for method 'DELETE'");
    let (line, _) = raw(&sim, &format!("GET /api2/json/nodes/pve/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\n\r\n")).await;
    assert_eq!(
        line,
        "HTTP/1.1 501 Method 'GET /api2/json/nodes/pve/nope' not implemented"
    );
    // Query parameters on DELETE are fine.
    let tok = Client::token(&sim);
    let (s, v, _) = tok.call("DELETE", "/nodes/pve/lxc/100", &[("purge", "1")]).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            500,
            Some("Configuration file 'nodes/pve/lxc/100.conf' does not exist\n")
        )
    );
}

#[tokio::test]
async fn handler_errors_put_the_message_in_reason_and_body() {
    let sim = start(&["pve"]).await;
    let auth = sim.token_header();
    let (line, body) = raw(&sim, &format!("GET /api2/json/nodes/pve/lxc/300/status/current HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\n\r\n")).await;
    assert_eq!(
        line,
        "HTTP/1.1 500 Configuration file 'nodes/pve/lxc/300.conf' does not exist"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"data": null, "message": "Configuration file 'nodes/pve/lxc/300.conf' does not exist\n"})
    );
    let tok = Client::token(&sim);
    let (s, v, _) = tok.call("GET", "/nodes/nope/lxc", &[]).await;
    assert_eq!(s, 500);
    assert_eq!(
        v["message"],
        "hostname lookup 'nope' failed - failed to get address info for: nope: Name or service not known\n"
    );
}
