//! What the commands that change a stack share: settling it before a change (waiting out
//! another operation, recreating a failed first create, refusing a stuck stack), the
//! stack's tags, the change set in the log and the report, and the end of an operation
//! (its outcome recorded, or the error that says what to do).

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::{ChangeSetType, StackStatus};

use super::Context;
use crate::cfn::change_set::ChangeSet;
use crate::cfn::classify::{self, Settled};
use crate::cfn::events::{Operation, failures};
use crate::cfn::guard;
use crate::cfn::request_token;
use crate::cfn::stack::{self, Plan, StackInfo};
use crate::cfn::wait::Wait;
use crate::error::{Error, Result};
use crate::prereq::Ready;
use crate::report::Outcome;

pub(super) const TAG_REPOSITORY: &str = "openai-lambda-proxy:repository";
pub(super) const TAG_COMMIT: &str = "openai-lambda-proxy:commit";

/// A stack operation that ended: success records the stack; anything else is the
/// error that says what happened and what to do.
pub(super) async fn ended(ctx: &mut Context, ready: &Ready, settled: Settled) -> Result<()> {
    let stack = ctx.config.stack_name.clone();
    match settled {
        Settled::Succeeded(status) => {
            ctx.ui.step(status.as_str());
            let info = stack::describe(&ready.aws, &stack).await?;
            finish_stack(ctx, ready, info).await
        }
        Settled::TimedOut(status) | Settled::Running(status) => {
            ctx.report.stack_status = Some(status.as_str().to_owned());
            Err(timed_out(ctx, status.as_str()))
        }
        Settled::Failed(status) => {
            ctx.report.stack_status = Some(status.as_str().to_owned());
            ctx.report.failed_resources = failures(&ctx.report.events);
            if let Some(reason) = guard::alarm_rollback(&ctx.report.events) {
                ctx.report.rolled_back = status == StackStatus::UpdateRollbackComplete;
                ctx.report.outcome = Some(Outcome::RolledBackByAlarm);
                return Err(Error::new(
                    format!("CloudFormation rolled stack {stack} back: {reason}"),
                    "the alarm named above saw errors from the new version: read the function's log and the dashboard for them, fix the cause, and deploy again",
                ));
            }
            let first = ctx
                .report
                .failed_resources
                .first()
                .map(|e| format!(": {} {}", e.logical_id, e.reason))
                .unwrap_or_default();
            Err(Error::new(
                format!("stack {stack} ended in {}{first}", status.as_str()),
                match status {
                    // The failed resources name what can be skipped.
                    StackStatus::UpdateRollbackFailed => {
                        guard::continue_rollback_fix(&stack, &ctx.report.failed_resources)
                    }
                    other => stack::stuck_fix(&other, &stack),
                },
            ))
        }
        Settled::Gone => Err(Error::new(
            format!("stack {stack} disappeared while it was being deployed"),
            "someone deleted it meanwhile: deploy again to create it",
        )),
    }
}

/// Waits out another operation, recreates a failed first create, or refuses a stuck
/// stack; returns the change set type to use and the stack as found.
pub(super) async fn settle_before_change(
    ctx: &mut Context,
    ready: &Ready,
) -> Result<(ChangeSetType, Option<StackInfo>)> {
    let stack = ctx.config.stack_name.clone();
    loop {
        let found = stack::describe(&ready.aws, &stack).await?;
        match stack::plan(found.as_ref()) {
            Plan::Create => return Ok((ChangeSetType::Create, found)),
            Plan::Update => return Ok((ChangeSetType::Update, found)),
            Plan::Stuck(status) => {
                ctx.report.stack_status = Some(status.as_str().to_owned());
                return Err(Error::new(
                    format!("stack {stack} is in {} and cannot be updated", status.as_str()),
                    stack::stuck_fix(&status, &stack),
                ));
            }
            Plan::WaitForOther(status) => {
                ctx.ui.group(&format!(
                    "Stack {stack} is busy ({}): waiting for it to finish",
                    status.as_str()
                ));
                let settled = wait_quietly(ctx, ready, &stack).await;
                ctx.ui.end_group();
                if let Settled::TimedOut(status) = settled? {
                    return Err(timed_out(ctx, status.as_str()));
                }
            }
            Plan::RecreateAfterFailedCreate => {
                ctx.ui.warn(&format!(
                    "stack {stack} is in ROLLBACK_COMPLETE (its first create failed): deleting it to create it again"
                ));
                ctx.report
                    .notes
                    .push("the stack was in ROLLBACK_COMPLETE and was deleted and recreated".into());
                let settled = ctx
                    .delete_stack(&ready.aws, &stack, &format!("Deleting stack {stack}"))
                    .await;
                match settled? {
                    Settled::Gone => {}
                    Settled::TimedOut(status) | Settled::Running(status) => {
                        return Err(timed_out(ctx, status.as_str()));
                    }
                    Settled::Failed(status) | Settled::Succeeded(status) => {
                        return Err(Error::new(
                            format!("deleting the failed stack {stack} ended in {}", status.as_str()),
                            stack::stuck_fix(&status, &stack),
                        ));
                    }
                }
            }
        }
    }
}

