//! The CloudFormation stack: change sets (and every way AWS says "no changes"), waiting
//! with live events, failure gathering, and deletion.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, StackStatus, Tag,
};
use aws_smithy_types::DateTime;
use tokio::time::Instant;

use crate::aws::{self, Aws};
use crate::ui::Ui;

#[derive(Debug, Clone, Default)]
pub struct StackInfo {
    pub status: String,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub termination_protection: bool,
}

/// What to do with the stack as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Create,
    Update,
    /// ROLLBACK_COMPLETE: a failed first create that can only be deleted.
    RecreateAfterFailedCreate,
    /// Another operation is running: wait for it, then look again.
    WaitForOther(String),
    /// A state only a human should resolve.
    Stuck(String),
}

pub fn plan(found: Option<&StackInfo>) -> Plan {
    let Some(info) = found else { return Plan::Create };
    match info.status.as_str() {
        "REVIEW_IN_PROGRESS" => Plan::Create,
        "ROLLBACK_COMPLETE" => Plan::RecreateAfterFailedCreate,
        "UPDATE_ROLLBACK_FAILED" | "ROLLBACK_FAILED" | "DELETE_FAILED" | "IMPORT_ROLLBACK_FAILED" => {
            Plan::Stuck(info.status.clone())
        }
        s if s.ends_with("_IN_PROGRESS") => Plan::WaitForOther(s.to_owned()),
        _ => Plan::Update,
    }
}

pub fn stuck_fix(status: &str) -> String {
    match status {
        "UPDATE_ROLLBACK_FAILED" => "run `aws cloudformation continue-update-rollback --stack-name <stack>` (skipping the resources that cannot roll back), then deploy again".into(),
        "DELETE_FAILED" => "delete the resources named in the events by hand, then run destroy again (or deploy, which recreates the stack after deletion)".into(),
        _ => format!("the stack is in {status}: inspect it in the CloudFormation console, delete it, and deploy again"),
    }
}

/// None when the stack does not exist.
pub async fn describe(aws: &Aws, stack: &str) -> Result<Option<StackInfo>, String> {
    let out = match aws
        .cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if is_missing_stack(&e) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "could not describe stack {stack} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again",
                aws::describe(&e)
            ));
        }
    };
    let Some(s) = out.stacks().first() else {
        return Ok(None);
    };
    let pairs = |items: Vec<(Option<&str>, Option<&str>)>| {
        items
            .into_iter()
            .filter_map(|(k, v)| Some((k?.to_owned(), v.unwrap_or_default().to_owned())))
            .collect::<BTreeMap<_, _>>()
    };
    let status = s
        .stack_status()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    if status == "DELETE_COMPLETE" {
        return Ok(None);
    }
    Ok(Some(StackInfo {
        status,
        outputs: pairs(
            s.outputs()
                .iter()
                .map(|o| (o.output_key(), o.output_value()))
                .collect(),
        ),
        parameters: pairs(
            s.parameters()
                .iter()
                .map(|p| (p.parameter_key(), p.parameter_value()))
                .collect(),
        ),
        tags: pairs(s.tags().iter().map(|t| (t.key(), t.value())).collect()),
        termination_protection: s.enable_termination_protection().unwrap_or(false),
    }))
}

/// CloudFormation has no typed "not found": a missing stack is a ValidationError.
fn is_missing_stack<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    aws::error_code(err) == Some("ValidationError")
        && aws::error_message(err).is_some_and(|m| m.contains("does not exist"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceChange {
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// "True", "False" or "Conditional" for modifications.
    pub replacement: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSummary {
    pub adds: usize,
    pub modifies: usize,
    pub removes: usize,
    /// Logical ids of resources that will (or may) be replaced.
    pub replacements: Vec<String>,
}

pub fn summarize(changes: &[ResourceChange]) -> ChangeSummary {
    let count = |action: &str| changes.iter().filter(|c| c.action == action).count();
    ChangeSummary {
        adds: count("Add"),
        modifies: count("Modify"),
        removes: count("Remove"),
        replacements: changes
            .iter()
            .filter(|c| matches!(c.replacement.as_deref(), Some("True" | "Conditional")))
            .map(|c| c.logical_id.clone())
            .collect(),
    }
}

#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub name: String,
    pub kind: ChangeSetType,
    pub changes: Vec<ResourceChange>,
}

#[derive(Debug, Clone)]
pub enum Prepared {
    NoChanges,
    Ready(ChangeSet),
}

/// Does this text mean "the change set is empty"? AWS says it two ways, at creation
/// ("No updates are to be performed") or in a FAILED change set's reason.
pub fn means_no_changes(text: &str) -> bool {
    text.contains("didn't contain changes") || text.contains("No updates are to be performed")
}

/// How often to poll; tests shorten it.
#[derive(Debug, Clone, Copy)]
pub struct Poll {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Poll {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(5),
        }
    }
}

impl Poll {
    pub fn next(&self, current: Duration) -> Duration {
        (current * 3 / 2).min(self.max)
    }
}

pub struct Request<'a> {
    pub stack: &'a str,
    pub kind: ChangeSetType,
    pub template_body: &'a str,
    pub parameters: &'a BTreeMap<String, String>,
    pub tags: &'a BTreeMap<String, String>,
    pub name: &'a str,
}

