//! The endpoint tests as deploy's last phase, and the `test` command's stack lookup,
//! against the local AWS emulator (run through `make test`, which starts one and sets
//! AWS_ENDPOINT_URL). The emulator's API Gateway does not invoke functions, so
//! API_BASE_URL points the tests at the real proxy router served by this test.

mod assertions;
mod deploy_support;
mod endpoint_support;

use assertions::contains_all;
use deploy_support::{bootstrap_in, endpoint, unique};
use endpoint_support::*;

/// The ids of the default mappings (function/src/config/default_mappings.json), which a
/// new secret gets.
const SECRET_MODELS: [&str; 4] = [
    "amazon.nova-lite-v1:0",
    "amazon.nova-micro-v1:0",
    "amazon.nova-pro-v1:0",
    "amazon.titan-embed-text-v2:0",
];

fn aws_env(stack: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("STACK_NAME", stack.into()),
        ("LAMBDA_FUNCTION_NAME", stack.into()),
        ("API_GATEWAY_NAME", stack.into()),
        // The proxies these tests stand up take no client key (tests/client_keys.rs).
        ("ENABLE_AUTHENTICATION", "false".into()),
        (
            "TEMPLATE_FILE",
            format!("{}/template.yaml", env!("CARGO_MANIFEST_DIR")),
        ),
    ]
}

fn artifact(dir: &std::path::Path, stack: &str) -> String {
    bootstrap_in(dir, stack).display().to_string()
}

/// Deploys a new stack whose endpoint tests target `proxy`, with `more` variables.
async fn deploy_with(
    label: &str,
    proxy: Proxy,
    more: Vec<(&'static str, String)>,
) -> (i32, String, String, String) {
    let stack = unique(label);
    let dir = tempfile::tempdir().unwrap();
    let base = proxy.start().await;
    let mut vars = aws_env(&stack);
    vars.extend([
        ("DEPLOYER_COMMAND", "deploy".to_owned()),
        ("FUNCTION_ARTIFACT", artifact(dir.path(), &stack)),
        ("OPENAI_API_KEY", "sk-test-endpoint-deploy-0123456789".into()),
        ("API_BASE_URL", base),
    ]);
    vars.extend(more);
    deployer(vars).await
}

async fn deploy(label: &str, proxy_models: Vec<&'static str>) -> (i32, String, String, String) {
    let proxy = Proxy {
        models: proxy_models,
        ..Proxy::default()
    };
    deploy_with(label, proxy, Vec::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_ends_with_the_endpoint_tests_expecting_the_secrets_models() {
    assert_eq!(
        openai_proxy_function::config::default_mappings()
            .keys()
            .collect::<Vec<_>>(),
        SECRET_MODELS,
        "SECRET_MODELS are the default mappings"
    );
    let (code, stdout, report, outputs) = deploy("pass", SECRET_MODELS.to_vec()).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("✅ models list"), "{stdout}");
    contains_all(
        &report,
        &[
            "✅ **deploy**: deployed",
            "| models list | ✅ |",
            "| 4 listed |",
            "| endpoint tests | ✅ |",
        ],
    );
    // The stack's ApiUrl stays the API clients use; the snippet points at it.
    assert!(
        report.contains(".execute-api.us-east-1.amazonaws.com/prod/v1\""),
        "{report}"
    );
    assert!(outputs.contains("status=succeeded\n"), "{outputs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_of_the_secret_the_api_does_not_list_fails_the_deploy_after_the_stack() {
    let (code, stdout, report, outputs) = deploy(
        "missing",
        vec![
            "amazon.nova-lite-v1:0",
            "amazon.nova-pro-v1:0",
            "amazon.titan-embed-text-v2:0",
        ],
    )
    .await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        report
            .contains("missing amazon.nova-micro-v1:0 (listed: amazon.nova-lite-v1:0, amazon.nova-pro-v1:0, amazon.titan-embed-text-v2:0)"),
        "{report}"
    );
    contains_all(
        &report,
        &[
            "❌ **deploy**: created, but the endpoint tests failed: a first create has no previous version to return to",
            "| endpoint tests | ❌ |",
        ],
    );
    contains_all(&outputs, &["status=failed\n", "stack-status=CREATE_COMPLETE\n"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_command_without_api_base_url_needs_the_stack() {
    let stack = unique("nostack");
    let mut vars = aws_env(&stack);
    vars.push(("DEPLOYER_COMMAND", "test".into()));
    let (code, stdout, report, _) = deployer(vars).await;
    assert_eq!(code, 1, "{stdout}");
    contains_all(
        &report,
        &[
            &format!("there is no stack {stack} in us-east-1"),
            "set API_BASE_URL",
        ],
    );
    assert!(!report.contains("### Endpoint tests"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preflight_comes_from_an_origin_the_stack_allows() {
    let proxy = Proxy {
        models: SECRET_MODELS.to_vec(),
        cors: Some(vec!["https://mine.example".into()]),
        ..Proxy::default()
    };
    let overrides = r#"{"CorsAllowedOrigins":"https://mine.example"}"#.to_owned();
    let (code, stdout, report, _) =
        deploy_with("cors", proxy, vec![("PARAMETER_OVERRIDES", overrides)]).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(report.contains("| CORS preflight | ✅ |"), "{report}");
}
