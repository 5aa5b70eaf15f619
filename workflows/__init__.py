"""Step Functions state machines authored with the Data Science SDK and exported to statemachines/."""

import logging
import os

# Set before any module here imports sagemaker: its v2 deprecation banner, its per-session INFO lines about
# config files it did not find, and its per-region INFO line about instance types are noise for an export.
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
logging.getLogger("sagemaker.image_uris").setLevel(logging.WARNING)
