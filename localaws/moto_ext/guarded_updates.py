"""Updates guarded by a RollbackConfiguration, as CloudFormation runs them.

moto ignores `RollbackConfiguration` and has no CancelUpdateStack. Here an UPDATE change
set executed with a monitoring window (`MonitoringTimeInMinutes` > 0) updates and creates
its resources, writes a stack event pair for each, and then keeps the stack
`UPDATE_IN_PROGRESS` for the window. What the update removes is deleted only when the
window closes (`UPDATE_COMPLETE_CLEANUP_IN_PROGRESS` -> `UPDATE_COMPLETE`), as in AWS.
During the window, CancelUpdateStack, or SetAlarmState to ALARM on a rollback trigger,
rolls the update back: the previous template, parameters, tags and resource properties
come back, what the update added is deleted, and the stack ends
`UPDATE_ROLLBACK_COMPLETE`. A trigger that is already in ALARM (or does not exist) when
the change set executes rolls the update back before any resource changes.

The window is `MonitoringTimeInMinutes` x `LOCALAWS_MONITORING_SECONDS_PER_MINUTE`
seconds of real time (default 1, so a 3-minute window lasts 3 s). A window that has run
out is closed by the next request the emulator serves, whatever its service, before that
request runs: nothing can observe the stack in between, and the closing events carry the
time the window ended. A window of 0 with no trigger in ALARM runs the update exactly as
before (synchronously, stack-level events only).

Every stack event written while serving a request carries that request's
`ClientRequestToken`; the events of a window's end, or of a rollback an alarm started,
carry the token of the ExecuteChangeSet they belong to, and a cancel's rollback carries
the CancelUpdateStack's token, as AWS assigns tokens to "the operation that generated
the event".
"""

from __future__ import annotations

import copy
import datetime
import functools
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import ChangeSet, CloudFormationBackend, Event, Stack
from moto.cloudformation.responses import CloudFormationResponse
from moto.cloudwatch.models import CloudWatchBackend, cloudwatch_backends
from moto.core.responses import BaseResponse, EmptyResult
from moto.core.utils import utcnow

SECONDS_PER_MINUTE_VARIABLE = "LOCALAWS_MONITORING_SECONDS_PER_MINUTE"
DEFAULT_SECONDS_PER_MINUTE = 1.0

TRIGGER_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
CANCELLED = "Stack update cancelled"
CANNOT_CANCEL = "CancelUpdateStack cannot be called from current stack status"
STACK_TYPE = "AWS::CloudFormation::Stack"

_log = logging.getLogger(__name__)

# The server is threaded: windows are opened, closed and rolled back under this lock.
_lock = threading.RLock()
# Open monitoring windows, by stack id.
_windows: dict[str, Window] = {}
# The ClientRequestToken of the request this thread serves.
_request = threading.local()


@dataclass
class Previous:
    """What a rollback restores: the stack as it was before the update."""

    template: Any
    parameters: dict[str, Any]
    input_parameters: dict[str, Any]
    tags: dict[str, str]
    description: str | None


@dataclass
class Window:
    backend: CloudFormationBackend
    stack: Stack
    change_set: ChangeSet
    token: str | None
    previous: Previous
    triggers: list[str]
    closes_at: datetime.datetime
    # (action, logical id, resource type) of what the change set adds and modifies.
    changed: list[tuple[str, str, str]] = field(default_factory=list)
    # Deletions held back until the cleanup: (logical id, resource, resource json).
    removals: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)


def apply() -> None:
    seconds_per_minute()  # a bad setting stops the emulator at start, not at the first deploy
    _tokens_on_events()
    _rollback_configuration_is_accepted()
    _execute_with_monitoring_window()
    _removals_wait_for_cleanup()
    _cancel_update_stack()
    _trigger_alarms_roll_back()
    _busy_stacks_refuse_operations()
    _windows_close_on_the_next_request()


class SettingError(ValueError):
    """An emulator setting the emulator cannot run with."""


