//! The executor's logic against an in-memory container: order, policies, marker, skipping,
//! failures. The same paths run against real sshd + pct in `tests/ssh_provision.rs`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::crd::provisioning::EnvVar;
use crate::ssh::{Error, ErrorKind};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Exec {
    argv: Vec<String>,
    stdin: Option<Vec<u8>>,
    env: Vec<(String, String)>,
}

#[derive(Default)]
struct Fake {
    files: Mutex<BTreeMap<String, (Vec<u8>, FilePerms)>>,
    execs: Mutex<Vec<Exec>>,
    pushes: Mutex<Vec<String>>,
    reads: Mutex<Vec<String>>,
    programs: Vec<&'static str>,
    /// `(program, code, output)` for a command that fails.
    fail: Option<(&'static str, u32, &'static str)>,
}

impl Fake {
    fn with_apt() -> Self {
        Self {
            programs: vec!["apt-get"],
            ..Self::default()
        }
    }
    fn file(&self, path: &str) -> Option<(Vec<u8>, FilePerms)> {
        self.files.lock().unwrap().get(path).cloned()
    }
    fn programs_run(&self) -> Vec<String> {
        self.execs
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.argv.join(" "))
            .collect()
    }
    fn io_count(&self) -> (usize, usize, usize) {
        (
            self.execs.lock().unwrap().len(),
            self.pushes.lock().unwrap().len(),
            self.reads.lock().unwrap().len(),
        )
    }
}

#[async_trait]
impl Target for Fake {
    fn name(&self) -> String {
        "fake CT".into()
    }
    async fn exec(
        &self,
        argv: &[&str],
        stdin: Option<&[u8]>,
        env: &[(&str, &str)],
        _timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        self.execs.lock().unwrap().push(Exec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: stdin.map(<[u8]>::to_vec),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        });
        if argv.get(3) == Some(&"detect") {
            return Ok(ExecOutput::new(0, self.programs.join("\n"), ""));
        }
        match self.fail {
            Some((program, code, output)) if argv[0] == program => Ok(ExecOutput::new(code, output, "")),
            _ => Ok(ExecOutput::new(0, "", "")),
        }
    }
    async fn push(
        &self,
        content: &[u8],
        path: &str,
        perms: &FilePerms,
        _timeout: Duration,
    ) -> Result<(), Error> {
        self.pushes.lock().unwrap().push(path.to_string());
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), (content.to_vec(), perms.clone()));
        Ok(())
    }
    async fn read(&self, path: &str, _timeout: Duration) -> Result<Option<Vec<u8>>, Error> {
        self.reads.lock().unwrap().push(path.to_string());
        Ok(self.file(path).map(|(c, _)| c))
    }
}

fn file(path: &str, policy: FilePolicy, content: &str) -> ResolvedFile {
    ResolvedFile {
        path: path.into(),
        mode: "0640".into(),
        owner: "app:adm".into(),
        policy,
        content: content.as_bytes().to_vec(),
    }
}

fn script(name: &str, text: &str) -> ResolvedScript {
    ResolvedScript {
        name: name.into(),
        interpreter: "/bin/sh".into(),
        timeout_seconds: 30,
        env: vec![EnvVar {
            name: "GREETING".into(),
            value: "hello $(world)".into(),
        }],
        content: text.as_bytes().to_vec(),
        record_output: true,
    }
}

fn sample() -> ResolvedProvisioning {
    ResolvedProvisioning {
        files: vec![file("/etc/app.conf", FilePolicy::Replace, "a=1\n")],
        packages: vec![("apt".into(), vec!["nginx".into(), "curl".into()])],
        scripts: vec![script("one", "echo one\n"), script("two", "echo two\n")],
    }
}

async fn run(t: &Fake, r: &ResolvedProvisioning, recorded: &[(String, String)]) -> ProvisionReport {
    provision(t, r, recorded, &ProvisionOptions::default())
        .await
        .expect("provision")
}

