"""AWS test fixtures: fake credentials, moto's in-process mock, Lambda functions to tag."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest

REGION = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region; no endpoint override or profile from the machine."""
    for k in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_LAMBDA",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_FUNCTION_NAME",
    ):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    with moto.mock_aws():
        yield


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return None\n")
    return buf.getvalue()


class Lambdas:
    """Creates functions in moto's Lambda (creating needs no Docker; only invoking would)."""

    def __init__(self) -> None:
        self.client = boto3.client("lambda", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        self.role = iam.create_role(RoleName="guard-test", AssumeRolePolicyDocument="{}")["Role"][
            "Arn"
        ]
        self.code = _zip()

    def create(self, name: str, tags: dict[str, str] | None = None) -> str:
        out: dict[str, Any] = self.client.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self.role,
            Handler="handler.handler",
            Code={"ZipFile": self.code},
            Tags=tags or {},
        )
        return str(out["FunctionArn"])


@pytest.fixture
def lambdas(aws: None) -> Lambdas:
    return Lambdas()
