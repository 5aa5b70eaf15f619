"""`mlops check`: every static check of the project, run in turn, each printing PASS or FAIL with its output.

A check is a function that returns what it wants shown on success and raises `CheckFailed` with the failing
output otherwise. Tools that come with the development environment (cfn-lint, sam, checkov) run from the
folder of the running interpreter, so `mlops check` needs nothing on PATH.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.definition_substitutions import substitute, unfilled
from contract.placeholders import REPRESENTATIVE_PLACEHOLDER_VALUES
from contract.project import PROJECT_ROOT, STATEMACHINES_DIR, TEMPLATE_PATH
from contract.template import TemplateError, function_handlers
from mlops.lambda_runtime import interpreter, lambda_environment, runtime_stand_in

CHECKOV_CHECKS_DIR = Path(__file__).resolve().parent / "checkov_checks"
# Lambda takes zip uploads up to 50 MB; the project's packages must stay far below, fast to deploy and cold-start.
MAX_FUNCTION_PACKAGE_BYTES = 10 * 1024 * 1024
_SUBPROCESS_TIMEOUT_SECONDS = 540


class CheckFailed(Exception):
    """A check found problems; the message is the output to show."""


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: Callable[[], str]


def _tool(name: str) -> Path:
    """An executable of the development environment, next to the running interpreter."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise CheckFailed(f"{name} not found at {path}: install the development environment with `make install`")
    return path


def _run_tool(command: list[str | Path], *, ok_codes: tuple[int, ...] = (0,)) -> str:
    """Runs a tool from the project root; its combined output, or CheckFailed with it on an unexpected exit code."""
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    try:
        completed = subprocess.run(
            [str(part) for part in command],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=_SUBPROCESS_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"{Path(str(command[0])).name} did not finish in {_SUBPROCESS_TIMEOUT_SECONDS} s") from exc
    output = (completed.stdout + completed.stderr).strip()
    if completed.returncode not in ok_codes:
        raise CheckFailed(f"{Path(str(command[0])).name} exited with {completed.returncode}\n{output}")
    return output


def check_cfn_lint() -> str:
    """template.yaml has no cfn-lint errors (warnings are shown, not fatal)."""
    # cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational.
    return _run_tool([_tool("cfn-lint"), TEMPLATE_PATH], ok_codes=(0, 4, 8, 12))


def fill_placeholders(text: str, values: dict[str, str] = REPRESENTATIVE_PLACEHOLDER_VALUES) -> str:
    """`text` with every `${Name}` replaced by its representative value; an unknown name is an error naming it."""
    unknown = unfilled(text, values)
    if unknown:
        raise CheckFailed(
            f"placeholders not in docs/interfaces.md: {', '.join(unknown)}; add them to the contract, to "
            "template.yaml's DefinitionSubstitutions and to REPRESENTATIVE_PLACEHOLDER_VALUES, or stop using them"
        )
    return substitute(text, values)


def asl_problems(definition: dict[str, Any]) -> list[str]:
    """What statelint and cfn-lint's state machine definition rule (E3601) find in one filled definition."""
    from cfnlint.api import ManualArgs, lint
    from statelint.linter import Linter

    problems = [f"statelint: {problem}" for problem in Linter.validate(definition)]
    template = {
        "Resources": {
            "StateMachine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"Definition": definition, "RoleArn": "arn:aws:iam::123456789012:role/states"},
            }
        }
    }
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))
    problems.extend(f"cfn-lint: {match}" for match in matches)
    return problems


def check_asl() -> str:
    """Each statemachines/*.asl.json, placeholders filled with representative values, passes both validators."""
    paths = sorted(STATEMACHINES_DIR.glob("*.asl.json"))
    if not paths:
        raise CheckFailed(f"no *.asl.json in {STATEMACHINES_DIR}: run `mlops export`")
    failures: list[str] = []
    for path in paths:
        try:
            definition = json.loads(fill_placeholders(path.read_text(encoding="utf-8")))
        except CheckFailed as failure:
            failures.append(f"{path.name}: {failure}")
            continue
        except json.JSONDecodeError as exc:
            failures.append(f"{path.name}: not valid JSON once filled: {exc}")
            continue
        failures.extend(f"{path.name}: {problem}" for problem in asl_problems(definition))
    if failures:
        raise CheckFailed("\n".join(failures))
    return f"{len(paths)} definitions valid: {', '.join(path.name for path in paths)}"


def check_asl_policy() -> str:
    """The project's own rules for the state machines (mlops.asl_policy)."""
    from mlops.asl_policy import check_statemachines

    violations = check_statemachines(STATEMACHINES_DIR)
    if violations:
        raise CheckFailed("\n".join(violations))
    return ""


