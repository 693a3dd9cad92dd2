//! A guarded update after its resources are in place: CloudFormation still monitors it
//! (the stack stays UPDATE_IN_PROGRESS for ROLLBACK_WINDOW_MINUTES), the endpoint tests
//! run against the new version, and a failure cancels the update, so CloudFormation puts
//! the previous version back; the tests then run again against it. See [`crate::cfn::guard`].

use std::time::Duration;

use tokio::time::Instant;

use super::Context;
use super::stack_op::ended;
use crate::cfn::classify::Settled;
use crate::cfn::events::Operation;
use crate::cfn::guard::{self, Trigger};
use crate::cfn::request_token;
use crate::cfn::stack;
use crate::cfn::wait::Wait;
use crate::error::{Error, Result};
use crate::prereq::Ready;
use crate::report::Outcome;

/// An update whose new version serves while CloudFormation monitors it.
pub(in crate::commands) struct Guard {
    pub stack_id: String,
    pub op: Operation,
    pub window: Duration,
    /// When the change set was executed: the window ends `window` after the last
    /// resource is updated, so not before this plus `window`.
    pub executed: Instant,
    pub triggers: Vec<Trigger>,
}

/// What the endpoint tests expect of this deploy.
pub(in crate::commands) struct Tests {
    pub expected: Vec<String>,
    /// The template parameters of this deploy (CORS origins, response mode).
    pub api: std::collections::BTreeMap<String, String>,
}

/// Tests the new version inside the window; on failure cancels the update, waits for
/// the rollback and tests the restored version. Ok once the update completed with the
/// window over and no alarm fired.
pub(in crate::commands) async fn finish(
    ctx: &mut Context,
    ready: &Ready,
    mut guard: Guard,
    tests: &Tests,
) -> Result<()> {
    // The outputs of the stack as it stands (API_BASE_URL aside, the tests need ApiUrl).
    if let Some(info) = stack::describe(&ready.aws, &guard.stack_id).await? {
        ctx.report.stack_id = Some(info.id);
        ctx.report.outputs = info.outputs;
    }
    if ctx.config.run_endpoint_tests {
        let base = super::test::target(ctx)?;
        let tested =
            super::test::endpoint_phase(ctx, "endpoint tests", &base, tests.expected.clone(), &tests.api)
                .await;
        if let Err(failed) = tested {
            return roll_back(ctx, ready, guard, tests, &base, failed).await;
        }
    } else {
        ctx.report.notes.push(
            "endpoint tests not run (RUN_ENDPOINT_TESTS=false): only the alarms guarded the update".into(),
        );
    }
    let started = ctx.begin("Monitoring window: CloudFormation watches the rollback alarms");
    let ends = guard.executed + guard.window;
    let settled = wait(ctx, ready, &mut guard, Some(ends)).await;
    let result = match settled {
        Ok(settled) => ended(ctx, ready, settled).await,
        Err(e) => Err(e),
    };
    ctx.end("monitoring window", started, result)?;
    let minutes = guard.window.as_secs() / 60;
    let alarms = if guard.triggers.is_empty() {
        "no rollback alarm (the stack has none on API 5XX or Lambda errors)".to_owned()
    } else {
        format!(
            "the rollback alarms {}: none fired ({})",
            guard
                .triggers
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            guard::sight(&guard.triggers, minutes).note
        )
    };
    ctx.report.notes.push(format!(
        "CloudFormation monitored the new version for {minutes} min with {alarms}"
    ));
    Ok(())
}

async fn wait(
    ctx: &mut Context,
    ready: &Ready,
    guard: &mut Guard,
    window_ends: Option<Instant>,
) -> Result<Settled> {
    ctx.ui
        .group(&format!("Stack events of {}", ctx.config.stack_name));
    let settled = Wait {
        aws: &ready.aws,
        stack: &guard.stack_id,
        poll: ctx.poll,
        // The window is CloudFormation's: the wait must outlast it.
        timeout: ctx.wait_timeout() + guard.window,
        ui: &ctx.ui,
    }
    .with_window(window_ends)
    .until_settled(&mut guard.op, &mut ctx.report.events)
    .await;
    ctx.ui.end_group();
    settled
}

async fn roll_back(
    ctx: &mut Context,
    ready: &Ready,
    mut guard: Guard,
    tests: &Tests,
    base: &str,
    failed: Error,
) -> Result<()> {
    let stack = ctx.config.stack_name.clone();
    let first = ctx
        .report
        .endpoint
        .as_ref()
        .and_then(|r| r.failures().next())
        .map_or_else(|| "a test".to_owned(), |c| c.name.to_owned());
    let started = ctx.begin(&format!(
        "Rolling back stack {stack}: {first} failed on the new version"
    ));
    let token = request_token();
    guard.op.add_token(&token);
    let cancelled = guard::cancel(&ready.aws, &guard.stack_id, &token).await;
    let result = match cancelled {
        Ok(true) => wait(ctx, ready, &mut guard, None).await,
        Ok(false) => {
            // Too late: the window closed between the tests and the cancel.
            let settled = wait(ctx, ready, &mut guard, None).await;
            let outcome = match settled {
                Ok(settled) => ended(ctx, ready, settled).await,
                Err(e) => Err(e),
            };
            let _ = ctx.end("rollback", started, Err::<(), _>(failed.clone()));
            outcome?;
            ctx.report.outcome = Some(Outcome::FailedAfterWindow { failed: first });
            return Err(Error::new(
                format!(
                    "{}; CloudFormation had already closed the monitoring window, so the update could not be cancelled",
                    failed.cause
                ),
                format!(
                    "the new version is serving: fix the failure and deploy again, or deploy the previous commit to return to it; a longer ROLLBACK_WINDOW_MINUTES leaves more time (now {})",
                    ctx.config.rollback_window_minutes
                ),
            ));
        }
        Err(e) => Err(e),
    };
    let result = match result {
        Ok(Settled::Failed(status))
            if status == aws_sdk_cloudformation::types::StackStatus::UpdateRollbackComplete =>
        {
            ctx.report.rolled_back = true;
            ctx.report.stack_status = Some(status.as_str().to_owned());
            Ok(())
        }
        Ok(settled) => ended(ctx, ready, settled).await.and_then(|()| {
            Err(Error::new(
                format!("the update of stack {stack} was cancelled but did not roll back"),
                "look at the stack's events in the CloudFormation console",
            ))
        }),
        Err(e) => Err(e),
    };
    ctx.end("rollback", started, result)?;
    ctx.ui
        .step("rolled back: the previous version is serving; testing it");
    // With the secret it read before this run, as it will serve.
    ctx.put_secret_back(ready).await;
    if let Some(info) = stack::describe(&ready.aws, &guard.stack_id).await? {
        ctx.report.outputs = info.outputs;
    }
    ctx.report.rejected = ctx.report.endpoint.take();
    let again = super::test::endpoint_phase(
        ctx,
        "endpoint tests (previous version)",
        base,
        tests.expected.clone(),
        &tests.api,
    )
    .await;
    ctx.report.outcome = Some(Outcome::RolledBack {
        failed: first,
        previous_passed: again.is_ok(),
    });
    Err(Error::new(
        format!(
            "the endpoint tests failed on the new version, so the deployer cancelled the update and CloudFormation rolled it back ({})",
            failed.cause
        ),
        format!(
            "{}. The previous version {}.",
            failed.fix.trim_end_matches('.'),
            if again.is_ok() {
                "is serving and passed its tests: nothing is broken for your users"
            } else {
                "is serving but failed its tests as well: the cause may be outside this deploy (the OpenAI key, the upstream, the secret)"
            }
        ),
    ))
}
