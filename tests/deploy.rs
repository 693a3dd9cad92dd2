//! The built deployer against the local AWS emulator (run through `make test`, which
//! starts one and sets AWS_ENDPOINT_URL). Each test owns its stack, function and secret
//! names, so tests run in parallel against one emulator.

mod assertions;
mod deploy_support;

use assert_cmd::Command;
use assertions::contains_all;
use deploy_support::blocking::{aws, put_secret, runtime, secret, stack_exists};
use deploy_support::{Case, KEY, Output, blocking, code_sha256_of, input, repo};
use openai_proxy_deployer::artifact;
use openai_proxy_deployer::aws::Aws;

fn run(mut cmd: Command) -> Output {
    blocking::output(&mut cmd)
}

fn assert_ok(cmd: Command) -> Output {
    let out = run(cmd);
    assert!(out.ok, "{}", out.text);
    out
}

fn function_config(
    aws: &Aws,
    name: &str,
) -> aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput {
    runtime()
        .block_on(aws.lambda.get_function_configuration().function_name(name).send())
        .unwrap()
}

#[test]
fn first_deploy_then_a_noop_redeploy_uploads_once_and_reports_no_changes() {
    let case = Case::new("noop");
    let bin = case.bootstrap("bootstrap", 62, "v1");
    let report = case.dir.path().join("report.md");
    let outputs = case.dir.path().join("github_output");

    let first = run({
        let mut cmd = case.deploy(&bin);
        cmd.env("REPORT_FILE", &report).env("GITHUB_OUTPUT", &outputs);
        cmd
    });
    assert!(first.ok, "{}", first.text);
    first.says("✅ deploy: deployed");
    first.says(": uploaded");
    let aws = aws();
    assert_eq!(
        function_config(&aws, &case.stack).code_sha256().unwrap(),
        code_sha256_of(&bin)
    );
    let github_output = std::fs::read_to_string(&outputs).unwrap();
    contains_all(
        &github_output,
        &[
            "api-url=https://",
            &format!("function-name={}\n", case.stack),
            "stack-status=CREATE_COMPLETE",
            &format!("report-path={}", report.display()),
        ],
    );
    let markdown = std::fs::read_to_string(&report).unwrap();
    assert!(markdown.contains("OpenAI base URL"), "{markdown}");

    let second = run(case.deploy(&bin));
    assert!(second.ok, "{}", second.text);
    second.says("no changes");
    assert!(
        second
            .text
            .contains("already there (same SHA-256), not uploaded again"),
        "{}",
        second.text
    );
    second.says("unchanged (no new version)");
    // One object version: nothing was uploaded twice.
    let key = format!(
        "{}/function/{}.zip",
        case.stack,
        artifact::load(&bin, None).unwrap().sha256_hex
    );
    let bucket = "openai-lambda-proxy-123456789012-us-east-1";
    let versions = runtime()
        .block_on(aws.s3.list_object_versions().bucket(bucket).prefix(&key).send())
        .unwrap();
    assert_eq!(versions.versions().len(), 1);
}

#[test]
fn a_code_only_change_updates_the_function() {
    let case = Case::new("code");
    let v1 = case.bootstrap("v1", 62, "v1");
    let v2 = case.bootstrap("v2", 62, "v2 with other code");
    assert_ok({
        let mut cmd = case.deploy(&v1);
        cmd.env("GITHUB_SHA", "1111111111111111111111111111111111111111");
        cmd
    });
    // A commit that changes nothing leaves the stack, and its commit tag, alone.
    let noop = assert_ok({
        let mut cmd = case.deploy(&v1);
        cmd.env("GITHUB_SHA", "2222222222222222222222222222222222222222");
        cmd
    });
    noop.says("no changes");
    let commit_tag = |aws: &Aws| {
        let info = runtime()
            .block_on(openai_proxy_deployer::cfn::stack::describe(aws, &case.stack))
            .unwrap()
            .unwrap();
        info.tags["openai-lambda-proxy:commit"].clone()
    };
    let aws = aws();
    assert_eq!(commit_tag(&aws), "1111111111111111111111111111111111111111");
    let out = run({
        let mut cmd = case.deploy(&v2);
        cmd.env("GITHUB_SHA", "3333333333333333333333333333333333333333");
        cmd
    });
    assert!(out.ok, "{}", out.text);
    out.says("to modify");
    assert_eq!(
        function_config(&aws, &case.stack).code_sha256().unwrap(),
        code_sha256_of(&v2)
    );
    assert_eq!(
        commit_tag(&aws),
        "3333333333333333333333333333333333333333",
        "the deploying commit is not tagged"
    );
}