/// Waits for someone else's operation: its events are not ours to report.
async fn wait_quietly(ctx: &Context, ready: &Ready, stack: &str) -> Result<Settled> {
    let mut op = Operation::begin(&ready.aws, stack, &request_token()).await?;
    Wait {
        aws: &ready.aws,
        stack,
        poll: ctx.poll,
        timeout: ctx.wait_timeout(),
        ui: &ctx.ui,
    }
    .until_settled(&mut op, &mut Vec::new())
    .await
}

pub(super) fn timed_out(ctx: &Context, status: &str) -> Error {
    Error::new(
        format!(
            "gave up after WAIT_TIMEOUT={} s while stack {} was {status}",
            ctx.config.wait_timeout, ctx.config.stack_name
        ),
        "the operation goes on in CloudFormation: watch it in the console, and raise WAIT_TIMEOUT if your stack needs longer",
    )
}

/// The stack's tags: who manages it, and the repository and commit that deployed it.
pub(super) fn tags(ctx: &Context) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([("managed-by".to_owned(), "openai-proxy-deployer".to_owned())]);
    if let Some(repo) = &ctx.report.repository {
        tags.insert(TAG_REPOSITORY.into(), repo.clone());
    }
    if let Some(commit) = &ctx.report.commit {
        tags.insert(TAG_COMMIT.into(), commit.clone());
    }
    tags
}

pub(super) fn describe_changes(ctx: &mut Context, cs: &ChangeSet) {
    let summary = classify::summarize(&cs.changes);
    ctx.ui.step(&format!(
        "{} to add, {} to modify, {} to remove",
        summary.adds, summary.modifies, summary.removes
    ));
    for c in &cs.changes {
        ctx.ui.step(&format!(
            "  {:<7} {:<40} {}{}",
            c.action.as_str(),
            c.logical_id,
            c.resource_type,
            match c.replacement.as_ref().map(|r| r.as_str()) {
                Some("True") => "  (replaced)",
                Some("Conditional") => "  (may be replaced)",
                _ => "",
            }
        ));
    }
    if !summary.replacements.is_empty() {
        ctx.ui.warn(&format!(
            "this change replaces {}: the replaced resources get new physical ids",
            summary.replacements.join(", ")
        ));
    }
    ctx.report.changes = Some((summary, cs.changes.clone()));
}

pub(super) async fn finish_stack(ctx: &mut Context, ready: &Ready, info: Option<StackInfo>) -> Result<()> {
    let Some(info) = info else {
        return Err(Error::new(
            format!("stack {} is gone after the deploy", ctx.config.stack_name),
            "someone deleted it meanwhile: deploy again to create it",
        ));
    };
    if ctx.config.termination_protection && !info.termination_protection {
        stack::protect(&ready.aws, &ctx.config.stack_name).await?;
        ctx.ui.step("termination protection turned on");
    }
    ctx.report.stack_status = Some(info.status.as_str().to_owned());
    ctx.report.stack_id = Some(info.id.clone());
    ctx.report.outputs = info.outputs;
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::Client;
    use aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput;
    use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
    use aws_sdk_cloudformation::types::{Stack, StackStatus};
    use aws_smithy_mocks::mock;
    use aws_smithy_types::DateTime;

    use super::*;
    use crate::aws::mocked::{aws, query_error};
    use crate::config::Config;
    use crate::runner::Runner;

    #[tokio::test]
    async fn a_failed_first_create_is_deleted_and_created_again() {
        let statuses = mock!(Client::describe_stacks)
            .sequence()
            .output(|| {
                DescribeStacksOutput::builder()
                    .stacks(
                        Stack::builder()
                            .stack_name("s")
                            .stack_status(StackStatus::RollbackComplete)
                            .creation_time(DateTime::from_secs(0))
                            .build(),
                    )
                    .build()
            })
            .http_response(|| query_error(400, "ValidationError", "Stack with id s does not exist"))
            .repeatedly()
            .build();
        let deletes = mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
        let events =
            mock!(Client::describe_stack_events).then_output(|| DescribeStackEventsOutput::builder().build());
        let ready = Ready::of(aws(&[&statuses, &deletes, &events], &[]), "123456789012");
        let config = Config::from_vars([("STACK_NAME".to_owned(), "s".to_owned())]).unwrap();
        let mut ctx = Context::new(config, &Runner::default());
        ctx.poll = crate::cfn::Poll::fast();
        let (kind, found) = settle_before_change(&mut ctx, &ready).await.unwrap();
        assert_eq!(kind, ChangeSetType::Create);
        assert!(found.is_none());
        assert_eq!(deletes.num_calls(), 1);
        assert!(
            ctx.report.notes.iter().any(|n| n.contains("ROLLBACK_COMPLETE")),
            "{:?}",
            ctx.report.notes
        );
    }
}
