//! Guarded deploys through the built deployer against the local AWS (its extension models
//! CloudFormation's monitoring window, CancelUpdateStack and rollback triggers): the
//! seed's "verify rollback procedures work correctly" and "verify alarms trigger
//! correctly".
//!
//! API Gateway in the emulator does not invoke the function, so the endpoint tests target
//! the real proxy router served here, behind a gate that plays the function's code: it
//! answers as the proxy does while the stack's function runs the good code, and fails
//! chat completions (HTTP 500) while it runs the bad one, as a broken release would.

mod assertions;
mod deploy_support;
mod endpoint_support;

use assertions::contains_all;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::middleware::{self, Next};
use deploy_support::{Case, aws, function_config, run, stack_info};
use endpoint_support::{Proxy, fail_chat, serve, upstream};

/// The proxy, failing chat completions unless the stack's function runs `good` code.
async fn gate(function: String, good: String) -> String {
    let aws = aws().await;
    let inner = Proxy::default().router(&upstream().await);
    let layer = move |request: Request<Body>, next: Next| {
        let (aws, function, good) = (aws.clone(), function.clone(), good.clone());
        async move {
            let code = aws
                .lambda
                .get_function_configuration()
                .function_name(&function)
                .send()
                .await
                .ok()
                .and_then(|c| c.code_sha256().map(str::to_owned));
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
            if code.as_deref() != Some(good.as_str())
                && let Some(failure) = fail_chat(&parts.method, parts.uri.path(), &bytes)
            {
                return failure;
            }
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
    };
    format!("http://{}", serve(inner.layer(middleware::from_fn(layer))).await)
}

/// The stack's secret as the function reads it (AWSCURRENT).
async fn current_secret(stack: &str) -> serde_json::Value {
    let read = aws()
        .await
        .secrets
        .get_secret_value()
        .secret_id(format!("{stack}/config"))
        .send()
        .await;
    serde_json::from_str(read.unwrap().secret_string().unwrap()).unwrap()
}

/// A deploy that runs the endpoint tests against `target`.
fn tested_deploy(case: &Case, artifact: &std::path::Path, target: &str) -> assert_cmd::Command {
    let mut cmd = case.deploy(artifact);
    cmd.env("RUN_ENDPOINT_TESTS", "true")
        .env("API_BASE_URL", target)
        .env("PERF_REQUESTS", "0")
        .env(
            "MODEL_MAPPINGS",
            r#"{"amazon.nova-lite-v1:0":"gpt-4o-mini","amazon.nova-pro-v1:0":"gpt-4o-mini"}"#,
        );
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_fails_its_tests_is_rolled_back_and_the_previous_one_passes_them_again() {
    let case = Case::new("guard-bad");
    let good = case.bootstrap("good", 62, "good");
    let bad = case.bootstrap("bad", 62, "bad");
    let target = gate(case.stack.clone(), deploy_support::code_sha256_of(&good)).await;
    let first = run(tested_deploy(&case, &good, &target)).await;
    assert!(first.ok, "{}", first.text);
    let before = stack_info(&case.stack).await;
    let secret_before = current_secret(&case.stack).await;

    let out = run({
        let mut cmd = tested_deploy(&case, &bad, &target);
        // A new secret version with the new release: it goes back with the stack.
        cmd.env("GITHUB_OUTPUT", case.dir.path().join("outputs"))
            .env("OPENAI_API_TIMEOUT", "45");
        cmd
    })
    .await;
    assert!(!out.ok, "a rolled back deploy must fail the job:\n{}", out.text);
    out.says("rolled back: chat completion failed on the new version; the previous version is serving and passed its tests");
    let after = stack_info(&case.stack).await;
    assert_eq!(after.status.as_str(), "UPDATE_ROLLBACK_COMPLETE");
    assert_eq!(
        after.parameters, before.parameters,
        "the previous deploy's parameters (its code key included) are back"
    );
    assert_eq!(
        function_config(&case.stack).await.code_sha256(),
        Some(deploy_support::code_sha256_of(&good).as_str())
    );
    out.says("put back to its version before this run");
    assert_eq!(
        current_secret(&case.stack).await,
        secret_before,
        "the secret's version before the deploy is back"
    );
    let outputs = std::fs::read_to_string(case.dir.path().join("outputs")).unwrap();
    assert!(outputs.contains("rolled-back=true"), "{outputs}");
    let report = out.text;
    assert!(report.contains("endpoint tests: "), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_passes_its_tests_completes_after_the_window() {
    let case = Case::new("guard-good");
    let v1 = case.bootstrap("v1", 62, "v1");
    let v2 = case.bootstrap("v2", 62, "v2");
    let target = Proxy::default().start().await;
    assert!(run(tested_deploy(&case, &v1, &target)).await.ok);
    let out = run({
        let mut cmd = tested_deploy(&case, &v2, &target);
        cmd.env("GITHUB_OUTPUT", case.dir.path().join("outputs"))
            .env("REPORT_FILE", case.dir.path().join("report.md"));
        cmd
    })
    .await;
    assert!(out.ok, "{}", out.text);
    out.says("deployed: the new version passed its endpoint tests while CloudFormation monitored it");
    assert_eq!(stack_info(&case.stack).await.status.as_str(), "UPDATE_COMPLETE");
    let report = std::fs::read_to_string(case.dir.path().join("report.md")).unwrap();
    contains_all(
        &report,
        &[
            "CloudFormation monitored the new version for 3 min with the rollback alarms",
            "none fired",
        ],
    );
    // What the window could see: the 1-minute guard alarms, not the 5-minute ones.
    let guards = format!(
        "a 3-minute window can see {0}-guard-lambda-errors (60 s), {0}-guard-api-5xx (60 s) fire",
        case.stack
    );
    assert!(report.contains(&guards), "{report}");
    assert!(!report.contains("⚠️ the rollback alarms"), "{report}");
    let outputs = std::fs::read_to_string(case.dir.path().join("outputs")).unwrap();
    assert!(outputs.contains("rolled-back=false"), "{outputs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_that_fires_during_the_window_rolls_back_and_is_named() {
    let case = Case::new("guard-alarm");
    let v1 = case.bootstrap("v1", 62, "v1");
    let v2 = case.bootstrap("v2", 62, "v2");
    assert!(run(case.deploy(&v1)).await.ok);
    let aws = aws().await;
    let deploy = tokio::spawn(run({
        let mut cmd = case.deploy(&v2);
        // 10 emulated minutes: long enough to fire the alarm inside the window.
        cmd.env("ROLLBACK_WINDOW_MINUTES", "10");
        cmd
    }));
    let alarm = format!("{}-api-5xx", case.stack);
    let mut fired = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let code = function_config(&case.stack)
            .await
            .code_sha256()
            .map(str::to_owned);
        if code.as_deref() == Some(deploy_support::code_sha256_of(&v2).as_str()) {
            aws.cloudwatch
                .set_alarm_state()
                .alarm_name(&alarm)
                .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
                .state_reason("Threshold Crossed: 7 errors")
                .send()
                .await
                .unwrap();
            fired = true;
            break;
        }
    }
    assert!(fired, "the new version never came up");
    let out = deploy.await.unwrap();
    assert!(!out.ok, "{}", out.text);
    out.says("CloudWatch Alarms were in ALARM state");
    out.says(&alarm);
    assert_eq!(
        stack_info(&case.stack).await.status.as_str(),
        "UPDATE_ROLLBACK_COMPLETE"
    );
    assert_eq!(
        function_config(&case.stack).await.code_sha256(),
        Some(deploy_support::code_sha256_of(&v1).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_create_that_fails_its_tests_is_kept_and_says_how_to_remove_it() {
    let case = Case::new("guard-create");
    let bad = case.bootstrap("bad", 62, "bad");
    let target = gate(case.stack.clone(), "never".into()).await;
    let out = run({
        let mut cmd = tested_deploy(&case, &bad, &target);
        cmd.env("REPORT_FILE", case.dir.path().join("report.md"));
        cmd
    })
    .await;
    assert!(!out.ok, "{}", out.text);
    out.says("a first create has no previous version");
    let report = std::fs::read_to_string(case.dir.path().join("report.md")).unwrap();
    assert!(
        report.contains("remove it with DEPLOYER_COMMAND=destroy"),
        "{report}"
    );
    assert_eq!(stack_info(&case.stack).await.status.as_str(), "CREATE_COMPLETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_window_at_zero_a_failing_version_stays_as_before() {
    let case = Case::new("guard-off");
    let good = case.bootstrap("good", 62, "good");
    let bad = case.bootstrap("bad", 62, "bad");
    let target = gate(case.stack.clone(), deploy_support::code_sha256_of(&good)).await;
    assert!(run(tested_deploy(&case, &good, &target)).await.ok);
    let out = run({
        let mut cmd = tested_deploy(&case, &bad, &target);
        cmd.env("ROLLBACK_WINDOW_MINUTES", "0")
            .env("OPENAI_API_TIMEOUT", "45");
        cmd
    })
    .await;
    assert!(!out.ok, "{}", out.text);
    assert!(
        out.text
            .contains("ROLLBACK_WINDOW_MINUTES=0: the new version stays"),
        "{}",
        out.text
    );
    assert_eq!(stack_info(&case.stack).await.status.as_str(), "UPDATE_COMPLETE");
    assert_eq!(
        function_config(&case.stack).await.code_sha256(),
        Some(deploy_support::code_sha256_of(&bad).as_str())
    );
    // The new version serves, with the secret written for it.
    let secret = current_secret(&case.stack).await;
    assert_eq!(secret["timeout_settings"]["openai_api_timeout"], 45, "{secret}");
}
