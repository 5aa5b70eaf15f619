"""Session-wide environment for every test: quiet SDK warnings and fake AWS credentials so nothing reaches AWS."""

import json
import os

from hypothesis import settings

# Set before any test module imports boto3 or the SageMaker SDK. The credentials are overwritten, not defaulted:
# a developer's real profile must never be used by a test, and moto accepts any key.
_FORCED = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_DEFAULTS = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    "SAM_CLI_TELEMETRY": "0",
}

# The client suite (tests/clients) targets a real deployed stack when AWS_SAM_STACK_NAME is set: only then are the
# caller's own AWS variables kept, under one name that only that suite reads, for the CLI processes it starts.
if os.environ.get("AWS_SAM_STACK_NAME"):
    os.environ["MLOPS_CLIENT_SUITE_AWS_ENVIRONMENT"] = json.dumps(
        {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    )
os.environ.update(_FORCED)
for _name, _value in _DEFAULTS.items():
    os.environ.setdefault(_name, _value)
os.environ.pop("AWS_PROFILE", None)

# CI replays the same examples on every run, so a landing is never decided by a lucky draw; local runs keep
# exploring new ones (a counterexample found there becomes an @example).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# The twin's runtime fixtures (an executing moto with the local integrations installed), for tests/emulator and
# tests/e2e; imported after the environment above is set, as boto3 reads it.
from twin_runtime import bucket, executing_aws, runtime  # noqa: E402, F401
