"""Fixes to behaviour of models moto already has."""

from __future__ import annotations

import functools
from typing import Any

from moto.apigateway.models import Deployment, Method, apigateway_backends
from moto.awslambda.models import LambdaFunction
from moto.cloudformation.models import CloudFormationBackend


def apply() -> None:
    _keep_lambda_architectures()
    _outputs_after_change_set()
    _deployment_ref_is_its_id()
    _method_integration_without_uri()


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
    """ExecuteChangeSet applies the resources but leaves the stack's outputs, template
    and parameters as they were before (empty for a CREATE change set), so outputs never
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
        stack.output_map = stack._create_output_map()
        for export in stack.exports:
            self.exports[export.name] = export

    CloudFormationBackend.execute_change_set = execute_and_refresh


def _deployment_ref_is_its_id() -> None:
    """`Ref` of a deployment is its id in AWS; moto's model has no physical id, so Ref
    returned the Python object."""
    Deployment.physical_resource_id = property(lambda self: self.id)


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
        )
        integration = props.get("Integration")
        if integration:
            backend.put_integration(
                function_id=props["RestApiId"],
                resource_id=props["ResourceId"],
                method_type=props["HttpMethod"],
                integration_type=integration["Type"],
                uri=integration.get("Uri"),
                integration_method=integration.get("IntegrationHttpMethod"),
                request_templates=integration.get("RequestTemplates"),
                timeout_in_millis=integration.get("TimeoutInMillis"),
            )
        return method

    def update(cls: type, original_resource: Any, new_resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str):
        # PutMethod/PutIntegration overwrite in place; without an update moto stored
        # None for a modified method, so a later Ref to it resolved to nothing.
        return create(cls, new_resource_name, cloudformation_json, account_id, region_name)

    Method.create_from_cloudformation_json = classmethod(create)
    Method.update_from_cloudformation_json = classmethod(update)
