//! The built deployer configured the way GitHub passes a Docker action's inputs: as
//! `INPUT_<ID>` variables, hyphens kept (`INPUT_STACK-NAME`), for `runs.image` actions and
//! `uses: docker://...` steps alike. Runs against the local AWS emulator (`make test`).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use deploy_support::{blocking, bootstrap_in, endpoint, repo, unique};

mod deploy_support;

fn template() -> PathBuf {
    repo().join("template.yaml")
}

/// The deployer with nothing but the AWS credentials of the emulator: as a container
/// action sees it, every setting must come from an `INPUT_*` variable.
fn deployer(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("openai-proxy-deployer").unwrap();
    cmd.env_clear()
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

/// A validate of `stack` under its own names, configured by inputs alone (authentication
/// off: these stacks have no client key).
fn validate_inputs<'a>(cmd: &'a mut Command, stack: &str) -> &'a mut Command {
    cmd.env("INPUT_COMMAND", "validate")
        .env("INPUT_STACK-NAME", stack)
        .env("INPUT_AWS-REGION", "us-east-1")
        .env("INPUT_LAMBDA-FUNCTION-NAME", stack)
        .env("INPUT_API-GATEWAY-NAME", stack)
        .env("INPUT_ENABLE-AUTHENTICATION", "false")
}

fn output(cmd: &mut Command) -> (Option<i32>, String) {
    let out = blocking::output(cmd);
    (out.code, out.text)
}

/// A working directory, a stack name of its own, and the function artifact built for it.
fn case(name: &str) -> (tempfile::TempDir, String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let stack = unique(name);
    let artifact = bootstrap_in(dir.path(), &stack);
    (dir, stack, artifact)
}

/// The run validated `stack`: exit 0, and its change set described.
fn assert_validated((code, text): &(Option<i32>, String), stack: &str) {
    assert_eq!(*code, Some(0), "{text}");
    assert!(
        text.contains(&format!("Change set for stack {stack} (not executed)")),
        "{text}"
    );
}

/// A configuration of `vars` refused before anything reaches AWS (exit 2); what the
/// run printed.
fn refused_before_aws(vars: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = output(deployer(dir.path()).envs(vars.iter().copied()));
    assert_eq!(code, Some(2), "{text}");
    assert!(!text.contains("Checking prerequisites"), "{text}");
    text
}

#[test]
fn action_inputs_alone_configure_the_deployer_so_validate_runs() {
    let (dir, stack, artifact) = case("inputs");
    let run = output(
        validate_inputs(&mut deployer(dir.path()), &stack)
            .env("INPUT_TEMPLATE-FILE", template())
            .env("INPUT_FUNCTION-ARTIFACT", &artifact),
    );
    assert_validated(&run, &stack);
    let text = run.1;
    assert!(text.contains("✅ validate"), "{text}");
}

#[test]
fn a_workflow_level_variable_loses_to_the_input() {
    let (dir, stack, artifact) = case("wins");
    let decoy = unique("decoy");
    // What a workflow's `env:` puts into every step, the action's among them.
    let run = output(
        deployer(dir.path())
            .env("DEPLOYER_COMMAND", "deploy")
            .env("STACK_NAME", &decoy)
            .env("AWS_REGION", "eu-west-1")
            .env("ENABLE_AUTHENTICATION", "false")
            .env("TEMPLATE_FILE", template())
            .env("FUNCTION_ARTIFACT", &artifact)
            .env("INPUT_COMMAND", "validate")
            .env("INPUT_STACK-NAME", &stack)
            .env("INPUT_AWS-REGION", "us-east-1")
            // The runner passes inputs a step left out as empty: those leave the variable.
            .env("INPUT_TEMPLATE-FILE", "")
            .env("INPUT_LAMBDA-FUNCTION-NAME", &stack)
            .env("INPUT_API-GATEWAY-NAME", &stack),
    );
    assert_validated(&run, &stack);
    let text = run.1;
    assert!(text.contains("✅ validate"), "{text}");
    assert!(!text.contains(&decoy), "the workflow's STACK_NAME won: {text}");
}

#[test]
fn an_input_the_action_does_not_have_stops_before_aws_naming_the_closest_input() {
    let text = refused_before_aws(&[
        ("INPUT_COMMAND", "validate"),
        ("INPUT_STACK_NAME", "snake-case-of-an-old-version"),
        ("INPUT_AWS-REGION", "us-east-1"),
    ]);
    assert!(
        text.contains("INPUT_STACK_NAME is no input of this action: did you mean `stack-name`?"),
        "{text}"
    );
}

