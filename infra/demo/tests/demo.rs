//! `make demo` in its short form, as CI runs it: the whole world comes up, every example gets
//! Ready, the closing instructions are printed, and it stops by itself — twice in a row, on
//! fresh ports and directories. Needs the `lxc-operator` binary built beside `lxc-demo`
//! (`cargo test --workspace` builds it).

use std::process::Command;

fn run_demo() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lxc-demo"))
        .env("DEMO_EXIT_WHEN_READY", "1")
        .env("DEMO_TIMEOUT", "240")
        .output()
        .expect("run lxc-demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "lxc-demo failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_demo_brings_every_example_to_ready_and_says_what_to_do_next_twice() {
    for _ in 0..2 {
        let out = run_demo();
        let total = out
            .lines()
            .find_map(|l| l.strip_prefix("all ")?.split(' ').next()?.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no closing line:\n{out}"));
        assert!(total >= 6, "nodes, templates and containers of examples/: {out}");
        assert!(
            out.contains(&format!("{total}/{total} Ready")),
            "progress counted up to all: {out}"
        );
        for line in [
            "export KUBECONFIG=",
            "status page  http://127.0.0.1:",
            "patch lxc",
            "delete lxc",
            "Ctrl-C",
        ] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
    }
}
