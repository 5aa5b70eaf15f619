"""The lineage in `mlops run`'s summary and HTML report: the registered package's verified manifest.

Read while the twin is up (`read_lineage`, called where the run describes the registered package), through the
same verified reader as `mlops lineage` (contract/lineage_manifest.py): a manifest whose SHA-256 does not match
the package's is shown as that error, never as lineage.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from contract.lineage_manifest import ManifestUnavailableError, read_verified_manifest


def read_lineage(s3_client: Any, model_package: Mapping[str, Any]) -> dict[str, Any]:
    """`{"manifest": location, "lineage": manifest}`, or `{"error": why}` when it cannot be shown."""
    try:
        manifest, location = read_verified_manifest(s3_client, model_package)
    except ManifestUnavailableError as error:
        return {"error": str(error)}
    return {"manifest": location, "lineage": manifest}


def lineage_summary_lines(lineage: Mapping[str, Any]) -> list[str]:
    """The summary's lines: the manifest, then one line per part of the lineage."""
    if "error" in lineage:
        return [f"lineage: NOT SHOWN: {lineage['error']}"]
    return [f"lineage: {lineage['manifest']['uri']} (sha256 {lineage['manifest']['sha256']}, verified)"] + [
        f"  {name}: {value}" for name, value in _rows(lineage["lineage"])
    ]


def render_lineage_manifest_section(lineage: Mapping[str, Any]) -> str:
    if "error" in lineage:
        return f"<section><h2>Lineage manifest</h2><p class='failure'>{_e(lineage['error'])}</p></section>"
    location = lineage["manifest"]
    rows = [("manifest", location["uri"]), ("manifest sha256", f"{location['sha256']} (verified)")]
    rows += _rows(lineage["lineage"])
    body = "".join(f"<tr><td>{_e(name)}</td><td><code>{_e(value)}</code></td></tr>" for name, value in rows)
    return f"<section><h2>Lineage manifest</h2><table>{body}</table></section>"


def _rows(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    data = manifest.get("data") or {}
    count = len(data.get("objects", []))
    objects = f"{count} object{'' if count == 1 else 's'}{', pinned' if data.get('pinned') else ''}"
    rows = [("data", f"{data.get('data_uri')} -> {data.get('snapshot_uri')} ({objects})")]
    rows += [
        (f"  {item['key']}", f"version {item['version_id']} sha256 {item['sha256']}")
        for item in data.get("objects", [])
    ]
    code = manifest.get("code") or {}
    rows.append(("code", f"sourcedir sha256 {code.get('sourcedir_sha256')}, commit {code.get('source_commit')}"))
    image = manifest.get("image") or {}
    rows.append(
        ("image", f"{image.get('uri')} ({image.get('digest') or 'no digest: ' + str(image.get('digest_unavailable'))})")
    )
    preprocessing = manifest.get("preprocessing") or {}
    rows.append(("preprocessing", f"{preprocessing.get('job_name')}, seed {preprocessing.get('seed')}"))
    training = manifest.get("training") or {}
    parameters = ", ".join(f"{k}={v}" for k, v in sorted((training.get("hyperparameters") or {}).items()))
    rows.append(("training", f"{training.get('job_name')}: {parameters}"))
    evaluation = manifest.get("evaluation") or {}
    rows.append(("evaluation", f"{evaluation.get('report_uri')} sha256 {evaluation.get('report_sha256')}"))
    rows += [(f"baseline {name}", str(uri)) for name, uri in sorted((manifest.get("drift_baseline") or {}).items())]
    trigger = manifest.get("trigger") or {}
    detail = json.dumps(trigger["detail"], sort_keys=True) if trigger.get("detail") else ""
    rows.append(("trigger", f"{trigger.get('type')} {detail}".strip()))
    rows.append(("execution", str((manifest.get("execution") or {}).get("arn"))))
    return rows


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
