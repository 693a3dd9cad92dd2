"""What template.yaml must say, read from the file: the design document's alarms and
parameter names, retention, least-privilege IAM, the function's environment, the two
response modes, and that nothing secret can pass through a parameter or an output.

Each pin is a `check_*` function, so `test_pins_fail_on_broken_templates` can show that
each one catches the mistake it exists for.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Callable

import botocore.session
import pytest

from cfn_template import ROOT
from localaws.cfn_refs import names_in

# ----------------------------------------------------------------------------- helpers


def resources_of(template: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_name}


def if_branches(value: Any) -> list[Any]:
    """Both branches of an Fn::If (a plain value is its own only branch)."""
    if isinstance(value, dict) and "Fn::If" in value:
        return [value["Fn::If"][1], value["Fn::If"][2]]
    return [value]


def role_statements(template: dict[str, Any]) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(role, condition of the statement or None, statement) for every inline statement."""
    out = []
    for name, role in resources_of(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                if isinstance(statement, dict) and "Fn::If" in statement:
                    condition, present, absent = statement["Fn::If"]
                    assert absent == {"Ref": "AWS::NoValue"}, f"{name}: a conditional statement must vanish when off"
                    out.append((name, condition, present))
                else:
                    out.append((name, None, statement))
    return out


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def dependencies(template: dict[str, Any], name: str) -> set[str]:
    """The resources CloudFormation creates before `name`: its DependsOn and every resource
    its properties refer to."""
    resource = template["Resources"][name]
    referenced = names_in(resource.get("Properties", {})) & set(template["Resources"])
    return set(as_list(resource.get("DependsOn", []))) | referenced


# ----------------------------------------------------------------------------- pins

DESIGN_PARAMETERS = {
    # name: (default, allowed values or None); from the design document and DESIGN.md
    "OpenAIApiKeySecretArn": (None, None),
    "LambdaFunctionName": ("openai-lambda-proxy", None),
    "ApiGatewayName": ("openai-proxy-api", None),
    "Stage": ("prod", ["dev", "test", "prod"]),
    "LogLevel": ("INFO", ["DEBUG", "INFO", "WARNING", "ERROR"]),
    "EnableAuthentication": ("true", ["true", "false"]),  # secure by default
    "CodeS3Bucket": (None, None),
    "CodeS3Key": (None, None),
    "Architecture": ("arm64", ["arm64", "x86_64"]),
    # designed defaults of further parameters
    "MemorySize": (512, None),
    "LambdaTimeout": (300, None),
    "LogRetentionInDays": (14, None),
    "ResponseTransferMode": ("STREAM", ["STREAM", "BUFFERED"]),
    "CorsAllowedOrigins": ("*", None),
    "ReservedConcurrency": (-1, None),
    "SecretCacheTtlSeconds": (300, None),
    # an account-wide setting is replaced only when asked (the deployer asks on a fresh account)
    "ManageApiGatewayAccount": ("false", ["true", "false"]),
}


def check_parameters(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    for name, (default, allowed) in DESIGN_PARAMETERS.items():
        assert name in params, f"parameter {name} is part of the contract"
        assert params[name].get("Default") == default, f"{name} default"
        if allowed is not None:
            assert params[name]["AllowedValues"] == allowed, f"{name} allowed values"
    grouped = [
        p
        for group in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        for p in group["Parameters"]
    ]
    assert sorted(grouped) == sorted(params), "every parameter sits in exactly one interface group"
    for name, spec in params.items():
        assert len(spec.get("Description", "")) >= 20, f"{name} needs a description users can act on"
        validated = {"AllowedValues", "AllowedPattern", "MinValue", "MaxValue"} & set(spec)
        assert validated, f"{name} is not validated"
        if "AllowedPattern" in spec:
            assert spec.get("ConstraintDescription"), f"{name}: say what a valid value looks like"


def check_no_secret_parameters_or_outputs(template: dict[str, Any]) -> None:
    secretish = re.compile(r"(api_?key|secret|password|passwd|token|credential)", re.IGNORECASE)
    for name, spec in template["Parameters"].items():
        if secretish.search(name) and spec["Type"] != "Number":
            # Only references to secrets may be passed: ARNs, validated as such.
            assert name.endswith("Arn"), f"parameter {name} looks like it carries a secret"
            assert spec.get("AllowedPattern", "").startswith(("^arn:", "^$|^arn:")), f"{name} must only accept an ARN"
    for name, output in template["Outputs"].items():
        assert not secretish.search(name) or name.endswith(("Arn", "Name")), f"output {name}"
        referenced = names_in(output["Value"])
        assert not referenced & {"OpenAIApiKeySecretArn", "SecretKmsKeyArn"}, f"output {name} exposes the secret's identity"
        assert "NoEcho" not in output


def check_alarms(template: dict[str, Any]) -> None:
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    designed = {
        # the design document's four, exactly
        ("AWS/Lambda", "Errors", 300): ("Sum", 1, 5, "GreaterThanOrEqualToThreshold"),
        ("AWS/Lambda", "Duration", 300): ("Average", 1, 30000, "GreaterThanOrEqualToThreshold"),
        ("AWS/ApiGateway", "4XXError", 300): ("Sum", 1, 10, "GreaterThanOrEqualToThreshold"),
        ("AWS/ApiGateway", "5XXError", 300): ("Sum", 1, 5, "GreaterThanOrEqualToThreshold"),
        # ours: throttles, and the proxy's own error count (EMF)
        ("AWS/Lambda", "Throttles", 300): ("Sum", 1, 5, "GreaterThanOrEqualToThreshold"),
        ("OpenAILambdaProxy", "Errors", 300): ("Sum", 1, 5, "GreaterThanOrEqualToThreshold"),
        # the guarded deploy's rollback triggers: one minute, so that they can fire
        # inside the default 3-minute window (src/cfn/guard.rs); they notify no one
        ("AWS/Lambda", "Errors", 60): ("Sum", 1, 3, "GreaterThanOrEqualToThreshold"),
        ("AWS/ApiGateway", "5XXError", 60): ("Sum", 1, 3, "GreaterThanOrEqualToThreshold"),
        # a client key's share of its monthly budget (EMF): the one threshold the
        # operator chooses
        ("OpenAILambdaProxy", "BudgetUsedPercent", 300): ("Maximum", 1, {"Ref": "BudgetAlarmPercent"}, "GreaterThanOrEqualToThreshold"),
    }
    actual = {}
    for name, alarm in alarms.items():
        p = alarm["Properties"]
        actual[(p["Namespace"], p["MetricName"], p["Period"])] = (
            p["Statistic"],
            p["EvaluationPeriods"],
            p["Threshold"],
            p["ComparisonOperator"],
        )
        assert p["TreatMissingData"] == "notBreaching", name
        if p["Period"] == 60:
            assert "AlarmActions" not in p and "OKActions" not in p, f"{name}: a guard alarm pages no one"
        else:
            assert p["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        if p["MetricName"] != "BudgetUsedPercent":
            assert not any(isinstance(v, dict) and "Ref" in v and v["Ref"] in template["Parameters"] for v in actual[(p["Namespace"], p["MetricName"], p["Period"])]), name
    assert actual == designed
    duration = next(a for a in alarms.values() if a["Properties"]["MetricName"] == "Duration")
    assert duration["Properties"].get("Unit") == "Milliseconds", "30 s average, in the metric's unit"
    lambda_dims = [
        a["Properties"]["Dimensions"] for a in alarms.values() if a["Properties"]["Namespace"] == "AWS/Lambda"
    ]
    assert all(d == [{"Name": "FunctionName", "Value": {"Ref": "Function"}}] for d in lambda_dims)
    api_dims = [
        a["Properties"]["Dimensions"] for a in alarms.values() if a["Properties"]["Namespace"] == "AWS/ApiGateway"
    ]
    assert all(d == [{"Name": "ApiName", "Value": {"Ref": "ApiGatewayName"}}, {"Name": "Stage", "Value": {"Ref": "ApiStage"}}] for d in api_dims)
    topic = template["Resources"]["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmKey"}, "the alarm topic is encrypted with a key CloudWatch may use"


def check_log_retention(template: dict[str, Any]) -> None:
    groups = resources_of(template, "AWS::Logs::LogGroup")
    assert set(groups) == {"FunctionLogGroup", "AccessLogGroup", "ExecutionLogGroup"}
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}, name
    assert groups["FunctionLogGroup"]["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${LambdaFunctionName}"}
    function = template["Resources"]["Function"]["Properties"]
    assert function["FunctionName"] == {"Ref": "LambdaFunctionName"}
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": "FunctionLogGroup"}}
    assert groups["ExecutionLogGroup"]["Properties"]["LogGroupName"] == {"Fn::Sub": "API-Gateway-Execution-Logs_${Api}/${Stage}"}
    stage = template["Resources"]["ApiStage"]["Properties"]
    assert stage["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["AccessLogGroup", "Arn"]}


# Actions that support no resource-level scoping, so "*" is their only possible resource.
UNSCOPABLE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"}


def check_iam(template: dict[str, Any]) -> None:
    statements = role_statements(template)
    function_statements = [(c, s) for role, c, s in statements if role == "FunctionRole"]
    for role, _, statement in statements:
        assert statement["Effect"] == "Allow", role
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{role}: wildcard action {action}"
        if statement["Resource"] == "*":
            assert set(as_list(statement["Action"])) <= UNSCOPABLE_ACTIONS, f"{role}: {statement['Action']} on *"
    by_action = {a: (c, s) for c, s in function_statements for a in as_list(s["Action"])}
    assert set(by_action) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
        "dynamodb:UpdateItem",
        "kms:Decrypt",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "bedrock:InvokeModel",
        "bedrock:InvokeModelWithResponseStream",
    }
    cond, bedrock = by_action["bedrock:InvokeModel"]
    assert cond == "UsesBedrock" and bedrock["Resource"] == {"Ref": "BedrockModelArns"}, "only the mapped models, only when mapped"
    assert sorted(as_list(bedrock["Action"])) == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    cond, secret = by_action["secretsmanager:GetSecretValue"]
    assert cond is None and secret["Resource"] == {"Ref": "OpenAIApiKeySecretArn"}, "exactly the one secret"
    assert as_list(secret["Action"]) == ["secretsmanager:GetSecretValue"]
    cond, usage = by_action["dynamodb:UpdateItem"]
    assert cond is None and usage["Resource"] == {"Fn::GetAtt": ["UsageTable", "Arn"]}, "the usage table only"
    assert as_list(usage["Action"]) == ["dynamodb:UpdateItem"], "the one item action the ledger uses"
    cond, logs = by_action["logs:PutLogEvents"]
    assert cond is None and logs["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${FunctionLogGroup}:*"
    }, "logs only to its own log group"
    cond, kms = by_action["kms:Decrypt"]
    assert cond == "HasSecretKmsKey" and kms["Resource"] == {"Ref": "SecretKmsKeyArn"}
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}}
    assert by_action["xray:PutTraceSegments"][0] == "TracingEnabled"
    for action in ("ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces"):
        assert by_action[action][0] == "UseVpc", action
    trusts = {name: role["Properties"]["AssumeRolePolicyDocument"]["Statement"] for name, role in resources_of(template, "AWS::IAM::Role").items()}
    assert trusts["FunctionRole"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }
    ]
    assert trusts["ApiGatewayLoggingRole"] == [
        {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    logging_role = template["Resources"]["ApiGatewayLoggingRole"]
    assert logging_role["Properties"]["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"}
    ]
    assert logging_role["DeletionPolicy"] == "Retain", "other APIs of the account log through it"
    account = template["Resources"]["ApiGatewayAccount"]
    assert account["Condition"] == logging_role["Condition"] == "ManageAccount"
    assert account["Properties"] == {"CloudWatchRoleArn": {"Fn::GetAtt": ["ApiGatewayLoggingRole", "Arn"]}}
    assert template["Conditions"]["ManageAccount"] == {"Fn::Equals": [{"Ref": "ManageApiGatewayAccount"}, "true"]}
    assert not resources_of(template, "AWS::IAM::Policy") and not resources_of(template, "AWS::IAM::ManagedPolicy")
    permission = template["Resources"]["FunctionInvokePermission"]["Properties"]
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert permission["SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/${Stage}/*/*"
    }
    # The alarm topic and its key: CloudWatch may use them for this stack's alarms only.
    this_stacks_alarms = {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnLike": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-*"}},
    }
    key_statements = template["Resources"]["AlarmKey"]["Properties"]["KeyPolicy"]["Statement"]
    for statement in key_statements:
        if statement["Principal"] != {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}:
            assert all("*" not in a for a in as_list(statement["Action"])), statement
            assert statement["Condition"] == this_stacks_alarms
    topic_statements = template["Resources"]["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allows = [s for s in topic_statements if s["Effect"] == "Allow"]
    assert [s["Principal"] for s in allows] == [{"Service": "cloudwatch.amazonaws.com"}]
    assert allows[0]["Action"] == "sns:Publish" and allows[0]["Condition"] == this_stacks_alarms
    for alarm in resources_of(template, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), "named as the grants expect"


def check_function(template: dict[str, Any]) -> None:
    props = template["Resources"]["Function"]["Properties"]
    assert props["Runtime"] == "provided.al2023" and props["Handler"] == "bootstrap"
    assert props["Architectures"] == [{"Ref": "Architecture"}]
    assert props["Code"] == {"S3Bucket": {"Ref": "CodeS3Bucket"}, "S3Key": {"Ref": "CodeS3Key"}}
    assert props["MemorySize"] == {"Ref": "MemorySize"} and props["Timeout"] == {"Ref": "LambdaTimeout"}
    assert props["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert props["VpcConfig"]["Fn::If"][0] == "UseVpc"
    assert props["Environment"]["Variables"] == {
        "OPENAI_API_KEY_SECRET_ARN": {"Ref": "OpenAIApiKeySecretArn"},
        "LOG_LEVEL": {"Ref": "LogLevel"},
        "ENABLE_AUTHENTICATION": {"Ref": "EnableAuthentication"},
        "RESPONSE_MODE": {"Fn::If": ["IsStream", "stream", "buffered"]},
        "CORS_ALLOWED_ORIGINS": {"Ref": "CorsAllowedOrigins"},
        "SECRET_CACHE_TTL_SECONDS": {"Ref": "SecretCacheTtlSeconds"},
        "USAGE_TABLE": {"Ref": "UsageTable"},
        "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH": "true",
    }
    conditions = template["Conditions"]
    assert conditions["IsStream"] == {"Fn::Equals": [{"Ref": "ResponseTransferMode"}, "STREAM"]}
    assert conditions["HasReservedConcurrency"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, -1]}]}


