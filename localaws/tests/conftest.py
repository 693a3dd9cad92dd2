"""What every emulator test shares: AWS clients of the emulator the launcher started
(scripts/local-aws.sh run sets AWS_ENDPOINT_URL), made on first use."""

from __future__ import annotations

import io
import os
import uuid
import zipfile

import boto3
import pytest


class Clients(dict):
    """boto3 clients by service name, each made when a test first asks for it."""

    def __init__(self, session: boto3.Session):
        super().__init__()
        self.session = session

    def __missing__(self, name: str):
        self[name] = self.session.client(name)
        return self[name]


@pytest.fixture(scope="session")
def aws() -> Clients:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint or "127.0.0.1" not in endpoint:
        pytest.fail("AWS_ENDPOINT_URL must point at the local emulator: run through scripts/local-aws.sh run")
    return Clients(boto3.Session(region_name="us-east-1"))


def create_change_set(cfn, stack: str, name: str, kind: str, template: str, parameters: dict[str, str], **extra) -> None:
    """A change set of `template` as the deployer makes one (IAM capability, parameters)."""
    cfn.create_change_set(
        StackName=stack,
        ChangeSetName=name,
        ChangeSetType=kind,
        TemplateBody=template,
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        **extra,
    )


def bootstrap_zip(script: str) -> bytes:
    """Lambda code as the deployer uploads it: a zip whose `bootstrap` (mode 0755) is `script`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        archive.writestr(info, script)
    return buffer.getvalue()


def put_in_new_bucket(s3, prefix: str, key: str, body: bytes) -> str:
    """`body` at `key` in a bucket of its own (named `prefix-...`); returns the bucket."""
    bucket = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return bucket
