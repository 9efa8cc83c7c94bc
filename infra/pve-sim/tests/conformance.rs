//! Holds the simulator's own parameter table (`routes.rs`) to the official PVE API schema:
//! every served endpoint exists there with the same parameters, required flags, types, enums,
//! ranges and lengths; valid and invalid values of each parameter behave alike over HTTPS;
//! the main GET answers match the schema's `returns`.
//!
//! Schema: `$PVE_API_SCHEMA`, else `../shared/pve-api-schema.json` beside the repo. Missing:
//! skipped with a message, but a failure when `CI=true`.

mod common;
use common::*;
use pve_sim::routes::{ROUTES, route_rules};
use pve_sim::rules::{self, Ty};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

fn load_schema() -> Option<BTreeMap<String, Value>> {
    let path = std::env::var("PVE_API_SCHEMA").unwrap_or_else(|_| {
        format!(
            "{}/../../../shared/pve-api-schema.json",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let Ok(text) = std::fs::read_to_string(&path) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PVE API schema missing at {path} (CI=true)"
        );
        eprintln!("SKIPPED: PVE API schema not found at {path}; set PVE_API_SCHEMA");
        return None;
    };
    let tree: Vec<Value> = serde_json::from_str(&text).expect("schema is JSON");
    let mut index = BTreeMap::new();
    fn walk(nodes: &[Value], index: &mut BTreeMap<String, Value>) {
        for n in nodes {
            index.insert(n["path"].as_str().unwrap_or_default().to_string(), n.clone());
            walk(
                n["children"].as_array().map(Vec::as_slice).unwrap_or_default(),
                index,
            );
        }
    }
    walk(&tree, &mut index);
    Some(index)
}

fn endpoint<'a>(schema: &'a BTreeMap<String, Value>, method: &str, path: &str) -> &'a Value {
    let info = &schema.get(path).unwrap_or_else(|| panic!("{path} not in schema"))["info"][method];
    assert!(info.is_object(), "{method} {path} not in schema");
    info
}