STREAM_URI = "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2021-11-15/functions/${Function.Arn}/response-streaming-invocations"
BUFFERED_URI = "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Function.Arn}/invocations"


def check_routes(template: dict[str, Any]) -> None:
    methods = resources_of(template, "AWS::ApiGateway::Method")
    resources = resources_of(template, "AWS::ApiGateway::Resource")

    def path_of(name: str) -> str:
        props = resources[name]["Properties"]
        parent = props["ParentId"]
        above = "" if parent == {"Fn::GetAtt": ["Api", "RootResourceId"]} else path_of(parent["Ref"])
        return f"{above}/{props['PathPart']}"

    paths = {name: path_of(name) for name in resources}
    routes = set()
    for name, method in methods.items():
        p = method["Properties"]
        resource = p["ResourceId"]
        path = "/" if resource == {"Fn::GetAtt": ["Api", "RootResourceId"]} else paths[resource["Ref"]]
        routes.add((path, p["HttpMethod"]))
        assert p["AuthorizationType"] == "NONE", "the function authenticates (OpenAI-style keys)"
        integration = p["Integration"]
        assert integration["Type"] == "AWS_PROXY" and integration["IntegrationHttpMethod"] == "POST", name
        assert integration["Uri"] == {"Fn::If": ["IsStream", {"Fn::Sub": STREAM_URI}, {"Fn::Sub": BUFFERED_URI}]}, name
        assert integration["ResponseTransferMode"] == {"Ref": "ResponseTransferMode"}, name
        assert integration["TimeoutInMillis"] == {"Fn::If": ["IsStream", {"Fn::Sub": "${LambdaTimeout}000"}, 29000]}, name
    # Every method of every path (OPTIONS preflight included) reaches the function.
    assert {("/", "ANY"), ("/{proxy+}", "ANY"), ("/v1/{proxy+}", "ANY"), ("/v1/models", "ANY"), ("/v1/models/{proxy+}", "ANY")} <= routes
    assert ("/v1/models", "GET") in routes
    # One deployment, under the name the deployer renames with a hash of the API: it
    # snapshots every method and gateway response, so it must wait for all of them.
    deployments = resources_of(template, "AWS::ApiGateway::Deployment")
    assert list(deployments) == ["ApiDeployment"], "the deployer renames exactly ApiDeployment"
    deployment = deployments["ApiDeployment"]
    assert "Condition" not in deployment, "the stage always serves it"
    responses = resources_of(template, "AWS::ApiGateway::GatewayResponse")
    assert sorted(deployment["DependsOn"]) == sorted([*methods, *responses]), "a deployment snapshots every method and gateway response"
    referring = {name for name, r in template["Resources"].items() if "ApiDeployment" in names_in(r)}
    assert referring == {"ApiStage"} and not any("ApiDeployment" in names_in(o) for o in template["Outputs"].values())
    api = template["Resources"]["Api"]["Properties"]
    assert api["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert api["MinimumCompressionSize"] == {
        "Fn::If": ["CompressResponses", {"Ref": "CompressionMinimumSize"}, {"Ref": "AWS::NoValue"}]
    }
    assert {"Condition": "IsBuffered"} in template["Conditions"]["CompressResponses"]["Fn::And"]
    assert {"Condition": "IsBuffered"} in template["Conditions"]["CacheModels"]["Fn::And"]


