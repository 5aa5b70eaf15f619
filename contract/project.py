"""Where the project's shared files are: the root, the template, the exported state machines and their image table."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
STATEMACHINES_DIR = PROJECT_ROOT / "statemachines"
# What SageMaker runs (script mode): the twin runs these files as jobs and reads their data checks.
ML_DIR = PROJECT_ROOT / "ml"
# Written by `mlops export` next to the ASL, read by the ML code publisher and the twin: the framework image URI of
# every supported region.
IMAGE_URIS_FILE = "image-uris.json"
