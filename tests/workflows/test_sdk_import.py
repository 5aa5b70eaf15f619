"""Importing the authoring code leaves the caller's logging as it was (the SDK sets the root logger to ERROR)."""

from __future__ import annotations

import logging
import subprocess
import sys

from contract.project import PROJECT_ROOT


def test_importing_the_workflows_keeps_the_root_log_level() -> None:
    script = (
        "import logging; logging.getLogger().setLevel(logging.INFO); "
        "import workflows.export; print(logging.getLogger().level)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert completed.stdout.strip() == str(logging.INFO)
    # Nor does it print the SageMaker SDK's deprecation banner or its config-file notices.
    assert "SageMaker Python SDK v2" not in completed.stderr + completed.stdout
    assert "sagemaker.config" not in completed.stderr + completed.stdout
