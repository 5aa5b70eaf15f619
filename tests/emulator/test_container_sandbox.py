"""SageMaker's container contract for real: `/opt/ml` paths, network isolation and the container's own packages."""

from __future__ import annotations

import io
import json
import logging
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from emulator.sagemaker_local import sandbox
from emulator.sagemaker_local.containers import JOB_VENV, ContainerProcess
from emulator.sagemaker_local.model_server import ModelServer
from mlops.checks import container_pins, container_python_version

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/local-twin-tests"
SANDBOXED = sandbox.sandbox_support().available
needs_sandbox = pytest.mark.skipif(not SANDBOXED, reason=f"no sandbox here: {sandbox.sandbox_support().reason}")

# A script-mode training script in the style of the public SageMaker examples: every path hard-coded.
SCRIPT_MODE_TRAIN = """
import json, os, sys
import numpy, pandas, scipy, sklearn, xgboost

frame = pandas.read_csv("/opt/ml/input/data/train/train.csv")
booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(frame[["x"]], label=frame["y"]), 2)
os.makedirs("/opt/ml/model", exist_ok=True)
booster.save_model("/opt/ml/model/xgboost-model")
versions = {
    "python": "%d.%d" % sys.version_info[:2],
    "numpy": numpy.__version__,
    "pandas": pandas.__version__,
    "scipy": scipy.__version__,
    "scikit-learn": sklearn.__version__,
    "xgboost": xgboost.__version__,
}
print("VERSIONS " + json.dumps(versions))
"""

VERSIONS_INFERENCE = """
import json, sys
import numpy, pandas, sklearn, xgboost

def model_fn(model_dir):
    return xgboost.Booster(model_file=model_dir + "/xgboost-model.json")

def predict_fn(data, model):
    return {
        "python": "%d.%d" % sys.version_info[:2],
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
        "model_dir_is_container_path": __file__.startswith("/opt/ml/model/"),
    }

def output_fn(prediction, accept):
    return json.dumps(prediction)
"""


def _expected_versions() -> dict[str, str]:
    pins = container_pins()
    return {
        "python": container_python_version(),
        "numpy": pins["numpy"],
        "pandas": pins["pandas"],
        "scipy": pins["scipy"],
        "scikit-learn": pins["scikit-learn"],
        "xgboost": pins["xgboost-cpu"],
    }


def _sourcedir(bucket: str, files: dict[str, str], key: str) -> str:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    return f"s3://{bucket}/{key}"


def _wait(describe: Any, status_key: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described: dict[str, Any] = describe()
        if described[status_key] not in ("InProgress", "Stopping"):
            return described
        time.sleep(0.05)
    raise AssertionError(f"still running after {timeout} s")


def _train_script_mode(client: Any, bucket: str, name: str) -> dict[str, Any]:
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=bucket, Key="train/train.csv", Body=b"x,y\n1,0\n2,1\n3,0\n4,1\n")
    client.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE_ARN,
        AlgorithmSpecification={"TrainingImage": "sagemaker-xgboost:3.0-5", "TrainingInputMode": "File"},
        HyperParameters={
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(
                _sourcedir(bucket, {"train.py": SCRIPT_MODE_TRAIN}, f"code/{name}/sourcedir.tar.gz")
            ),
        },
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/"}},
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 300},
        EnableNetworkIsolation=True,
    )
    return _wait(lambda: client.describe_training_job(TrainingJobName=name), "TrainingJobStatus")


def _job_log(runtime: Any, kind: str, name: str) -> str:
    return str((runtime.work_dir / "sagemaker" / kind / name / "logs" / f"{kind}.log").read_text())


@needs_sandbox
def test_a_script_mode_training_script_with_hard_coded_opt_ml_paths_trains(runtime: Any, bucket: str) -> None:
    client = boto3.client("sagemaker", region_name=REGION)

    described = _train_script_mode(client, bucket, "script-mode")

    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    artifact = boto3.client("s3", region_name=REGION).get_object(
        Bucket=bucket, Key="output/script-mode/output/model.tar.gz"
    )
    with tarfile.open(fileobj=io.BytesIO(artifact["Body"].read())) as tar:
        assert "xgboost-model" in tar.getnames()


@needs_sandbox
def test_jobs_run_on_the_job_environment_package_versions(runtime: Any, bucket: str) -> None:
    client = boto3.client("sagemaker", region_name=REGION)

    described = _train_script_mode(client, bucket, "versions")

    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    printed = next(line for line in _job_log(runtime, "training", "versions").splitlines() if line.startswith("VERS"))
    assert json.loads(printed.removeprefix("VERSIONS ")) == _expected_versions()


