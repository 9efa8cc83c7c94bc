//! The Helm chart (`charts/lxc-operator/`): `helm lint`, what it renders (a locked-down
//! Deployment, values that fail with a clear message), a ClusterRole with exactly the rights the
//! code uses, and the operator process running as the chart's ServiceAccount — a token minted
//! for it and nothing else — through a provisioned container's whole life without one 403.

mod support;

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::{Value, json};
use support::chart::{self, CHART, env, one, operator_container, render};
use support::{World, apply};

#[test]
fn lint_passes_and_the_defaults_render_a_locked_down_deployment() {
    let lint = chart::run(chart::helm().args(["lint", "--strict", CHART]));
    assert!(
        lint.status.success(),
        "helm lint --strict: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    let objects = render("lxc", "ops", &[]);
    let kinds: BTreeSet<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    let expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ];
    assert_eq!(kinds, expected.into_iter().collect());

    assert_eq!(
        one(&objects, "Deployment")["spec"]["strategy"]["type"],
        "Recreate",
        "without Redis a rollout never runs two operators"
    );
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "lxc-lxc-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = operator_container(&objects);
    assert_eq!(c["args"], json!(["run"]));
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for bound in ["requests", "limits"] {
        for what in ["cpu", "memory"] {
            assert!(
                c["resources"][bound][what].is_string(),
                "resources.{bound}.{what}"
            );
        }
    }
    // The probes reach the port the operator listens on.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(env(c, "LXC_OPERATOR_LISTEN").unwrap()["value"], "0.0.0.0:8080");
    // The status page on a listener of its own, named `status` for the Service and Ingress.
    assert_eq!(c["ports"][1]["name"], "status");
    assert_eq!(c["ports"][1]["containerPort"], 8081);
    assert_eq!(
        env(c, "LXC_OPERATOR_STATUS_LISTEN").unwrap()["value"],
        "0.0.0.0:8081"
    );
    assert_eq!(
        env(c, "POD_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // The SQLite file of the default audit store is on a writable volume.
    let sqlite = env(c, "LXC_OPERATOR_SQLITE_PATH").unwrap()["value"]
        .as_str()
        .unwrap();
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| sqlite.starts_with(m["mountPath"].as_str().unwrap())),
        "{sqlite} is on a mounted volume: {mounts:?}"
    );
    assert!(env(c, "LXC_OPERATOR_REDIS_URL").is_none() && env(c, "LXC_OPERATOR_DATABASE_URL").is_none());

    let crds: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), 3);
    for crd in &crds {
        assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
    }
    let unkept = render("lxc", "ops", &["crds.keep=false"]);
    assert!(
        unkept
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .all(|o| o["metadata"]["annotations"]
                .get("helm.sh/resource-policy")
                .is_none())
    );
    let without = render("lxc", "ops", &["crds.install=false"]);
    assert!(!without.iter().any(|o| o["kind"] == "CustomResourceDefinition"));

    let extras = render(
        "lxc",
        "ops",
        &["serviceMonitor.enabled=true", "ingress.enabled=true"],
    );
    assert_eq!(
        one(&extras, "ServiceMonitor")["spec"]["endpoints"][0]["path"],
        "/metrics"
    );
    assert_eq!(
        one(&extras, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "lxc-lxc-operator"
    );
}

/// Every sample name the operator's registry writes, and its families (from `# TYPE`), with
/// every hook fed once so that no family is left out for lack of a sample.
fn exposed_metrics() -> (BTreeSet<String>, BTreeSet<String>) {
    use lxc_operator::cluster::ReconcileMetrics;
    use lxc_operator::observe::Observer;
    use lxc_operator::proxmox::client::Metrics as _;
    let m = lxc_operator::runtime::metrics::Metrics::new();
    m.observe("get version", "ok", Duration::from_millis(3));
    m.task_finished("vzcreate", "ok", 2.0);
    m.reconciled("LxcContainer", "error", "transient", "ProxmoxUnreachable", 0.1);
    m.active("LxcContainer", 0);
    m.queued("LxcContainer", 0);
    m.phase_left("Creating", 1.0);
    m.first_ready(3.0);
    m.lock_acquired("container", Duration::ZERO);
    m.audit_write("intent", "written");
    m.ssh_session(true);
    m.provision_step("script", "ran");
    let text = m.render();
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(String::from)
        .collect();
    let families = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .map(String::from)
        .collect();
    (samples, families)
}

