//! Pure planning: the steps of a [`ResolvedProvisioning`] in the order they run, each with its
//! digest, less those already done; the commands each package manager takes; and the checks
//! every value must pass before it goes anywhere near a container.

use crate::provision::content::digest::{ResolvedFile, ResolvedProvisioning, ResolvedScript};
use crate::ssh::{FilePerms, check_container_path, check_env_name};

/// One provisioning step: `file:/path`, `packages:<manager>` or `script:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    /// `sha256:<hex>` over everything that changes what the step does.
    pub digest: String,
    pub action: Action,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    File(ResolvedFile),
    Packages { manager: String, packages: Vec<String> },
    Script(ResolvedScript),
}

impl Action {
    /// The step kind as metrics label it: `file`, `packages` or `script`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::File(_) => "file",
            Action::Packages { .. } => "packages",
            Action::Script(_) => "script",
        }
    }
}

/// Every step, in order (files, packages per manager, scripts), with its digest.
pub fn steps(resolved: &ResolvedProvisioning) -> Vec<Step> {
    let actions = resolved
        .files
        .iter()
        .cloned()
        .map(Action::File)
        .chain(
            resolved
                .packages
                .iter()
                .map(|(manager, packages)| Action::Packages {
                    manager: manager.clone(),
                    packages: packages.clone(),
                }),
        )
        .chain(resolved.scripts.iter().cloned().map(Action::Script));
    resolved
        .step_digests()
        .into_iter()
        .zip(actions)
        .map(|(d, action)| Step {
            name: d.name,
            digest: d.digest,
            action,
        })
        .collect()
}

/// The steps still to run: those whose `(name, digest)` is not in `done`.
pub fn plan(resolved: &ResolvedProvisioning, done: &[(String, String)]) -> Vec<Step> {
    steps(resolved)
        .into_iter()
        .filter(|s| !is_done(done, &s.name, &s.digest))
        .collect()
}

pub(crate) fn is_done(done: &[(String, String)], name: &str, digest: &str) -> bool {
    done.iter().any(|(n, d)| n == name && d == digest)
}

/// Where a script's text is kept inside the container (for whoever looks at it later; it runs
/// from standard input).
pub const SCRIPTS_DIR: &str = "/var/lib/lxc-operator/scripts";

/// The suffix of the copy a `Backup` file policy keeps of the file it replaces.
pub const BACKUP_SUFFIX: &str = ".bak";

/// Checks a step before anything runs. The CRD schema already restricts these values; this is
/// the executor's own line, for values from anywhere.
pub fn validate(step: &Step) -> Result<(), String> {
    if step.name.chars().any(char::is_control) {
        return Err("the step name contains a control character".into());
    }
    match &step.action {
        Action::File(f) => {
            check_container_path(&f.path)?;
            FilePerms::parse(&f.mode, &f.owner)?;
        }
        Action::Packages { manager, packages } => {
            PackageManager::from_name(manager)
                .ok_or_else(|| format!("unknown package manager {manager:?}"))?;
            if packages.is_empty() {
                return Err("no packages".into());
            }
            if let Some(p) = packages.iter().find(|p| p.is_empty() || p.contains('\0')) {
                return Err(format!("package name {p:?} is empty or has a NUL byte"));
            }
        }
        Action::Script(s) => {
            if s.name.is_empty() || s.name == "." || s.name == ".." || s.name.contains(['/', '\0']) {
                return Err(format!("script name {:?} cannot be a file name", s.name));
            }
            check_container_path(&s.interpreter).map_err(|e| format!("interpreter: {e}"))?;
            if s.interpreter.contains('=') || s.interpreter.chars().any(char::is_control) {
                return Err(format!("interpreter {:?} cannot be run safely", s.interpreter));
            }
            if s.timeout_seconds < 1 {
                return Err(format!("timeout {}s is not positive", s.timeout_seconds));
            }
            for var in &s.env {
                check_env_name(&var.name)?;
                if var.value.contains('\0') {
                    return Err(format!("the value of {} has a NUL byte", var.name));
                }
            }
        }
    }
    Ok(())
}

