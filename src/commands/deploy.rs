//! deploy: prerequisites → secret → upload (function and prepared template) → stack
//! (one change set, executed and waited for) → function code verified → endpoint tests.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::{ChangeSetType, StackStatus};

use super::Context;
use crate::artifact::Artifact;
use crate::cfn::change_set::{self, ChangeSet, Prepared, Source};
use crate::cfn::classify::{self, Settled};
use crate::cfn::events::{Operation, failures};
use crate::cfn::guard;
use crate::cfn::request_token;
use crate::cfn::stack::{self, Plan, StackInfo};
use crate::cfn::wait::Wait;
use crate::error::{Error, Result};
use crate::lambda_code::{self, Verified};
use crate::params;
use crate::prereq::Ready;
use crate::report::{Status, Upload};
use crate::s3;
use crate::template::prepare;

pub(super) const TAG_REPOSITORY: &str = "openai-lambda-proxy:repository";
pub(super) const TAG_COMMIT: &str = "openai-lambda-proxy:commit";

/// Where the stack's code and template were uploaded.
pub(super) struct Uploaded {
    pub bucket: String,
    pub code_key: String,
    pub template_url: String,
    pub parameters: BTreeMap<String, String>,
}

pub(super) async fn run(ctx: &mut Context) -> Result<()> {
    let (ready, artifact) = ctx.prerequisites_for_change().await?;
    let secret_arn = ctx.secret_phase(&ready).await?;
    let uploaded = upload_phase(ctx, &ready, &artifact, &secret_arn).await?;

    let started = ctx.begin(&format!("Stack {}", ctx.config.stack_name));
    let result = stack_phase(ctx, &ready, &uploaded).await;
    let applied = ctx.end("stack", started, result)?;
    let applied_kind = match &applied {
        Applied::Done { kind } => Some(kind.clone()),
        _ => None,
    };
    let expected = match &ctx.config.model_mappings {
        Some(mappings) => mappings.keys().cloned().collect(),
        None => super::test::secret_model_ids(&ready.aws, &secret_arn).await?,
    };
    // For the report's client snippet, whether or not the tests run.
    ctx.report.model = expected.first().cloned();
    ctx.report.auth = Some(ctx.config.enable_authentication);
    let tests = super::guarded::Tests {
        expected,
        api: uploaded.parameters.clone(),
    };
    let no_changes = match applied {
        Applied::Serving(guard) => {
            super::guarded::finish(ctx, &ready, guard, &tests).await?;
            verify_code(ctx, &ready, &artifact, &uploaded).await?;
            ctx.report.status = Some(Status::Succeeded);
            ctx.report.headline = if ctx.config.run_endpoint_tests {
                "deployed: the new version passed its endpoint tests while CloudFormation monitored it".into()
            } else {
                "deployed: CloudFormation monitored the new version and no alarm fired".into()
            };
            return Ok(());
        }
        Applied::NoChanges => true,
        Applied::Done { .. } => false,
    };
    let created = matches!(applied_kind, Some(ChangeSetType::Create));
    verify_code(ctx, &ready, &artifact, &uploaded).await?;
    ctx.report.status = Some(if no_changes {
        Status::NoChanges
    } else {
        Status::Succeeded
    });
    ctx.report.headline = if no_changes {
        "no changes: the stack is up to date".into()
    } else {
        "deployed".into()
    };
    if !ctx.config.run_endpoint_tests {
        ctx.report
            .notes
            .push("endpoint tests not run (RUN_ENDPOINT_TESTS=false)".into());
        return Ok(());
    }
    let base = super::test::target(ctx)?;
    let tested = super::test::endpoint_phase(ctx, "endpoint tests", &base, tests.expected, &tests.api).await;
    if tested.is_err() {
        if created {
            let stack = &ctx.config.stack_name;
            ctx.report.headline =
                "created, but the endpoint tests failed: a first create has no previous version to return to"
                    .into();
            ctx.report.notes.push(format!(
                "the stack {stack} stays as created: fix the failure and deploy again, or remove it with DEPLOYER_COMMAND=destroy"
            ));
        } else if no_changes {
            ctx.report.headline = format!("{}, but the endpoint tests failed", ctx.report.headline);
        } else {
            ctx.report.headline = format!(
                "deployed, but the endpoint tests failed (ROLLBACK_WINDOW_MINUTES={}: the new version stays)",
                ctx.config.rollback_window_minutes
            );
        }
    }
    tested
}

