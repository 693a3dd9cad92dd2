//! Change sets: created (from a template in S3 or, for validate before any upload,
//! inline), computed, described, executed or deleted.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, EventType, Parameter, RollbackConfiguration, Tag,
    ValidationStatus,
};
use tokio::time::Instant;

use crate::aws::Aws;
use crate::cfn::Poll;
use crate::cfn::classify::{ResourceChange, means_no_changes};
use crate::error::{Error, Result};

/// Where CloudFormation reads the template.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// An `https://` URL of the prepared template in the artifact bucket.
    Url(&'a str),
    /// The template itself (at most 51,200 bytes).
    Body(&'a str),
}

pub struct Request<'a> {
    pub stack: &'a str,
    pub name: &'a str,
    pub kind: ChangeSetType,
    pub template: Source<'a>,
    pub parameters: &'a BTreeMap<String, String>,
    pub tags: &'a BTreeMap<String, String>,
    pub rollback: Option<RollbackConfiguration>,
}

#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub name: String,
    pub id: String,
    /// The stack's id: for a CREATE change set, the stack it made in REVIEW_IN_PROGRESS.
    pub stack_id: String,
    pub kind: ChangeSetType,
    pub changes: Vec<ResourceChange>,
}

#[derive(Debug, Clone)]
pub enum Prepared {
    /// CloudFormation found nothing to change; the change set is deleted.
    NoChanges,
    Ready(ChangeSet),
}

/// A change set name unique even for runs in the same second (the local emulator looks
/// change sets up by name across stacks).
pub fn unique_name(command: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("openai-proxy-{command}-{}", &id[..16])
}