/// The package managers provisioning knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PackageManager {
    Apt,
    Apk,
    Dnf,
    Pip,
    Npm,
}

impl PackageManager {
    /// From the spec's key (`apt`, `apk`, `dnf`, `pip`, `npm`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "apt" => Self::Apt,
            "apk" => Self::Apk,
            "dnf" => Self::Dnf,
            "pip" => Self::Pip,
            "npm" => Self::Npm,
            _ => return None,
        })
    }

    /// Programs that provide the manager, in order of preference.
    pub fn programs(self) -> &'static [&'static str] {
        match self {
            Self::Apt => &["apt-get"],
            Self::Apk => &["apk"],
            Self::Dnf => &["dnf"],
            Self::Pip => &["pip3", "pip"],
            Self::Npm => &["npm"],
        }
    }

    /// Environment for every command of this manager.
    pub fn env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Apt => &[("DEBIAN_FRONTEND", "noninteractive")],
            _ => &[],
        }
    }

    /// The index refresh run once before installing, if the manager has one.
    pub fn refresh(self, program: &str) -> Option<Vec<String>> {
        let args: &[&str] = match self {
            Self::Apt | Self::Apk => &["update"],
            Self::Dnf => &["makecache"],
            Self::Pip | Self::Npm => return None,
        };
        Some(words(program, args, &[]))
    }

    /// The install command; `--` ends the options, so a package name is never read as one.
    pub fn install(self, program: &str, packages: &[String]) -> Vec<String> {
        let args: &[&str] = match self {
            Self::Apt => &["install", "-y", "--"],
            Self::Apk => &["add", "--"],
            Self::Dnf => &["install", "-y", "--"],
            Self::Pip => &["install", "--"],
            Self::Npm => &["install", "-g", "--"],
        };
        words(program, args, packages)
    }
}

