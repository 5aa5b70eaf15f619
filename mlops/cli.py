"""`mlops`: export the state machines, run every check, run the lifecycle on the local twin, serve the twin."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from contract.project import PROJECT_ROOT
from emulator.commands.datasets import BUNDLED_DATASETS
from emulator.commands.drift_summary import DEFAULT_SHIFT
from mlops.stack_target import add_stack_name_argument


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    export = sub.add_parser("export", help="write statemachines/*.asl.json from workflows/")
    export.add_argument("--check", action="store_true", help="fail, naming the file, when a committed file is stale")
    export.add_argument("--out", type=Path, default=PROJECT_ROOT / "statemachines", help="output folder")
    export.add_argument("--config", type=Path, default=None, help="pipeline config (default: pipeline.toml)")

    check = sub.add_parser("check", help="run every static check (lint, ASL, SAM, checkov, policies)")
    check.add_argument("--only", action="append", default=[], help="run only the named check (repeatable)")
    check.add_argument("--list", action="store_true", help="list the checks and exit")

    run = sub.add_parser("run", help="run the whole lifecycle on the local twin")
    run.add_argument(
        "--data", type=Path, default=None, help="CSV with a header (default: scikit-learn's breast cancer)"
    )
    run.add_argument(
        "--dataset",
        choices=sorted(BUNDLED_DATASETS),
        default=None,
        help="a bundled data set instead of --data: "
        + "; ".join(f"{name}: {d.description}" for name, d in BUNDLED_DATASETS.items()),
    )
    run.add_argument("--label-column", default=None, help="label column of --data (default: from pipeline.toml)")
    run.add_argument("--tune", action="store_true", help="run the hyperparameter tuning branch")
    run.add_argument("--report", type=Path, default=PROJECT_ROOT / "out" / "report.html", help="HTML report path")
    run.add_argument("--work-dir", type=Path, default=None, help="where jobs keep their files (default: a temp dir)")
    run.add_argument(
        "--drift",
        action="store_true",
        help="after the lifecycle, show the drift loop: traffic, monitoring, alarm, retraining, redeploy",
    )
    run.add_argument(
        "--shift",
        default=None,
        metavar="SPEC",
        help=f"--drift: how the drifted traffic is shifted, comma-separated TARGET=CHANGE with TARGET 'critical', "
        f"'all' or a feature and CHANGE +Nsd, -Nsd (baseline standard deviations) or xF (default: {DEFAULT_SHIFT})",
    )
    run.add_argument("--summary-json", type=Path, default=None, help="--drift: write the loop's summary JSON here")

    invoke = sub.add_parser("invoke", help="invoke one Lambda function against the local twin")
    invoke.add_argument("function", help="function logical id or handler module, e.g. RetrainOnDriftFunction")
    invoke.add_argument("-e", "--event", type=Path, required=True, help="event JSON file")
    invoke.add_argument(
        "--via-eventbridge",
        action="store_true",
        help="put the event on the twin's bus and let the stack's rules route it",
    )

    up = sub.add_parser("up", help="serve the local twin on 127.0.0.1 for the AWS CLI, boto3 and SDKs")
    up.add_argument("--port", type=int, default=5000, help="port to serve on (default: 5000; 0: any free port)")
    up.add_argument("--host", default="127.0.0.1", help="address to serve on (default: loopback only)")
    up.add_argument("--clock-speed", type=float, default=None, help="virtual seconds per real second (default: 100)")
    up.add_argument(
        "--approval",
        choices=["manual", "auto"],
        default="manual",
        help="the stack's ApprovalMode: manual (default) waits for a person to approve a model package",
    )
    up.add_argument("--work-dir", type=Path, default=None, help="where jobs keep their files (default: .mlops/up/)")
    up.add_argument(
        "--parameter-overrides",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters, as for sam deploy (e.g. ReaperDryRun=false ReaperIdleWindowHours=1)",
    )
    audit = sub.add_parser("audit", help="list the stack's audit trail (every automated decision), verified")
    audit.add_argument(
        "--since", default=None, metavar="DURATION_OR_TIME", help="only events since 30m, 12h, 7d, 2w or an ISO time"
    )
    audit.add_argument("--json", action="store_true", help="print the events as JSON")
    add_stack_name_argument(audit)

    lineage = sub.add_parser(
        "lineage", help="a model's complete lineage (data versions, code, image, parameters, jobs, approval)"
    )
    lineage.add_argument("target", metavar="ENDPOINT_OR_PACKAGE", help="an endpoint name or a model package ARN")
    add_stack_name_argument(lineage)
    lineage.add_argument("--json", action="store_true", help="print the lineage as JSON")
    lineage.add_argument(
        "--training-input",
        action="store_true",
        help="print the training execution input that reproduces the model: the same data versions and parameters",
    )

    from mlops.approval import add_arguments as add_approval_arguments

    approve = sub.add_parser("approve", help="approve a model package as the stack's ApproverRole, with a reason")
    add_approval_arguments(approve)
    reject = sub.add_parser("reject", help="reject a model package as the stack's ApproverRole, with a reason")
    add_approval_arguments(reject)
    return parser


def _bundled_dataset_pipeline(name: str | None) -> dict[str, Any]:
    """The pipeline config of a bundled data set's run and the state machines exported from it, when it changes any."""
    overrides = BUNDLED_DATASETS[name].pipeline_overrides if name else {}
    if not overrides:
        return {}
    from contract.pipeline_config import load_pipeline_config
    from workflows.export import render_statemachines

    config = load_pipeline_config(overrides=overrides)
    changed = ", ".join(f"[{section}] {', '.join(values)}" for section, values in overrides.items())
    print(f"pipeline: pipeline.toml with {changed} for the {name} data set; state machines exported for it")
    return {"config": config, "statemachines": render_statemachines(config)}


