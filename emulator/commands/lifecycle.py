"""`mlops run`: the whole model lifecycle on the local twin, from data upload to predictions from a live endpoint."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from contract.pipeline_config import PipelineConfig, load_pipeline_config
from contract.project import ML_DIR, PROJECT_ROOT
from emulator.commands.console import ProgressPrinter, format_duration
from emulator.commands.datasets import (
    BUNDLED_DATASETS,
    DEFAULT_DATASET,
    Dataset,
    DatasetError,
    load_user_dataset,
    with_pipeline_label,
)
from emulator.commands.first_run_bytecode import compiling_ahead
from emulator.commands.imported_objects import set_aside_imported_objects
from emulator.commands.report import ExecutionView, LifecycleReport, Prediction, write_report
from emulator.commands.report_bias import bias_summary_line
from emulator.commands.report_lineage import lineage_summary_lines, read_lineage
from emulator.commands.report_model_card import model_card_summary_line, registered_model_card
from emulator.history import (
    CAUGHT,
    FAILED,
    job_metrics,
    short_cause,
    state_totals,
)
from emulator.sagemaker_local.job_warmup import compile_job_libraries_in_background
from emulator.sagemaker_local.s3io import split_s3_uri

if TYPE_CHECKING:
    from emulator.twin import ExecutionResult, LocalTwin

RUNS_DIR = PROJECT_ROOT / ".mlops" / "runs"
TRAINING = "training"
DEPLOY = "deploy"
# Real seconds. Generous: the default run takes well under a minute on 2 cores; bigger data takes longer.
EXECUTION_TIMEOUT_SECONDS = 45 * 60
# The approval event starts `deploy` synchronously in the twin; this only bounds a broken routing.
DEPLOY_START_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.25
SAMPLE_ROWS = 8
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class LifecycleError(RuntimeError):
    """A step of the run failed; the message says which step and why."""


@dataclass
class FollowedExecution:
    """An execution followed to its end, with the ASL it ran, for the summary and the report."""

    label: str
    result: ExecutionResult
    definition: dict[str, Any]

    @property
    def succeeded(self) -> bool:
        return self.result.status == "SUCCEEDED"

    def view(self) -> ExecutionView:
        return ExecutionView(
            label=self.label,
            execution_arn=self.result.execution_arn,
            status=self.result.status,
            definition=self.definition,
            runs=self.result.runs,
            started=self.result.started,
            stopped=self.result.stopped,
            error=self.result.error,
            cause=self.result.cause,
            seconds=self.result.seconds,
        )

    def failure(self) -> str:
        """Where the execution ended and why, with the first error a Catch handled on the way there."""
        runs = self.result.runs
        failed = [run for run in runs if run.status == FAILED]
        where = f" in {failed[-1].name} ({failed[-1].state_type})" if failed else ""
        error = self.result.error or (failed[-1].error if failed else None) or "an unknown error"
        message = f"{self.label} {self.result.status}{where}: {error}"
        cause = short_cause(self.result.cause or (failed[-1].cause if failed else None))
        if cause:
            message += f": {cause}"
        caught = next((run for run in runs if run.status == CAUGHT), None)
        if caught is not None:
            message += f" (after {caught.name} failed with {caught.error}: {short_cause(caught.cause)})"
        return message


@dataclass
class LifecycleOutcome:
    """What a run produced so far; filled step by step so that a failure still leaves a summary and a report."""

    executions: list[FollowedExecution] = field(default_factory=list)
    evaluation: dict[str, Any] | None = None
    model_package: dict[str, Any] | None = None
    model_card: dict[str, Any] | None = None
    lineage: dict[str, Any] | None = None
    endpoint_url: str | None = None
    predictions: list[Prediction] = field(default_factory=list)
    failure: str | None = None


class FollowUp(Protocol):
    """What a command adds after the lifecycle on the same twin (`mlops run --drift`: emulator.commands.drift)."""

    title: str

    def check_input(self, dataset: Dataset) -> None:
        """Before any twin starts: raises DatasetError when the command's own input does not fit the data set."""

    def check_twin(self, twin: LocalTwin) -> None:
        """Right after the twin starts: raises LifecycleError when the twin lacks what `run` needs."""

    def run(self, twin: LocalTwin, outcome: LifecycleOutcome, out: TextIO) -> None:
        """After a successful lifecycle, on the same twin; raises LifecycleError naming the step that failed."""

    def record(self, twin: LocalTwin) -> None:
        """Before the twin closes, whatever happened: keeps what `finish` needs from it."""

    def finish(self, report: LifecycleReport, out: TextIO) -> None:
        """After the twin closed, whatever happened: adds to the report and prints or writes its own results."""


