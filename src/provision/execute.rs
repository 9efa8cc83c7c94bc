//! Running the planned steps in a container: files (with their policy), packages (the
//! container's own manager, index refreshed once), scripts (on standard input, with their
//! environment and timeout). Progress is written to the marker after every package and
//! script step and after each run of file steps, so a crash or a lost status resumes where it
//! stopped.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::audit::redact::is_secret_key;
use crate::crd::provisioning::FilePolicy;
use crate::provision::content::digest::{ResolvedFile, ResolvedProvisioning, ResolvedScript};
use crate::ssh::{ExecOutput, FilePerms};

use super::error::ProvisionError;
use super::marker::{self, MARKER_PATH};
use super::output::{NOT_RECORDED, redact_output};
use super::plan::{self, Action, BACKUP_SUFFIX, PackageManager, SCRIPTS_DIR, Step};
use super::target::Target;

/// Lines of output quoted by a failed step.
const TAIL_LINES: usize = 20;

/// Time limits for what has no timeout of its own in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvisionOptions {
    /// Per file push or read.
    pub file_timeout: Duration,
    /// Per package command (index refresh, install).
    pub package_timeout: Duration,
    /// Per small command (manager detection, discovery).
    pub command_timeout: Duration,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        Self {
            file_timeout: Duration::from_secs(120),
            package_timeout: Duration::from_secs(1800),
            command_timeout: Duration::from_secs(60),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvisionReport {
    /// Steps that ran, in order.
    pub ran: Vec<String>,
    /// Steps skipped because their digest was done (in status or in the marker).
    pub skipped: Vec<String>,
    /// Every step of the provisioning that is done now, `(name, digest)` in order: what the
    /// caller records in status.
    pub done: Vec<(String, String)>,
    /// Every step looked at, as `(kind, outcome)`: `ran`, `skipped` or `failed` (for metrics).
    pub outcomes: Vec<(&'static str, &'static str)>,
}

/// A run that stopped at a step; `report` says what was done before it.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ProvisionFailure {
    pub error: ProvisionError,
    pub report: ProvisionReport,
}

/// Runs the steps of `resolved` that are not done in `target`. A step is done when its
/// `(name, digest)` is in `recorded` (from status) or in the container's marker file.
pub async fn provision(
    target: &dyn Target,
    resolved: &ResolvedProvisioning,
    recorded: &[(String, String)],
    options: &ProvisionOptions,
) -> Result<ProvisionReport, ProvisionFailure> {
    let mut run = Run {
        target,
        options,
        programs: None,
        report: ProvisionReport::default(),
        marker_text: None,
    };
    match run.all(resolved, recorded).await {
        Ok(()) => Ok(run.report),
        Err(error) => Err(ProvisionFailure {
            error,
            report: run.report,
        }),
    }
}

struct Run<'a> {
    target: &'a dyn Target,
    options: &'a ProvisionOptions,
    /// Package-manager programs found in the container (detected once, on first need).
    programs: Option<BTreeSet<String>>,
    report: ProvisionReport,
    /// The marker as it is in the container now.
    marker_text: Option<Vec<u8>>,
}

