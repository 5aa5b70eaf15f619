"""Benchmark: ml/monitor.py over 10k, 100k and 1M captured records of 30 features, against a bare pandas + KS pass.

For each size, in a temporary folder:
1. A baseline of 1000 reference rows (so every feature gets Evidently's small-sample test, two-sample KS, the same
   test the bare pass runs) and that many capture records, one request of one CSV row each, in SageMaker's data
   capture format (CSV encoding), 50,000 records to a file under an hour folder, drawn from the reference's
   distributions.
2. The analyzer: `monitor.analyze` of the whole window in a child process, timed inside the child from reading the
   baseline to the finished report (interpreter start and imports excluded: a constant, not a cost per record).
   Its peak memory is resource.getrusage(RUSAGE_CHILDREN).ru_maxrss read by a bare launcher process that starts it:
   Linux carries a process's peak RSS across exec, and a child forked straight from this process would start with
   this process's (the generated data's and the bare pass's) memory as its peak.
3. The bare pass, in this process: `pandas.read_json(lines=True)` of each file, the payloads joined and read with
   `pandas.read_csv` as float32, and `scipy.stats.ks_2samp` of each feature against the reference.
Prints time per record at each size, its ratio 1M/10k (target <= 1.3), the analyzer/bare ratio at the largest size
(target <= 1.5) and the analyzer's peak memory at the largest size (target < 1 GiB); exits 1 when one is missed.

Run: .venv/bin/python bench/monitor_scale.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
ML_DIR = ROOT / "ml"
FEATURES = 30
REFERENCE_ROWS = 1000
RECORDS_PER_FILE = 50_000
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
TARGET_FLATNESS = 1.3
TARGET_BARE_RATIO = 1.5
TARGET_PEAK_BYTES = 1 << 30
CHILD_TIMEOUT_SECONDS = 900


def make_window(directory: Path, records: int, seed: int) -> tuple[Path, Path, np.ndarray]:
    """The baseline folder, the capture folder and the reference rows (float32) of one benchmark size."""
    sys.path.insert(0, str(ML_DIR))
    try:
        import monitor
    finally:
        sys.path.remove(str(ML_DIR))
    rng = np.random.default_rng(seed)
    means, scales = rng.uniform(-5, 50, FEATURES), rng.uniform(0.5, 10, FEATURES)
    names = [f"f{index:02d}" for index in range(FEATURES)]
    reference = pd.DataFrame(np.round(rng.normal(means, scales, (REFERENCE_ROWS, FEATURES)), 4), columns=names)
    baseline_dir = directory / "baseline"
    monitor.write_baseline(baseline_dir, reference, monitor.baseline_statistics(reference, [], names[:3]))
    capture_dir = directory / "capture"
    hour = capture_dir / "endpoint" / "AllTraffic" / "2026" / "12" / "01" / "09"
    hour.mkdir(parents=True)
    prefix = '{"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "'
    middle = (
        '", "encoding": "CSV"}, "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", '
        '"data": "0.5,1", "encoding": "CSV"}}, "eventMetadata": {"eventId": "'
    )
    suffix = '", "inferenceTime": "2026-12-01T09:30:00Z"}, "eventVersion": "0"}\n'
    for file_index, start in enumerate(range(0, records, RECORDS_PER_FILE)):
        count = min(RECORDS_PER_FILE, records - start)
        rows = pd.DataFrame(np.round(rng.normal(means, scales, (count, FEATURES)), 4))
        payloads = rows.to_csv(header=False, index=False).splitlines()
        with (hour / f"capture-{file_index:04d}.jsonl").open("w") as handle:
            handle.writelines(
                f"{prefix}{payload}{middle}{start + offset}{suffix}" for offset, payload in enumerate(payloads)
            )
    return baseline_dir, capture_dir, reference.to_numpy(dtype=np.float32)


# Starts its arguments as a child and prints the child's output, then the child's exit code and peak RSS in KiB.
# It imports only the standard library, so the peak the analyzer inherits across exec is this small process's.
LAUNCHER = (
    "import json, resource, subprocess, sys\n"
    "child = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(child.stderr)\n"
    "print(child.stdout.strip())\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(json.dumps({'returncode': child.returncode, 'peak_kib': peak}))\n"
)


def run_analyzer(baseline_dir: Path, capture_dir: Path) -> dict[str, Any]:
    """The analyzer in a child process: its own timing of the analysis, what the report found, its peak memory."""
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            sys.executable,
            __file__,
            "--child-analyze",
            str(baseline_dir),
            str(capture_dir),
        ],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
        check=False,
    )
    lines = process.stdout.strip().splitlines()
    launched = json.loads(lines[-1]) if process.returncode == 0 and lines else {"returncode": process.returncode}
    if launched["returncode"] != 0:
        raise SystemExit(f"the analyzer child failed: {process.stderr.strip()}")
    result: dict[str, Any] = json.loads(lines[-2])
    result["peak_bytes"] = launched["peak_kib"] * 1024
    return result


def child_analyze(baseline_dir: Path, capture_dir: Path) -> None:
    sys.path.insert(0, str(ML_DIR))
    import monitor

    started = time.perf_counter()
    report = monitor.analyze(monitor.load_baseline(baseline_dir), monitor.find_capture_files(capture_dir))
    seconds = time.perf_counter() - started
    summary = {
        "seconds": seconds,
        "status": report["status"],
        "rows": report["rows"]["analyzed"],
        "tests": sorted({entry["test"] for entry in report["features"]}),
        "drifted_share": report["drifted_share"],
    }
    print(json.dumps(summary))


def run_bare(capture_dir: Path, reference: np.ndarray) -> float:
    """Seconds of the bare pass: pandas reads the capture files and the payloads, scipy runs KS per feature."""
    started = time.perf_counter()
    payloads: list[str] = []
    for path in sorted(capture_dir.rglob("*.jsonl")):
        records = pd.read_json(path, lines=True)
        payloads.extend(records["captureData"].map(lambda capture: capture["endpointInput"]["data"]))
    table = pd.read_csv(io.StringIO("\n".join(payloads)), header=None, dtype=np.float32).to_numpy()
    del payloads
    for column in range(table.shape[1]):
        stats.ks_2samp(reference[:, column].astype(np.float64), table[:, column].astype(np.float64))
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(size) for size in DEFAULT_SIZES))
    parser.add_argument("--child-analyze", nargs=2, type=Path, metavar=("BASELINE_DIR", "CAPTURE_DIR"))
    args = parser.parse_args(argv)
    if args.child_analyze:
        child_analyze(*args.child_analyze)
        return 0
    sizes = sorted(int(size) for size in args.sizes.split(","))
    results = []
    print(f"{'records':>9} {'analyzer s':>10} {'us/record':>9} {'bare s':>7} {'ratio':>6}  report")
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
            baseline_dir, capture_dir, reference = make_window(Path(tmp), size, seed=size)
            analyzer = run_analyzer(baseline_dir, capture_dir)
            peak_bytes = analyzer["peak_bytes"]
            bare_seconds = run_bare(capture_dir, reference)
        if analyzer["rows"] != size or analyzer["tests"] != ["ks"]:
            print(f"the analyzer read {analyzer['rows']} rows with tests {analyzer['tests']}, expected {size} and ks")
            return 1
        per_record = analyzer["seconds"] / size
        ratio = analyzer["seconds"] / bare_seconds
        results.append({"size": size, "per_record": per_record, "ratio": ratio, "peak_bytes": peak_bytes})
        print(
            f"{size:>9} {analyzer['seconds']:>10.2f} {1e6 * per_record:>9.2f} {bare_seconds:>7.2f} {ratio:>6.2f}  "
            f"{analyzer['status']}, drifted share {analyzer['drifted_share']:.3f}, peak {peak_bytes / 2**20:.0f} MiB",
            flush=True,
        )
    smallest, largest = results[0], results[-1]
    flatness = largest["per_record"] / smallest["per_record"]
    checks = [
        (
            f"time per record {largest['size']}/{smallest['size']}",
            flatness,
            TARGET_FLATNESS,
            flatness <= TARGET_FLATNESS,
        ),
        (
            f"analyzer/bare at {largest['size']}",
            largest["ratio"],
            TARGET_BARE_RATIO,
            largest["ratio"] <= TARGET_BARE_RATIO,
        ),
    ]
    peak_mib = largest["peak_bytes"] / 2**20
    checks.append(
        (
            f"peak MiB at {largest['size']}",
            peak_mib,
            TARGET_PEAK_BYTES / 2**20,
            largest["peak_bytes"] < TARGET_PEAK_BYTES,
        )
    )
    for name, value, target, met in checks:
        print(f"{name}: {value:.2f} ({'meets' if met else 'misses'} the target {target:g})")
    return 0 if all(met for *_, met in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
