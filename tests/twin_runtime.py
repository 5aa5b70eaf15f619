"""The twin's runtime for tests: an executing moto, the local integrations installed, and small ASL runs.

tests/conftest.py makes its fixtures (`executing_aws`, `runtime`, `bucket`) available to every test folder.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from contract.project import STATEMACHINES_DIR, TEMPLATE_PATH
from emulator.clock import Clock
from emulator.engine import install_local_integrations, uninstall_local_integrations
from emulator.lambda_local import LocalLambdaRunner
from emulator.sagemaker_local import LocalSageMaker
from emulator.twin import LocalTwin

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/local-twin-tests"
EXECUTING_ENGINE = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
# Fast enough that a 30 s Wait or a 120 s endpoint transition takes milliseconds.
TEST_CLOCK_SPEED = 1000.0


@dataclass
class ExecutionOutcome:
    """What one state machine execution ended with, from DescribeExecution and its history."""

    status: str
    output: Any
    error: str | None
    cause: str | None
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def event_types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def entered_states(self) -> list[str]:
        return [
            event["stateEnteredEventDetails"]["name"] for event in self.events if "stateEnteredEventDetails" in event
        ]


@dataclass
class Runtime:
    """The runtime services of the twin inside one moto mock, plus helpers to run hand-written ASL."""

    sagemaker: LocalSageMaker
    lambdas: LocalLambdaRunner
    clock: Clock
    events: list[dict[str, Any]]
    work_dir: Path

    region = REGION
    role_arn = ROLE_ARN

    @staticmethod
    def task(resource: str, parameters: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """A Task state; `fields` adds Next/End/Catch/Retry/ResultPath..."""
        state = {"Type": "Task", "Resource": resource, "Parameters": parameters}
        state.update(fields)
        if "Next" not in state:
            state.setdefault("End", True)
        return state

    @staticmethod
    def put_sourcedir(bucket: str, key: str, files: dict[str, str]) -> str:
        """Upload a sourcedir.tar.gz holding `files` (name -> source) and return its S3 URI."""
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            for name, source in files.items():
                data = source.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
        return f"s3://{bucket}/{key}"

    def run(
        self, definition: dict[str, Any], execution_input: Any = None, name: str | None = None, timeout: float = 60
    ) -> ExecutionOutcome:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name=f"test-{uuid.uuid4().hex[:12]}", definition=json.dumps(definition), roleArn=ROLE_ARN
        )["stateMachineArn"]
        started = time.monotonic()
        execution = sfn.start_execution(
            stateMachineArn=machine,
            name=name or f"exec-{uuid.uuid4().hex[:12]}",
            input=json.dumps({} if execution_input is None else execution_input),
        )["executionArn"]
        while (description := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            if time.monotonic() - started > timeout:
                sfn.stop_execution(executionArn=execution)
                raise AssertionError(f"Execution {execution} still running after {timeout} s")
            time.sleep(0.01)
        seconds = time.monotonic() - started
        events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
        output = json.loads(description["output"]) if description.get("output") else None
        return ExecutionOutcome(
            description["status"], output, description.get("error"), description.get("cause"), events, seconds
        )


@pytest.fixture
def executing_aws() -> Iterator[None]:
    with mock_aws(config=EXECUTING_ENGINE):
        yield


@pytest.fixture
def runtime(executing_aws: None, tmp_path: Path) -> Iterator[Runtime]:
    clock = Clock(speed=TEST_CLOCK_SPEED)
    events: list[dict[str, Any]] = []
    sagemaker = LocalSageMaker(tmp_path / "sagemaker", clock, max_parallel=2, events=events.append)
    lambdas = LocalLambdaRunner(clock=clock)
    # As the twin does: its services answer moto's APIs, and the engine calls them.
    sagemaker.install()
    lambdas.install()
    install_local_integrations(sagemaker=sagemaker, lambdas=lambdas, clock=clock)
    try:
        yield Runtime(sagemaker, lambdas, clock, events, tmp_path)
    finally:
        uninstall_local_integrations()
        lambdas.uninstall()
        sagemaker.close()


@pytest.fixture
def bucket(executing_aws: None) -> str:
    name = "twin-test-artifacts"
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=name)
    return name


def stand_in_twin(directory: Path, training: dict[str, Any], deploy: dict[str, Any]) -> LocalTwin:
    """The whole stack's twin, not started, whose training and deploy definitions are stand-ins (routing tests).

    The stack's monitoring definition and the image table are the real ones: the template deploys all three.
    """
    (directory / "training.asl.json").write_text(json.dumps(training), encoding="utf-8")
    (directory / "deploy.asl.json").write_text(json.dumps(deploy), encoding="utf-8")
    for name in ("monitoring.asl.json", "image-uris.json"):
        shutil.copy(STATEMACHINES_DIR / name, directory)
    return LocalTwin(template=TEMPLATE_PATH, statemachines_dir=directory)
