//! The stack as CloudFormation describes it, what a deploy should do with it, and the
//! calls on the stack as a whole (delete, cancel, termination protection).

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::StackStatus;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::aws::{self, Aws};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct StackInfo {
    pub id: String,
    pub status: StackStatus,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub termination_protection: bool,
}

impl StackInfo {
    /// A stack in `status`, for tests.
    pub fn with_status(status: StackStatus) -> Self {
        Self {
            id: String::new(),
            status,
            outputs: BTreeMap::new(),
            parameters: BTreeMap::new(),
            tags: BTreeMap::new(),
            termination_protection: false,
        }
    }
}

/// What a deploy does with the stack as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Create,
    Update,
    /// ROLLBACK_COMPLETE: a failed first create, which can only be deleted.
    RecreateAfterFailedCreate,
    /// Another operation is running: wait for it, then look again.
    WaitForOther(StackStatus),
    /// A state only a person should resolve.
    Stuck(StackStatus),
}

pub fn plan(found: Option<&StackInfo>) -> Plan {
    let Some(info) = found else { return Plan::Create };
    match &info.status {
        // A stack that only holds a CREATE change set has never been created.
        StackStatus::ReviewInProgress => Plan::Create,
        StackStatus::RollbackComplete => Plan::RecreateAfterFailedCreate,
        StackStatus::UpdateRollbackFailed
        | StackStatus::RollbackFailed
        | StackStatus::DeleteFailed
        | StackStatus::ImportRollbackFailed
        | StackStatus::CreateFailed
        | StackStatus::UpdateFailed => Plan::Stuck(info.status.clone()),
        s if in_progress(s) => Plan::WaitForOther(s.clone()),
        _ => Plan::Update,
    }
}

/// An operation is running (REVIEW_IN_PROGRESS is none: it waits for a change set).
pub fn in_progress(status: &StackStatus) -> bool {
    status.as_str().ends_with("_IN_PROGRESS") && *status != StackStatus::ReviewInProgress
}

/// What to do about a stack that a deploy left failed, or that no deploy can change, by
/// its status.
pub fn stuck_fix(status: &StackStatus, stack: &str) -> String {
    match status {
        StackStatus::UpdateRollbackComplete => "CloudFormation rolled back to the previous version, which is still serving: fix the failed resources listed in the report and deploy again".to_owned(),
        StackStatus::RollbackComplete => "fix the failed resources listed in the report and deploy again (a failed first create is deleted and recreated automatically)".to_owned(),
        StackStatus::UpdateRollbackFailed => format!(
            "CloudFormation could not roll the update back: fix what the failed resources' reasons name, then run `aws cloudformation continue-update-rollback --stack-name {stack}` (add `--resources-to-skip` with the resources that cannot roll back), and deploy again once the stack is UPDATE_ROLLBACK_COMPLETE"
        ),
        StackStatus::DeleteFailed => format!(
            "the deletion left resources behind: delete the failed resources named in the events by hand (or keep them with `aws cloudformation delete-stack --stack-name {stack} --retain-resources ...`), then run destroy again; deploy refuses a stack in DELETE_FAILED"
        ),
        StackStatus::RollbackFailed => format!(
            "the failed create could not be rolled back: delete the stack (`aws cloudformation delete-stack --stack-name {stack}`, retaining what cannot be deleted), then deploy again"
        ),
        other => format!(
            "the stack is in {}: inspect it in the CloudFormation console, delete it (`aws cloudformation delete-stack --stack-name {stack}`), and deploy again",
            other.as_str()
        ),
    }
}