/// Creates a change set and waits until CloudFormation has computed it (at most
/// `timeout`). Only a FAILED change set whose reason says it holds no changes is
/// [`Prepared::NoChanges`].
pub async fn create(aws: &Aws, req: &Request<'_>, poll: Poll, timeout: Duration) -> Result<Prepared> {
    let stack = req.stack;
    let mut call = aws
        .cloudformation
        .create_change_set()
        .stack_name(stack)
        .change_set_name(req.name)
        .change_set_type(req.kind.clone())
        .description("created by openai-proxy-deployer")
        .set_parameters(Some(
            req.parameters
                .iter()
                .map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build())
                .collect(),
        ))
        .set_capabilities(Some(vec![
            Capability::CapabilityIam,
            Capability::CapabilityNamedIam,
            Capability::CapabilityAutoExpand,
        ]))
        .set_tags(Some(
            req.tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .set_rollback_configuration(req.rollback.clone());
    call = match req.template {
        Source::Url(url) => call.template_url(url),
        Source::Body(body) => call.template_body(body),
    };
    let created = call
        .send()
        .await
        .map_err(|e| Error::aws(format_args!("create a change set for stack {stack}"), &e))?;
    let id = created.id().unwrap_or(req.name).to_owned();
    let stack_id = created.stack_id().unwrap_or(stack).to_owned();
    let deadline = Instant::now() + timeout;
    let mut wait = poll.first;
    loop {
        let described = aws
            .cloudformation
            .describe_change_set()
            .stack_name(&stack_id)
            .change_set_name(&id)
            .send()
            .await
            .map_err(|e| Error::aws(format_args!("describe change set {}", req.name), &e))?;
        match described.status() {
            Some(ChangeSetStatus::CreateComplete) => break,
            Some(ChangeSetStatus::Failed) => {
                let reason = described.status_reason().unwrap_or("no reason given").to_owned();
                // Read before the change set is deleted: its events go with it.
                let failed = if is_early_validation(&reason) {
                    failed_validations(aws, &stack_id, &id).await
                } else {
                    Vec::new()
                };
                delete(aws, &stack_id, &id).await;
                if means_no_changes(&reason) {
                    return Ok(Prepared::NoChanges);
                }
                if !failed.is_empty() {
                    return Err(Error::new(
                        format!(
                            "CloudFormation's early validation refused the change set for stack {stack}: {}",
                            failed.join("; ")
                        ),
                        "fix the resource named above: for ResourceExistenceCheck, a resource of that name already exists outside the stack; delete it if it can go, import it into the stack, or give the stack's resource another name (LAMBDA_FUNCTION_NAME, API_GATEWAY_NAME, STACK_NAME), then run again",
                    ));
                }
                return Err(Error::new(
                    format!("CloudFormation refused the change set for stack {stack}: {reason}"),
                    "fix what the reason names in the template or the parameters, then run again",
                ));
            }
            _ => {}
        }
        if Instant::now() + wait > deadline {
            delete(aws, &stack_id, &id).await;
            return Err(Error::new(
                format!(
                    "gave up waiting for change set {} of stack {stack} to be computed",
                    req.name
                ),
                "raise WAIT_TIMEOUT, or look at the change set in the CloudFormation console",
            ));
        }
        tokio::time::sleep(wait).await;
        wait = poll.next(wait);
    }
    Ok(Prepared::Ready(ChangeSet {
        name: req.name.to_owned(),
        changes: all_changes(aws, &stack_id, &id, req.name).await?,
        id,
        stack_id,
        kind: req.kind.clone(),
    }))
}

/// A change set refused by CloudFormation's early validations (or hooks), whose
/// reason names no resource: "The following hook(s)/validation failed:
/// [AWS::EarlyValidation::ResourceExistenceCheck]".
fn is_early_validation(reason: &str) -> bool {
    reason.contains("hook(s)/validation failed") || reason.contains("AWS::EarlyValidation::")
}

/// What DescribeEvents says failed validation for change set `id`: each failed
/// resource with the validation's name and reason. Empty when the events cannot be read
/// (the caller then reports CloudFormation's own reason).
async fn failed_validations(aws: &Aws, stack_id: &str, id: &str) -> Vec<String> {
    let Ok(out) = aws
        .cloudformation
        .describe_events()
        .stack_name(stack_id)
        .change_set_name(id)
        .send()
        .await
    else {
        return Vec::new();
    };
    out.operation_events()
        .iter()
        .filter(|e| {
            e.validation_status() == Some(&ValidationStatus::Failed)
                || e.event_type() == Some(&EventType::ValidationError)
        })
        .map(|e| {
            format!(
                "{} ({}) failed {}: {}",
                e.logical_resource_id().unwrap_or("a resource"),
                e.resource_type().unwrap_or("unknown type"),
                e.validation_name().unwrap_or("a validation"),
                e.validation_status_reason()
                    .or(e.resource_status_reason())
                    .unwrap_or("no reason given")
            )
        })
        .collect()
}

async fn all_changes(aws: &Aws, stack_id: &str, id: &str, name: &str) -> Result<Vec<ResourceChange>> {
    let mut changes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = aws
            .cloudformation
            .describe_change_set()
            .stack_name(stack_id)
            .change_set_name(id)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| Error::aws(format_args!("describe change set {name}"), &e))?;
        changes.extend(
            page.changes()
                .iter()
                .filter_map(|c| c.resource_change())
                .filter_map(|rc| {
                    Some(ResourceChange {
                        action: rc.action()?.clone(),
                        logical_id: rc.logical_resource_id().unwrap_or_default().to_owned(),
                        resource_type: rc.resource_type().unwrap_or_default().to_owned(),
                        replacement: rc.replacement().cloned(),
                        scope: rc.scope().to_vec(),
                    })
                }),
        );
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return Ok(changes),
        }
    }
}

/// Best effort: a leftover change set costs nothing and is listed in the console.
pub async fn delete(aws: &Aws, stack: &str, id: &str) {
    let _ = aws
        .cloudformation
        .delete_change_set()
        .stack_name(stack)
        .change_set_name(id)
        .send()
        .await;
}

