use assert_cmd::Command;

fn deployer() -> Command {
    let mut cmd = Command::cargo_bin("openai-proxy-deployer").unwrap();
    cmd.env_clear();
    cmd
}

/// Runs `cmd`: its exit code and its standard output.
fn run(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn version_prints_the_crate_version() {
    deployer()
        .arg("--version")
        .assert()
        .success()
        .stdout(format!("openai-proxy-deployer {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_flag_is_refused_with_a_pointer_to_help() {
    let out = deployer()
        .arg("--stack=x")
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8(out).unwrap().contains("--help"));
}

#[test]
fn invalid_env_value_exits_2_naming_the_variable() {
    let out = deployer()
        .env("DEPLOYER_COMMAND", "ship")
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("DEPLOYER_COMMAND must be one of validate")
    );
}

#[test]
fn a_refused_configuration_in_actions_is_annotated_summarized_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    let outputs = dir.path().join("outputs");
    let (code, stdout) = run(deployer()
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &outputs)
        .env("INPUT_STAGE", "production"));
    assert_eq!(code, Some(2));
    assert!(
        stdout.contains("::error title=invalid configuration::") && stdout.contains("STAGE must be one of"),
        "{stdout}"
    );
    let summary = std::fs::read_to_string(summary).unwrap();
    assert!(
        summary.contains("invalid configuration") && summary.contains("STAGE must be one of"),
        "{summary}"
    );
    let outputs = std::fs::read_to_string(outputs).unwrap();
    assert_eq!(outputs, "status=invalid-configuration\n");
}

#[test]
fn an_empty_aws_endpoint_is_a_prerequisite_problem_not_a_crash() {
    let (code, stdout) = run(deployer()
        .env("AWS_ENDPOINT_URL", "")
        .env("AWS_REGION", "us-east-1")
        .env("DEPLOYER_COMMAND", "destroy"));
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("AWS_ENDPOINT_URL is set but empty: unset it"),
        "{stdout}"
    );
}
