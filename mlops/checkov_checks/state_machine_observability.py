"""checkov CKV_MLOPS_1: a state machine logs every event to CloudWatch, traces with X-Ray, no execution data in prod.

Execution data (inputs and outputs: data URIs, alarm reasons, ARNs) stays in the execution history, where IAM
decides who reads it; copying it into the log group is for dev. So `IncludeExecutionData` is false, or an
`Fn::If` whose first outcome (the prod condition, which the template tests pin to Environment=prod) is false.
"""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

from mlops.checkov_checks.policy_documents import if_outcomes

_TRUE = (True, "true", "True")
_FALSE = (False, "false", "False")


def execution_data_off_in_prod(value: Any) -> bool:
    if value in _FALSE:
        return True
    outcomes = if_outcomes(value)
    return outcomes is not None and outcomes[0] in _FALSE


class StateMachineLogsEverythingAndTraces(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure a state machine logs ALL events, traces with X-Ray, and keeps execution data out of prod logs",
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
            and execution_data_off_in_prod(logging.get("IncludeExecutionData"))
            and bool(logging.get("Destinations"))
        )
        return CheckResult.PASSED if logs_everything and tracing.get("Enabled") in _TRUE else CheckResult.FAILED


check = StateMachineLogsEverythingAndTraces()
