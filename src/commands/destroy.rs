//! destroy: deletes the stack and waits; keeps the secret and this stack's artifacts
//! unless asked (`DESTROY_SECRET`, `DESTROY_ARTIFACTS`). Never deletes what another stack
//! uses: the shared artifact bucket goes only when nothing else is left in it.

use super::Context;
use super::stack_op::timed_out;
use crate::cfn::classify::Settled;
use crate::cfn::events::failures;
use crate::cfn::stack;
use crate::error::{Error, Result};
use crate::prereq::Needs;
use crate::report::{Outcome, Status};
use crate::s3;
use crate::secret;

pub(super) async fn run(ctx: &mut Context) -> Result<()> {
    let ready = ctx.prerequisites(Needs::CREDENTIALS).await?;
    let name = ctx.config.stack_name.clone();
    let started = ctx.begin(&format!("Deleting stack {name}"));
    let found = stack::describe(&ready.aws, &name).await;
    let result = match &found {
        Err(e) => Err(e.clone()),
        Ok(None) => {
            ctx.ui.step(&format!(
                "there is no stack {name} in {}: nothing to delete",
                ready.aws.region
            ));
            ctx.report.notes.push(format!("no stack {name} existed"));
            Ok(())
        }
        Ok(Some(info)) if info.termination_protection => Err(Error::new(
            format!("stack {name} has termination protection on"),
            format!(
                "turn it off first: aws cloudformation update-termination-protection --no-enable-termination-protection --stack-name {name}"
            ),
        )),
        Ok(Some(info)) => delete_stack(ctx, &ready.aws, &info.id).await,
    };
    ctx.end("delete stack", started, result)?;
    let found = found?;
    let mut kept = Vec::new();
    if ctx.config.destroy_secret {
        let id = found
            .as_ref()
            .and_then(|info| info.parameters.get("OpenAIApiKeySecretArn").cloned())
            .unwrap_or_else(|| secret::id(&ctx.config));
        match ready
            .aws
            .secrets
            .delete_secret()
            .secret_id(&id)
            .recovery_window_in_days(7)
            .send()
            .await
        {
            Ok(_) => ctx.ui.step(&format!(
                "secret {id} scheduled for deletion (recoverable for 7 days)"
            )),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                ctx.ui.step(&format!("secret {id} does not exist"));
            }
            Err(e) => return Err(Error::aws(format_args!("delete secret {id}"), &e)),
        }
    } else {
        kept.push("the secret (DESTROY_SECRET=true deletes it)");
    }
    if ctx.config.destroy_artifacts {
        match ctx.find_bucket(&ready).await? {
            None => ctx.ui.step(&format!(
                "artifact bucket {} does not exist",
                ctx.bucket_name(&ready)
            )),
            Some(bucket) => {
                let removed = s3::delete_stack_objects(&ready.aws, &bucket, &name).await?;
                ctx.ui.step(&format!(
                    "deleted {} object versions of stack {name} from s3://{}",
                    removed.versions, bucket.name
                ));
                if removed.bucket {
                    ctx.ui.step(&format!(
                        "artifact bucket {} deleted (nothing else was in it)",
                        bucket.name
                    ));
                } else {
                    ctx.report.notes.push(format!(
                        "artifact bucket {} kept: other stacks' objects are in it",
                        bucket.name
                    ));
                }
            }
        }
    } else {
        kept.push("the artifacts (DESTROY_ARTIFACTS=true deletes this stack's)");
    }
    if !kept.is_empty() {
        ctx.report.notes.push(format!("kept: {}", kept.join(", ")));
    }
    ctx.report.status = Some(Status::Succeeded);
    ctx.report.stack_status = Some("DELETE_COMPLETE".into());
    ctx.report.outcome = Some(Outcome::Destroyed {
        existed: found.is_some(),
    });
    Ok(())
}

async fn delete_stack(ctx: &mut Context, aws: &crate::aws::Aws, stack_id: &str) -> Result<()> {
    let name = ctx.config.stack_name.clone();
    let settled = ctx
        .delete_stack(aws, stack_id, &format!("Stack events of {name}"))
        .await;
    match settled? {
        Settled::Gone => Ok(()),
        Settled::TimedOut(status) | Settled::Running(status) => Err(timed_out(ctx, status.as_str())),
        Settled::Failed(status) | Settled::Succeeded(status) => {
            ctx.report.failed_resources = failures(&ctx.report.events);
            Err(Error::new(
                format!("deleting stack {name} ended in {}", status.as_str()),
                stack::stuck_fix(&status, &name),
            ))
        }
    }
}