def check_iam_policy() -> str:
    """No Allow statement of the transformed template grants `*` or `service:*`."""
    from mlops.iam_policy import check_template

    grants = check_template(TEMPLATE_PATH)
    if grants:
        raise CheckFailed("\n".join(grants))
    return ""


def check_export_fresh() -> str:
    """statemachines/ is what `mlops export` writes from workflows/ and pipeline.toml today."""
    from workflows.export import export_command

    captured = io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        exit_code = export_command(out_dir=STATEMACHINES_DIR, check=True, config_path=None)
    if exit_code != 0:
        raise CheckFailed(captured.getvalue().strip() or f"mlops export --check exited with {exit_code}")
    return captured.getvalue().strip()


def check_sam_validate() -> str:
    """`sam validate --lint` accepts the template."""
    return _run_tool([_tool("sam"), "validate", "--lint", "--template-file", TEMPLATE_PATH])


def package_sizes(build_dir: Path) -> dict[str, tuple[int, int]]:
    """Function name -> (zipped bytes, unzipped bytes) of each package that `sam build` left in `build_dir`."""
    sizes: dict[str, tuple[int, int]] = {}
    for package in sorted(path for path in build_dir.iterdir() if path.is_dir()):
        files = sorted(path for path in package.rglob("*") if path.is_file())
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
            for path in files:
                zipped.write(path, path.relative_to(package).as_posix())
        sizes[package.name] = (archive.tell(), sum(path.stat().st_size for path in files))
    return sizes


_IMPORT_HANDLER = """
import importlib, sys
module_name, _, function_name = sys.argv[1].rpartition(".")
handler = getattr(importlib.import_module(module_name), function_name, None)
if not callable(handler):
    sys.exit(f"{sys.argv[1]} is not a function")
"""


def handler_import_problems(build_dir: Path, handlers: dict[str, str]) -> dict[str, str]:
    """Logical id -> why, for each function whose package cannot import its handler as Lambda's runtime would.

    The interpreter sees only the package and the runtime's own packages (mlops.lambda_runtime), so a
    dependency the build left out, or one only this machine has, shows here.
    """
    problems = {}
    with tempfile.TemporaryDirectory(prefix="mlops-lambda-runtime-") as scratch:
        runtime = runtime_stand_in(Path(scratch))
        for logical_id, handler in handlers.items():
            package = build_dir / logical_id
            if not package.is_dir():
                problems[logical_id] = f"sam build left no package at {package}"
                continue
            completed = subprocess.run(
                [*interpreter(), "-c", _IMPORT_HANDLER, handler],
                cwd=package,
                env=lambda_environment(package, runtime, logical_id),
                capture_output=True,
                text=True,
                timeout=_SUBPROCESS_TIMEOUT_SECONDS,
                check=False,
            )
            if completed.returncode != 0:
                detail = "\n    ".join((completed.stderr or completed.stdout).strip().splitlines()[-5:])
                problems[logical_id] = f"handler {handler} does not import in Lambda's conditions\n    {detail}"
    return problems


def modules_without_bytecode(package: Path) -> list[str]:
    """Modules of a built package with no bytecode for this Python: Lambda would compile each on every cold start."""
    return sorted(
        source.relative_to(package).as_posix()
        for source in package.rglob("*.py")
        if not Path(importlib.util.cache_from_source(str(source))).is_file()
    )


def check_sam_build() -> str:
    """`sam build` succeeds; every function package zips to under 10 MB, ships bytecode and imports its handler."""
    with tempfile.TemporaryDirectory(prefix="mlops-sam-build-") as scratch:
        build_dir = Path(scratch) / "build"
        _run_tool([_tool("sam"), "build", "--template-file", TEMPLATE_PATH, "--build-dir", build_dir])
        sizes = package_sizes(build_dir)
        problems: dict[str, list[str]] = {name: [] for name in sizes}
        try:
            handlers = function_handlers(TEMPLATE_PATH)
        except TemplateError as error:
            raise CheckFailed(str(error)) from error
        for name, problem in handler_import_problems(build_dir, handlers).items():
            problems.setdefault(name, []).append(problem)
        for name in sizes:
            if missing := modules_without_bytecode(build_dir / name):
                problems[name].append(f"{len(missing)} modules without bytecode, {missing[0]} first")
    if not sizes:
        raise CheckFailed(f"sam build left no function packages in {build_dir}")
    for name, (zipped, _) in sizes.items():
        if zipped >= MAX_FUNCTION_PACKAGE_BYTES:
            problems[name].append(f"over the {MAX_FUNCTION_PACKAGE_BYTES / 1e6:.0f} MB limit")
    lines = []
    for name, found in problems.items():
        zipped, unzipped = sizes.get(name, (0, 0))
        verdict = "; ".join(found) or "ships bytecode, handler imports"
        lines.append(f"{name}: {zipped / 1e6:.2f} MB zipped, {unzipped / 1e6:.2f} MB unzipped, {verdict}")
    if any(problems.values()):
        raise CheckFailed("\n".join(lines))
    return "\n".join(lines)


