"""`mlops check`'s sam-build check on the project: `sam build` of every function, sizes, bytecode, handlers."""

from __future__ import annotations

import pytest

from mlops import checks


# sam build installs the functions' dependencies (about a minute): it runs with the slower end-to-end tests.
@pytest.mark.e2e
def test_sam_build_check_reports_every_function_under_the_size_limit() -> None:
    report = checks.check_sam_build()

    for function in (
        "MlCodePublisherFunction",
        "RetrainOnDriftFunction",
        "RetrainOnNewDataFunction",
        "EndpointReaperFunction",
        "EvaluationReportFunction",
        "SnapshotTrainingDataFunction",
        "LineageManifestFunction",
        "SmokeTestFunction",
        "MonitoringWindowFunction",
        "PublishMonitoringMetricsFunction",
        "AuditRecorderFunction",
        "ApprovalTagsFunction",
    ):
        assert f"{function}: " in report


# ---------------------------------------------------------------- the parts, on bad input