def check_stage(template: dict[str, Any]) -> None:
    stage = template["Resources"]["ApiStage"]["Properties"]
    assert stage["StageName"] == {"Ref": "Stage"}
    assert stage["DeploymentId"] == {"Ref": "ApiDeployment"}
    settings = [s for entry in stage["MethodSettings"] for s in if_branches(entry) if s != {"Ref": "AWS::NoValue"}]
    everything = settings[0]
    assert (everything["ResourcePath"], everything["HttpMethod"]) == ("/*", "*")
    assert everything["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert everything["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    assert everything["MetricsEnabled"] is True and everything["CachingEnabled"] is False
    assert everything["LoggingLevel"] == {"Fn::If": ["VerboseApiLogs", "INFO", "ERROR"]}
    for setting in settings:
        assert setting["DataTraceEnabled"] is False, "data tracing would log prompts and completions"
    cached = [s for s in settings if s.get("CachingEnabled") is True]
    assert cached == [s for s in settings if s["ResourcePath"] == "/~1v1~1models"], "only GET /v1/models is ever cached"
    assert stage["MethodSettings"][1]["Fn::If"][0] == "CacheModels"
    assert cached[0]["HttpMethod"] == "GET" and cached[0]["CacheDataEncrypted"] is True
    assert stage["CacheClusterEnabled"] == {"Fn::If": ["CacheModels", True, False]}
    access_format = stage["AccessLogSetting"]["Format"]
    record = json.loads(access_format)
    assert {"requestId", "status", "path", "responseLatency", "integrationLatency", "errorType"} <= set(record)
    assert "authorization" not in access_format.lower(), "access logs never carry credentials"


GATEWAY_RESPONSES = {
    "THROTTLED": "429",
    "REQUEST_TOO_LARGE": "413",
    "INTEGRATION_TIMEOUT": "504",
    "MISSING_AUTHENTICATION_TOKEN": "404",
    "RESOURCE_NOT_FOUND": "404",
    "DEFAULT_4XX": None,
    "DEFAULT_5XX": None,
}


def check_gateway_responses(template: dict[str, Any]) -> None:
    responses = {r["Properties"]["ResponseType"]: r["Properties"] for r in resources_of(template, "AWS::ApiGateway::GatewayResponse").values()}
    assert set(responses) == set(GATEWAY_RESPONSES)
    for kind, status in GATEWAY_RESPONSES.items():
        props = responses[kind]
        assert props.get("StatusCode") == status, kind
        body = props["ResponseTemplates"]["application/json"]
        # API Gateway fills these in; $context.error.messageString comes quoted.
        rendered = body.replace("$context.error.messageString", '"Too Many Requests"')
        rendered = re.sub(r"\$context\.[A-Za-z.]+", "x", rendered)
        error = json.loads(rendered)["error"]
        assert set(error) == {"message", "type", "param", "code"}, kind
        assert error["type"] in {"invalid_request_error", "rate_limit_error", "server_error"}, kind
        headers = props["ResponseParameters"]
        assert "gatewayresponse.header.Access-Control-Allow-Origin" in headers, kind


def observe_metric_names() -> set[str]:
    """The metric names the proxy writes (function/src/observe.rs)."""
    source = (ROOT / "function" / "src" / "observe.rs").read_text()
    assert 'METRICS_NAMESPACE: &str = "OpenAILambdaProxy"' in source
    return set(re.findall(r'"Name": "([A-Za-z]+)"', source)) | set(re.findall(r'\("([A-Za-z]+)", record\.', source))


def check_dashboard(template: dict[str, Any]) -> None:
    body_template, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    body = json.loads(re.sub(r"\$\{[^}]+\}", "x", body_template))
    metrics = [m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]]
    names: dict[str, set[str]] = {}
    namespace = None
    for row in metrics:
        plain = [x for x in row if isinstance(x, str)]
        if not plain:
            continue
        if plain[0] not in (".", "..."):
            namespace = plain[0]
        if plain[0] != "..." and len(plain) > 1:
            names.setdefault(namespace, set()).add(plain[1])
    emitted = observe_metric_names()
    assert names["OpenAILambdaProxy"] <= emitted, names["OpenAILambdaProxy"] - emitted
    assert {"UpstreamLatency", "PromptTokens", "CompletionTokens", "TotalTokens"} <= names["OpenAILambdaProxy"]
    assert {"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"} <= names["AWS/Lambda"]
    assert {"Count", "Latency", "4XXError", "5XXError"} <= names["AWS/ApiGateway"]
    stats = json.dumps(body)
    assert '"p50"' in stats and '"p99"' in stats
    alarms = next(w for w in body["widgets"] if w["type"] == "alarm")["properties"]["alarms"]
    assert len(alarms) == len(resources_of(template, "AWS::CloudWatch::Alarm"))
    # The proxy's metrics are per function (observe.rs's dimension sets all start with
    # FunctionName): the alarm and every proxy panel must select this stack's function.
    source = (ROOT / "function" / "src" / "observe.rs").read_text()
    assert '"Dimensions": [["FunctionName"], ["FunctionName", "Model"]]' in source
    upstream = template["Resources"]["UpstreamErrorsAlarm"]["Properties"]
    assert upstream["MetricName"] in emitted
    assert upstream.get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": "Function"}}], upstream.get("Dimensions")
    for row in metrics:
        plain = [x for x in row if isinstance(x, str)]
        if plain and plain[0] == "OpenAILambdaProxy":
            assert plain[2:4] == ["FunctionName", "x"], f"{row} does not select the stack's function"
    assert "{OpenAILambdaProxy,FunctionName,Model} FunctionName=" in body_template, "tokens by model are not this function's"
    assert len(variables) == len(alarms)


