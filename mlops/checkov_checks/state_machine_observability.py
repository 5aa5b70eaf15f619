"""checkov CKV_MLOPS_1: a state machine logs every event with execution data to CloudWatch and traces with X-Ray."""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

_TRUE = (True, "true", "True")


class StateMachineLogsEverythingAndTraces(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure a state machine logs ALL events with execution data and has X-Ray tracing on",
            id="CKV_MLOPS_1",
            categories=[CheckCategories.LOGGING],
            supported_resources=["AWS::StepFunctions::StateMachine"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        properties = conf.get("Properties") or {}
        logging = properties.get("LoggingConfiguration") or {}
        tracing = properties.get("TracingConfiguration") or {}
        logs_everything = (
            logging.get("Level") == "ALL"
            and logging.get("IncludeExecutionData") in _TRUE
            and bool(logging.get("Destinations"))
        )
        return CheckResult.PASSED if logs_everything and tracing.get("Enabled") in _TRUE else CheckResult.FAILED


check = StateMachineLogsEverythingAndTraces()
