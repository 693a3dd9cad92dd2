"""The extension's fixes to conditions and updates, over HTTP against the emulator
(scripts/local-aws.sh run sets AWS_ENDPOINT_URL), through change sets: a resource follows
its resolved properties and its Condition, as in AWS, not only its template text."""

from __future__ import annotations

import json
import pathlib
import uuid

import botocore.exceptions
import pytest

from localaws.tests.conftest import bootstrap_zip, create_change_set, put_in_new_bucket

TEMPLATE = (pathlib.Path(__file__).parent / "conditions_stack.yaml").read_text()


@pytest.fixture(scope="module")
def code(aws):
    bucket = put_in_new_bucket(aws["s3"], "ext-code", "bootstrap.zip", bootstrap_zip("#!/bin/sh\n"))
    return {"CodeBucket": bucket, "CodeKey": "bootstrap.zip"}


class Stack:
    def __init__(self, cfn, base: dict[str, str]):
        self.cfn, self.name, self.parameters, self.created = cfn, f"cond-{uuid.uuid4().hex[:10]}", base, False

    def deploy(self, **changes: str) -> dict[str, str]:
        self.parameters = {**self.parameters, **changes}
        name = f"cs-{uuid.uuid4().hex[:8]}"
        kind = "UPDATE" if self.created else "CREATE"
        create_change_set(self.cfn, self.name, name, kind, TEMPLATE, self.parameters)
        self.cfn.execute_change_set(StackName=self.name, ChangeSetName=name)
        self.created = True
        (desc,) = self.cfn.describe_stacks(StackName=self.name)["Stacks"]
        assert desc["StackStatus"] == f"{kind}_COMPLETE"
        return {o["OutputKey"]: o["OutputValue"] for o in desc["Outputs"]}

    def resources(self) -> dict[str, str]:
        listed = self.cfn.describe_stack_resources(StackName=self.name)["StackResources"]
        return {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in listed}


@pytest.fixture
def stack(aws, code):
    made = Stack(aws["cloudformation"], {**code, "FunctionName": f"fn-{uuid.uuid4().hex[:10]}"})
    yield made
    try:
        aws["cloudformation"].delete_stack(StackName=made.name)
    except botocore.exceptions.ClientError:
        pass


