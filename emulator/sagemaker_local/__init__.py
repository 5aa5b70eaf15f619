"""The twin's local SageMaker: jobs as child processes, endpoints on 127.0.0.1, a model registry (see backend.py)."""

from emulator.sagemaker_local.backend import LocalSageMaker
from emulator.sagemaker_local.errors import SageMakerError
from emulator.sagemaker_local.store import SYNC_JOBS, SyncJob

__all__ = ["SYNC_JOBS", "LocalSageMaker", "SageMakerError", "SyncJob"]