def run_command(
    data: Path | None,
    label_column: str | None,
    tune: bool,
    report: Path,
    work_dir: Path | None,
    follow_up: FollowUp | None = None,
    dataset_name: str | None = None,
    config: PipelineConfig | None = None,
    statemachines: dict[str, str] | None = None,
) -> int:
    """Runs the lifecycle on the twin, prints a summary and writes the HTML report; 0 when every step succeeded.

    `follow_up` runs on the same twin after the lifecycle (see `FollowUp`). `dataset_name` picks a bundled data set
    instead of `data`. `config` replaces pipeline.toml's; the state machines exported from it (`statemachines`,
    file name → content) then replace statemachines/ in the twin.
    """
    out = sys.stdout
    started = time.monotonic()
    config = config or load_pipeline_config()
    # Kept after the run, so job logs and function output can be read when something failed.
    work = work_dir or RUNS_DIR / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work.mkdir(parents=True, exist_ok=True)
    try:
        dataset = _dataset(data, dataset_name, label_column, config, work)
        if follow_up is not None:
            follow_up.check_input(dataset)
        upload = with_pipeline_label(dataset, config.model.label_column, work / "upload")
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"data: {dataset.path} ({dataset.n_rows} rows, {len(dataset.feature_columns)} features, "
        f"label {dataset.label_column!r})",
        file=out,
    )
    outcome = LifecycleOutcome()
    _quiet_library_logs()
    function_log = work / "functions.log"
    print(f"work dir: {work} (job logs under twin/sagemaker/, Lambda output in {function_log.name})", file=out)
    try:
        # In-process Lambda handlers print their structured logs to stdout, where CloudWatch would collect them on
        # AWS; they go to a file so the terminal shows the run's progress only.
        with (
            function_log.open("w", encoding="utf-8") as log,
            redirect_stdout(log),
            started_twin(work / "twin", out, _written_statemachines(statemachines, work)) as twin,
        ):
            try:
                if follow_up is not None:
                    follow_up.check_twin(twin)
                run_lifecycle(twin, upload, config, tune=tune, outcome=outcome, out=out)
                if follow_up is not None:
                    follow_up.run(twin, outcome, out)
            finally:
                if follow_up is not None:
                    follow_up.record(twin)
    except LifecycleError as exc:
        outcome.failure = str(exc)
    except Exception as exc:  # any failure of the twin still ends in a summary and a report
        outcome.failure = f"the local twin failed: {type(exc).__name__}: {exc}"
    print_summary(outcome, out)
    title = f"mlops run: {dataset.path.name}" + (" (tuning)" if tune else "")
    if follow_up is not None:
        title += f" ({follow_up.title})"
    report_view = lifecycle_report(title, outcome)
    if follow_up is not None:
        follow_up.finish(report_view, out)
    write_report(report_view, report)
    print(f"report: {report}", file=out)
    print(f"total: {format_duration(time.monotonic() - started)}", file=out)
    if outcome.failure:
        print(f"FAILED: {outcome.failure}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _quiet_library_logs() -> None:
    # Deploying the stack into moto logs every resource type moto lacks and what the twin did instead, and the
    # stack's own functions log as they run: useful when debugging the twin, noise for someone running the
    # lifecycle, which prints its own progress. Warnings still show; moto's are about types the twin handles.
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("moto").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module="moto.cloudformation")


def _dataset(
    data: Path | None, dataset_name: str | None, label_column: str | None, config: PipelineConfig, work: Path
) -> Dataset:
    if data is None:
        bundled = BUNDLED_DATASETS.get(dataset_name or DEFAULT_DATASET)
        if bundled is None:
            raise DatasetError(f"no bundled data set {dataset_name!r}; there are: {', '.join(BUNDLED_DATASETS)}")
        written = bundled.write(work / "data")
        if label_column not in (None, written.label_column):
            raise DatasetError(
                f"--label-column {label_column!r} needs --data: the {dataset_name or DEFAULT_DATASET} data set's label "
                f"is {written.label_column!r}"
            )
        return written
    if dataset_name is not None:
        raise DatasetError("--data and --dataset both name the data: give one of them")
    return load_user_dataset(data, label_column or config.model.label_column)