REQUIRED_OUTPUTS = {"ApiUrl", "FunctionName", "FunctionArn", "LogGroupName", "DashboardUrl"}


def check_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert REQUIRED_OUTPUTS <= set(outputs)
    assert {"ApiId", "AccessLogGroupName", "AlarmTopicArn"} <= set(outputs)
    assert outputs["ApiUrl"]["Value"] == {"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${ApiStage}"}
    for name, output in outputs.items():
        assert output.get("Description"), name
        assert "Export" not in output, "exports would make two stacks in one account collide"


def check_account_logging_setting(template: dict[str, Any]) -> None:
    """When the stack sets the account's logging role: on a fresh account AWS needs an API
    Gateway resource before the setting, and the stage may turn logging on only after it."""
    assert dependencies(template, "ApiGatewayAccount") >= {"Api", "ApiGatewayLoggingRole"}
    # The account setting is conditional, so the stage names it inside Fn::If ManageAccount
    # (a DependsOn on a resource that may not exist is a template error).
    stage = template["Resources"]["ApiStage"]
    assert "ApiGatewayAccount" not in as_list(stage.get("DependsOn", []))
    description = stage["Properties"]["Description"]
    assert isinstance(description, dict) and "Fn::If" in description, "the stage does not wait for the account setting"
    condition, when_managed, otherwise = description["Fn::If"]
    assert condition == "ManageAccount"
    assert "ApiGatewayAccount" in names_in(when_managed) and "ApiGatewayAccount" not in names_in(otherwise)


