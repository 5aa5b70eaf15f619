"""What the twin runs from a deployed stack: its functions, state machines, rules and queues, and what it left out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StackDeployError(RuntimeError):
    """The template cannot be deployed into the twin; the message names the resource and what to change."""


@dataclass(frozen=True)
class FunctionSpec:
    """A deployed Lambda function, as the in-process runner needs it."""

    logical_id: str
    function_name: str
    function_arn: str
    handler: str
    code_dir: Path
    environment: dict[str, str]
    timeout: int

    @property
    def module(self) -> str:
        """The handler's module (`retrain_on_drift` for `retrain_on_drift.handler`)."""
        return self.handler.rpartition(".")[0]


@dataclass(frozen=True)
class StateMachineSpec:
    """A state machine of the stack, its definition with every substitution applied."""

    logical_id: str
    name: str
    arn: str
    definition: str
    role_arn: str
    definition_file: Path | None
    substitutions: dict[str, str]


@dataclass(frozen=True)
class RuleTarget:
    """One target of a rule, with the input shaping EventBridge applies before delivery."""

    target_id: str
    arn: str
    input: str | None = None
    input_path: str | None = None
    input_transformer: dict[str, Any] | None = None


@dataclass(frozen=True)
class RuleSpec:
    """An EventBridge rule of the stack: an event pattern or a schedule, and its targets."""

    logical_id: str
    name: str
    event_bus_name: str
    enabled: bool
    event_pattern: dict[str, Any] | None
    schedule: str | None
    targets: tuple[RuleTarget, ...]


@dataclass(frozen=True)
class QueueSource:
    """An SQS event source mapping: the queue's messages reach `function_logical_id` in batches."""

    logical_id: str
    queue_arn: str
    queue_url: str
    function_logical_id: str
    batch_size: int
    batching_window_seconds: int
    report_batch_item_failures: bool
    enabled: bool


@dataclass(frozen=True)
class ResourceNote:
    """A resource the twin handled itself (emulated) or left out (skipped), and why."""

    logical_id: str
    resource_type: str
    note: str


@dataclass
class DeployedStack:
    """What the deployed stack holds, keyed by the template's logical ids."""

    stack_name: str
    stack_id: str
    parameters: dict[str, str]
    resources: dict[str, str]
    outputs: dict[str, str]
    state_machines: dict[str, StateMachineSpec]
    functions: dict[str, FunctionSpec]
    rules: list[RuleSpec]
    queue_sources: dict[str, QueueSource]
    emulated: list[ResourceNote] = field(default_factory=list)
    skipped: list[ResourceNote] = field(default_factory=list)

    def function(self, name: str) -> FunctionSpec:
        """A function by logical id (`RetrainOnDriftFunction`), handler module (`retrain_on_drift`), name or ARN."""
        for spec in self.functions.values():
            if name in (spec.logical_id, spec.module, spec.function_name, spec.function_arn):
                return spec
        known = ", ".join(f"{s.logical_id} ({s.module})" for s in self.functions.values())
        raise KeyError(f"No function {name!r} in the stack; the functions are: {known}")

    def state_machine(self, name: str) -> StateMachineSpec:
        """A state machine by logical id, name, ARN or ASL file stem (`training` for training.asl.json)."""
        spec = self._find_state_machine(name)
        if spec is not None:
            return spec
        known = ", ".join(self.state_machines)
        raise KeyError(f"No state machine {name!r} in the stack; the state machines are: {known}")

    def has_state_machine(self, name: str) -> bool:
        """Whether `state_machine(name)` finds one."""
        return self._find_state_machine(name) is not None

    def _find_state_machine(self, name: str) -> StateMachineSpec | None:
        for spec in self.state_machines.values():
            stem = spec.definition_file.name.split(".")[0] if spec.definition_file else None
            if name in (spec.logical_id, spec.name, spec.arn, stem):
                return spec
        return None