def unexplained_checkov_skips(template: dict[str, Any]) -> list[str]:
    """Resources whose `Metadata.checkov.skip` entries lack an id or a written reason (`comment`)."""
    problems = []
    for logical_id, resource in template.get("Resources", {}).items():
        skips = ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip") or []
        for entry in skips:
            if not isinstance(entry, dict) or not entry.get("id") or not str(entry.get("comment", "")).strip():
                problems.append(f"{logical_id}: checkov skip {entry!r} needs an id and a comment saying why")
    return problems


def check_checkov() -> str:
    """checkov, with the project's own checks, passes on the template after the SAM transform."""
    from mlops.iam_policy import sam_transformed_template

    template = sam_transformed_template(TEMPLATE_PATH, passthrough_metadata=True)
    unexplained = unexplained_checkov_skips(template)
    if unexplained:
        raise CheckFailed("\n".join(unexplained))
    with tempfile.TemporaryDirectory(prefix="mlops-checkov-") as scratch:
        transformed = Path(scratch) / "template.json"
        transformed.write_text(json.dumps(template, indent=1), encoding="utf-8")
        output = _run_tool(
            [
                _tool("checkov"),
                "--file",
                transformed,
                "--framework",
                "cloudformation",
                "--external-checks-dir",
                CHECKOV_CHECKS_DIR,
                "--skip-download",
                "--compact",
                "--quiet",
            ]
        )
    # The summary line, e.g. "Passed checks: 169, Failed checks: 0, Skipped checks: 20".
    return next((line for line in output.splitlines() if line.startswith("Passed checks")), output)


# The packages and the Python of the framework container the twin stands for (comments there cite the image), and the
# job environment locked from them, which the twin runs every job and model server with.
JOB_CONTAINER_FILE = PROJECT_ROOT / "requirements" / "job-container.txt"
JOB_LOCK_FILE = PROJECT_ROOT / "requirements" / "job.lock"
JOB_PYTHON = PROJECT_ROOT / ".venv-job" / "bin" / "python"
ML_DIR = PROJECT_ROOT / "ml"
_PYTHON_LINE = "# python: "


def requirement_pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file, by normalized name; any other requirement line is an error."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version.strip() or any(mark in version for mark in ";<>=!~ "):
            raise CheckFailed(f"{path.name}:{number}: {raw.strip()!r} is not an exact `name==version` pin")
        pins[name.strip().lower().replace("_", "-").replace(".", "-")] = version.strip()
    return pins


def container_pins(path: Path = JOB_CONTAINER_FILE) -> dict[str, str]:
    """The container's package versions (requirements/job-container.txt)."""
    return requirement_pins(path)


def container_python_version(path: Path = JOB_CONTAINER_FILE) -> str:
    """The container's Python version, from job-container.txt's `# python: X.Y` line."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(_PYTHON_LINE):
            return line.removeprefix(_PYTHON_LINE).strip()
    raise CheckFailed(f"{path.name} has no {_PYTHON_LINE.strip()!r} line naming the container's Python")


def job_environment_differences(
    expected: dict[str, str],
    actual: dict[str, str],
    expected_name: str = "the container",
    actual_name: str = "job.lock",
) -> list[str]:
    """Where `actual`'s versions (job.lock's pins) and `expected`'s (the container's) differ, one line each."""
    problems = [
        f"{name}: {actual_name} has {actual[name]}, {expected_name} has {version}"
        for name, version in sorted(expected.items())
        if name in actual and actual[name] != version
    ]
    problems += [
        f"{name}: {expected_name} has {expected[name]}, {actual_name} lacks it"
        for name in sorted(expected.keys() - actual.keys())
    ]
    problems += [
        f"{name}=={actual[name]}: in {actual_name}, not in {expected_name}"
        for name in sorted(actual.keys() - expected.keys())
    ]
    return problems


def installed_packages(python: Path) -> dict[str, str]:
    """The distributions installed for `python`, by normalized name."""
    listing = _run_tool(
        [python, "-c", "import importlib.metadata as m; [print(d.name, d.version) for d in m.distributions()]"]
    )
    return {
        name.lower().replace("_", "-").replace(".", "-"): version
        for name, version in (line.split(" ", 1) for line in listing.splitlines() if line.strip())
    }


def check_job_environment() -> str:
    """requirements/job.lock pins exactly the container's packages, and .venv-job holds exactly job.lock."""
    container = container_pins()
    lock = requirement_pins(JOB_LOCK_FILE)
    problems = job_environment_differences(container, lock)
    if problems:
        raise CheckFailed(
            "the job environment differs from the container it stands for:\n"
            + "\n".join(problems)
            + "\nfix requirements/job-container.txt (citing the image) and run `make lock`"
        )
    if not JOB_PYTHON.is_file():
        raise CheckFailed(f"the job environment {JOB_PYTHON.parent.parent} is not installed: run `make install`")
    installed = job_environment_differences(lock, installed_packages(JOB_PYTHON), "job.lock", "the installed .venv-job")
    if installed:
        raise CheckFailed(
            "the installed job environment is not job.lock:\n" + "\n".join(installed) + "\nrun `make install`"
        )
    return f"{len(container)} packages, as in the container, installed as locked"