/// Creates a change set and waits until CloudFormation has computed it. An empty one is
/// deleted and reported as [`Prepared::NoChanges`].
pub async fn create_change_set(
    aws: &Aws,
    req: &Request<'_>,
    poll: Poll,
    deadline: Instant,
) -> Result<Prepared, String> {
    let stack = req.stack;
    let created = aws
        .cloudformation
        .create_change_set()
        .stack_name(stack)
        .change_set_name(req.name)
        .change_set_type(req.kind.clone())
        .template_body(req.template_body)
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
        .send()
        .await;
    if let Err(e) = created {
        if aws::error_message(&e).is_some_and(means_no_changes) {
            return Ok(Prepared::NoChanges);
        }
        return Err(format!(
            "could not create a change set for stack {stack} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again",
            aws::describe(&e)
        ));
    }
    let mut wait = poll.first;
    loop {
        let described = aws
            .cloudformation
            .describe_change_set()
            .stack_name(stack)
            .change_set_name(req.name)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "could not describe change set {} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again",
                    req.name,
                    aws::describe(&e)
                )
            })?;
        match described.status() {
            Some(ChangeSetStatus::CreateComplete) => break,
            Some(ChangeSetStatus::Failed) => {
                let reason = described.status_reason().unwrap_or("no reason given").to_owned();
                delete_change_set(aws, stack, req.name).await;
                if means_no_changes(&reason) {
                    return Ok(Prepared::NoChanges);
                }
                return Err(format!(
                    "CloudFormation refused the change set for stack {stack}: {reason}"
                ));
            }
            _ => {}
        }
        if Instant::now() + wait > deadline {
            delete_change_set(aws, stack, req.name).await;
            return Err(format!(
                "gave up waiting for change set {} of stack {stack} to be computed: raise WAIT_TIMEOUT, or look at it in the CloudFormation console",
                req.name
            ));
        }
        tokio::time::sleep(wait).await;
        wait = poll.next(wait);
    }
    let changes = all_changes(aws, stack, req.name).await?;
    if changes.is_empty() {
        delete_change_set(aws, stack, req.name).await;
        return Ok(Prepared::NoChanges);
    }
    Ok(Prepared::Ready(ChangeSet {
        name: req.name.to_owned(),
        kind: req.kind.clone(),
        changes,
    }))
}

async fn all_changes(aws: &Aws, stack: &str, name: &str) -> Result<Vec<ResourceChange>, String> {
    let mut changes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = aws
            .cloudformation
            .describe_change_set()
            .stack_name(stack)
            .change_set_name(name)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| format!("could not describe change set {name} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again", aws::describe(&e)))?;
        changes.extend(
            page.changes()
                .iter()
                .filter_map(|c| c.resource_change())
                .map(|rc| ResourceChange {
                    action: rc.action().map(|a| a.as_str().to_owned()).unwrap_or_default(),
                    logical_id: rc.logical_resource_id().unwrap_or_default().to_owned(),
                    resource_type: rc.resource_type().unwrap_or_default().to_owned(),
                    replacement: rc.replacement().map(|r| r.as_str().to_owned()),
                }),
        );
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return Ok(changes),
        }
    }
}

/// Best effort: a leftover change set costs nothing and is listed in the console.
pub async fn delete_change_set(aws: &Aws, stack: &str, name: &str) {
    let _ = aws
        .cloudformation
        .delete_change_set()
        .stack_name(stack)
        .change_set_name(name)
        .send()
        .await;
}

