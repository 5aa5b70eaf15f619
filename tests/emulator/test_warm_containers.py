"""Warm containers: a job started in one sees what a cold start shows it, and only jobs that cannot tell take one."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.sagemaker_local import sandbox
from emulator.sagemaker_local.containers import CONTAINER_ROOT, ContainerProcess, container_environment
from emulator.sagemaker_local.model_server import CONTAINER_MODEL_DIR, ModelServer, server_environment
from emulator.sagemaker_local.warm_containers import ENABLE_VARIABLE, ContainerKind, WarmContainerPool, read_at_start

pytestmark = pytest.mark.skipif(
    not sandbox.sandbox_support().available,
    reason=f"warm containers need the sandbox: {sandbox.sandbox_support().reason}",
)

# What a script can see of how it was started, printed on stdout and stderr (the job's log holds both).
PROBE = """
import json, os, sys
print("to stderr", file=sys.stderr, flush=True)
seen = {
    "argv": sys.argv,
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "file": __file__,
    "name": __name__,
    "main_is_this_script": sys.modules["__main__"].__dict__ is globals(),
    "stdin": sys.stdin.read(),
    "environment": dict(os.environ),
    "hash_seed_fixed": sys.flags.hash_randomization == 0,
    "executable": sys.executable,
}
print("SEEN " + json.dumps(seen, sort_keys=True), flush=True)
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""

FAILING = """
def train():
    raise ValueError("the label column is missing")

train()
"""

OPENS_A_SOCKET = """
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
    print("CONNECTED")
except OSError as error:
    print("REFUSED", type(error).__name__)
"""

JOB_VARIABLES = {"SM_MODEL_DIR": "/opt/ml/model", "TRAINING_JOB_NAME": "probe", "PROBE_EXIT": "3"}


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[WarmContainerPool]:
    warm = WarmContainerPool(tmp_path)
    yield warm
    warm.close()


def _job_root(tmp_path: Path, name: str, script: str) -> Path:
    root = tmp_path / "training" / name
    (root / "code").mkdir(parents=True)
    (root / "code" / "job.py").write_text(script)
    (root / "input" / "data" / "train").mkdir(parents=True)
    (root / "input" / "data" / "train" / "rows.csv").write_text("x,y\n1,0\n")
    return root


def _run(
    tmp_path: Path,
    name: str,
    script: str,
    pool: WarmContainerPool | None,
    variables: dict[str, str] | None = None,
    arguments: tuple[str, ...] = ("--epochs", "2"),
    network_isolation: bool = False,
) -> tuple[int, list[str], ContainerProcess]:
    root = _job_root(tmp_path, name, script)
    container = ContainerProcess(
        ["python3", "job.py", *arguments],
        f"{CONTAINER_ROOT}/code",
        JOB_VARIABLES if variables is None else variables,
        root / "logs" / "training.log",
        {CONTAINER_ROOT: root},
        network_isolation=network_isolation,
        warm_pool=pool,
    )
    exit_code = container.run(max_runtime_seconds=120)
    return exit_code, container.log_lines(), container


def _plain_job(root: Path, pool: WarmContainerPool) -> ContainerProcess:
    """`python3 job.py` in `root`'s code folder, with no variables of its own."""
    return ContainerProcess(
        ["python3", "job.py"],
        "/opt/ml/code",
        {},
        root / "logs" / "training.log",
        {CONTAINER_ROOT: root},
        warm_pool=pool,
    )


def _prepared(pool: WarmContainerPool, variables: dict[str, str], *, network_isolation: bool = False) -> None:
    pool.prepare([CONTAINER_ROOT], network_isolation, container_environment(variables))
    assert pool.wait_until_started(60), "the warm container did not start"
    assert len(pool.idle_kinds()) == 1


def _seen(log_lines: list[str]) -> dict:
    return json.loads(next(line for line in log_lines if line.startswith("SEEN "))[len("SEEN ") :])


