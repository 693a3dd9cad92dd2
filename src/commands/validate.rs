//! validate: prerequisites, then the change set a deploy would make: computed,
//! described and deleted, never executed. It never harms a stack: a stack that exists is
//! only read, and the one CloudFormation makes (in REVIEW_IN_PROGRESS) for a CREATE
//! change set is removed by its id, and only while it holds nothing.

use aws_sdk_cloudformation::types::{ChangeSetType, StackStatus};

use super::Context;
use super::stack_op::{describe_changes, tags};
use crate::cfn::change_set::{self, Prepared, Source};
use crate::cfn::request_token;
use crate::cfn::stack::{self, Plan};
use crate::error::{Error, Result};
use crate::prereq::Ready;
use crate::report::{Outcome, Status};
use crate::secret;
use crate::template::MAX_INLINE_BYTES;

pub(super) async fn run(ctx: &mut Context) -> Result<()> {
    let (ready, artifact) = ctx.prerequisites_for_change().await?;
    let secret_arn = secret_arn_for_validation(ctx, &ready).await?;
    let started = ctx.begin(&format!(
        "Change set for stack {} (not executed)",
        ctx.config.stack_name
    ));
    let result = change_set_phase(ctx, &ready, &artifact, &secret_arn).await;
    match ctx.end("change set", started, result)? {
        None => {
            ctx.ui
                .step("no changes: deploying this would leave the stack as it is");
            ctx.report.status = Some(Status::NoChanges);
            ctx.report.outcome = Some(Outcome::Validated { changes: false });
        }
        Some(()) => {
            ctx.report.status = Some(Status::Succeeded);
            ctx.report.outcome = Some(Outcome::Validated { changes: true });
        }
    }
    Ok(())
}

/// Some(()) when the change set held changes (described in the report).
async fn change_set_phase(
    ctx: &mut Context,
    ready: &Ready,
    artifact: &crate::artifact::Artifact,
    secret_arn: &str,
) -> Result<Option<()>> {
    let name = ctx.config.stack_name.clone();
    let found = stack::describe(&ready.aws, &name).await?;
    // A failed first create (ROLLBACK_COMPLETE) is deleted and created again by deploy:
    // its change set is a CREATE, made on a stack name of its own so the failed stack is
    // not touched.
    let (kind, target) = match stack::plan(found.as_ref()) {
        Plan::Create => (ChangeSetType::Create, name.clone()),
        Plan::RecreateAfterFailedCreate => {
            ctx.report.notes.push(format!(
                "stack {name} is in ROLLBACK_COMPLETE: deploy would delete it and create it again; the change set below is that create"
            ));
            (ChangeSetType::Create, scratch_name(&name))
        }
        Plan::Update => (ChangeSetType::Update, name.clone()),
        Plan::WaitForOther(status) | Plan::Stuck(status) => {
            return Err(Error::new(
                format!(
                    "stack {name} is in {}; a change set cannot be made now",
                    status.as_str()
                ),
                "validate again when the stack has settled",
            ));
        }
    };
    if let Some(info) = &found {
        ctx.report.stack_status = Some(info.status.as_str().to_owned());
        ctx.report.stack_id = Some(info.id.clone());
        ctx.report.outputs = info.outputs.clone();
    }
    let bucket_name = ctx.bucket_name(ready);
    let submission = ctx.submission(ready, artifact, secret_arn, &bucket_name);
    let (parameters, prepared) = (submission.parameters, submission.template);
    // Inline when it fits: validate then writes nothing (the plan role may not). A larger
    // template goes to the artifact bucket under its content hash, when the bucket exists.
    let url = if prepared.body.len() <= MAX_INLINE_BYTES {
        None
    } else {
        match ctx.find_bucket(ready).await? {
            Some(bucket) => Some(super::store_template(&ready.aws, &bucket, &name, &prepared).await?),
            None => {
                return Err(Error::new(
                    format!(
                        "the template is {} bytes, over CloudFormation's {MAX_INLINE_BYTES} inline, and artifact bucket {bucket_name} does not exist yet",
                        prepared.body.len()
                    ),
                    "deploy once (it creates the bucket), or set ARTIFACT_BUCKET to a bucket of this account",
                ));
            }
        }
    };
    let request = change_set::Request {
        stack: &target,
        name: &change_set::unique_name("validate"),
        kind: kind.clone(),
        template: url.as_deref().map_or(Source::Body(&prepared.body), Source::Url),
        parameters: &parameters,
        tags: &tags(ctx),
        rollback: None,
    };
    let prepared = change_set::create(&ready.aws, &request, ctx.poll, ctx.wait_timeout()).await;
    let mut review_stack = None;
    let result = match prepared {
        Ok(Prepared::NoChanges) => Ok(None),
        Ok(Prepared::Ready(cs)) => {
            describe_changes(ctx, &cs);
            change_set::delete(&ready.aws, &cs.stack_id, &cs.id).await;
            review_stack = Some(cs.stack_id.clone());
            Ok(Some(()))
        }
        Err(e) => Err(e),
    };
    // A CREATE change set, computed or not, leaves a REVIEW_IN_PROGRESS stack.
    if kind == ChangeSetType::Create {
        if review_stack.is_none()
            && let Ok(Some(info)) = stack::describe(&ready.aws, &target).await
        {
            review_stack = Some(info.id);
        }
        if let Some(id) = review_stack {
            remove_review_stack(ctx, ready, &id).await;
        }
    }
    result
}

