"""Deletes SageMaker endpoints that served no request over the idle window, with every safety at once.

Trigger: an EventBridge schedule. One run, for every endpoint in the account and region:

1. Keep (never touch) an endpoint that is not `InService`, younger than `MIN_AGE_HOURS`, carries
   the `OPT_OUT_TAG`, is asynchronous (its endpoint config has `AsyncInferenceConfig`) or
   serverless (a variant has a serverless config): those last two cannot be judged by the
   `Invocations` metric.
2. Busy: any `Invocations` (Sum over `IDLE_WINDOW_HOURS`, per variant) keeps it, and removes the
   `MARK_TAG` if an earlier run had set it (traffic came back).
3. Idle and unmarked: tag it with `MARK_TAG` = the run's time (ISO 8601, UTC). Nothing is deleted
   on the run that first sees an endpoint idle.
4. Idle and marked at least one idle window ago: delete it, oldest mark first, at most
   `MAX_DELETIONS_PER_RUN` per run (the rest are `deferred` to the next run). The mark is a
   visible warning for a whole idle window, during which an owner can add the opt-out tag; at
   deletion the endpoint has been idle for the window before the mark and the window before now.
   Only the endpoint goes: its endpoint config and model stay, so `CreateEndpoint` brings it back.
5. `DRY_RUN` (true when unset): the same decisions, reported as `would_*`, and no tag or endpoint
   changes.

Fail closed: an error on one endpoint (its tags, description, metrics, tagging or deletion) leaves
that endpoint alone and is reported as `error`; an error listing the fleet stops the run before
anything changes.

Cost at scale (bench/reaper_scale.py): the calls grow with the idle candidates, not the fleet.
`ListEndpoints` pages of 100; `ListMetrics` (pages of 500) finds the variants that published
`Invocations` and one `GetMetricData` per 500 of them finds the busy endpoints; a tagging-API scan
finds every marked endpoint in one paged call. Only the endpoints left (the idle candidates) are
described (`ListTags`, `DescribeEndpoint`, `DescribeEndpointConfig`, cached per config) and their
variants' metrics, named by `DescribeEndpoint`, are fetched again before any decision, so an
endpoint is never judged idle from the listing alone.

Every run sends one SNS report and an audit event on `AUDIT_EVENT_BUS_NAME` (decisions in chunks,
ten entries per `PutEvents`), listing each decision with its reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import boto3
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import validation_summary
from common.settings import ReaperSettings
from pydantic import Field, ValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# API limits that shape the batching.
METRIC_QUERIES_PER_CALL = 500  # GetMetricData
# GetMetricData's EndTime is exclusive: reaching a little past `now` counts a datapoint stamped at this very
# moment, or by a clock slightly ahead, as traffic. Deleting on a borderline is the mistake to avoid.
METRIC_END_MARGIN = timedelta(minutes=5)
ENTRIES_PER_PUT_EVENTS = 10  # PutEvents
DECISIONS_PER_AUDIT_ENTRY = 50  # keeps ten entries well under PutEvents' 256 KiB request limit
SNS_MESSAGE_BUDGET_BYTES = 200 * 1024  # SNS allows 256 KiB; the rest is headroom for the summary
AUDIT_SOURCE = "mlops.endpoint-reaper"
AUDIT_DETAIL_TYPE = "Endpoint Reaper Decisions"

Action = Literal[
    "deleted", "would_delete", "marked", "would_mark", "unmarked", "would_unmark", "deferred", "kept", "error"
]


class ScheduledEvent(EventBridgeModel):
    # `sam local generate-event cloudwatch scheduled-event` leaves out `version`; the run needs neither.
    version: str = "0"
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")


@dataclass(frozen=True)
class Decision:
    """What the run did or would do with one endpoint; `rule` is a short category, `reason` the full story."""

    endpoint: str
    action: Action
    rule: str
    reason: str


@dataclass(frozen=True)
class ReaperClients:
    sagemaker: Any
    cloudwatch: Any
    tagging: Any
    sns: Any
    events: Any

    @classmethod
    def default(cls) -> ReaperClients:
        return cls(
            sagemaker=boto3.client("sagemaker"),
            cloudwatch=boto3.client("cloudwatch"),
            tagging=boto3.client("resourcegroupstaggingapi"),
            sns=boto3.client("sns"),
            events=boto3.client("events"),
        )


@dataclass
class ReaperReport:
    run_at: datetime
    dry_run: bool
    decisions: list[Decision] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(decision.action for decision in self.decisions).items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_at": _iso(self.run_at),
            "dry_run": self.dry_run,
            "counts": self.counts(),
            "decisions": [asdict(decision) for decision in self.decisions],
        }


@dataclass
class _Candidate:
    """An in-service endpoint old enough to judge; filled in as the run learns about it."""

    name: str
    arn: str
    mark: str | None = None
    variants: list[str] = field(default_factory=list)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_mark(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _list_endpoints(sagemaker: Any) -> Iterator[dict[str, Any]]:
    for page in sagemaker.get_paginator("list_endpoints").paginate(PaginationConfig={"PageSize": 100}):
        yield from page["Endpoints"]


def _marked_endpoints(tagging: Any, mark_tag: str) -> dict[str, str]:
    """Endpoint ARN -> mark value, for every endpoint carrying the mark tag, in one paged scan."""
    marked: dict[str, str] = {}
    pages = tagging.get_paginator("get_resources").paginate(
        TagFilters=[{"Key": mark_tag}], ResourceTypeFilters=["sagemaker:endpoint"], ResourcesPerPage=100
    )
    for page in pages:
        for resource in page["ResourceTagMappingList"]:
            tags = {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}
            marked[resource["ResourceARN"]] = tags.get(mark_tag, "")
    return marked


def _listed_variants(cloudwatch: Any, endpoint_names: set[str]) -> dict[str, list[str]]:
    """Endpoint name -> variant names that published `Invocations` in the last two weeks (ListMetrics' reach)."""
    variants: dict[str, list[str]] = {}
    pages = cloudwatch.get_paginator("list_metrics").paginate(Namespace="AWS/SageMaker", MetricName="Invocations")
    for page in pages:
        for metric in page["Metrics"]:
            dimensions = {dimension["Name"]: dimension["Value"] for dimension in metric["Dimensions"]}
            if set(dimensions) != {"EndpointName", "VariantName"}:
                continue
            if dimensions["EndpointName"] in endpoint_names:
                variants.setdefault(dimensions["EndpointName"], []).append(dimensions["VariantName"])
    return variants


def _batched(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def invocations_by_endpoint(
    cloudwatch: Any, variants: dict[str, list[str]], window: timedelta, now: datetime
) -> tuple[dict[str, float], dict[str, str]]:
    """Sum of `Invocations` over the window per endpoint, summed over its variants, plus endpoints whose metrics failed.

    One `GetMetricData` call per 500 (endpoint, variant) queries. An endpoint whose query errored
    or came back incomplete is reported as failed, never as idle.
    """
    pairs = [(endpoint, variant) for endpoint, names in sorted(variants.items()) for variant in names]
    totals: dict[str, float] = dict.fromkeys(variants, 0.0)
    failed: dict[str, str] = {}
    period = int(window.total_seconds())
    for batch in _batched(pairs, METRIC_QUERIES_PER_CALL):
        queries = [
            {
                "Id": f"q{index}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SageMaker",
                        "MetricName": "Invocations",
                        "Dimensions": [
                            {"Name": "EndpointName", "Value": endpoint},
                            {"Name": "VariantName", "Value": variant},
                        ],
                    },
                    "Period": period,
                    "Stat": "Sum",
                },
                "ReturnData": True,
            }
            for index, (endpoint, variant) in enumerate(batch)
        ]
        try:
            pages = cloudwatch.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries, StartTime=now - window, EndTime=now + METRIC_END_MARGIN
            )
            for page in pages:
                for result in page["MetricDataResults"]:
                    endpoint = batch[int(result["Id"][1:])][0]
                    totals[endpoint] += sum(result.get("Values", []))
                    if result.get("StatusCode") not in ("Complete", "PartialData"):
                        failed[endpoint] = f"Invocations query status {result.get('StatusCode')}"
        except Exception as error:  # fail closed: none of this batch's endpoints may be judged idle
            logger.exception("GetMetricData failed", extra={"queries": len(queries)})
            for endpoint, _ in batch:
                failed[endpoint] = f"GetMetricData failed: {error}"
    return totals, failed


