//! What a run came to, as the commands record it, and the report's headline for it: the
//! commands say what happened, the report decides how to say it.

/// What happened. A run that failed without recording one reads "failed".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The prerequisites found this many problems; nothing was created.
    PrerequisitesUnmet(usize),
    /// validate: the change set was computed; `changes` when it held any.
    Validated { changes: bool },
    /// deploy, unguarded (a create, or ROLLBACK_WINDOW_MINUTES=0).
    Deployed,
    /// deploy: the stack already matched.
    NoChanges,
    /// deploy, guarded: the window passed; `tested` when the endpoint tests ran in it.
    DeployedGuarded { tested: bool },
    /// deploy: a first create whose endpoint tests failed (nothing to return to).
    CreatedButTestsFailed,
    /// deploy: nothing changed, and the endpoint tests failed.
    NoChangesButTestsFailed,
    /// deploy, unguarded update: the endpoint tests failed; the new version stays.
    DeployedButTestsFailed { window_minutes: u64 },
    /// deploy, guarded: `failed` (a test) failed after the window had closed.
    FailedAfterWindow { failed: String },
    /// deploy, guarded: a rollback alarm fired and CloudFormation rolled back.
    RolledBackByAlarm,
    /// deploy, guarded: `failed` (a test) failed, the update was cancelled and rolled
    /// back; `previous_passed` when the restored version passed its tests.
    RolledBack { failed: String, previous_passed: bool },
    /// test: every endpoint test passed.
    Tested,
    /// setup-secrets.
    SecretReady,
    /// usage: the table of what each client used was read.
    UsageRead,
    /// destroy; `existed` when there was a stack to delete.
    Destroyed { existed: bool },
    /// SIGINT or SIGTERM stopped the run ([`crate::cancel`]).
    Cancelled { signal: &'static str },
}

impl Outcome {
    pub fn headline(&self) -> String {
        match self {
            Outcome::PrerequisitesUnmet(n) => format!("{n} prerequisite(s) not met"),
            Outcome::Validated { changes: false } => "valid; deploying it would change nothing".into(),
            Outcome::Validated { changes: true } => {
                "valid; the change set below was computed and deleted, not executed".into()
            }
            Outcome::Deployed => "deployed".into(),
            Outcome::NoChanges => "no changes: the stack is up to date".into(),
            Outcome::DeployedGuarded { tested: true } => {
                "deployed: the new version passed its endpoint tests while CloudFormation monitored it".into()
            }
            Outcome::DeployedGuarded { tested: false } => {
                "deployed: CloudFormation monitored the new version and no alarm fired".into()
            }
            Outcome::CreatedButTestsFailed => {
                "created, but the endpoint tests failed: a first create has no previous version to return to"
                    .into()
            }
            Outcome::NoChangesButTestsFailed => {
                "no changes: the stack is up to date, but the endpoint tests failed".into()
            }
            Outcome::DeployedButTestsFailed { window_minutes } => format!(
                "deployed, but the endpoint tests failed (ROLLBACK_WINDOW_MINUTES={window_minutes}: the new version stays)"
            ),
            Outcome::FailedAfterWindow { failed } => format!(
                "deployed, but {failed} failed and the monitoring window had closed: the new version stays"
            ),
            Outcome::RolledBackByAlarm => {
                "rolled back: a rollback alarm fired on the new version; the previous version is serving"
                    .into()
            }
            Outcome::RolledBack {
                failed,
                previous_passed,
            } => format!(
                "rolled back: {failed} failed on the new version; the previous version is serving and {}",
                if *previous_passed {
                    "passed its tests"
                } else {
                    "failed its tests too"
                }
            ),
            Outcome::Tested => "the proxy answers as it should".into(),
            Outcome::SecretReady => "secret ready".into(),
            Outcome::UsageRead => "usage of each client key this month, below".into(),
            Outcome::Destroyed { existed: true } => "stack deleted".into(),
            Outcome::Destroyed { existed: false } => "nothing to delete".into(),
            Outcome::Cancelled { signal } => format!("cancelled ({signal})"),
        }
    }
}