def _written_statemachines(statemachines: dict[str, str] | None, work: Path) -> Path | None:
    """The folder the twin deploys the state machines from: `statemachines` written under `work`, else the repo's."""
    if statemachines is None:
        return None
    folder = work / "statemachines"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in statemachines.items():
        (folder / name).write_text(content, encoding="utf-8")
    return folder


@contextmanager
def started_twin(work_dir: Path, out: TextIO, statemachines_dir: Path | None = None) -> Iterator[LocalTwin]:
    """The local twin of the stack, started, after saying what it deployed; closed on exit."""
    started = time.monotonic()
    # On a first run the job code's libraries compile on the other core while moto imports; the twin's warm
    # containers wait for it (job_warmup.py says why).
    compile_job_libraries_in_background(ML_DIR)
    # Imported here: importing moto takes seconds, and bad input is refused before any twin is needed. The twin's
    # own libraries are compiled ahead of that import on a first run (first_run_bytecode.py).
    with compiling_ahead():
        from emulator.twin import LocalTwin

        set_aside_imported_objects()
        with LocalTwin(statemachines_dir=statemachines_dir, work_dir=work_dir, parse_first=(TRAINING,)) as twin:
            stack = twin.stack
            print(
                f"local twin up in {format_duration(time.monotonic() - started)}: stack {stack.stack_name}, "
                f"{len(stack.resources)} resources ({len(stack.emulated)} emulated by the twin, {len(stack.skipped)} "
                "left out)",
                file=out,
            )
            yield twin


def run_lifecycle(
    twin: LocalTwin, upload: Path, config: PipelineConfig, *, tune: bool, outcome: LifecycleOutcome, out: TextIO
) -> None:
    """On a started twin: uploads the data, runs `training`, lets the approval start `deploy`, queries the endpoint.

    Raises LifecycleError naming the step that failed; `outcome` keeps everything gathered until then.
    """
    data_bucket = twin.stack.outputs["DataBucketName"]
    key = f"{config.data.prefix}{upload.name}"
    print(f"uploaded {twin.upload(upload, 'DataBucket', key)}", file=out)

    execution_input = {
        "data_uri": f"s3://{data_bucket}/{config.data.prefix}",
        "tune": tune,
        "trigger": {"type": "manual", "detail": {"source": "mlops run"}},
        "objects": [{"bucket": data_bucket, "key": key}],
    }
    deploys_before = deploy_executions(twin)
    arn = twin.start_execution(TRAINING, execution_input, name=_execution_name(upload, tune))
    training = follow_execution(twin, arn, TRAINING, out)
    outcome.executions.append(training)
    if not training.succeeded:
        raise LifecycleError(training.failure())

    deploy_registered_model(twin, training, deploys_before, outcome, out)

    endpoint_name = twin.stack.outputs["EndpointName"]
    outcome.endpoint_url = f"{twin.sagemaker.endpoint_url(endpoint_name)}/invocations"
    outcome.predictions = query_endpoint(endpoint_name, outcome.endpoint_url, held_out_split_uri(training), out)


def deploy_executions(twin: LocalTwin) -> frozenset[str]:
    """The ARNs of every `deploy` execution so far: taken before a training starts, for `deploy_registered_model`."""
    return frozenset(str(execution["executionArn"]) for execution in twin.list_executions(DEPLOY))


def deploy_registered_model(
    twin: LocalTwin,
    training: FollowedExecution,
    deploys_before: frozenset[str],
    outcome: LifecycleOutcome,
    out: TextIO,
) -> FollowedExecution:
    """After a successful `training`: the package it registered must be approved; follows the `deploy` it started.

    The approval rule starts `deploy` while `training` registers the package, so `deploys_before` (taken before the
    training started) tells the new one from a redeployed endpoint's earlier deploys. Raises LifecycleError naming
    the failure.
    """
    outcome.model_package = _registered_package(training)
    outcome.evaluation = _evaluation(outcome.model_package)
    outcome.model_card = registered_model_card(training.result.output)
    outcome.lineage = read_lineage(boto3.client("s3"), outcome.model_package)
    status = outcome.model_package.get("ModelApprovalStatus")
    if status != "Approved":
        raise LifecycleError(
            f"model package {outcome.model_package['ModelPackageArn']} is {status}: only an approved package "
            "is deployed. The twin sets the stack's ApprovalMode to auto; check its parameter overrides."
        )
    deploy_arn = wait_for_deploy_start(
        lambda: [e for e in twin.list_executions(DEPLOY) if str(e["executionArn"]) not in deploys_before]
    )
    deploy = follow_execution(twin, deploy_arn, DEPLOY, out)
    outcome.executions.append(deploy)
    if not deploy.succeeded:
        raise LifecycleError(deploy.failure())
    return deploy