pub async fn execute(aws: &Aws, cs: &ChangeSet, token: &str) -> Result<()> {
    aws.cloudformation
        .execute_change_set()
        .stack_name(&cs.stack_id)
        .change_set_name(&cs.id)
        .client_request_token(token)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| Error::aws(format_args!("execute change set {}", cs.name), &e))
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::Client;
    use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
    use aws_sdk_cloudformation::operation::delete_change_set::DeleteChangeSetOutput;
    use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
    use aws_smithy_mocks::{Rule, mock};

    use super::*;
    use crate::aws::mocked::aws;

    fn request(params: &BTreeMap<String, String>) -> Request<'_> {
        Request {
            stack: "s",
            name: "cs",
            kind: ChangeSetType::Update,
            template: Source::Body("{}"),
            parameters: params,
            tags: params,
            rollback: None,
        }
    }

    fn created() -> Rule {
        mock!(Client::create_change_set).then_output(|| {
            CreateChangeSetOutput::builder()
                .id("arn:cs")
                .stack_id("arn:stack/s")
                .build()
        })
    }

    fn deleted() -> Rule {
        mock!(Client::delete_change_set).then_output(|| DeleteChangeSetOutput::builder().build())
    }

    async fn prepare(described: &Rule) -> (Result<Prepared>, usize) {
        let (created, deleted) = (created(), deleted());
        let aws = aws(&[&created, described, &deleted], &[]);
        let params = BTreeMap::new();
        let prepared = create(&aws, &request(&params), Poll::fast(), Duration::from_secs(5)).await;
        (prepared, deleted.num_calls())
    }

    #[tokio::test]
    async fn a_failed_change_set_that_says_it_holds_no_changes_is_a_no_op_and_is_deleted() {
        let described = mock!(Client::describe_change_set).then_output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::Failed)
                .status_reason("The submitted information didn't contain changes. Submit different information to create a change set.")
                .build()
        });
        let (prepared, deletes) = prepare(&described).await;
        assert!(matches!(prepared, Ok(Prepared::NoChanges)), "{prepared:?}");
        assert_eq!(deletes, 1, "the empty change set was left behind");
    }

    #[tokio::test]
    async fn a_computed_change_set_without_resource_changes_is_executed_not_skipped() {
        // AWS's answer when only outputs (or parameters no resource uses) change.
        let described = mock!(Client::describe_change_set).then_output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateComplete)
                .build()
        });
        let (prepared, deletes) = prepare(&described).await;
        match prepared {
            Ok(Prepared::Ready(cs)) => {
                assert!(cs.changes.is_empty());
                assert_eq!(cs.stack_id, "arn:stack/s");
            }
            other => panic!("expected a change set to execute, got {other:?}"),
        }
        assert_eq!(deletes, 0);
    }

    #[tokio::test]
    async fn any_other_failure_is_an_error_with_cloudformations_reason() {
        let described = mock!(Client::describe_change_set).then_output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::Failed)
                .status_reason("Template error: instance of Fn::GetAtt references undefined resource Nope")
                .build()
        });
        let (prepared, deletes) = prepare(&described).await;
        let err = prepared.unwrap_err();
        assert!(err.cause.contains("undefined resource Nope"), "{err}");
        assert_eq!(deletes, 1);
    }

    #[tokio::test]
    async fn an_early_validation_failure_names_the_resource_from_describe_events() {
        use aws_sdk_cloudformation::operation::describe_events::DescribeEventsOutput;
        use aws_sdk_cloudformation::types::OperationEvent;
        let described = mock!(Client::describe_change_set).then_output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::Failed)
                .status_reason("The following hook(s)/validation failed: [AWS::EarlyValidation::ResourceExistenceCheck]. To troubleshoot Early Validation errors, use the DescribeEvents API for detailed failure information.")
                .build()
        });
        // DescribeEvents' answer for a change set that failed early validation (the API
        // reference's OperationEvent fields).
        let events = mock!(Client::describe_events).then_output(|| {
            DescribeEventsOutput::builder()
                .operation_events(
                    OperationEvent::builder()
                        .event_type(EventType::ValidationError)
                        .logical_resource_id("FunctionLogGroup")
                        .resource_type("AWS::Logs::LogGroup")
                        .validation_name("ResourceExistenceCheck")
                        .validation_status(ValidationStatus::Failed)
                        .validation_status_reason("Resource of type 'AWS::Logs::LogGroup' with identifier '/aws/lambda/s' already exists.")
                        .build(),
                )
                .build()
        });
        let (created, deleted) = (created(), deleted());
        let aws = aws(&[&created, &described, &events, &deleted], &[]);
        let params = BTreeMap::new();
        let err = create(&aws, &request(&params), Poll::fast(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            err.cause.contains(
                "FunctionLogGroup (AWS::Logs::LogGroup) failed ResourceExistenceCheck: Resource of type 'AWS::Logs::LogGroup' with identifier '/aws/lambda/s' already exists."
            ),
            "{err}"
        );
        assert!(err.fix.contains("already exists outside the stack"), "{err}");
        assert_eq!(events.num_calls(), 1);
        assert_eq!(deleted.num_calls(), 1);
    }
}