def test_a_job_started_warm_sees_what_a_cold_start_shows_it(pool, tmp_path):
    cold_code, cold_log, _ = _run(tmp_path / "cold", "probe", PROBE, None)
    _prepared(pool, JOB_VARIABLES)

    warm_code, warm_log, _ = _run(tmp_path / "warm", "probe", PROBE, pool)

    assert pool.taken == 1, "the job did not start in the warm container"
    assert (warm_code, cold_code) == (3, 3)
    assert "to stderr" in warm_log
    assert "to stderr" in cold_log
    warm, cold = _seen(warm_log), _seen(cold_log)
    assert warm["argv"] == cold["argv"] == ["job.py", "--epochs", "2"]
    assert warm["cwd"] == cold["cwd"] == "/opt/ml/code"
    assert warm["path0"] == cold["path0"] == "/opt/ml/code"
    assert warm["file"] == cold["file"] == "/opt/ml/code/job.py"
    assert warm["name"] == cold["name"] == "__main__"
    assert warm["main_is_this_script"]
    assert cold["main_is_this_script"]
    assert warm["stdin"] == cold["stdin"] == ""
    assert warm["environment"] == cold["environment"]
    assert warm["hash_seed_fixed"] == cold["hash_seed_fixed"]
    assert warm["executable"] == cold["executable"]


def test_the_job_reads_and_writes_its_own_folder_at_its_path_after_a_warm_start(pool, tmp_path):
    script = (
        "import os, shutil\n"
        "shutil.copy('/opt/ml/input/data/train/rows.csv', '/opt/ml/model/copied.csv')\n"
        "print('listing', sorted(os.listdir('/opt/ml')))\n"
    )
    _prepared(pool, {})
    root = _job_root(tmp_path, "paths", script)
    (root / "model").mkdir()
    container = _plain_job(root, pool)

    assert container.run(120) == 0, container.log_lines()
    assert pool.taken == 1
    assert (root / "model" / "copied.csv").read_text() == "x,y\n1,0\n"
    assert "listing ['code', 'input', 'logs', 'model']" in container.log_lines()


# The shape of the stack's processing entrypoints (workflows/processing_jobs.py) and of the SDK's FrameworkProcessor.
SHELL_ENTRYPOINT = 'cd /opt/ml/code && exec python3 job.py "$@"'


def _run_shell(tmp_path: Path, name: str, script: str, pool: WarmContainerPool | None, shell: str) -> tuple:
    root = _job_root(tmp_path, name, script)
    container = ContainerProcess(
        ["/bin/sh", "-c", shell, "sh", "--epochs", "2"],
        CONTAINER_ROOT,
        JOB_VARIABLES,
        root / "logs" / "processing.log",
        {CONTAINER_ROOT: root},
        warm_pool=pool,
    )
    return container.run(max_runtime_seconds=120), container.log_lines()


def test_a_shell_entrypoint_that_starts_python3_gets_the_warm_interpreter_and_the_same_view(pool, tmp_path):
    cold_code, cold_log = _run_shell(tmp_path / "cold", "probe", PROBE, None, SHELL_ENTRYPOINT)
    _prepared(pool, JOB_VARIABLES)

    warm_code, warm_log = _run_shell(tmp_path / "warm", "probe", PROBE, pool, SHELL_ENTRYPOINT)

    assert pool.taken == 1
    assert warm_code == cold_code == 3
    warm, cold = _seen(warm_log), _seen(cold_log)
    assert warm["argv"] == cold["argv"] == ["job.py", "--epochs", "2"]
    assert warm["environment"] == cold["environment"], "PATH and the warm server's socket are the job's again"
    for same in ("cwd", "path0", "file", "name", "stdin", "executable"):
        assert warm[same] == cold[same]


def test_a_shell_entrypoint_keeps_its_own_exit_status_and_runs_python3_more_than_once(pool, tmp_path):
    shell = (
        "cd /opt/ml/code && python3 job.py first; echo first=$?; "
        "python3 -c 'import sys; print(\"inline\", sys.argv[1:])' x; tar -xzf missing.tar.gz; echo tar=$?; exit 7"
    )
    cold_code, cold_log = _run_shell(
        tmp_path / "cold", "twice", "import sys; print('ran', sys.argv[1:])\n", None, shell
    )
    _prepared(pool, JOB_VARIABLES)

    warm_code, warm_log = _run_shell(
        tmp_path / "warm", "twice", "import sys; print('ran', sys.argv[1:])\n", pool, shell
    )

    assert pool.taken == 1
    assert warm_code == cold_code == 7
    assert warm_log == cold_log
    assert warm_log[:3] == ["ran ['first']", "first=0", "inline ['x']"]


