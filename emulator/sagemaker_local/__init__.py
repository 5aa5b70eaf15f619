"""The twin's local SageMaker: jobs as child processes, endpoints on 127.0.0.1, a model registry (see backend.py).

The names below are loaded on first use: the backend imports moto (seconds), and the twin's commands import this
package's light modules (S3 URIs, the job library compile) before a twin, and moto, are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.sagemaker_local.backend import LocalSageMaker
    from emulator.sagemaker_local.errors import SageMakerError
    from emulator.sagemaker_local.store import SYNC_JOBS, SyncJob

__all__ = ["SYNC_JOBS", "LocalSageMaker", "SageMakerError", "SyncJob"]
_HOMES = {
    "LocalSageMaker": "emulator.sagemaker_local.backend",
    "SageMakerError": "emulator.sagemaker_local.errors",
    "SYNC_JOBS": "emulator.sagemaker_local.store",
    "SyncJob": "emulator.sagemaker_local.store",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