/// The metric names in the dashboard's PromQL (panel targets and template variables).
fn dashboard_metric_names(dashboard: &Value) -> Vec<String> {
    fn strings<'a>(v: &'a Value, key: Option<&str>, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) if matches!(key, Some("expr" | "definition")) => out.push(s),
            Value::Array(items) => items.iter().for_each(|i| strings(i, key, out)),
            Value::Object(map) => map.iter().for_each(|(k, v)| strings(v, Some(k), out)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    strings(dashboard, None, &mut exprs);
    assert!(exprs.len() > 10, "{exprs:?}");
    let mut names = Vec::new();
    for expr in exprs {
        let found: Vec<String> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|w| {
                ["controller_runtime_", "workqueue_", "lxc_operator_"]
                    .iter()
                    .any(|p| w.starts_with(p))
            })
            .map(String::from)
            .collect();
        assert!(!found.is_empty(), "no operator metric in {expr}");
        names.extend(found);
    }
    names
}

#[test]
fn the_grafana_dashboard_is_opt_in_and_uses_only_metrics_the_operator_exposes() {
    let by_default = render("lxc", "ops", &[]);
    assert!(
        !by_default
            .iter()
            .any(|o| o["kind"] == "ConfigMap" && o["metadata"]["labels"]["grafana_dashboard"] == "1"),
        "no dashboard unless asked"
    );
    let objects = render(
        "lxc",
        "ops",
        &[
            "grafana.dashboard.enabled=true",
            "grafana.dashboard.labels.team=infra",
        ],
    );
    let cm = one(&objects, "ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["labels"]["team"], "infra");
    assert_eq!(cm["metadata"]["namespace"], "ops");
    let text = cm["data"]["lxc-operator.json"]
        .as_str()
        .expect("the dashboard JSON");
    let dashboard: Value = serde_json::from_str(text).expect("valid JSON");
    assert_eq!(dashboard["uid"], "lxc-operator");

    let (exposed, families) = exposed_metrics();
    let used = dashboard_metric_names(&dashboard);
    for name in &used {
        assert!(
            exposed.contains(name),
            "{name} is not exposed; exposed: {exposed:?}"
        );
    }
    // And the other way: every family has a panel.
    for family in &families {
        assert!(
            used.iter().any(|u| u.starts_with(family.as_str())),
            "no panel uses {family}"
        );
    }
    let err = chart::template_text("lxc", "ops", &["grafana.dashboard.enabeld=true"]).unwrap_err();
    assert!(err.contains("enabeld") && err.contains("not allowed"), "{err}");
}

#[test]
fn a_typo_or_replicas_without_redis_fail_with_a_clear_message() {
    for (set, names) in [
        ("replicaCout=2", "replicaCout"),
        ("log.formt=json", "formt"),
        ("database.existingSecret.nmae=pg", "nmae"),
    ] {
        let err = chart::template_text("lxc", "ops", &[set]).expect_err(set);
        assert!(err.contains(names) && err.contains("not allowed"), "{set}: {err}");
    }
    let err = chart::template_text("lxc", "ops", &["log.format=yaml"]).unwrap_err();
    assert!(err.contains("/log/format"), "{err}");

    let err = chart::template_text("lxc", "ops", &["replicaCount=2"]).unwrap_err();
    assert!(err.contains("/redis"), "{err}");

    let two = render("lxc", "ops", &["replicaCount=2", "redis.url=redis://redis:6379"]);
    let c = operator_container(&two);
    assert_eq!(env(c, "LXC_OPERATOR_REPLICAS").unwrap()["value"], "2");
    assert_eq!(
        env(c, "LXC_OPERATOR_REDIS_URL").unwrap()["value"],
        "redis://redis:6379"
    );
    assert_eq!(one(&two, "Deployment")["spec"]["replicas"], 2);
    assert_eq!(
        one(&two, "Deployment")["spec"]["strategy"]["type"],
        "RollingUpdate"
    );

    let three = render(
        "lxc",
        "ops",
        &[
            "replicaCount=3",
            "redis.existingSecret.name=redis",
            "database.existingSecret.name=pg",
        ],
    );
    let c = operator_container(&three);
    let from = |name: &str| env(c, name).unwrap()["valueFrom"]["secretKeyRef"].clone();
    assert_eq!(
        from("LXC_OPERATOR_REDIS_URL"),
        json!({"name": "redis", "key": "url"})
    );
    assert_eq!(
        from("LXC_OPERATOR_DATABASE_URL"),
        json!({"name": "pg", "key": "url"})
    );
}

#[test]
fn the_bundled_servers_are_opt_in_labelled_and_wired_to_the_operator() {
    let defaults = render("lxc", "ops", &[]);
    assert_eq!(
        defaults.iter().filter(|o| o["kind"] == "Deployment").count(),
        1,
        "nothing bundled by default"
    );
    let objects = render(
        "lxc",
        "ops",
        &[
            "bundled.postgres.enabled=true",
            "bundled.redis.enabled=true",
            "replicaCount=2",
        ],
    );
    let operator_pods = objects
        .iter()
        .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "lxc-lxc-operator")
        .map(|s| s["spec"]["selector"].clone())
        .expect("the operator's Service");
    assert_eq!(
        one(&objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        operator_pods
    );
    let c = operator_container(&objects);
    for (server, env_name, port, scheme) in [
        ("postgres", "LXC_OPERATOR_DATABASE_URL", 5432, "postgres://lxc:"),
        ("redis", "LXC_OPERATOR_REDIS_URL", 6379, "redis://:"),
    ] {
        let name = format!("lxc-lxc-operator-{server}");
        let named = |kind: &str| {
            objects
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{kind} {name}"))
        };
        let (deployment, service, secret) = (named("Deployment"), named("Service"), named("Secret"));
        for o in [deployment, service, secret] {
            assert_eq!(
                o["metadata"]["labels"]["lxc.infrahaus.dev/not-for-production"],
                "true"
            );
        }
        assert_eq!(deployment["spec"]["replicas"], 1);
        let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
        let selects = |selector: &Value, labels: &Value| {
            selector.as_object().unwrap().iter().all(|(k, v)| &labels[k] == v)
        };
        assert!(selects(&service["spec"]["selector"], pod_labels));
        assert!(
            !selects(&operator_pods, pod_labels),
            "the operator's Service and PDB do not select the {server} pod"
        );
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
            true
        );
        assert_eq!(
            env(c, env_name).unwrap()["valueFrom"]["secretKeyRef"],
            json!({"name": name, "key": "url"})
        );
        let url = secret["stringData"]["url"].as_str().unwrap();
        let password = secret["stringData"]["password"].as_str().unwrap();
        assert!(password.len() >= 32, "a generated password");
        assert!(
            url.starts_with(&format!("{scheme}{password}@{name}.ops.svc:{port}")),
            "{url}"
        );
        assert_eq!(service["spec"]["ports"][0]["port"], port);
    }
    let err = chart::template_text(
        "lxc",
        "ops",
        &["bundled.redis.enabled=true", "redis.url=redis://r"],
    )
    .unwrap_err();
    assert!(err.contains("not both"), "{err}");
}