#[tokio::test]
async fn first_run_does_everything_in_order_and_records_it() {
    let t = Fake::with_apt();
    let report = run(&t, &sample(), &[]).await;
    assert_eq!(
        report.ran,
        ["file:/etc/app.conf", "packages:apt", "script:one", "script:two"]
    );
    assert!(report.skipped.is_empty());
    let expected_done: Vec<(String, String)> = plan::steps(&sample())
        .into_iter()
        .map(|s| (s.name, s.digest))
        .collect();
    assert_eq!(report.done, expected_done);

    let (content, perms) = t.file("/etc/app.conf").unwrap();
    assert_eq!(content, b"a=1\n");
    assert_eq!(perms, FilePerms::parse("0640", "app:adm").unwrap());
    assert_eq!(
        t.programs_run()[1..],
        [
            "apt-get update",
            "apt-get install -y -- nginx curl",
            "/bin/sh",
            "/bin/sh"
        ]
    );
    let execs = t.execs.lock().unwrap().clone();
    assert_eq!(
        execs[1].env,
        [("DEBIAN_FRONTEND".to_string(), "noninteractive".to_string())]
    );
    assert_eq!(execs[3].stdin.as_deref(), Some(&b"echo one\n"[..]));
    assert_eq!(
        execs[3].env,
        [("GREETING".to_string(), "hello $(world)".to_string())]
    );
    let (copy, copy_perms) = t.file("/var/lib/lxc-operator/scripts/two").unwrap();
    assert_eq!((copy.as_slice(), copy_perms.mode), (&b"echo two\n"[..], 0o700));

    let (marker, marker_perms) = t.file(MARKER_PATH).unwrap();
    assert_eq!(marker::parse(&marker), expected_done);
    assert_eq!(marker_perms, FilePerms::root_only(0o600));
}

#[tokio::test]
async fn done_steps_are_skipped_whether_status_or_marker_says_so() {
    let t = Fake::with_apt();
    let first = run(&t, &sample(), &[]).await;
    let before = t.io_count();

    // Status and marker agree: one read (the marker), nothing else.
    let again = run(&t, &sample(), &first.done).await;
    assert!(again.ran.is_empty());
    assert_eq!(again.done, first.done);
    assert_eq!(t.io_count(), (before.0, before.1, before.2 + 1));

    // Status lost (re-created object): the marker alone skips everything.
    let from_marker = run(&t, &sample(), &[]).await;
    assert!(from_marker.ran.is_empty());
    assert_eq!(from_marker.skipped.len(), 4);
    assert_eq!(t.io_count(), (before.0, before.1, before.2 + 2));

    // One script changed: only it runs, and the marker follows.
    let mut changed = sample();
    changed.scripts[0].content = b"echo uno\n".to_vec();
    let after = run(&t, &changed, &first.done).await;
    assert_eq!(after.ran, ["script:one"]);
    assert_eq!(t.programs_run().last().unwrap(), "/bin/sh");
    assert_eq!(t.io_count().0, before.0 + 1, "only the changed script ran");
    let marker = marker::parse(&t.file(MARKER_PATH).unwrap().0);
    assert_eq!(marker, after.done);
    assert_ne!(marker[2], first.done[2]);
}

#[tokio::test]
async fn file_policies_default_and_backup() {
    let t = Fake::default();
    for (path, content) in [
        ("/etc/keep", "mine\n"),
        ("/etc/bak", "old\n"),
        ("/etc/same", "same\n"),
    ] {
        t.files.lock().unwrap().insert(
            path.into(),
            (content.as_bytes().to_vec(), FilePerms::root_only(0o644)),
        );
    }
    let r = ResolvedProvisioning {
        files: vec![
            file("/etc/keep", FilePolicy::Default, "theirs\n"),
            file("/etc/new", FilePolicy::Default, "fresh\n"),
            file("/etc/bak", FilePolicy::Backup, "new\n"),
            file("/etc/same", FilePolicy::Backup, "same\n"),
        ],
        ..Default::default()
    };
    let report = run(&t, &r, &[]).await;
    assert_eq!(report.ran.len(), 4, "a kept Default file is still a done step");
    assert_eq!(t.file("/etc/keep").unwrap().0, b"mine\n");
    assert_eq!(t.file("/etc/new").unwrap().0, b"fresh\n");
    assert_eq!(t.file("/etc/bak").unwrap().0, b"new\n");
    let (old, perms) = t.file("/etc/bak.bak").unwrap();
    assert_eq!(
        (old.as_slice(), perms),
        (&b"old\n"[..], FilePerms::root_only(0o600))
    );
    assert!(
        t.file("/etc/same.bak").is_none(),
        "nothing to keep when the content is the same"
    );
}

#[tokio::test]
async fn a_failing_step_stops_the_run_and_names_step_code_and_tail() {
    let output: &'static str = Box::leak(
        (1..=30)
            .map(|i| format!("line {i}\n"))
            .collect::<String>()
            .into_boxed_str(),
    );
    let t = Fake {
        programs: vec!["apt-get"],
        fail: Some(("/bin/sh", 7, output)),
        ..Fake::default()
    };
    let failure = provision(&t, &sample(), &[], &ProvisionOptions::default())
        .await
        .unwrap_err();
    assert_eq!(failure.error.step(), "script:one");
    assert_eq!(failure.error.exit_code(), Some(7));
    assert_eq!(failure.error.kind(), ErrorKind::CommandFailed);
    let message = failure.to_string();
    assert!(
        message.starts_with("step script:one: /bin/sh exited with code 7; last output:\nline 11\n"),
        "{message}"
    );
    assert!(message.ends_with("line 30"), "{message}");
    assert!(!message.contains("line 10\n"), "{message}");
    assert_eq!(failure.report.ran, ["file:/etc/app.conf", "packages:apt"]);
    assert_eq!(
        marker::parse(&t.file(MARKER_PATH).unwrap().0),
        failure.report.done
    );
    assert_eq!(
        t.programs_run().last().unwrap(),
        "/bin/sh",
        "script:two never ran"
    );
}

