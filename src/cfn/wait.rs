//! Waiting for a stack operation to end, printing its events as they come.
//!
//! Each wait has its own deadline (`WAIT_TIMEOUT` from the moment it starts). A poll that
//! fails for a moment (throttling, a 5xx, a timeout, a dropped connection) is tried again
//! until that deadline: the operation goes on in CloudFormation whatever the runner's
//! network does, so such a failure never ends the deploy.

use std::time::Duration;

use aws_sdk_cloudformation::types::StackStatus;
use tokio::time::Instant;

use crate::aws::Aws;
use crate::cfn::Poll;
use crate::cfn::classify::{Settled, settled};
use crate::cfn::events::{Event, Operation};
use crate::cfn::stack::is_missing_stack;
use crate::error::{Error, Kind, Result};
use crate::ui::Ui;

/// How long the wait may stay silent before it says the stack is still working.
const HEARTBEAT: Duration = Duration::from_secs(30);

pub struct Wait<'a> {
    pub aws: &'a Aws,
    pub stack: &'a str,
    pub poll: Poll,
    pub timeout: Duration,
    pub ui: &'a Ui,
}

/// A wait that knows when CloudFormation's monitoring window ends says how much is left.
pub struct WindowWait<'a> {
    wait: Wait<'a>,
    ends: Option<Instant>,
}

impl<'a> Wait<'a> {
    pub fn with_window(self, ends: Option<Instant>) -> WindowWait<'a> {
        WindowWait { wait: self, ends }
    }
}

impl WindowWait<'_> {
    pub async fn until_settled(&self, op: &mut Operation, events: &mut Vec<Event>) -> Result<Settled> {
        self.wait.run(op, events, |_, _| false, self.ends).await
    }
}

impl Wait<'_> {
    /// Streams the operation's new events (once each, into `events`) until the stack
    /// settles or the deadline passes.
    pub async fn until_settled(&self, op: &mut Operation, events: &mut Vec<Event>) -> Result<Settled> {
        self.until(op, events, |_, _| false).await
    }

    /// Like [`Self::until_settled`], but also returns (as `None`) as soon as `ready`
    /// says so, given the stack's status and this operation's events so far.
    pub async fn until(
        &self,
        op: &mut Operation,
        events: &mut Vec<Event>,
        ready: impl FnMut(&StackStatus, &[Event]) -> bool,
    ) -> Result<Settled> {
        self.run(op, events, ready, None).await
    }

    async fn run(
        &self,
        op: &mut Operation,
        events: &mut Vec<Event>,
        mut ready: impl FnMut(&StackStatus, &[Event]) -> bool,
        window_ends: Option<Instant>,
    ) -> Result<Settled> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut interval = self.poll.first;
        let mut last_output = started;
        loop {
            // Events first, so the ones that explain a final status are printed before it.
            for event in op.new_events(self.aws, self.stack).await? {
                self.ui.step(&event.line());
                events.push(event);
                last_output = Instant::now();
            }
            match self.status().await? {
                Read::Status(status) => {
                    if let Some(end) = settled(&status) {
                        // One last look, so no event of the final moments is missed.
                        for event in op.new_events(self.aws, self.stack).await? {
                            self.ui.step(&event.line());
                            events.push(event);
                        }
                        return Ok(end);
                    }
                    if ready(&status, events) {
                        return Ok(Settled::Running(status));
                    }
                    if Instant::now() + interval > deadline {
                        return Ok(Settled::TimedOut(status));
                    }
                    if last_output.elapsed() >= HEARTBEAT {
                        let left = window_ends
                            .map(|end| {
                                format!(
                                    " (monitoring window: about {} s left)",
                                    end.saturating_duration_since(Instant::now()).as_secs()
                                )
                            })
                            .unwrap_or_default();
                        self.ui.step(&format!(
                            "… still {} after {} s{left}",
                            status.as_str(),
                            started.elapsed().as_secs()
                        ));
                        last_output = Instant::now();
                    }
                }
                Read::Gone => return Ok(Settled::Gone),
                Read::Transient(problem) => {
                    if Instant::now() + interval > deadline {
                        return Err(problem);
                    }
                    self.ui.step(&format!("… {}; polling again", problem.cause));
                    last_output = Instant::now();
                }
            }
            tokio::time::sleep(interval).await;
            interval = self.poll.next(interval);
        }
    }

    /// The stack's status. A failure that may pass is `Read::Transient`; any other ends
    /// the wait at once.
    async fn status(&self) -> Result<Read> {
        match self
            .aws
            .cloudformation
            .describe_stacks()
            .stack_name(self.stack)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .stacks()
                .first()
                .and_then(|s| s.stack_status())
                .cloned()
                .map_or(Read::Gone, Read::Status)),
            Err(e) if is_missing_stack(&e) => Ok(Read::Gone),
            Err(e) => {
                let problem = Error::aws(format_args!("read the status of stack {}", self.stack), &e);
                match Kind::of_sdk(&e) {
                    Kind::Transient | Kind::Unreachable => Ok(Read::Transient(problem)),
                    _ => Err(problem),
                }
            }
        }
    }
}

