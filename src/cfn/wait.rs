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
        mut ready: impl FnMut(&StackStatus, &[Event]) -> bool,
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
                        self.ui.step(&format!(
                            "… still {} after {} s",
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