def _unmark(clients: ReaperClients, settings: ReaperSettings, candidate: _Candidate, busy_reason: str) -> Decision:
    if settings.dry_run:
        return Decision(candidate.name, "would_unmark", "traffic_returned", busy_reason)
    clients.sagemaker.delete_tags(ResourceArn=candidate.arn, TagKeys=[settings.mark_tag])
    return Decision(candidate.name, "unmarked", "traffic_returned", busy_reason)


def _inspect(
    clients: ReaperClients, settings: ReaperSettings, candidate: _Candidate, config_cache: dict[str, dict[str, Any]]
) -> Decision | None:
    """Read the candidate's tags and configuration; a keep decision when a safety applies, else None."""
    tags: dict[str, str] = {}
    for page in clients.sagemaker.get_paginator("list_tags").paginate(ResourceArn=candidate.arn):
        tags.update({tag["Key"]: tag["Value"] for tag in page["Tags"]})
    if settings.opt_out_tag in tags:
        opt_out = f"tagged {settings.opt_out_tag}={tags[settings.opt_out_tag]}"
        return Decision(candidate.name, "kept", "opt_out", opt_out)
    # The endpoint's own tags are authoritative: the tagging-API scan is eventually consistent (a mark it
    # missed on a busy endpoint is removed by a later run).
    candidate.mark = tags.get(settings.mark_tag)
    description = clients.sagemaker.describe_endpoint(EndpointName=candidate.name)
    variants = description.get("ProductionVariants", [])
    if any("CurrentServerlessConfig" in variant or "DesiredServerlessConfig" in variant for variant in variants):
        return Decision(candidate.name, "kept", "serverless", "serverless endpoint: Invocations cannot show idleness")
    config_name = description["EndpointConfigName"]
    if config_name not in config_cache:
        config_cache[config_name] = clients.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    config = config_cache[config_name]
    if "AsyncInferenceConfig" in config:
        return Decision(candidate.name, "kept", "async", f"asynchronous endpoint (config {config_name})")
    if any("ServerlessConfig" in variant for variant in config.get("ProductionVariants", [])):
        return Decision(candidate.name, "kept", "serverless", f"serverless variant in config {config_name}")
    candidate.variants = [variant["VariantName"] for variant in variants]
    if not candidate.variants:
        return Decision(candidate.name, "error", "no_variants", "DescribeEndpoint listed no production variant")
    return None