def raw_integration(aws, api_id: str) -> dict:
    root = next(r for r in aws["apigateway"].get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    raw: dict = {}

    def keep(http_response, **_):
        raw.update(json.loads(http_response.content))

    aws["apigateway"].meta.events.register("after-call.api-gateway.GetIntegration", keep)
    try:
        aws["apigateway"].get_integration(restApiId=api_id, resourceId=root["id"], httpMethod="ANY")
    finally:
        aws["apigateway"].meta.events.unregister("after-call.api-gateway.GetIntegration", keep)
    return raw


def test_create_applies_conditions_no_value_and_new_types(aws, stack):
    outputs = stack.deploy()
    api_id = outputs["ApiId"]

    # A false Condition: the resource neither exists nor is listed (moto listed a blank row).
    listed = stack.resources()
    assert "BufferedDeployment" not in listed and None not in listed
    stage = aws["apigateway"].get_stage(restApiId=api_id, stageName="prod")
    assert stage["deploymentId"] == listed["StreamDeployment"]
    # NoValue in a list removes the item (moto kept a None and answered HTTP 500).
    assert set(stage["methodSettings"]) == {"*/*"}
    assert "minimumCompressionSize" not in aws["apigateway"].get_rest_api(restApiId=api_id)

    integration = raw_integration(aws, api_id)
    assert integration["responseTransferMode"] == "STREAM"
    assert integration["uri"].endswith("/response-streaming-invocations")
    assert integration["cacheKeyParameters"] == ["method.request.header.Authorization"]

    config = aws["lambda"].get_function_configuration(FunctionName=outputs["FunctionName"])
    assert config["Environment"]["Variables"] == {"MODE": "stream", "RETENTION": "14"}, "env values are strings"
    assert config["TracingConfig"] == {"Mode": "PassThrough"}

    role = outputs["RoleName"]
    attached = aws["iam"].list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonAPIGatewayPushToCloudWatchLogs"]
    document = aws["iam"].get_role_policy(RoleName=role, PolicyName="fn")["PolicyDocument"]
    assert [s["Sid"] for s in document["Statement"]] == ["Logs"]

    assert aws["apigateway"].get_account()["cloudwatchRoleArn"].endswith(f"/{role}")
    policy = json.loads(aws["sns"].get_topic_attributes(TopicArn=outputs["TopicArn"])["Attributes"]["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["CloudWatch"]


def test_update_follows_changed_conditions_and_resolved_properties(aws, stack):
    first = stack.deploy()
    stream_deployment = stack.resources()["StreamDeployment"]
    ec2 = aws["ec2"]
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"g-{uuid.uuid4().hex[:6]}", Description="g", VpcId=vpc)["GroupId"]

    second = stack.deploy(Mode="BUFFERED", Retention="30", Tracing="true", Reserved="3", Subnets=subnet, Groups=group)
    api_id = second["ApiId"]
    assert api_id == first["ApiId"], "the API is updated in place, not replaced or lost"

    # Condition flips: the new deployment exists and the stage uses it; the old one is gone.
    listed = stack.resources()
    assert "StreamDeployment" not in listed
    deployments = {d["id"] for d in aws["apigateway"].get_deployments(restApiId=api_id)["items"]}
    assert deployments == {listed["BufferedDeployment"]} and stream_deployment not in deployments
    stage = aws["apigateway"].get_stage(restApiId=api_id, stageName="prod")
    assert stage["deploymentId"] == listed["BufferedDeployment"]
    assert (stage["cacheClusterEnabled"], stage["cacheClusterSize"]) == (True, "0.5")
    assert stage["methodSettings"]["~1v1~1models/GET"]["cachingEnabled"] is True

    # Properties that changed only through Fn::If (no direct Ref to the parameter).
    assert aws["apigateway"].get_rest_api(restApiId=api_id)["minimumCompressionSize"] == 1024
    integration = raw_integration(aws, api_id)
    assert integration["responseTransferMode"] == "BUFFERED" and integration["uri"].endswith("/invocations")
    config = aws["lambda"].get_function_configuration(FunctionName=second["FunctionName"])
    assert config["Environment"]["Variables"] == {"MODE": "buffered", "RETENTION": "30"}
    assert config["TracingConfig"] == {"Mode": "Active"}
    assert config["VpcConfig"]["SubnetIds"] == [subnet] and config["VpcConfig"]["SecurityGroupIds"] == [group]
    assert aws["lambda"].get_function_concurrency(FunctionName=second["FunctionName"])["ReservedConcurrentExecutions"] == 3
    group_info = aws["logs"].describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{second['FunctionName']}")["logGroups"][0]
    assert group_info["retentionInDays"] == 30
    document = aws["iam"].get_role_policy(RoleName=second["RoleName"], PolicyName="fn")["PolicyDocument"]
    assert [s["Sid"] for s in document["Statement"]] == ["Logs", "XRay"]

    # And back again: what the conditions added is removed.
    third = stack.deploy(Mode="STREAM", Tracing="false", Reserved="-1", Subnets="", Groups="")
    config = aws["lambda"].get_function_configuration(FunctionName=third["FunctionName"])
    assert config["TracingConfig"] == {"Mode": "PassThrough"} and not config["VpcConfig"]["SubnetIds"]
    assert "ReservedConcurrentExecutions" not in aws["lambda"].get_function_concurrency(FunctionName=third["FunctionName"])
    assert "minimumCompressionSize" not in aws["apigateway"].get_rest_api(restApiId=api_id)
    document = aws["iam"].get_role_policy(RoleName=third["RoleName"], PolicyName="fn")["PolicyDocument"]
    assert [s["Sid"] for s in document["Statement"]] == ["Logs"]
    assert "BufferedDeployment" not in stack.resources()


def test_renamed_function_is_replaced_and_references_follow(aws, stack):
    first = stack.deploy()
    renamed = f"fn-{uuid.uuid4().hex[:10]}"
    second = stack.deploy(FunctionName=renamed)

    assert second["FunctionName"] == renamed
    with pytest.raises(botocore.exceptions.ClientError, match="ResourceNotFound"):
        aws["lambda"].get_function(FunctionName=first["FunctionName"])
    assert renamed in raw_integration(aws, second["ApiId"])["uri"], "the method follows the new function ARN"
    # The permission moved with it: one statement, whose id is the resource's physical id.
    policy = json.loads(aws["lambda"].get_policy(FunctionName=renamed)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == [stack.resources()["Permission"]]
    assert aws["logs"].describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{renamed}")["logGroups"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"Mode": "stream"}, "Parameter 'Mode' must be one of AllowedValues"),
        ({"FunctionName": ""}, r"Parameters: \[FunctionName\] must have values"),
    ],
)
def test_parameter_constraints_are_checked_at_create_change_set(aws, code, changes, message):
    parameters = {**code, "FunctionName": "fn-valid", **changes}
    parameters = {k: v for k, v in parameters.items() if v != ""}
    with pytest.raises(botocore.exceptions.ClientError, match=message):
        aws["cloudformation"].create_change_set(
            StackName=f"bad-{uuid.uuid4().hex[:8]}",
            ChangeSetName="cs",
            ChangeSetType="CREATE",
            TemplateBody=TEMPLATE,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )


def test_change_set_lists_what_the_parameters_change(aws, stack):
    cfn = aws["cloudformation"]

    last = {}

    def changes(kind: str, **parameters: str) -> set[tuple[str, str]]:
        name = last["name"] = f"cs-{uuid.uuid4().hex[:8]}"
        cfn.create_change_set(
            StackName=stack.name,
            ChangeSetName=name,
            ChangeSetType=kind,
            TemplateBody=TEMPLATE,
            Capabilities=["CAPABILITY_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in {**stack.parameters, **parameters}.items()],
        )
        described = cfn.describe_change_set(StackName=stack.name, ChangeSetName=name)
        return {(c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"]) for c in described["Changes"]}

    created = changes("CREATE")
    assert ("Add", "StreamDeployment") in created and ("Add", "BufferedDeployment") not in created
    cfn.execute_change_set(StackName=stack.name, ChangeSetName=last["name"])
    stack.created = True

    assert changes("UPDATE", Retention="30") == {("Modify", "Logs"), ("Modify", "Function")}
    assert changes("UPDATE", Mode="BUFFERED") == {
        ("Add", "BufferedDeployment"),
        ("Remove", "StreamDeployment"),
        ("Modify", "Api"),
        ("Modify", "Method"),
        ("Modify", "Stage"),
        ("Modify", "Function"),
    }
    # A new name replaces the function: what refers to it changes too.
    renamed = changes("UPDATE", FunctionName=f"fn-{uuid.uuid4().hex[:10]}")
    assert {("Modify", "Function"), ("Modify", "Logs"), ("Modify", "Method"), ("Modify", "Permission")} <= renamed
    assert ("Modify", "Api") not in renamed


def test_validate_template_lists_parameters_and_capabilities(aws):
    answer = aws["cloudformation"].validate_template(TemplateBody=TEMPLATE)
    parameters = {p["ParameterKey"]: p.get("DefaultValue") for p in answer["Parameters"]}
    assert parameters["Mode"] == "STREAM" and parameters["Retention"] == "14" and parameters["Subnets"] == ""
    assert parameters["FunctionName"] is None, "no default: none listed"
    assert answer["Capabilities"] == ["CAPABILITY_IAM"]
    assert "AWS::IAM::Role" in answer["CapabilitiesReason"]


def test_a_change_of_stack_tags_alone_lists_every_taggable_resource_as_a_tags_modification(aws):
    name = f"ext-tags-{uuid.uuid4().hex[:8]}"
    cfn = aws["cloudformation"]
    template = (pathlib.Path(__file__).parent / "extension_stack.yaml").read_text()
    params: list[dict[str, str]] = []
    first = cfn.create_change_set(
        StackName=name, ChangeSetName="c1", ChangeSetType="CREATE", TemplateBody=template,
        Parameters=params, Capabilities=["CAPABILITY_IAM"], Tags=[{"Key": "commit", "Value": "1"}],
    )
    cfn.get_waiter("change_set_create_complete").wait(ChangeSetName=first["Id"])
    cfn.execute_change_set(ChangeSetName=first["Id"])
    retagged = cfn.create_change_set(
        StackName=name, ChangeSetName="c2", ChangeSetType="UPDATE", TemplateBody=template,
        Parameters=params, Capabilities=["CAPABILITY_IAM"], Tags=[{"Key": "commit", "Value": "2"}],
    )
    described = cfn.describe_change_set(ChangeSetName=retagged["Id"])
    assert described["Status"] == "CREATE_COMPLETE", described.get("StatusReason")
    changes = [c["ResourceChange"] for c in described["Changes"]]
    assert changes, "no resource takes the new tags"
    assert all(c["Action"] == "Modify" and c["Scope"] == ["Tags"] for c in changes), changes
    assert any(c["ResourceType"] == "AWS::Lambda::Function" for c in changes), changes
    # The same tags again: nothing to change.
    same = cfn.create_change_set(
        StackName=name, ChangeSetName="c3", ChangeSetType="UPDATE", TemplateBody=template,
        Parameters=params, Capabilities=["CAPABILITY_IAM"], Tags=[{"Key": "commit", "Value": "1"}],
    )
    assert cfn.describe_change_set(ChangeSetName=same["Id"])["Status"] == "FAILED"
    cfn.delete_stack(StackName=name)


def test_a_list_parameter_is_described_as_it_was_passed(aws, stack):
    stack.deploy(Subnets="subnet-1,subnet-2")
    (desc,) = aws["cloudformation"].describe_stacks(StackName=stack.name)["Stacks"]
    described = {p["ParameterKey"]: p["ParameterValue"] for p in desc["Parameters"]}
    assert described["Subnets"] == "subnet-1,subnet-2"
    assert described["Mode"] == "STREAM"
