"""Execution environments of the in-process Lambdas: concurrent invocations keep their own state, a warm one keeps it.

The handlers use Powertools as the stack's functions do (one module-level `Logger` and `Metrics` in a code directory
that several functions share). A barrier in a module outside the code directory holds the invocations inside their
handlers at the same moment, so that any state they shared would show.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from contract.project import PROJECT_ROOT
from emulator.lambda_local import LocalLambdaRunner

POWERTOOLS_HANDLERS = """
import os
import sys
import meeting_point
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit



class FunctionLog:
    # The function's log as Lambda gives it: whatever sys.stdout is at each write (the twin's per-invocation tee).

    def write(self, text):
        return sys.stdout.write(text)

    def flush(self):
        sys.stdout.flush()


logger = Logger(service="shared-code", stream=FunctionLog())
metrics = Metrics(namespace="EnvironmentTest")
tracer = Tracer()
SEEN = []  # a module-level variable of the function's own code


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    branch = str(event["branch"])
    warm_key = logger.get_current_keys().get("left_by")
    warm_variable = os.environ.get("LEFT_BY")
    warm_context_key = logger.thread_safe_get_current_keys().get("context_left_by")
    metrics.add_dimension(name="Branch", value=branch)
    metrics.add_metric(name=f"Branch{branch}Count", unit=MetricUnit.Count, value=1)
    # A Metrics made during the invocation shares the module-level one's metric set, as in a process of its own.
    Metrics().add_metric(name=f"Inner{branch}Count", unit=MetricUnit.Count, value=1)
    metrics.add_metadata(key="branch_metadata", value=branch)
    if event.get("default_dimension"):
        metrics.set_default_dimensions(Stage=event["default_dimension"])
    logger.append_keys(branch=branch, left_by=branch)
    os.environ["LEFT_BY"] = branch
    logger.thread_safe_append_keys(context_left_by=branch)
    SEEN.append(branch)
    if event.get("meet"):
        meeting_point.meet(event["meet"])
    logger.info("branch done")
    return {
        "branch": branch,
        "request_id": context.aws_request_id,
        "warm_key": warm_key,
        "warm_variable": warm_variable,
        "warm_context_key": warm_context_key,
        "tracing_disabled": tracer.disabled,
        "seen": list(SEEN),
    }
"""

MEETING_POINT = """
import threading

_LOCK = threading.Lock()
_BARRIERS = {}

def meet(parties):
    with _LOCK:
        barrier = _BARRIERS.setdefault(parties, threading.Barrier(parties))
    barrier.wait(timeout=30)