/// The stack name the change set that stands for re-creating `stack` is made on: one
/// per stack, the same every run. The plan role may not delete the empty
/// REVIEW_IN_PROGRESS stack a CREATE change set leaves, so each validate reuses the one
/// the last left (a stack in REVIEW_IN_PROGRESS takes further CREATE change sets)
/// instead of leaving one more behind on every push.
fn scratch_name(stack: &str) -> String {
    let base: String = stack.chars().take(128 - "-validate".len()).collect();
    format!("{base}-validate")
}

/// Deletes the stack a CREATE change set made, by its id, and only while it is still
/// REVIEW_IN_PROGRESS (nothing was ever created in it): a stack someone created under
/// that name meanwhile is never touched.
async fn remove_review_stack(ctx: &mut Context, ready: &Ready, stack_id: &str) {
    match stack::describe(&ready.aws, stack_id).await {
        Ok(Some(info)) if info.status == StackStatus::ReviewInProgress => {
            if let Err(e) = stack::delete(&ready.aws, stack_id, &request_token()).await {
                ctx.report.notes.push(format!(
                    "the empty stack {stack_id} that the change set made (REVIEW_IN_PROGRESS, no resources) stays ({}): it is harmless, and the first deploy creates the stack in it; the plan role may not delete stacks",
                    e.cause
                ));
            }
        }
        _ => {}
    }
}

/// The secret's full ARN when it exists; a well-formed stand-in (the template requires
/// a full ARN) only when it does not exist yet, which is fine because validate never
/// executes. Any other failure (a missing permission) is reported, never hidden.
async fn secret_arn_for_validation(ctx: &Context, ready: &Ready) -> Result<String> {
    let id = secret::id(&ctx.config);
    match ready.aws.secrets.describe_secret().secret_id(&id).send().await {
        Ok(found) => Ok(found.arn().unwrap_or(&id).to_owned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(format!(
                "arn:aws:secretsmanager:{}:{}:secret:{}-000000",
                ready.aws.region,
                ready.account,
                id.rsplit(':').next().unwrap_or(&id)
            ))
        }
        Err(e) => Err(Error::aws(format_args!("describe secret {id}"), &e)),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::Client;
    use aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput;
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
    use aws_sdk_cloudformation::types::Stack;
    use aws_smithy_mocks::mock;
    use aws_smithy_types::DateTime;

    use super::*;
    use crate::aws::mocked::aws;
    use crate::config::Config;
    use crate::runner::Runner;

    async fn cleanup_of(status: StackStatus) -> usize {
        let described = mock!(Client::describe_stacks)
            .match_requests(|r| r.stack_name() == Some("arn:aws:cloudformation:us-east-1:1:stack/s/new"))
            .then_output(move || {
                DescribeStacksOutput::builder()
                    .stacks(
                        Stack::builder()
                            .stack_id("arn:aws:cloudformation:us-east-1:1:stack/s/new")
                            .stack_name("s")
                            .stack_status(status.clone())
                            .creation_time(DateTime::from_secs(0))
                            .build(),
                    )
                    .build()
            });
        let deleted = mock!(Client::delete_stack)
            .match_requests(|r| r.stack_name() == Some("arn:aws:cloudformation:us-east-1:1:stack/s/new"))
            .then_output(|| DeleteStackOutput::builder().build());
        let ready = Ready::of(aws(&[&described, &deleted], &[]), "1");
        let mut ctx = Context::new(Config::from_vars([]).unwrap(), &Runner::default());
        remove_review_stack(&mut ctx, &ready, "arn:aws:cloudformation:us-east-1:1:stack/s/new").await;
        deleted.num_calls()
    }

    #[tokio::test]
    async fn the_stack_a_create_change_set_made_is_deleted_by_its_id_only_while_it_holds_nothing() {
        assert_eq!(cleanup_of(StackStatus::ReviewInProgress).await, 1);
        // Someone created the stack meanwhile: it is never touched.
        assert_eq!(cleanup_of(StackStatus::CreateInProgress).await, 0);
        assert_eq!(cleanup_of(StackStatus::CreateComplete).await, 0);
    }

    #[test]
    fn a_failed_first_create_is_validated_on_a_stack_name_of_its_own() {
        let name = scratch_name("openai-lambda-proxy");
        assert_eq!(name, "openai-lambda-proxy-validate");
        assert!(scratch_name(&"a".repeat(128)).len() <= 128);
    }

    #[test]
    fn every_validate_of_a_failed_first_create_reuses_one_scratch_stack() {
        // The plan role cannot delete what a CREATE change set leaves: one per stack,
        // not one per run.
        assert_eq!(scratch_name("s"), scratch_name("s"));
    }
}