def check_checkov_skips_have_reasons(template: dict[str, Any]) -> None:
    for name, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), name
            assert len(skip.get("comment", "")) >= 40, f"{name}: skip {skip['id']} needs a real reason"


def check_usage_table(template: dict[str, Any]) -> None:
    """The usage table of issue 20: on-demand, encrypted, recoverable, windows expiring."""
    (name, table), = resources_of(template, "AWS::DynamoDB::Table").items()
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST", "on-demand: no capacity to size or throttle on"
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    # docs/iam-policy.json lets the deploying role manage tables named after the function.
    assert props["TableName"] == {"Fn::Sub": "${LambdaFunctionName}-usage"}
    assert name == "UsageTable"


PINS: list[Callable[[dict[str, Any]], None]] = [
    check_usage_table,
    check_parameters,
    check_no_secret_parameters_or_outputs,
    check_alarms,
    check_log_retention,
    check_iam,
    check_function,
    check_routes,
    check_stage,
    check_account_logging_setting,
    check_gateway_responses,
    check_dashboard,
    check_outputs,
    check_checkov_skips_have_reasons,
]


@pytest.mark.parametrize("pin", PINS, ids=lambda p: p.__name__)
def test_template_pins(template, pin):
    pin(template)


def test_secret_arn_pattern_takes_arns_only(template):
    pattern = template["Parameters"]["OpenAIApiKeySecretArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:openai-proxy/config-AbC123")
    for value in ("sk-proj-abc123", "openai-proxy/config", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:name", ""):
        assert not re.fullmatch(pattern, value), value


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("CorsAllowedOrigins", ["*", "https://app.example.com", "https://a.example,http://localhost:3000"], ["", "app.example.com", "*,https://a", "https://a'b"]),
        ("AlarmEmail", ["", "ops@example.com"], ["ops", "a b@example.com"]),
        ("SecretKmsKeyArn", ["", "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"], ["alias/aws/secretsmanager"]),
        ("LambdaFunctionName", ["openai-lambda-proxy"], ["", "a" * 65, "has space"]),
        ("ApiGatewayName", ["openai-proxy-api", "Team.API_v2", "a" * 128], ["", "my proxy api", "-api", "a/b", "a#b", "a" * 129]),
        ("CodeS3Bucket", ["my-artifacts.bucket"], ["Upper", "a"]),
        ("VpcSubnetIds", ["", "subnet-0123456789abcdef0"], ["subnet-XYZ", "sg-01234567"]),
        ("VpcSecurityGroupIds", ["", "sg-01234567"], ["subnet-01234567", "default"]),
    ],
)
def test_parameter_patterns(template, name, good, bad):
    pattern = template["Parameters"][name]["AllowedPattern"]
    for value in good:
        assert re.fullmatch(pattern, value), value
    for value in bad:
        assert not re.fullmatch(pattern, value), value


