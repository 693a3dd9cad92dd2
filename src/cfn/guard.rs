//! Guarded updates: CloudFormation's rollback configuration. An update executed with
//! `MonitoringTimeInMinutes` stays `UPDATE_IN_PROGRESS` for that long after its last
//! resource is updated; a rollback trigger (a CloudWatch alarm) that goes to ALARM in that
//! time rolls it back, and so does `CancelUpdateStack`, which AWS documents for exactly
//! this: "to perform any manual stack validation desired, and manually cancel the stack
//! creation or update as necessary". The deployer's validation is its endpoint tests.

use aws_sdk_cloudformation::types::{RollbackConfiguration, RollbackTrigger};
use aws_sdk_cloudwatch::types::StateValue;

use crate::aws::{self, Aws};
use crate::cfn::classify::ResourceChange;
use crate::cfn::events::Event;
use crate::error::{Error, Result};

/// The alarms that guard an update: the stack's own alarms on what a bad version breaks
/// at once (API 5XX, Lambda errors). Long streams make the Duration alarm fire on a
/// healthy version, so it never guards.
const TRIGGER_METRICS: &[(&str, &str)] = &[("AWS/ApiGateway", "5XXError"), ("AWS/Lambda", "Errors")];

/// CloudWatch publishes a period's datapoint about a minute after the period ends, and
/// judges an alarm only on complete periods.
const PUBLISH_DELAY_SECONDS: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub name: String,
    pub arn: String,
    pub state: StateValue,
    pub reason: String,
    /// What it watches: `<namespace> <metric>`.
    pub metric: String,
    /// How much metric history one evaluation needs: its period times its evaluation
    /// periods, in seconds.
    pub evaluates_seconds: u64,
}

impl Trigger {
    /// Whether the alarm can go to ALARM inside a window of `window` seconds: one full
    /// evaluation, and its datapoint published, fit in it.
    fn fits(&self, window: u64) -> bool {
        self.evaluates_seconds + PUBLISH_DELAY_SECONDS <= window
    }
}

/// What the monitoring window can see, for the report: `note` names the triggers that
/// can fire inside it (the template's 1-minute guard alarms in a 3-minute window), with
/// what they evaluate. `warning` is set when some watched metric has no alarm that fits
/// the window: its errors then rarely roll back, and the endpoint tests (which run
/// inside the window) are what guards the update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sight {
    pub note: String,
    pub warning: Option<String>,
}

pub fn sight(triggers: &[Trigger], window_minutes: u64) -> Sight {
    let window = window_minutes * 60;
    let seen: Vec<String> = triggers
        .iter()
        .filter(|t| t.fits(window))
        .map(|t| format!("{} ({} s)", t.name, t.evaluates_seconds))
        .collect();
    let note = if seen.is_empty() {
        format!("a {window_minutes}-minute window can see none of them fire")
    } else {
        format!(
            "a {window_minutes}-minute window can see {} fire",
            seen.join(", ")
        )
    };
    // A metric is blind when none of its alarms fits; the window that would let its
    // quickest alarm see one full evaluation is suggested.
    let blind: Vec<&Trigger> = triggers
        .iter()
        .filter(|t| !triggers.iter().any(|u| u.metric == t.metric && u.fits(window)))
        .collect();
    let warning = blind.iter().map(|t| t.evaluates_seconds).min().map(|quickest| {
        let names: Vec<&str> = blind.iter().map(|t| t.name.as_str()).collect();
        let enough = (quickest + PUBLISH_DELAY_SECONDS).div_ceil(60);
        format!(
            "the rollback alarms {} evaluate {quickest} s or more of metrics, longer than the {window_minutes}-minute monitoring window: they can rarely fire inside it, so the endpoint tests are what guards this update (ROLLBACK_WINDOW_MINUTES={enough} lets the alarms see a full evaluation)",
            names.join(", ")
        )
    });
    Sight { note, warning }
}

