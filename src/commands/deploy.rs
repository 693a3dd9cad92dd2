//! deploy: prerequisites → secret → upload (function and prepared template) → stack
//! (one change set, executed and waited for) → function code verified → endpoint tests.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::ChangeSetType;

use super::Context;
use super::stack_op::{TAG_COMMIT, describe_changes, ended, finish_stack, settle_before_change, tags};
use crate::artifact::Artifact;
use crate::cfn::change_set::{self, ChangeSet, Prepared, Source};
use crate::cfn::classify::{self, Settled};
use crate::cfn::events::Operation;
use crate::cfn::guard;
use crate::cfn::request_token;
use crate::cfn::stack::{self, StackInfo};
use crate::cfn::wait::Wait;
use crate::error::Result;
use crate::lambda_code::{self, Verified};
use crate::prereq::Ready;
use crate::report::{Outcome, Status, Upload};
use crate::s3;

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
    let uploaded = upload_phase(ctx, &ready, &artifact, &secret_arn).await;
    let uploaded = ctx.secret_back_on_failure(&ready, uploaded).await?;

    let started = ctx.begin(&format!("Stack {}", ctx.config.stack_name));
    let result = stack_phase(ctx, &ready, &uploaded).await;
    let applied = ctx.end("stack", started, result);
    let applied = ctx.secret_back_on_failure(&ready, applied).await?;
    if !matches!(applied, Applied::Serving(_)) {
        // Unchanged, or changed with no window to roll back in: the secret stays.
        ctx.secret_kept();
    }
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
            // A failed test or a fired alarm rolls the stack back, and the secret goes
            // back with it: guarded::roll_back puts it back before testing the previous
            // version again; after CloudFormation's own rollback, secret_back_on_failure.
            let finished = super::guarded::finish(ctx, &ready, guard, &tests).await;
            ctx.secret_back_on_failure(&ready, finished).await?;
            ctx.secret_kept();
            verify_code(ctx, &ready, &artifact, &uploaded).await?;
            ctx.report.status = Some(Status::Succeeded);
            ctx.report.outcome = Some(Outcome::DeployedGuarded {
                tested: ctx.config.run_endpoint_tests,
            });
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
    ctx.report.outcome = Some(if no_changes {
        Outcome::NoChanges
    } else {
        Outcome::Deployed
    });
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
            ctx.report.outcome = Some(Outcome::CreatedButTestsFailed);
            ctx.report.notes.push(format!(
                "the stack {stack} stays as created: fix the failure and deploy again, or remove it with DEPLOYER_COMMAND=destroy"
            ));
        } else if no_changes {
            ctx.report.outcome = Some(Outcome::NoChangesButTestsFailed);
        } else {
            ctx.report.outcome = Some(Outcome::DeployedButTestsFailed {
                window_minutes: ctx.config.rollback_window_minutes,
            });
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
    let submission = ctx.submission(ready, artifact, secret_arn, &bucket.name);
    let code_key = submission.code_key;
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
    let (parameters, prepared) = (submission.parameters, submission.template);
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
        if let Some(blind) = guard::sight(&triggers, window).warning {
            ctx.ui.warn(&blind);
            ctx.report.notes.push(format!("⚠️ {blind}"));
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
    // From here the new version may come to serve: the secret stays with it unless the
    // change is known to be rolled back.
    ctx.change_executing();
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