fn as_f64(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

#[test]
fn parameter_table_agrees_with_schema() {
    let Some(schema) = load_schema() else { return };
    let mut problems = Vec::new();
    for (i, route) in ROUTES.iter().enumerate() {
        let ep = endpoint(&schema, route.method, route.path);
        let here = format!("{} {}", route.method, route.path);
        if (ep["allowtoken"].as_i64() == Some(1)) != route.allowtoken {
            problems.push(format!("{here}: allowtoken differs"));
        }
        let props = ep["parameters"]["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let ours: BTreeMap<String, &rules::Rule> =
            route_rules(i).iter().map(|r| (r.schema_name(), r)).collect();
        let theirs: BTreeSet<&String> = props.keys().collect();
        let mine: BTreeSet<&String> = ours.keys().collect();
        for missing in theirs.difference(&mine) {
            problems.push(format!("{here}: schema parameter {missing} not in the table"));
        }
        for extra in mine.difference(&theirs) {
            problems.push(format!("{here}: table parameter {extra} not in the schema"));
        }
        for (name, rule) in &ours {
            let Some(p) = props.get(name) else { continue };
            let p_here = format!("{here} {name}");
            let required = p["optional"].as_i64() != Some(1);
            if required != rule.required {
                problems.push(format!("{p_here}: required={required} in schema"));
            }
            let ty = p["type"].as_str().unwrap_or_default();
            let enum_: Option<Vec<String>> = p["enum"].as_array().map(|e| {
                e.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            });
            let (min, max) = (as_f64(&p["minimum"]), as_f64(&p["maximum"]));
            let ok = match &rule.ty {
                Ty::Int { min: a, max: b } => {
                    ty == "integer" && a.map(|v| v as f64) == min && b.map(|v| v as f64) == max
                }
                Ty::Num { min: a, max: b } => ty == "number" && *a == min && *b == max,
                Ty::Bool => ty == "boolean",
                Ty::Enum(values) => ty == "string" && enum_.as_ref() == Some(values),
                Ty::Str => ty == "string" && enum_.is_none(),
                Ty::Prop(_) => ty == "string" && p["format"].is_object(),
            };
            if !ok {
                problems.push(format!("{p_here}: type/enum/range differ: schema {p}"));
            }
            if p["maxLength"].as_u64().map(|v| v as usize) != rule.max_len {
                problems.push(format!("{p_here}: maxLength differs"));
            }
            if p["requires"].as_str() != rule.requires.as_deref() {
                problems.push(format!("{p_here}: requires differs"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// (valid value, invalid values) for a schema parameter, where they can be built safely.
fn samples(p: &Value) -> (Option<String>, Vec<String>) {
    let (min, max) = (as_f64(&p["minimum"]), as_f64(&p["maximum"]));
    match p["type"].as_str().unwrap_or_default() {
        "integer" | "number" => {
            let mut bad = vec!["abc".to_string()];
            bad.extend(min.map(|m| format!("{}", m as i64 - 1)));
            bad.extend(max.map(|m| format!("{}", m as i64 + 1)));
            (
                Some(format!(
                    "{}",
                    min.unwrap_or(1.0).max(max.map_or(f64::MIN, |m| m.min(1.0))) as i64
                )),
                bad,
            )
        }
        "boolean" => (Some("1".into()), vec!["true".into(), "2".into()]),
        "string" => match (p["enum"].as_array(), p["maxLength"].as_u64()) {
            (Some(e), _) => (e[0].as_str().map(String::from), vec!["zz-not-in-enum".into()]),
            (None, Some(n)) => (None, vec!["a".repeat(n as usize + 1)]),
            _ if p["format"].is_object() => (None, vec!["bogus-subkey=1".into()]),
            _ => (None, vec![]),
        },
        _ => (None, vec![]),
    }
}

#[tokio::test]
async fn valid_and_invalid_values_behave_as_the_schema_says() {
    let Some(schema) = load_schema() else { return };
    let sim = start(&["pve"]).await;
    let tok = Client::token(&sim);
    let anon = Client::new(&sim, Auth::None);
    let upid = "UPID:pve:00001000:00000001:00000001:vzstart:999999:root@pam:";
    let mut problems = Vec::new();
    let mut checked = 0;
    for route in ROUTES {
        let ep = endpoint(&schema, route.method, route.path);
        let client = if route.path == "/access/ticket" {
            &anon
        } else {
            &tok
        };
        let props = ep["parameters"]["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (name, p) in &props {
            // The node is resolved (proxied) before validation, as on PVE.
            if name == "node" {
                continue;
            }
            let key = name.replace("[n]", "0");
            let (valid, invalid) = samples(p);
            let cases = invalid
                .into_iter()
                .map(|v| (v, true))
                .chain(valid.map(|v| (v, false)));
            for (value, should_fail) in cases {
                let mut path = route
                    .path
                    .replace("{node}", "pve")
                    .replace("{vmid}", "999999")
                    .replace("{storage}", "local");
                path = path.replace("{upid}", &enc(upid)).replace("{snapname}", "snap1");
                let in_path = route.path.contains(&format!("{{{name}}}"));
                let params: Vec<(&str, &str)> = if in_path {
                    let default = match name.as_str() {
                        "vmid" => "999999".to_string(),
                        "storage" => "local".into(),
                        "upid" => enc(upid),
                        _ => "snap1".into(),
                    };
                    path = path.replacen(&default, &enc(&value), 1);
                    vec![]
                } else {
                    vec![(key.as_str(), value.as_str())]
                };
                let (status, body, _) = client.call(route.method, &path, &params).await;
                let flagged = status == 400 && body["errors"].get(&key).is_some();
                checked += 1;
                if flagged != should_fail {
                    problems.push(format!(
                        "{} {} {key}={value:?}: status {status}, body {body}",
                        route.method, route.path
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} mismatches:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(checked > 250, "only {checked} checks ran");
}

/// Checks a value against a schema `returns` fragment (types, required properties, items).
fn check_returns(what: &str, v: &Value, s: &Value, problems: &mut Vec<String>) {
    let ok = match s["type"].as_str() {
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean() || v.as_u64().is_some_and(|n| n <= 1),
        Some("string") => v.is_string(),
        Some("array") => v.is_array(),
        Some("object") => v.is_object(),
        Some("null") => v.is_null(),
        _ => true,
    };
    if !ok {
        problems.push(format!("{what}: {v} is not {}", s["type"]));
        return;
    }
    if let (Some(items), Some(list)) = (s.get("items"), v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            check_returns(&format!("{what}[{i}]"), item, items, problems);
        }
    }
    if let (Some(props), Some(obj)) = (s["properties"].as_object(), v.as_object()) {
        for (k, ps) in props {
            match obj.get(k) {
                Some(val) => check_returns(&format!("{what}.{k}"), val, ps, problems),
                None if ps["optional"].as_i64() != Some(1) => {
                    problems.push(format!("{what}: required {k} missing"))
                }
                None => {}
            }
        }
    }
}

#[tokio::test]
async fn main_get_answers_match_the_schema_returns() {
    let Some(schema) = load_schema() else { return };
    let sim = start(&["pve"]).await;
    let tok = Client::token(&sim);
    create_ct(
        &tok,
        "pve",
        "100",
        &[
            ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
            ("start", "1"),
            ("tags", "a"),
        ],
    )
    .await;
    let (upid, _) = tok
        .task("POST", "/nodes/pve/lxc/100/snapshot", &[("snapname", "s1")])
        .await;
    let task = format!("/nodes/pve/tasks/{}", enc(&upid));
    let paths = [
        ("/version", "/version".to_string()),
        ("/nodes", "/nodes".into()),
        ("/nodes/{node}/status", "/nodes/pve/status".into()),
        ("/cluster/resources", "/cluster/resources".into()),
        ("/cluster/status", "/cluster/status".into()),
        ("/nodes/{node}/storage", "/nodes/pve/storage".into()),
        ("/nodes/{node}/network", "/nodes/pve/network".into()),
        (
            "/nodes/{node}/storage/{storage}/content",
            "/nodes/pve/storage/local/content".into(),
        ),
        ("/nodes/{node}/aplinfo", "/nodes/pve/aplinfo".into()),
        ("/nodes/{node}/lxc", "/nodes/pve/lxc".into()),
        (
            "/nodes/{node}/lxc/{vmid}/config",
            "/nodes/pve/lxc/100/config".into(),
        ),
        (
            "/nodes/{node}/lxc/{vmid}/status/current",
            "/nodes/pve/lxc/100/status/current".into(),
        ),
        (
            "/nodes/{node}/lxc/{vmid}/interfaces",
            "/nodes/pve/lxc/100/interfaces".into(),
        ),
        (
            "/nodes/{node}/lxc/{vmid}/snapshot",
            "/nodes/pve/lxc/100/snapshot".into(),
        ),
        ("/nodes/{node}/tasks/{upid}/status", format!("{task}/status")),
        ("/nodes/{node}/tasks/{upid}/log", format!("{task}/log")),
    ];
    let mut problems = Vec::new();
    for (schema_path, path) in paths {
        let data = tok.get_ok(&path).await;
        assert!(
            !data.is_null() && data.as_array().is_none_or(|a| !a.is_empty()),
            "{path} answered empty: {data}"
        );
        check_returns(
            &path,
            &data,
            &endpoint(&schema, "GET", schema_path)["returns"],
            &mut problems,
        );
    }
    let anon = Client::new(&sim, Auth::None);
    let (_, v, _) = anon
        .call(
            "POST",
            "/access/ticket",
            &[("username", "root@pam"), ("password", sim.password())],
        )
        .await;
    check_returns(
        "ticket",
        &v["data"],
        &endpoint(&schema, "POST", "/access/ticket")["returns"],
        &mut problems,
    );
    // Known schema/wire difference (PVE-FACTS): nextid is typed integer but sent as a string.
    assert!(tok.get_ok("/cluster/nextid").await.is_string());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
