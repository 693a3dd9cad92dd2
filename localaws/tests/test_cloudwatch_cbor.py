"""CloudWatch over Smithy RPC v2 CBOR, the protocol the Rust SDK speaks, against the
emulator the launcher started (scripts/local-aws.sh run sets AWS_ENDPOINT_URL).
Requests are built as aws-sdk-cloudwatch builds them: a CBOR body, SigV4-signed for
`monitoring`, POSTed to /service/GraniteServiceVersion20100801/operation/<Operation>."""

from __future__ import annotations

import datetime
import json
import os
import uuid

import boto3
import botocore.auth
import botocore.awsrequest
import cbor2
import pytest
import requests

PATH = "/service/GraniteServiceVersion20100801/operation/"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoint() -> str:
    url = os.environ.get("AWS_ENDPOINT_URL", "")
    if "127.0.0.1" not in url:
        pytest.fail("AWS_ENDPOINT_URL must point at the local emulator: run through scripts/local-aws.sh run")
    return url


@pytest.fixture(scope="module")
def cloudwatch(endpoint):
    return boto3.client("cloudwatch", region_name=REGION)


class Answer:
    def __init__(self, response: requests.Response) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.raw = response.content
        # Tag 1 (epoch seconds) kept apart from tag 0 (text dates) to pin the encoding.
        self.body = cbor2.loads(self.raw, semantic_decoders={1: lambda value, _immutable: ("epoch", value)}) if self.raw else None


def call(endpoint: str, operation: str, body: bytes, **headers: str) -> Answer:
    """One request as the Rust SDK sends it (headers can be overridden or removed with '')."""
    sent = {
        "Content-Type": "application/cbor",
        "Accept": "application/cbor",
        "smithy-protocol": "rpc-v2-cbor",
        "x-amzn-query-mode": "true",
    }
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=endpoint + PATH + operation, data=body, headers={k: v for k, v in sent.items() if v}
    )
    credentials = boto3.Session().get_credentials()
    botocore.auth.SigV4Auth(credentials, "monitoring", REGION).add_auth(request)
    return Answer(requests.post(request.url, data=body, headers=dict(request.headers), timeout=10))


def put_alarm(cloudwatch, name: str, **overrides) -> None:
    cloudwatch.put_metric_alarm(
        **{
            "AlarmName": name,
            "Namespace": "AWS/ApiGateway",
            "MetricName": "5XXError",
            "Dimensions": [{"Name": "ApiName", "Value": "proxy"}],
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 1.5,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            **overrides,
        }
    )


@pytest.fixture
def alarm_name(cloudwatch) -> str:
    """A new alarm (put_alarm's defaults), by name."""
    name = f"cbor-{uuid.uuid4().hex[:8]}"
    put_alarm(cloudwatch, name)
    return name


def set_alarm_state(endpoint: str, name: str, reason: str, **fields: str) -> Answer:
    """SetAlarmState to ALARM over CBOR."""
    return call(endpoint, "SetAlarmState", cbor2.dumps({"AlarmName": name, "StateValue": "ALARM", "StateReason": reason, **fields}))


def test_describe_alarms_answers_in_cbor_with_the_alarm_and_state_set_through_the_query_api(endpoint, cloudwatch, alarm_name):
    cloudwatch.set_alarm_state(AlarmName=alarm_name, StateValue="ALARM", StateReason="errors above threshold")
    (queried,) = cloudwatch.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"]

    answer = call(endpoint, "DescribeAlarms", cbor2.dumps({"AlarmNames": [alarm_name]}))

    assert answer.status == 200, answer.raw
    assert answer.headers["smithy-protocol"] == "rpc-v2-cbor"
    assert answer.headers["Content-Type"] == "application/cbor"
    (alarm,) = answer.body["MetricAlarms"]
    assert alarm["AlarmName"] == alarm_name
    assert alarm["AlarmArn"] == queried["AlarmArn"] == f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{alarm_name}"
    assert alarm["StateValue"] == "ALARM"
    assert alarm["StateReason"] == "errors above threshold"
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5XXError")
    assert alarm["Dimensions"] == [{"Name": "ApiName", "Value": "proxy"}]
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["Threshold"]) == (60, 1, 1.5)
    assert alarm["ActionsEnabled"] is True
    kind, seconds = alarm["StateUpdatedTimestamp"]
    assert kind == "epoch"
    assert seconds == pytest.approx(queried["StateUpdatedTimestamp"].timestamp(), abs=0.001)


