"""Processing job: compare one window of endpoint data capture with the model's baseline for data quality and drift.

Reads the baseline (`baseline.csv`: a header naming the features in payload order, then the reference rows;
`baseline.json`: each feature's type and range and the critical features) from --baseline-dir and every `*.jsonl`
capture file under --capture-dir (SageMaker's data capture format, one JSON object per line; `CSV`, `JSON` and
`BASE64` encodings of `text/csv` and `application/json` payloads), and writes `monitoring_report.json` to
--output-dir. Drift follows Evidently's DataDriftPreset defaults (test per column type and reference size, its
thresholds, dataset drift when the drifted share reaches --drift-share), plus dataset drift when a critical feature
drifts. A malformed capture line is counted and reported, not fatal; a window without rows is "no_data". Exit code 1
and `ERROR: ...` on stderr only for a missing or bad baseline or a bad argument: drift is a result, not a failure.
The report's schema is in docs/interfaces.md.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlcore import MlInputError, fail_processing_job, write_json
from scipy import stats
from scipy.spatial import distance

REPORT_FILE_NAME = "monitoring_report.json"
REPORT_VERSION = 1
BASELINE_SAMPLE_FILE = "baseline.csv"
BASELINE_STATISTICS_FILE = "baseline.json"
BASELINE_FORMAT_VERSION = 1
NUMERICAL = "numerical"
CATEGORICAL = "categorical"
FEATURE_TYPES = (NUMERICAL, CATEGORICAL)

# Evidently's DataDriftPreset defaults (evidently 0.7, legacy/calculations/stattests): the reference size up to
# which the small-sample tests are used, the unique-value count up to which a numeric column is tested as
# categorical, and each test's default threshold.
SMALL_REFERENCE_MAX_ROWS = 1000
FEW_UNIQUE_VALUES = 5
DEFAULT_THRESHOLDS = {"ks": 0.05, "chisquare": 0.05, "z": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1}
# p-value tests drift below their threshold, distances at or above it; KS drifts at p <= threshold (Evidently's
# comparison for it), chi-squared and Z at p < threshold.
P_VALUE_TESTS = ("ks", "chisquare", "z")
DEFAULT_DRIFT_SHARE = 0.5
# Fewer non-missing current values than this and a feature's test is "insufficient_data", not run.
DEFAULT_MIN_RECORDS = 30
# Capture lines parsed per batch: bounds the memory of the text being parsed, whatever the window's size.
DEFAULT_CHUNK_LINES = 20000
# Malformed capture lines quoted in the report, with file and line number; the rest are only counted.
REJECTION_EXAMPLES = 5
CSV_CONTENT_TYPE = "text/csv"
JSON_CONTENT_TYPE = "application/json"
CAPTURE_ENCODINGS = ("CSV", "JSON", "BASE64")
QUALITY_CHECKS = ("missing_columns", "extra_columns", "missing_values", "non_numeric_values", "out_of_range_values")
_EXAMPLES_SHOWN = 3


class Baseline:
    """The reference the window is compared with: feature order, types, ranges, critical features, sample."""

    def __init__(
        self,
        names: list[str],
        types: list[str],
        minimums: np.ndarray,
        maximums: np.ndarray,
        categories: list[np.ndarray | None],
        critical: list[str],
        sample: np.ndarray,
    ) -> None:
        self.names = names
        self.types = types
        self.minimums = minimums
        self.maximums = maximums
        self.categories = categories
        self.critical = critical
        self.sample = sample

    @property
    def width(self) -> int:
        return len(self.names)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The job's arguments; paths default to the processing container's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-dir", type=Path, default=Path("/opt/ml/processing/input/baseline"))
    parser.add_argument("--capture-dir", type=Path, default=Path("/opt/ml/processing/input/capture"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output"))
    parser.add_argument(
        "--drift-share",
        type=float,
        default=DEFAULT_DRIFT_SHARE,
        help="dataset drift when at least this share of tested features drifted (Evidently's drift_share)",
    )
    parser.add_argument(
        "--min-records",
        type=int,
        default=DEFAULT_MIN_RECORDS,
        help="fewest non-missing current values a feature's drift test needs",
    )
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="TEST=VALUE",
        help=f"override a test's threshold; tests: {', '.join(DEFAULT_THRESHOLDS)} (repeatable)",
    )
    parser.add_argument("--chunk-lines", type=int, default=DEFAULT_CHUNK_LINES, help="capture lines parsed at once")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Runs the job; returns the process exit code."""
    args = parse_args(argv)
    try:
        settings = check_settings(args.drift_share, args.min_records, args.threshold, args.chunk_lines)
        baseline = load_baseline(args.baseline_dir)
        files = find_capture_files(args.capture_dir)
        report = analyze(baseline, files, **settings)
    except MlInputError as error:
        return fail_processing_job(error)
    write_json(args.output_dir / REPORT_FILE_NAME, report)
    _print_summary(report, args.output_dir / REPORT_FILE_NAME)
    return 0