/// The stack by name or id; None when it does not exist (or was deleted).
pub async fn describe(aws: &Aws, stack: &str) -> Result<Option<StackInfo>> {
    let out = match aws
        .cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if is_missing_stack(&e) => return Ok(None),
        Err(e) => return Err(Error::aws(format_args!("describe stack {stack}"), &e)),
    };
    let Some(s) = out.stacks().first() else {
        return Ok(None);
    };
    let Some(status) = s.stack_status().cloned() else {
        return Ok(None);
    };
    if status == StackStatus::DeleteComplete {
        return Ok(None);
    }
    fn pairs<'a>(
        items: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>,
    ) -> BTreeMap<String, String> {
        items
            .filter_map(|(k, v)| Some((k?.to_owned(), v.unwrap_or_default().to_owned())))
            .collect()
    }
    Ok(Some(StackInfo {
        id: s.stack_id().unwrap_or(stack).to_owned(),
        status,
        outputs: pairs(s.outputs().iter().map(|o| (o.output_key(), o.output_value()))),
        parameters: pairs(
            s.parameters()
                .iter()
                .map(|p| (p.parameter_key(), p.parameter_value())),
        ),
        tags: pairs(s.tags().iter().map(|t| (t.key(), t.value()))),
        termination_protection: s.enable_termination_protection().unwrap_or(false),
    }))
}

/// CloudFormation has no typed "not found": a missing stack is a ValidationError.
pub fn is_missing_stack<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    aws::error_code(err) == Some("ValidationError")
        && aws::error_message(err).is_some_and(|m| m.contains("does not exist"))
}

pub async fn delete(aws: &Aws, stack: &str, token: &str) -> Result<()> {
    aws.cloudformation
        .delete_stack()
        .stack_name(stack)
        .client_request_token(token)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| Error::aws(format_args!("delete stack {stack}"), &e))
}

pub async fn protect(aws: &Aws, stack: &str) -> Result<()> {
    aws.cloudformation
        .update_termination_protection()
        .stack_name(stack)
        .enable_termination_protection(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            Error::aws(
                format_args!("turn on termination protection of stack {stack}"),
                &e,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(status: StackStatus) -> StackInfo {
        StackInfo::with_status(status)
    }

    #[test]
    fn the_plan_follows_the_stack_status() {
        assert_eq!(plan(None), Plan::Create);
        assert_eq!(plan(Some(&info(StackStatus::ReviewInProgress))), Plan::Create);
        assert_eq!(
            plan(Some(&info(StackStatus::RollbackComplete))),
            Plan::RecreateAfterFailedCreate
        );
        assert_eq!(plan(Some(&info(StackStatus::UpdateComplete))), Plan::Update);
        assert_eq!(
            plan(Some(&info(StackStatus::UpdateRollbackComplete))),
            Plan::Update
        );
        assert_eq!(
            plan(Some(&info(StackStatus::UpdateCompleteCleanupInProgress))),
            Plan::WaitForOther(StackStatus::UpdateCompleteCleanupInProgress)
        );
        assert_eq!(
            plan(Some(&info(StackStatus::UpdateRollbackFailed))),
            Plan::Stuck(StackStatus::UpdateRollbackFailed)
        );
    }

    #[test]
    fn the_delete_failed_fix_says_deploy_refuses_it_as_deploy_does() {
        let fix = stuck_fix(&StackStatus::DeleteFailed, "s");
        assert!(fix.contains("deploy refuses a stack in DELETE_FAILED"), "{fix}");
        assert_eq!(
            plan(Some(&info(StackStatus::DeleteFailed))),
            Plan::Stuck(StackStatus::DeleteFailed)
        );
    }

    mod mocked {
        use aws_sdk_cloudformation::Client;
        use aws_smithy_mocks::mock;

        use super::super::*;
        use crate::aws::mocked::{aws, query_error};

        #[tokio::test]
        async fn a_missing_stack_is_none_and_a_denied_read_names_the_permission_fix() {
            let missing = mock!(Client::describe_stacks).then_http_response(|| {
                query_error(400, "ValidationError", "Stack with id nope does not exist")
            });
            assert!(describe(&aws(&[&missing], &[]), "nope").await.unwrap().is_none());
            let denied = mock!(Client::describe_stacks).then_http_response(|| {
                query_error(
                    403,
                    "AccessDenied",
                    "not authorized to perform cloudformation:DescribeStacks",
                )
            });
            let err = describe(&aws(&[&denied], &[]), "s").await.unwrap_err();
            assert!(err.cause.contains("AccessDenied: not authorized"), "{err}");
            assert!(err.fix.contains("docs/iam-policy.json"), "{err}");
        }
    }
}