def ml_python_problems(ml_dir: Path, python_version: str, python_executable: Path) -> str:
    """mypy on `ml_dir` as the container's Python sees it (its syntax, its standard library, the job environment's
    packages); empty when clean. typeshed knows in which version each name of the standard library appeared, so
    `typing.Self` fails for 3.10 as `except*` does."""
    from mypy import api

    with tempfile.TemporaryDirectory() as cache:
        stdout, stderr, status = api.run(
            [
                "--python-version",
                python_version,
                "--python-executable",
                str(python_executable),
                "--cache-dir",
                cache,
                "--no-error-summary",
                str(ml_dir),
            ]
        )
    return "" if status == 0 else (stdout + stderr).strip()


def check_ml_python() -> str:
    """ml/ type-checks as the container's Python (job-container.txt's version) with the job environment's packages."""
    version = container_python_version()
    if not JOB_PYTHON.is_file():
        raise CheckFailed(f"the job environment {JOB_PYTHON.parent.parent} is not installed: run `make install`")
    problems = ml_python_problems(ML_DIR, version, JOB_PYTHON)
    if problems:
        raise CheckFailed(f"ml/ does not suit the container's Python {version}:\n{problems}")
    return f"ml/ suits Python {version}"


CHECKS: tuple[Check, ...] = (
    Check("cfn-lint", "template.yaml has no cfn-lint errors", check_cfn_lint),
    Check("asl", "statemachines/*.asl.json pass statelint and cfn-lint's definition rule", check_asl),
    Check("asl-policy", "state machines follow the project's rules (mlops.asl_policy)", check_asl_policy),
    Check("iam-policy", "no policy statement allows * or service:*", check_iam_policy),
    Check("export-fresh", "statemachines/ matches what `mlops export` writes", check_export_fresh),
    Check("sam-validate", "sam validate --lint", check_sam_validate),
    Check(
        "sam-build",
        "sam build succeeds; each function package is under 10 MB, ships bytecode, imports its handler",
        check_sam_build,
    ),
    Check("checkov", "checkov and the project's checks on the transformed template", check_checkov),
    Check("job-environment", "requirements/job.lock pins exactly the container's packages", check_job_environment),
    Check("ml-python", "ml/ type-checks as the container's Python, with the job environment", check_ml_python),
)


def run_check(check: Check) -> bool:
    """Runs one check and prints its verdict; True when it passed."""
    started = time.perf_counter()
    try:
        output = check.run()
    except CheckFailed as failure:
        print(f"FAIL {check.name} ({time.perf_counter() - started:.1f} s)\n{_indent(str(failure))}", flush=True)
        return False
    except Exception:  # a crashing check is a failing check, and must not hide the checks after it
        print(
            f"FAIL {check.name} ({time.perf_counter() - started:.1f} s)\n{_indent(traceback.format_exc())}", flush=True
        )
        return False
    print(f"PASS {check.name} ({time.perf_counter() - started:.1f} s)", flush=True)
    if output:
        print(_indent(output), flush=True)
    return True


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.strip().splitlines())


def _quiet_library_loggers() -> None:
    """The CLI logs at INFO; cfn-lint's API then narrates each scan and samtranslator warns about its own metrics."""
    logging.getLogger("cfnlint").setLevel(logging.WARNING)
    logging.getLogger("samtranslator").setLevel(logging.ERROR)


def check_command(only: list[str], list_only: bool) -> int:
    """Runs every check, or those named in `only`; 0 when all pass, 1 when any fails, 2 for an unknown name."""
    _quiet_library_loggers()
    if list_only:
        for check in CHECKS:
            print(f"{check.name:<16} {check.description}")
        return 0
    known = {check.name for check in CHECKS}
    unknown = [name for name in only if name not in known]
    if unknown:
        print(
            f"unknown check(s): {', '.join(unknown)}; known checks: {', '.join(c.name for c in CHECKS)}",
            file=sys.stderr,
        )
        return 2
    selected = [check for check in CHECKS if not only or check.name in only]
    failed = [check.name for check in selected if not run_check(check)]
    if failed:
        print(f"{len(failed)} of {len(selected)} checks failed: {', '.join(failed)}")
        return 1
    print(f"all {len(selected)} checks passed")
    return 0