def _idle_decision(settings: ReaperSettings, candidate: _Candidate, now: datetime) -> Decision | None:
    """Mark, or say why a marked endpoint waits; None when it is due for deletion."""
    window = timedelta(hours=settings.idle_window_hours)
    idle_reason = f"no invocations in the last {settings.idle_window_hours} h"
    if candidate.mark is None:
        if settings.dry_run:
            return Decision(candidate.name, "would_mark", "idle", f"{idle_reason}; would be marked {_iso(now)}")
        return Decision(candidate.name, "marked", "idle", f"{idle_reason}; marked {_iso(now)}")
    try:
        marked_at = _parse_mark(candidate.mark)
    except ValueError:
        return Decision(
            candidate.name,
            "error",
            "bad_mark",
            f"{settings.mark_tag}={candidate.mark!r} is not a time like 2024-01-31T12:00:00Z; remove the tag",
        )
    if now - marked_at < window:
        return Decision(
            candidate.name,
            "kept",
            "mark_pending",
            f"{idle_reason}; marked {candidate.mark}, deletable after {_iso(marked_at + window)}",
        )
    return None


def reap(clients: ReaperClients, settings: ReaperSettings, now: datetime) -> ReaperReport:
    """Judge every endpoint, act within the safeties, and return the decisions (not yet reported)."""
    report = ReaperReport(run_at=now, dry_run=settings.dry_run)
    min_age = timedelta(hours=settings.min_age_hours)
    window = timedelta(hours=settings.idle_window_hours)
    candidates: dict[str, _Candidate] = {}
    for endpoint in _list_endpoints(clients.sagemaker):
        name, status = endpoint["EndpointName"], endpoint["EndpointStatus"]
        age = now - endpoint["CreationTime"]
        if status != "InService":
            report.decisions.append(Decision(name, "kept", "not_in_service", f"status {status}"))
        elif age < min_age:
            hours = age.total_seconds() / 3600
            reason = f"created {hours:.1f} h ago, under MIN_AGE_HOURS={settings.min_age_hours}"
            report.decisions.append(Decision(name, "kept", "too_young", reason))
        else:
            candidates[name] = _Candidate(name, endpoint["EndpointArn"])
    marks = _marked_endpoints(clients.tagging, settings.mark_tag)
    for candidate in candidates.values():
        candidate.mark = marks.get(candidate.arn)

    # Pass 1, cheap: whatever published Invocations recently and has a non-zero sum is busy.
    totals, failed = invocations_by_endpoint(
        clients.cloudwatch, _listed_variants(clients.cloudwatch, set(candidates)), window, now
    )
    idle: list[_Candidate] = []
    for candidate in candidates.values():
        decision = _judge_activity(clients, settings, candidate, totals, failed)
        if decision is None:
            idle.append(candidate)
        else:
            report.decisions.append(decision)

    # Pass 2, only for the idle candidates: the safeties that need a describe, then their metrics again
    # with the variant names from DescribeEndpoint.
    config_cache: dict[str, dict[str, Any]] = {}
    inspected: list[_Candidate] = []
    for candidate in idle:
        try:
            kept = _inspect(clients, settings, candidate, config_cache)
        except Exception as error:
            logger.exception("could not inspect endpoint", extra={"endpoint": candidate.name})
            kept = Decision(candidate.name, "error", "inspect_failed", f"{type(error).__name__}: {error}")
        if kept is None:
            inspected.append(candidate)
        else:
            report.decisions.append(kept)
    totals, failed = invocations_by_endpoint(
        clients.cloudwatch, {candidate.name: candidate.variants for candidate in inspected}, window, now
    )
    due: list[_Candidate] = []
    for candidate in inspected:
        decision = _judge_activity(clients, settings, candidate, totals, failed) or _guarded_idle(
            clients, settings, candidate, now
        )
        if decision is None:
            due.append(candidate)
        else:
            report.decisions.append(decision)
    report.decisions.extend(_delete_within_cap(clients, settings, due))
    return report


