"""End to end on the local twin: an upload under the data prefix starts one `training` run through the stack's rules."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from emulator.datasets import write_default_dataset
from emulator.lifecycle import started_twin
from mlops.pipeline_config import load_pipeline_config

pytestmark = pytest.mark.e2e


def test_an_upload_into_the_data_bucket_starts_exactly_one_training_execution(tmp_path: Path) -> None:
    config = load_pipeline_config()
    dataset = write_default_dataset(tmp_path / "data")
    key = f"{config.data.prefix}{dataset.path.name}"
    with started_twin(tmp_path / "twin", io.StringIO()) as twin:
        # WHEN a CSV lands under the data prefix and the new-data queue's batch reaches its function
        twin.upload(dataset.path, "DataBucket", key)
        twin.drain_queues()
        # A second drain finds nothing left: the message was consumed, not redelivered.
        twin.drain_queues()

        executions = twin.list_executions("training")
        started = twin.describe_execution(executions[0]["executionArn"]) if executions else None

    assert len(executions) == 1
    assert started is not None
    assert started.input["trigger"]["type"] == "new_data"
    assert [(o["bucket"], o["key"]) for o in started.input["objects"]] == [(twin.stack.outputs["DataBucketName"], key)]
