"""Fixes to behaviour of models moto already has."""

from __future__ import annotations

import functools
from typing import Any

from moto.apigateway.models import Deployment, Integration, Method, RestAPI, apigateway_backends
from moto.awslambda.models import LambdaFunction
from moto.cloudformation.models import CloudFormationBackend, Stack
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table
from moto.iam.models import Role, iam_backends
from moto.logs.models import LogGroup, logs_backends

from ..cfn_refs import names_in
from .cfn_props import as_bool, camel


def apply() -> None:
    _lambda_function_configuration()  # before the Architectures wrapper, which wraps it
    _keep_lambda_architectures()
    _outputs_after_change_set()
    _deployment_ref_is_its_id()
    _method_integration_without_uri()
    _no_value_removes_list_items()
    _short_form_condition_in_conditions()
    _parameter_constraints()
    _change_set_changes_follow_parameters()
    _validate_template_lists_parameters()
    _lambda_permission_identity()
    _conditional_resources_are_not_listed()
    _updates_follow_resolved_properties()
    _depends_on_comes_first()
    _rest_api_properties()
    _log_group_updates_in_place()
    _role_policies_follow_the_template()
    _tags_only_change_sets()
    _dynamodb_table_properties()
    _list_parameters_described_as_given()
    _secret_current_follows_its_stage()


def _keep_lambda_architectures() -> None:
    """moto builds the function from a fixed list of properties that lacks
    Architectures, so arm64 silently became x86_64."""
    create = LambdaFunction.create_from_cloudformation_json.__func__
    update = LambdaFunction.update_from_cloudformation_json.__func__

    def architectures(fn: LambdaFunction, cloudformation_json: dict[str, Any]) -> LambdaFunction:
        fn.architectures = list(cloudformation_json["Properties"].get("Architectures") or ["x86_64"])
        return fn

    @functools.wraps(create)
    def create_keeping(cls: type, resource_name: str, cloudformation_json: dict[str, Any], *args: Any, **kwargs: Any):
        return architectures(create(cls, resource_name, cloudformation_json, *args, **kwargs), cloudformation_json)

    @functools.wraps(update)
    def update_keeping(cls: type, original_resource: Any, new_resource_name: str, cloudformation_json: dict[str, Any], *args: Any, **kwargs: Any):
        updated = update(cls, original_resource, new_resource_name, cloudformation_json, *args, **kwargs)
        return architectures(updated, cloudformation_json)

    LambdaFunction.create_from_cloudformation_json = classmethod(create_keeping)
    LambdaFunction.update_from_cloudformation_json = classmethod(update_keeping)


