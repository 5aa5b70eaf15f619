"""Benchmark: a newcomer's first minutes, from a fresh clone to `make run`'s first prediction.

Clones this repository's committed HEAD into a temporary directory (uncommitted changes are not in it), runs
`make run` there as a newcomer would (no `.venv`, no virtualenv active, the Makefile bootstraps uv with pip) and
times, from the start of `make run`:
- set-up: until make starts `mlops run` (venv, uv, run.lock, the project), in two parts: until make stamps uv as
  installed (the venv and pip installing uv), then until it stamps the run venv as installed (uv installing the job
  environment, run.lock, datasets.lock and the project);
- first prediction: until the lifecycle prints the first held-out row's prediction (`query_endpoint` in the
  emulator's lifecycle prints `  row 1: score=... predicted=...`);
- end: until `make run` exits.
Warm by default: uv's and pip's package caches as they are on this machine, so run it once first on a new machine,
and so is the twin's own cache (MLOPS_CACHE_DIR, else ~/.cache/mlops: accepted definitions, region lists and
botocore's parsed data, written by any earlier twin of the same versions). `--empty-twin-cache` points
MLOPS_CACHE_DIR at an empty temporary directory (the packages stay warm); `--cold` empties all three caches: every
package is downloaded again and the twin parses everything afresh.

Target: the first prediction within 30 s, warm (exit status 1 when missed or when `make run` fails). Timings on
a shared machine move with its load: the script prints the load average beside them, and the CPU seconds of the
whole `make run`, which move much less.

Run: python bench/first_prediction.py [--cold | --empty-twin-cache] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 30.0
# make echoes each command before running it: this one ends the set-up.
RUN_COMMAND = re.compile(r"^\S*\.venv/bin/mlops run$")
# ...and these two, which make echoes as it stamps uv and then the run venv as installed, split it in two.
UV_STAMPED = re.compile(r"^touch \S*\.uv-\S+$")
RUN_VENV_STAMPED = re.compile(r"^touch \S*\.installed-run$")
FIRST_PREDICTION = re.compile(r"^\s+row 1: score=\S+ predicted=")
# A make started by `make bench` must not inherit that make's flags and variables: it stands for a newcomer's.
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def newcomer_environment(scratch: Path, cold: bool, empty_twin_cache: bool = False) -> dict[str, str]:
    """This environment minus any active virtualenv and make's own variables; empty package caches when cold, and
    an empty twin cache when cold or asked for."""
    environ = {key: value for key, value in os.environ.items() if key not in MAKE_VARIABLES}
    virtualenv = environ.pop("VIRTUAL_ENV", None)
    if virtualenv:
        venv_bin = str(Path(virtualenv) / "bin")
        environ["PATH"] = os.pathsep.join(p for p in environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    if cold:
        for variable, name in (("UV_CACHE_DIR", "uv-cache"), ("PIP_CACHE_DIR", "pip-cache")):
            (scratch / name).mkdir()
            environ[variable] = str(scratch / name)
    if cold or empty_twin_cache:
        (scratch / "twin-cache").mkdir()
        environ["MLOPS_CACHE_DIR"] = str(scratch / "twin-cache")
    return environ


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def run(cold: bool, keep: bool, empty_twin_cache: bool = False) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="mlops-first-prediction-"))
    clone = scratch / "clone"
    try:
        started = time.monotonic()
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        cloned = time.monotonic() - started
        environ = newcomer_environment(scratch, cold, empty_twin_cache)
        load_before = load_average()
        output: list[str] = []
        set_up = first_prediction = uv_stamped = run_venv_stamped = None
        started = time.monotonic()
        cpu_before = _children_cpu_seconds()
        with subprocess.Popen(
            ["make", "run"],
            cwd=clone,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as make:
            assert make.stdout is not None
            for line in make.stdout:
                output.append(line)
                elapsed = time.monotonic() - started
                if uv_stamped is None and UV_STAMPED.match(line.strip()):
                    uv_stamped = elapsed
                if run_venv_stamped is None and RUN_VENV_STAMPED.match(line.strip()):
                    run_venv_stamped = elapsed
                if set_up is None and RUN_COMMAND.match(line.strip()):
                    set_up = elapsed
                if first_prediction is None and FIRST_PREDICTION.match(line):
                    first_prediction = elapsed
        ended = time.monotonic() - started
        cpu = _children_cpu_seconds() - cpu_before
        caches = (
            "empty package and twin caches (--cold)"
            if cold
            else "this machine's package caches (warm) and an empty twin cache (--empty-twin-cache)"
            if empty_twin_cache
            else "this machine's package and twin caches (warm)"
        )
        print(f"fresh clone of {ROOT} at HEAD, `make run` with {caches}; load average before: {load_before}")
        print(f"  git clone:        {cloned:6.1f} s (not counted below)")
        print(f"  set-up:           {_seconds(set_up)}  (venv, uv, requirements/run.lock, the project)")
        print(f"    uv installed:   {_seconds(uv_stamped)}  (the venv, pip installing uv)")
        locks = None if uv_stamped is None or run_venv_stamped is None else run_venv_stamped - uv_stamped
        print(f"    locks:          {_seconds(locks)}  (uv: the job environment, run.lock, datasets.lock, the project)")
        print(f"  first prediction: {_seconds(first_prediction)}")
        print(f"  end of make run:  {ended:6.1f} s, {cpu:.1f} s of CPU (every process make run waited for)")
        if make.returncode != 0 or first_prediction is None:
            print(f"`make run` exited with {make.returncode}; its last lines:", file=sys.stderr)
            sys.stderr.writelines(output[-30:])
            return 1
        if cold:
            return 0
        verdict = "met" if first_prediction <= TARGET_SECONDS else "MISSED"
        print(f"target: first prediction within {TARGET_SECONDS:.0f} s with a warm cache: {verdict}")
        return 0 if first_prediction <= TARGET_SECONDS else 1
    finally:
        if keep:
            print(f"kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _seconds(value: float | None) -> str:
    return "   never" if value is None else f"{value:6.1f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    caches = parser.add_mutually_exclusive_group()
    caches.add_argument("--cold", action="store_true", help="empty uv, pip and twin caches: download every package")
    caches.add_argument(
        "--empty-twin-cache", action="store_true", help="an empty MLOPS_CACHE_DIR, the package caches warm"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone (its .venv and run output)")
    arguments = parser.parse_args()
    return run(arguments.cold, arguments.keep, arguments.empty_twin_cache)


if __name__ == "__main__":
    sys.exit(main())