#[test]
fn a_parameter_change_reaches_the_function() {
    let case = Case::new("param");
    let bin = case.bootstrap("bootstrap", 62, "p");
    assert_ok(case.deploy(&bin));
    let out = run({
        let mut cmd = case.deploy(&bin);
        cmd.env("PARAMETER_OVERRIDES", r#"{"MemorySize": 1024}"#)
            .env("LOG_LEVEL", "DEBUG");
        cmd
    });
    assert!(out.ok, "{}", out.text);
    let config = function_config(&aws(), &case.stack);
    assert_eq!(config.memory_size(), Some(1024));
    let env = config.environment().and_then(|e| e.variables()).unwrap();
    assert_eq!(env.get("LOG_LEVEL").map(String::as_str), Some("DEBUG"));
}

/// Issue 22: mappings that name Bedrock grant the function exactly those models (the
/// template's BedrockModelArns); a later deploy without MODEL_MAPPINGS leaves the
/// secret's mappings alone, and so keeps the grant.
#[test]
fn bedrock_mappings_grant_those_models_and_a_deploy_without_mappings_keeps_the_grant() {
    let case = Case::new("bedrock-grant");
    let bin = case.bootstrap("bootstrap", 62, "b1");
    let mappings = r#"{"amazon.nova-lite-v1:0":{"openai":"gpt-4o-mini","bedrock":"us.amazon.nova-lite-v1:0"},"m":"gpt-4o"}"#;
    assert_ok({
        let mut cmd = case.deploy(&bin);
        cmd.env("MODEL_MAPPINGS", mappings);
        cmd
    });
    let granted = || {
        runtime()
            .block_on(deploy_support::stack_info(&case.stack))
            .parameters["BedrockModelArns"]
            .clone()
    };
    let expected = "arn:aws:bedrock:*::foundation-model/amazon.nova-lite-v1:0,arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0";
    assert_eq!(granted(), expected);
    let stored = secret(&aws(), &format!("{}/config", case.stack)).unwrap();
    assert_eq!(
        stored["model_mappings"]["amazon.nova-lite-v1:0"]["bedrock"],
        "us.amazon.nova-lite-v1:0"
    );

    assert_ok(case.deploy(&case.bootstrap("bootstrap", 62, "b2")));
    assert_eq!(granted(), expected);
}

#[test]
fn a_route_change_is_deployed_to_the_stage_by_cloudformation_itself() {
    let case = Case::new("routes");
    let bin = case.bootstrap("bootstrap", 62, "r");
    assert_ok(case.deploy(&bin));
    let aws = aws();
    let info = runtime()
        .block_on(openai_proxy_deployer::cfn::stack::describe(&aws, &case.stack))
        .unwrap()
        .unwrap();
    let (api, stage) = (&info.outputs["ApiId"], &info.outputs["StageName"]);
    let deployment = |aws: &Aws| {
        runtime()
            .block_on(
                aws.apigateway
                    .get_stage()
                    .rest_api_id(api)
                    .stage_name(stage)
                    .send(),
            )
            .unwrap()
            .deployment_id()
            .unwrap()
            .to_owned()
    };
    let before = deployment(&aws);
    // A new timeout changes the STREAM integrations' TimeoutInMillis: a route change.
    let out = assert_ok({
        let mut cmd = case.deploy(&bin);
        cmd.env("LAMBDA_TIMEOUT", "120");
        cmd
    });
    // A new deployment resource, named after the API's hash, replaces the old one
    // inside the stack operation: no API Gateway call outside CloudFormation.
    out.says("Add     ApiDeployment");
    out.says("Remove  ApiDeployment");
    let now = deployment(&aws);
    assert_ne!(now, before, "the stage still serves the old deployment");
    let deployments = runtime()
        .block_on(aws.apigateway.get_deployments().rest_api_id(api).send())
        .unwrap();
    let ids: Vec<&str> = deployments.items().iter().filter_map(|d| d.id()).collect();
    assert_eq!(
        ids,
        [now.as_str()],
        "the old deployment is deleted with the update"
    );
    let resources = runtime()
        .block_on(
            aws.cloudformation
                .describe_stack_resources()
                .stack_name(&case.stack)
                .send(),
        )
        .unwrap();
    let physical = resources
        .stack_resources()
        .iter()
        .find(|r| r.resource_type() == Some("AWS::ApiGateway::Deployment"))
        .and_then(|r| r.physical_resource_id());
    assert_eq!(physical, Some(now.as_str()), "the stage drifted from the stack");
    // Changing nothing of the API keeps the deployment.
    let again = assert_ok({
        let mut cmd = case.deploy(&bin);
        cmd.env("LAMBDA_TIMEOUT", "120").env("LOG_LEVEL", "DEBUG");
        cmd
    });
    assert!(!again.text.contains("ApiDeployment"), "{}", again.text);
    assert_eq!(deployment(&aws), now);
}

#[test]
fn code_changed_out_of_band_is_put_back() {
    let case = Case::new("oob");
    let bin = case.bootstrap("bootstrap", 62, "the real one");
    assert_ok(case.deploy(&bin));
    let aws = aws();
    let other = artifact::load(&case.bootstrap("other", 62, "edited in the console"), None).unwrap();
    runtime()
        .block_on(
            aws.lambda
                .update_function_code()
                .function_name(&case.stack)
                .zip_file(aws_sdk_lambda::primitives::Blob::new(other.zip))
                .send(),
        )
        .unwrap();
    let out = run(case.deploy(&bin));
    assert!(out.ok, "{}", out.text);
    out.says("changed outside this deployer");
    assert_eq!(
        function_config(&aws, &case.stack).code_sha256().unwrap(),
        code_sha256_of(&bin)
    );
}

#[test]
fn validate_computes_the_change_set_and_never_executes_it() {
    let case = Case::new("validate");
    let bin = case.bootstrap("bootstrap", 62, "v");
    let aws = aws();

    // No stack yet: a CREATE change set, and no stack left behind.
    let fresh = run({
        let mut cmd = case.deployer("validate");
        cmd.env("FUNCTION_ARTIFACT", &bin);
        cmd
    });
    assert!(fresh.ok, "{}", fresh.text);
    fresh.says("to add");
    assert!(!stack_exists(&aws, &case.stack), "validate left a stack behind");

    assert_ok(case.deploy(&bin));
    let changed = run({
        let mut cmd = case.deployer("validate");
        cmd.env("FUNCTION_ARTIFACT", &bin)
            .env("PARAMETER_OVERRIDES", r#"{"MemorySize":"2048"}"#);
        cmd
    });
    assert!(changed.ok, "{}", changed.text);
    changed.says("0 to add, 1 to modify, 0 to remove");
    assert_eq!(
        function_config(&aws, &case.stack).memory_size(),
        Some(512),
        "validate executed the change set"
    );

    // A changed template: one alarm's description differs.
    let original = std::fs::read_to_string(repo().join("template.yaml")).unwrap();
    let edited = original.replacen(
        "AlarmDescription: !Sub \"",
        "AlarmDescription: !Sub \"(edited) ",
        1,
    );
    assert_ne!(edited, original);
    let edited_path = case.dir.path().join("edited.yaml");
    std::fs::write(&edited_path, edited).unwrap();
    let template_changed = run({
        let mut cmd = case.deployer("validate");
        cmd.env("FUNCTION_ARTIFACT", &bin)
            .env("TEMPLATE_FILE", &edited_path);
        cmd
    });
    assert!(template_changed.ok, "{}", template_changed.text);
    assert!(
        template_changed
            .text
            .contains("0 to add, 1 to modify, 0 to remove"),
        "{}",
        template_changed.text
    );
    template_changed.says("AWS::CloudWatch::Alarm");

    let same = run({
        let mut cmd = case.deployer("validate");
        cmd.env("FUNCTION_ARTIFACT", &bin);
        cmd
    });
    assert!(same.ok, "{}", same.text);
    same.says("would change nothing");
}

#[test]
fn destroy_deletes_the_stack_keeps_the_secret_unless_asked_and_is_idempotent() {
    let case = Case::new("destroy");
    let bin = case.bootstrap("bootstrap", 62, "d");
    assert_ok(case.deploy(&bin));
    let aws = aws();
    let secret_id = format!("{}/config", case.stack);

    let out = run(case.deployer("destroy"));
    assert!(out.ok, "{}", out.text);
    out.says("stack deleted");
    assert!(!stack_exists(&aws, &case.stack));
    let secret = runtime()
        .block_on(aws.secrets.describe_secret().secret_id(&secret_id).send())
        .unwrap();
    assert!(
        secret.deleted_date().is_none(),
        "the secret was deleted without DESTROY_SECRET"
    );

    let again = run({
        let mut cmd = case.deployer("destroy");
        cmd.env("DESTROY_SECRET", "true");
        cmd
    });
    assert!(again.ok, "{}", again.text);
    again.says("nothing to delete");
    let secret = runtime()
        .block_on(aws.secrets.describe_secret().secret_id(&secret_id).send())
        .unwrap();
    assert!(
        secret.deleted_date().is_some(),
        "DESTROY_SECRET did not schedule the deletion"
    );
}

#[test]
fn termination_protection_is_turned_on_and_destroy_refuses_naming_the_fix() {
    let case = Case::new("protect");
    let bin = case.bootstrap("bootstrap", 62, "p");
    assert_ok({
        let mut cmd = case.deploy(&bin);
        cmd.env("TERMINATION_PROTECTION", "true")
            .env("GITHUB_SHA", "0123456789abcdef")
            .env("GITHUB_REPOSITORY", "acme/proxy");
        cmd
    });
    let aws = aws();
    let info = runtime()
        .block_on(openai_proxy_deployer::cfn::stack::describe(&aws, &case.stack))
        .unwrap()
        .unwrap();
    assert!(info.termination_protection);
    assert_eq!(
        info.tags.get("openai-lambda-proxy:commit").map(String::as_str),
        Some("0123456789abcdef")
    );
    assert_eq!(
        info.tags
            .get("openai-lambda-proxy:repository")
            .map(String::as_str),
        Some("acme/proxy")
    );
    let out = run(case.deployer("destroy"));
    assert!(!out.ok, "{}", out.text);
    out.says("termination protection on");
    out.says("update-termination-protection --no-enable-termination-protection");
    assert!(stack_exists(&aws, &case.stack));
}

#[test]
fn setup_secrets_is_idempotent_and_keeps_fields_set_by_hand() {
    let case = Case::new("secret");
    let aws = aws();
    let setup = || {
        let mut cmd = case.deployer("setup-secrets");
        cmd.env("OPENAI_API_KEY", KEY);
        run(cmd)
    };
    let first = setup();
    assert!(first.ok, "{}", first.text);
    first.says(": created");
    let id = format!("{}/config", case.stack);
    let mut value = secret(&aws, &id).unwrap();
    value["client_api_keys"] = serde_json::json!(["0f".repeat(32)]);
    put_secret(&aws, &id, &value);
    let versions = |aws: &Aws| {
        runtime()
            .block_on(aws.secrets.list_secret_version_ids().secret_id(&id).send())
            .unwrap()
            .versions()
            .len()
    };
    let before = versions(&aws);

    let second = setup();
    assert!(second.ok, "{}", second.text);
    second.says("unchanged (no new version)");
    assert_eq!(versions(&aws), before);

    let remapped = run({
        let mut cmd = case.deployer("setup-secrets");
        cmd.env("MODEL_MAPPINGS", r#"{"my-model":"gpt-4o"}"#);
        cmd
    });
    assert!(remapped.ok, "{}", remapped.text);
    let now: serde_json::Value = serde_json::from_str(
        runtime()
            .block_on(aws.secrets.get_secret_value().secret_id(&id).send())
            .unwrap()
            .secret_string()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(now["model_mappings"], serde_json::json!({"my-model": "gpt-4o"}));
    assert_eq!(now["client_api_keys"], value["client_api_keys"]);
    assert_eq!(now["openai_api_key"], KEY);

    // Client keys alone are something to write: a capped key joins the secret.
    let capped = run({
        let mut cmd = case.deployer("setup-secrets");
        cmd.env(
            "CLIENT_API_KEYS",
            "capped=capped-key-0123456789abcdef;requests_per_minute=2",
        );
        cmd
    });
    assert!(capped.ok, "{}", capped.text);
    let now = secret(&aws, &id).unwrap();
    let keys = now["client_api_keys"].as_array().unwrap();
    let entry = keys
        .iter()
        .find(|k| k["name"] == "capped")
        .expect("the capped key is stored");
    assert_eq!(entry["limits"]["requests_per_minute"], 2);
}

#[test]
fn in_github_actions_the_key_is_masked_before_anything_else_and_never_printed() {
    let case = Case::new("mask");
    let bin = case.bootstrap("bootstrap", 62, "m");
    let summary = case.dir.path().join("summary.md");
    let out = case
        .action("deploy")
        .env(input("FUNCTION_ARTIFACT"), &bin)
        .env(input("OPENAI_API_KEY"), KEY)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some(format!("::add-mask::{KEY}").as_str()));
    assert!(!lines.any(|l| l.contains(KEY)), "{stdout}");
    assert!(!stderr.contains(KEY));
    let markdown = std::fs::read_to_string(&summary).unwrap();
    assert!(
        markdown.contains("deployed") && !markdown.contains(KEY),
        "{markdown}"
    );
    assert!(stdout.contains("::group::Stack events of"), "{stdout}");
}

/// Every prerequisite failure is reported in one run, and nothing is created.
#[test]
fn prerequisite_failures_are_gathered_and_nothing_is_created() {
    let case = Case::new("prereq");
    let arm = case.bootstrap("bootstrap", 183, "arm");
    let out = run({
        let mut cmd = case.deploy(&arm);
        cmd.env("ARCHITECTURE", "x86_64")
            .env("TEMPLATE_FILE", case.dir.path().join("missing.yaml"));
        cmd
    });
    assert!(!out.ok);
    out.says("2 prerequisite(s) not met");
    out.says("is built for arm64 but ARCHITECTURE=x86_64");
    out.says("missing.yaml does not exist");
    let aws = aws();
    assert!(!stack_exists(&aws, &case.stack));
    let secret = runtime().block_on(
        aws.secrets
            .describe_secret()
            .secret_id(format!("{}/config", case.stack))
            .send(),
    );
    assert!(
        secret.is_err(),
        "a secret was created although prerequisites failed"
    );
}

#[test]
fn each_prerequisite_failure_names_its_fix() {
    let case = Case::new("each");
    let bin = case.bootstrap("bootstrap", 62, "x");
    let text = case.dir.path().join("notes.txt");
    std::fs::write(&text, "not a binary").unwrap();
    let invalid = case.dir.path().join("invalid.yaml");
    std::fs::write(&invalid, "Resources: [this is not a template\n").unwrap();

    type Tweak = Box<dyn Fn(&mut Command)>;
    let cases: Vec<(&str, Tweak, &str)> = vec![
        (
            "no credentials",
            Box::new(|c: &mut Command| {
                c.env_remove("AWS_ACCESS_KEY_ID")
                    .env_remove("AWS_SECRET_ACCESS_KEY")
                    .env("AWS_CONFIG_FILE", "/nonexistent")
                    .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
            }),
            "no AWS credentials were found",
        ),
        (
            "bad region",
            Box::new(|c: &mut Command| {
                c.env("AWS_REGION", "mars");
            }),
            "AWS_REGION=mars is not an AWS region name",
        ),
        (
            "no region",
            Box::new(|c: &mut Command| {
                c.env("AWS_REGION", "");
            }),
            "no AWS region is set",
        ),
        (
            "invalid template",
            Box::new(move |c: &mut Command| {
                c.env("TEMPLATE_FILE", &invalid);
            }),
            "is not valid",
        ),
        (
            "not a zip",
            Box::new(move |c: &mut Command| {
                c.env("FUNCTION_ARTIFACT", &text);
            }),
            "is neither a zip nor an ELF executable",
        ),
        (
            "unknown parameter",
            Box::new(|c: &mut Command| {
                c.env("PARAMETER_OVERRIDES", r#"{"NoSuchParameter":"1"}"#);
            }),
            "has no parameter NoSuchParameter",
        ),
    ];
    for (name, tweak, expected) in cases {
        let mut cmd = case.deploy(&bin);
        tweak(&mut cmd);
        let out = run(cmd);
        assert!(!out.ok, "{name}: succeeded\n{}", out.text);
        assert!(
            out.text.contains(expected),
            "{name}: expected {expected:?} in\n{}",
            out.text
        );
        assert!(
            out.text.contains("nothing was created or uploaded"),
            "{name}:\n{}",
            out.text
        );
    }
}

/// The objects of `prefix` in the shared artifact bucket, all versions.
fn object_versions(aws: &Aws, prefix: &str) -> usize {
    let listed = runtime().block_on(
        aws.s3
            .list_object_versions()
            .bucket("openai-lambda-proxy-123456789012-us-east-1")
            .prefix(prefix)
            .send(),
    );
    listed.map(|l| l.versions().len()).unwrap_or(0)
}

#[test]
fn a_template_over_cloudformations_inline_limit_deploys_from_s3() {
    let case = Case::new("big");
    let bin = case.bootstrap("bootstrap", 62, "big");
    // The proxy's template with 60 KB more in its Metadata: over the 51,200 bytes
    // CloudFormation accepts inline.
    let template = std::fs::read_to_string(repo().join("template.yaml"))
        .unwrap()
        .replacen(
            "\nMetadata:\n",
            &format!("\nMetadata:\n  Padding: \"{}\"\n", "x".repeat(60_000)),
            1,
        );
    assert!(template.len() > 110_000, "the padding was not added");
    let path = case.dir.path().join("big.yaml");
    std::fs::write(&path, &template).unwrap();
    let out = assert_ok({
        let mut cmd = case.deploy(&bin);
        cmd.env("TEMPLATE_FILE", &path);
        cmd
    });
    out.says("✅ deploy: deployed");
    out.says("/template/");
}

#[test]
fn destroy_artifacts_removes_this_stacks_objects_and_keeps_the_shared_bucket_for_others() {
    let mine = Case::new("art-a");
    let theirs = Case::new("art-b");
    assert_ok(mine.deploy(&mine.bootstrap("bootstrap", 62, "a")));
    assert_ok(theirs.deploy(&theirs.bootstrap("bootstrap", 62, "b")));
    let aws = aws();
    assert!(object_versions(&aws, &format!("{}/", mine.stack)) >= 2);
    let out = assert_ok({
        let mut cmd = mine.deployer("destroy");
        cmd.env("DESTROY_ARTIFACTS", "true");
        cmd
    });
    out.says("deleted 2 object versions of stack");
    assert_eq!(object_versions(&aws, &format!("{}/", mine.stack)), 0);
    assert!(
        object_versions(&aws, &format!("{}/", theirs.stack)) >= 2,
        "another stack's code (its rollbacks read it) was deleted"
    );
    assert_ok(theirs.deployer("destroy"));
}

#[test]
fn a_leftover_log_group_of_the_function_stops_the_deploy_before_anything_is_created() {
    let case = Case::new("logs");
    let bin = case.bootstrap("bootstrap", 62, "l");
    let aws = aws();
    let group = format!("/aws/lambda/{}", case.stack);
    runtime()
        .block_on(aws.logs.create_log_group().log_group_name(&group).send())
        .unwrap();
    let out = run(case.deploy(&bin));
    assert!(!out.ok, "{}", out.text);
    out.says(&format!("log group {group} already exists outside stack"));
    out.says("aws logs delete-log-group");
    assert!(!stack_exists(&aws, &case.stack));
    assert_eq!(
        object_versions(&aws, &format!("{}/", case.stack)),
        0,
        "something was uploaded"
    );
}

#[test]
fn a_repository_without_a_template_uses_the_bundled_one_and_says_so() {
    let case = Case::new("bundled");
    let bin = case.bootstrap("bootstrap", 62, "b");
    let report = case.dir.path().join("report.md");
    // As in the action's image: TEMPLATE_FILE left at its default, which the repository
    // (the working directory) lacks, and the image's stock template named by the image.
    let out = assert_ok({
        let mut cmd = case.action("validate");
        cmd.env_remove(input("TEMPLATE_FILE"))
            .env("OPENAI_PROXY_BUNDLED_TEMPLATE", repo().join("template.yaml"))
            .env(input("FUNCTION_ARTIFACT"), &bin)
            .env(input("REPORT_FILE"), &report);
        cmd
    });
    out.says("::notice::deploying the stock template bundled with openai-proxy-deployer");
    let markdown = std::fs::read_to_string(report).unwrap();
    assert!(
        markdown.contains("| Bundled | template of openai-proxy-deployer"),
        "{markdown}"
    );
}
