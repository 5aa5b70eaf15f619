"""Lambda's python3.11 runtime as this machine can reproduce it: the packages it provides and how it starts a handler.

A built function package (the `sam build` output) is only half of what runs in Lambda: the runtime adds
boto3, botocore and what they need from its own folder, after the package on the path, and sets the
environment (`LAMBDA_TASK_ROOT`, the trace header, the X-Ray daemon address) that Powertools and the
X-Ray SDK read to decide how to start. The `sam-build` check imports every handler this way, so a
package that leans on something only the build machine has fails here rather than in the cloud;
bench/cold_start.py times cold starts the same way.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

# What the python3.11 runtime provides (its /var/runtime); the function builds leave these out.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
# A trace header with the sampling decision Lambda passes when `Tracing: Active` samples the request.
SAMPLED_TRACE_HEADER = "Root=1-6741a2b3-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1"


def runtime_stand_in(folder: Path) -> Path:
    """A folder under `folder` holding only the runtime's packages, linked from this interpreter's installation.

    Links keep the installed bytecode valid (it is checked against the sources' timestamps), as the
    runtime's own packages come compiled.
    """
    runtime = folder / "runtime"
    runtime.mkdir()
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{name} is not installed for {sys.executable}; run `make install`")
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source, target_is_directory=source.is_dir())
    return runtime


def unused_local_port() -> int:
    """A local port nothing listens on, for endpoints that must exist but answer nothing."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def lambda_environment(package: Path, runtime: Path, function_name: str, region: str = "us-east-1") -> dict[str, str]:
    """The variables Lambda sets for a traced function whose code is `package`, with `runtime` as its /var/runtime.

    The X-Ray daemon address is a closed local port: segments go out over UDP as in Lambda, and nobody reads them.
    """
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": f"{package}{os.pathsep}{runtime}",  # the package first, as Lambda orders them
        "PYTHONDONTWRITEBYTECODE": "1",  # the package folder is read-only in Lambda: nothing compiled there is kept
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(package),
        "LAMBDA_RUNTIME_DIR": str(runtime),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "_X_AMZN_TRACE_ID": SAMPLED_TRACE_HEADER,
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{unused_local_port()}",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }


def interpreter() -> list[str]:
    """This Python without its site-packages: only the package and the runtime's folder are importable."""
    return [sys.executable, "-S"]