#[tokio::test]
async fn a_script_output_is_kept_only_when_the_script_opts_in() {
    let t = Fake {
        programs: vec!["apt-get"],
        fail: Some(("/bin/sh", 1, "user created\nROOT_PASSWORD=Gen-8812-pw\n")),
        ..Fake::default()
    };
    let mut quiet = sample();
    quiet.scripts[0].record_output = false;
    let failure = provision(&t, &quiet, &[], &ProvisionOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(failure.contains("output not recorded"), "{failure}");
    assert!(
        !failure.contains("user created") && !failure.contains("Gen-8812"),
        "{failure}"
    );

    let t = Fake {
        programs: vec!["apt-get"],
        fail: Some(("/bin/sh", 1, "user created\nROOT_PASSWORD=Gen-8812-pw\n")),
        ..Fake::default()
    };
    let failure = provision(&t, &sample(), &[], &ProvisionOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(failure.contains("user created"), "{failure}");
    assert!(
        failure.contains("ROOT_PASSWORD=<redacted>") && !failure.contains("Gen-8812"),
        "{failure}"
    );
}

#[tokio::test]
async fn a_missing_manager_or_an_invalid_step_fails_before_running_it() {
    let t = Fake {
        programs: vec!["apk"],
        ..Fake::default()
    };
    let e = provision(&t, &sample(), &[], &ProvisionOptions::default())
        .await
        .unwrap_err()
        .error;
    assert_eq!(
        e.to_string(),
        "step packages:apt: the container has no apt (looked for apt-get)"
    );
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    let t = Fake::with_apt();
    let mut bad = sample();
    bad.scripts[1].name = "../../etc/cron.d/x".into();
    let e = provision(&t, &bad, &[], &ProvisionOptions::default())
        .await
        .unwrap_err()
        .error;
    assert_eq!(e.step(), "script:../../etc/cron.d/x");
    assert_eq!(t.io_count(), (0, 0, 1), "only the marker was read");
}

#[tokio::test]
async fn pip_prefers_pip3_and_nothing_to_do_reads_nothing() {
    let t = Fake {
        programs: vec!["pip", "pip3"],
        ..Fake::default()
    };
    let r = ResolvedProvisioning {
        packages: vec![("pip".into(), vec!["requests==2.32.3".into()])],
        ..Default::default()
    };
    run(&t, &r, &[]).await;
    assert_eq!(t.programs_run()[1..], ["pip3 install -- requests==2.32.3"]);

    let t = Fake::default();
    let report = run(&t, &ResolvedProvisioning::default(), &[]).await;
    assert_eq!(report, ProvisionReport::default());
    assert_eq!(t.io_count(), (0, 0, 0));
}

#[test]
fn timeouts_are_transient() {
    let e = ProvisionError::Ssh {
        step: "script:x".into(),
        source: Error::Timeout {
            host: "h".into(),
            operation: "pct exec 1 /bin/sh".into(),
            after: Duration::from_secs(5),
        },
    };
    assert!(e.kind().is_transient());
    assert_eq!(
        e.to_string(),
        "step script:x: pct exec 1 /bin/sh on h: no result after 5s"
    );
}

#[tokio::test]
async fn a_run_of_files_is_recorded_once_scripts_one_by_one() {
    let t = Fake::default();
    let r = ResolvedProvisioning {
        files: vec![
            file("/etc/a", FilePolicy::Replace, "a"),
            file("/etc/b", FilePolicy::Replace, "b"),
            file("/etc/c", FilePolicy::Replace, "c"),
        ],
        scripts: vec![script("one", "true\n"), script("two", "true\n")],
        ..Default::default()
    };
    run(&t, &r, &[]).await;
    let pushes = t.pushes.lock().unwrap().clone();
    let marker_writes: Vec<usize> = pushes
        .iter()
        .enumerate()
        .filter(|(_, p)| *p == MARKER_PATH)
        .map(|(i, _)| i)
        .collect();
    // a, b, c, marker, copy of one, marker, copy of two, marker
    assert_eq!(marker_writes, [3, 5, 7], "{pushes:?}");
}
