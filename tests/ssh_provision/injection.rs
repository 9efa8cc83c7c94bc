//! Shell-injection payloads in every value that reaches a command (arguments on the host and
//! in the container, environment values, file paths, package names, script names): each
//! arrives literally where it was meant to, and none runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lxc_operator::crd::provisioning::FilePolicy;
use lxc_operator::provision::content::digest::ResolvedProvisioning;
use lxc_operator::provision::{ProvisionError, Target, provision};

use super::world::*;
use super::{marker, options};

/// Shell-injection payloads; every one that would run names a file `<tag>-NN`, in `/tmp` or in
/// the working directory.
fn payloads(tag: &str) -> Vec<String> {
    vec![
        format!("; touch /tmp/{tag}-01"),
        format!("$(touch /tmp/{tag}-02)"),
        format!("`touch /tmp/{tag}-03`"),
        format!("' ; touch /tmp/{tag}-04 ; '"),
        format!("\" ; touch /tmp/{tag}-05 ; \""),
        format!("x\ntouch /tmp/{tag}-06"),
        format!("&& touch /tmp/{tag}-07"),
        format!("|| touch /tmp/{tag}-08"),
        format!("| tee /tmp/{tag}-09"),
        format!("> /tmp/{tag}-10"),
        "*".into(),
        "--help".into(),
        "-rf".into(),
        "$HOME".into(),
        format!("${{IFS}}touch${{IFS}}/tmp/{tag}-15"),
        "back\\slash\\".into(),
        "~root".into(),
        "{a,b}".into(),
        format!("#; touch /tmp/{tag}-19"),
        format!("<(touch /tmp/{tag}-20)"),
        format!("$'\\x3b' touch /tmp/{tag}-21"),
        "tab\there".into(),
        format!("\r\ntouch {tag}-23"),
        format!("$(touch {tag}-24)"),
        format!("`touch {tag}-25`"),
        format!("';touch {tag}-26;'"),
        "!!".into(),
        "%s%n%x".into(),
        "ünïcødé 😀".into(),
        "a=b".into(),
    ]
}

