"""The deployed stack a governance command (`lineage`, `approve`, `reject`, `audit`) talks to.

The same code serves AWS and the served twin: both are reached through the default boto3 session, which
honours AWS_ENDPOINT_URL (`mlops up` prints it, with AWS_SAM_STACK_NAME). Resource names come from the
stack's CloudFormation outputs, never from names rebuilt here.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from contract.project import PROJECT_ROOT

STACK_NAME_VARIABLE = "AWS_SAM_STACK_NAME"


class StackTargetError(Exception):
    """The stack cannot be found or lacks an output a command needs; the message says which and how to fix it."""


@dataclass
class StackTarget:
    """A stack's outputs and the boto3 session that reaches it."""

    stack_name: str
    outputs: dict[str, str]
    session: Any = field(repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    def output(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError:
            raise StackTargetError(
                f"stack {self.stack_name} has no output {key} (it has {', '.join(sorted(self.outputs)) or 'none'}): "
                "deploy the current template.yaml"
            ) from None


def add_stack_name_argument(parser: Any) -> None:
    """`--stack-name`, the same for every governance command."""
    parser.add_argument(
        "--stack-name", default=None, help=f"the stack (default: {STACK_NAME_VARIABLE}, else samconfig.toml's)"
    )


def default_stack_name(samconfig_path: Any = None) -> str:
    """AWS_SAM_STACK_NAME when set, else the stack `sam deploy` deploys by default (samconfig.toml)."""
    named = os.environ.get(STACK_NAME_VARIABLE, "").strip()
    if named:
        return named
    path = samconfig_path or PROJECT_ROOT / "samconfig.toml"
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
        return str(config["default"]["deploy"]["parameters"]["stack_name"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise StackTargetError(f"no stack named: give --stack-name or set {STACK_NAME_VARIABLE} ({exc})") from None


def stack_target(stack_name: str | None = None, session: Any = None) -> StackTarget:
    """The named stack (default: `default_stack_name()`), its outputs read with DescribeStacks."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    name = stack_name or default_stack_name()
    session = session or boto3.Session()
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        raise StackTargetError(f"stack {name}: {exc.response['Error'].get('Message', exc)}") from None
    except BotoCoreError as exc:
        raise StackTargetError(f"stack {name}: {exc}") from None
    if not stacks:
        raise StackTargetError(f"stack {name} does not exist in this account and region")
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stacks[0].get("Outputs", [])}
    return StackTarget(stack_name=name, outputs=outputs, session=session)