"""


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[LocalLambdaRunner]:
    shared = tmp_path / "outside_the_code"
    shared.mkdir()
    (shared / "meeting_point.py").write_text(MEETING_POINT)
    code_dir = tmp_path / "shared_code"
    code_dir.mkdir()
    (code_dir / "environment_handlers.py").write_text(
        f"import sys\nsys.path.insert(0, {str(shared)!r})\n" + POWERTOOLS_HANDLERS
    )
    runner = LocalLambdaRunner()
    for index in range(3):
        runner.register(f"env-fn-{index}", "environment_handlers.handler", code_dir, {}, 60)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        runner.install()
        runner.init_functions()
        try:
            yield runner
        finally:
            runner.uninstall()


def _at_once(runner: LocalLambdaRunner, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def call(index: int, name: str, payload: dict[str, Any]) -> None:
        try:
            results[index] = runner.invoke(name, payload)
        except BaseException as error:  # reported below, with the test's failure
            errors.append(error)

    threads = [threading.Thread(target=call, args=(i, *pair)) for i, pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def _documents(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_concurrent_invocations_emit_only_their_own_metrics_dimensions_and_log_keys(
    runner: LocalLambdaRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    results = _at_once(runner, [(f"env-fn-{index}", {"branch": index, "meet": 3}) for index in range(3)])

    documents = _documents(capsys.readouterr().out)
    metric_documents = [document for document in documents if "_aws" in document]
    assert len(metric_documents) == 3
    for document in metric_documents:
        # One EMF document per invocation, with that invocation's metric, dimension and metadata only.
        branch = document["Branch"]
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert [metric["Name"] for metric in directive["Metrics"]] == [f"Branch{branch}Count", f"Inner{branch}Count"]
        assert directive["Dimensions"] == [["Branch"]]
        assert document["branch_metadata"] == branch
    assert sorted(document["Branch"] for document in metric_documents) == ["0", "1", "2"]
    request_by_branch = {result["branch"]: result["request_id"] for result in results}
    log_lines = [document for document in documents if document.get("message") == "branch done"]
    assert len(log_lines) == 3
    for line in log_lines:
        # Its own Lambda-context fields and appended keys, a cold start each: three new environments.
        assert line["function_request_id"] == request_by_branch[line["branch"]]
        assert line["function_name"] == f"env-fn-{line['branch']}"
        assert line["cold_start"] is True
    # Tracer is off in the twin (Powertools sees no LAMBDA_TASK_ROOT), so the X-Ray recorder keeps no state here.
    assert all(result["tracing_disabled"] for result in results)
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    for index in range(3):
        [published] = cloudwatch.list_metrics(Namespace="EnvironmentTest", MetricName=f"Branch{index}Count")["Metrics"]
        assert published["Dimensions"] == [{"Name": "Branch", "Value": str(index)}]


def test_successive_invocations_on_one_environment_keep_its_state_as_a_warm_start(
    runner: LocalLambdaRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    first = runner.invoke("env-fn-0", {"branch": "first", "default_dimension": "warm"})
    second = runner.invoke("env-fn-0", {"branch": "second"})

    # The second found what the first left: Logger's keys (shared and context-variable ones), its os.environ write,
    # Metrics' default dimensions.
    assert (first["warm_key"], first["warm_variable"], first["warm_context_key"]) == (None, None, None)
    assert (second["warm_key"], second["warm_variable"], second["warm_context_key"]) == ("first", "first", "first")
    documents = _documents(capsys.readouterr().out)
    assert [line["cold_start"] for line in documents if line.get("message") == "branch done"] == [True, False]
    second_metrics = [document for document in documents if document.get("Branch") == "second"]
    assert [document["Stage"] for document in second_metrics] == ["warm"]
    # Each invocation flushed only its own metric: the first's did not stay in the buffer.
    assert [m["Name"] for m in second_metrics[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == [
        "BranchsecondCount",
        "InnersecondCount",
    ]


def test_a_new_environment_starts_from_the_init_state_while_the_warm_one_keeps_its_own(
    runner: LocalLambdaRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    runner.invoke("env-fn-0", {"branch": "earlier", "default_dimension": "warm"})
    capsys.readouterr()

    # Two at once: one takes the warm environment, the other needs a new one.
    results = _at_once(runner, [("env-fn-0", {"branch": "a", "meet": 2}), ("env-fn-0", {"branch": "b", "meet": 2})])

    warm = [result for result in results if result["warm_key"] is not None]
    cold = [result for result in results if result["warm_key"] is None]
    assert [(r["warm_key"], r["warm_variable"], r["warm_context_key"]) for r in warm] == [("earlier",) * 3]
    assert [(r["warm_key"], r["warm_variable"], r["warm_context_key"]) for r in cold] == [(None, None, None)]
    documents = _documents(capsys.readouterr().out)
    cold_start_by_branch = {line["branch"]: line["cold_start"] for line in documents if "cold_start" in line}
    assert cold_start_by_branch == {warm[0]["branch"]: False, cold[0]["branch"]: True}
    stage_by_branch = {document["Branch"]: document.get("Stage") for document in documents if "_aws" in document}
    assert stage_by_branch == {warm[0]["branch"]: "warm", cold[0]["branch"]: None}


def test_module_globals_of_the_functions_own_code_are_shared_by_its_concurrent_environments(
    runner: LocalLambdaRunner,
) -> None:
    # The difference docs/local-twin.md states: Python binds a module's globals to one dict per process, so `SEEN`
    # has both invocations' entries; on AWS each environment's process would have only its own.
    results = _at_once(runner, [("env-fn-0", {"branch": "a", "meet": 2}), ("env-fn-1", {"branch": "b", "meet": 2})])

    assert all({"a", "b"} <= set(result["seen"]) for result in results)


def test_two_stack_functions_at_once_each_flush_their_own_decision_metric_and_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stack's own code: two functions of functions/ share common/observability.py's logger and metrics, and its
    # instrumented_handler sets the service of those shared objects at each call.
    runner = LocalLambdaRunner()
    for service in ("tags-a", "tags-b"):
        variables = {"POWERTOOLS_SERVICE_NAME": service, "POWERTOOLS_METRICS_NAMESPACE": "StackCode"}
        runner.register(service, "approval_tags.handler", PROJECT_ROOT / "functions", variables, 60)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        runner.install()
        try:
            runner.init_functions()
            module = sys.modules["approval_tags"]
            both_inside = threading.Barrier(2)
            work = module.approval_tags

            def meeting_the_other(request: Any) -> Any:
                # Holds each call inside its handler, between setting its service and counting its decision.
                both_inside.wait(timeout=30)
                return work(request)

            monkeypatch.setattr(module, "approval_tags", meeting_the_other)
            event = {"approval_mode": "auto", "model_package": {"ModelPackageArn": "arn:package/1"}}
            results = _at_once(runner, [("tags-a", event), ("tags-b", event)])
        finally:
            runner.uninstall()

    assert [result["reason"] for result in results] == [module.tag_value(module.AUTO_APPROVAL_REASON)] * 2
    documents = [document for document in _documents(capsys.readouterr().out) if "_aws" in document]
    # One ApprovalTagged datapoint each, under its own function's service (shared, they would mix or be flushed twice).
    assert sorted((document["service"], document["ApprovalTagged"]) for document in documents) == [
        ("tags-a", [1.0]),
        ("tags-b", [1.0]),
    ]
