//! The events of one stack operation. A stack's event list holds every operation ever
//! run on it, by anyone: another pipeline's update, the delete before a re-create. An
//! event belongs to this operation when it carries this operation's request token
//! (CloudFormation stamps the token given to ExecuteChangeSet, DeleteStack or
//! CancelUpdateStack on every event the operation causes) or, when it carries no token,
//! when it is newer, by CloudFormation's own clock, than the newest event seen before
//! the operation began. The runner's clock is never used.

use std::collections::HashSet;

use aws_sdk_cloudformation::types::{ResourceStatus, StackEvent};
use aws_smithy_types::DateTime;

use crate::aws::Aws;
use crate::cfn::stack::is_missing_stack;
use crate::error::{Error, Kind, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    /// CloudFormation's timestamp of the event.
    pub time: DateTime,
    pub logical_id: String,
    pub resource_type: String,
    pub status: ResourceStatus,
    pub reason: String,
}

impl Event {
    /// One log line: "HH:MM:SS  STATUS  TYPE  ID: reason".
    pub fn line(&self) -> String {
        let mut line = format!(
            "{}  {:<28} {:<34} {}",
            clock(self.time),
            self.status.as_str(),
            self.resource_type,
            self.logical_id
        );
        if !self.reason.is_empty() {
            line.push_str(&format!(": {}", self.reason));
        }
        line
    }

    pub fn failed(&self) -> bool {
        self.status.as_str().ends_with("_FAILED")
    }

    /// The stack's own event (its logical id is the stack's name).
    pub fn is_stack(&self) -> bool {
        self.resource_type == "AWS::CloudFormation::Stack"
    }
}