/// The stack's alarms that guard its updates, found from its resources.
pub async fn triggers(aws: &Aws, stack: &str) -> Result<Vec<Trigger>> {
    let resources = aws
        .cloudformation
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| Error::aws(format_args!("list the resources of stack {stack}"), &e))?;
    let names: Vec<String> = resources
        .stack_resources()
        .iter()
        .filter(|r| r.resource_type() == Some("AWS::CloudWatch::Alarm"))
        .filter_map(|r| r.physical_resource_id().map(str::to_owned))
        .collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let alarms = aws
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names))
        .send()
        .await
        .map_err(|e| Error::aws(format_args!("describe the alarms of stack {stack}"), &e))?;
    Ok(alarms
        .metric_alarms()
        .iter()
        .filter(|a| {
            TRIGGER_METRICS
                .iter()
                .any(|(ns, metric)| a.namespace() == Some(*ns) && a.metric_name() == Some(*metric))
        })
        .filter_map(|a| {
            Some(Trigger {
                metric: format!("{} {}", a.namespace()?, a.metric_name()?),
                name: a.alarm_name()?.to_owned(),
                arn: a.alarm_arn()?.to_owned(),
                state: a.state_value().cloned().unwrap_or(StateValue::InsufficientData),
                reason: a.state_reason().unwrap_or_default().to_owned(),
                evaluates_seconds: u64::try_from(a.period().unwrap_or(60)).unwrap_or(60)
                    * u64::try_from(a.evaluation_periods().unwrap_or(1)).unwrap_or(1),
            })
        })
        .collect())
}

pub fn configuration(triggers: &[Trigger], minutes: u64) -> RollbackConfiguration {
    RollbackConfiguration::builder()
        .set_rollback_triggers(Some(
            triggers
                .iter()
                .map(|t| {
                    RollbackTrigger::builder()
                        .arn(&t.arn)
                        .r#type("AWS::CloudWatch::Alarm")
                        .build()
                })
                .collect(),
        ))
        .monitoring_time_in_minutes(i32::try_from(minutes).unwrap_or(180))
        .build()
}

/// A trigger already in ALARM makes CloudFormation roll the update back before it starts.
pub fn already_alarming(triggers: &[Trigger]) -> Option<Error> {
    let firing: Vec<&Trigger> = triggers.iter().filter(|t| t.state == StateValue::Alarm).collect();
    let first = firing.first()?;
    Some(Error::new(
        format!(
            "alarm {} is in ALARM ({}), and CloudFormation rolls back an update that starts while a rollback trigger is in ALARM",
            firing
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            first.reason
        ),
        "find out why it fires (the dashboard, the function's log), and deploy again when it is back to OK; to ship a fix for the very problem it reports, deploy once with ROLLBACK_WINDOW_MINUTES=0",
    ))
}

/// Whether every resource the change set adds or modifies has been updated by this
/// operation: the new version serves. (Removals come in the cleanup after the window.)
pub fn new_version_serves(changes: &[ResourceChange], events: &[Event]) -> bool {
    crate::cfn::classify::serving_changes(changes).all(|c| {
        events.iter().any(|e| {
            e.logical_id == c.logical_id
                && matches!(
                    e.status.as_str(),
                    "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE"
                )
        })
    })
}

/// The alarm that rolled the update back, with CloudFormation's words, from the stack's
/// events ("The following CloudWatch Alarms were in ALARM state: [arn...]").
pub fn alarm_rollback(events: &[Event]) -> Option<String> {
    events
        .iter()
        .find(|e| e.is_stack() && e.reason.contains("CloudWatch Alarms were in ALARM state"))
        .map(|e| e.reason.clone())
}

/// What to do about UPDATE_ROLLBACK_FAILED: continue the rollback, skipping what AWS
/// could not roll back (named in the failed events).
pub fn continue_rollback_fix(stack: &str, failed: &[Event]) -> String {
    let skip: Vec<&str> = failed
        .iter()
        .filter(|e| !e.is_stack())
        .map(|e| e.logical_id.as_str())
        .collect();
    let mut fix = format!(
        "CloudFormation could not roll the update back (the reasons are in the failed resources above): fix what they name where you can, then run `aws cloudformation continue-update-rollback --stack-name {stack}`"
    );
    if !skip.is_empty() {
        fix.push_str(&format!(
            " (or skip what cannot be rolled back: `--resources-to-skip {}`)",
            skip.join(" ")
        ));
    }
    fix.push_str(
        "; deploy again once the stack is UPDATE_ROLLBACK_COMPLETE. The deployer never retries this itself.",
    );
    fix
}