def test_api_name_takes_only_characters_a_log_group_name_allows(template):
    """ApiGatewayName is part of the access log group's name: a name the parameter accepts
    must never fail later at CreateLogGroup (pattern and length from the Logs API model)."""
    log_group_name = botocore.session.get_session().get_service_model("logs").shape_for("LogGroupName").metadata
    spec = template["Parameters"]["ApiGatewayName"]
    access_group = template["Resources"]["AccessLogGroup"]["Properties"]["LogGroupName"]["Fn::Sub"]
    assert "${ApiGatewayName}" in access_group
    candidates = [f"a{chr(c)}b" for c in range(32, 127)] + ["aéb", "a\tb", "a" * 128, "a" * 129]
    accepted = [name for name in candidates if re.fullmatch(spec["AllowedPattern"], name)]
    assert "a-b" in accepted and "a" * 128 in accepted
    for name in accepted:
        for stage in template["Parameters"]["Stage"]["AllowedValues"]:
            group = access_group.replace("${ApiGatewayName}", name).replace("${Stage}", stage)
            assert re.fullmatch(log_group_name["pattern"], group), f"ApiGatewayName {name!r} makes log group {group!r}"
            assert len(group) <= log_group_name["max"], group
    # A rejected name gets a message that says what to do instead.
    assert "log group" in spec["ConstraintDescription"] and "use hyphens" in spec["ConstraintDescription"]