pub async fn execute(aws: &Aws, stack: &str, name: &str) -> Result<(), String> {
    aws.cloudformation
        .execute_change_set()
        .stack_name(stack)
        .change_set_name(name)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "could not execute change set {name} of stack {stack} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again",
                aws::describe(&e)
            )
        })
}

pub async fn delete_stack(aws: &Aws, stack: &str) -> Result<(), String> {
    aws.cloudformation
        .delete_stack()
        .stack_name(stack)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("could not delete stack {stack} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again", aws::describe(&e)))
}

pub async fn protect(aws: &Aws, stack: &str) -> Result<(), String> {
    aws.cloudformation
        .update_termination_protection()
        .stack_name(stack)
        .enable_termination_protection(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "could not turn on termination protection of stack {stack} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again",
                aws::describe(&e)
            )
        })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub time: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

impl Event {
    pub fn line(&self) -> String {
        let mut line = format!(
            "{}  {:<28} {:<34} {}",
            self.time, self.status, self.resource_type, self.logical_id
        );
        if !self.reason.is_empty() {
            line.push_str(&format!(": {}", self.reason));
        }
        line
    }

    pub fn failed(&self) -> bool {
        self.status.ends_with("_FAILED")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Succeeded(String),
    /// Ended in a failure or rollback state.
    Failed(String),
    /// The stack is gone (after a delete).
    Gone,
    /// The wait timed out; the operation goes on in CloudFormation.
    TimedOut(String),
}

/// How long the wait may stay silent before it says the stack is still working.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// Streams new stack events (once each) until the stack settles or `deadline` passes.
/// Events are printed and appended to `events`; only those at or after `since` count.
pub async fn wait(
    aws: &Aws,
    stack: &str,
    since: DateTime,
    poll: Poll,
    deadline: Instant,
    ui: &Ui,
    events: &mut Vec<Event>,
) -> Result<Settled, String> {
    let mut seen: HashSet<String> = events.iter().map(|e| e.id.clone()).collect();
    let mut interval = poll.first;
    let started = Instant::now();
    // Quiet stretches (a VPC function's network interfaces, a slow replacement) still
    // show progress.
    let mut last_output = started;
    loop {
        // Events first, so the ones that explain a final status are printed before it.
        for event in new_events(aws, stack, since, &mut seen).await? {
            ui.step(&event.line());
            events.push(event);
            last_output = Instant::now();
        }
        let status = match aws
            .cloudformation
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
        {
            Ok(out) => out
                .stacks()
                .first()
                .and_then(|s| s.stack_status())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            Err(e) if is_missing_stack(&e) => return Ok(Settled::Gone),
            Err(e) => {
                return Err(format!(
                    "could not read the status of stack {stack} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again",
                    aws::describe(&e)
                ));
            }
        };
        if let Some(settled) = classify(&status) {
            // One last look, so no event of the final moments is missed.
            for event in new_events(aws, stack, since, &mut seen).await? {
                ui.step(&event.line());
                events.push(event);
            }
            return Ok(settled);
        }
        if Instant::now() + interval > deadline {
            return Ok(Settled::TimedOut(status));
        }
        if last_output.elapsed() >= HEARTBEAT {
            ui.step(&format!(
                "… still {status} after {} s",
                started.elapsed().as_secs()
            ));
            last_output = Instant::now();
        }
        tokio::time::sleep(interval).await;
        interval = poll.next(interval);
    }
}

/// Terminal statuses, or None while something is in progress.
pub fn classify(status: &str) -> Option<Settled> {
    let status_enum = StackStatus::from(status);
    match status_enum {
        StackStatus::CreateComplete | StackStatus::UpdateComplete | StackStatus::ImportComplete => {
            Some(Settled::Succeeded(status.to_owned()))
        }
        StackStatus::DeleteComplete => Some(Settled::Gone),
        _ if status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS" => None,
        _ => Some(Settled::Failed(status.to_owned())),
    }
}

async fn new_events(
    aws: &Aws,
    stack: &str,
    since: DateTime,
    seen: &mut HashSet<String>,
) -> Result<Vec<Event>, String> {
    let mut fresh = Vec::new();
    let mut token: Option<String> = None;
    // Newest first; stop at the first page that reaches known or older events.
    for _ in 0..5 {
        let page = match aws
            .cloudformation
            .describe_stack_events()
            .stack_name(stack)
            .set_next_token(token.take())
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) if is_missing_stack(&e) => break,
            Err(e) => {
                return Err(format!(
                    "could not read the events of stack {stack} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again",
                    aws::describe(&e)
                ));
            }
        };
        let mut reached_old = false;
        for e in page.stack_events() {
            let Some(id) = e.event_id() else { continue };
            let time = e.timestamp().copied().unwrap_or(since);
            if time.secs() < since.secs() || seen.contains(id) {
                reached_old = true;
                continue;
            }
            seen.insert(id.to_owned());
            fresh.push(Event {
                id: id.to_owned(),
                time: clock(time),
                logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
                resource_type: e.resource_type().unwrap_or_default().to_owned(),
                status: e
                    .resource_status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                reason: e.resource_status_reason().unwrap_or_default().to_owned(),
            });
        }
        match page.next_token() {
            Some(next) if !reached_old && !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }
    fresh.reverse();
    Ok(fresh)
}