def _judge_activity(
    clients: ReaperClients,
    settings: ReaperSettings,
    candidate: _Candidate,
    totals: dict[str, float],
    failed: dict[str, str],
) -> Decision | None:
    """A decision for an endpoint whose metrics failed or show traffic; None when it looks idle."""
    if candidate.name in failed:
        return Decision(candidate.name, "error", "metrics_failed", failed[candidate.name])
    invocations = totals.get(candidate.name, 0.0)
    if invocations <= 0:
        return None
    busy_reason = f"{invocations:.0f} invocations in the last {settings.idle_window_hours} h"
    if candidate.mark is None:
        return Decision(candidate.name, "kept", "busy", busy_reason)
    try:
        return _unmark(clients, settings, candidate, busy_reason)
    except Exception as error:
        logger.exception("could not unmark endpoint", extra={"endpoint": candidate.name})
        return Decision(candidate.name, "error", "unmark_failed", f"{busy_reason}; unmark failed: {error}")


def _guarded_idle(
    clients: ReaperClients, settings: ReaperSettings, candidate: _Candidate, now: datetime
) -> Decision | None:
    decision = _idle_decision(settings, candidate, now)
    if decision is None or decision.action != "marked":
        return decision
    try:
        clients.sagemaker.add_tags(ResourceArn=candidate.arn, Tags=[{"Key": settings.mark_tag, "Value": _iso(now)}])
    except Exception as error:
        logger.exception("could not mark endpoint", extra={"endpoint": candidate.name})
        return Decision(candidate.name, "error", "mark_failed", f"{decision.reason}; tagging failed: {error}")
    return decision


