//! test: the endpoint tests against `API_BASE_URL`, or the stack's `ApiUrl` (read with
//! credentials; no template or artifact needed). Deploy ends with the same phase.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Context;
use crate::aws::Aws;
use crate::cfn::stack;
use crate::endpoint;
use crate::error::{Error, Result};
use crate::prereq::Needs;
use crate::report::{Outcome, Status};

pub(super) async fn run(ctx: &mut Context) -> Result<()> {
    // What the API serves: the deployed stack's parameters, else PARAMETER_OVERRIDES.
    let mut api = ctx.config.parameter_overrides.clone();
    if ctx.config.api_base_url.is_some() {
        // No stack is consulted: the report names only the target.
        ctx.report.stack.clear();
        ctx.report.region = None;
    } else {
        let ready = ctx.prerequisites(Needs::CREDENTIALS).await?;
        let name = ctx.config.stack_name.clone();
        let Some(info) = stack::describe(&ready.aws, &name).await? else {
            return Err(Error::new(
                format!("there is no stack {name} in {}", ready.aws.region),
                "deploy it first (DEPLOYER_COMMAND=deploy), or set API_BASE_URL to the proxy to test",
            ));
        };
        ctx.report.stack_status = Some(info.status.as_str().to_owned());
        ctx.report.stack_id = Some(info.id.clone());
        ctx.report.outputs = info.outputs;
        api = info.parameters;
    }
    let base = target(ctx)?;
    let expected = ctx
        .config
        .model_mappings
        .as_ref()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    endpoint_phase(ctx, "endpoint tests", &base, expected, &api).await?;
    ctx.report.status = Some(Status::Succeeded);
    ctx.report.outcome = Some(Outcome::Tested);
    Ok(())
}

/// API_BASE_URL, else the stack's `ApiUrl` output.
pub(super) fn target(ctx: &Context) -> Result<String> {
    ctx.config
        .api_base_url
        .clone()
        .or_else(|| ctx.report.outputs.get("ApiUrl").cloned())
        .ok_or_else(|| {
            Error::new(
                format!("stack {} has no ApiUrl output to test", ctx.config.stack_name),
                "set API_BASE_URL to the proxy's base URL (with its stage, without /v1), or RUN_ENDPOINT_TESTS=false",
            )
        })
}

/// The model ids the deployed secret maps (the tests then expect each in the list).
pub(super) async fn secret_model_ids(aws: &Aws, secret_arn: &str) -> Result<Vec<String>> {
    let value = crate::secret::read(aws, secret_arn).await?;
    Ok(value
        .get("model_mappings")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default())
}

/// The endpoint tests as a phase. `api`: the template parameters the API was deployed
/// with, as far as known (its CORS origins and response mode shape the tests).
pub(super) async fn endpoint_phase(
    ctx: &mut Context,
    phase: &'static str,
    base: &str,
    expected_models: Vec<String>,
    api: &BTreeMap<String, String>,
) -> Result<()> {
    let started = ctx.begin(&format!("Endpoint tests: {base}"));
    let mut plan = endpoint::Plan::new(base);
    plan.expected_models = expected_models;
    plan.chat = ctx.config.test_chat_completion;
    plan.provider = ctx.config.test_provider.header();
    plan.auth = ctx.config.enable_authentication;
    plan.client_key = ctx
        .config
        .test_client_api_key
        .as_ref()
        .map(|key| key.expose().to_owned());
    plan.perf_requests = usize::try_from(ctx.config.perf_requests).unwrap_or(usize::MAX);
    plan.origin = endpoint::browser_origin(api.get("CorsAllowedOrigins").map(String::as_str));
    plan.streaming = endpoint::streams(api.get("ResponseTransferMode").map(String::as_str));
    let results = endpoint::run(&plan, &ctx.ui).await;
    let outcome = if results.passed() {
        ctx.ui.step(&format!("endpoint tests: {}", results.summary()));
        Ok(())
    } else {
        let first = results
            .failures()
            .next()
            .map(|c| format!("; first: {}: {}", c.name, c.detail))
            .unwrap_or_default();
        let logs = match ctx.report.outputs.get("LogGroupName") {
            Some(group) => format!("the function's log group {group}"),
            None => "the proxy's log".into(),
        };
        Err(Error::new(
            format!("endpoint tests against {base}: {}{first}", results.summary()),
            format!(
                "each failed test in the report says what it expected and what it got; {logs} has their request lines (x-request-id {}-<n>); run the tests alone with DEPLOYER_COMMAND=test",
                results.run_id
            ),
        ))
    };
    ctx.report.endpoint = Some(results);
    ctx.end(phase, started, outcome)
}
