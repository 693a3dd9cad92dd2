"""The moto extension, exercised over HTTP against the emulator the launcher started
(scripts/local-aws.sh run sets AWS_ENDPOINT_URL). Every stack goes through change sets,
as the deployer deploys."""

from __future__ import annotations

import json
import pathlib
import uuid

import botocore.exceptions
import pytest

from localaws.tests.conftest import create_change_set

TEMPLATE = (pathlib.Path(__file__).parent / "extension_stack.yaml").read_text()


def change_set(cfn, stack: str, kind: str, **parameters: str) -> dict:
    name = f"cs-{uuid.uuid4().hex[:8]}"
    create_change_set(cfn, stack, name, kind, TEMPLATE, parameters)
    return cfn.describe_change_set(StackName=stack, ChangeSetName=name)


def deploy(cfn, stack: str, kind: str, **parameters: str) -> dict[str, str]:
    described = change_set(cfn, stack, kind, **parameters)
    assert described["Status"] == "CREATE_COMPLETE", described.get("StatusReason")
    cfn.execute_change_set(StackName=stack, ChangeSetName=described["ChangeSetName"])
    (desc,) = cfn.describe_stacks(StackName=stack)["Stacks"]
    assert desc["StackStatus"] == f"{kind}_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}


@pytest.fixture
def stack(aws):
    name = f"ext-{uuid.uuid4().hex[:10]}"
    yield name
    try:
        aws["cloudformation"].delete_stack(StackName=name)
    except botocore.exceptions.ClientError:
        pass