/// HH:MM:SS in UTC.
fn clock(time: DateTime) -> String {
    let secs = time.secs().rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The failed resources of this operation, with their reasons: the first cause first,
/// and CloudFormation's "cancelled" follow-ups after the real errors.
pub fn failures(events: &[Event]) -> Vec<Event> {
    let (mut real, cancelled): (Vec<Event>, Vec<Event>) = events
        .iter()
        .filter(|e| e.failed())
        .cloned()
        .partition(|e| !e.reason.contains("cancelled"));
    real.extend(cancelled);
    real
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(status: &str) -> StackInfo {
        StackInfo {
            status: status.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_plan_follows_the_stack_status() {
        assert_eq!(plan(None), Plan::Create);
        assert_eq!(plan(Some(&info("REVIEW_IN_PROGRESS"))), Plan::Create);
        assert_eq!(
            plan(Some(&info("ROLLBACK_COMPLETE"))),
            Plan::RecreateAfterFailedCreate
        );
        assert_eq!(plan(Some(&info("UPDATE_COMPLETE"))), Plan::Update);
        assert_eq!(plan(Some(&info("UPDATE_ROLLBACK_COMPLETE"))), Plan::Update);
        assert_eq!(
            plan(Some(&info("UPDATE_IN_PROGRESS"))),
            Plan::WaitForOther("UPDATE_IN_PROGRESS".into())
        );
        assert_eq!(
            plan(Some(&info("UPDATE_ROLLBACK_FAILED"))),
            Plan::Stuck("UPDATE_ROLLBACK_FAILED".into())
        );
    }

    #[test]
    fn every_form_of_no_changes_is_recognised() {
        assert!(means_no_changes("No updates are to be performed."));
        assert!(means_no_changes(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(!means_no_changes(
            "Template format error: Unresolved resource dependencies [Foo]"
        ));
    }

    #[test]
    fn change_summary_counts_actions_and_flags_replacements() {
        let change = |action: &str, id: &str, replacement: Option<&str>| ResourceChange {
            action: action.into(),
            logical_id: id.into(),
            resource_type: "AWS::X::Y".into(),
            replacement: replacement.map(Into::into),
        };
        let summary = summarize(&[
            change("Add", "A", None),
            change("Modify", "B", Some("False")),
            change("Modify", "C", Some("True")),
            change("Modify", "D", Some("Conditional")),
            change("Remove", "E", None),
        ]);
        assert_eq!(
            summary,
            ChangeSummary {
                adds: 1,
                modifies: 3,
                removes: 1,
                replacements: vec!["C".into(), "D".into()]
            }
        );
    }

    #[test]
    fn terminal_statuses_are_classified() {
        assert_eq!(
            classify("CREATE_COMPLETE"),
            Some(Settled::Succeeded("CREATE_COMPLETE".into()))
        );
        assert_eq!(
            classify("UPDATE_ROLLBACK_COMPLETE"),
            Some(Settled::Failed("UPDATE_ROLLBACK_COMPLETE".into()))
        );
        assert_eq!(
            classify("ROLLBACK_COMPLETE"),
            Some(Settled::Failed("ROLLBACK_COMPLETE".into()))
        );
        assert_eq!(classify("DELETE_COMPLETE"), Some(Settled::Gone));
        assert_eq!(classify("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"), None);
        assert_eq!(classify("UPDATE_ROLLBACK_IN_PROGRESS"), None);
    }

    #[test]
    fn failures_put_real_causes_before_cancellations() {
        let event = |id: &str, status: &str, reason: &str| Event {
            id: id.into(),
            time: "00:00:00".into(),
            logical_id: id.into(),
            resource_type: "T".into(),
            status: status.into(),
            reason: reason.into(),
        };
        let found = failures(&[
            event("a", "CREATE_FAILED", "Resource creation cancelled"),
            event("b", "CREATE_IN_PROGRESS", ""),
            event("c", "CREATE_FAILED", "Invalid S3 key"),
        ]);
        assert_eq!(
            found.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["c", "a"]
        );
    }

    mod mocked {
        use aws_sdk_cloudformation::Client;
        use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
        use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
        use aws_sdk_cloudformation::types::{ResourceStatus, Stack, StackEvent};
        use aws_smithy_mocks::mock;

        use super::super::*;
        use crate::aws::mocked::{aws, query_error};

        fn stack(status: StackStatus) -> DescribeStacksOutput {
            DescribeStacksOutput::builder()
                .stacks(
                    Stack::builder()
                        .stack_name("s")
                        .stack_status(status)
                        .creation_time(DateTime::from_secs(0))
                        .build(),
                )
                .build()
        }

        fn event(id: &str, secs: i64, logical: &str, status: ResourceStatus, reason: &str) -> StackEvent {
            StackEvent::builder()
                .event_id(id)
                .stack_id("s")
                .stack_name("s")
                .timestamp(DateTime::from_secs(secs))
                .logical_resource_id(logical)
                .resource_type("AWS::Lambda::Function")
                .resource_status(status)
                .resource_status_reason(reason)
                .build()
        }

        /// Waits on stack "s", counting every event, printing plainly.
        async fn settle(aws: &Aws, deadline: Instant) -> Result<Settled, String> {
            wait(
                aws,
                "s",
                DateTime::from_secs(0),
                fast(),
                deadline,
                &Ui::plain(),
                &mut Vec::new(),
            )
            .await
        }

        fn fast() -> Poll {
            Poll {
                first: Duration::from_millis(1),
                max: Duration::from_millis(2),
            }
        }

        #[tokio::test]
        async fn an_update_that_rolls_back_ends_failed_with_its_failed_resource_and_each_event_once() {
            let statuses = mock!(Client::describe_stacks)
                .sequence()
                .output(|| stack(StackStatus::UpdateInProgress))
                .output(|| stack(StackStatus::UpdateRollbackInProgress))
                .output(|| stack(StackStatus::UpdateRollbackComplete))
                .build();
            // Newest first, as CloudFormation pages them; each poll sees the earlier ones again.
            let events = mock!(Client::describe_stack_events)
                .sequence()
                .output(|| {
                    DescribeStackEventsOutput::builder()
                        .stack_events(event("2", 101, "Function", ResourceStatus::UpdateInProgress, ""))
                        .stack_events(event("old", 50, "Function", ResourceStatus::CreateComplete, ""))
                        .build()
                })
                .output(|| {
                    DescribeStackEventsOutput::builder()
                        .stack_events(event(
                            "3",
                            102,
                            "Function",
                            ResourceStatus::UpdateFailed,
                            "Memory size 99 is invalid",
                        ))
                        .stack_events(event("2", 101, "Function", ResourceStatus::UpdateInProgress, ""))
                        .build()
                })
                .output(|| DescribeStackEventsOutput::builder().build())
                .repeatedly()
                .build();
            let aws = aws(&[&statuses, &events], &[]);
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            let settled = wait(
                &aws,
                "s",
                DateTime::from_secs(100),
                fast(),
                deadline,
                &Ui::plain(),
                &mut seen,
            )
            .await;
            assert_eq!(
                settled.unwrap(),
                Settled::Failed("UPDATE_ROLLBACK_COMPLETE".into())
            );
            assert_eq!(seen.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["2", "3"]);
            let failed = failures(&seen);
            assert_eq!(failed.len(), 1);
            assert_eq!(failed[0].reason, "Memory size 99 is invalid");
        }

        #[tokio::test]
        async fn a_stack_that_never_settles_times_out_with_its_status() {
            let statuses =
                mock!(Client::describe_stacks).then_output(|| stack(StackStatus::CreateInProgress));
            let events = mock!(Client::describe_stack_events)
                .then_output(|| DescribeStackEventsOutput::builder().build());
            let aws = aws(&[&statuses, &events], &[]);
            let deadline = Instant::now() + Duration::from_millis(30);
            let settled = settle(&aws, deadline).await;
            assert_eq!(settled.unwrap(), Settled::TimedOut("CREATE_IN_PROGRESS".into()));
            assert!(statuses.num_calls() >= 2, "polled {} times", statuses.num_calls());
        }

        #[tokio::test]
        async fn throttled_polls_are_retried_with_backoff() {
            let statuses = mock!(Client::describe_stacks)
                .sequence()
                .http_response(|| query_error(400, "Throttling", "Rate exceeded"))
                .times(2)
                .output(|| stack(StackStatus::UpdateComplete))
                .build();
            let events = mock!(Client::describe_stack_events)
                .then_output(|| DescribeStackEventsOutput::builder().build());
            let aws = aws(&[&statuses, &events], &[]);
            let deadline = Instant::now() + Duration::from_secs(30);
            let settled = settle(&aws, deadline).await;
            assert_eq!(settled.unwrap(), Settled::Succeeded("UPDATE_COMPLETE".into()));
            assert_eq!(statuses.num_calls(), 3);
        }

        fn request<'a>(params: &'a BTreeMap<String, String>) -> Request<'a> {
            Request {
                stack: "s",
                kind: ChangeSetType::Update,
                template_body: "{}",
                parameters: params,
                tags: params,
                name: "cs",
            }
        }

        #[tokio::test]
        async fn every_way_aws_says_no_changes_is_success_and_leaves_no_change_set() {
            use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
            use aws_sdk_cloudformation::operation::delete_change_set::DeleteChangeSetOutput;
            use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
            let params = BTreeMap::new();
            let deadline = Instant::now() + Duration::from_secs(5);

            // 1. Refused at creation.
            let refused = mock!(Client::create_change_set).then_http_response(|| {
                query_error(400, "ValidationError", "No updates are to be performed.")
            });
            let aws1 = aws(&[&refused], &[]);
            assert!(matches!(
                create_change_set(&aws1, &request(&params), fast(), deadline).await,
                Ok(Prepared::NoChanges)
            ));

            // 2. A FAILED change set that "didn't contain changes", and 3. an empty one.
            for (status, reason) in [
                (
                    ChangeSetStatus::Failed,
                    "The submitted information didn't contain changes. Submit different information to create a change set.",
                ),
                (ChangeSetStatus::CreateComplete, ""),
            ] {
                let created = mock!(Client::create_change_set)
                    .then_output(|| CreateChangeSetOutput::builder().id("cs").build());
                let described = mock!(Client::describe_change_set).then_output(move || {
                    DescribeChangeSetOutput::builder()
                        .status(status.clone())
                        .status_reason(reason)
                        .build()
                });
                let deleted =
                    mock!(Client::delete_change_set).then_output(|| DeleteChangeSetOutput::builder().build());
                let aws2 = aws(&[&created, &described, &deleted], &[]);
                let prepared = create_change_set(&aws2, &request(&params), fast(), deadline).await;
                assert!(matches!(prepared, Ok(Prepared::NoChanges)), "{prepared:?}");
                assert_eq!(deleted.num_calls(), 1, "the empty change set was left behind");
            }

            // Any other failure is an error with CloudFormation's reason.
            let created = mock!(Client::create_change_set)
                .then_output(|| CreateChangeSetOutput::builder().id("cs").build());
            let described = mock!(Client::describe_change_set).then_output(|| {
                DescribeChangeSetOutput::builder()
                    .status(ChangeSetStatus::Failed)
                    .status_reason(
                        "Template error: instance of Fn::GetAtt references undefined resource Nope",
                    )
                    .build()
            });
            let deleted =
                mock!(Client::delete_change_set).then_output(|| DeleteChangeSetOutput::builder().build());
            let aws3 = aws(&[&created, &described, &deleted], &[]);
            let err = create_change_set(&aws3, &request(&params), fast(), deadline)
                .await
                .unwrap_err();
            assert!(err.contains("undefined resource Nope"), "{err}");
        }

        #[tokio::test]
        async fn a_missing_stack_is_none_and_other_errors_are_reported() {
            let missing = mock!(Client::describe_stacks).then_http_response(|| {
                query_error(400, "ValidationError", "Stack with id nope does not exist")
            });
            let aws1 = aws(&[&missing], &[]);
            assert!(describe(&aws1, "nope").await.unwrap().is_none());
            let denied = mock!(Client::describe_stacks).then_http_response(|| {
                query_error(
                    403,
                    "AccessDenied",
                    "not authorized to perform cloudformation:DescribeStacks",
                )
            });
            let aws2 = aws(&[&denied], &[]);
            let err = describe(&aws2, "s").await.unwrap_err();
            assert!(err.contains("AccessDenied: not authorized"), "{err}");
        }
    }
}
