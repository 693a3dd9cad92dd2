//! Cancel: SIGINT or SIGTERM stops the run within seconds, starting nothing new on AWS.
//!
//! When a workflow is cancelled or a step times out, the runner sends SIGINT to the
//! `docker run` it started (which forwards it to the container's PID 1, the deployer),
//! SIGTERM 7.5 s later, and then kills it. As PID 1 the deployer gets no default signal
//! action from the kernel, so without handlers both signals would be dropped and the run
//! would go on detached, writing no report.
//!
//! On the signal the run's future is dropped: no further AWS call starts. A call already
//! sent (an ExecuteChangeSet, say) is CloudFormation's to finish, and it does: a change
//! set being executed runs to its end (with its rollback triggers armed inside a guarded
//! window), a rollback goes on. Nothing is cancelled on the user's behalf, because a
//! cancel is also how a user stops a deploy they no longer trust the deployer with; the
//! report names the one command that rolls an update back, and docs/runbook.md says when
//! to use it. The stack's state is then read once (a read, bounded by [`STATE_TIMEOUT`])
//! for the report.

use std::time::Duration;

use aws_sdk_cloudformation::types::StackStatus;
use tokio::signal::unix::{SignalKind, signal};

use crate::aws::Aws;
use crate::cfn::stack;
use crate::commands::Context;
use crate::report::{Outcome, Status};

/// How long the report may wait for the stack's state after the signal: the runner
/// kills the container 7.5 s after its SIGINT, and the report must be written by then.
pub const STATE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which signal stopped the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }

    /// The shell's convention: 128 + the signal's number.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Interrupt => 130,
            Self::Terminate => 143,
        }
    }
}

/// The handlers, installed when this is called (before the run starts: a signal that
/// arrives earlier is the kernel's to drop, and nothing has been done yet then).
pub struct Handlers {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Handlers {
    /// Must run inside the tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The first signal to arrive.
    pub async fn received(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Interrupt,
            _ = self.terminate.recv() => Signal::Terminate,
        }
    }
}

/// Runs `work` until it ends or a signal arrives; on a signal, `work` is dropped (no AWS
/// call starts after it) and the signal is returned.
pub async fn unless_signalled<F: std::future::Future<Output = ()>>(
    handlers: &mut Handlers,
    work: F,
) -> Option<Signal> {
    tokio::select! {
        () = work => None,
        signal = handlers.received() => Some(signal),
    }
}

/// Puts the cancel into the report: that the run was cancelled, the stack's state now,
/// and what to do.
pub async fn record(ctx: &mut Context, signal: Signal) {
    // A group the run had opened would swallow the lines after it.
    ctx.ui.end_group();
    ctx.ui.warn(&format!(
        "{} received: cancelled; no further AWS call is started",
        signal.name()
    ));
    let state = tokio::time::timeout(STATE_TIMEOUT, stack_state(ctx)).await;
    let report = &mut ctx.report;
    report.status = Some(Status::Failed);
    report.outcome = Some(Outcome::Cancelled {
        signal: signal.name(),
    });
    let stack_name = &ctx.config.stack_name;
    let (state_line, fix) = match state {
        Ok(Ok(Some(status))) => {
            report.stack_status = Some(status.as_str().to_owned());
            (
                format!("stack {stack_name} is {}", status.as_str()),
                what_to_do(stack_name, &status),
            )
        }
        Ok(Ok(None)) => (
            format!("stack {stack_name} does not exist"),
            "nothing to clean up: run the workflow again".to_owned(),
        ),
        Ok(Err(why)) => (
            format!("the state of stack {stack_name} could not be read ({why})"),
            format!(
                "look at the stack in the CloudFormation console (or `aws cloudformation describe-stacks --stack-name {stack_name}`) before running the workflow again"
            ),
        ),
        Err(_) => (
            format!(
                "the state of stack {stack_name} could not be read within {} s",
                STATE_TIMEOUT.as_secs()
            ),
            format!(
                "look at the stack in the CloudFormation console (or `aws cloudformation describe-stacks --stack-name {stack_name}`) before running the workflow again"
            ),
        ),
    };
    report.error = Some(format!(
        "the run was cancelled by {} (the runner sends it when the workflow is cancelled or the step times out) before it ended; {state_line}",
        signal.name()
    ));
    report.fix = Some(fix);
    ctx.ui.annotate_error(
        &format!("{} cancelled", report.command),
        report.error.as_deref().unwrap_or_default(),
    );
}

async fn stack_state(ctx: &Context) -> Result<Option<StackStatus>, String> {
    let Some(aws) = Aws::load(ctx.config.aws_region.as_deref()).await else {
        return Err("no AWS region".into());
    };
    match stack::describe(&aws, &ctx.config.stack_name).await {
        Ok(found) => Ok(found.map(|info| info.status)),
        Err(e) => Err(e.cause),
    }
}

/// What a cancelled run leaves the user to do, by the state the stack is in.
pub fn what_to_do(stack_name: &str, status: &StackStatus) -> String {
    let name = status.as_str();
    if *status == StackStatus::UpdateInProgress {
        return format!(
            "CloudFormation is still applying the update (in a guarded deploy, with its rollback alarms armed): let it finish and run the workflow again, or roll it back now with `aws cloudformation cancel-update-stack --stack-name {stack_name}`"
        );
    }
    if name.ends_with("_IN_PROGRESS") {
        return format!(
            "CloudFormation is still working on the stack ({name}): wait for it to settle (the CloudFormation console, or `aws cloudformation describe-stacks --stack-name {stack_name}`), then run the workflow again"
        );
    }
    format!("the stack is settled ({name}): run the workflow again when ready")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_in_flight_is_left_to_cloudformation_with_the_command_that_rolls_it_back() {
        let fix = what_to_do("s", &StackStatus::UpdateInProgress);
        assert!(
            fix.contains("aws cloudformation cancel-update-stack --stack-name s"),
            "{fix}"
        );
    }

    #[test]
    fn a_rollback_or_create_in_flight_is_waited_for() {
        for status in [
            StackStatus::UpdateRollbackInProgress,
            StackStatus::CreateInProgress,
            StackStatus::ReviewInProgress,
            StackStatus::UpdateCompleteCleanupInProgress,
        ] {
            let fix = what_to_do("s", &status);
            assert!(fix.contains("wait for it to settle"), "{status:?}: {fix}");
        }
    }

    #[tokio::test]
    async fn a_signal_drops_the_work_and_is_returned() {
        let mut handlers = Handlers::install().unwrap();
        let work = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
        };
        // As the runner's docker CLI forwards it: to this process, its handler installed.
        let pid = std::process::id();
        std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), unless_signalled(&mut handlers, work)).await;
        assert_eq!(got.unwrap(), Some(Signal::Interrupt));
    }
}
