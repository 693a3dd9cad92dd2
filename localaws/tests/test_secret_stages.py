"""Secrets Manager's staging labels as AWS applies them: GetSecretValue without a version
reads AWSCURRENT, wherever UpdateSecretVersionStage moved it (the deployer puts a secret
back to its version before a failed deploy that way)."""

from __future__ import annotations

import uuid

import boto3


def test_moving_awscurrent_back_makes_the_earlier_version_the_one_read():
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name=f"t-stages-{uuid.uuid4().hex[:8]}", SecretString="one")["ARN"]
    first = sm.get_secret_value(SecretId=arn)["VersionId"]
    second = sm.put_secret_value(SecretId=arn, SecretString="two")["VersionId"]
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "two"
    sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=first, RemoveFromVersionId=second)
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "one"
    stages = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    assert (stages[first], stages[second]) == (["AWSCURRENT"], ["AWSPREVIOUS"])
    assert sm.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")["SecretString"] == "two"