def test_an_uncaught_exception_fails_a_warm_job_as_it_fails_a_cold_one(pool, tmp_path):
    cold_code, cold_log, _ = _run(tmp_path / "cold", "failing", FAILING, None)
    _prepared(pool, JOB_VARIABLES)

    warm_code, warm_log, _ = _run(tmp_path / "warm", "failing", FAILING, pool)

    assert pool.taken == 1
    assert warm_code == cold_code == 1
    assert warm_log == cold_log
    assert warm_log[-1] == "ValueError: the label column is missing"
    assert not any("warm_boot" in line or "runpy" in line for line in warm_log)


def test_network_isolation_holds_in_a_warm_container(pool, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = str(listener.getsockname()[1])
        _prepared(pool, {}, network_isolation=True)
        _, isolated_log, _ = _run(tmp_path / "isolated", "net", OPENS_A_SOCKET, pool, {}, (port,), True)
        _, open_log, _ = _run(tmp_path / "open", "net", OPENS_A_SOCKET, pool, {}, (port,), False)

    assert pool.taken == 1, "only the isolated job found a warm container of its kind"
    assert isolated_log[-1].startswith("REFUSED")
    assert open_log[-1] == "CONNECTED"


def test_a_job_whose_start_up_variables_differ_starts_cold_and_its_kind_is_prepared(pool, tmp_path):
    _prepared(pool, {"OMP_NUM_THREADS": "2"})

    code, log, _ = _run(tmp_path, "threads", PROBE, pool, {**JOB_VARIABLES, "OMP_NUM_THREADS": "1"})

    assert code == 3
    assert _seen(log)["environment"]["OMP_NUM_THREADS"] == "1"
    assert pool.taken == 0
    assert pool.wait_until_started(60)
    assert ("OMP_NUM_THREADS", "1") in {item for kind in pool.idle_kinds() for item in kind.start_environment}


def test_variables_a_job_sets_for_its_script_do_not_decide_the_kind():
    base = container_environment({})
    assert ContainerKind.of(["/opt/ml"], True, {**base, "SM_HPS": "{}", "BIAS_CONFIG": "{}"}) == ContainerKind.of(
        ["/opt/ml"], True, base
    )
    for read_as_python_starts in ("PYTHONHASHSEED", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LC_ALL", "PATH"):
        assert read_at_start(read_as_python_starts)
    assert not read_at_start("SM_CHANNEL_TRAIN")


def test_a_folder_outside_the_twins_work_directory_is_never_moved(tmp_path):
    owner = tmp_path / "twin"
    owner.mkdir()
    warm = WarmContainerPool(owner)
    try:
        warm.prepare([CONTAINER_ROOT], False, container_environment({}))
        assert warm.wait_until_started(60)
        outside = tmp_path / "users-folder"
        (outside / "code").mkdir(parents=True)
        (outside / "code" / "job.py").write_text("print('ran')\n")

        claimed = warm.claim(["python3", "job.py"], {CONTAINER_ROOT: outside}, False, container_environment({}))

        assert claimed is None
        assert (outside / "code" / "job.py").read_text() == "print('ran')\n"
        assert len(warm.idle_kinds()) == 1, "the idle container is kept for a job it may take"
    finally:
        warm.close()


def test_commands_other_than_an_interpreter_and_a_script_start_cold(pool, tmp_path):
    _prepared(pool, {})
    root = tmp_path / "shell"
    root.mkdir()
    for command in (["/bin/sh", "-c", "echo shell"], ["python3", "-c", "print('inline')"], ["python3"]):
        assert pool.claim(command, {CONTAINER_ROOT: root}, False, container_environment({})) is None
    assert pool.taken == 0


def test_stopping_a_warm_job_kills_it(pool, tmp_path):
    _prepared(pool, {})
    root = _job_root(tmp_path, "sleeper", "import time\nprint('started', flush=True)\ntime.sleep(120)\n")
    container = _plain_job(root, pool)
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(container.run(300)))
    runner.start()
    deadline = time.monotonic() + 60
    while "started" not in container.log_lines() and time.monotonic() < deadline:
        time.sleep(0.05)

    container.kill()
    runner.join(30)

    assert pool.taken == 1
    assert result
    assert result[0] < 0


def test_closing_the_pool_ends_its_idle_containers(tmp_path):
    warm = WarmContainerPool(tmp_path)
    warm.prepare([CONTAINER_ROOT], False, container_environment({}))
    assert warm.wait_until_started(60)
    processes = [container.process for container in warm._idle]

    warm.close()

    assert processes
    assert all(process.poll() is not None for process in processes)
    assert not (tmp_path / "warm-containers").exists()


def test_no_warm_container_when_switched_off(monkeypatch, pool, tmp_path):
    monkeypatch.setenv(ENABLE_VARIABLE, "0")

    pool.prepare([CONTAINER_ROOT], False, container_environment({}))
    code, log, _ = _run(tmp_path, "off", PROBE, pool)

    assert code == 3
    assert _seen(log)["argv"] == ["job.py", "--epochs", "2"]
    assert pool.idle_kinds() == []
    assert pool.taken == 0


INFERENCE = """
import json

def model_fn(model_dir):
    with open(model_dir + "/weights.json") as weights:
        return json.load(weights)

def predict_fn(data, model):
    return {"scale": model["scale"], "doubled": [model["scale"] * float(value) for value in data.decode().split(",")]}

def output_fn(prediction, accept):
    return json.dumps(prediction)
"""


def test_a_model_server_started_warm_answers_like_a_cold_one(pool, tmp_path):
    def model_dir(name: str) -> Path:
        folder = tmp_path / "endpoints" / name / "model"
        (folder / "code").mkdir(parents=True)
        (folder / "code" / "inference.py").write_text(INFERENCE)
        (folder / "weights.json").write_text(json.dumps({"scale": 2}))
        return folder

    environment = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
    cold = ModelServer(model_dir("cold"), environment, tmp_path / "cold.log", network_isolation=True)
    try:
        cold_answer = cold.invoke(b"1,2", "text/csv", "application/json")
    finally:
        cold.stop()
    pool.prepare([CONTAINER_MODEL_DIR], True, server_environment({}))
    assert pool.wait_until_started(60)

    warm = ModelServer(model_dir("warm"), environment, tmp_path / "warm.log", network_isolation=True, warm_pool=pool)
    try:
        warm_answer = warm.invoke(b"1,2", "text/csv", "application/json")
    finally:
        warm.stop()

    assert pool.taken == 1
    assert warm_answer == cold_answer
    assert json.loads(warm_answer[0]) == {"scale": 2, "doubled": [2.0, 4.0]}
    assert os.path.exists(tmp_path / "endpoints" / "warm" / "model" / "weights.json")


def test_a_job_that_took_a_warm_container_asks_for_its_replacement_once_it_has_ended(pool, tmp_path):
    _prepared(pool, JOB_VARIABLES)
    kind = pool.idle_kinds()[0]
    root = _job_root(tmp_path, "replaced", "import sys\nprint('idle kinds while running:', sys.argv[1])\n")
    container = ContainerProcess(
        ["python3", "job.py", "x"],
        "/opt/ml/code",
        JOB_VARIABLES,
        root / "logs" / "training.log",
        {CONTAINER_ROOT: root},
        warm_pool=pool,
    )
    taken_before_the_job_ends: list[list[ContainerKind]] = []
    original_replenish = pool.replenish

    def replenish(*arguments, **keywords):
        taken_before_the_job_ends.append(pool.idle_kinds())
        original_replenish(*arguments, **keywords)

    pool.replenish = replenish  # type: ignore[method-assign]

    assert container.run(120) == 0

    assert pool.taken == 1
    assert taken_before_the_job_ends == [[]], "no replacement was started while the job ran"
    assert pool.wait_until_started(60)
    assert pool.idle_kinds() == [kind]