def _key_values(parser: argparse.ArgumentParser, pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            parser.error(f"--parameter-overrides takes KEY=VALUE pairs, got {pair!r}")
        values[key] = value
    return values


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    os.environ.setdefault("SAM_CLI_TELEMETRY", "0")
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "export":
            from workflows.export import export_command

            return export_command(out_dir=args.out, check=args.check, config_path=args.config)
        if args.command == "check":
            from mlops.checks import check_command

            return check_command(only=args.only, list_only=args.list)
        if args.command == "run" and args.drift:
            if args.tune:
                parser.error("--drift runs the lifecycle without tuning: leave out --tune")
            if args.dataset is not None:
                parser.error("--drift runs on the default data set or --data: leave out --dataset")
            from emulator.commands.drift import drift_command

            return drift_command(
                data=args.data,
                label_column=args.label_column,
                shift=args.shift or DEFAULT_SHIFT,
                summary_json=args.summary_json,
                report=args.report,
                work_dir=args.work_dir,
            )
        if args.command == "run":
            for flag, value in (("--shift", args.shift), ("--summary-json", args.summary_json)):
                if value is not None:
                    parser.error(f"{flag} belongs to the drift loop: add --drift")
            from emulator.commands.lifecycle import run_command

            if args.data is not None and args.dataset is not None:
                parser.error("--data and --dataset both name the data: give one of them")
            return run_command(
                data=args.data,
                label_column=args.label_column,
                tune=args.tune,
                report=args.report,
                work_dir=args.work_dir,
                dataset_name=args.dataset,
                **_bundled_dataset_pipeline(args.dataset),
            )
        if args.command == "invoke":
            from emulator.commands.invoke import invoke_command

            return invoke_command(function=args.function, event_file=args.event, via_eventbridge=args.via_eventbridge)
        if args.command == "up":
            if args.clock_speed is not None and not args.clock_speed > 0:
                parser.error(f"--clock-speed must be a positive number, got {args.clock_speed}")
            from emulator.commands.up import up_command

            return up_command(
                port=args.port,
                host=args.host,
                clock_speed=args.clock_speed,
                approval=args.approval,
                work_dir=args.work_dir,
                parameter_overrides=_key_values(parser, args.parameter_overrides),
            )
        if args.command == "audit":
            from mlops.audit import audit_command

            return audit_command(stack_name=args.stack_name, since=args.since, as_json=args.json)
        if args.command == "lineage":
            from mlops.lineage import lineage_command

            return lineage_command(
                args.target, stack_name=args.stack_name, as_json=args.json, rebuild_input=args.training_input
            )
        if args.command in ("approve", "reject"):
            from mlops.approval import approval_command

            return approval_command(args, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