def test_describe_alarms_of_an_unknown_name_answers_empty_lists(endpoint):
    answer = call(endpoint, "DescribeAlarms", cbor2.dumps({"AlarmNames": [f"missing-{uuid.uuid4().hex}"]}))

    assert answer.status == 200, answer.raw
    assert answer.body["MetricAlarms"] == []
    assert "NextToken" not in answer.body


def test_describe_alarms_filters_by_name_prefix_and_by_state(endpoint, cloudwatch):
    prefix = f"cbor-{uuid.uuid4().hex[:8]}-"
    put_alarm(cloudwatch, prefix + "ok")
    put_alarm(cloudwatch, prefix + "alarm")
    cloudwatch.set_alarm_state(AlarmName=prefix + "alarm", StateValue="ALARM", StateReason="test")

    by_prefix = call(endpoint, "DescribeAlarms", cbor2.dumps({"AlarmNamePrefix": prefix}))
    by_state = call(endpoint, "DescribeAlarms", cbor2.dumps({"StateValue": "ALARM"}))

    assert sorted(a["AlarmName"] for a in by_prefix.body["MetricAlarms"]) == [prefix + "alarm", prefix + "ok"]
    in_alarm = {a["AlarmName"] for a in by_state.body["MetricAlarms"]}
    assert prefix + "alarm" in in_alarm and prefix + "ok" not in in_alarm


def test_set_alarm_state_over_cbor_changes_the_alarm_the_query_api_reads(endpoint, cloudwatch, alarm_name):
    answer = set_alarm_state(endpoint, alarm_name, "forced", StateReasonData="{}")

    assert answer.status == 200, answer.raw
    assert answer.raw == b""  # SetAlarmState has no output: no body
    assert answer.headers["smithy-protocol"] == "rpc-v2-cbor"
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("ALARM", "forced")


def test_set_alarm_state_of_an_unknown_alarm_is_a_cbor_resource_not_found(endpoint):
    answer = set_alarm_state(endpoint, f"missing-{uuid.uuid4().hex}", "x")

    assert answer.status == 404
    assert answer.headers["Content-Type"] == "application/cbor"
    assert answer.body["__type"] == "com.amazonaws.cloudwatch#ResourceNotFound"
    # The Rust SDK takes the error code from this header (CloudWatch is awsQueryCompatible).
    assert answer.headers["x-amzn-query-error"] == "ResourceNotFound;Sender"


def test_set_alarm_state_with_reason_data_that_is_not_json_is_invalid_format(endpoint, alarm_name):
    answer = set_alarm_state(endpoint, alarm_name, "x", StateReasonData="{not json")

    assert answer.status == 400
    assert answer.body["__type"] == "com.amazonaws.cloudwatch#InvalidFormatFault"
    assert answer.headers["x-amzn-query-error"] == "InvalidFormat;Sender"


def test_describe_alarms_for_metric_answers_the_alarms_on_that_metric(endpoint, cloudwatch):
    metric = f"Metric{uuid.uuid4().hex[:8]}"
    name = f"cbor-{uuid.uuid4().hex[:8]}"
    put_alarm(cloudwatch, name, Namespace="Custom/Cbor", MetricName=metric)

    answer = call(endpoint, "DescribeAlarmsForMetric", cbor2.dumps({"Namespace": "Custom/Cbor", "MetricName": metric}))

    assert answer.status == 200, answer.raw
    assert [a["AlarmName"] for a in answer.body["MetricAlarms"]] == [name]


