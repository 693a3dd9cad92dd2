//! What the GitHub runner tells the deployer through the environment, read once: whether
//! it runs in Actions, where the job summary and the step outputs go, the runner's temp
//! dir and workspaces, and the repository and commit being deployed. Outside Actions all
//! are unset.
//!
//! The deployer's own variables are [`crate::config`]'s; these two files are the only
//! ones that read the environment.

use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct Runner {
    /// `GITHUB_ACTIONS=true`: speak the runner's workflow commands.
    pub actions: bool,
    /// `GITHUB_STEP_SUMMARY`: the job summary file.
    pub step_summary: Option<PathBuf>,
    /// `GITHUB_OUTPUT`: the step outputs file.
    pub output: Option<PathBuf>,
    /// `RUNNER_TEMP`: where the report goes when `REPORT_FILE` is unset.
    pub temp: Option<PathBuf>,
    /// `GITHUB_REPOSITORY` (`owner/name`), for the stack's tags and the report.
    pub repository: Option<String>,
    /// `GITHUB_SHA`, likewise.
    pub commit: Option<String>,
    /// `GITHUB_WORKSPACE`: `/github/workspace` in a container action.
    pub workspace: Option<String>,
    /// `RUNNER_WORKSPACE`: the one runner path a container action gets unrewritten
    /// ([`crate::runner_paths`]).
    pub runner_workspace: Option<String>,
}

impl Runner {
    pub fn from_env() -> Self {
        let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            actions: set("GITHUB_ACTIONS").is_some_and(|v| v == "true"),
            step_summary: set("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            output: set("GITHUB_OUTPUT").map(PathBuf::from),
            temp: set("RUNNER_TEMP").map(PathBuf::from),
            repository: set("GITHUB_REPOSITORY"),
            commit: set("GITHUB_SHA"),
            workspace: set("GITHUB_WORKSPACE"),
            runner_workspace: set("RUNNER_WORKSPACE"),
        }
    }
}