def _delete_within_cap(clients: ReaperClients, settings: ReaperSettings, due: list[_Candidate]) -> list[Decision]:
    """Delete the endpoints that are due, oldest mark first, up to the per-run cap."""
    decisions: list[Decision] = []
    ordered = sorted(due, key=lambda candidate: (candidate.mark or "", candidate.name))
    for position, candidate in enumerate(ordered):
        reason = (
            f"no invocations in the last {settings.idle_window_hours} h; marked {candidate.mark}; "
            "endpoint config and model kept"
        )
        if position >= settings.max_deletions_per_run:
            cap = f"MAX_DELETIONS_PER_RUN={settings.max_deletions_per_run} reached"
            decisions.append(Decision(candidate.name, "deferred", "cap_reached", f"{reason}; {cap}"))
        elif settings.dry_run:
            decisions.append(Decision(candidate.name, "would_delete", "idle", reason))
        else:
            try:
                clients.sagemaker.delete_endpoint(EndpointName=candidate.name)
            except Exception as error:
                logger.exception("could not delete endpoint", extra={"endpoint": candidate.name})
                decisions.append(Decision(candidate.name, "error", "delete_failed", f"{reason}; {error}"))
            else:
                decisions.append(Decision(candidate.name, "deleted", "idle", reason))
    return decisions


def _report_text(report: ReaperReport) -> str:
    """The SNS report: counts, then every decision except the plain `busy` keeps, within SNS's size limit."""
    mode = "DRY RUN (nothing changed)" if report.dry_run else "live"
    lines = [f"Endpoint reaper run at {_iso(report.run_at)}, {mode}.", f"Counts: {json.dumps(report.counts())}", ""]
    busy = sum(1 for decision in report.decisions if decision.rule == "busy")
    listed = [decision for decision in report.decisions if decision.rule != "busy"]
    budget = SNS_MESSAGE_BUDGET_BYTES - sum(len(line) + 1 for line in lines)
    for index, decision in enumerate(listed):
        line = f"{decision.action:<13} {decision.endpoint}: {decision.reason}"
        budget -= len(line.encode("utf-8")) + 1
        if budget < 0:
            lines.append(f"... and {len(listed) - index} more decisions in the audit events.")
            break
        lines.append(line)
    lines.append(f"{busy} endpoints kept because they served requests (listed in the audit events).")
    return "\n".join(lines)


def send_report(clients: ReaperClients, settings: ReaperSettings, report: ReaperReport) -> int:
    """Publish the SNS report and the audit events; return how many audit entries EventBridge refused."""
    clients.sns.publish(
        TopicArn=settings.report_topic_arn,
        Subject=f"Endpoint reaper: {', '.join(f'{k} {v}' for k, v in report.counts().items()) or 'no endpoints'}"[:100],
        Message=_report_text(report),
    )
    decisions = [asdict(decision) for decision in report.decisions]
    chunks = list(_batched(decisions, DECISIONS_PER_AUDIT_ENTRY)) or [[]]
    entries = [
        {
            "Source": AUDIT_SOURCE,
            "DetailType": AUDIT_DETAIL_TYPE,
            "EventBusName": settings.audit_event_bus_name,
            "Detail": json.dumps(
                {
                    "run_at": _iso(report.run_at),
                    "dry_run": report.dry_run,
                    "counts": report.counts(),
                    "part": part,
                    "parts": len(chunks),
                    "decisions": chunk,
                }
            ),
        }
        for part, chunk in enumerate(chunks, start=1)
    ]
    refused = 0
    for batch in _batched(entries, ENTRIES_PER_PUT_EVENTS):
        response = clients.events.put_events(Entries=batch)
        refused += response.get("FailedEntryCount", 0)
    return refused


@instrumented_handler(correlation_id_path=correlation_paths.EVENT_BRIDGE)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = ReaperSettings.from_env()
    try:
        scheduled = parse(event=event, model=ScheduledEvent)
    except ValidationError as error:
        count_decision("EventRejected")
        reason = f"not an EventBridge Scheduled Event: {validation_summary(error)}"
        logger.error(f"event rejected: {reason}")
        return {"rejected": reason}
    clients = ReaperClients.default()
    report = reap(clients, settings, now=datetime.now(UTC))
    count_decision("EndpointsJudged", len(report.decisions))
    for action, count in report.counts().items():
        # One metric per decision kind (EndpointsDeleted, EndpointsWouldMark, ...), summed over the run.
        count_decision(f"Endpoints{action.title().replace('_', '')}", count)
    refused = send_report(clients, settings, report)
    if refused:
        count_decision("AuditEntriesRefused", refused)
        logger.error("EventBridge refused audit entries", extra={"refused": refused})
    logger.info("reaper run done", extra={"schedule_time": _iso(scheduled.time), "counts": report.counts()})
    return report.as_dict()