def test_put_metric_alarm_over_cbor_creates_the_alarm_the_query_api_reads(endpoint, cloudwatch):
    name = f"cbor-{uuid.uuid4().hex[:8]}"
    alarm = {
        "AlarmName": name,
        "Namespace": "AWS/Lambda",
        "MetricName": "Errors",
        "Dimensions": [{"Name": "FunctionName", "Value": "proxy"}],
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 2,
        "Threshold": 3.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "ActionsEnabled": False,
        "TreatMissingData": "notBreaching",
    }

    answer = call(endpoint, "PutMetricAlarm", cbor2.dumps(alarm))

    assert answer.status == 200, answer.raw
    (stored,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert {k: stored[k] for k in alarm} == alarm


def test_alarms_a_stack_creates_are_described_over_cbor(endpoint):
    cfn = boto3.client("cloudformation", region_name=REGION)
    stack = f"cbor-{uuid.uuid4().hex[:8]}"
    template = {
        "Resources": {
            "Errors": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {
                    "Namespace": "AWS/Lambda",
                    "MetricName": "Errors",
                    "Statistic": "Sum",
                    "Period": 60,
                    "EvaluationPeriods": 1,
                    "Threshold": 1,
                    "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                },
            }
        }
    }
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    try:
        (resource,) = cfn.describe_stack_resources(StackName=stack)["StackResources"]
        name = resource["PhysicalResourceId"]

        answer = call(endpoint, "DescribeAlarms", cbor2.dumps({"AlarmNames": [name]}))

        (alarm,) = answer.body["MetricAlarms"]
        assert (alarm["AlarmName"], alarm["Namespace"], alarm["MetricName"]) == (name, "AWS/Lambda", "Errors")
    finally:
        cfn.delete_stack(StackName=stack)


def test_a_body_that_is_not_cbor_is_a_cbor_serialization_error(endpoint):
    answer = call(endpoint, "DescribeAlarms", b"\xa1\x6aAlarmNames")  # a map cut off mid-key

    assert answer.status == 400
    assert answer.headers["smithy-protocol"] == "rpc-v2-cbor"
    assert answer.body["__type"].endswith("#SerializationException")
    assert "not valid CBOR" in answer.body["message"]


def test_a_body_that_is_not_a_map_is_a_cbor_serialization_error(endpoint):
    answer = call(endpoint, "DescribeAlarms", cbor2.dumps(["AlarmNames"]))

    assert answer.status == 400
    assert answer.body["__type"].endswith("#SerializationException")
    assert "must be a CBOR map" in answer.body["message"]


def test_a_request_without_the_smithy_protocol_header_is_refused_in_cbor(endpoint):
    answer = call(endpoint, "DescribeAlarms", cbor2.dumps({}), smithy_protocol="")

    assert answer.status == 400
    assert "Smithy-Protocol" in answer.body["message"]


def test_an_operation_the_emulator_lacks_is_named_in_a_cbor_error(endpoint):
    answer = call(endpoint, "DescribeAlarmHistory", cbor2.dumps({}))

    assert answer.status == 400
    assert answer.body["__type"].endswith("#UnknownOperationException")
    assert "DescribeAlarmHistory is not implemented by the local emulator" in answer.body["message"]


def test_a_path_naming_no_cloudwatch_operation_is_refused_without_calling_a_handler_method(endpoint):
    # `CallAction` would otherwise reach the response class's own call_action method.
    answer = call(endpoint, "CallAction", cbor2.dumps({}))

    assert answer.status == 400
    assert answer.body["__type"].endswith("#UnknownOperationException")
    assert "no operation 'CallAction'" in answer.body["message"]


def test_timestamps_are_epoch_seconds_with_millisecond_resolution(endpoint, alarm_name):
    answer = call(endpoint, "DescribeAlarms", cbor2.dumps({"AlarmNames": [alarm_name]}))

    (alarm,) = answer.body["MetricAlarms"]
    kind, seconds = alarm["AlarmConfigurationUpdatedTimestamp"]
    assert kind == "epoch"
    now = datetime.datetime.now(datetime.timezone.utc).timestamp()
    assert now - 60 < seconds <= now + 1
    assert round(seconds * 1000) == pytest.approx(seconds * 1000, abs=1e-3)
