"""The governance commands' stack lookup: which stack, its outputs, and the errors that say what is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlops.stack_target import StackTargetError, default_stack_name, stack_target


class _CloudFormation:
    def __init__(self, stacks: dict[str, list[dict[str, str]]]) -> None:
        self.stacks = stacks

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        if StackName not in self.stacks:
            error = {"Error": {"Code": "ValidationError", "Message": f"Stack with id {StackName} does not exist"}}
            raise ClientError(error, "DescribeStacks")
        return {"Stacks": [{"StackName": StackName, "Outputs": self.stacks[StackName]}]}


class _Session:
    def __init__(self, stacks: dict[str, list[dict[str, str]]]) -> None:
        self.cloudformation = _CloudFormation(stacks)

    def client(self, service: str) -> Any:
        assert service == "cloudformation"
        return self.cloudformation


def test_the_stack_name_comes_from_the_environment_before_samconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SAM_STACK_NAME", "mlops-local")
    assert default_stack_name() == "mlops-local"
    monkeypatch.delenv("AWS_SAM_STACK_NAME")
    assert default_stack_name() == "mlops-dev"


def test_an_unreadable_samconfig_asks_for_a_stack_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AWS_SAM_STACK_NAME", raising=False)
    with pytest.raises(StackTargetError, match="give --stack-name or set AWS_SAM_STACK_NAME"):
        default_stack_name(tmp_path / "missing.toml")


def test_outputs_are_read_and_a_missing_one_is_named() -> None:
    session = _Session({"s": [{"OutputKey": "DataBucketName", "OutputValue": "bucket"}]})
    target = stack_target("s", session=session)
    assert target.output("DataBucketName") == "bucket"
    with pytest.raises(StackTargetError, match=r"stack s has no output AuditLogGroupName \(it has DataBucketName\)"):
        target.output("AuditLogGroupName")


def test_a_stack_that_does_not_exist_is_named() -> None:
    with pytest.raises(StackTargetError, match="stack gone: Stack with id gone does not exist"):
        stack_target("gone", session=_Session({}))