/// Cancels the update in progress; `Ok(false)` when CloudFormation says it is past the
/// point where it can be cancelled (the window closed meanwhile).
pub async fn cancel(aws: &Aws, stack: &str, token: &str) -> Result<bool> {
    match aws
        .cloudformation
        .cancel_update_stack()
        .stack_name(stack)
        .client_request_token(token)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e)
            if aws::error_code(&e) == Some("ValidationError")
                && aws::error_message(&e)
                    .is_some_and(|m| m.contains("CancelUpdateStack cannot be called")) =>
        {
            Ok(false)
        }
        Err(e) => Err(Error::aws(format_args!("cancel the update of stack {stack}"), &e)),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::Client;
    use aws_sdk_cloudformation::operation::cancel_update_stack::CancelUpdateStackOutput;
    use aws_sdk_cloudformation::types::{ChangeAction, ResourceAttribute, ResourceStatus};
    use aws_smithy_mocks::mock;
    use aws_smithy_types::DateTime;

    use super::*;
    use crate::aws::mocked::{aws, query_error};

    #[tokio::test]
    async fn a_cancel_after_the_window_closed_is_told_apart_from_a_denied_one() {
        // AWS's answer once the update left UPDATE_IN_PROGRESS (the window closed).
        let late = mock!(Client::cancel_update_stack).then_http_response(|| {
            query_error(
                400,
                "ValidationError",
                "Stack:arn:aws:cloudformation:us-east-1:1:stack/s/x is in UPDATE_COMPLETE_CLEANUP_IN_PROGRESS state and can not be updated. CancelUpdateStack cannot be called from current stack status",
            )
        });
        assert!(!cancel(&aws(&[&late], &[]), "s", "t").await.unwrap());
        let ok =
            mock!(Client::cancel_update_stack).then_output(|| CancelUpdateStackOutput::builder().build());
        assert!(cancel(&aws(&[&ok], &[]), "s", "t").await.unwrap());
        let denied = mock!(Client::cancel_update_stack).then_http_response(|| {
            query_error(
                403,
                "AccessDenied",
                "not authorized to perform: cloudformation:CancelUpdateStack",
            )
        });
        let err = cancel(&aws(&[&denied], &[]), "s", "t").await.unwrap_err();
        assert!(err.fix.contains("docs/iam-policy.json"), "{err}");
    }

    #[test]
    fn a_failed_rollback_says_to_continue_it_skipping_what_aws_names() {
        let mut failed = event("Function", ResourceStatus::UpdateFailed);
        failed.reason = "Resource handler returned message: \"The role defined for the function cannot be assumed by Lambda.\"".into();
        let fix = continue_rollback_fix("s", &[failed]);
        assert!(
            fix.contains("aws cloudformation continue-update-rollback --stack-name s"),
            "{fix}"
        );
        assert!(fix.contains("--resources-to-skip Function"), "{fix}");
        assert!(fix.contains("never retries"), "{fix}");
    }

    fn change(action: ChangeAction, id: &str) -> ResourceChange {
        ResourceChange {
            action,
            logical_id: id.into(),
            resource_type: "T".into(),
            replacement: None,
            scope: vec![ResourceAttribute::Properties],
        }
    }

    fn event(id: &str, status: ResourceStatus) -> Event {
        Event {
            id: format!("{id}-{}", status.as_str()),
            time: DateTime::from_secs(0),
            logical_id: id.into(),
            resource_type: "T".into(),
            status,
            reason: String::new(),
        }
    }

    #[test]
    fn the_new_version_serves_once_every_added_and_modified_resource_is_complete() {
        let changes = [
            change(ChangeAction::Modify, "Function"),
            change(ChangeAction::Add, "DeploymentB"),
            change(ChangeAction::Remove, "DeploymentA"),
        ];
        let mut events = vec![
            event("Function", ResourceStatus::UpdateInProgress),
            event("Function", ResourceStatus::UpdateComplete),
            event("DeploymentB", ResourceStatus::CreateInProgress),
        ];
        assert!(!new_version_serves(&changes, &events));
        events.push(event("DeploymentB", ResourceStatus::CreateComplete));
        // DeploymentA goes in the cleanup, after the window.
        assert!(new_version_serves(&changes, &events));
    }

    #[test]
    fn a_trigger_in_alarm_is_named_with_its_reason_and_the_way_forward() {
        let trigger = |name: &str, state: StateValue| Trigger {
            name: name.into(),
            arn: format!("arn:aws:cloudwatch:us-east-1:1:alarm:{name}"),
            state,
            reason: "Threshold Crossed: 1 datapoint [7.0] was >= the threshold (5.0)".into(),
            metric: "AWS/ApiGateway 5XXError".into(),
            evaluates_seconds: 300,
        };
        assert!(already_alarming(&[trigger("s-api-5xx", StateValue::Ok)]).is_none());
        let err = already_alarming(&[
            trigger("s-api-5xx", StateValue::Ok),
            trigger("s-lambda-errors", StateValue::Alarm),
        ])
        .unwrap();
        assert!(
            err.cause
                .contains("alarm s-lambda-errors is in ALARM (Threshold Crossed"),
            "{err}"
        );
        assert!(err.fix.contains("ROLLBACK_WINDOW_MINUTES=0"), "{err}");
    }

    /// Alarms by name and evaluation; a `guard-` alarm watches its namesake's metric.
    fn triggers(alarms: &[(&str, u64)]) -> Vec<Trigger> {
        let trigger = |&(name, evaluates_seconds): &(&str, u64)| Trigger {
            name: name.into(),
            arn: String::new(),
            state: StateValue::Ok,
            reason: String::new(),
            metric: name.replace("guard-", ""),
            evaluates_seconds,
        };
        alarms.iter().map(trigger).collect()
    }

    #[test]
    fn a_metric_whose_alarms_all_evaluate_longer_than_the_window_is_named_with_a_window_that_sees_them() {
        let triggers = triggers(&[
            ("s-api-5xx", 300),
            ("s-lambda-errors", 300),
            ("s-guard-lambda-errors", 60),
        ]);
        let sight = sight(&triggers, 3);
        let warning = sight.warning.unwrap();
        assert!(warning.contains("s-api-5xx evaluate 300 s"), "{warning}");
        // Lambda errors are seen by the 1-minute guard alarm: not blind.
        assert!(!warning.contains("lambda-errors"), "{warning}");
        assert!(warning.contains("ROLLBACK_WINDOW_MINUTES=6"), "{warning}");
        assert_eq!(
            sight.note,
            "a 3-minute window can see s-guard-lambda-errors (60 s) fire"
        );
        let six = super::sight(&triggers, 6);
        assert_eq!(six.warning, None);
        assert!(six.note.contains("s-api-5xx (300 s)"), "{}", six.note);
    }

    #[test]
    fn the_templates_guard_alarms_are_seen_by_the_default_window() {
        let triggers = triggers(&[
            ("s-api-5xx", 300),
            ("s-guard-api-5xx", 60),
            ("s-lambda-errors", 300),
            ("s-guard-lambda-errors", 60),
        ]);
        let sight = sight(&triggers, 3);
        assert_eq!(sight.warning, None);
        assert!(
            sight
                .note
                .contains("s-guard-api-5xx (60 s), s-guard-lambda-errors (60 s)"),
            "{}",
            sight.note
        );
        // A 1-minute window cannot see even a 1-minute alarm: its datapoint comes later.
        assert!(
            super::sight(&triggers, 1)
                .warning
                .unwrap()
                .contains("ROLLBACK_WINDOW_MINUTES=2")
        );
    }
}