def _outputs_after_change_set() -> None:
    """ExecuteChangeSet applies the resources but leaves the stack's outputs, template,
    parameters and tags as they were before (empty for a CREATE change set), so outputs never
    resolve and the next identical change set is not recognised as empty."""
    execute = CloudFormationBackend.execute_change_set

    @functools.wraps(execute)
    def execute_and_refresh(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
        execute(self, change_set_name, stack_name)
        change_set = self.describe_change_set(change_set_name)
        stack = self.stacks[change_set.stack_id]
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        stack.parameters = change_set.parameters
        # Stack tags: an UPDATE change set carries the stack's new tags (moto kept the old).
        if change_set.tags is not None:
            stack.tags = change_set.tags
        stack.output_map = stack._create_output_map()
        for export in stack.exports:
            self.exports[export.name] = export

    CloudFormationBackend.execute_change_set = execute_and_refresh


def _deployment_ref_is_its_id() -> None:
    """`Ref` of a deployment is its id in AWS; moto's model has no physical id, so Ref
    returned the Python object. It could not be deleted either (a deployment replaced by
    another lingered), nor could a RestApi (a deleted stack left its API behind)."""
    Deployment.physical_resource_id = property(lambda self: self.id)

    create = Deployment.create_from_cloudformation_json.__func__

    @functools.wraps(create)
    def create_remembering_api(cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any) -> Deployment:
        deployment = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        deployment.rest_api_id = cloudformation_json["Properties"]["RestApiId"]
        return deployment

    def delete_deployment(self: Deployment, account_id: str, region_name: str) -> None:
        api = apigateway_backends[account_id][region_name].apis.get(getattr(self, "rest_api_id", None))
        if api is not None:
            api.deployments.pop(self.id, None)

    def delete_rest_api(self: RestAPI, account_id: str, region_name: str) -> None:
        apigateway_backends[account_id][region_name].apis.pop(self.id, None)

    Deployment.create_from_cloudformation_json = classmethod(create_remembering_api)
    Deployment.delete = delete_deployment
    RestAPI.delete = delete_rest_api


def _method_integration_without_uri() -> None:
    """moto requires Integration.Uri and IntegrationHttpMethod, so a MOCK integration
    (which has neither) made CreateStack/ExecuteChangeSet answer HTTP 500."""

    def create(cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any):
        props = cloudformation_json["Properties"]
        backend = apigateway_backends[account_id][region_name]
        method = backend.put_method(
            function_id=props["RestApiId"],
            resource_id=props["ResourceId"],
            method_type=props["HttpMethod"],
            authorization_type=props.get("AuthorizationType", "NONE"),
            api_key_required=props.get("ApiKeyRequired"),
            request_parameters=props.get("RequestParameters"),
        )
        integration = props.get("Integration")
        if integration:
            created = backend.put_integration(
                function_id=props["RestApiId"],
                resource_id=props["ResourceId"],
                method_type=props["HttpMethod"],
                integration_type=integration["Type"],
                uri=integration.get("Uri"),
                integration_method=integration.get("IntegrationHttpMethod"),
                request_templates=integration.get("RequestTemplates"),
                timeout_in_millis=integration.get("TimeoutInMillis"),
                request_parameters=integration.get("RequestParameters"),
            )
            # Not in moto 5.2's PutIntegration: kept so GetIntegration shows them.
            created.cache_key_parameters = list(integration.get("CacheKeyParameters") or [])
            created.response_transfer_mode = integration.get("ResponseTransferMode", "BUFFERED")
        return method

    def update(cls: type, original_resource: Any, new_resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str):
        # PutMethod/PutIntegration overwrite in place; without an update moto stored
        # None for a modified method, so a later Ref to it resolved to nothing.
        return create(cls, new_resource_name, cloudformation_json, account_id, region_name)

    Method.create_from_cloudformation_json = classmethod(create)
    Method.update_from_cloudformation_json = classmethod(update)

    to_json = Integration.to_json

    @functools.wraps(to_json)
    def to_json_with_transfer_mode(self: Integration) -> dict[str, Any]:
        doc = to_json(self)
        doc["responseTransferMode"] = getattr(self, "response_transfer_mode", "BUFFERED")
        return doc

    Integration.to_json = to_json_with_transfer_mode


def _no_value_removes_list_items() -> None:
    """`!Ref AWS::NoValue` (directly or from an `Fn::If`) removes a list item in AWS;
    moto left a None in the list, so e.g. a conditional MethodSettings entry or policy
    statement crashed the stack with HTTP 500. The recursion goes through the module
    global, so wrapping it covers nested lists too."""
    from moto.cloudformation import parsing

    clean_json = parsing.clean_json

    @functools.wraps(clean_json)
    def clean_dropping_no_value(resource_json: Any, resources_map: Any) -> Any:
        if isinstance(resource_json, list):
            cleaned = (parsing.clean_json(item, resources_map) for item in resource_json)
            return [item for item in cleaned if item is not None]
        return clean_json(resource_json, resources_map)

    parsing.clean_json = clean_dropping_no_value


def _conditional_resources_are_not_listed() -> None:
    """A resource whose Condition is false does not exist; moto listed it in
    DescribeStackResources/ListStackResources with no type, id or logical id."""
    Stack.stack_resources = property(lambda self: [r for r in self.resource_map.values() if r is not None])


def _updates_follow_resolved_properties() -> None:
    """moto updates only resources whose template text changed or that `Ref` a changed
    parameter directly. In AWS a resource is updated when its *resolved* properties change
    (through an `Fn::If` on a changed condition, or a replaced resource's new id), and it
    is created or deleted when its own Condition flips. This records each resource's
    resolved properties and, after moto's update, reconciles: it creates what a Condition
    now wants, updates any resource whose properties resolve differently, until nothing
    changes, and then deletes what a Condition no longer wants. A type that
    moto cannot update in place is replaced (deleted, then created), as CloudFormation does
    for replacement-only properties."""
    import copy

    from moto.cloudformation import parsing

    create = parsing.parse_and_create_resource
    update = parsing.parse_and_update_resource

    def resolved(logical_id: str, resource_json: dict[str, Any], resources_map: Any) -> Any:
        parsed = parsing.parse_resource(copy.deepcopy(resource_json), resources_map)
        return None if parsed is None else parsed[1].get("Properties")

    def remember(logical_id: str, resource_json: dict[str, Any], resources_map: Any) -> None:
        if not hasattr(resources_map, "_ext_resolved"):
            resources_map._ext_resolved = {}
        resources_map._ext_resolved[logical_id] = resolved(logical_id, resource_json, resources_map)

    @functools.wraps(create)
    def create_remembering(logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str, region_name: str) -> Any:
        resource = create(logical_id, resource_json, resources_map, account_id, region_name)
        if resource is not None:
            remember(logical_id, resource_json, resources_map)
        return resource

    @functools.wraps(update)
    def update_or_replace(logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str, region_name: str) -> Any:
        resource_class = parsing.resource_class_from_type(resource_json["Type"])
        if resource_class is None:
            return None
        if hasattr(resource_class.update_from_cloudformation_json, "__isabstractmethod__"):
            original = resources_map._parsed_resources.pop(logical_id, None)
            if original is not None:
                try:
                    resources_map._delete_resource(original, resource_json)
                except Exception:  # moto types without any delete: the old one lingers
                    pass
            return create_remembering(logical_id, resource_json, resources_map, account_id, region_name)
        resource = update(logical_id, resource_json, resources_map, account_id, region_name)
        if resource is not None:
            remember(logical_id, resource_json, resources_map)
        return resource

    parsing.parse_and_create_resource = create_remembering
    parsing.parse_and_update_resource = update_or_replace

    original_update = parsing.ResourceMap.update

    @functools.wraps(original_update)
    def update_and_reconcile(self: Any, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
        original_update(self, template, parameters)
        for _ in range(10):
            changed = False
            for logical_id, resource_json in list(self._resource_json_map.items()):
                condition = resource_json.get("Condition")
                if condition and not self.lazy_condition_map[condition]:
                    continue  # removed below, after everything else is in place
                existing = self._parsed_resources.get(logical_id)
                if existing is None:
                    _ = self[logical_id]
                    changed = True
                    continue
                if resolved(logical_id, resource_json, self) != getattr(self, "_ext_resolved", {}).get(logical_id):
                    new = parsing.parse_and_update_resource(
                        logical_id, resource_json, self, account_id=self._account_id, region_name=self._region_name
                    )
                    if new is not None:
                        new.cf_resource_type = resource_json["Type"]
                        new.logical_resource_id = logical_id
                        self._parsed_resources[logical_id] = new
                    changed = True
            if not changed:
                break
        else:
            raise RuntimeError("stack update did not settle after 10 passes")
        # As CloudFormation's cleanup phase: resources whose Condition turned false go last.
        for logical_id, resource_json in list(self._resource_json_map.items()):
            condition = resource_json.get("Condition")
            existing = self._parsed_resources.get(logical_id)
            if condition and not self.lazy_condition_map[condition] and existing is not None:
                self._delete_resource(existing, resource_json)
                self._parsed_resources.pop(logical_id, None)

    parsing.ResourceMap.update = update_and_reconcile


def _depends_on_comes_first() -> None:
    """moto orders a CreateStack by DependsOn, but a change set adds resources in template
    order and creates whatever a `Ref` or `Fn::GetAtt` names on the spot, ignoring that
    resource's DependsOn: a Stage listed before the methods of its Deployment (as in the
    deployer's JSON template, whose keys are sorted) created the Deployment of an API
    without methods. CloudFormation creates what a resource depends on first."""
    from moto.cloudformation import parsing

    create = parsing.parse_and_create_resource
    creating: set[tuple[int, str]] = set()

    @functools.wraps(create)
    def create_after_dependencies(logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str, region_name: str) -> Any:
        depends_on = resource_json.get("DependsOn") or []
        key = (id(resources_map), logical_id)
        if key not in creating:  # a DependsOn cycle is the template's error, not a hang
            creating.add(key)
            try:
                for dependency in [depends_on] if isinstance(depends_on, str) else depends_on:
                    if dependency in resources_map._resource_json_map:
                        _ = resources_map[dependency]
            finally:
                creating.discard(key)
        return create(logical_id, resource_json, resources_map, account_id, region_name)

    parsing.parse_and_create_resource = create_after_dependencies


def _rest_api_properties() -> None:
    """moto's RestApi ignored everything but Name, Description and EndpointConfiguration
    (MinimumCompressionSize, BinaryMediaTypes, DisableExecuteApiEndpoint, Policy, Tags) and
    could not be updated, so an update lost the API from the stack."""

    def create(cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any) -> RestAPI:
        props = cloudformation_json["Properties"]
        api = apigateway_backends[account_id][region_name].create_rest_api(
            name=props["Name"],
            description=props.get("Description", ""),
            endpoint_configuration=camel(props.get("EndpointConfiguration")),
            tags={t["Key"]: t["Value"] for t in props.get("Tags") or []} or None,
        )
        return apply(api, props)

    def apply(api: RestAPI, props: dict[str, Any]) -> RestAPI:
        import json

        api.name = props["Name"]
        api.description = props.get("Description", "")
        if props.get("EndpointConfiguration"):
            api.endpoint_configuration = camel(props["EndpointConfiguration"])
        size = props.get("MinimumCompressionSize")
        api.minimum_compression_size = int(size) if size is not None else None
        api.binaryMediaTypes = list(props.get("BinaryMediaTypes") or [])
        api.disableExecuteApiEndpoint = as_bool(props.get("DisableExecuteApiEndpoint", False))
        policy = props.get("Policy")
        api.policy = json.dumps(policy) if isinstance(policy, dict) else policy
        return api

    def update(cls: type, original_resource: RestAPI, new_resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str) -> RestAPI:
        return apply(original_resource, cloudformation_json["Properties"])

    RestAPI.create_from_cloudformation_json = classmethod(create)
    RestAPI.update_from_cloudformation_json = classmethod(update)


def _log_group_updates_in_place() -> None:
    """moto's LogGroup had no update, so a changed RetentionInDays dropped the log group
    from the stack; a new name replaces it, as in AWS."""

    def update(cls: type, original_resource: LogGroup, new_resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str) -> LogGroup:
        if new_resource_name != original_resource.name:
            new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
            original_resource.delete(account_id, region_name)
            return new
        props = cloudformation_json["Properties"]
        retention = props.get("RetentionInDays")
        original_resource.set_retention_policy(int(retention) if retention is not None else None)
        backend = logs_backends[account_id][region_name]
        return backend.groups[original_resource.name]

    LogGroup.update_from_cloudformation_json = classmethod(update)


def _lambda_function_configuration() -> None:
    """moto's Lambda model dropped TracingConfig, kept a removed VpcConfig and
    ReservedConcurrentExecutions, and renamed nothing: a new FunctionName updated the old
    function in place. Here a rename replaces the function and the rest follows the template.
    (Architectures are handled by `_keep_lambda_architectures`, which wraps this.)"""
    import json

    from moto.awslambda.models import lambda_backends

    create = LambdaFunction.create_from_cloudformation_json.__func__

    def configure(fn: LambdaFunction, props: dict[str, Any]) -> LambdaFunction:
        # Lambda's environment holds strings; moto kept a Number parameter as an int.
        variables = (props.get("Environment") or {}).get("Variables") or {}
        fn.environment_vars = {k: v if isinstance(v, str) else json.dumps(v) for k, v in variables.items()}
        fn.tracing_config = dict(props.get("TracingConfig") or {"Mode": "PassThrough"})
        fn._vpc_config = props.get("VpcConfig") or {"SubnetIds": [], "SecurityGroupIds": []}
        reserved = props.get("ReservedConcurrentExecutions")
        fn.reserved_concurrency = int(reserved) if reserved is not None else None
        return fn

    @functools.wraps(create)
    def create_configured(cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any) -> LambdaFunction:
        fn = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        return configure(fn, cloudformation_json["Properties"])

    def update(cls: type, original_resource: LambdaFunction, new_resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str) -> LambdaFunction:
        props = cloudformation_json["Properties"]
        if new_resource_name != original_resource.function_name:
            new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
            lambda_backends[account_id][region_name].delete_function(original_resource.function_name)
            return new
        original_resource.update_configuration(props)
        original_resource.update_function_code(props["Code"])
        return configure(original_resource, props)

    LambdaFunction.create_from_cloudformation_json = classmethod(create_configured)
    LambdaFunction.update_from_cloudformation_json = classmethod(update)


def _role_policies_follow_the_template() -> None:
    """moto's Role ignored ManagedPolicyArns, and its update changed only the description:
    inline policies and the trust policy kept their first version."""
    create = Role.create_from_cloudformation_json.__func__

    def sync(role: Role, props: dict[str, Any], account_id: str, region_name: str) -> Role:
        import json

        from moto.utilities.utils import get_partition

        backend = iam_backends[account_id][get_partition(region_name)]
        trust = props["AssumeRolePolicyDocument"]
        backend.update_assume_role_policy(role.name, trust if isinstance(trust, str) else json.dumps(trust))
        wanted = {p["PolicyName"]: p["PolicyDocument"] for p in props.get("Policies") or []}
        for name in list(role.policies):
            if name not in wanted:
                backend.delete_role_policy(role.name, name)
        for name, document in wanted.items():
            backend.put_role_policy(role.name, name, document if isinstance(document, str) else json.dumps(document))
        attached = set(role.managed_policies)
        for arn in props.get("ManagedPolicyArns") or []:
            if arn not in attached:
                _load_aws_managed_policy(backend, arn)
                backend.attach_role_policy(arn, role.name)
        for arn in attached - set(props.get("ManagedPolicyArns") or []):
            backend.detach_role_policy(arn, role.name)
        return role

    @functools.wraps(create)
    def create_synced(cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any) -> Role:
        role = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        return sync(role, cloudformation_json["Properties"], account_id, region_name)

    def update(cls: type, original_resource: Role, new_resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str) -> Role:
        props = cloudformation_json["Properties"]
        original_resource.description = props.get("Description", "")
        return sync(original_resource, props, account_id, region_name)

    Role.create_from_cloudformation_json = classmethod(create_synced)
    Role.update_from_cloudformation_json = classmethod(update)


def _load_aws_managed_policy(backend: Any, arn: str) -> None:
    """moto loads AWS managed policies only with MOTO_IAM_LOAD_MANAGED_POLICIES (slow, a
    thousand of them per account); this loads the one a template attaches."""
    import json

    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy

    if arn in backend.managed_policies or ":iam::aws:policy/" not in arn:
        return
    name = arn.rsplit("/", 1)[1]
    data = json.loads(aws_managed_policies_data).get(name)
    if data is not None:
        policy = AWSManagedPolicy.from_data(name, backend.account_id, backend.region_name, data)
        backend.managed_policies[policy.arn] = policy


def _short_form_condition_in_conditions() -> None:
    """moto's YAML loader reads `!Condition Name` as {"Fn::Condition": Name} (the long form
    is {"Condition": Name}), which its condition parser did not know, so `!And [!Condition
    A, ...]` was always false."""
    from moto.cloudformation import parsing

    parse_condition = parsing.parse_condition

    @functools.wraps(parse_condition)
    def parse_condition_short_form(condition: Any, resources_map: Any, condition_map: Any) -> Any:
        if isinstance(condition, dict) and list(condition) == ["Fn::Condition"]:
            return condition_map[condition["Fn::Condition"]]
        return parse_condition(condition, resources_map, condition_map)

    parsing.parse_condition = parse_condition_short_form


def _parameter_constraints() -> None:
    """CloudFormation rejects, at CreateChangeSet or CreateStack, a parameter value outside
    AllowedValues, AllowedPattern, MinLength/MaxLength or MinValue/MaxValue, and a missing
    parameter without a default; moto accepted anything (and failed later, if at all)."""
    import inspect
    import re

    from moto.cloudformation.exceptions import ValidationError

    def check(name: str, slot: dict[str, Any], value: Any) -> None:
        text = str(value)
        kind = slot.get("Type", "String")
        allowed = slot.get("AllowedValues")
        if allowed is not None and text not in [str(v) for v in allowed]:
            raise ValidationError(message=f"Parameter '{name}' must be one of AllowedValues")
        failed = slot.get("ConstraintDescription") or "Malformed input"
        pattern = slot.get("AllowedPattern")
        # A CommaDelimitedList's pattern applies to each item.
        items = text.split(",") if kind == "CommaDelimitedList" else [text]
        if pattern is not None and kind in ("String", "CommaDelimitedList"):
            if not all(re.fullmatch(pattern, item) for item in items):
                raise ValidationError(message=f"Parameter {name} failed to satisfy constraint: {failed}")
        if kind == "String":
            if "MinLength" in slot and len(text) < int(slot["MinLength"]):
                raise ValidationError(message=f"Parameter '{name}' must contain at least {slot['MinLength']} characters")
            if "MaxLength" in slot and len(text) > int(slot["MaxLength"]):
                raise ValidationError(message=f"Parameter '{name}' must contain at most {slot['MaxLength']} characters")
        if kind == "Number":
            try:
                number = float(text)
            except ValueError:
                raise ValidationError(message=f"Parameter '{name}' must be a number") from None
            if "MinValue" in slot and number < float(slot["MinValue"]):
                raise ValidationError(message=f"Parameter '{name}' must be a number not less than {slot['MinValue']}")
            if "MaxValue" in slot and number > float(slot["MaxValue"]):
                raise ValidationError(message=f"Parameter '{name}' must be a number not greater than {slot['MaxValue']}")

    def validate(template: str, parameters: dict[str, Any] | None, creating: bool) -> None:
        try:
            slots = Stack.parse_template(template).get("Parameters") or {}
        except Exception:  # an unparsable template is moto's to report
            return
        given = parameters or {}
        missing = [n for n, slot in slots.items() if creating and n not in given and "Default" not in slot]
        if missing:
            raise ValidationError(message=f"Parameters: [{', '.join(missing)}] must have values")
        for name, slot in slots.items():
            value = given.get(name, slot.get("Default") if creating else None)
            if isinstance(value, str) or (value is not None and not isinstance(value, (dict, list))):
                check(name, slot, value)

    for method_name, creating in (("create_change_set", None), ("create_stack", True)):
        method = getattr(CloudFormationBackend, method_name)
        signature = inspect.signature(method)

        def wrapper(self: Any, *args: Any, _method: Any = method, _signature: Any = signature, _creating: Any = creating, **kwargs: Any) -> Any:
            bound = _signature.bind(self, *args, **kwargs)
            arguments = bound.arguments
            is_create = _creating if _creating is not None else arguments.get("change_set_type") != "UPDATE"
            validate(arguments["template"], arguments.get("parameters"), is_create)
            return _method(self, *args, **kwargs)

        setattr(CloudFormationBackend, method_name, functools.wraps(method)(wrapper))


def _change_set_changes_follow_parameters() -> None:
    """DescribeChangeSet listed what the template *text* changes: a CREATE change set
    listed resources whose Condition is false, and an update that only changes parameters
    listed nothing. Here the changes come from the change set's parameters: Add and Remove
    follow the Conditions, and Modify covers every resource whose template changed or that
    refers, directly or through a Condition, to a changed parameter, or to a resource that
    a new name replaces (CloudFormation lists those as dynamic changes)."""
    import json

    from moto.cloudformation import parsing
    from moto.cloudformation.models import Change, ChangeSet

    def parameter_values(template: dict[str, Any], given: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, slot in (template.get("Parameters") or {}).items():
            value = given.get(name, previous.get(name, slot.get("Default")))
            if slot.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            elif slot.get("Type") == "Number" and value is not None:
                text = str(value)
                value = float(text) if "." in text else int(text)
            values[name] = value
        return values

    def conditions(template: dict[str, Any], values: dict[str, Any], stack: Any) -> dict[str, bool]:
        scope = {
            **values,
            "AWS::AccountId": stack.account_id,
            "AWS::Region": stack.region_name,
            "AWS::StackName": stack.name,
            "AWS::StackId": stack.stack_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        lazy = parsing.LazyDict()
        for name, condition in (template.get("Conditions") or {}).items():
            lazy[name] = functools.partial(parsing.parse_condition, condition, scope, lazy)
        return {name: bool(lazy[name]) for name in lazy}

    def diff(self: ChangeSet) -> list[Change]:
        stack = self.stack
        resource_map = stack.resource_map
        new_template = self.template_dict or {}
        new_resources = new_template.get("Resources") or {}
        old_template = stack.template_dict if isinstance(getattr(stack, "template_dict", None), dict) else {}
        old_resources = old_template.get("Resources") or {}
        old_values = parameter_values(old_template, dict(getattr(resource_map, "input_parameters", {}) or {}), {}) if old_resources else {}
        # An omitted parameter takes its default, as in AWS (moto keeps the previous input
        # parameters only when a change set gives none at all).
        previous = {} if self.parameters else dict(getattr(resource_map, "input_parameters", {}) or {})
        new_values = parameter_values(new_template, self.parameters or {}, previous)
        old_conditions = conditions(old_template, old_values, stack) if old_resources else {}
        new_conditions = conditions(new_template, new_values, stack)

        def exists_now(name: str) -> bool:
            return resource_map._parsed_resources.get(name) is not None if old_resources else False

        def wanted(name: str) -> bool:
            condition = new_resources[name].get("Condition")
            return not condition or new_conditions.get(condition, False)

        changed = {n for n in new_values if json.dumps(new_values[n], default=str) != json.dumps(old_values.get(n), default=str)}
        changed |= {n for n in new_conditions if new_conditions[n] != old_conditions.get(n)}
        modified = {
            n for n in new_resources
            if exists_now(n) and wanted(n) and (json.dumps(new_resources[n], sort_keys=True, default=str) != json.dumps(old_resources.get(n), sort_keys=True, default=str))
        }
        def replaced(name: str) -> bool:
            # A new name replaces a resource (a new id that its dependents see); other
            # property changes keep its id, so they stop here.
            prop = parsing.resource_name_property_from_type(new_resources[name]["Type"])
            new_name = (new_resources[name].get("Properties") or {}).get(prop) if prop else None
            old_name = ((old_resources.get(name) or {}).get("Properties") or {}).get(prop) if prop else None
            return new_name is not None and (new_name != old_name or bool(names_in(new_name) & changed))

        def refers_to_change(name: str, moved: set[str]) -> bool:
            body = {k: v for k, v in new_resources[name].items() if k != "DependsOn"}
            return bool(names_in(body) & (changed | moved))

        modified |= {n for n in new_resources if exists_now(n) and wanted(n) and refers_to_change(n, set())}
        while True:
            moved = {n for n in modified if replaced(n)}
            more = {n for n in new_resources if n not in modified and exists_now(n) and wanted(n) and refers_to_change(n, moved)}
            if not more:
                break
            modified |= more
        changes = []
        for name, resource in new_resources.items():
            if wanted(name) and not exists_now(name):
                changes.append(Change(action="Add", logical_resource_id=name, resource_type=resource["Type"]))
            elif name in modified:
                changes.append(Change(action="Modify", logical_resource_id=name, resource_type=resource["Type"]))
        for name, resource in old_resources.items():
            if exists_now(name) and (name not in new_resources or not wanted(name)):
                changes.append(Change(action="Remove", logical_resource_id=name, resource_type=resource["Type"]))
        return changes

    ChangeSet.diff = diff


IAM_TYPES = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Policy": None,
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::AccessKey": None,
    "AWS::IAM::UserToGroupAddition": None,
}


def _validate_template_lists_parameters() -> None:
    """ValidateTemplate answered with no Parameters and no Capabilities, so a client that
    reads a template's parameters and defaults (as the deployer does) found none."""
    from moto.cloudformation.responses import CloudFormationResponse

    validate = CloudFormationResponse.validate_template

    @functools.wraps(validate)
    def validate_listing(self: Any) -> Any:
        result = validate(self)
        body = self._get_param("TemplateBody")
        if self._get_param("TemplateURL"):
            body = self._get_stack_from_s3_url(self._get_param("TemplateURL"))
        try:
            template = Stack.parse_template(body) or {}
        except Exception:  # moto reported what it could parse above
            return result

        def text(value: Any) -> str:
            return ",".join(map(str, value)) if isinstance(value, list) else str(value)

        parameters = []
        for name, slot in (template.get("Parameters") or {}).items():
            entry = {"ParameterKey": name, "NoEcho": bool(slot.get("NoEcho", False)), "Description": slot.get("Description", "")}
            if "Default" in slot:
                entry["DefaultValue"] = text(slot["Default"])
            parameters.append(entry)
        iam = sorted({r["Type"] for r in (template.get("Resources") or {}).values() if r.get("Type") in IAM_TYPES})
        named = any(
            IAM_TYPES[r["Type"]] and IAM_TYPES[r["Type"]] in (r.get("Properties") or {})
            for r in (template.get("Resources") or {}).values()
            if r.get("Type") in IAM_TYPES
        )
        result._result["Parameters"] = parameters
        if iam:
            result._result["Capabilities"] = ["CAPABILITY_NAMED_IAM" if named else "CAPABILITY_IAM"]
            result._result["CapabilitiesReason"] = f"The following resource(s) require capabilities: [{', '.join(iam)}]"
        if template.get("Transform"):
            result._result["DeclaredTransforms"] = [template["Transform"]] if isinstance(template["Transform"], str) else list(template["Transform"])
        return result

    CloudFormationResponse.validate_template = validate_listing


def _lambda_permission_identity() -> None:
    """A Lambda::Permission had no physical id (DescribeStackResources showed none) and was
    never removed from the function's policy. Here its statement id is its physical id, as
    in AWS, and deleting or replacing it removes the statement."""
    import json

    from moto.awslambda.models import Permission, lambda_backends

    def create(cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any) -> Permission:
        props = dict(cloudformation_json["Properties"])
        props.setdefault("StatementId", resource_name)
        fn = lambda_backends[account_id][region_name].get_function(props["FunctionName"])
        fn.policy.add_statement(raw=json.dumps(props))
        permission = Permission(region=region_name)
        permission.physical_resource_id = props["StatementId"]
        permission.function_name = fn.function_name
        return permission

    def delete(self: Permission, account_id: str, region_name: str) -> None:
        backend = lambda_backends[account_id][region_name]
        try:
            fn = backend.get_function(self.function_name)
            fn.policy.del_statement(self.physical_resource_id)
        except Exception:  # the function (and its policy) is already gone
            pass

    Permission.create_from_cloudformation_json = classmethod(create)
    Permission.delete = delete


# Resource types of the proxy's template that take the stack's tags (AWS propagates stack
# tags to every resource that supports tags).
TAGGABLE_TYPES = {
    "AWS::Lambda::Function",
    "AWS::IAM::Role",
    "AWS::Logs::LogGroup",
    "AWS::ApiGateway::RestApi",
    "AWS::ApiGateway::Stage",
    "AWS::SNS::Topic",
    "AWS::KMS::Key",
    "AWS::CloudWatch::Alarm",
    "AWS::SecretsManager::Secret",
}


def _tags_only_change_sets() -> None:
    """moto called an UPDATE change set with the same template and parameters empty
    ("didn't contain changes") even when it changes the stack's tags. In AWS new stack
    tags reach every taggable resource: the change set is CREATE_COMPLETE and lists each
    of them as a Modify whose Scope is only Tags (Replacement False)."""
    from moto.cloudformation.models import Change, CloudFormationBackend

    create = CloudFormationBackend.create_change_set

    @functools.wraps(create)
    def create_seeing_tags(self: CloudFormationBackend, *args: Any, **kwargs: Any) -> Any:
        change_set_id, stack_id = create(self, *args, **kwargs)
        change_set = self.change_sets[change_set_id]
        stack = self.stacks.get(stack_id)
        tags_differ = change_set.tags is not None and stack is not None and dict(change_set.tags) != dict(stack.tags or {})
        if change_set.change_set_type == "UPDATE" and change_set.status == "FAILED" and tags_differ:
            changes = []
            for name, resource in (stack.template_dict.get("Resources") or {}).items():
                parsed = stack.resource_map._parsed_resources.get(name)
                if parsed is None or resource.get("Type") not in TAGGABLE_TYPES:
                    continue
                change = Change(action="Modify", logical_resource_id=name, resource_type=resource["Type"])
                change.scope = ["Tags"]
                change.replacement = "False"
                changes.append(change)
            if changes:
                change_set.changes = changes
                change_set.status = "CREATE_COMPLETE"
                change_set.execution_status = "AVAILABLE"
                change_set.status_reason = None
        return change_set_id, stack_id

    CloudFormationBackend.create_change_set = create_seeing_tags


def _dynamodb_table_properties() -> None:
    """moto's table from a template reads SSESpecification as the API spells it
    (`Enabled`, where CloudFormation says `SSEEnabled`), so encryption was lost, and it
    ignores TimeToLiveSpecification and PointInTimeRecoverySpecification."""
    create = Table.create_from_cloudformation_json.__func__

    @functools.wraps(create)
    def create_with_properties(cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any) -> Table:
        props = dict(cloudformation_json["Properties"])
        sse = props.get("SSESpecification")
        if sse and "SSEEnabled" in sse:
            api_sse = {"Enabled": sse["SSEEnabled"]}
            if sse.get("KMSMasterKeyId"):
                api_sse["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
            props["SSESpecification"] = api_sse
        table = create(cls, resource_name, {**cloudformation_json, "Properties": props}, account_id, region_name, **kwargs)
        backend = dynamodb_backends[account_id][region_name]
        if props.get("TimeToLiveSpecification"):
            backend.update_time_to_live(table.name, props["TimeToLiveSpecification"])
        if props.get("PointInTimeRecoverySpecification"):
            backend.update_continuous_backups(table.name, props["PointInTimeRecoverySpecification"])
        return table

    Table.create_from_cloudformation_json = classmethod(create_with_properties)


def _list_parameters_described_as_given() -> None:
    """moto describes a resolved CommaDelimitedList parameter as Python prints a list
    (`['a', 'b']`); CloudFormation's DescribeStacks gives the value as passed (`a,b`),
    which the deployer passes back on the next deploy."""
    from moto.cloudformation.models import Stack as FakeStack

    described = FakeStack.parameter_list

    @functools.wraps(described.fget)
    def as_given(self: Any) -> list[dict[str, Any]]:
        return [
            {**p, "ParameterValue": ",".join(map(str, p["ParameterValue"]))} if isinstance(p["ParameterValue"], list) else p
            for p in described.fget(self)
        ]

    FakeStack.parameter_list = property(as_given)


def _secret_current_follows_its_stage() -> None:
    """AWS reads a secret's AWSCURRENT version when none is asked for; moto reads the last
    version written (`default_version_id`), so UpdateSecretVersionStage moving AWSCURRENT
    back to an earlier version changed the stages but not what GetSecretValue answered."""
    from moto.secretsmanager.models import SecretsManagerBackend

    update = SecretsManagerBackend.update_secret_version_stage

    @functools.wraps(update)
    def update_moving_the_default(self: Any, secret_id: str, version_stage: str, remove_from_version_id: str, move_to_version_id: str):
        answer = update(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
        if version_stage == "AWSCURRENT" and move_to_version_id:
            self.secrets[secret_id].default_version_id = move_to_version_id
        return answer

    SecretsManagerBackend.update_secret_version_stage = update_moving_the_default