impl Run<'_> {
    async fn all(
        &mut self,
        resolved: &ResolvedProvisioning,
        recorded: &[(String, String)],
    ) -> Result<(), ProvisionError> {
        let all = plan::steps(resolved);
        if all.is_empty() {
            return Ok(());
        }
        self.marker_text = self
            .target
            .read(MARKER_PATH, self.options.file_timeout)
            .await
            .map_err(ProvisionError::ssh("marker"))?;
        let mut done: Vec<(String, String)> = recorded.to_vec();
        done.extend(marker::parse(self.marker_text.as_deref().unwrap_or_default()));
        let (skipped, todo): (Vec<Step>, Vec<Step>) = all
            .iter()
            .cloned()
            .partition(|s| plan::is_done(&done, &s.name, &s.digest));
        for step in &todo {
            plan::validate(step).map_err(|reason| ProvisionError::Invalid {
                step: step.name.clone(),
                reason,
            })?;
        }
        self.report.skipped = skipped.iter().map(|s| s.name.clone()).collect();
        self.report.outcomes = skipped.iter().map(|s| (s.action.kind(), "skipped")).collect();
        self.report.done = skipped
            .iter()
            .map(|s| (s.name.clone(), s.digest.clone()))
            .collect();
        self.write_marker(&all).await?;
        for (i, step) in todo.iter().enumerate() {
            tracing::info!(target = %self.target.name(), step = %step.name, "provisioning step");
            let outcome = match &step.action {
                Action::File(file) => self.file(&step.name, file).await,
                Action::Packages { manager, packages } => self.packages(&step.name, manager, packages).await,
                Action::Script(script) => self.script(&step.name, script).await,
            };
            let ran = if outcome.is_ok() { "ran" } else { "failed" };
            self.report.outcomes.push((step.action.kind(), ran));
            if let Err(e) = outcome {
                // Best effort: keep what was done before the failure.
                let _ = self.write_marker(&all).await;
                return Err(e);
            }
            self.report.ran.push(step.name.clone());
            self.report.done.push((step.name.clone(), step.digest.clone()));
            // Writing a file again gives the same result (a Backup whose file already has the
            // new content keeps the old copy), so a run of files is recorded once at its end;
            // packages and scripts are recorded one by one.
            let is_file = |s: Option<&Step>| s.is_some_and(|s| matches!(s.action, Action::File(_)));
            if !(is_file(Some(step)) && is_file(todo.get(i + 1))) {
                self.write_marker(&all).await?;
            }
        }
        Ok(())
    }

    /// Writes the marker (done steps in step order; steps no longer in the spec dropped)
    /// unless it already says exactly that.
    async fn write_marker(&mut self, all: &[Step]) -> Result<(), ProvisionError> {
        let done: Vec<(String, String)> = all
            .iter()
            .filter(|s| plan::is_done(&self.report.done, &s.name, &s.digest))
            .map(|s| (s.name.clone(), s.digest.clone()))
            .collect();
        self.report.done = done.clone();
        let text = marker::render(&done).into_bytes();
        let unchanged = match &self.marker_text {
            Some(old) => *old == text,
            None => done.is_empty(),
        };
        if unchanged {
            return Ok(());
        }
        self.target
            .push(
                &text,
                MARKER_PATH,
                &FilePerms::root_only(0o600),
                self.options.file_timeout,
            )
            .await
            .map_err(ProvisionError::ssh("marker"))?;
        self.marker_text = Some(text);
        Ok(())
    }

    async fn file(&mut self, step: &str, file: &ResolvedFile) -> Result<(), ProvisionError> {
        let perms = FilePerms::parse(&file.mode, &file.owner).map_err(|reason| ProvisionError::Invalid {
            step: step.to_string(),
            reason,
        })?;
        let timeout = self.options.file_timeout;
        let t = self.target;
        if file.policy != FilePolicy::Replace {
            let existing = t
                .read(&file.path, timeout)
                .await
                .map_err(ProvisionError::ssh(step))?;
            match (file.policy, existing) {
                (FilePolicy::Default, Some(_)) => return Ok(()),
                (FilePolicy::Backup, Some(old)) if old != file.content => {
                    // The old file's mode and owner are not known here: the copy is root's
                    // alone, since it may hold what only its owner could read.
                    let backup = format!("{}{BACKUP_SUFFIX}", file.path);
                    t.push(&old, &backup, &FilePerms::root_only(0o600), timeout)
                        .await
                        .map_err(ProvisionError::ssh(step))?;
                }
                _ => {}
            }
        }
        t.push(&file.content, &file.path, &perms, timeout)
            .await
            .map_err(ProvisionError::ssh(step))
    }

    async fn packages(
        &mut self,
        step: &str,
        manager: &str,
        packages: &[String],
    ) -> Result<(), ProvisionError> {
        let kind = PackageManager::from_name(manager).ok_or_else(|| ProvisionError::Invalid {
            step: step.to_string(),
            reason: format!("unknown package manager {manager:?}"),
        })?;
        let found = self.programs(step).await?;
        let program = kind
            .programs()
            .iter()
            .find(|p| found.contains(**p))
            .ok_or_else(|| ProvisionError::ManagerMissing {
                step: step.to_string(),
                manager: manager.to_string(),
                programs: kind.programs().join(", "),
            })?;
        let timeout = self.options.package_timeout;
        if let Some(refresh) = kind.refresh(program) {
            self.checked(step, &refresh, None, kind.env(), timeout).await?;
        }
        self.checked(step, &kind.install(program, packages), None, kind.env(), timeout)
            .await
            .map(drop)
    }

    /// The package-manager programs present in the container (`command -v`, one round trip).
    async fn programs(&mut self, step: &str) -> Result<BTreeSet<String>, ProvisionError> {
        if let Some(found) = &self.programs {
            return Ok(found.clone());
        }
        const DETECT: &str = r#"for p in "$@"; do command -v "$p" >/dev/null 2>&1 && echo "$p"; done; true"#;
        let mut argv = vec!["sh", "-c", DETECT, "detect"];
        for kind in [
            PackageManager::Apt,
            PackageManager::Apk,
            PackageManager::Dnf,
            PackageManager::Pip,
            PackageManager::Npm,
        ] {
            argv.extend(kind.programs());
        }
        let argv: Vec<String> = argv.into_iter().map(String::from).collect();
        let out = self
            .checked(step, &argv, None, &[], self.options.command_timeout)
            .await?;
        let found: BTreeSet<String> = out.stdout_text().lines().map(str::to_string).collect();
        self.programs = Some(found.clone());
        Ok(found)
    }

    async fn script(&mut self, step: &str, script: &ResolvedScript) -> Result<(), ProvisionError> {
        let copy = format!("{SCRIPTS_DIR}/{}", script.name);
        self.target
            .push(
                &script.content,
                &copy,
                &FilePerms::root_only(0o700),
                self.options.file_timeout,
            )
            .await
            .map_err(ProvisionError::ssh(step))?;
        let env: Vec<(&str, &str)> = script
            .env
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_str()))
            .collect();
        let timeout = Duration::from_secs(script.timeout_seconds.max(1) as u64);
        let secrets: Vec<&str> = script
            .env
            .iter()
            .filter(|v| is_secret_key(&v.name))
            .map(|v| v.value.as_str())
            .collect();
        self.checked(
            step,
            std::slice::from_ref(&script.interpreter),
            Some(&script.content),
            &env,
            timeout,
        )
        .await
        .map(drop)
        .map_err(|e| match e {
            ProvisionError::Failed {
                step,
                program,
                code,
                tail,
            } => ProvisionError::Failed {
                step,
                program,
                code,
                tail: if script.record_output {
                    redact_output(&tail, &secrets)
                } else {
                    NOT_RECORDED.to_string()
                },
            },
            other => other,
        })
    }

    /// Runs a command of `step`; a non-zero exit fails the step with the output's tail.
    async fn checked(
        &self,
        step: &str,
        argv: &[String],
        stdin: Option<&[u8]>,
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<ExecOutput, ProvisionError> {
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = self
            .target
            .exec(&words, stdin, env, timeout)
            .await
            .map_err(ProvisionError::ssh(step))?;
        if out.success() {
            return Ok(out);
        }
        Err(ProvisionError::Failed {
            step: step.to_string(),
            program: words.first().copied().unwrap_or_default().to_string(),
            code: out.code,
            tail: redact_output(&out.tail(TAIL_LINES), &[]),
        })
    }
}

#[cfg(test)]
mod tests;
