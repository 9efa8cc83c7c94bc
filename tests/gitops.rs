//! GitOps with the operator running: re-applying the same file (server-side and client-side
//! `kubectl apply`) after the operator made the container Ready changes no field's owner and
//! meets no conflict, because the operator writes only status and its finalizer; and the
//! health that Argo CD (`charts/lxc-operator/docs/argocd/health.lua`, run by the real Lua 5.1)
//! and Flux (the kstatus library, `infra/kstatus`) read from statuses the operator wrote.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use kube::ResourceExt;
use serde_json::{Value, json};
use support::World;

/// Every field path a manifest's `fieldsV1` names, flattened (`f:spec.f:nodeRef`).
fn paths(fields: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Some(map) = fields.as_object() {
        for (k, v) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if v.as_object().is_some_and(|m| !m.is_empty()) {
                paths(v, &path, out);
            } else {
                out.insert(path);
            }
        }
    }
}

/// (manager, operation, field path) of every field owned outside the status subresource.
fn owners(obj: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for entry in obj["metadata"]["managedFields"].as_array().unwrap() {
        if entry["subresource"] == "status" {
            continue;
        }
        let mut fields = BTreeSet::new();
        paths(&entry["fieldsV1"], "", &mut fields);
        for f in fields {
            out.insert((
                entry["manager"].as_str().unwrap().to_string(),
                entry["operation"].as_str().unwrap().to_string(),
                f,
            ));
        }
    }
    out
}

fn kubectl(args: &[&str], file: &std::path::Path) -> (String, String) {
    let out = test_world::control_plane()
        .kubectl()
        .args(args)
        .arg("-f")
        .arg(file)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "kubectl {args:?}: {stdout}{stderr}");
    (stdout, stderr)
}

async fn object(w: &World, name: &str) -> Value {
    serde_json::to_value(w.api().get(name).await.unwrap()).unwrap()
}

/// Applies the file twice with `args`, the operator making the container Ready in between, and
/// checks the second apply changed no owner, met no conflict and left the finalizer.
async fn reapply_changes_nothing(w: &World, name: &str, args: &[&str], manager: &str) -> Value {
    let file = support::scratch(&format!("gitops-{name}")).join("container.yaml");
    let manifest = json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer",
        "metadata": {"name": name, "namespace": w.ns},
        "spec": {"nodeRef": w.nodes[0], "templateRef": w.template, "resources": {"memoryMiB": 256}}});
    std::fs::write(&file, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    kubectl(args, &file);
    let ready = w.ready(name).await;
    assert!(
        ready
            .finalizers()
            .iter()
            .any(|f| f.starts_with("lxc.infrahaus.dev/"))
    );
    let before = object(w, name).await;
    let owned = owners(&before);
    assert!(
        owned
            .iter()
            .filter(|(m, _, _)| m != manager)
            .all(|(_, _, f)| f.starts_with("f:metadata.f:finalizers")),
        "{name}: besides {manager}, only the operator's finalizer is owned outside status: {owned:#?}"
    );
    assert!(
        owned
            .iter()
            .any(|(m, _, f)| m == manager && f == "f:spec.f:nodeRef")
    );

    let (stdout, stderr) = kubectl(args, &file);
    assert!(!stderr.to_lowercase().contains("conflict"), "{stderr}");
    assert!(
        stdout.contains("unchanged") || stdout.contains("serverside-applied"),
        "{stdout}"
    );
    let after = object(w, name).await;
    assert_eq!(owners(&after), owned, "{name}: no field changed owner");
    assert_eq!(after["metadata"]["generation"], before["metadata"]["generation"]);
    assert_eq!(after["metadata"]["finalizers"], before["metadata"]["finalizers"]);
    after
}