def check_settings(
    drift_share: float, min_records: int, threshold_overrides: list[str], chunk_lines: int
) -> dict[str, Any]:
    """The analysis settings from the arguments; fails on a share outside (0, 1], a bad count or test name."""
    if not 0 < drift_share <= 1:
        raise MlInputError(f"--drift-share {drift_share} must be above 0 and at most 1.")
    if min_records < 1:
        raise MlInputError(f"--min-records {min_records} must be at least 1.")
    if chunk_lines < 1:
        raise MlInputError(f"--chunk-lines {chunk_lines} must be at least 1.")
    thresholds = dict(DEFAULT_THRESHOLDS)
    for override in threshold_overrides:
        test, _, value = override.partition("=")
        if test not in thresholds:
            raise MlInputError(
                f"--threshold {override!r} names no test: use TEST=VALUE with TEST one of {', '.join(thresholds)}."
            )
        try:
            thresholds[test] = float(value)
        except ValueError:
            raise MlInputError(f"--threshold {override!r}: {value!r} is not a number.") from None
    return {
        "drift_share": drift_share,
        "min_records": min_records,
        "thresholds": thresholds,
        "chunk_lines": chunk_lines,
    }


# --- the baseline ---


def baseline_statistics(
    reference: pd.DataFrame, categorical_features: list[str], critical_features: list[str]
) -> dict[str, Any]:
    """The `baseline.json` document for a reference sample (features only, in payload order).

    Numerical features record their range, categorical ones (numeric codes) their categories; what the training job
    writes next to `baseline.csv`, and what `load_baseline` checks.
    """
    unknown = sorted(set(categorical_features) - set(reference.columns)) + sorted(
        set(critical_features) - set(reference.columns)
    )
    if unknown:
        raise MlInputError(f"features {unknown} are not columns of the reference sample: name its columns.")
    features = []
    for name in reference.columns:
        values = pd.to_numeric(reference[name], errors="raise").to_numpy(dtype=np.float32)
        finite = values[np.isfinite(values)]
        if not len(finite):
            raise MlInputError(f"reference feature {name!r} has no values: a baseline needs values of every feature.")
        if name in categorical_features:
            features.append({"name": str(name), "type": CATEGORICAL, "categories": np.unique(finite).tolist()})
        else:
            features.append(
                {"name": str(name), "type": NUMERICAL, "min": float(finite.min()), "max": float(finite.max())}
            )
    return {
        "format_version": BASELINE_FORMAT_VERSION,
        "features": features,
        "critical_features": [str(name) for name in critical_features],
    }


