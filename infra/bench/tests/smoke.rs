//! `lxc-scale-bench` with N = 10 (debug builds, a short steady window): every figure is there
//! and sane — all Ready, at most 8 Proxmox calls per container, nothing mutating in the steady
//! state, every touched container reconciled. The real runs are `make bench-scale`.
//!
//! Ignored in `make test`: it takes 100-160 s here (a fresh control plane, the operator's lease,
//! a 15 s steady window), over the suite's budget of 60 s for it. Run it with
//! `cargo test -p lxc-bench --test smoke -- --ignored`.

use std::process::Command;

#[test]
#[ignore = "100-160 s; run with --ignored"]
fn ten_containers_give_sane_figures() {
    // The operator and pve-sim run as processes: build them (a no-op after `cargo test --workspace`).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--locked",
            "-p",
            "lxc-operator",
            "--bin",
            "lxc-operator",
            "-p",
            "pve-sim",
            "--bin",
            "pve-sim",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build of lxc-operator and pve-sim failed");

    let out = Command::new(env!("CARGO_BIN_EXE_lxc-scale-bench"))
        .args([
            "10",
            "--steady-seconds",
            "15",
            "--baseline-seconds",
            "3",
            "--timeout",
            "150",
            "--out",
            "-",
        ])
        .output()
        .expect("run lxc-scale-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lxc-scale-bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{stdout}"));
    let r: serde_json::Value = serde_json::from_str(line).expect("RESULT is JSON");
    let num = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {r}"));
    assert_eq!(r["all_ready"], true, "{r}");
    assert!(
        num("pve_calls_per_container") > 0.0 && num("pve_calls_per_container") <= 8.0,
        "{r}"
    );
    assert_eq!(num("steady_pve_mutating"), 0.0, "{r}");
    assert!(
        num("overhead_ratio") >= 0.9,
        "the critical path is a lower bound: {r}"
    );
    assert!(num("api_requests_per_container") > 0.0, "{r}");
    assert!(num("peak_rss_kib") > 0.0, "{r}");
    assert!(num("noop_reconciles") >= 10.0, "{r}");
    assert!(r["noop_p99_seconds"].as_f64().is_some(), "{r}");
}
