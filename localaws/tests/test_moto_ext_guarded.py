"""Guarded updates in the emulator, over HTTP (scripts/local-aws.sh run sets
AWS_ENDPOINT_URL): a change set executed with a RollbackConfiguration keeps the stack
UPDATE_IN_PROGRESS for its monitoring window, and CancelUpdateStack or a trigger alarm
during the window rolls it back, as AWS CloudFormation does. The window's length in real
seconds is MonitoringTimeInMinutes x LOCALAWS_MONITORING_SECONDS_PER_MINUTE (default 1);
the server inherits this process's environment."""

from __future__ import annotations

import io
import os
import pathlib
import time
import uuid
import zipfile

import botocore.exceptions
import pytest

from localaws.tests.conftest import create_change_set

TEMPLATE = (pathlib.Path(__file__).parent / "guarded_stack.yaml").read_text()
SECONDS_PER_MINUTE = float(os.environ.get("LOCALAWS_MONITORING_SECONDS_PER_MINUTE") or 1)
# A window long enough that a test acts inside it, however slow the machine.
LONG_WINDOW = 120
TERMINAL = {"UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "CREATE_COMPLETE"}


@pytest.fixture(scope="module")
def code(aws):
    """Two different function artifacts, so a test can tell which one is deployed."""
    bucket = f"guarded-{uuid.uuid4().hex[:8]}"
    aws["s3"].create_bucket(Bucket=bucket)
    for version in ("v1", "v2"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("bootstrap", f"#!/bin/sh\necho {version}\n")
        aws["s3"].put_object(Bucket=bucket, Key=f"{version}.zip", Body=buffer.getvalue())
    return bucket


class GuardedStack:
    def __init__(self, aws: dict, bucket: str):
        self.aws, self.cfn = aws, aws["cloudformation"]
        self.name = f"guard-{uuid.uuid4().hex[:10]}"
        self.parameters = {"CodeBucket": bucket, "CodeKey": "v1.zip"}

    def change_set(self, kind: str, template: str = TEMPLATE, rollback: dict | None = None, tags: dict | None = None, **changes: str) -> str:
        self.parameters = {**self.parameters, **changes}
        name = f"cs-{uuid.uuid4().hex[:8]}"
        extra = {"RollbackConfiguration": rollback} if rollback is not None else {}
        if tags is not None:
            extra["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        create_change_set(self.cfn, self.name, name, kind, template, self.parameters, **extra)
        return name

    def create(self, token: str | None = None, **kwargs) -> dict:
        name = self.change_set("CREATE", **kwargs)
        self.cfn.execute_change_set(StackName=self.name, ChangeSetName=name, **({"ClientRequestToken": token} if token else {}))
        assert self.status() == "CREATE_COMPLETE"
        return self.outputs()

    def update(self, token: str | None = None, **kwargs) -> str:
        name = self.change_set("UPDATE", **kwargs)
        self.cfn.execute_change_set(StackName=self.name, ChangeSetName=name, **({"ClientRequestToken": token} if token else {}))
        return name

    def describe(self) -> dict:
        (described,) = self.cfn.describe_stacks(StackName=self.name)["Stacks"]
        return described

    def status(self) -> str:
        return self.describe()["StackStatus"]

    def outputs(self) -> dict[str, str]:
        return {o["OutputKey"]: o["OutputValue"] for o in self.describe().get("Outputs", [])}

    def wait(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while (status := self.status()) not in TERMINAL:
            assert time.monotonic() < deadline, f"{self.name} still {status} after {timeout} s"
            time.sleep(0.1)
        return status

    def events(self, token: str | None = None) -> list[dict]:
        """The stack's events, oldest first; only those carrying `token` when given."""
        events = []
        for page in self.cfn.get_paginator("describe_stack_events").paginate(StackName=self.name):
            events.extend(page["StackEvents"])
        events.reverse()
        return [e for e in events if token is None or e.get("ClientRequestToken") == token]

    def stack_statuses(self, token: str) -> list[str]:
        return [e["ResourceStatus"] for e in self.events(token) if e["LogicalResourceId"] == self.name]

    def greeting(self) -> str:
        config = self.aws["lambda"].get_function_configuration(FunctionName=f"{self.name}-fn")
        return config["Environment"]["Variables"]["GREETING"]

    def code_sha(self) -> str:
        return self.aws["lambda"].get_function_configuration(FunctionName=f"{self.name}-fn")["CodeSha256"]

    def alarm(self) -> dict:
        (alarm,) = self.aws["cloudwatch"].describe_alarms(AlarmNames=[f"{self.name}-errors"])["MetricAlarms"]
        return alarm

    def topics(self) -> set[str]:
        arns = {t["TopicArn"] for t in self.aws["sns"].list_topics()["Topics"]}
        return {arn.rsplit(":", 1)[1][len(self.name) + 1 :] for arn in arns if arn.rsplit(":", 1)[1].startswith(f"{self.name}-")}


@pytest.fixture
def stack(aws, code):
    made = GuardedStack(aws, code)
    yield made
    try:
        made.wait(timeout=LONG_WINDOW * SECONDS_PER_MINUTE + 30)
        aws["cloudformation"].delete_stack(StackName=made.name)
    except (botocore.exceptions.ClientError, AssertionError):
        pass


def window(minutes: int, *alarms: str) -> dict:
    return {"MonitoringTimeInMinutes": minutes, "RollbackTriggers": [{"Arn": a, "Type": "AWS::CloudWatch::Alarm"} for a in alarms]}


def test_change_set_keeps_its_rollback_configuration_and_refuses_a_window_over_180_minutes(stack):
    outputs = stack.create()
    name = stack.change_set("UPDATE", rollback=window(3, outputs["AlarmArn"]), Greeting="bonjour")
    described = stack.cfn.describe_change_set(StackName=stack.name, ChangeSetName=name)
    assert described["RollbackConfiguration"] == window(3, outputs["AlarmArn"])

    with pytest.raises(botocore.exceptions.ClientError, match="monitoringTimeInMinutes.*less than or equal to 180"):
        stack.change_set("UPDATE", rollback=window(181), Greeting="salut")


def test_update_with_a_window_holds_update_in_progress_then_cleans_up_and_completes(stack):
    stack.create()
    name = stack.update(token="deploy-2", rollback=window(2), Greeting="bonjour", WithExtra="true")

    # Every change is in place, but CloudFormation still monitors: the stack is in progress
    # and what the update removes (LegacyTopic) is still there.
    assert stack.status() == "UPDATE_IN_PROGRESS"
    assert stack.cfn.describe_change_set(StackName=stack.name, ChangeSetName=name)["ExecutionStatus"] == "EXECUTE_IN_PROGRESS"
    assert stack.greeting() == "bonjour"
    assert stack.topics() == {"extra", "legacy"}
    done = {(e["LogicalResourceId"], e["ResourceStatus"]) for e in stack.events("deploy-2")}
    assert {("Function", "UPDATE_COMPLETE"), ("ExtraTopic", "CREATE_COMPLETE")} <= done
    assert not any(logical == "LegacyTopic" for logical, _ in done)
    # Until the window closes, the stack takes no other operation.
    with pytest.raises(botocore.exceptions.ClientError, match="is in UPDATE_IN_PROGRESS state and can not be updated"):
        stack.change_set("UPDATE", Greeting="hola")
    with pytest.raises(botocore.exceptions.ClientError, match="cannot be deleted while in status UPDATE_IN_PROGRESS"):
        stack.cfn.delete_stack(StackName=stack.name)

    assert stack.wait() == "UPDATE_COMPLETE"
    assert stack.topics() == {"extra"}, "the removal happens in the cleanup after the window"
    assert stack.stack_statuses("deploy-2") == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE"]
    events = stack.events("deploy-2")
    cleanup = next(i for i, e in enumerate(events) if e["ResourceStatus"] == "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
    assert [(e["LogicalResourceId"], e["ResourceStatus"]) for e in events[cleanup + 1 : -1]] == [
        ("LegacyTopic", "DELETE_IN_PROGRESS"),
        ("LegacyTopic", "DELETE_COMPLETE"),
    ]
    # The window held the stack for MonitoringTimeInMinutes emulator minutes after the
    # last resource completed.
    held = events[cleanup]["Timestamp"] - events[cleanup - 1]["Timestamp"]
    assert held.total_seconds() >= 2 * SECONDS_PER_MINUTE
    assert stack.cfn.describe_change_set(StackName=stack.name, ChangeSetName=name)["ExecutionStatus"] == "EXECUTE_COMPLETE"


def test_cancel_in_the_window_restores_template_parameters_tags_and_resources(stack):
    stack.create(tags={"commit": "aaa"})
    before = stack.describe()
    template_before = stack.cfn.get_template(StackName=stack.name)["TemplateBody"]
    sha_before = stack.code_sha()

    changed_template = TEMPLATE.replace("Description: guarded update test stack", "Description: guarded update test stack, v2")
    stack.update(
        template=changed_template,
        tags={"commit": "bbb"},
        rollback=window(LONG_WINDOW),
        Greeting="bonjour",
        AlarmThreshold="9",
        CodeKey="v2.zip",
        WithExtra="true",
    )
    assert stack.status() == "UPDATE_IN_PROGRESS"
    assert (stack.greeting(), stack.alarm()["Threshold"], stack.topics()) == ("bonjour", 9.0, {"extra", "legacy"})
    assert stack.code_sha() != sha_before

    stack.cfn.cancel_update_stack(StackName=stack.name, ClientRequestToken="cancel-1")

    assert stack.wait() == "UPDATE_ROLLBACK_COMPLETE"
    after = stack.describe()
    assert sorted(after["Parameters"], key=lambda p: p["ParameterKey"]) == sorted(before["Parameters"], key=lambda p: p["ParameterKey"])
    assert after["Tags"] == before["Tags"] == [{"Key": "commit", "Value": "aaa"}]
    assert after["Description"] == "guarded update test stack"
    assert stack.cfn.get_template(StackName=stack.name)["TemplateBody"] == template_before
    assert stack.outputs()["Greeting"] == "hello"
    # The resources really are back: environment, code, alarm threshold, added and removed ones.
    assert stack.greeting() == "hello"
    assert stack.code_sha() == sha_before
    assert stack.alarm()["Threshold"] == 5.0
    assert stack.topics() == {"legacy"}

    events = stack.events("cancel-1")
    assert stack.stack_statuses("cancel-1") == ["UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"]
    assert events[0]["ResourceStatusReason"] == "Stack update cancelled"
    assert ("ExtraTopic", "DELETE_COMPLETE") in {(e["LogicalResourceId"], e["ResourceStatus"]) for e in events}
    assert ("Function", "UPDATE_COMPLETE") in {(e["LogicalResourceId"], e["ResourceStatus"]) for e in events}

    # The rolled-back stack takes the next update as usual.
    stack.update(Greeting="hola")
    assert (stack.status(), stack.greeting()) == ("UPDATE_COMPLETE", "hola")


def test_a_resource_under_a_new_logical_id_replaces_the_old_one_only_when_the_window_closes(stack):
    """How the deployer renames the API deployment: the old resource leaves the template
    and a new one arrives. A rollback keeps the old one; the cleanup deletes it."""
    renamed = TEMPLATE.replace("  LegacyTopic:", "  RenamedTopic:").replace("-legacy", "-renamed")
    stack.create()

    stack.update(template=renamed, rollback=window(LONG_WINDOW), Greeting="bonjour")
    assert stack.topics() == {"legacy", "renamed"}
    stack.cfn.cancel_update_stack(StackName=stack.name)
    assert stack.wait() == "UPDATE_ROLLBACK_COMPLETE"
    assert stack.topics() == {"legacy"}
    listed = {r["LogicalResourceId"] for r in stack.cfn.describe_stack_resources(StackName=stack.name)["StackResources"]}
    assert "LegacyTopic" in listed and "RenamedTopic" not in listed

    stack.update(template=renamed, token="deploy-3", rollback=window(1), Greeting="bonjour")
    assert stack.wait() == "UPDATE_COMPLETE"
    assert stack.topics() == {"renamed"}
    listed = {r["LogicalResourceId"] for r in stack.cfn.describe_stack_resources(StackName=stack.name)["StackResources"]}
    assert "RenamedTopic" in listed and "LegacyTopic" not in listed
    assert ("LegacyTopic", "DELETE_COMPLETE") in {(e["LogicalResourceId"], e["ResourceStatus"]) for e in stack.events("deploy-3")}


def test_trigger_alarm_in_the_window_rolls_the_update_back_naming_the_alarm(stack):
    alarm_arn = stack.create()["AlarmArn"]
    stack.update(token="deploy-2", rollback=window(LONG_WINDOW, alarm_arn), Greeting="bonjour", CodeKey="v2.zip")
    assert (stack.status(), stack.greeting()) == ("UPDATE_IN_PROGRESS", "bonjour")
    assert stack.describe()["RollbackConfiguration"] == window(LONG_WINDOW, alarm_arn)

    stack.aws["cloudwatch"].set_alarm_state(AlarmName=f"{stack.name}-errors", StateValue="ALARM", StateReason="errors on the new version")

    assert stack.wait() == "UPDATE_ROLLBACK_COMPLETE"
    assert stack.greeting() == "hello"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack.describe()["Parameters"]}["CodeKey"] == "v1.zip"
    # The rollback belongs to the ExecuteChangeSet: its events carry that token.
    rollback = next(e for e in stack.events("deploy-2") if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS")
    assert rollback["ResourceStatusReason"] == f"The following CloudWatch Alarms were in ALARM state: [{alarm_arn}]"
    assert stack.stack_statuses("deploy-2")[-1] == "UPDATE_ROLLBACK_COMPLETE"


def test_trigger_alarm_already_in_alarm_rolls_the_update_back_before_anything_changes(stack):
    alarm_arn = stack.create()["AlarmArn"]
    stack.aws["cloudwatch"].set_alarm_state(AlarmName=f"{stack.name}-errors", StateValue="ALARM", StateReason="already failing")

    stack.update(token="deploy-2", rollback=window(LONG_WINDOW, alarm_arn), Greeting="bonjour")

    assert stack.status() == "UPDATE_ROLLBACK_COMPLETE"
    assert stack.greeting() == "hello"
    assert stack.stack_statuses("deploy-2") == [
        "UPDATE_IN_PROGRESS",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE",
    ]
    assert alarm_arn in stack.events("deploy-2")[1]["ResourceStatusReason"]


def test_a_trigger_alarm_that_does_not_exist_rolls_the_update_back_naming_it(stack):
    missing = stack.create()["AlarmArn"] + "-gone"
    stack.update(token="deploy-2", rollback=window(LONG_WINDOW, missing), Greeting="bonjour")

    assert (stack.status(), stack.greeting()) == ("UPDATE_ROLLBACK_COMPLETE", "hello")
    assert missing in stack.events("deploy-2")[1]["ResourceStatusReason"]


def test_saved_triggers_guard_later_updates_until_an_empty_list_removes_them(stack):
    alarm_arn = stack.create()["AlarmArn"]
    stack.update(rollback=window(1, alarm_arn), Greeting="bonjour")
    assert stack.wait() == "UPDATE_COMPLETE"
    stack.aws["cloudwatch"].set_alarm_state(AlarmName=f"{stack.name}-errors", StateValue="ALARM", StateReason="failing")

    # No triggers given: the stack's saved ones still apply, as AWS documents.
    stack.update(rollback={"MonitoringTimeInMinutes": 0}, Greeting="hola")
    assert (stack.status(), stack.greeting()) == ("UPDATE_ROLLBACK_COMPLETE", "bonjour")

    stack.update(rollback=window(0), Greeting="hola")
    assert (stack.status(), stack.greeting()) == ("UPDATE_COMPLETE", "hola")
    assert stack.describe()["RollbackConfiguration"] == window(0)


def test_cancel_outside_an_update_in_progress_is_refused(stack):
    stack.create()
    with pytest.raises(botocore.exceptions.ClientError, match="CancelUpdateStack cannot be called from current stack status"):
        stack.cfn.cancel_update_stack(StackName=stack.name)

    stack.update(rollback=window(1), Greeting="bonjour")
    assert stack.wait() == "UPDATE_COMPLETE"
    with pytest.raises(botocore.exceptions.ClientError, match="CancelUpdateStack cannot be called from current stack status"):
        stack.cfn.cancel_update_stack(StackName=stack.name)
    assert (stack.status(), stack.greeting()) == ("UPDATE_COMPLETE", "bonjour")


@pytest.mark.parametrize("rollback", [None, window(0)], ids=["no configuration", "window 0"])
def test_update_without_a_window_completes_at_once_as_before(stack, rollback):
    stack.create()
    stack.update(token="deploy-2", rollback=rollback, Greeting="bonjour", WithExtra="true")

    assert stack.status() == "UPDATE_COMPLETE"
    assert (stack.greeting(), stack.topics()) == ("bonjour", {"extra"})
    assert [e["LogicalResourceId"] for e in stack.events("deploy-2")] == [stack.name, stack.name]
    assert stack.stack_statuses("deploy-2") == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]


def test_events_of_an_operation_carry_its_client_request_token(stack):
    stack.create(token="create-1")
    stack.update(token="update-2", rollback=window(1), Greeting="bonjour")
    assert stack.wait() == "UPDATE_COMPLETE"

    everything = stack.events()
    assert len({e["EventId"] for e in everything}) == len(everything), "event ids are unique"
    created, updated = stack.events("create-1"), stack.events("update-2")
    assert created and updated and not {e["EventId"] for e in created} & {e["EventId"] for e in updated}
    assert created[-1]["ResourceStatus"] == "CREATE_COMPLETE"
    assert (updated[0]["ResourceStatus"], updated[0]["ResourceStatusReason"]) == ("UPDATE_IN_PROGRESS", "User Initiated")
    assert updated[-1]["ResourceStatus"] == "UPDATE_COMPLETE"
    stamps = [e["Timestamp"] for e in updated]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), "the operation's events are in time order"
    assert created[-1]["Timestamp"] < updated[0]["Timestamp"]


@pytest.mark.parametrize("setting", ["fast", "-1", "inf"])
def test_a_bad_seconds_per_minute_setting_stops_the_emulator_at_start_naming_the_fix(setting):
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    env = {**os.environ, "LOCALAWS_MONITORING_SECONDS_PER_MINUTE": setting}
    started = subprocess.run(
        [sys.executable, "-m", "localaws.server", "--host", "127.0.0.1", "--port", "0"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )
    assert started.returncode == 2
    assert f"LOCALAWS_MONITORING_SECONDS_PER_MINUTE='{setting}' is not a number of seconds" in started.stderr
    assert "e.g. 0.5" in started.stderr and "Traceback" not in started.stderr
