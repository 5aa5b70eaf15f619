"""Commands built on the local twin: `mlops run` (lifecycle), `mlops invoke`, the report, datasets, the console."""
