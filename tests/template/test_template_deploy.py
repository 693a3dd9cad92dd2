"""template.yaml deployed to the local AWS emulator (moto + localaws/moto_ext), through
change sets as the deployer deploys: create, update, both response modes, authentication
on and off, with and without a VPC, outputs resolved. Run through
`scripts/local-aws.sh run` (make test-template), which sets AWS_ENDPOINT_URL.

What the emulator cannot show (API Gateway invoking the function, rollbacks) is not
tested here; see docs/local-aws.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from typing import Any

import boto3
import botocore.exceptions
import pytest

from cfn_template import TEMPLATE_PATH
from localaws.tests.conftest import bootstrap_zip, put_in_new_bucket

REGION = "us-east-1"
OUTPUTS = {
    "ApiUrl",
    "ApiId",
    "StageName",
    "ResponseTransferMode",
    "FunctionName",
    "FunctionArn",
    "LogGroupName",
    "AccessLogGroupName",
    "ExecutionLogGroupName",
    "DashboardUrl",
    "AlarmTopicArn",
    "UsageTableName",
}


@pytest.fixture(scope="module")
def aws():
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if "127.0.0.1" not in endpoint and "localhost" not in endpoint:
        pytest.fail("AWS_ENDPOINT_URL must point at the local emulator: run through scripts/local-aws.sh run")
    session = boto3.Session(region_name=REGION)
    names = ("cloudformation", "s3", "secretsmanager", "lambda", "apigateway", "logs", "cloudwatch", "iam", "sns", "ec2", "kms", "dynamodb")
    return {name: session.client(name) for name in names}


@pytest.fixture(scope="module")
def code(aws):
    """A real zip with a `bootstrap` in an S3 bucket, as the deployer uploads it."""
    body = bootstrap_zip("#!/bin/sh\necho not a real proxy\n")
    key = f"openai-proxy-function/{hashlib.sha256(body).hexdigest()}.zip"
    bucket = put_in_new_bucket(aws["s3"], "code", key, body)
    return {"bucket": bucket, "key": key, "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode()}


@pytest.fixture(scope="module")
def secret_arn(aws):
    created = aws["secretsmanager"].create_secret(
        Name=f"openai-proxy/config-{uuid.uuid4().hex[:6]}",
        SecretString=json.dumps({"openai_api_key": "sk-test-not-real", "model_mappings": {"amazon.nova-lite-v1:0": "gpt-4o-mini"}}),
    )
    return created["ARN"]


class Stack:
    """One stack of the template, deployed and updated through change sets."""

    def __init__(self, aws: dict[str, Any], base: dict[str, str]):
        self.aws = aws
        self.cfn = aws["cloudformation"]
        self.name = f"proxy-{uuid.uuid4().hex[:10]}"
        self.parameters = dict(base)
        self.created = False
        # The template as deployed; a test may rewrite it as the deployer does.
        self.body = TEMPLATE_PATH.read_text()

    def change_set(self, **changes: str) -> dict[str, Any]:
        parameters = {**self.parameters, **changes}
        name = f"cs-{uuid.uuid4().hex[:8]}"
        self.cfn.create_change_set(
            StackName=self.name,
            ChangeSetName=name,
            ChangeSetType="UPDATE" if self.created else "CREATE",
            TemplateBody=self.body,
            Capabilities=["CAPABILITY_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )
        described = self.cfn.describe_change_set(StackName=self.name, ChangeSetName=name)
        described["_parameters"] = parameters
        return described

    def deploy(self, **changes: str) -> dict[str, str]:
        described = self.change_set(**changes)
        assert described["Status"] == "CREATE_COMPLETE", described.get("StatusReason")
        kind = "UPDATE" if self.created else "CREATE"
        self.cfn.execute_change_set(StackName=self.name, ChangeSetName=described["ChangeSetName"])
        self.created = True
        self.parameters = described["_parameters"]
        (stack,) = self.cfn.describe_stacks(StackName=self.name)["Stacks"]
        assert stack["StackStatus"] == f"{kind}_COMPLETE", stack.get("StackStatusReason")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        assert set(outputs) == OUTPUTS
        for key, value in outputs.items():
            assert value and "${" not in value and "None" not in value and "<" not in value, (key, value)
        return outputs

    def physical_id(self, logical_id: str) -> str:
        resource = self.cfn.describe_stack_resource(StackName=self.name, LogicalResourceId=logical_id)
        return resource["StackResourceDetail"]["PhysicalResourceId"]

    def logical_ids(self) -> set[str]:
        return {r["LogicalResourceId"] for r in self.cfn.describe_stack_resources(StackName=self.name)["StackResources"]}

    def delete(self) -> None:
        try:
            self.cfn.delete_stack(StackName=self.name)
        except botocore.exceptions.ClientError:
            pass


@pytest.fixture
def stack(aws, code, secret_arn):
    suffix = uuid.uuid4().hex[:8]
    made = Stack(
        aws,
        {
            "OpenAIApiKeySecretArn": secret_arn,
            "CodeS3Bucket": code["bucket"],
            "CodeS3Key": code["key"],
            # Unique names: the defaults are fixed names, and tests share one emulator.
            "LambdaFunctionName": f"openai-lambda-proxy-{suffix}",
            "ApiGatewayName": f"openai-proxy-api-{suffix}",
        },
    )
    yield made
    made.delete()


# ----------------------------------------------------------------------------- readers


def integration(aws, api_id: str, path: str, method: str) -> dict[str, Any]:
    """GetIntegration as the emulator answers it (raw JSON: this botocore predates
    responseTransferMode and would drop it)."""
    resource = next(r for r in aws["apigateway"].get_resources(restApiId=api_id, limit=500)["items"] if r["path"] == path)
    raw: dict[str, Any] = {}

    def keep(http_response, **_):
        raw.update(json.loads(http_response.content))

    events = aws["apigateway"].meta.events
    events.register("after-call.api-gateway.GetIntegration", keep)
    try:
        aws["apigateway"].get_integration(restApiId=api_id, resourceId=resource["id"], httpMethod=method)
    finally:
        events.unregister("after-call.api-gateway.GetIntegration", keep)
    return raw


ROUTES = [("/", "ANY"), ("/{proxy+}", "ANY"), ("/v1/{proxy+}", "ANY"), ("/v1/models", "ANY"), ("/v1/models", "GET"), ("/v1/models/{proxy+}", "ANY")]


def assert_routes(aws, outputs: dict[str, str], mode: str, timeout_ms: int) -> None:
    function_arn = outputs["FunctionArn"]
    if mode == "STREAM":
        uri = f"arn:aws:apigateway:{REGION}:lambda:path/2021-11-15/functions/{function_arn}/response-streaming-invocations"
    else:
        uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    for path, method in ROUTES:
        found = integration(aws, outputs["ApiId"], path, method)
        assert found["type"] == "AWS_PROXY", (path, method)
        assert found["uri"] == uri, (path, method)
        assert int(found["timeoutInMillis"]) == timeout_ms, (path, method)
        assert found["responseTransferMode"] == mode, (path, method)


def function_config(aws, outputs: dict[str, str]) -> dict[str, Any]:
    return aws["lambda"].get_function_configuration(FunctionName=outputs["FunctionName"])


def retention(aws, group: str) -> int | None:
    (found,) = [g for g in aws["logs"].describe_log_groups(logGroupNamePrefix=group)["logGroups"] if g["logGroupName"] == group]
    return found.get("retentionInDays")


def inline_statements(aws, stack: Stack) -> list[dict[str, Any]]:
    role = stack.physical_id("FunctionRole")
    (name,) = aws["iam"].list_role_policies(RoleName=role)["PolicyNames"]
    document = aws["iam"].get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    return document["Statement"]


def sids(aws, stack: Stack) -> set[str]:
    return {s["Sid"] for s in inline_statements(aws, stack)}


def with_deployment_named(body: str, logical_id: str) -> str:
    """The template with ApiDeployment renamed, as the deployer names it after a hash of the
    API (the stage's Ref included)."""
    renamed = body.replace("ApiDeployment", logical_id)
    assert renamed != body
    return renamed


# ----------------------------------------------------------------------------- tests


def test_create_with_defaults_streams_and_everything_resolves(aws, stack, code, secret_arn):
    outputs = stack.deploy()

    api_id = outputs["ApiId"]
    assert outputs["ApiUrl"] == f"https://{api_id}.execute-api.{REGION}.amazonaws.com/prod"
    assert outputs["StageName"] == "prod" and outputs["ResponseTransferMode"] == "STREAM"
    assert outputs["FunctionArn"].endswith(f":function:{outputs['FunctionName']}")
    assert outputs["LogGroupName"] == f"/aws/lambda/{outputs['FunctionName']}"
    assert re.fullmatch(rf"https://{REGION}\.console\.aws\.amazon\.com/cloudwatch/home\?region={REGION}#dashboards:name={stack.name}", outputs["DashboardUrl"])

    config = function_config(aws, outputs)
    assert (config["Runtime"], config["Handler"], config["Architectures"]) == ("provided.al2023", "bootstrap", ["arm64"])
    assert (config["MemorySize"], config["Timeout"]) == (512, 300)
    assert config["CodeSha256"] == code["sha256"], "the code is the zip from the bucket"
    assert config["Environment"]["Variables"] == {
        "OPENAI_API_KEY_SECRET_ARN": secret_arn,
        "LOG_LEVEL": "INFO",
        "ENABLE_AUTHENTICATION": "true",
        "RESPONSE_MODE": "stream",
        "CORS_ALLOWED_ORIGINS": "*",
        "SECRET_CACHE_TTL_SECONDS": "300",
        "USAGE_TABLE": f"{outputs['FunctionName']}-usage",
        "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH": "true",
    }
    assert config["TracingConfig"] == {"Mode": "PassThrough"}
    assert not config.get("VpcConfig", {}).get("SubnetIds")
    assert "ReservedConcurrentExecutions" not in aws["lambda"].get_function_concurrency(FunctionName=outputs["FunctionName"])

    assert_routes(aws, outputs, "STREAM", 300_000)
    api = aws["apigateway"].get_rest_api(restApiId=api_id)
    assert api["endpointConfiguration"]["types"] == ["REGIONAL"]
    assert "minimumCompressionSize" not in api, "STREAM mode cannot compress"

    stage = aws["apigateway"].get_stage(restApiId=api_id, stageName="prod")
    settings = stage["methodSettings"]["*/*"]
    assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (50, 100)
    assert (settings["loggingLevel"], settings["dataTraceEnabled"], settings["metricsEnabled"]) == ("INFO", False, True)
    assert stage["cacheClusterEnabled"] is False and set(stage["methodSettings"]) == {"*/*"}
    assert stage["deploymentId"] == stack.physical_id("ApiDeployment")
    access = aws["logs"].describe_log_groups(logGroupNamePrefix=outputs["AccessLogGroupName"])["logGroups"][0]
    assert stage["accessLogSettings"]["destinationArn"].rstrip(":*") == access["arn"].rstrip(":*")
    json.loads(stage["accessLogSettings"]["format"])

    for group in (outputs["LogGroupName"], outputs["AccessLogGroupName"], outputs["ExecutionLogGroupName"]):
        assert retention(aws, group) == 14, group

    responses = {r["responseType"]: r for r in aws["apigateway"].get_gateway_responses(restApiId=api_id)["items"]}
    assert responses["THROTTLED"]["statusCode"] == "429"
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["statusCode"] == "404"
    assert responses["THROTTLED"]["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'"

    alarms = {a["AlarmName"]: a for a in aws["cloudwatch"].describe_alarms(AlarmNamePrefix=f"{stack.name}-")["MetricAlarms"]}
    assert {n.removeprefix(f"{stack.name}-") for n in alarms} == {
        "lambda-errors", "lambda-duration", "api-4xx", "api-5xx", "lambda-throttles", "proxy-errors",
        "guard-lambda-errors", "guard-api-5xx", "client-budget",
    }
    errors = alarms[f"{stack.name}-lambda-errors"]
    assert (errors["Threshold"], errors["Period"], errors["EvaluationPeriods"]) == (5.0, 300, 1)
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": outputs["FunctionName"]}]
    assert alarms[f"{stack.name}-lambda-duration"]["Threshold"] == 30000.0
    assert alarms[f"{stack.name}-api-4xx"]["Dimensions"] == [
        {"Name": "ApiName", "Value": stack.parameters["ApiGatewayName"]},
        {"Name": "Stage", "Value": "prod"},
    ]
    for name, alarm in alarms.items():
        paging = [] if "-guard-" in name else [outputs["AlarmTopicArn"]]
        assert alarm["AlarmActions"] == paging and alarm["TreatMissingData"] == "notBreaching", name

    topic = aws["sns"].get_topic_attributes(TopicArn=outputs["AlarmTopicArn"])["Attributes"]
    assert topic["KmsMasterKeyId"]
    policy = json.loads(topic["Policy"])
    assert {s["Sid"] for s in policy["Statement"]} == {"CloudWatchAlarmsOfThisStack", "HttpsOnly"}
    assert aws["sns"].list_subscriptions_by_topic(TopicArn=outputs["AlarmTopicArn"])["Subscriptions"] == []

    dashboard = aws["cloudwatch"].get_dashboard(DashboardName=stack.name)
    body = json.loads(dashboard["DashboardBody"])
    rendered = json.dumps(body)
    assert outputs["FunctionName"] in rendered and api_id in rendered and "${" not in rendered
    assert all(arn.startswith("arn:aws:cloudwatch:") for arn in body["widgets"][-1]["properties"]["alarms"])

    table = aws["dynamodb"].describe_table(TableName=config["Environment"]["Variables"]["USAGE_TABLE"])["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    ttl = aws["dynamodb"].describe_time_to_live(TableName=table["TableName"])["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    backups = aws["dynamodb"].describe_continuous_backups(TableName=table["TableName"])["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    usage_statement = next(s for s in inline_statements(aws, stack) if s["Sid"] == "CountUsageOfLimitedClients")
    assert (usage_statement["Action"], usage_statement["Resource"]) == ("dynamodb:UpdateItem", table["TableArn"])

    assert sids(aws, stack) == {"OwnLogGroupOnly", "ReadTheConfigurationSecret", "CountUsageOfLimitedClients"}
    secret_statement = next(s for s in inline_statements(aws, stack) if s["Sid"] == "ReadTheConfigurationSecret")
    assert secret_statement["Resource"] == secret_arn

    permission = json.loads(aws["lambda"].get_policy(FunctionName=outputs["FunctionName"])["Policy"])
    (statement,) = permission["Statement"]
    assert statement["Sid"] == stack.physical_id("FunctionInvokePermission")
    assert statement["Principal"] in ({"Service": "apigateway.amazonaws.com"}, "apigateway.amazonaws.com")
    assert f":{api_id}/prod/*/*" in json.dumps(statement)

    # Deploying the same template and parameters again is an empty change set.
    again = stack.change_set()
    assert again["Status"] == "FAILED" and "didn't contain changes" in again["StatusReason"]


def test_update_with_changed_parameters_updates_in_place(aws, stack):
    first = stack.deploy()
    second = stack.deploy(MemorySize="1024", LambdaTimeout="120", LogRetentionInDays="30", ThrottlingRateLimit="10", LogLevel="ERROR", Architecture="x86_64")

    assert {k: second[k] for k in ("ApiUrl", "FunctionArn", "LogGroupName")} == {k: first[k] for k in ("ApiUrl", "FunctionArn", "LogGroupName")}
    config = function_config(aws, second)
    assert (config["MemorySize"], config["Timeout"], config["Architectures"]) == (1024, 120, ["x86_64"])
    assert config["Environment"]["Variables"]["LOG_LEVEL"] == "ERROR"
    for group in (second["LogGroupName"], second["AccessLogGroupName"], second["ExecutionLogGroupName"]):
        assert retention(aws, group) == 30, group
    stage = aws["apigateway"].get_stage(restApiId=second["ApiId"], stageName="prod")
    assert stage["methodSettings"]["*/*"]["throttlingRateLimit"] == 10
    assert stage["methodSettings"]["*/*"]["loggingLevel"] == "ERROR"
    assert_routes(aws, second, "STREAM", 120_000)


def test_buffered_mode_with_models_cache_and_compression(aws, stack):
    outputs = stack.deploy(ResponseTransferMode="BUFFERED", ModelsCacheTtlInSeconds="300")

    assert outputs["ResponseTransferMode"] == "BUFFERED"
    assert function_config(aws, outputs)["Environment"]["Variables"]["RESPONSE_MODE"] == "buffered"
    assert_routes(aws, outputs, "BUFFERED", 29_000)
    assert integration(aws, outputs["ApiId"], "/v1/models", "GET")["cacheKeyParameters"] == [
        "method.request.header.Authorization",
        "method.request.header.x-api-key",
    ]
    assert aws["apigateway"].get_rest_api(restApiId=outputs["ApiId"])["minimumCompressionSize"] == 1024
    stage = aws["apigateway"].get_stage(restApiId=outputs["ApiId"], stageName="prod")
    assert (stage["cacheClusterEnabled"], stage["cacheClusterSize"]) == (True, "0.5")
    models = stage["methodSettings"]["~1v1~1models/GET"]
    assert (models["cachingEnabled"], models["cacheTtlInSeconds"], models["cacheDataEncrypted"]) == (True, 300, True)
    assert stage["methodSettings"]["*/*"]["cachingEnabled"] is False, "nothing else is cached"
    assert stage["deploymentId"] == stack.physical_id("ApiDeployment")


def test_switching_response_mode_with_the_deployment_renamed_redeploys_the_api(aws, stack):
    streaming = stack.deploy()
    stream_deployment = stack.physical_id("ApiDeployment")

    stack.body = with_deployment_named(stack.body, "ApiDeploymentB0ffe4ed")
    buffered = stack.deploy(ResponseTransferMode="BUFFERED")
    assert buffered["ApiUrl"] == streaming["ApiUrl"]
    assert_routes(aws, buffered, "BUFFERED", 29_000)
    assert function_config(aws, buffered)["Environment"]["Variables"]["RESPONSE_MODE"] == "buffered"
    stage = aws["apigateway"].get_stage(restApiId=buffered["ApiId"], stageName="prod")
    deployments = {d["id"] for d in aws["apigateway"].get_deployments(restApiId=buffered["ApiId"])["items"]}
    assert stage["deploymentId"] == stack.physical_id("ApiDeploymentB0ffe4ed") != stream_deployment
    assert deployments == {stage["deploymentId"]}, "the old deployment is deleted with its resource"
    buffered_deployment = stage["deploymentId"]
    assert aws["apigateway"].get_rest_api(restApiId=buffered["ApiId"])["minimumCompressionSize"] == 1024

    stack.body = with_deployment_named(TEMPLATE_PATH.read_text(), "ApiDeployment5747ea11")
    back = stack.deploy(ResponseTransferMode="STREAM")
    assert_routes(aws, back, "STREAM", 300_000)
    assert function_config(aws, back)["Environment"]["Variables"]["RESPONSE_MODE"] == "stream"
    assert "minimumCompressionSize" not in aws["apigateway"].get_rest_api(restApiId=back["ApiId"])
    stage = aws["apigateway"].get_stage(restApiId=back["ApiId"], stageName="prod")
    assert stage["deploymentId"] == stack.physical_id("ApiDeployment5747ea11") not in (stream_deployment, buffered_deployment)


def test_authentication_on_then_off(aws, stack):
    on = stack.deploy(EnableAuthentication="true", CorsAllowedOrigins="https://app.example.com,https://admin.example.com")
    variables = function_config(aws, on)["Environment"]["Variables"]
    assert variables["ENABLE_AUTHENTICATION"] == "true"
    assert variables["CORS_ALLOWED_ORIGINS"] == "https://app.example.com,https://admin.example.com"
    throttled = aws["apigateway"].get_gateway_response(restApiId=on["ApiId"], responseType="THROTTLED")
    assert throttled["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"] == "'https://app.example.com'"

    off = stack.deploy(EnableAuthentication="false", CorsAllowedOrigins="*")
    assert function_config(aws, off)["Environment"]["Variables"]["ENABLE_AUTHENTICATION"] == "false"
    throttled = aws["apigateway"].get_gateway_response(restApiId=off["ApiId"], responseType="THROTTLED")
    assert throttled["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'"


@pytest.fixture(scope="module")
def network(aws):
    ec2 = aws["ec2"]
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    group = ec2.create_security_group(GroupName=f"proxy-{uuid.uuid4().hex[:6]}", Description="proxy", VpcId=vpc)["GroupId"]
    return {"subnets": subnets, "groups": [group]}


def test_vpc_on_and_off(aws, stack, network):
    outputs = stack.deploy(VpcSubnetIds=",".join(network["subnets"]), VpcSecurityGroupIds=",".join(network["groups"]))
    vpc = function_config(aws, outputs)["VpcConfig"]
    assert sorted(vpc["SubnetIds"]) == sorted(network["subnets"]) and vpc["SecurityGroupIds"] == network["groups"]
    assert {"VpcNetworkInterfaces", "VpcDescribe"} <= sids(aws, stack)

    outputs = stack.deploy(VpcSubnetIds="", VpcSecurityGroupIds="")
    assert not function_config(aws, outputs).get("VpcConfig", {}).get("SubnetIds")
    assert sids(aws, stack) == {"OwnLogGroupOnly", "ReadTheConfigurationSecret", "CountUsageOfLimitedClients"}, "ENI permissions only with a VPC"


def test_bedrock_is_granted_on_the_named_models_only_and_only_when_named(aws, stack):
    arns = [
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0",
        "arn:aws:bedrock:*::foundation-model/amazon.nova-lite-v1:0",
    ]
    stack.deploy(BedrockModelArns=",".join(arns))
    (grant,) = [s for s in inline_statements(aws, stack) if s["Sid"] == "InvokeTheMappedBedrockModels"]
    assert sorted(grant["Action"]) == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    assert sorted(grant["Resource"]) == sorted(arns)

    stack.deploy(BedrockModelArns="")
    assert "InvokeTheMappedBedrockModels" not in sids(aws, stack)


def test_subnets_without_security_groups_stay_out_of_the_vpc(aws, stack, network):
    outputs = stack.deploy(VpcSubnetIds=",".join(network["subnets"]))
    assert not function_config(aws, outputs).get("VpcConfig", {}).get("SubnetIds")
    assert "VpcNetworkInterfaces" not in sids(aws, stack)


def test_tracing_kms_reserved_concurrency_and_alarm_email(aws, stack):
    key_arn = aws["kms"].create_key(Description="secret key")["KeyMetadata"]["Arn"]
    outputs = stack.deploy(EnableTracing="true", SecretKmsKeyArn=key_arn, ReservedConcurrency="5", AlarmEmail="oncall@example.com")

    assert function_config(aws, outputs)["TracingConfig"] == {"Mode": "Active"}
    assert aws["apigateway"].get_stage(restApiId=outputs["ApiId"], stageName="prod")["tracingEnabled"] is True
    assert aws["lambda"].get_function_concurrency(FunctionName=outputs["FunctionName"])["ReservedConcurrentExecutions"] == 5
    statements = {s["Sid"]: s for s in inline_statements(aws, stack)}
    assert statements["DecryptTheSecretThroughSecretsManager"]["Resource"] == key_arn
    assert statements["DecryptTheSecretThroughSecretsManager"]["Condition"] == {
        "StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}
    }
    assert statements["XRayTraces"]["Resource"] == "*"
    subscriptions = aws["sns"].list_subscriptions_by_topic(TopicArn=outputs["AlarmTopicArn"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "oncall@example.com")]

    # And back: each of them can be switched off again.
    outputs = stack.deploy(EnableTracing="false", SecretKmsKeyArn="", ReservedConcurrency="-1", AlarmEmail="")
    assert function_config(aws, outputs)["TracingConfig"] == {"Mode": "PassThrough"}
    assert "ReservedConcurrentExecutions" not in aws["lambda"].get_function_concurrency(FunctionName=outputs["FunctionName"])
    assert sids(aws, stack) == {"OwnLogGroupOnly", "ReadTheConfigurationSecret", "CountUsageOfLimitedClients"}
    assert aws["sns"].list_subscriptions_by_topic(TopicArn=outputs["AlarmTopicArn"])["Subscriptions"] == []


def test_by_default_the_accounts_logging_role_is_left_alone(aws, stack):
    theirs = aws["iam"].create_role(
        RoleName=f"apigateway-logs-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
    )["Role"]["Arn"]
    aws["apigateway"].update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": theirs}])

    stack.deploy()
    assert {"ApiGatewayLoggingRole", "ApiGatewayAccount"}.isdisjoint(stack.logical_ids())
    assert aws["apigateway"].get_account()["cloudwatchRoleArn"] == theirs


def test_a_stack_told_to_manage_the_account_sets_its_logging_role_before_the_stage(aws, stack):
    outputs = stack.deploy(ManageApiGatewayAccount="true")

    role = stack.physical_id("ApiGatewayLoggingRole")
    assert aws["apigateway"].get_account()["cloudwatchRoleArn"].split("/")[-1] == role
    # The stage names the account setting, which is what makes it wait for it.
    stage = aws["apigateway"].get_stage(restApiId=outputs["ApiId"], stageName="prod")
    assert stack.physical_id("ApiGatewayAccount") in stage["description"]


def test_delete_removes_the_stack_but_keeps_the_account_logging_role(aws, stack):
    outputs = stack.deploy(ManageApiGatewayAccount="true")
    logging_role = stack.physical_id("ApiGatewayLoggingRole")
    aws["cloudformation"].delete_stack(StackName=stack.name)

    with pytest.raises(botocore.exceptions.ClientError, match="ResourceNotFound"):
        aws["lambda"].get_function(FunctionName=outputs["FunctionName"])
    with pytest.raises(botocore.exceptions.ClientError, match="NotFound"):
        aws["apigateway"].get_rest_api(restApiId=outputs["ApiId"])
    assert aws["cloudwatch"].describe_alarms(AlarmNamePrefix=f"{stack.name}-")["MetricAlarms"] == []
    assert aws["logs"].describe_log_groups(logGroupNamePrefix=outputs["LogGroupName"])["logGroups"] == []
    assert aws["iam"].get_role(RoleName=logging_role)["Role"]["RoleName"] == logging_role


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("OpenAIApiKeySecretArn", "sk-proj-not-an-arn"),
        ("Stage", "staging"),
        ("ResponseTransferMode", "stream"),
        ("MemorySize", "64"),
        ("LambdaTimeout", "901"),
        ("LogRetentionInDays", "10"),
        ("EnableAuthentication", "yes"),
        ("ApiGatewayName", "my proxy api"),
        ("CorsAllowedOrigins", "app.example.com"),
        ("BedrockModelArns", "arn:aws:s3:::a-bucket"),
    ],
)
def test_invalid_parameters_are_rejected_before_anything_changes(aws, stack, parameter, value):
    with pytest.raises(botocore.exceptions.ClientError, match=f"ValidationError.*{parameter}"):
        stack.change_set(**{parameter: value})
    with pytest.raises(botocore.exceptions.ClientError):
        aws["cloudformation"].describe_stacks(StackName=stack.name)


def test_validate_template_lists_every_parameter_and_needs_only_capability_iam(aws, template):
    """What the deployer reads before it deploys (ValidateTemplate)."""
    answer = aws["cloudformation"].validate_template(TemplateBody=TEMPLATE_PATH.read_text())
    listed = {p["ParameterKey"]: p.get("DefaultValue") for p in answer["Parameters"]}
    assert set(listed) == set(template["Parameters"])
    required = {name for name, default in listed.items() if default is None}
    assert required == {"OpenAIApiKeySecretArn", "CodeS3Bucket", "CodeS3Key"}
    assert answer["Capabilities"] == ["CAPABILITY_IAM"], "no named IAM resources"
