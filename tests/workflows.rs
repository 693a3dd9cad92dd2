//! This repository's workflows keep the promises docs/development.md makes of them:
//! the plan runs only where the plan role's OIDC trust lets it, the token that may write
//! to pull requests never shares a job with the pull request's binaries, and a release
//! neither races another nor moves a version line's tags backwards.

use std::path::Path;

use serde_json::Value;

fn workflow(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".github/workflows")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"))
}

fn permissions(job: &Value) -> Vec<String> {
    job["permissions"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn the_plan_runs_only_for_pull_requests_of_this_repository() {
    let pr = workflow("pr.yml");
    let condition = pr["jobs"]["plan"]["if"]
        .as_str()
        .expect("the plan job has a condition");
    assert!(
        condition.contains("github.event_name == 'pull_request'"),
        "the plan role trusts the pull_request subject only, so a dispatch must not run the plan: {condition}"
    );
    assert!(
        condition.contains("head.repo.full_name == github.repository"),
        "a fork's pull request gets no OIDC token: {condition}"
    );
}

#[test]
fn the_plan_comment_is_written_by_a_job_that_runs_nothing_the_pull_request_built() {
    let pr = workflow("pr.yml");
    let jobs = pr["jobs"].as_object().unwrap();
    for (name, job) in jobs {
        let writes_prs = permissions(job).iter().any(|p| p == "pull-requests");
        let steps = job["steps"].as_array().cloned().unwrap_or_default();
        let runs_code = steps.iter().any(|step| {
            let uses = step["uses"].as_str().unwrap_or_default();
            uses.starts_with("actions/checkout") || uses.starts_with("actions/download-artifact")
        });
        assert!(
            !(writes_prs && runs_code),
            "pr.yml job `{name}` may write to pull requests and checks out or downloads what the pull request built"
        );
    }
    assert!(
        permissions(&jobs["comment"]) == ["pull-requests"],
        "the comment job holds the pull-requests permission alone"
    );
}

#[test]
fn releases_run_one_at_a_time_and_move_a_line_only_forwards() {
    let release = workflow("release.yml");
    let group = release["concurrency"]["group"].as_str().unwrap_or_default();
    assert!(
        !group.contains("github.ref"),
        "one concurrency group for every release tag, or two releases race on v1: {group}"
    );
    let steps = release["jobs"]["publish"]["steps"].as_array().unwrap();
    let mover = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|run| run.contains("git tag --force"))
        .expect("a step moves the version tags");
    assert!(
        mover.contains("sort -V") && mover.contains("highest"),
        "the minor and major tags move only to the highest release of their line:\n{mover}"
    );
}