/// HH:MM:SS in UTC.
fn clock(time: DateTime) -> String {
    let secs = time.secs().rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// One operation on one stack: which events are its own.
#[derive(Debug, Clone, Default)]
pub struct Operation {
    /// Request tokens given to the calls of this operation.
    tokens: Vec<String>,
    /// The newest event before the operation began, by CloudFormation's clock.
    before: Option<DateTime>,
    /// Events already known: those before the operation, and those already reported.
    seen: HashSet<String>,
}

impl Operation {
    /// Marks where the stack's events stand before an operation with `token` begins.
    pub async fn begin(aws: &Aws, stack: &str, token: &str) -> Result<Self> {
        let mut op = Self {
            tokens: vec![token.to_owned()],
            ..Self::default()
        };
        match aws
            .cloudformation
            .describe_stack_events()
            .stack_name(stack)
            .send()
            .await
        {
            Ok(page) => {
                for e in page.stack_events() {
                    if let Some(id) = e.event_id() {
                        op.seen.insert(id.to_owned());
                    }
                    if let Some(time) = e.timestamp() {
                        op.before = Some(op.before.map_or(*time, |b| later(b, *time)));
                    }
                }
            }
            // A stack that does not exist yet has no events to leave out.
            Err(e) if is_missing_stack(&e) => {}
            Err(e) => return Err(Error::aws(format_args!("read the events of stack {stack}"), &e)),
        }
        Ok(op)
    }

    /// A further call of the same operation (e.g. the cancel of an update).
    pub fn add_token(&mut self, token: &str) {
        self.tokens.push(token.to_owned());
    }

    /// Whether `e` belongs to this operation (and is not known yet).
    fn owns(&self, e: &StackEvent) -> bool {
        let Some(id) = e.event_id() else { return false };
        if self.seen.contains(id) {
            return false;
        }
        match e.client_request_token().filter(|t| !t.is_empty()) {
            Some(token) => self.tokens.iter().any(|t| t == token),
            None => match (e.timestamp(), self.before) {
                (Some(time), Some(before)) => later(before, *time) == *time && *time != before,
                (_, None) => true,
                (None, Some(_)) => false,
            },
        }
    }

    /// This operation's events that are new since the last call, oldest first. A read
    /// that fails for a moment (throttling, a 5xx, the network) returns what it has;
    /// the next poll reads again.
    pub async fn new_events(&mut self, aws: &Aws, stack: &str) -> Result<Vec<Event>> {
        let mut fresh = Vec::new();
        let mut token: Option<String> = None;
        // Newest first; stop at the first page that reaches events older than ours.
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
                Err(e) if matches!(Kind::of_sdk(&e), Kind::Transient | Kind::Unreachable) => break,
                Err(e) => return Err(Error::aws(format_args!("read the events of stack {stack}"), &e)),
            };
            let mut reached_old = false;
            for e in page.stack_events() {
                if !self.owns(e) {
                    reached_old |= e
                        .timestamp()
                        .zip(self.before)
                        .is_some_and(|(t, b)| later(*t, b) == b);
                    continue;
                }
                let Some(event) = convert(e) else { continue };
                self.seen.insert(event.id.clone());
                fresh.push(event);
            }
            match page.next_token() {
                Some(next) if !reached_old && !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        fresh.reverse();
        Ok(fresh)
    }
}

fn later(a: DateTime, b: DateTime) -> DateTime {
    if (b.secs(), b.subsec_nanos()) > (a.secs(), a.subsec_nanos()) {
        b
    } else {
        a
    }
}

fn convert(e: &StackEvent) -> Option<Event> {
    Some(Event {
        id: e.event_id()?.to_owned(),
        time: *e.timestamp()?,
        logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
        resource_type: e.resource_type().unwrap_or_default().to_owned(),
        status: e.resource_status()?.clone(),
        reason: e.resource_status_reason().unwrap_or_default().to_owned(),
    })
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

/// A stack event of the function resource, as CloudFormation pages it: for tests here
/// and of the waits.
#[cfg(test)]
pub(crate) fn function_event(
    id: &str,
    secs: i64,
    token: Option<&str>,
    status: aws_sdk_cloudformation::types::ResourceStatus,
    reason: &str,
) -> aws_sdk_cloudformation::types::StackEvent {
    aws_sdk_cloudformation::types::StackEvent::builder()
        .event_id(id)
        .stack_id("s")
        .stack_name("s")
        .timestamp(aws_smithy_types::DateTime::from_secs(secs))
        .logical_resource_id("Function")
        .resource_type("AWS::Lambda::Function")
        .resource_status(status)
        .resource_status_reason(reason)
        .set_client_request_token(token.map(str::to_owned))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn event(id: &str, status: ResourceStatus, reason: &str) -> Event {
        Event {
            id: id.into(),
            time: DateTime::from_secs(0),
            logical_id: id.into(),
            resource_type: "T".into(),
            status,
            reason: reason.into(),
        }
    }

    #[test]
    fn failures_put_real_causes_before_cancellations() {
        let found = failures(&[
            event("a", ResourceStatus::CreateFailed, "Resource creation cancelled"),
            event("b", ResourceStatus::CreateInProgress, ""),
            event("c", ResourceStatus::CreateFailed, "Invalid S3 key"),
        ]);
        assert_eq!(
            found.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["c", "a"]
        );
    }

    fn stack_event(id: &str, secs: i64, token: Option<&str>) -> StackEvent {
        function_event(id, secs, token, ResourceStatus::UpdateFailed, "")
    }

    #[test]
    fn an_event_is_this_operations_by_its_token_or_by_cloudformations_clock() {
        let op = Operation {
            tokens: vec!["mine".into()],
            before: Some(DateTime::from_secs(100)),
            seen: HashSet::from(["known".to_owned()]),
        };
        assert!(op.owns(&stack_event("a", 101, Some("mine"))));
        // Another pipeline's operation, even if it is newer.
        assert!(!op.owns(&stack_event("b", 105, Some("theirs"))));
        // Without a token: newer than anything before the operation.
        assert!(op.owns(&stack_event("c", 101, None)));
        assert!(!op.owns(&stack_event("d", 100, None)));
        assert!(!op.owns(&stack_event("e", 50, None)));
        assert!(!op.owns(&stack_event("known", 101, Some("mine"))));
    }
}
