"""Closing while work is in flight: the SageMaker backend's threads and an execution stopped in the middle of a task.

Each test injects the interleaving that was seen under load at the boundary where it happens (a gated thread
start, a request held between its checks, a stop delivered inside a task), so it reproduces on every run.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ServiceResource
from moto.stepfunctions.parser.asl.eval.environment import Environment
from twin_runtime import REGION, Runtime

from emulator.clock import Clock
from emulator.sagemaker_local import LocalSageMaker, SageMakerError
from emulator.sagemaker_local import store as store_module

_OriginalThread = threading.Thread


def test_close_while_a_job_thread_is_being_started_joins_it_instead_of_crashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = LocalSageMaker(tmp_path / "sagemaker", Clock(1000.0))
    starting, close_entered, close_finished = threading.Event(), threading.Event(), threading.Event()
    job_ran = threading.Event()

    class GatedThread(_OriginalThread):
        """Holds the job thread's start() until close() has begun, as a loaded machine may."""

        def start(self) -> None:
            if self.name == "gated-job":
                starting.set()
                close_entered.wait()
                if not backend._lock._is_owned():  # type: ignore[attr-defined]
                    # Started outside the lock close() lists threads under: let close() see it unstarted first.
                    close_finished.wait()
            super().start()

    monkeypatch.setattr(store_module.threading, "Thread", GatedThread)
    starter_errors: list[BaseException] = []

    def start_job() -> None:
        try:
            backend._start_thread(job_ran.set, "gated-job")
        except BaseException as error:
            starter_errors.append(error)

    starter = _OriginalThread(target=start_job)
    starter.start()
    assert starting.wait(10)
    close_entered.set()
    try:
        backend.close()
    finally:
        close_finished.set()
        starter.join(10)

    assert starter_errors == []
    assert job_ran.is_set(), "the thread registered before close() ran, and close() waited for it"
    assert [thread for thread in backend._threads if thread.is_alive()] == []


def test_a_job_requested_while_the_backend_closes_is_refused_and_starts_no_thread(
    executing_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = LocalSageMaker(tmp_path / "sagemaker", Clock(1000.0))
    in_request, close_finished = threading.Event(), threading.Event()
    check_name = backend._check_name

    def check_name_then_wait_for_close(name: Any, what: str, *args: Any) -> str:
        # The request has passed call()'s closed check; close() now runs to the end before it goes on.
        in_request.set()
        close_finished.wait()
        return check_name(name, what, *args)

    monkeypatch.setattr(backend, "_check_name", check_name_then_wait_for_close)
    outcome: list[BaseException | dict[str, Any]] = []

    def create_job() -> None:
        try:
            outcome.append(
                backend.call(
                    "CreateProcessingJob",
                    {
                        "ProcessingJobName": "requested-during-close",
                        "AppSpecification": {"ImageUri": "local", "ContainerEntrypoint": ["true"]},
                        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1}},
                        "RoleArn": "arn:aws:iam::123456789012:role/local-twin-tests",
                    },
                )
            )
        except BaseException as error:
            outcome.append(error)

    requester = _OriginalThread(target=create_job)
    requester.start()
    assert in_request.wait(10)
    try:
        backend.close()
    finally:
        close_finished.set()
        requester.join(10)

    assert len(outcome) == 1
    assert isinstance(outcome[0], SageMakerError), outcome
    assert outcome[0].code == "ServiceUnavailable"
    assert backend._threads == []
    assert backend._jobs["processing"] == {}


def test_a_training_of_a_tuning_job_launched_after_close_is_refused(tmp_path: Path) -> None:
    backend = LocalSageMaker(tmp_path / "sagemaker", Clock(1000.0))
    backend.close()

    # A tuning job's pool threads create trainings with _new_job, not through call().
    with pytest.raises(SageMakerError, match="closed"):
        backend._new_job("training", "late-training", "training job", {"TrainingJobStatus": "InProgress"})
    assert backend._jobs["training"] == {}


def _stop_inside_the_sns_task(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the StopExecution land inside the SNS task, after its state began and before its resource is read."""
    stopped: list[str] = []
    original_eval = ServiceResource.eval

    def stop_then_eval(self: ServiceResource, env: Environment) -> None:
        if self.service_name == "sns" and not stopped:
            arn = env.states.context_object.context_object_data["Execution"]["Id"]
            boto3.client("stepfunctions", region_name=REGION).stop_execution(executionArn=arn, error="Test.Stopped")
            assert not env.is_running(), "StopExecution reaches the task's frame at once"
            stopped.append(arn)
        original_eval(self, env)

    monkeypatch.setattr(ServiceResource, "eval", stop_then_eval)
    return stopped


def _notify_definition(topic_arn: str) -> dict[str, Any]:
    return {
        "StartAt": "Notify",
        "States": {
            "Notify": Runtime.task(
                "arn:aws:states:::sns:publish",
                {"TopicArn": topic_arn, "Message.$": "States.JsonToString($)"},
                TimeoutSeconds=60,
                ResultPath="$.notification",
                Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
            ),
            "Caught": {"Type": "Pass", "End": True},
        },
    }


def test_an_sns_task_stopped_mid_state_ends_aborted_without_running_on_its_input(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic_arn = boto3.client("sns", region_name=REGION).create_topic(Name="stopped-mid-state")["TopicArn"]
    stopped = _stop_inside_the_sns_task(monkeypatch)

    outcome = runtime.run(_notify_definition(topic_arn), {"data_uri": "s3://bucket/data/"})

    assert stopped, "the stop was injected inside the task"
    assert outcome.status == "ABORTED", (outcome.error, outcome.cause, outcome.event_types())
    failures = [event for event in outcome.events if event["type"] == "TaskFailed"]
    assert failures == [], f"a stopped task must not fail on values moto never pushed: {failures}"
    assert "Caught" not in outcome.entered_states()


def test_an_internal_error_of_an_sns_publish_fails_the_execution_past_a_states_all_catch(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_sns

    class BrokenClient:
        def publish(self, **params: Any) -> Any:
            raise AttributeError("'dict' object has no attribute 'region'")

    monkeypatch.setattr(state_task_service_sns, "boto_client_for", lambda **kwargs: BrokenClient())

    outcome = runtime.run(_notify_definition("arn:aws:sns:us-east-1:123456789012:any"), {})

    assert outcome.status == "FAILED"
    assert outcome.error == "States.Runtime"
    assert "no attribute 'region'" in (outcome.cause or "")
    assert "Caught" not in outcome.entered_states()
