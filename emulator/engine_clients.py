"""moto's engine with one boto3 client per region, service and role, instead of a new one for every task."""

from __future__ import annotations

import importlib
import threading
from typing import Any

from moto.core.models import botocore_stubber
from moto.stepfunctions.parser.asl.utils import boto_client

from emulator.moto_patches import MotoPatches

# Modules of moto's engine that make a boto3 client per task through `boto_client_for` (imported by name).
MODULES_MAKING_CLIENTS = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    *(
        f"moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_{service}"
        for service in ("aws_sdk", "batch", "dynamodb", "ecs", "events", "glue", "sfn", "sns", "sqs", "unsupported")
    ),
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3",
)


def one_client_per_service(patches: MotoPatches) -> None:
    """moto's engine makes a new boto3 client for every task it runs (tens of milliseconds of CPU each, on the
    execution's path): the client made with the same arguments is kept instead, per region, service, the state's
    role (which moto's `boto_client_for` does not use today: kept in the key so that a moto that does stays exact)
    and whether moto intercepts the calls. Forgotten on undo: moto gives every `mock_aws` start a new boto3
    session."""
    original = boto_client.boto_client_for
    clients: dict[tuple[str, str, str | None, bool], Any] = {}
    lock = threading.Lock()

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, getattr(state_credentials, "role_arn", None), bool(botocore_stubber.enabled))
        with lock:
            if key not in clients:
                clients[key] = original(region=region, service=service, state_credentials=state_credentials)
            return clients[key]

    for module_name in MODULES_MAKING_CLIENTS:
        patches.replace(importlib.import_module(module_name), "boto_client_for", client_for)
    patches.on_undo(clients.clear)