enum Read {
    Status(StackStatus),
    Gone,
    Transient(Error),
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::Client;
    use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
    use aws_sdk_cloudformation::types::{ResourceStatus, Stack, StackEvent};
    use aws_smithy_mocks::{Rule, mock};
    use aws_smithy_types::DateTime;

    use super::*;
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

    fn event(id: &str, secs: i64, token: &str, status: ResourceStatus, reason: &str) -> StackEvent {
        crate::cfn::events::function_event(id, secs, Some(token), status, reason)
    }

    fn no_events() -> Rule {
        mock!(Client::describe_stack_events).then_output(|| DescribeStackEventsOutput::builder().build())
    }

    async fn settle(aws: &Aws, timeout: Duration, events: &mut Vec<Event>) -> Result<Settled> {
        let mut op = Operation::begin(aws, "s", "mine").await?;
        Wait {
            aws,
            stack: "s",
            poll: Poll::fast(),
            timeout,
            ui: &Ui::plain(),
        }
        .until_settled(&mut op, events)
        .await
    }

    #[tokio::test]
    async fn an_update_that_rolls_back_ends_failed_with_only_this_operations_events_once_each() {
        let statuses = mock!(Client::describe_stacks)
            .sequence()
            .output(|| stack(StackStatus::UpdateInProgress))
            .output(|| stack(StackStatus::UpdateRollbackInProgress))
            .output(|| stack(StackStatus::UpdateRollbackComplete))
            .build();
        // Newest first, as CloudFormation pages them. "old" was there before the
        // operation began; "theirs" is another pipeline's, newer but with its own token.
        let old = || {
            event(
                "old",
                50,
                "earlier",
                ResourceStatus::DeleteFailed,
                "an old delete",
            )
        };
        let begun = || event("2", 101, "mine", ResourceStatus::UpdateInProgress, "");
        let events = mock!(Client::describe_stack_events)
            .sequence()
            .output(move || DescribeStackEventsOutput::builder().stack_events(old()).build())
            .output(move || {
                DescribeStackEventsOutput::builder()
                    .stack_events(event(
                        "theirs",
                        102,
                        "theirs",
                        ResourceStatus::UpdateFailed,
                        "not ours",
                    ))
                    .stack_events(begun())
                    .stack_events(old())
                    .build()
            })
            .output(move || {
                DescribeStackEventsOutput::builder()
                    .stack_events(event(
                        "3",
                        103,
                        "mine",
                        ResourceStatus::UpdateFailed,
                        "Memory size 99 is invalid",
                    ))
                    .stack_events(begun())
                    .build()
            })
            .output(|| DescribeStackEventsOutput::builder().build())
            .repeatedly()
            .build();
        let aws = aws(&[&statuses, &events], &[]);
        let mut seen = Vec::new();
        let settled = settle(&aws, Duration::from_secs(30), &mut seen).await;
        assert_eq!(
            settled.unwrap(),
            Settled::Failed(StackStatus::UpdateRollbackComplete)
        );
        assert_eq!(seen.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["2", "3"]);
        let failed = crate::cfn::events::failures(&seen);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].reason, "Memory size 99 is invalid");
    }

    #[tokio::test]
    async fn a_stack_that_never_settles_times_out_with_its_status() {
        let statuses = mock!(Client::describe_stacks).then_output(|| stack(StackStatus::CreateInProgress));
        let events = no_events();
        let aws = aws(&[&statuses, &events], &[]);
        let settled = settle(&aws, Duration::from_millis(30), &mut Vec::new()).await;
        assert_eq!(settled.unwrap(), Settled::TimedOut(StackStatus::CreateInProgress));
        assert!(statuses.num_calls() >= 2, "polled {} times", statuses.num_calls());
    }

    #[tokio::test]
    async fn polls_that_fail_for_a_moment_are_tried_again_until_the_stack_settles() {
        // Seven answers of 503 and throttling: more than the SDK's five attempts, so one
        // poll fails outright; the wait goes on instead of failing the deploy.
        let statuses = mock!(Client::describe_stacks)
            .sequence()
            .http_response(|| query_error(503, "ServiceUnavailable", "Service is unavailable"))
            .times(4)
            .http_response(|| query_error(400, "Throttling", "Rate exceeded"))
            .times(3)
            .output(|| stack(StackStatus::UpdateComplete))
            .build();
        let events = no_events();
        let aws = aws(&[&statuses, &events], &[]);
        let settled = settle(&aws, Duration::from_secs(30), &mut Vec::new()).await;
        assert_eq!(settled.unwrap(), Settled::Succeeded(StackStatus::UpdateComplete));
        assert_eq!(statuses.num_calls(), 8);
    }

    #[tokio::test]
    async fn a_denied_poll_ends_the_wait_with_the_permission_fix() {
        let statuses = mock!(Client::describe_stacks).then_http_response(|| {
            query_error(
                403,
                "AccessDenied",
                "not authorized to perform cloudformation:DescribeStacks",
            )
        });
        let events = no_events();
        let aws = aws(&[&statuses, &events], &[]);
        let err = settle(&aws, Duration::from_secs(30), &mut Vec::new())
            .await
            .unwrap_err();
        assert!(err.cause.contains("AccessDenied"), "{err}");
        assert!(err.fix.contains("docs/iam-policy.json"), "{err}");
        assert_eq!(statuses.num_calls(), 1);
    }
}