/// The secret `setup-secrets` stored, as JSON.
fn stored_secret(id: &str) -> serde_json::Value {
    blocking::secret(&blocking::aws(), id).expect("the secret exists")
}

/// Issue 19, item 1: every variable of a workflow reaches the action's container. Under
/// Actions, only the step's inputs configure the deployer; before the fix the workflow's
/// STAGE stopped the run (exit 2) and its STACK_NAME retargeted it.
#[test]
fn under_actions_a_workflows_own_variables_change_nothing() {
    let (dir, stack, artifact) = case("only-inputs");
    let decoy = unique("decoy");
    let run = output(
        validate_inputs(&mut deployer(dir.path()), &stack)
            .env("GITHUB_ACTIONS", "true")
            // A workflow's `env:` for its other steps.
            .env("STAGE", "not a stage!")
            .env("LOG_LEVEL", "loud")
            .env("STACK_NAME", &decoy)
            .env("DEPLOYER_COMMAND", "destroy")
            .env("OPENAI_API_KEY", "sk-meant-for-another-tool")
            .env("INPUT_TEMPLATE-FILE", template())
            .env("INPUT_FUNCTION-ARTIFACT", &artifact),
    );
    assert_validated(&run, &stack);
    let text = run.1;
    assert!(
        !text.contains(&decoy),
        "the workflow's STACK_NAME was used: {text}"
    );
    assert!(!text.contains("sk-meant-for-another-tool"), "{text}");
}

/// Items 1 and 6: the workflow's OPENAI_API_KEY does not rewrite the proxy's secret, and
/// the input's value is stored trimmed (a secret pasted with a trailing newline). Before
/// the fix the newline was stored with the key.
#[test]
fn under_actions_the_secret_comes_from_the_input_trimmed_never_from_the_workflows_variable() {
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("trim");
    let (code, text) = output(
        deployer(dir.path())
            .env("GITHUB_ACTIONS", "true")
            .env("OPENAI_API_KEY", "sk-meant-for-another-tool-0123456789")
            .env("INPUT_COMMAND", "setup-secrets")
            .env("INPUT_STACK-NAME", &stack)
            .env("INPUT_AWS-REGION", "us-east-1")
            .env("INPUT_OPENAI-API-KEY", "sk-from-the-input-0123456789\n"),
    );
    assert_eq!(code, Some(0), "{text}");
    let stored = stored_secret(&format!("{stack}/config"));
    assert_eq!(stored["openai_api_key"], "sk-from-the-input-0123456789");
}

/// Item 2: a consumer repository with a template.yaml (a SAM app, say) and a built
/// function at the default paths still deploys the bundled ones unless the inputs name
/// its own. Before the fix the repository's files were picked up.
#[test]
fn the_bundled_template_and_function_serve_unless_the_inputs_name_others() {
    let (dir, stack, bundled_artifact) = case("bundled");
    std::fs::write(
        dir.path().join("template.yaml"),
        "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\nResources: {}\n",
    )
    .unwrap();
    let theirs = dir.path().join("target/lambda/openai-proxy-function");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("bootstrap.zip"), b"not ours").unwrap();
    let (code, text) = output(
        validate_inputs(&mut deployer(dir.path()), &stack)
            .env("GITHUB_ACTIONS", "true")
            .env("OPENAI_PROXY_BUNDLED_TEMPLATE", template())
            .env("OPENAI_PROXY_BUNDLED_ARTIFACT", &bundled_artifact),
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("deploying the stock function and template bundled with openai-proxy-deployer"),
        "{text}"
    );
}

/// Item 4: in a container action a report outside the runner's mounts would vanish with
/// the container; refused before anything runs, naming the fix.
#[test]
fn a_report_file_later_steps_could_not_open_is_refused_naming_the_fix() {
    let text = refused_before_aws(&[
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_WORKSPACE", "/github/workspace"),
        ("INPUT_COMMAND", "validate"),
        ("INPUT_REPORT-FILE", "/tmp/report.md"),
    ]);
    assert!(
        text.contains("REPORT_FILE /tmp/report.md is outside what the runner shares with later steps"),
        "{text}"
    );
    assert!(text.contains("use a path in the workspace"), "{text}");
}
