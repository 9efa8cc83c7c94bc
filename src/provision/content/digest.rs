//! Stable digests of provisioning steps. A step's digest covers everything that changes what
//! the step does (path, mode, owner, policy and bytes of a file; the package list; a script's
//! interpreter, environment, timeout and text), so a changed digest means "run it again".
//! Secret contents enter only through SHA-256, never as text.

use sha2::{Digest, Sha256};

use crate::crd::provisioning::{EnvVar, FilePolicy};

/// A file with its content resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedFile {
    pub path: String,
    pub mode: String,
    pub owner: String,
    pub policy: FilePolicy,
    pub content: Vec<u8>,
}

/// A script with its text resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedScript {
    pub name: String,
    pub interpreter: String,
    pub timeout_seconds: i32,
    pub env: Vec<EnvVar>,
    pub content: Vec<u8>,
    /// Whether a failure's output may be kept (redacted); not part of the digest.
    pub record_output: bool,
}

/// Everything provisioning does, in order: files, packages per manager, scripts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedProvisioning {
    pub files: Vec<ResolvedFile>,
    /// `(manager, packages)` in the order apt, apk, dnf, pip, npm; empty lists left out.
    pub packages: Vec<(String, Vec<String>)>,
    pub scripts: Vec<ResolvedScript>,
}

/// One step and its digest (`sha256:<hex>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDigest {
    /// `file:/etc/motd`, `packages:apt`, `script:setup`.
    pub name: String,
    pub digest: String,
}

/// Feeds length-prefixed fields, so that no two different field lists hash alike.
struct Hasher(Sha256);

impl Hasher {
    fn new(kind: &str) -> Self {
        let mut h = Self(Sha256::new());
        h.field(kind.as_bytes());
        h
    }
    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }
    fn finish(self) -> String {
        let bytes = self.0.finalize();
        format!(
            "sha256:{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }
}

fn policy_name(policy: FilePolicy) -> &'static str {
    match policy {
        FilePolicy::Replace => "Replace",
        FilePolicy::Default => "Default",
        FilePolicy::Backup => "Backup",
    }
}

impl ResolvedProvisioning {
    /// Appends `other`'s steps after these (a container's own steps follow its template's).
    pub fn then(mut self, other: ResolvedProvisioning) -> Self {
        self.files.extend(other.files);
        for (manager, packages) in other.packages {
            match self.packages.iter_mut().find(|(m, _)| *m == manager) {
                Some((_, list)) => list.extend(packages),
                None => self.packages.push((manager, packages)),
            }
        }
        self.scripts.extend(other.scripts);
        self
    }

    /// The digest of every step, in the order they run.
    pub fn step_digests(&self) -> Vec<StepDigest> {
        let files = self.files.iter().map(|f| {
            let mut h = Hasher::new("file");
            h.field(f.path.as_bytes())
                .field(f.mode.as_bytes())
                .field(f.owner.as_bytes())
                .field(policy_name(f.policy).as_bytes())
                .field(&f.content);
            StepDigest {
                name: format!("file:{}", f.path),
                digest: h.finish(),
            }
        });
        let packages = self.packages.iter().map(|(manager, list)| {
            let mut h = Hasher::new("packages");
            h.field(manager.as_bytes());
            list.iter().for_each(|p| {
                h.field(p.as_bytes());
            });
            StepDigest {
                name: format!("packages:{manager}"),
                digest: h.finish(),
            }
        });
        let scripts = self.scripts.iter().map(|s| {
            let mut h = Hasher::new("script");
            h.field(s.name.as_bytes())
                .field(s.interpreter.as_bytes())
                .field(&s.timeout_seconds.to_be_bytes());
            s.env.iter().for_each(|e| {
                h.field(e.name.as_bytes()).field(e.value.as_bytes());
            });
            h.field(&s.content);
            StepDigest {
                name: format!("script:{}", s.name),
                digest: h.finish(),
            }
        });
        files.chain(packages).chain(scripts).collect()
    }

    /// One digest over all steps (names and digests, in order).
    pub fn digest(&self) -> String {
        let mut h = Hasher::new("provisioning");
        for step in self.step_digests() {
            h.field(step.name.as_bytes()).field(step.digest.as_bytes());
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ResolvedProvisioning {
        ResolvedProvisioning {
            files: vec![ResolvedFile {
                path: "/etc/motd".into(),
                mode: "0644".into(),
                owner: "root:root".into(),
                policy: FilePolicy::Replace,
                content: b"hello\n".to_vec(),
            }],
            packages: vec![("apt".into(), vec!["nginx".into(), "curl".into()])],
            scripts: vec![ResolvedScript {
                name: "setup".into(),
                interpreter: "/bin/sh".into(),
                timeout_seconds: 60,
                env: vec![EnvVar {
                    name: "A".into(),
                    value: "1".into(),
                }],
                content: b"echo hi\n".to_vec(),
                record_output: false,
            }],
        }
    }

    #[test]
    fn digests_are_stable_and_named_per_step() {
        let a = sample().step_digests();
        assert_eq!(a, sample().step_digests());
        let names: Vec<&str> = a.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["file:/etc/motd", "packages:apt", "script:setup"]);
        assert!(
            a.iter()
                .all(|s| s.digest.starts_with("sha256:") && s.digest.len() == 71)
        );
        assert_eq!(sample().digest(), sample().digest());
    }

    #[test]
    fn a_change_changes_exactly_its_own_step() {
        let base = sample().step_digests();
        let mut changed = sample();
        changed.scripts[0].content = b"echo bye\n".to_vec();
        let after = changed.step_digests();
        assert_eq!(after[0], base[0]);
        assert_eq!(after[1], base[1]);
        assert_ne!(after[2], base[2]);
        assert_ne!(changed.digest(), sample().digest());

        for mutate in [
            (|p: &mut ResolvedProvisioning| p.files[0].mode = "0600".into()) as fn(&mut ResolvedProvisioning),
            |p| p.files[0].owner = "www-data".into(),
            |p| p.files[0].policy = FilePolicy::Backup,
            |p| p.packages[0].1.reverse(),
            |p| p.scripts[0].env[0].value = "2".into(),
            |p| p.scripts[0].timeout_seconds = 61,
            |p| p.scripts[0].interpreter = "/bin/bash".into(),
        ] {
            let mut p = sample();
            mutate(&mut p);
            assert_ne!(p.digest(), sample().digest(), "{p:?}");
        }
    }

    #[test]
    fn field_boundaries_matter() {
        let mut a = sample();
        a.scripts[0].env = vec![EnvVar {
            name: "AB".into(),
            value: "C".into(),
        }];
        let mut b = sample();
        b.scripts[0].env = vec![EnvVar {
            name: "A".into(),
            value: "BC".into(),
        }];
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn container_steps_follow_template_steps() {
        let mut own = ResolvedProvisioning::default();
        own.packages.push(("apt".into(), vec!["htop".into()]));
        own.packages.push(("pip".into(), vec!["requests".into()]));
        let merged = sample().then(own);
        assert_eq!(merged.packages[0].1, ["nginx", "curl", "htop"]);
        assert_eq!(merged.packages[1].0, "pip");
    }
}