def follow_execution(twin: LocalTwin, arn: str, label: str, out: TextIO) -> FollowedExecution:
    """Waits for an execution to stop (`LocalTwin.wait_for_execution`), printing its states as they start and end.

    Nobody but this command drives the twin meanwhile, so time that only passes (an endpoint's transition, a baking
    period, a Wait state, with no job, model server start or Lambda running) passes at once on the twin's clock.
    """
    printer = ProgressPrinter(label, out)
    try:
        with twin.clock.skipping_idle_time(twin.busy):
            result = twin.wait_for_execution(arn, timeout=EXECUTION_TIMEOUT_SECONDS, on_runs=printer.update)
    except TimeoutError as error:
        raise LifecycleError(f"{label} execution {arn} still running after {EXECUTION_TIMEOUT_SECONDS} s") from error
    printer.finish()
    definition = json.loads(twin.stack.state_machine(label).definition)
    return FollowedExecution(label, result, definition)


def wait_for_deploy_start(
    list_executions: Callable[[], list[dict[str, Any]]], timeout: float = DEPLOY_START_TIMEOUT_SECONDS
) -> str:
    """The `deploy` execution the approval event started; LifecycleError naming the missing routing if none did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executions = list_executions()
        if executions:
            return str(executions[0]["executionArn"])
        time.sleep(POLL_SECONDS)
    raise LifecycleError(
        f"no {DEPLOY} execution started within {timeout:.0f} s of the model package's "
        "approval: the stack's approval rule (SageMaker Model Package State Change, Approved -> deploy state "
        "machine) did not route the registry's event. Check ModelApprovedRule in template.yaml and the twin's "
        "event routing; this run does not start deploy by hand."
    )


def _execution_name(upload: Path, tune: bool) -> str:
    # Deterministic from the data and the branch, as the other starters of `training` name their executions.
    digest = hashlib.sha256(upload.read_bytes() + (b"tune" if tune else b"train")).hexdigest()[:16]
    return f"manual-run-{digest}"


def _registered_package(training: FollowedExecution) -> dict[str, Any]:
    # RegisterModelPackage's ResultPath: the output carries the package it registered at $.model_package.
    arn = ((training.result.output or {}).get("model_package") or {}).get("ModelPackageArn")
    if not arn:
        raise LifecycleError(
            f"{TRAINING} succeeded but its output has no model_package.ModelPackageArn: "
            f"{_clip(json.dumps(training.result.output))}"
        )
    return dict(boto3.client("sagemaker").describe_model_package(ModelPackageName=arn))


def _evaluation(model_package: Mapping[str, Any]) -> dict[str, Any] | None:
    uri = (model_package.get("CustomerMetadataProperties") or {}).get("evaluation_uri")
    return dict(json.loads(read_s3(uri))) if uri else None


def read_s3(uri: str) -> bytes:
    """The bytes of the object at an `s3://bucket/key` URI, from the twin's S3."""
    bucket, key = split_s3_uri(uri)
    return bytes(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def held_out_split_uri(training: FollowedExecution) -> str:
    """The held-out test split the training's preprocessing wrote (a header, then the label first in every row)."""
    # Preprocess's ResultPath: the output carries the processing job's description at $.preprocess, with the
    # `test` output as the execution resolved it (placeholders and paths filled in).
    preprocess = (training.result.output or {}).get("preprocess") or {}
    for output in (preprocess.get("ProcessingOutputConfig") or {}).get("Outputs", []):
        if output.get("OutputName") == "test":
            return f"{output['S3Output']['S3Uri'].rstrip('/')}/test.csv"
    raise LifecycleError(f"{TRAINING}'s output has no preprocess job with a 'test' output: no held-out rows to send")


def query_endpoint(endpoint_name: str, url: str, test_split_uri: str, out: TextIO) -> list[Prediction]:
    """Sends held-out test rows (features only) to the endpoint as CSV and pairs its predictions with their labels.

    Through `sagemaker-runtime` InvokeEndpoint, as a client on AWS would: the twin then captures the requests and
    publishes the `Invocations` metric, which the drift loop and the idle endpoint reaper read. `url` is where the
    endpoint's model server listens, for the printed line.
    """
    rows = read_held_out_rows(test_split_uri)[1][:SAMPLE_ROWS]
    answered = invoke_csv(endpoint_name, [row[1:] for row in rows])
    predictions = [
        Prediction(score=p.get("score"), predicted=p.get("label"), actual=_as_label(row[0]))
        for p, row in zip(answered, rows, strict=True)
    ]
    print(f"endpoint {url}: {len(rows)} held-out test rows", file=out)
    for index, prediction in enumerate(predictions, start=1):
        verdict = "ok" if str(prediction.predicted) == str(prediction.actual) else "WRONG"
        score = "-" if prediction.score is None else f"{prediction.score:.4f}"
        print(
            f"  row {index}: score={score} predicted={prediction.predicted} label={prediction.actual} {verdict}",
            file=out,
        )
    return predictions


def read_held_out_rows(split_uri: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a split preprocessing wrote: the label first, then the features in payload order."""
    lines = list(csv.reader(io.StringIO(read_s3(split_uri).decode("utf-8"))))
    if len(lines) < 2:
        raise LifecycleError(f"{split_uri} has no rows after its header: no held-out rows to send")
    return lines[0], lines[1:]


def invoke_csv(endpoint_name: str, feature_rows: list[list[str]]) -> list[dict[str, Any]]:
    """One `sagemaker-runtime` InvokeEndpoint of `feature_rows` as CSV; the predictions, one per row, in order."""
    body = "\n".join(",".join(row) for row in feature_rows).encode("utf-8")
    try:
        response = boto3.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint_name, Body=body, ContentType="text/csv", Accept="application/json"
        )
        answer = json.loads(response["Body"].read())
    except (BotoCoreError, ClientError, ValueError) as exc:
        raise LifecycleError(f"endpoint {endpoint_name} did not answer with JSON predictions: {exc}") from exc
    answered = answer.get("predictions", []) if isinstance(answer, dict) else []
    if len(answered) != len(feature_rows):
        raise LifecycleError(
            f"endpoint {endpoint_name} answered {len(answered)} predictions for {len(feature_rows)} rows: {answer}"
        )
    return list(answered)


def _as_label(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


def print_summary(outcome: LifecycleOutcome, out: TextIO) -> None:
    """The end of a run: each execution's states with status and duration, metrics, the package and its lineage."""
    print("\n== summary ==", file=out)
    for execution in outcome.executions:
        result = execution.result
        took = format_duration(result.seconds) if result.seconds is not None else "-"
        print(f"{execution.label}: {result.status} in {took}  {result.execution_arn}", file=out)
        totals = state_totals(result.runs)
        width = max((len(total.name) + 2 * total.depth for total in totals), default=0)
        for total in totals:
            name = "  " * total.depth + total.name
            line = f"  {name:<{width}}  {total.state_type:<8} {total.status:<9} {format_duration(total.seconds):>7}"
            if total.visits > 1:
                line += f"  ({total.visits} visits)"
            metrics = job_metrics(total.last.task_output)
            if metrics:
                line += "  " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
            print(line, file=out)
    if outcome.evaluation:
        metrics = outcome.evaluation.get("metrics", {})
        shown_metrics = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, int | float))
        print(f"metrics (test split, n={outcome.evaluation.get('n_test', '?')}): {shown_metrics}", file=out)
        if "bias" in outcome.evaluation:
            print(bias_summary_line(outcome.evaluation["bias"]), file=out)
    if outcome.model_package:
        package = outcome.model_package
        print(f"model package: {package['ModelPackageArn']} ({package.get('ModelApprovalStatus')})", file=out)
        for key, value in sorted((package.get("CustomerMetadataProperties") or {}).items()):
            print(f"  {key}: {value}", file=out)
    if outcome.model_card:
        print(model_card_summary_line(outcome.model_card), file=out)
    if outcome.lineage:
        print("\n".join(lineage_summary_lines(outcome.lineage)), file=out)
    if outcome.endpoint_url:
        print(f"endpoint: {outcome.endpoint_url}", file=out)


def lifecycle_report(title: str, outcome: LifecycleOutcome) -> LifecycleReport:
    """What the HTML report shows of a run."""
    return LifecycleReport(
        title=title,
        executions=[execution.view() for execution in outcome.executions],
        evaluation=outcome.evaluation,
        model_package=outcome.model_package,
        model_card=outcome.model_card,
        lineage=outcome.lineage,
        endpoint_url=outcome.endpoint_url,
        predictions=outcome.predictions,
        failure=outcome.failure,
    )


def _clip(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