def test_model_servers_run_on_the_job_environment_package_versions(tmp_path: Path) -> None:
    import xgboost  # the dev venv's: only to write a model file for the server to load

    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text(VERSIONS_INFERENCE)
    xgboost.train({}, xgboost.DMatrix([[1.0], [2.0]], label=[0, 1]), 1).save_model(
        str(model_dir / "xgboost-model.json")
    )
    server = ModelServer(model_dir, {}, tmp_path / "server.log")
    try:
        body, _ = server.invoke(b"{}", "application/json", "application/json")
    finally:
        server.stop()

    answered = json.loads(body)
    expected = {key: value for key, value in _expected_versions().items() if key != "scipy"}
    assert {key: answered[key] for key in expected} == expected
    assert answered["model_dir_is_container_path"] is SANDBOXED


@pytest.fixture
def loopback_listener() -> Iterator[int]:
    """A TCP listener on the host's 127.0.0.1 that accepts connections, for jobs to try to reach."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.2)
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    server.accept()[0].close()
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        yield int(server.getsockname()[1])
        stop.set()
        thread.join(5)


def _processing_job(client: Any, name: str, program: str, *, isolated: bool) -> dict[str, Any]:
    client.create_processing_job(
        ProcessingJobName=name,
        RoleArn=ROLE_ARN,
        AppSpecification={"ImageUri": "sagemaker-xgboost:3.0-5", "ContainerEntrypoint": ["python3", "-c", program]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        NetworkConfig={"EnableNetworkIsolation": isolated},
    )
    return _wait(lambda: client.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus")


@needs_sandbox
def test_a_network_isolated_job_that_opens_a_socket_fails_with_the_reason(runtime: Any, loopback_listener: int) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    # TEST-NET-1: no packet could leave the job's network namespace anyway, it has nothing but loopback.
    reach_out = "import socket; socket.create_connection(('192.0.2.1', 443), timeout=5)"
    reach_host = f"import socket; socket.create_connection(('127.0.0.1', {loopback_listener}), timeout=5)"

    isolated = _processing_job(client, "isolated-out", reach_out, isolated=True)
    isolated_host = _processing_job(client, "isolated-host", reach_host, isolated=True)
    connected = _processing_job(client, "connected-host", reach_host, isolated=False)

    assert isolated["ProcessingJobStatus"] == "Failed"
    assert "Network is unreachable" in isolated["FailureReason"]
    assert isolated_host["ProcessingJobStatus"] == "Failed"
    assert "Connection refused" in isolated_host["FailureReason"]
    assert connected["ProcessingJobStatus"] == "Completed", connected.get("FailureReason")


@needs_sandbox
def test_processing_paths_are_real_and_the_rest_of_the_machine_is_read_only(runtime: Any, bucket: str) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key="in/data.csv", Body=b"a\n1\n")
    program = (
        "import os, pathlib\n"
        "text = pathlib.Path('/opt/ml/processing/input/data/data.csv').read_text()\n"
        "pathlib.Path('/opt/ml/processing/output/copy.csv').write_text(text)\n"
        "pathlib.Path('/tmp/scratch').write_text('tmp is writable')\n"
        "try:\n    open(os.path.expanduser('~/written-by-a-job'), 'w')\n"
        "except OSError as error:\n    print('HOME', error.errno)\n"
        "else:\n    raise SystemExit('the machine is writable from a job')\n"
    )
    client.create_processing_job(
        ProcessingJobName="paths",
        RoleArn=ROLE_ARN,
        AppSpecification={"ImageUri": "sagemaker-xgboost:3.0-5", "ContainerEntrypoint": ["python3", "-c", program]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        ProcessingInputs=[
            {
                "InputName": "data",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/in/",
                    "LocalPath": "/opt/ml/processing/input/data",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": "out",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/out/",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
    )

    described = _wait(lambda: client.describe_processing_job(ProcessingJobName="paths"), "ProcessingJobStatus")

    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    copied = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key="out/copy.csv")
    assert copied["Body"].read() == b"a\n1\n"
    assert "HOME 30" in _job_log(runtime, "processing", "paths")  # EROFS
    assert not (Path.home() / "written-by-a-job").exists()


REACHING_INFERENCE = """
import json, socket

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(data, model):
    try:
        socket.create_connection((data["host"], data["port"]), timeout=5).close()
    except OSError as error:
        return {"reached": False, "error": str(error)}
    return {"reached": True}

def output_fn(prediction, accept):
    return json.dumps(prediction)