/// The function must run the artifact just uploaded; code changed out of band is put back.
async fn verify_code(
    ctx: &mut Context,
    ready: &Ready,
    artifact: &Artifact,
    uploaded: &Uploaded,
) -> Result<()> {
    let Some(function) = ctx.report.outputs.get("FunctionName").cloned() else {
        return Ok(());
    };
    let started = ctx.begin("Verifying the function code");
    let verified = lambda_code::verify(
        &ready.aws,
        &function,
        artifact,
        &uploaded.bucket,
        &uploaded.code_key,
        ctx.poll,
        ctx.wait_timeout(),
    )
    .await;
    match ctx.end("function code", started, verified)? {
        Verified::Matches => ctx.ui.step("the function runs the uploaded artifact"),
        Verified::Updated => {
            ctx.ui.warn(
                "the function's code had been changed outside this deployer; it was updated to the artifact",
            );
            ctx.report
                .notes
                .push("the function's code had been changed out of band and was updated".into());
        }
    }
    Ok(())
}

/// What the stack phase did.
pub(super) enum Applied {
    NoChanges,
    /// Created or updated, and settled.
    Done {
        kind: ChangeSetType,
    },
    /// A guarded update: the new version serves while CloudFormation still monitors it.
    Serving(super::guarded::Guard),
}

/// The artifact bucket, the function zip and the template prepared for this deploy.
async fn upload_phase(
    ctx: &mut Context,
    ready: &Ready,
    artifact: &Artifact,
    secret_arn: &str,
) -> Result<Uploaded> {
    let started = ctx.begin("Uploading the function and the template");
    let result = upload(ctx, ready, artifact, secret_arn).await;
    ctx.end("upload", started, result)
}

async fn upload(ctx: &mut Context, ready: &Ready, artifact: &Artifact, secret_arn: &str) -> Result<Uploaded> {
    let stack = ctx.config.stack_name.clone();
    let bucket = s3::ensure(&ready.aws, ctx.config.artifact_bucket.as_deref(), &ready.account).await?;
    if bucket.created {
        ctx.ui.step(&format!(
            "created artifact bucket {} (encrypted, private, versioned, TLS only over HTTPS endpoints)",
            bucket.name
        ));
    }
    let code_key = s3::function_key(&stack, &artifact.sha256_hex);
    let uploaded = s3::put(&ready.aws, &bucket, &code_key, &artifact.zip, "application/zip").await?;
    ctx.ui.step(&format!(
        "s3://{}/{code_key}: {}",
        bucket.name,
        if uploaded {
            "uploaded"
        } else {
            "already there (same SHA-256), not uploaded again"
        }
    ));
    ctx.report.upload = Some(Upload {
        bucket: bucket.name.clone(),
        key: code_key.clone(),
        bytes: artifact.zip.len(),
        uploaded,
        architecture: artifact.architecture.as_str(),
    });
    let parameters = params::build(
        &ctx.config,
        &params::Inputs {
            secret_arn,
            bucket: &bucket.name,
            key: &code_key,
            architecture: artifact.architecture,
            manage_api_gateway_account: ready.manage_api_gateway_account,
        },
    );
    let template = ready.template.as_ref().expect("deploy loads the template");
    let prepared = prepare::prepare(template, &parameters);
    let template_url = super::store_template(&ready.aws, &bucket, &stack, &prepared).await?;
    ctx.ui.step(&format!(
        "{template_url}: the template ({} bytes)",
        prepared.body.len()
    ));
    Ok(Uploaded {
        template_url,
        bucket: bucket.name,
        code_key,
        parameters,
    })
}

