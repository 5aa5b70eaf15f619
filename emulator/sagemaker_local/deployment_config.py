"""What SageMaker refuses in an UpdateEndpoint's DeploymentConfig, refused by the twin with SageMaker's error code.

SageMaker's API reference (TrafficRoutingConfig, CapacitySize, BlueGreenUpdatePolicy) and the deployment
guardrails guide give the rules: the routing type is ALL_AT_ONCE, CANARY or LINEAR; a CANARY needs a CanarySize
of at most 50% of the variant's total instance count and a LINEAR a LinearStepSize of 10-50% of it; a size is
INSTANCE_COUNT or CAPACITY_PERCENT, a value of at least 1 (a percentage at most 100); WaitIntervalInSeconds and
TerminationWaitInSeconds are 0-3600 and MaximumExecutionTimeoutInSeconds 600-14400. SageMaker does not publish
its messages word for word: these quote the reference's wording. A percentage becomes instances rounded down
but never below one instance, so a canary of any size on a one-instance fleet is the whole fleet and refused.
"""

from __future__ import annotations

import math
from typing import Any

from emulator.sagemaker_local.errors import validation_error

ROUTING_TYPES = ("ALL_AT_ONCE", "CANARY", "LINEAR")
SIZE_TYPES = ("INSTANCE_COUNT", "CAPACITY_PERCENT")
_STEP_SIZE_FIELDS = {"CANARY": "CanarySize", "LINEAR": "LinearStepSize"}


def check_deployment_config(deployment_config: dict[str, Any] | None, endpoint_config: dict[str, Any]) -> None:
    """Raises SageMaker's ValidationException for a DeploymentConfig it would refuse for `endpoint_config`'s fleet."""
    policy = (deployment_config or {}).get("BlueGreenUpdatePolicy")
    if not policy:
        return
    _check_range(policy, "TerminationWaitInSeconds", 0, 3600)
    _check_range(policy, "MaximumExecutionTimeoutInSeconds", 600, 14400)
    routing = policy.get("TrafficRoutingConfiguration") or {}
    routing_type = routing.get("Type")
    if routing_type not in ROUTING_TYPES:
        raise validation_error(
            f"TrafficRoutingConfiguration.Type {routing_type!r} is not valid: use one of {', '.join(ROUTING_TYPES)}."
        )
    if "WaitIntervalInSeconds" not in routing:
        raise validation_error("TrafficRoutingConfiguration.WaitIntervalInSeconds is required.")
    _check_range(routing, "WaitIntervalInSeconds", 0, 3600)
    size_field = _STEP_SIZE_FIELDS.get(routing_type)
    if size_field is None:
        return
    size = routing.get(size_field)
    if not size:
        raise validation_error(f"TrafficRoutingConfiguration.{size_field} is required for Type {routing_type}.")
    for variant in endpoint_config.get("ProductionVariants", []):
        _check_step_size(size_field, size, int(variant.get("InitialInstanceCount", 1)), variant["VariantName"])


def _check_range(section: dict[str, Any], name: str, low: int, high: int) -> None:
    value = section.get(name)
    if value is not None and not low <= int(value) <= high:
        raise validation_error(f"{name} {value} is out of range: it must be between {low} and {high}.")


def _instances(size: dict[str, Any], size_field: str, fleet: int) -> int:
    size_type, value = size.get("Type"), size.get("Value")
    if size_type not in SIZE_TYPES or not isinstance(value, int) or value < 1:
        raise validation_error(
            f"{size_field} {size!r} is not valid: Type is one of {', '.join(SIZE_TYPES)} and Value at least 1."
        )
    if size_type == "INSTANCE_COUNT":
        return value
    if value > 100:
        raise validation_error(f"{size_field} of {value}% is not valid: a CAPACITY_PERCENT is at most 100.")
    return max(1, math.floor(fleet * value / 100))


def _check_step_size(size_field: str, size: dict[str, Any], fleet: int, variant: str) -> None:
    instances = _instances(size, size_field, fleet)
    if size_field == "CanarySize" and 2 * instances > fleet:
        raise validation_error(
            f"CanarySize {size['Value']} {size['Type']} is {instances} of the {fleet} instance(s) of variant "
            f"{variant!r}: the value must be less than or equal to 50% of the variant's total instance count."
        )
    if size_field == "LinearStepSize" and not (fleet <= 10 * instances and 2 * instances <= fleet):
        raise validation_error(
            f"LinearStepSize {size['Value']} {size['Type']} is {instances} of the {fleet} instance(s) of variant "
            f"{variant!r}: the value must be 10-50% of the variant's total instance count."
        )


def traffic_steps(deployment_config: dict[str, Any] | None, endpoint_config: dict[str, Any]) -> list[float]:
    """The shares of traffic a blue/green update moves to the new fleet, one per step, each followed by a baking
    period of `WaitIntervalInSeconds`: ALL_AT_ONCE all of it; CANARY the canary's instances, then the rest; LINEAR
    one step size more each time. Without a BlueGreenUpdatePolicy SageMaker shifts all at once, with no baking."""
    routing = ((deployment_config or {}).get("BlueGreenUpdatePolicy") or {}).get("TrafficRoutingConfiguration") or {}
    size_field = _STEP_SIZE_FIELDS.get(str(routing.get("Type")))
    if size_field is None:
        return [1.0]
    fleet = sum(
        int(variant.get("InitialInstanceCount", 1)) for variant in endpoint_config.get("ProductionVariants", [])
    )
    fleet = max(1, fleet)
    step = min(1.0, _instances(routing[size_field], size_field, fleet) / fleet)
    if size_field == "CanarySize":
        return [step, 1.0]
    shares = [min(1.0, step * count) for count in range(1, math.ceil(1.0 / step) + 1)]
    return shares if shares[-1] == 1.0 else [*shares, 1.0]


def baking_seconds(deployment_config: dict[str, Any] | None) -> float:
    """The baking period after each traffic shift (`WaitIntervalInSeconds`; none without a BlueGreenUpdatePolicy)."""
    routing = ((deployment_config or {}).get("BlueGreenUpdatePolicy") or {}).get("TrafficRoutingConfiguration") or {}
    return float(routing.get("WaitIntervalInSeconds") or 0)


def rollback_alarms(deployment_config: dict[str, Any] | None) -> list[str]:
    """The alarm names of the AutoRollbackConfiguration."""
    alarms = ((deployment_config or {}).get("AutoRollbackConfiguration") or {}).get("Alarms") or []
    return [str(alarm["AlarmName"]) for alarm in alarms]
