"""Where the project's shared files are: the root, the template, the exported state machines and their image table."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
STATEMACHINES_DIR = PROJECT_ROOT / "statemachines"
# What SageMaker runs (script mode): the twin runs these files as jobs and reads their data checks.
ML_DIR = PROJECT_ROOT / "ml"
# The ML code publisher (a Lambda function: it imports nothing of the project) holds the one rule of which files an
# archive of a code folder takes; the twin loads it from this file to build its Lambda zips the same way.
ML_CODE_PUBLISHER_MODULE = PROJECT_ROOT / "functions" / "ml_code_publisher" / "publisher.py"
# Written by `mlops export` next to the ASL, read by the ML code publisher and the twin: the framework image URI of
# every supported region.
IMAGE_URIS_FILE = "image-uris.json"