/// Files and directories under `dir` whose name starts with `prefix`, outside `skip`.
fn named(dir: &Path, prefix: &str, skip: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if skip.contains(&path) {
            continue;
        }
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            found.push(path.clone());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(named(&path, prefix, skip));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_payloads_arrive_literally_and_run_nothing() {
    let w = World::start("inject").await;
    let (ct, root) = w.container(106).await;
    let tag = format!("pwned{}", std::process::id());
    let payloads = payloads(&tag);
    assert!(payloads.len() >= 20);
    let words: Vec<&str> = payloads.iter().map(String::as_str).collect();
    let nul_joined: Vec<u8> = payloads
        .iter()
        .flat_map(|p| format!("{p}\0").into_bytes())
        .collect();

    // On the host, through the login shell.
    let mut argv = vec!["printf", "%s\\0"];
    argv.extend(&words);
    let out = w.host.exec(&argv, None, Duration::from_secs(20)).await.unwrap();
    assert_eq!(out.stdout, nul_joined);

    // In the container, as arguments and as environment values.
    let env_names: Vec<String> = (0..payloads.len()).map(|i| format!("P{i:02}")).collect();
    let env: Vec<(&str, &str)> = env_names
        .iter()
        .map(String::as_str)
        .zip(words.iter().copied())
        .collect();
    let show_env = env_names
        .iter()
        .map(|n| format!("printf '%s\\0' \"${n}\""))
        .collect::<Vec<_>>()
        .join("; ");
    let out = ct
        .exec(&["sh", "-c", &show_env], None, &env, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(out.stdout, nul_joined);
    let out = ct.exec(&argv, None, &[], Duration::from_secs(20)).await.unwrap();
    assert_eq!(out.stdout, nul_joined);

    // Through provisioning: file paths, package names, script names, script environment.
    write_exe(
        &root,
        "usr/bin/pip3",
        "#!/bin/sh\nprintf '%s\\0' \"$@\" >> \"${PCT_ROOT:?}/var/log/pip-args\"\n",
    );
    let plain: Vec<&String> = payloads
        .iter()
        .filter(|p| !p.chars().any(char::is_control))
        .collect();
    let no_slash: Vec<&&String> = plain.iter().filter(|p| !p.contains('/')).collect();
    assert!(
        plain.len() >= 20 && no_slash.len() >= 12,
        "{} {}",
        plain.len(),
        no_slash.len()
    );
    let env_script: String = env_names
        .iter()
        .map(|n| format!("printf '%s\\0' \"${n}\" >> \"${{PCT_ROOT:?}}/root/env-values\"\n"))
        .collect();
    let mut scripts = vec![script("show-env", &env_script, &env)];
    scripts.extend(
        no_slash
            .iter()
            .map(|name| script(name, "echo ran >> \"${PCT_ROOT:?}/root/named-runs\"\n", &[])),
    );
    let resolved = ResolvedProvisioning {
        files: plain
            .iter()
            .enumerate()
            .map(|(i, p)| {
                file(
                    &format!("/srv/inject/{i:02}/{p}"),
                    "0640",
                    "app:app",
                    FilePolicy::Replace,
                    p,
                )
            })
            .collect(),
        packages: vec![("pip".into(), payloads.clone())],
        scripts,
    };
    let report = provision(&ct, &resolved, &[], &options())
        .await
        .expect("provision");
    assert_eq!(report.ran.len(), plain.len() + 1 + 1 + no_slash.len());

    for (i, p) in plain.iter().enumerate() {
        let rel = format!("srv/inject/{i:02}/{p}");
        assert_eq!(read(&root, &rel), **p, "file {rel:?}");
        assert_eq!(mode(&root, &rel), 0o640);
    }
    let mut pip_args = b"install\0--\0".to_vec();
    pip_args.extend(&nul_joined);
    assert_eq!(std::fs::read(root.join("var/log/pip-args")).unwrap(), pip_args);
    assert_eq!(std::fs::read(root.join("root/env-values")).unwrap(), nul_joined);
    assert_eq!(read(&root, "root/named-runs").lines().count(), no_slash.len());
    for name in &no_slash {
        assert!(
            root.join("var/lib/lxc-operator/scripts").join(name).is_file(),
            "script copy {name:?}"
        );
    }
    assert_eq!(marker(&root), report.done);

    // What cannot be passed as a name is refused before anything runs.
    let before = w.host.stats().commands;
    for bad in [
        ResolvedProvisioning {
            files: vec![file(
                &format!("/srv/a\ntouch /tmp/{tag}-f"),
                "0644",
                "root",
                FilePolicy::Replace,
                "x",
            )],
            ..Default::default()
        },
        ResolvedProvisioning {
            scripts: vec![script(&format!("x/../../../tmp/{tag}-s"), "true\n", &[])],
            ..Default::default()
        },
        ResolvedProvisioning {
            files: vec![file(
                "/srv/ok",
                "0644",
                "root; touch /tmp/x",
                FilePolicy::Replace,
                "x",
            )],
            ..Default::default()
        },
        ResolvedProvisioning {
            scripts: vec![script("env", "true\n", &[("A;touch", "x")])],
            ..Default::default()
        },
    ] {
        let failure = provision(&ct, &bad, &[], &options()).await.unwrap_err();
        assert!(
            matches!(failure.error, ProvisionError::Invalid { .. }),
            "{}",
            failure.error
        );
    }
    assert_eq!(
        w.host.stats().commands,
        before + 4,
        "only the marker was read, four times"
    );

    // Nothing ran anywhere: host /tmp, the SSH user's home directories, the container root
    // (outside the files whose names are the payloads on purpose), this process's directory.
    let skip = [root.join("srv/inject")];
    let mut ran = named(&w.ct_root_dir, &tag, &skip);
    for dir in ["/tmp", "/root", "."] {
        ran.extend(
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&tag))
                .map(|e| e.path()),
        );
    }
    assert!(ran.is_empty(), "payloads ran: {ran:?}");
}