fn words(program: &str, args: &[&str], rest: &[String]) -> Vec<String> {
    std::iter::once(program.to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .chain(rest.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::provisioning::{EnvVar, FilePolicy};

    fn resolved() -> ResolvedProvisioning {
        ResolvedProvisioning {
            files: vec![ResolvedFile {
                path: "/etc/motd".into(),
                mode: "0644".into(),
                owner: "root:root".into(),
                policy: FilePolicy::Replace,
                content: b"hi\n".to_vec(),
            }],
            packages: vec![("apt".into(), vec!["nginx".into()])],
            scripts: vec![script("one", "echo 1\n"), script("two", "echo 2\n")],
        }
    }

    fn script(name: &str, text: &str) -> ResolvedScript {
        ResolvedScript {
            name: name.into(),
            interpreter: "/bin/sh".into(),
            timeout_seconds: 60,
            env: vec![EnvVar {
                name: "A".into(),
                value: "1".into(),
            }],
            content: text.as_bytes().to_vec(),
            record_output: false,
        }
    }

    fn names(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn steps_run_in_order_with_their_digests() {
        let all = steps(&resolved());
        assert_eq!(
            names(&all),
            ["file:/etc/motd", "packages:apt", "script:one", "script:two"]
        );
        let digests = resolved().step_digests();
        assert!(all.iter().zip(&digests).all(|(s, d)| s.digest == d.digest));
        assert!(matches!(&all[1].action, Action::Packages { manager, .. } if manager == "apt"));
        assert!(matches!(&all[3].action, Action::Script(s) if s.content == b"echo 2\n"));
    }

    #[test]
    fn plan_skips_exactly_the_done_digests() {
        let r = resolved();
        assert_eq!(plan(&r, &[]).len(), 4);
        let done: Vec<(String, String)> = steps(&r).into_iter().map(|s| (s.name, s.digest)).collect();
        assert!(plan(&r, &done).is_empty());

        // One script changed: only it runs again.
        let mut changed = r.clone();
        changed.scripts[1].content = b"echo two\n".to_vec();
        assert_eq!(names(&plan(&changed, &done)), ["script:two"]);

        // The same name with an old digest is not done; an unknown name changes nothing.
        let mut stale = done.clone();
        stale[0].1 = "sha256:old".into();
        stale.push(("script:gone".into(), "sha256:x".into()));
        assert_eq!(names(&plan(&r, &stale)), ["file:/etc/motd"]);
    }

    #[test]
    fn validation_refuses_what_cannot_be_passed_safely() {
        let ok = steps(&resolved());
        assert!(ok.iter().all(|s| validate(s).is_ok()));
        let bad_file = |path: &str, mode: &str, owner: &str| {
            let mut r = resolved();
            r.files[0].path = path.into();
            r.files[0].mode = mode.into();
            r.files[0].owner = owner.into();
            validate(&steps(&r)[0])
        };
        assert!(bad_file("/etc/; touch /tmp/pwned", "0644", "root").is_ok());
        assert!(bad_file("relative", "0644", "root").is_err());
        assert!(bad_file("/etc/../x", "0644", "root").is_err());
        assert!(bad_file("/etc/a\nb", "0644", "root").is_err());
        assert!(bad_file("/etc/x", "0844", "root").is_err());
        assert!(bad_file("/etc/x", "0644", "--user").is_err());

        let bad_script = |f: fn(&mut ResolvedScript)| {
            let mut r = resolved();
            f(&mut r.scripts[0]);
            validate(&steps(&r)[2])
        };
        assert!(bad_script(|s| s.name = "$(touch x)".into()).is_ok());
        assert!(bad_script(|s| s.name = "a/b".into()).is_err());
        assert!(bad_script(|s| s.name = "..".into()).is_err());
        assert!(bad_script(|s| s.interpreter = "sh".into()).is_err());
        assert!(bad_script(|s| s.interpreter = "/usr/bin/A=B".into()).is_err());
        assert!(bad_script(|s| s.env[0].name = "A=B".into()).is_err());
        assert!(bad_script(|s| s.env[0].value = "a\0b".into()).is_err());
        assert!(bad_script(|s| s.env[0].value = "$(id); `id`\n'".into()).is_ok());
        assert!(bad_script(|s| s.timeout_seconds = 0).is_err());

        let mut r = resolved();
        r.packages = vec![("brew".into(), vec!["x".into()])];
        assert!(validate(&steps(&r)[1]).is_err());
        r.packages = vec![("apt".into(), vec!["".into()])];
        assert!(validate(&steps(&r)[1]).is_err());
        r.packages = vec![("apt".into(), vec!["--force-yes; rm".into()])];
        assert!(validate(&steps(&r)[1]).is_ok());
    }

    #[test]
    fn package_commands_end_options_before_names() {
        let pkgs = vec!["nginx".to_string(), "--reinstall".to_string()];
        assert_eq!(
            PackageManager::Apt.install("apt-get", &pkgs),
            ["apt-get", "install", "-y", "--", "nginx", "--reinstall"]
        );
        assert_eq!(
            PackageManager::Apk.install("apk", &pkgs),
            ["apk", "add", "--", "nginx", "--reinstall"]
        );
        assert_eq!(
            PackageManager::Dnf.install("dnf", &pkgs)[..4],
            ["dnf", "install", "-y", "--"]
        );
        assert_eq!(
            PackageManager::Pip.install("pip3", &pkgs)[..3],
            ["pip3", "install", "--"]
        );
        assert_eq!(
            PackageManager::Npm.install("npm", &pkgs)[..4],
            ["npm", "install", "-g", "--"]
        );
        assert_eq!(
            PackageManager::Apt.refresh("apt-get").unwrap(),
            ["apt-get", "update"]
        );
        assert_eq!(PackageManager::Dnf.refresh("dnf").unwrap(), ["dnf", "makecache"]);
        assert_eq!(PackageManager::Pip.refresh("pip3"), None);
        assert_eq!(PackageManager::Apt.env(), [("DEBIAN_FRONTEND", "noninteractive")]);
        assert_eq!(PackageManager::from_name("npm"), Some(PackageManager::Npm));
        assert_eq!(PackageManager::from_name("yum"), None);
    }
}