def test_no_literal_secret_in_the_template(template_text):
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", template_text)
    assert "NoEcho" not in template_text, "no parameter is a secret, so none needs hiding"


# ----------------------------------------------------------------------------- the pins can fail


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(t: dict[str, Any]) -> None:
        node = t
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _drop(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(t: dict[str, Any]) -> None:
        node = t
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def _wildcard_action(t: dict[str, Any]) -> None:
    t["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][1]["Action"] = "secretsmanager:*"


def _any_secret(t: dict[str, Any]) -> None:
    t["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][1]["Resource"] = "*"


def _secret_parameter(t: dict[str, Any]) -> None:
    t["Parameters"]["OpenAIApiKey"] = {"Type": "String", "NoEcho": True, "Description": "the key itself, do not do this"}
    t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"][0]["Parameters"].append("OpenAIApiKey")


def _secret_output(t: dict[str, Any]) -> None:
    t["Outputs"]["Secret"] = {"Description": "leak", "Value": {"Ref": "OpenAIApiKeySecretArn"}}


def _unknown_metric(t: dict[str, Any]) -> None:
    sub = t["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    sub[0] = sub[0].replace('["OpenAILambdaProxy", "PromptTokens",', '["OpenAILambdaProxy", "InputTokens",')


def _proxy_metric_of_every_function(t: dict[str, Any]) -> None:
    sub = t["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    sub[0] = sub[0].replace('["OpenAILambdaProxy", "Requests", "FunctionName", "${Function}"]', '["OpenAILambdaProxy", "Requests"]')


def _data_trace(t: dict[str, Any]) -> None:
    t["Resources"]["ApiStage"]["Properties"]["MethodSettings"][0]["DataTraceEnabled"] = True


BROKEN = {
    "errors alarm threshold 10": (check_alarms, _set(["Resources", "FunctionErrorsAlarm", "Properties", "Threshold"], 10)),
    "duration alarm over 10 minutes": (check_alarms, _set(["Resources", "FunctionDurationAlarm", "Properties", "Period"], 600)),
    "5xx alarm treats missing data as breaching": (check_alarms, _set(["Resources", "Api5xxAlarm", "Properties", "TreatMissingData"], "breaching")),
    "budget alarm on a fixed share": (check_alarms, _set(["Resources", "ClientBudgetAlarm", "Properties", "Threshold"], 80)),
    "guard alarm on 5 minutes": (check_alarms, _set(["Resources", "GuardApi5xxAlarm", "Properties", "Period"], 300)),
    "guard alarm pages": (check_alarms, _set(["Resources", "GuardFunctionErrorsAlarm", "Properties", "AlarmActions"], [{"Ref": "AlarmTopic"}])),
    "4xx alarm removed": (check_alarms, _drop(["Resources", "Api4xxAlarm"])),
    "retention fixed at never expire": (check_log_retention, _drop(["Resources", "AccessLogGroup", "Properties", "RetentionInDays"])),
    "wildcard action": (check_iam, _wildcard_action),
    "API Gateway logs through the function's role": (check_iam, _set(["Resources", "ApiGatewayAccount", "Properties", "CloudWatchRoleArn"], {"Fn::GetAtt": ["FunctionRole", "Arn"]})),
    "every secret readable": (check_iam, _any_secret),
    "renamed design parameter": (check_parameters, lambda t: t["Parameters"].update(StageName=t["Parameters"].pop("Stage"))),
    "memory default 128": (check_parameters, _set(["Parameters", "MemorySize", "Default"], 128)),
    "the key as a parameter": (check_no_secret_parameters_or_outputs, _secret_parameter),
    "the secret ARN as an output": (check_no_secret_parameters_or_outputs, _secret_output),
    "stage kept in the path": (check_function, _drop(["Resources", "Function", "Properties", "Environment", "Variables", "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"])),
    "buffered URI in stream mode": (check_routes, _set(["Resources", "ProxyMethod", "Properties", "Integration", "Uri"], {"Fn::Sub": BUFFERED_URI})),
    "body logging on": (check_stage, _data_trace),
    "a deployment that does not wait for the gateway responses": (check_routes, _set(["Resources", "ApiDeployment", "DependsOn"], ["RootMethod", "ProxyMethod", "V1ProxyMethod", "ModelsAnyMethod", "ModelsGetMethod", "ModelsProxyMethod"])),
    "a deployment per response mode": (check_routes, lambda t: t["Resources"].update(BufferedDeployment={**t["Resources"]["ApiDeployment"], "Condition": "IsBuffered"})),
    "the account setting before any API exists": (check_account_logging_setting, _drop(["Resources", "ApiGatewayAccount", "DependsOn"])),
    "the stage logging before the account setting": (check_account_logging_setting, _set(["Resources", "ApiStage", "Properties", "Description"], "OpenAI proxy")),
    "a metric the proxy never writes": (check_dashboard, _unknown_metric),
    "a proxy panel summing every stack's function": (check_dashboard, _proxy_metric_of_every_function),
    "the proxy-errors alarm of every function": (check_dashboard, _drop(["Resources", "UpstreamErrorsAlarm", "Properties", "Dimensions"])),
    "no DashboardUrl": (check_outputs, _drop(["Outputs", "DashboardUrl"])),
    "usage windows that never expire": (check_usage_table, _drop(["Resources", "UsageTable", "Properties", "TimeToLiveSpecification"])),
    "usage table on provisioned capacity": (check_usage_table, _set(["Resources", "UsageTable", "Properties", "BillingMode"], "PROVISIONED")),
    "usage table without point-in-time recovery": (check_usage_table, _drop(["Resources", "UsageTable", "Properties", "PointInTimeRecoverySpecification"])),
    "every table's items writable": (check_iam, _set(["Resources", "FunctionRole", "Properties", "Policies", 0, "PolicyDocument", "Statement", 2, "Resource"], {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"})),
    "the function without its table": (check_function, _drop(["Resources", "Function", "Properties", "Environment", "Variables", "USAGE_TABLE"])),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_pins_fail_on_broken_templates(template, case):
    pin, mutate = BROKEN[case]
    pin(copy.deepcopy(template))  # sound as written
    mutate(template)
    with pytest.raises((AssertionError, KeyError)):
        pin(template)
