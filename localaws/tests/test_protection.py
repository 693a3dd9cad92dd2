"""Termination protection in the emulator: settable after creation, and enforced."""

from __future__ import annotations

import os
import uuid

import boto3
import botocore.exceptions
import pytest

TEMPLATE = '{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}'


@pytest.fixture
def cfn():
    if "127.0.0.1" not in os.environ.get("AWS_ENDPOINT_URL", ""):
        pytest.fail("AWS_ENDPOINT_URL must point at the local emulator: run through scripts/local-aws.sh run")
    return boto3.client("cloudformation", region_name="us-east-1")


def test_protected_stack_refuses_deletion_until_protection_is_turned_off(cfn):
    name = f"protect-{uuid.uuid4().hex[:8]}"
    cfn.create_stack(StackName=name, TemplateBody=TEMPLATE)
    cfn.update_termination_protection(StackName=name, EnableTerminationProtection=True)
    assert cfn.describe_stacks(StackName=name)["Stacks"][0]["EnableTerminationProtection"] is True
    with pytest.raises(botocore.exceptions.ClientError, match="TerminationProtection is enabled"):
        cfn.delete_stack(StackName=name)
    assert cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    cfn.update_termination_protection(StackName=name, EnableTerminationProtection=False)
    cfn.delete_stack(StackName=name)
    with pytest.raises(botocore.exceptions.ClientError, match="does not exist"):
        cfn.describe_stacks(StackName=name)
