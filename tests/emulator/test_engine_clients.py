"""The engine keeps one boto3 client per region, service and role instead of making one for every task it runs."""

from __future__ import annotations

import importlib

from moto import mock_aws
from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials
from moto.stepfunctions.parser.asl.utils import boto_client

from emulator.engine_clients import MODULES_MAKING_CLIENTS, one_client_per_service
from emulator.moto_patches import MotoPatches

AWS_SDK = "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk"
ROLE = StateCredentials(role_arn="arn:aws:iam::123456789012:role/machine")


def test_a_task_s_client_is_the_one_made_before_with_the_same_arguments() -> None:
    with mock_aws():
        patches = MotoPatches()
        one_client_per_service(patches)
        try:
            client_for = importlib.import_module(AWS_SDK).boto_client_for
            first = client_for(region="us-east-1", service="sagemaker", state_credentials=ROLE)
            assert client_for(region="us-east-1", service="sagemaker", state_credentials=ROLE) is first
            other_role = StateCredentials(role_arn="arn:aws:iam::123456789012:role/other")
            assert client_for(region="us-east-1", service="sagemaker", state_credentials=other_role) is not first
            assert client_for(region="eu-west-1", service="sagemaker", state_credentials=ROLE) is not first
            sns = client_for(region="us-east-1", service="sns", state_credentials=ROLE)
            assert sns.meta.service_model.service_name == "sns"
            assert first.meta.region_name == "us-east-1"
        finally:
            patches.undo()
        for module_name in MODULES_MAKING_CLIENTS:
            assert importlib.import_module(module_name).boto_client_for is boto_client.boto_client_for