async fn stack_phase(ctx: &mut Context, ready: &Ready, uploaded: &Uploaded) -> Result<Applied> {
    let stack = ctx.config.stack_name.clone();
    let (kind, previous) = settle_before_change(ctx, ready).await?;
    // Every update is guarded unless the window is 0: the rollback configuration goes
    // into the change set (ExecuteChangeSet takes none). A stack keeps the triggers it was
    // given for later operations, so an unguarded update passes an empty list.
    let window = ctx.config.rollback_window_minutes;
    let triggers = if kind == ChangeSetType::Update && window > 0 {
        let triggers = guard::triggers(&ready.aws, &stack).await?;
        if let Some(firing) = guard::already_alarming(&triggers) {
            return Err(firing);
        }
        Some(triggers)
    } else {
        None
    };
    let rollback = match (&kind, &triggers) {
        (_, Some(triggers)) => Some(guard::configuration(triggers, window)),
        (ChangeSetType::Update, None) => Some(guard::configuration(&[], 0)),
        _ => None,
    };
    let tags = tags(ctx);
    let name = change_set::unique_name("deploy");
    let request = change_set::Request {
        stack: &stack,
        name: &name,
        kind: kind.clone(),
        template: Source::Url(&uploaded.template_url),
        parameters: &uploaded.parameters,
        tags: &tags,
        rollback,
    };
    let prepared = change_set::create(&ready.aws, &request, ctx.poll, ctx.wait_timeout()).await?;
    let cs = match prepared {
        Prepared::Ready(cs) if commit_tag_only(&cs, previous.as_ref(), &tags) => {
            // A merge that changes nothing but the commit would touch every resource's
            // tags: the stack keeps the commit that last changed it.
            change_set::delete(&ready.aws, &cs.stack_id, &cs.id).await;
            None
        }
        Prepared::Ready(cs) => Some(cs),
        Prepared::NoChanges => None,
    };
    let Some(cs) = cs else {
        ctx.ui
            .step("no changes: the stack already matches the template, parameters and code");
        let info = stack::describe(&ready.aws, &stack).await?;
        finish_stack(ctx, ready, info).await?;
        return Ok(Applied::NoChanges);
    };
    describe_changes(ctx, &cs);
    let token = request_token();
    let mut op = Operation::begin(&ready.aws, &cs.stack_id, &token).await?;
    change_set::execute(&ready.aws, &cs, &token).await?;
    let executed = tokio::time::Instant::now();
    ctx.ui.group(&format!("Stack events of {stack}"));
    let guarded = triggers.is_some();
    let changes = cs.changes.clone();
    let settled = Wait {
        aws: &ready.aws,
        stack: &cs.stack_id,
        poll: ctx.poll,
        timeout: ctx.wait_timeout(),
        ui: &ctx.ui,
    }
    .until(&mut op, &mut ctx.report.events, |status, events| {
        guarded
            && *status == aws_sdk_cloudformation::types::StackStatus::UpdateInProgress
            && guard::new_version_serves(&changes, events)
    })
    .await;
    ctx.ui.end_group();
    match settled? {
        Settled::Running(_) => {
            ctx.ui
                .step("the new version serves; CloudFormation monitors it now");
            Ok(Applied::Serving(super::guarded::Guard {
                stack_id: cs.stack_id.clone(),
                op,
                window: std::time::Duration::from_secs(window * 60),
                executed,
                triggers: triggers.unwrap_or_default(),
            }))
        }
        settled => {
            ended(ctx, ready, settled).await?;
            Ok(Applied::Done {
                kind: cs.kind.clone(),
            })
        }
    }
}

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
                ctx.report.headline =
                    "rolled back: a rollback alarm fired on the new version; the previous version is serving"
                        .into();
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
                    StackStatus::UpdateRollbackComplete => "CloudFormation rolled back to the previous version, which is still serving: fix the failed resources listed in the report and deploy again".to_owned(),
                    StackStatus::RollbackComplete => "fix the failed resources listed in the report and deploy again (a failed first create is deleted and recreated automatically)".to_owned(),
                    StackStatus::UpdateRollbackFailed => guard::continue_rollback_fix(&stack, &ctx.report.failed_resources),
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

/// The change set only retags resources, and the only tag that differs is the commit.
fn commit_tag_only(cs: &ChangeSet, previous: Option<&StackInfo>, tags: &BTreeMap<String, String>) -> bool {
    let Some(previous) = previous else { return false };
    let without_commit = |t: &BTreeMap<String, String>| {
        t.iter()
            .filter(|(k, _)| *k != TAG_COMMIT)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    cs.kind == ChangeSetType::Update
        && classify::only_tags(&cs.changes)
        && without_commit(&previous.tags) == without_commit(tags)
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
    use crate::ui::Ui;

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
        let ready = Ready {
            aws: aws(&[&statuses, &deletes, &events], &[]),
            account: "123456789012".into(),
            caller_arn: String::new(),
            template: None,
            artifact: None,
            manage_api_gateway_account: None,
            bundled: Vec::new(),
        };
        let config = Config::from_vars([("STACK_NAME".to_owned(), "s".to_owned())]).unwrap();
        let mut ctx = Context::new(config, Ui::plain());
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