"""


def _reaching_server(tmp_path: Path, *, isolated: bool) -> ModelServer:
    model_dir = tmp_path / ("isolated" if isolated else "connected") / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text(REACHING_INFERENCE)
    return ModelServer(model_dir, {}, model_dir.parent / "server.log", network_isolation=isolated)


def _reach(server: ModelServer, host: str, port: int) -> dict[str, Any]:
    body, _ = server.invoke(json.dumps({"host": host, "port": port}).encode(), "application/json", None)
    answered: dict[str, Any] = json.loads(body)
    return answered


@needs_sandbox
def test_a_network_isolated_model_server_is_reached_but_reaches_nothing(tmp_path: Path, loopback_listener: int) -> None:
    isolated = _reaching_server(tmp_path, isolated=True)
    connected = _reaching_server(tmp_path, isolated=False)
    try:
        assert isolated.ping()
        out = _reach(isolated, "192.0.2.1", 443)  # TEST-NET-1: nothing leaves a namespace with only loopback
        to_host = _reach(isolated, "127.0.0.1", loopback_listener)
        from_connected = _reach(connected, "127.0.0.1", loopback_listener)
    finally:
        isolated.stop()
        connected.stop()

    assert out == {"reached": False, "error": "[Errno 101] Network is unreachable"}
    assert to_host == {"reached": False, "error": "[Errno 111] Connection refused"}
    assert from_connected == {"reached": True}


# ---------------------------------------------------------------- the fallback where bwrap cannot run


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    """The probe and the once-only message start afresh, and are forgotten again after the test."""
    sandbox.sandbox_support.cache_clear()
    sandbox._warn_fallback_once.cache_clear()
    yield
    sandbox.sandbox_support.cache_clear()
    sandbox._warn_fallback_once.cache_clear()


def _fallback_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if "without a sandbox" in record.getMessage()]


@pytest.mark.parametrize(
    ("bwrap", "named"),
    [(None, "bwrap is not installed"), ("/bin/false", "are user namespaces disabled?")],
    ids=["missing", "cannot-run"],
)
def test_the_fallback_rewrites_paths_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch,
    fresh_probe: None,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    bwrap: str | None,
    named: str,
) -> None:
    monkeypatch.setattr(sandbox, "bwrap_executable", lambda: bwrap)
    caplog.set_level(logging.WARNING, logger=sandbox.__name__)
    program = "import os, sys; print(os.environ['SM_MODEL_DIR'], os.environ['OPT_ML_ROOT'], sys.prefix)"

    outputs = []
    for run in range(2):
        container = ContainerProcess(
            ["python3", "-c", program],
            "/opt/ml/code",
            {"SM_MODEL_DIR": "/opt/ml/model"},
            tmp_path / f"run-{run}.log",
            {"/opt/ml": tmp_path},
        )
        (tmp_path / "code").mkdir(exist_ok=True)
        assert container.run(60) == 0, container.log_lines()
        outputs.append(container.log_lines()[-1])

    assert outputs == [f"{tmp_path}/model {tmp_path} {JOB_VENV}"] * 2
    messages = _fallback_messages(caplog)
    assert len(messages) == 1
    assert named in messages[0]
    assert "EnableNetworkIsolation is NOT enforced" in messages[0]


def test_in_the_fallback_a_job_taking_its_paths_from_its_arguments_still_runs(
    monkeypatch: pytest.MonkeyPatch, fresh_probe: None, runtime: Any, bucket: str
) -> None:
    monkeypatch.setattr(sandbox, "bwrap_executable", lambda: None)
    client = boto3.client("sagemaker", region_name=REGION)
    program = "import pathlib, sys; pathlib.Path(sys.argv[1], 'done.txt').write_text('written')"
    client.create_processing_job(
        ProcessingJobName="fallback",
        RoleArn=ROLE_ARN,
        AppSpecification={
            "ImageUri": "sagemaker-xgboost:3.0-5",
            "ContainerEntrypoint": ["python3", "-c", program],
            "ContainerArguments": ["/opt/ml/processing/output"],
        },
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": "out",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/fallback/",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
    )

    described = _wait(lambda: client.describe_processing_job(ProcessingJobName="fallback"), "ProcessingJobStatus")

    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    written = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key="fallback/done.txt")
    assert written["Body"].read() == b"written"


@needs_sandbox
def test_a_sandboxed_run_says_nothing_about_a_fallback(fresh_probe: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=sandbox.__name__)

    launch = sandbox.container_launch(
        ["true"], "/opt/ml", {}, {"/opt/ml": Path("/nonexistent")}, network_isolation=True
    )

    assert launch.command[0].endswith("bwrap")
    assert "--unshare-net" in launch.command
    assert _fallback_messages(caplog) == []