/// What the operator's code asks of the API server: (API group, resource, verb). README "RBAC"
/// says where each comes from.
const NEEDED: &[(&str, &str, &[&str])] = &[
    ("lxc.infrahaus.dev", "lxccontainers", &["list", "watch", "patch"]),
    ("lxc.infrahaus.dev", "lxctemplates", &["list", "watch"]),
    ("lxc.infrahaus.dev", "proxmoxnodes", &["list", "watch", "patch"]),
    ("lxc.infrahaus.dev", "lxccontainers/status", &["get", "patch"]),
    ("lxc.infrahaus.dev", "lxctemplates/status", &["patch"]),
    ("lxc.infrahaus.dev", "proxmoxnodes/status", &["patch"]),
    ("lxc.infrahaus.dev", "lxccontainers/finalizers", &["update"]),
    ("lxc.infrahaus.dev", "proxmoxnodes/finalizers", &["update"]),
    ("", "secrets", &["get", "create", "patch", "update"]),
    ("", "configmaps", &["get"]),
    ("events.k8s.io", "events", &["create", "patch"]),
];

/// A role's rules as (group, resource, verb) triples.
fn grants(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    for rule in role["rules"].as_array().unwrap() {
        assert!(rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none());
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                for v in strings(&rule["verbs"]) {
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

#[test]
fn the_roles_grant_exactly_what_the_code_uses() {
    let objects = render("lxc", "ops", &[]);
    let cluster = grants(one(&objects, "ClusterRole"));
    assert!(
        !cluster
            .iter()
            .any(|(g, r, v)| [g, r, v].iter().any(|s| s.contains('*'))),
        "no wildcards: {cluster:?}"
    );
    let needed: BTreeSet<(String, String, String)> = NEEDED
        .iter()
        .flat_map(|(g, r, verbs)| {
            verbs
                .iter()
                .map(|v| (g.to_string(), r.to_string(), v.to_string()))
        })
        .collect();
    assert_eq!(cluster, needed, "the ClusterRole is exactly what the code uses");
    assert!(
        !cluster.iter().any(|(_, r, v)| r == "secrets" && v == "delete"),
        "Secrets are never deleted by the operator"
    );

    let lease_role = one(&objects, "Role");
    assert_eq!(lease_role["metadata"]["namespace"], "ops");
    let leases = grants(lease_role);
    let expected: BTreeSet<(String, String, String)> = ["get", "create", "update"]
        .iter()
        .map(|v| ("coordination.k8s.io".into(), "leases".into(), v.to_string()))
        .collect();
    assert_eq!(leases, expected);
    for binding in ["ClusterRoleBinding", "RoleBinding"] {
        let b = one(&objects, binding);
        assert_eq!(
            b["subjects"],
            json!([{"kind": "ServiceAccount", "name": "lxc-lxc-operator", "namespace": "ops"}])
        );
    }
}

/// Starts `lxc-operator run` as the rendered Deployment would: its arguments and environment
/// (field references filled in as the kubelet would), a kubeconfig holding only `token`, and the
/// listen address moved to loopback.
fn start_as_deployed(container: &Value, ns: &str, token: &str, dir: &std::path::Path) -> Operator {
    let cp = test_world::control_plane();
    std::fs::write(dir.join("ca.crt"), &cp.ca_pem).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    \
             certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {token}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: sa\ncurrent-context: c\n",
            cp.url,
            dir.join("ca.crt").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lxc-operator"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBECONFIG", &kubeconfig);
    for arg in container["args"].as_array().unwrap() {
        cmd.arg(arg.as_str().unwrap());
    }
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let value = match (&e["value"], &e["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(v), _) => v.clone(),
            (_, Value::String(p)) if p == "metadata.name" => "chart-operator-0".into(),
            (_, Value::String(p)) if p == "metadata.namespace" => ns.into(),
            _ => panic!("env {name}: no way to fill {e}"),
        };
        cmd.env(name, value);
    }
    let listen = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "LXC_OPERATOR_LISTEN")
        .and_then(|e| e["value"].as_str())
        .unwrap()
        .replace("0.0.0.0", "127.0.0.1");
    cmd.env("LXC_OPERATOR_LISTEN", listen);
    // The chart's status page port, moved to a free loopback one like the web server's.
    cmd.env(
        "LXC_OPERATOR_STATUS_LISTEN",
        format!("127.0.0.1:{}", test_world::free_port()),
    );
    let log = std::fs::File::create(dir.join("operator.log")).unwrap();
    cmd.stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(Operator)
        .expect("start lxc-operator")
}

/// The operator process, killed when the test ends however it ends.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

async fn http_get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

#[tokio::test]
async fn the_operator_runs_a_provisioned_container_through_its_life_with_only_the_charts_rights() {
    let cp = test_world::control_plane();
    let admin = cp.client().await;
    let (w, roots) = World::with_ssh_without_operator("chart", None).await;
    let ns = w.ns.clone();
    let dir = support::scratch("chart-operator");
    let port = test_world::free_port();

    // The chart as a user installs it, minus the CRDs the test world already installed.
    let pg = test_world::postgres().url();
    let redis = test_world::redis().url();
    let sets = [
        "crds.install=false".to_string(),
        format!("database.url={pg}"),
        format!("redis.url={redis}"),
        format!("operator.port={port}"),
        "operator.leaseSeconds=3".into(),
        "log.level=info".into(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let manifest = chart::template_text("lp", &ns, &sets).unwrap();
    std::fs::write(dir.join("chart.yaml"), &manifest).unwrap();
    let applied = cp
        .kubectl()
        .args(["apply", "--namespace", &ns, "-f"])
        .arg(dir.join("chart.yaml"))
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let minted = cp
        .kubectl()
        .args([
            "create",
            "token",
            "lp-lxc-operator",
            "--namespace",
            &ns,
            "--duration=1h",
        ])
        .output()
        .unwrap();
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_string();
    // The token is the ServiceAccount's, and it has no more than the chart's rights.
    let as_sa = cp.client_with_token(&token).await;
    let other = Api::<Secret>::namespaced(as_sa.clone(), &ns);
    assert!(
        matches!(other.delete("token", &Default::default()).await, Err(kube::Error::Api(e)) if e.code == 403),
        "the ServiceAccount may not delete Secrets"
    );

    let objects = chart::objects(&manifest);
    let container = operator_container(&objects);
    let mut operator = start_as_deployed(container, &ns, &token, &dir);
    let base = format!("http://127.0.0.1:{port}");
    let ready_path = container["readinessProbe"]["httpGet"]["path"].as_str().unwrap();
    let mut leading = false;
    for _ in 0..150 {
        if let Some((200, body)) = http_get(&format!("{base}{ready_path}")).await
            && serde_json::from_str::<Value>(&body).is_ok_and(|j| j["leader"] == true)
        {
            leading = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = || std::fs::read_to_string(dir.join("operator.log")).unwrap_or_default();
    assert!(leading, "ready and leading within 15 s; log:\n{}", log());
    let live_path = container["livenessProbe"]["httpGet"]["path"].as_str().unwrap();
    assert_eq!(
        http_get(&format!("{base}{live_path}")).await.map(|r| r.0),
        Some(200)
    );
    let lease = Api::<Lease>::namespaced(admin.clone(), &ns)
        .get("lxc-operator")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("chart-operator-0"),
        "the Lease is in the release's namespace, held under the pod's name"
    );

    // Provisioning reads a ConfigMap and a Secret, and writes the credentials Secret.
    let template = format!("{ns}-app");
    apply(
        &admin,
        json!({"apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcTemplate", "metadata": {"name": template},
            "spec": {"osTemplate": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                "packages": {"apt": ["nginx"]},
                "scripts": [{"name": "credentials", "content":
                    "mkdir -p \"$PCT_ROOT/etc/infrahaus/credentials\"\nprintf 'USER=admin\\n' > \"$PCT_ROOT/etc/infrahaus/credentials/nginx.env\"\n"}],
                "services": [{"name": "nginx.service", "ports": [80]}]}}),
    )
    .await;
    let configmaps = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(admin.clone(), &ns);
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "motd"}, "data": {"motd": "hello\n"}})).unwrap();
    configmaps.create(&Default::default(), &cm).await.unwrap();
    apply(
        &admin,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-key", "namespace": ns},
               "stringData": {"key": "k3y\n"}}),
    )
    .await;
    w.container(
        "app",
        json!({"nodeRef": w.nodes[0], "templateRef": template, "resources": {"memoryMiB": 512},
               "provisioning": {"files": [
                   {"path": "/etc/motd", "contentFrom": {"configMapKeyRef": {"name": "motd", "key": "motd"}}},
                   {"path": "/etc/app.key", "mode": "0600",
                    "contentFrom": {"secretKeyRef": {"name": "app-key", "key": "key"}}}]}}),
    )
    .await;
    let ct = w.ready("app").await;
    let vmid = support::vmid(&ct);
    let root = roots.join(vmid.to_string());
    assert_eq!(std::fs::read_to_string(root.join("etc/motd")).unwrap(), "hello\n");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/app.key")).unwrap(),
        "k3y\n"
    );
    let credentials = Api::<Secret>::namespaced(admin.clone(), &ns)
        .get("app-credentials")
        .await
        .expect("the credentials Secret was written");
    assert!(credentials.data.unwrap().keys().any(|k| k.contains("USER")));

    w.patch_spec("app", json!({"resources": {"memoryMiB": 768}}))
        .await;
    let changed = w.ready("app").await;
    assert_eq!(changed.metadata.generation, Some(2));
    assert_eq!(w.config("pve1", vmid).await.get("memory"), Some("768"));

    w.delete("app").await;
    assert!(
        w.root().container_config("pve1", vmid).await.is_err(),
        "the container is gone from Proxmox"
    );

    // kube's watcher, the Event recorder, the election and the controllers' error policies log
    // every refused request (at warn, which the chart's `info` level keeps): none may appear.
    let text = log();
    // (Not a bare "403": a timestamp's microseconds hold one now and then.)
    let lower = text.to_lowercase();
    assert!(
        !lower.contains("forbidden") && !lower.contains("code: 403") && !lower.contains("\"code\":403"),
        "the operator was refused a request:\n{text}"
    );
    assert!(
        text.contains("leading"),
        "the operator's log was captured: {text}"
    );

    Command::new("kill")
        .args(["-TERM", &operator.0.id().to_string()])
        .status()
        .unwrap();
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = operator.0.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        exited.is_some_and(|s| s.success()),
        "clean exit on SIGTERM; log:\n{}",
        log()
    );
}