def write_baseline(directory: Path, reference: pd.DataFrame, statistics: dict[str, Any]) -> None:
    """Writes `baseline.csv` (header, reference rows) and `baseline.json` into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    reference.to_csv(directory / BASELINE_SAMPLE_FILE, index=False)
    write_json(directory / BASELINE_STATISTICS_FILE, statistics)


def load_baseline(directory: Path) -> Baseline:
    """The baseline in `directory`; fails with what to fix when a file is missing or the two files disagree."""
    sample_path, statistics_path = directory / BASELINE_SAMPLE_FILE, directory / BASELINE_STATISTICS_FILE
    for path in (sample_path, statistics_path):
        if not path.is_file():
            raise MlInputError(
                f"{path} does not exist: stage the model package's baseline ({BASELINE_SAMPLE_FILE} and "
                f"{BASELINE_STATISTICS_FILE}) in {directory}."
            )
    try:
        statistics = json.loads(statistics_path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise MlInputError(f"{statistics_path} is not valid JSON: {error}.") from None
    features = statistics.get("features") if isinstance(statistics, dict) else None
    if statistics.get("format_version") != BASELINE_FORMAT_VERSION or not isinstance(features, list) or not features:
        raise MlInputError(
            f"{statistics_path} is not a baseline of format_version {BASELINE_FORMAT_VERSION} with a non-empty "
            '"features" list: write it with monitor.baseline_statistics.'
        )
    names: list[str] = []
    types: list[str] = []
    minimums: list[float] = []
    maximums: list[float] = []
    categories: list[np.ndarray | None] = []
    for index, feature in enumerate(features):
        name, kind = _feature_entry(feature, index, statistics_path)
        names.append(name)
        types.append(kind)
        if kind == NUMERICAL:
            low, high = _number(feature.get("min"), name, "min"), _number(feature.get("max"), name, "max")
            if low > high:
                raise MlInputError(f"{statistics_path}: feature {name!r} has min {low} above max {high}.")
            minimums.append(low)
            maximums.append(high)
            categories.append(None)
        else:
            values = feature.get("categories")
            if not isinstance(values, list) or not values:
                raise MlInputError(
                    f"{statistics_path}: categorical feature {name!r} needs a non-empty categories list."
                )
            minimums.append(math.nan)
            maximums.append(math.nan)
            categories.append(np.array([_number(value, name, "categories") for value in values], dtype=np.float32))
    critical = statistics.get("critical_features", [])
    if not isinstance(critical, list) or sorted(set(critical) - set(names)):
        raise MlInputError(
            f"{statistics_path}: critical_features {critical!r} must be a list of feature names from its features."
        )
    sample = _read_reference_sample(sample_path, names)
    return Baseline(
        names,
        types,
        np.array(minimums, dtype=np.float32),
        np.array(maximums, dtype=np.float32),
        categories,
        [str(name) for name in critical],
        sample,
    )


def _feature_entry(feature: Any, index: int, path: Path) -> tuple[str, str]:
    if not isinstance(feature, dict) or not isinstance(feature.get("name"), str):
        raise MlInputError(f'{path}: features[{index}] needs a string "name".')
    if feature.get("type") not in FEATURE_TYPES:
        raise MlInputError(
            f"{path}: feature {feature['name']!r} has type {feature.get('type')!r}; use one of {list(FEATURE_TYPES)}."
        )
    return feature["name"], feature["type"]


def _number(value: Any, feature: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MlInputError(f"baseline feature {feature!r}: {field} {value!r} is not a finite number.")
    return float(value)


def _read_reference_sample(path: Path, names: list[str]) -> np.ndarray:
    frame = pd.read_csv(path)
    header = [str(name) for name in frame.columns]
    if header != names:
        raise MlInputError(
            f"{path} has the columns {header} but {BASELINE_STATISTICS_FILE} lists {names}: both must name the "
            "payload's features in payload order."
        )
    if frame.empty:
        raise MlInputError(f"{path} has a header but no reference rows.")
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    bad = [name for name in names if (numeric[name].isna() & frame[name].notna()).any()]
    if bad:
        raise MlInputError(f"{path} has non-numeric values in {bad}: the reference sample holds payload numbers.")
    empty = [name for name in names if not np.isfinite(numeric[name].to_numpy(dtype=float)).any()]
    if empty:
        raise MlInputError(f"{path} has no values for {empty}: every feature needs reference values.")
    return numeric.to_numpy(dtype=np.float32)


# --- capture files ---


def find_capture_files(directory: Path) -> list[Path]:
    """Every `*.jsonl` under `directory` (the window's yyyy/mm/dd/hh folders), in a stable order; none is no data."""
    if not directory.is_dir():
        raise MlInputError(
            f"capture directory {directory} does not exist: stage the window's capture files there "
            "(an empty folder is a window without data)."
        )
    return sorted(path for path in directory.rglob("*.jsonl") if path.is_file())


class CaptureWindow:
    """What the capture files of a window held, accumulated chunk by chunk."""

    def __init__(self, baseline: Baseline) -> None:
        self.baseline = baseline
        self.blocks: list[np.ndarray] = []
        self.records_read = 0
        self.rejections: dict[str, int] = {}
        self.rejection_examples: list[dict[str, Any]] = []
        self.rows_read = 0
        self.findings = dict.fromkeys(QUALITY_CHECKS, 0)
        width = baseline.width
        self.per_feature = {
            check: np.zeros(width, dtype=np.int64)
            for check in ("missing_values", "non_numeric_values", "out_of_range_values")
        }
        self.first_time: str | None = None
        self.last_time: str | None = None

    def reject(self, path: Path, line_number: int, reason: str) -> None:
        self.rejections[reason] = self.rejections.get(reason, 0) + 1
        if len(self.rejection_examples) < REJECTION_EXAMPLES:
            self.rejection_examples.append({"file": str(path), "line": line_number, "reason": reason})

    def add_block(self, block: np.ndarray, non_numeric: np.ndarray) -> None:
        """Checks a parsed block of rows (float32, NaN where missing or not a number) and keeps it for the tests."""
        if not len(block):
            return
        baseline = self.baseline
        missing = np.isnan(block)
        self.per_feature["missing_values"] += missing.sum(axis=0) - non_numeric
        self.per_feature["non_numeric_values"] += non_numeric
        outside = np.zeros(baseline.width, dtype=np.int64)
        numeric_columns = [index for index, kind in enumerate(baseline.types) if kind == NUMERICAL]
        if numeric_columns:
            values = block[:, numeric_columns]
            with np.errstate(invalid="ignore"):
                beyond = (values < baseline.minimums[numeric_columns]) | (values > baseline.maximums[numeric_columns])
            outside[numeric_columns] = beyond.sum(axis=0)
        for index, known in enumerate(baseline.categories):
            if known is not None:
                column = block[:, index]
                outside[index] = int((~np.isin(column, known) & ~np.isnan(column)).sum())
        self.per_feature["out_of_range_values"] += outside
        self.blocks.append(block)

    def column(self, index: int) -> np.ndarray:
        """The window's finite values of one feature, in capture order."""
        if not self.blocks:
            return np.empty(0, dtype=np.float32)
        values = np.concatenate([block[:, index] for block in self.blocks])
        return values[np.isfinite(values)]


def read_window(baseline: Baseline, files: list[Path], chunk_lines: int = DEFAULT_CHUNK_LINES) -> CaptureWindow:
    """Parses every capture line of `files` in chunks of `chunk_lines`, keeping only the parsed feature values."""
    window = CaptureWindow(baseline)
    for path in files:
        for chunk in _line_chunks(path, chunk_lines):
            _parse_chunk(window, path, chunk)
    return window


def _line_chunks(path: Path, chunk_lines: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            chunk.append((line_number, line))
            if len(chunk) >= chunk_lines:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _parse_chunk(window: CaptureWindow, path: Path, chunk: list[tuple[int, bytes]]) -> None:
    csv_payloads: list[str] = []
    json_rows: list[Any] = []
    for line_number, line in chunk:
        window.records_read += 1
        try:
            content_type, text, inference_time = _capture_payload(line)
        except _MalformedRecord as malformed:
            window.reject(path, line_number, str(malformed))
            continue
        if content_type == CSV_CONTENT_TYPE:
            csv_payloads.append(text)
        else:
            try:
                json_rows.extend(_json_payload_rows(text))
            except _MalformedRecord as malformed:
                window.reject(path, line_number, str(malformed))
                continue
        if inference_time is not None:
            if window.first_time is None or inference_time < window.first_time:
                window.first_time = inference_time
            if window.last_time is None or inference_time > window.last_time:
                window.last_time = inference_time
    if csv_payloads:
        _add_csv_rows(window, csv_payloads)
    if json_rows:
        _add_json_rows(window, json_rows)


class _MalformedRecord(ValueError):
    """A capture line that cannot be read; its message is the reason counted in the report."""


def _capture_payload(line: bytes) -> tuple[str, str, str | None]:
    """The endpoint input's media type and text, and the inference time, of one capture line."""
    try:
        # Decoding first spares json.loads detecting the encoding of every line; a bad byte is this line's fault.
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise _MalformedRecord("not UTF-8 text") from None
    except ValueError:
        raise _MalformedRecord("not a JSON object") from None
    try:
        endpoint_input = record["captureData"]["endpointInput"]
        encoding = endpoint_input["encoding"]
        data = endpoint_input["data"]
        observed = endpoint_input["observedContentType"]
    except (KeyError, TypeError):
        raise _MalformedRecord("no captureData.endpointInput with observedContentType, encoding and data") from None
    if not isinstance(data, str) or not isinstance(observed, str):
        raise _MalformedRecord("captureData.endpointInput data or observedContentType is not a string")
    content_type = observed.split(";", 1)[0].strip().lower()
    if content_type not in (CSV_CONTENT_TYPE, JSON_CONTENT_TYPE):
        raise _MalformedRecord(f"unsupported observedContentType (not {CSV_CONTENT_TYPE} or {JSON_CONTENT_TYPE})")
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise _MalformedRecord("BASE64 data that does not decode to UTF-8 text") from None
    elif encoding not in CAPTURE_ENCODINGS:
        raise _MalformedRecord(f"unknown encoding (not one of {', '.join(CAPTURE_ENCODINGS)})")
    metadata = record.get("eventMetadata")
    inference_time = metadata.get("inferenceTime") if isinstance(metadata, dict) else None
    return content_type, data, inference_time if isinstance(inference_time, str) else None


def _json_payload_rows(text: str) -> list[Any]:
    # The endpoint's JSON request: {"instances": [[...], ...]} or a bare list of rows (ml/inference.py).
    try:
        document = json.loads(text)
    except ValueError:
        raise _MalformedRecord("application/json payload that is not valid JSON") from None
    rows = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _MalformedRecord('application/json payload that is not {"instances": [[...]]} or a list of rows')
    return rows


def _add_csv_rows(window: CaptureWindow, payloads: list[str]) -> None:
    width = window.baseline.width
    rows = [row for row in "\n".join(payloads).splitlines() if row.strip()]
    window.rows_read += len(rows)
    commas = width - 1
    # A row's width is its comma count plus one: payload cells are numbers, never quoted text with commas.
    fitting, fewer, more = [], 0, 0
    for row in rows:
        count = row.count(",")
        if count == commas:
            fitting.append(row)
        elif count < commas:
            fewer += 1
        else:
            more += 1
    window.findings["missing_columns"] += fewer
    window.findings["extra_columns"] += more
    if not fitting:
        return
    text = "\n".join(fitting)
    try:
        block = pd.read_csv(io.StringIO(text), header=None, dtype=np.float32, skip_blank_lines=False).to_numpy()
        non_numeric = np.zeros(width, dtype=np.int64)
    except ValueError:
        # Some cell is not a number: read as text, count the cells that are neither empty nor numbers.
        raw = pd.read_csv(io.StringIO(text), header=None, dtype=str, skip_blank_lines=False)
        stripped = raw.apply(lambda column: column.str.strip())
        numeric = stripped.apply(pd.to_numeric, errors="coerce")
        non_numeric = (numeric.isna() & stripped.notna() & (stripped != "")).sum().to_numpy(dtype=np.int64)
        block = numeric.to_numpy(dtype=np.float32)
    window.add_block(np.ascontiguousarray(block, dtype=np.float32), non_numeric)


def _add_json_rows(window: CaptureWindow, rows: list[Any]) -> None:
    width = window.baseline.width
    window.rows_read += len(rows)
    fitting = [row for row in rows if len(row) == width]
    window.findings["missing_columns"] += sum(1 for row in rows if len(row) < width)
    window.findings["extra_columns"] += sum(1 for row in rows if len(row) > width)
    block = np.empty((len(fitting), width), dtype=np.float32)
    non_numeric = np.zeros(width, dtype=np.int64)
    for row_index, row in enumerate(fitting):
        for column, value in enumerate(row):
            if value is None:
                block[row_index, column] = np.nan
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                block[row_index, column] = np.nan
                non_numeric[column] += 1
            else:
                block[row_index, column] = value
    window.add_block(block, non_numeric)


# --- the drift tests (Evidently's DataDriftPreset defaults, on finite values only) ---


def choose_test(reference: np.ndarray, current: np.ndarray, feature_type: str) -> str:
    """The test Evidently's `_get_default_stattest` picks for the column's type, sizes and unique values."""
    if len(reference) <= SMALL_REFERENCE_MAX_ROWS:
        if feature_type == NUMERICAL:
            n_values = _unique_count_up_to(reference, current, FEW_UNIQUE_VALUES + 1)
            if n_values > FEW_UNIQUE_VALUES:
                return "ks"
            return "chisquare" if n_values > 2 else "z"
        return "chisquare" if _unique_count_up_to(reference, current, 3) > 2 else "z"
    if feature_type == NUMERICAL and _unique_count_up_to(reference, current, FEW_UNIQUE_VALUES + 1) > FEW_UNIQUE_VALUES:
        return "wasserstein"
    return "jensenshannon"


def _unique_count_up_to(reference: np.ndarray, current: np.ndarray, limit: int) -> int:
    """The number of distinct values of both samples together, exact below `limit` (cheap when the reference has
    that many on its own, which spares sorting a large current sample)."""
    known = np.unique(reference)
    if len(known) >= limit:
        return len(known)
    new = current[~np.isin(current, known)]
    return len(known) + len(np.unique(new))


def run_test(test: str, reference: np.ndarray, current: np.ndarray) -> float:
    """The test's score: a p-value for ks, chisquare and z, a distance for wasserstein and jensenshannon."""
    reference64, current64 = reference.astype(np.float64), current.astype(np.float64)
    if test == "ks":
        return float(stats.ks_2samp(reference64, current64)[1])
    if test == "wasserstein":
        norm = max(float(np.std(reference64)), 0.001)
        return float(stats.wasserstein_distance(reference64, current64) / norm)
    keys, reference_counts, current_counts = _category_counts(reference64, current64)
    if test == "chisquare":
        expected = reference_counts * (len(current64) / len(reference64))
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(stats.chisquare(current_counts, expected)[1])
    if test == "z":
        if len(keys) == 1:
            return 1.0
        # Evidently's two-proportion Z test: the share of values other than the smallest key in each sample.
        n1, n2 = len(reference64), len(current64)
        p1 = (n1 - reference_counts[0]) / n1
        p2 = (n2 - current_counts[0]) / n2
        pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
        with np.errstate(divide="ignore", invalid="ignore"):
            z_stat = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
        return float(2 * (1 - stats.norm.cdf(np.abs(z_stat))))
    if test == "jensenshannon":
        return float(distance.jensenshannon(reference_counts / len(reference64), current_counts / len(current64)))
    raise MlInputError(f"unknown drift test {test!r}")


def _category_counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys = np.union1d(np.unique(reference), np.unique(current))
    return keys, _counts_of(reference, keys), _counts_of(current, keys)


def _counts_of(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    found, counts = np.unique(values, return_counts=True)
    result = np.zeros(len(keys), dtype=np.float64)
    result[np.searchsorted(keys, found)] = counts
    return result


def is_drifted(test: str, score: float, threshold: float) -> bool:
    """Evidently's verdict: KS at p <= threshold, chi-squared and Z at p < threshold, distances at >= threshold."""
    if test == "ks":
        return score <= threshold
    if test in P_VALUE_TESTS:
        return score < threshold
    return score >= threshold


# --- the report ---


def analyze(
    baseline: Baseline,
    files: list[Path],
    drift_share: float = DEFAULT_DRIFT_SHARE,
    min_records: int = DEFAULT_MIN_RECORDS,
    thresholds: dict[str, float] | None = None,
    chunk_lines: int = DEFAULT_CHUNK_LINES,
) -> dict[str, Any]:
    """The monitoring report of docs/interfaces.md for the capture `files` of one window."""
    thresholds = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    window = read_window(baseline, files, chunk_lines)
    rows_analyzed = sum(len(block) for block in window.blocks)
    features = []
    if rows_analyzed:
        for index, name in enumerate(baseline.names):
            reference = baseline.sample[:, index]
            reference = reference[np.isfinite(reference)]
            current = window.column(index)
            test = choose_test(reference, current, baseline.types[index]) if len(current) else None
            entry: dict[str, Any] = {
                "name": name,
                "type": baseline.types[index],
                "test": test,
                "threshold": thresholds[test] if test else None,
                "reference_size": len(reference),
                "current_size": len(current),
                "score": None,
                "drifted": False,
                "status": "insufficient_data",
            }
            if test is not None and len(current) >= min_records:
                score = run_test(test, reference, current)
                entry.update(score=score if math.isfinite(score) else None, status="tested")
                entry["drifted"] = bool(is_drifted(test, score, thresholds[test]))
            features.append(entry)
    tested = [entry for entry in features if entry["status"] == "tested"]
    drifted = [entry["name"] for entry in tested if entry["drifted"]]
    critical_drifted = [name for name in drifted if name in baseline.critical]
    drifted_share = len(drifted) / len(tested) if tested else None
    if not rows_analyzed:
        status = "no_data"
    elif not tested:
        status = "insufficient_data"
    else:
        status = "ok"
    share_reached = drifted_share is not None and drifted_share >= drift_share
    dataset_drift = bool(tested) and (share_reached or bool(critical_drifted))
    findings = dict(window.findings)
    for check, counts in window.per_feature.items():
        findings[check] = int(counts.sum())
    return {
        "report_version": REPORT_VERSION,
        "status": status,
        "dataset_drift": bool(dataset_drift),
        "drifted_share": drifted_share,
        "drift_share_threshold": drift_share,
        "features_tested": len(tested),
        "drifted_features": drifted,
        "critical_features": list(baseline.critical),
        "critical_features_drifted": critical_drifted,
        "features": features,
        "data_quality": {
            "findings": findings,
            "per_feature": {
                name: {check: int(counts[index]) for check, counts in window.per_feature.items()}
                for index, name in enumerate(baseline.names)
            },
        },
        "records": {
            "files": len(files),
            "read": window.records_read,
            "rejected": sum(window.rejections.values()),
            "rejections": dict(sorted(window.rejections.items())),
            "rejection_examples": window.rejection_examples,
        },
        "rows": {"read": window.rows_read, "analyzed": rows_analyzed},
        "window": {"first_inference_time": window.first_time, "last_inference_time": window.last_time},
        "settings": {"min_records": min_records, "drift_share": drift_share, "thresholds": thresholds},
    }


def _print_summary(report: dict[str, Any], path: Path) -> None:
    records, rows = report["records"], report["rows"]
    print(
        f"capture records read: {records['read']} in {records['files']} file(s), rejected: {records['rejected']}; "
        f"rows analyzed: {rows['analyzed']} of {rows['read']}"
    )
    if report["status"] == "ok":
        print(
            f"drifted features: {len(report['drifted_features'])} of {report['features_tested']} tested "
            f"(share {report['drifted_share']:.3f}, threshold {report['drift_share_threshold']}); "
            f"critical drifted: {report['critical_features_drifted']}; dataset drift: {report['dataset_drift']}"
        )
    else:
        print(f"status: {report['status']} (no drift verdict)")
    found = {check: count for check, count in report["data_quality"]["findings"].items() if count}
    print(f"data-quality findings: {found or 'none'}")
    print(f"report written to {path}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
