//! Paths as a container action sees them, and as the job's later steps do.
//!
//! The GitHub runner starts a container action with five host directories mounted
//! (ContainerActionHandler in actions/runner) and rewrites every variable whose value
//! lies under one of them to the container path: `report-file: ${{ runner.temp }}/r.md`
//! arrives as `/github/runner_temp/r.md`. Later steps run on the host, so the
//! `report-path` output must name the host path. The runner lays its directories out
//! under its work folder (`_work`): the job's `RUNNER_WORKSPACE` is `_work/<repo>`, the
//! workspace `_work/<repo>/<repo>`, `RUNNER_TEMP` `_work/_temp`, and `HOME` its
//! `_github_home`; `RUNNER_WORKSPACE` is the one path it passes unrewritten (it lies
//! under no mount), so the host paths are derived from it.

use std::path::{Component, Path, PathBuf};

use crate::runner::Runner;

/// Where the runner mounts the job's workspace in a container action.
const WORKSPACE: &str = "/github/workspace";

/// A container directory the runner mounts, and where it lies on the host relative to
/// the work folder (`None`: the runner's own files, which later steps must not rely on).
const MOUNTS: &[(&str, Option<&str>)] = &[
    (WORKSPACE, None),
    ("/github/runner_temp", Some("_temp")),
    ("/github/home", Some("_temp/_github_home")),
    ("/github/workflow", None),
    ("/github/file_commands", None),
];

/// The host path a later step opens for `report_file` as the deployer wrote it, or a
/// problem naming the fix. Outside a container action (`GITHUB_WORKSPACE` is not the
/// runner's mount) the path is what the steps share already: `Ok(None)`.
pub fn for_later_steps(report_file: &str, runner: &Runner) -> Result<Option<String>, String> {
    if !runner.actions || runner.workspace.as_deref() != Some(WORKSPACE) {
        return Ok(None);
    }
    let inside = normalise(&Path::new(WORKSPACE).join(report_file));
    let outside = || {
        format!(
            "REPORT_FILE {report_file} is outside what the runner shares with later steps (the container's {} is gone when the step ends): use a path in the workspace (e.g. `report-file: deploy-report.md`) or under `${{{{ runner.temp }}}}`",
            inside.display()
        )
    };
    let Some((mount, relative)) = MOUNTS.iter().find_map(|(mount, _)| {
        inside
            .strip_prefix(mount)
            .ok()
            .map(|rest| (*mount, rest.to_owned()))
    }) else {
        return Err(outside());
    };
    let runner_workspace = runner.runner_workspace.as_deref().filter(|w| w.starts_with('/'));
    let work = runner_workspace.and_then(|w| Path::new(w).parent().map(Path::to_owned));
    let host = match (
        mount,
        MOUNTS.iter().find(|(m, _)| *m == mount).and_then(|(_, h)| *h),
    ) {
        (WORKSPACE, _) => {
            // The workspace is `_work/<repo>/<repo>`: RUNNER_WORKSPACE and the name again.
            let name = runner.repository.as_deref().and_then(|r| r.rsplit('/').next());
            match (runner_workspace, name) {
                (Some(runner_workspace), Some(name)) => {
                    Path::new(runner_workspace).join(name).join(&relative)
                }
                // Later steps start in the workspace: a relative path opens the same file.
                _ => return Ok(Some(relative.display().to_string())),
            }
        }
        (_, Some(under_work)) => match work {
            Some(work) => work.join(under_work).join(&relative),
            None => {
                return Err(format!(
                    "REPORT_FILE {report_file} is under the runner's {mount}, whose host path cannot be told (RUNNER_WORKSPACE is not set): use a path in the workspace (e.g. `report-file: deploy-report.md`)"
                ));
            }
        },
        (_, None) => {
            return Err(format!(
                "REPORT_FILE {report_file} is in the runner's own directory {mount}: use a path in the workspace (e.g. `report-file: deploy-report.md`) or under `${{{{ runner.temp }}}}`"
            ));
        }
    };
    Ok(Some(host.display().to_string()))
}

/// `a/./b/../c` as `a/c`, without touching the file system (the file may not exist yet).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the runner passes a container action on a hosted runner for repo `o/app`.
    fn container() -> Runner {
        Runner {
            actions: true,
            workspace: Some(WORKSPACE.into()),
            runner_workspace: Some("/home/runner/work/app".into()),
            temp: Some("/github/runner_temp".into()),
            repository: Some("o/app".into()),
            ..Runner::default()
        }
    }

    /// Asserts the host path each container path is named by, for the steps after.
    #[track_caller]
    fn assert_named(cases: &[(&str, &str)]) {
        for (in_container, on_host) in cases {
            assert_eq!(
                for_later_steps(in_container, &container()),
                Ok(Some((*on_host).into())),
                "{in_container}"
            );
        }
    }

    #[test]
    fn a_report_under_runner_temp_is_named_by_its_host_path() {
        assert_named(&[
            ("/github/runner_temp/r.md", "/home/runner/work/_temp/r.md"),
            (
                "/github/home/x/r.md",
                "/home/runner/work/_temp/_github_home/x/r.md",
            ),
        ]);
    }

    #[test]
    fn a_report_in_the_workspace_is_named_by_the_host_workspace() {
        assert_named(&[
            ("out/r.md", "/home/runner/work/app/app/out/r.md"),
            ("/github/workspace/./a/../r.md", "/home/runner/work/app/app/r.md"),
        ]);
    }

    #[test]
    fn a_report_outside_the_mounts_is_refused_naming_the_fix() {
        for path in ["/tmp/r.md", "../r.md", "/github/file_commands/r.md"] {
            let problem = for_later_steps(path, &container()).unwrap_err();
            assert!(
                problem.contains("use a path in the workspace"),
                "{path}: {problem}"
            );
        }
    }

    #[test]
    fn outside_a_container_action_the_path_is_left_alone() {
        let native = Runner {
            workspace: Some("/home/runner/work/app/app".into()),
            ..container()
        };
        assert_eq!(for_later_steps("/tmp/r.md", &native), Ok(None));
        assert_eq!(for_later_steps("/tmp/r.md", &Runner::default()), Ok(None));
    }
}