def test_change_set_create_builds_every_resource_and_resolves_outputs(aws, stack):
    outputs = deploy(aws["cloudformation"], stack, "CREATE")

    # Outputs that reference the added types resolve instead of coming back literally.
    assert "${" not in outputs["ApiUrl"] and outputs["ApiUrl"].endswith("/v1"), outputs
    api_id = outputs["ApiUrl"].split("//")[1].split(".")[0]
    assert outputs["StageName"] == "v1"

    stage = aws["apigateway"].get_stage(restApiId=api_id, stageName="v1")
    settings = stage["methodSettings"]["*/*"]
    assert settings["throttlingRateLimit"] == 50 and settings["throttlingBurstLimit"] == 100
    assert stage["accessLogSettings"]["destinationArn"].startswith("arn:aws:logs:")
    assert stage["deploymentId"] in {d["id"] for d in aws["apigateway"].get_deployments(restApiId=api_id)["items"]}

    (alarm,) = aws["cloudwatch"].describe_alarms(AlarmNames=[outputs["AlarmName"]])["MetricAlarms"]
    assert alarm["AlarmArn"] == outputs["AlarmArn"]
    assert (alarm["Threshold"], alarm["Period"], alarm["ComparisonOperator"]) == (5.0, 300, "GreaterThanOrEqualToThreshold")
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] and alarm["AlarmActions"][0].startswith("arn:aws:sns:")

    secret = aws["secretsmanager"].get_secret_value(SecretId=outputs["SecretArn"])
    assert secret["SecretString"] == '{"openai_api_key":"sk-test"}'

    plan = aws["apigateway"].get_usage_plan(usagePlanId=outputs["UsagePlanId"])
    assert plan["apiStages"] == [{"apiId": api_id, "stage": "v1"}]
    assert plan["throttle"] == {"rateLimit": 10, "burstLimit": 20}
    keys = aws["apigateway"].get_usage_plan_keys(usagePlanId=outputs["UsagePlanId"])["items"]
    assert [k["id"] for k in keys] == [outputs["ApiKeyId"]]
    assert aws["apigateway"].get_api_key(apiKey=outputs["ApiKeyId"])["enabled"] is True

    response = aws["apigateway"].get_gateway_response(restApiId=api_id, responseType="DEFAULT_4XX")
    assert response["statusCode"] == "404"

    subscriptions = aws["sns"].list_subscriptions()["Subscriptions"]
    assert outputs["SubscriptionArn"] in {s["SubscriptionArn"] for s in subscriptions}

    # Architectures survive (moto alone turned arm64 into x86_64).
    config = aws["lambda"].get_function_configuration(FunctionName=outputs["FunctionName"])
    assert config["Architectures"] == ["arm64"]

    # The MOCK method (no Uri) deployed instead of failing the stack with HTTP 500.
    root = next(r for r in aws["apigateway"].get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    integration = aws["apigateway"].get_integration(restApiId=api_id, resourceId=root["id"], httpMethod="OPTIONS")
    assert integration["type"] == "MOCK"


def test_update_through_change_set_applies_changed_parameters(aws, stack):
    cfn = aws["cloudformation"]
    first = deploy(cfn, stack, "CREATE")
    second = deploy(cfn, stack, "UPDATE", AlarmThreshold="10", RateLimit="75", Architecture="x86_64")

    assert second["ApiUrl"] == first["ApiUrl"]
    (alarm,) = aws["cloudwatch"].describe_alarms(AlarmNames=[second["AlarmName"]])["MetricAlarms"]
    assert alarm["Threshold"] == 10.0
    api_id = second["ApiUrl"].split("//")[1].split(".")[0]
    stage = aws["apigateway"].get_stage(restApiId=api_id, stageName="v1")
    assert stage["methodSettings"]["*/*"]["throttlingRateLimit"] == 75
    config = aws["lambda"].get_function_configuration(FunctionName=second["FunctionName"])
    assert config["Architectures"] == ["x86_64"]

    # The same template and parameters again is an empty change set, as in AWS.
    again = change_set(cfn, stack, "UPDATE", AlarmThreshold="10", RateLimit="75", Architecture="x86_64")
    assert again["Status"] == "FAILED"
    assert "didn't contain changes" in again["StatusReason"]


def test_renamed_stage_replaces_the_old_one_and_outputs_follow(aws, stack):
    cfn = aws["cloudformation"]
    first = deploy(cfn, stack, "CREATE")
    second = deploy(cfn, stack, "UPDATE", StageName="v2")
    assert second["ApiUrl"] == first["ApiUrl"][: -len("v1")] + "v2"
    api_id = second["ApiUrl"].split("//")[1].split(".")[0]
    stages = {s["stageName"] for s in aws["apigateway"].get_stages(restApiId=api_id)["item"]}
    assert stages == {"v2"}


def test_delete_stack_removes_what_the_extension_created(aws, stack):
    cfn = aws["cloudformation"]
    outputs = deploy(cfn, stack, "CREATE")
    cfn.delete_stack(StackName=stack)

    assert aws["cloudwatch"].describe_alarms(AlarmNames=[outputs["AlarmName"]])["MetricAlarms"] == []
    with pytest.raises(botocore.exceptions.ClientError, match="ResourceNotFound"):
        aws["secretsmanager"].get_secret_value(SecretId=outputs["SecretArn"])
    with pytest.raises(botocore.exceptions.ClientError, match="NotFound"):
        aws["apigateway"].get_usage_plan(usagePlanId=outputs["UsagePlanId"])
    with pytest.raises(botocore.exceptions.ClientError, match="NotFound"):
        aws["apigateway"].get_api_key(apiKey=outputs["ApiKeyId"])
    subscriptions = aws["sns"].list_subscriptions()["Subscriptions"]
    assert outputs["SubscriptionArn"] not in {s["SubscriptionArn"] for s in subscriptions}


def test_a_resource_created_through_a_ref_waits_for_what_it_depends_on(aws, stack):
    # The deployer uploads its template as JSON with sorted keys, so a Stage can come
    # before the methods its Deployment depends on; CloudFormation still creates them first.
    method = {
        "Type": "AWS::ApiGateway::Method",
        "Properties": {
            "RestApiId": {"Ref": "Api"},
            "ResourceId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
            "HttpMethod": "GET",
            "AuthorizationType": "NONE",
            "Integration": {"Type": "MOCK", "RequestTemplates": {"application/json": '{"statusCode": 200}'}},
        },
    }
    template = {
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": stack}},
            "AStage": {
                "Type": "AWS::ApiGateway::Stage",
                "Properties": {"RestApiId": {"Ref": "Api"}, "DeploymentId": {"Ref": "Deployment"}, "StageName": "v1"},
            },
            "Deployment": {"Type": "AWS::ApiGateway::Deployment", "DependsOn": ["ZMethod"], "Properties": {"RestApiId": {"Ref": "Api"}}},
            "ZMethod": method,
        },
        "Outputs": {"ApiId": {"Value": {"Ref": "Api"}}},
    }
    cfn = aws["cloudformation"]
    cfn.create_change_set(StackName=stack, ChangeSetName="create", ChangeSetType="CREATE", TemplateBody=json.dumps(template))
    cfn.execute_change_set(StackName=stack, ChangeSetName="create")

    (desc,) = cfn.describe_stacks(StackName=stack)["Stacks"]
    assert desc["StackStatus"] == "CREATE_COMPLETE"
    api_id = desc["Outputs"][0]["OutputValue"]
    assert aws["apigateway"].get_stage(restApiId=api_id, stageName="v1")["deploymentId"]