#[tokio::test]
async fn reapplying_a_ready_container_changes_no_owner_and_meets_no_conflict() {
    let w = World::new("gitops", &["pve1"], |c| c).await;
    let ssa = reapply_changes_nothing(
        &w,
        "server-side",
        &["apply", "--server-side", "--field-manager=gitops"],
        "gitops",
    )
    .await;
    let ssa_managers: BTreeSet<&str> = ssa["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["manager"] == "gitops")
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ssa_managers, BTreeSet::from(["Apply"]));
    let csa = reapply_changes_nothing(&w, "client-side", &["apply"], "kubectl-client-side-apply").await;
    assert!(csa["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());
}

/// A JSON value as a Lua 5.1 table constructor (objects keyed by string, arrays from 1).
fn lua(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for b in s.bytes() {
                match b {
                    b'"' | b'\\' => out.push_str(&format!("\\{}", b as char)),
                    0x20..=0x7e => out.push(b as char),
                    // Control characters and UTF-8 bytes as decimal escapes.
                    _ => out.push_str(&format!("\\{b}")),
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("[{}] = {}", lua(&Value::String(k.clone())), lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

const HEALTH_LUA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/lxc-operator/docs/argocd/health.lua"
);

/// Argo CD's verdict: the script run with `obj` set, as Argo CD runs it.
fn argo_health(obj: &Value) -> (String, String) {
    let program = format!(
        "obj = {}\nlocal hs = dofile({})\nio.write(hs.status, \"\\n\", hs.message or \"\", \"\\n\")\n",
        lua(obj),
        lua(&Value::String(HEALTH_LUA.into()))
    );
    let mut child = Command::new("lua5.1")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lua5.1 (run make bootstrap)");
    child.stdin.take().unwrap().write_all(program.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "lua5.1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let status = lines.next().unwrap_or_default().to_string();
    (status, lines.next().unwrap_or_default().to_string())
}

fn has_condition(obj: &Value, type_: &str, status: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == type_ && c["status"] == status))
}

#[tokio::test]
async fn argo_cd_and_flux_read_health_from_the_operators_statuses() {
    let w = World::new("health", &["pve1"], |c| c).await;
    w.container("ready", json!({"nodeRef": w.nodes[0]})).await;
    w.container("blocked", json!({"nodeRef": format!("{}-absent", w.ns)}))
        .await;
    w.container("denied", json!({"nodeRef": w.nodes[0], "unprivileged": false}))
        .await;
    let ready = serde_json::to_value(w.ready("ready").await).unwrap();
    let blocked = serde_json::to_value(
        w.wait("blocked", "Reconciling", 30, |ct| {
            ct.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Reconciling"))
        })
        .await,
    )
    .unwrap();
    let denied = serde_json::to_value(
        w.wait("denied", "Stalled", 30, |ct| {
            ct.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Stalled"))
        })
        .await,
    )
    .unwrap();
    assert!(has_condition(&blocked, "Reconciling", "True") && has_condition(&blocked, "Ready", "False"));
    assert!(has_condition(&denied, "Stalled", "True"), "{denied}");
    // A spec change the operator has not observed yet.
    let mut unobserved = ready.clone();
    unobserved["metadata"]["generation"] = json!(ready["metadata"]["generation"].as_i64().unwrap() + 1);
    let node = serde_json::to_value(w.node(0).await).unwrap();
    let template = serde_json::to_value(w.template().await).unwrap();
    assert!(has_condition(&node, "Ready", "True") && has_condition(&template, "Ready", "True"));

    let cases = [
        ("ready container", &ready, "Healthy", "Current"),
        ("ready node", &node, "Healthy", "Current"),
        ("ready template", &template, "Healthy", "Current"),
        ("blocked container", &blocked, "Progressing", "InProgress"),
        ("unobserved change", &unobserved, "Progressing", "InProgress"),
        ("stalled container", &denied, "Degraded", "Failed"),
    ];
    for (what, obj, argo, _) in &cases {
        let (status, message) = argo_health(obj);
        assert_eq!(&status, argo, "Argo CD health of the {what}: {message}");
    }
    let (_, message) = argo_health(&denied);
    assert!(message.starts_with("PolicyDenied"), "{message}");

    let objects: Vec<&Value> = cases.iter().map(|c| c.1).collect();
    let results = kstatus(&objects);
    for ((what, _, _, flux), result) in cases.iter().zip(&results) {
        assert!(
            result.starts_with(&format!("{flux} ")),
            "kstatus of the {what}: {result}"
        );
    }
}

/// kstatus' verdicts ("<status> <message>"), by `infra/kstatus`'s checker.
fn kstatus(objects: &[&Value]) -> Vec<String> {
    let checker = test_world::kstatus_check().unwrap();
    let mut child = Command::new(checker)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kstatus-check (run make bootstrap)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(objects).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kstatus-check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), objects.len());
    lines
}