def seconds_per_minute() -> float:
    """The emulator's minute, in real seconds."""
    raw = os.environ.get(SECONDS_PER_MINUTE_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_SECONDS_PER_MINUTE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise SettingError(
            f"{SECONDS_PER_MINUTE_VARIABLE}={raw!r} is not a number of seconds: set it to how many real "
            f"seconds one minute of a monitoring window lasts (e.g. 0.5), or unset it for {DEFAULT_SECONDS_PER_MINUTE:g}"
        )
    return value


# --- request plumbing -------------------------------------------------------------


def _tokens_on_events() -> None:
    """moto never set an event's ClientRequestToken. An event takes the token of the
    request being served; events written later set theirs explicitly."""
    init = Event.__init__

    @functools.wraps(init)
    def init_with_token(self: Event, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.client_request_token = getattr(_request, "token", None)

    Event.__init__ = init_with_token  # type: ignore[method-assign]

    add_stack_event = Stack._add_stack_event

    @functools.wraps(add_stack_event)
    def add_in_time_order(self: Stack, *args: Any, **kwargs: Any) -> None:
        add_stack_event(self, *args, **kwargs)
        _after_the_last(self.events)

    Stack._add_stack_event = add_in_time_order  # type: ignore[method-assign]

    for action in ("create_stack", "update_stack", "delete_stack", "execute_change_set"):
        original = getattr(CloudFormationResponse, action)

        def with_token(self: CloudFormationResponse, _original: Any = original) -> Any:
            _request.token = self._get_param("ClientRequestToken")
            try:
                return _original(self)
            finally:
                _request.token = None

        setattr(CloudFormationResponse, action, functools.wraps(original)(with_token))


def _windows_close_on_the_next_request() -> None:
    """Every HTTP request to the server (S3's too, which has its own dispatch) and every
    action moto serves first closes the windows that have run out."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    serve = DomainDispatcherApplication.__call__

    @functools.wraps(serve)
    def settle_then_serve(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if _windows:
            with _lock:
                settle_due()
        return serve(self, environ, start_response)

    DomainDispatcherApplication.__call__ = settle_then_serve  # type: ignore[method-assign]

    call_action = BaseResponse.call_action

    @functools.wraps(call_action)
    def settle_then_call(self: BaseResponse) -> Any:
        if _windows:
            with _lock:
                settle_due()
        return call_action(self)

    BaseResponse.call_action = settle_then_call  # type: ignore[method-assign]


# --- RollbackConfiguration in and out ----------------------------------------------


def parse_rollback_configuration(raw: Any) -> dict[str, Any] | None:
    """The request's RollbackConfiguration, checked as CloudFormation checks it. Returns
    None when the request has none (the stack's saved triggers then apply)."""
    if raw is None:
        return None
    raw = raw or {}
    config: dict[str, Any] = {}
    if raw.get("MonitoringTimeInMinutes") is not None:
        minutes = int(raw["MonitoringTimeInMinutes"])
        if minutes < 0 or minutes > 180:
            bound = "less than or equal to 180" if minutes > 180 else "greater than or equal to 0"
            raise ValidationError(
                message=f"1 validation error detected: Value '{minutes}' at 'rollbackConfiguration.monitoringTimeInMinutes' "
                f"failed to satisfy constraint: Member must have value {bound}"
            )
        config["MonitoringTimeInMinutes"] = minutes
    if "RollbackTriggers" in raw:
        triggers = list(raw.get("RollbackTriggers") or [])
        if len(triggers) > 5:
            raise ValidationError(
                message="1 validation error detected: Value at 'rollbackConfiguration.rollbackTriggers' "
                "failed to satisfy constraint: Member must have length less than or equal to 5"
            )
        for trigger in triggers:
            if trigger.get("Type") not in TRIGGER_TYPES:
                raise ValidationError(
                    message=f"Rollback trigger {trigger.get('Arn')} has type {trigger.get('Type')!r}; "
                    f"the type must be one of {', '.join(TRIGGER_TYPES)}"
                )
            if not str(trigger.get("Arn", "")).startswith("arn:"):
                raise ValidationError(message=f"Rollback trigger ARN {trigger.get('Arn')!r} is not an ARN")
        config["RollbackTriggers"] = [{"Arn": t["Arn"], "Type": t["Type"]} for t in triggers]
    return config


def effective_configuration(saved: dict[str, Any] | None, given: dict[str, Any] | None) -> dict[str, Any]:
    """The configuration an operation runs with. AWS documents that a stack's triggers are
    saved and apply to later operations unless one gives new ones (an empty list removes
    them). It documents no such thing for the window, so each operation has its own
    (default 0): an update without a RollbackConfiguration has no window."""
    saved = saved or {}
    given = given or {}
    triggers = given["RollbackTriggers"] if "RollbackTriggers" in given else saved.get("RollbackTriggers", [])
    config: dict[str, Any] = {}
    if triggers or "RollbackTriggers" in given:
        config["RollbackTriggers"] = copy.deepcopy(triggers)
    if "MonitoringTimeInMinutes" in given:
        config["MonitoringTimeInMinutes"] = given["MonitoringTimeInMinutes"]
    return config


def _rollback_configuration_is_accepted() -> None:
    """CreateChangeSet, CreateStack and UpdateStack take a RollbackConfiguration; the change
    set keeps it (DescribeChangeSet shows it) and the stack saves it (DescribeStacks)."""
    create_change_set = CloudFormationResponse.create_change_set

    @functools.wraps(create_change_set)
    def create_change_set_keeping(self: CloudFormationResponse) -> Any:
        config = parse_rollback_configuration(self._get_param("RollbackConfiguration"))
        result = create_change_set(self)
        change_set = self.cloudformation_backend.change_sets.get(result.result["Id"])
        if change_set is not None:
            change_set.rollback_configuration = config
        return result

    CloudFormationResponse.create_change_set = create_change_set_keeping  # type: ignore[method-assign]

    for action in ("create_stack", "update_stack"):
        original = getattr(CloudFormationResponse, action)

        def saving(self: CloudFormationResponse, _original: Any = original) -> Any:
            config = parse_rollback_configuration(self._get_param("RollbackConfiguration"))
            result = _original(self)
            stack = self.cloudformation_backend.get_stack(result.result["StackId"])
            stack.rollback_configuration = effective_configuration(getattr(stack, "rollback_configuration", None), config)
            return result

        setattr(CloudFormationResponse, action, functools.wraps(original)(saving))


# --- executing with a window -------------------------------------------------------


def _execute_with_monitoring_window() -> None:
    execute = CloudFormationBackend.execute_change_set

    @functools.wraps(execute)
    def execute_guarded(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
        with _lock:
            settle_due()
            change_set = self.describe_change_set(change_set_name)
            stack = self.stacks[change_set.stack_id]
            if stack.stack_id in _windows:  # named by the change set's ARN alone
                raise ValidationError(message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
            config = effective_configuration(getattr(stack, "rollback_configuration", None), getattr(change_set, "rollback_configuration", None))
            stack.rollback_configuration = config
            if change_set.change_set_type != "UPDATE":
                return execute(self, change_set_name, stack_name)
            triggers = [t["Arn"] for t in config.get("RollbackTriggers", [])]
            token = getattr(_request, "token", None)
            refused = _trigger_reason(triggers)
            if refused is not None:
                _roll_back_before_any_change(stack, change_set, refused, token)
                return None
            minutes = config.get("MonitoringTimeInMinutes", 0)
            if minutes <= 0:
                return execute(self, change_set_name, stack_name)
            _open_window(self, execute, change_set_name, stack_name, stack, change_set, triggers, minutes, token)
            return None

    CloudFormationBackend.execute_change_set = execute_guarded  # type: ignore[method-assign]


def _open_window(backend: CloudFormationBackend, execute: Any, change_set_name: str, stack_name: str | None, stack: Stack, change_set: ChangeSet, triggers: list[str], minutes: int, token: str | None) -> None:
    resource_map = stack.resource_map
    window = Window(
        backend=backend,
        stack=stack,
        change_set=change_set,
        token=token,
        previous=Previous(
            template=stack.template,
            parameters=copy.deepcopy(stack.parameters),
            input_parameters=copy.deepcopy(dict(resource_map.input_parameters or {})),
            tags=copy.deepcopy(stack.tags),
            description=stack.description,
        ),
        triggers=triggers,
        closes_at=utcnow(),
        changed=[(c.action, c.logical_resource_id, c.resource_type) for c in change_set.changes if c.action in ("Add", "Modify")],
    )
    started = utcnow()
    resource_map._ext_held_removals = ({c.logical_resource_id for c in change_set.changes if c.action == "Remove"}, window.removals)
    try:
        with _moto_events_silenced(stack):
            execute(backend, change_set_name, stack_name)
    finally:
        del resource_map._ext_held_removals
    # Written once moto applied the update (a failure there is moto's error, as without a
    # window), stamped with the time the update started.
    _event(stack, "UPDATE_IN_PROGRESS", "User Initiated", token=token, at=started)
    for action, logical_id, resource_type in window.changed:
        physical = _physical_id(resource_map._parsed_resources.get(logical_id))
        if action == "Add":
            _event(stack, "CREATE_IN_PROGRESS", token=token, resource=(logical_id, None, resource_type))
            _event(stack, "CREATE_IN_PROGRESS", "Resource creation Initiated", token=token, resource=(logical_id, physical, resource_type))
            _event(stack, "CREATE_COMPLETE", token=token, resource=(logical_id, physical, resource_type))
        else:
            _event(stack, "UPDATE_IN_PROGRESS", token=token, resource=(logical_id, physical, resource_type))
            _event(stack, "UPDATE_COMPLETE", token=token, resource=(logical_id, physical, resource_type))
    stack.status = "UPDATE_IN_PROGRESS"
    change_set.execution_status = "EXECUTE_IN_PROGRESS"
    # The window starts once every resource is in place.
    window.closes_at = utcnow() + datetime.timedelta(seconds=minutes * seconds_per_minute())
    _windows[stack.stack_id] = window


def _removals_wait_for_cleanup() -> None:
    """While a window's update runs, deleting a resource the change set removes is held
    back until the cleanup after the window (or dropped by a rollback)."""
    delete = parsing.ResourceMap._delete_resource

    @functools.wraps(delete)
    def delete_or_hold(self: Any, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
        held = getattr(self, "_ext_held_removals", None)
        logical_id = getattr(parsed_resource, "logical_resource_id", None)
        if held is not None and logical_id in held[0]:
            held[1].append((logical_id, parsed_resource, resource_json))
            return
        delete(self, parsed_resource, resource_json)

    parsing.ResourceMap._delete_resource = delete_or_hold  # type: ignore[method-assign]


def settle_due(now: datetime.datetime | None = None) -> None:
    """Closes every window that has run out. The caller holds the lock."""
    now = now or utcnow()
    for window in [w for w in _windows.values() if w.closes_at <= now]:
        try:
            _close(window)
        except Exception:  # noqa: BLE001 - the request that closes it may be anyone's
            # A failed cleanup leaves an update complete in AWS as well.
            _log.exception("closing the monitoring window of %s failed", window.stack.name)
            window.stack.status = "UPDATE_COMPLETE"
            window.change_set.execution_status = "EXECUTE_COMPLETE"


def _close(window: Window) -> None:
    _windows.pop(window.stack.stack_id, None)
    stack, token, at = window.stack, window.token, window.closes_at
    resource_map = stack.resource_map
    _event(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", token=token, at=at)
    for logical_id, resource, resource_json in window.removals:
        physical = _physical_id(resource)
        _event(stack, "DELETE_IN_PROGRESS", token=token, resource=(logical_id, physical, resource_json["Type"]), at=at)
        try:
            resource_map._delete_resource(resource, resource_json)
        except Exception as error:  # noqa: BLE001 - AWS skips a failed cleanup delete too
            _event(stack, "DELETE_FAILED", str(error), token=token, resource=(logical_id, physical, resource_json["Type"]), at=at)
        else:
            _event(stack, "DELETE_COMPLETE", token=token, resource=(logical_id, physical, resource_json["Type"]), at=at)
        if resource_map._parsed_resources.get(logical_id) is resource:
            resource_map._parsed_resources.pop(logical_id, None)
    _event(stack, "UPDATE_COMPLETE", token=token, at=at)
    stack.status = "UPDATE_COMPLETE"
    window.change_set.execution_status = "EXECUTE_COMPLETE"


# --- rolling back -----------------------------------------------------------------


def _trigger_reason(triggers: list[str]) -> str | None:
    """Why the triggers stop an update, or None. The wording is the one AWS writes
    (a real-AWS test pins its start: molecule-man/stack-assembly,
    tests/features/sync-rollback.feature)."""
    firing, missing = [], []
    for arn in triggers:
        alarm = _alarm(arn)
        if alarm is None:
            missing.append(arn)
        elif alarm.state_value == "ALARM":
            firing.append(arn)
    if firing:
        return alarms_reason(firing)
    if missing:
        # AWS documents the outcome ("the entire stack operation fails and is rolled
        # back"), not the words: these are the emulator's.
        return f"The following rollback triggers do not exist: [{', '.join(missing)}]"
    return None


def alarms_reason(arns: list[str]) -> str:
    return f"The following CloudWatch Alarms were in ALARM state: [{', '.join(arns)}]"


def _alarm(arn: str) -> Any:
    parts = arn.split(":", 6)
    if len(parts) < 7 or parts[2] != "cloudwatch" or parts[5] != "alarm":
        return None
    region, account, name = parts[3], parts[4], parts[6]
    try:
        return cloudwatch_backends[account][region].alarms.get(name)
    except KeyError:
        return None


def _roll_back_before_any_change(stack: Stack, change_set: ChangeSet, reason: str, token: str | None) -> None:
    _event(stack, "UPDATE_IN_PROGRESS", "User Initiated", token=token)
    _event(stack, "UPDATE_ROLLBACK_IN_PROGRESS", reason, token=token)
    _event(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", token=token)
    _event(stack, "UPDATE_ROLLBACK_COMPLETE", token=token)
    stack.status = "UPDATE_ROLLBACK_COMPLETE"
    change_set.execution_status = "EXECUTE_FAILED"


def roll_back(window: Window, reason: str, token: str | None) -> None:
    """Rolls an update in its window back to the previous template, parameters, tags and
    resource properties. The caller holds the lock."""
    _windows.pop(window.stack.stack_id, None)
    stack, previous = window.stack, window.previous
    resource_map = stack.resource_map
    _event(stack, "UPDATE_ROLLBACK_IN_PROGRESS", reason, token=token)

    # What the update removed was never deleted: it is the stack's again.
    for logical_id, resource, _ in window.removals:
        resource_map._parsed_resources[logical_id] = resource
    added = [(logical_id, resource_type) for action, logical_id, resource_type in window.changed if action == "Add"]
    added_physical = {logical_id: _physical_id(resource_map._parsed_resources.get(logical_id)) for logical_id, _ in added}

    template = Stack.parse_template(previous.template) if isinstance(previous.template, str) else copy.deepcopy(previous.template)
    resource_map.input_parameters = copy.deepcopy(previous.input_parameters)
    try:
        with _moto_events_silenced(stack):
            resource_map.update(template, copy.deepcopy(previous.input_parameters) or None)
    except Exception as error:  # noqa: BLE001 - any resource that cannot be restored
        _log.exception("rolling back %s failed", stack.name)
        _event(stack, "UPDATE_ROLLBACK_FAILED", f"The emulator could not restore the previous resources: {error}", token=token)
        stack.status = "UPDATE_ROLLBACK_FAILED"
        window.change_set.execution_status = "EXECUTE_FAILED"
        return
    for logical_id, _ in added:
        resource_map._parsed_resources.pop(logical_id, None)
        getattr(resource_map, "_ext_resolved", {}).pop(logical_id, None)

    for action, logical_id, resource_type in window.changed:
        if action == "Modify":
            physical = _physical_id(resource_map._parsed_resources.get(logical_id))
            _event(stack, "UPDATE_IN_PROGRESS", token=token, resource=(logical_id, physical, resource_type))
            _event(stack, "UPDATE_COMPLETE", token=token, resource=(logical_id, physical, resource_type))

    old_exports = {export.name for export in stack.exports}
    stack.template = previous.template
    stack._parse_template()
    stack.description = previous.description
    stack.parameters = previous.parameters
    stack.tags = previous.tags
    stack.output_map = stack._create_output_map()
    for name in old_exports:
        window.backend.exports.pop(name, None)
    for export in stack.exports:
        window.backend.exports[export.name] = export

    _event(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", token=token)
    for logical_id, resource_type in added:
        _event(stack, "DELETE_IN_PROGRESS", token=token, resource=(logical_id, added_physical[logical_id], resource_type))
        _event(stack, "DELETE_COMPLETE", token=token, resource=(logical_id, added_physical[logical_id], resource_type))
    _event(stack, "UPDATE_ROLLBACK_COMPLETE", token=token)
    stack.status = "UPDATE_ROLLBACK_COMPLETE"
    window.change_set.execution_status = "EXECUTE_FAILED"


def _cancel_update_stack() -> None:
    def cancel_update_stack(self: CloudFormationResponse) -> EmptyResult:
        stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
        with _lock:
            settle_due()
            window = _windows.get(stack.stack_id)
            if window is None or stack.status != "UPDATE_IN_PROGRESS":
                raise ValidationError(message=CANNOT_CANCEL)
            roll_back(window, CANCELLED, token=self._get_param("ClientRequestToken"))
        return EmptyResult()

    CloudFormationResponse.cancel_update_stack = cancel_update_stack  # type: ignore[attr-defined]


def _trigger_alarms_roll_back() -> None:
    set_alarm_state = CloudWatchBackend.set_alarm_state

    @functools.wraps(set_alarm_state)
    def set_and_watch(self: CloudWatchBackend, alarm_name: str, reason: str, reason_data: str, state_value: str) -> None:
        set_alarm_state(self, alarm_name, reason, reason_data, state_value)
        if state_value != "ALARM":
            return
        arn = self.alarms[alarm_name].alarm_arn
        with _lock:
            settle_due()
            for window in [w for w in _windows.values() if arn in w.triggers]:
                roll_back(window, alarms_reason([arn]), token=window.token)

    CloudWatchBackend.set_alarm_state = set_and_watch  # type: ignore[method-assign]


def _busy_stacks_refuse_operations() -> None:
    """A stack in its window is UPDATE_IN_PROGRESS: AWS refuses to update or delete it, or
    to make a change set for it."""
    for action in ("update_stack", "create_change_set", "execute_change_set", "delete_stack"):
        original = getattr(CloudFormationResponse, action)

        def refusing(self: CloudFormationResponse, _original: Any = original, _action: str = action) -> Any:
            name = self._get_param("StackName")
            try:
                stack = self.cloudformation_backend.get_stack(name) if name else None
            except ValidationError:
                stack = None
            if stack is not None and stack.stack_id in _windows:
                if _action == "delete_stack":
                    raise ValidationError(message=f"Stack [{stack.name}] cannot be deleted while in status {stack.status}")
                raise ValidationError(message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
            return _original(self)

        setattr(CloudFormationResponse, action, functools.wraps(original)(refusing))


# --- events -----------------------------------------------------------------------


class _moto_events_silenced:
    """moto writes its own UPDATE_IN_PROGRESS/UPDATE_COMPLETE pair around an update; a
    guarded update writes its own sequence instead."""

    def __init__(self, stack: Stack):
        self.stack = stack

    def __enter__(self) -> None:
        self.stack._add_stack_event = lambda *args, **kwargs: None  # type: ignore[method-assign]

    def __exit__(self, *exc: Any) -> None:
        del self.stack._add_stack_event


def _physical_id(resource: Any) -> str | None:
    if resource is None:
        return None
    try:
        physical = resource.physical_resource_id
    except Exception:  # noqa: BLE001 - some moto models compute it and may fail
        return None
    return physical if isinstance(physical, str) else None


def _event(stack: Stack, status: str, reason: str | None = None, *, token: str | None, resource: tuple[str, str | None, str] | None = None, at: datetime.datetime | None = None) -> None:
    logical_id, physical_id, resource_type = resource or (stack.name, stack.stack_id, STACK_TYPE)
    event = Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=logical_id,
        physical_resource_id=physical_id or "",
        resource_type=resource_type,
        resource_status=status,
        resource_status_reason=reason,
        resource_properties=None,
    )
    event.client_request_token = token
    if at is not None:
        event.timestamp = at
    stack.events.append(event)
    _after_the_last(stack.events)
    event.sendToSns(stack.account_id, stack.region_name, stack.notification_arns)


def _after_the_last(events: list[Event]) -> None:
    """Strictly increasing timestamps, so a client can order and filter events by them."""
    if len(events) > 1 and events[-1].timestamp <= events[-2].timestamp:
        events[-1].timestamp = events[-2].timestamp + datetime.timedelta(milliseconds=1)
