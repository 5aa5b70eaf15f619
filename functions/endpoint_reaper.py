"""Deletes SageMaker endpoints that served no request over the idle window, with every safety at once.

Trigger: an EventBridge schedule. One run, for every endpoint in the account and region:

0. Scope (`REAPER_SCOPE`): `account` judges every endpoint; `managed` only those whose
   `MANAGEMENT_TAG` (the deploy workflow's `mlops:model-package-arn`) names a model package of this
   stack's group (`MANAGED_TAG_VALUE_PREFIX`); the rest are `kept` as `out_of_scope`. The stack's
   IAM policy enforces the same scope, so a bug here cannot widen it.
1. Keep (never touch) an endpoint that is not `InService`, younger than `MIN_AGE_HOURS`, carries
   the `OPT_OUT_TAG`, is asynchronous (its endpoint config has `AsyncInferenceConfig`) or
   serverless (a variant has a serverless config): those last two cannot be judged by the
   `Invocations` metric. The opt-out key is matched normalised (case, surrounding spaces, `_` for
   `-`); a key that only looks like it (edit distance 1-2, or the same name under another prefix)
   also keeps the endpoint, as `opt_out_near_miss`, and the report names the key so its owner can
   fix it: a typo in a tag must not cost an endpoint.
2. Busy: any `Invocations` (Sum over `IDLE_WINDOW_HOURS`, per variant) keeps it, and removes the
   `MARK_TAG` if an earlier run had set it (traffic came back).
3. Idle and unmarked: tag it with `MARK_TAG` = the run's time (ISO 8601, UTC). Nothing is deleted
   on the run that first sees an endpoint idle. A mark older than the endpoint's `CreationTime` or
   `LastModifiedTime` was set on something else (tags copied to a recreated endpoint, or an update
   to a new model): it is no mark, and the endpoint is marked again.
4. Idle and marked at least one idle window ago: delete it, oldest mark first, at most
   `MAX_DELETIONS_PER_RUN` per run (the rest are `deferred` to the next run). The mark is a
   visible warning for a whole idle window, during which an owner can add the opt-out tag; at
   deletion the endpoint has been idle for the window before the mark and the window before now.
   Just before deleting, the endpoint is described again: if it changed or left `InService` it is kept.
   Only the endpoint goes: its endpoint config and model stay, so `CreateEndpoint` brings it back.
5. `DRY_RUN` (true when unset): the same decisions, reported as `would_*`, and no tag or endpoint
   changes.

Fail closed: only a complete, successful `GetMetricData` answer for the whole window is evidence of
idleness (every query answered, `StatusCode` `Complete`, no `Messages`, no `NextToken` left); any
other answer keeps the endpoint as `metrics_failed`. An error on one endpoint (its tags,
description, metrics, tagging or deletion) leaves that endpoint alone and is reported as `error`;
an error listing the fleet stops the run before anything changes.

Cost at scale (bench/reaper_scale.py): the calls grow with the idle candidates, not the fleet, except the
audit: one event per endpoint judged, ten per `PutEvents`.
`ListEndpoints` pages of 100; `ListMetrics` (pages of 500) finds the variants that published
`Invocations` and one `GetMetricData` per 500 of them finds the busy endpoints; a tagging-API scan
finds every marked (and, in `managed` scope, every managed) endpoint in one paged call. Only the
endpoints left (the idle candidates) are described (`ListTags`, `DescribeEndpoint`,
`DescribeEndpointConfig`, cached per config) and their variants' metrics, named by
`DescribeEndpoint`, are fetched again before any decision, so an endpoint is never judged idle
from the listing alone.

Records: every decision is logged (structured, `reaper decision`) when it is made, and every change
is logged (`reaper acting`) before the call that makes it. Each decision is one audit event
(common.audit: `endpoint_deleted`, `endpoint_marked`, or `endpoint_kept` for every other action,
the action itself in `details.action`, since a dry run's `would_delete` deletes nothing) on
`AUDIT_EVENT_BUS_NAME`, the stack's audit bus; the events of a run share its correlation id and
carry `details.sequence` of `details.events_in_run`. They are sent whatever SNS does, entries
EventBridge refuses are sent again with bounded backoff, then the SNS report. A run that stopped
early, whose audit could not all be written or whose report was not sent raises after it has
reported what it could, so the failure is seen (Lambda errors, the function's DLQ).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import boto3
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from common import audit
from common.audit import AuditContext
from common.observability import count_decision, instrumented_handler, logger
from common.parsing import validation_summary
from common.settings import ReaperSettings
from pydantic import Field, ValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# API limits that shape the batching.
METRIC_QUERIES_PER_CALL = 500  # GetMetricData
# A GetMetricData answer still asking for more pages after this many is not trusted (one page holds 100,800
# datapoints; each query here asks for one or two).
MAX_METRIC_PAGES = 20
# GetMetricData's EndTime is exclusive: reaching a little past `now` counts a datapoint stamped at this very
# moment, or by a clock slightly ahead, as traffic. Deleting on a borderline is the mistake to avoid.
METRIC_END_MARGIN = timedelta(minutes=5)
SNS_MESSAGE_BUDGET_BYTES = 200 * 1024  # SNS allows 256 KiB; the rest is headroom for the summary
# The audit decision of each action: only a real deletion or mark changed the endpoint.
AUDIT_DECISION_BY_ACTION = {"deleted": "endpoint_deleted", "marked": "endpoint_marked"}
# Keeps that say nothing an owner must read: counted in the SNS report, listed only in the audit events.
QUIET_RULES = {"busy": "served requests", "out_of_scope": "are outside the reaper's scope"}
# A key this close to the opt-out key (after normalising) is taken as a mistyped opt-out.
NEAR_MISS_EDIT_DISTANCE = 2

Action = Literal[
    "deleted", "would_delete", "marked", "would_mark", "unmarked", "would_unmark", "deferred", "kept", "error"
]


class ScheduledEvent(EventBridgeModel):
    # `sam local generate-event cloudwatch scheduled-event` leaves out `version`; the run needs neither.
    version: str = "0"
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")


class ReaperRunFailed(RuntimeError):
    """The run stopped early or its audit or report could not be delivered; what it did is in the logs."""


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
    # Set when the run stopped before judging every endpoint: the decisions are those made until then.
    stopped_early: str | None = None

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(decision.action for decision in self.decisions).items()))

    def record(self, decision: Decision) -> None:
        """Log the decision, structured, then keep it for the reports."""
        logger.info("reaper decision", extra=asdict(decision))
        self.decisions.append(decision)

    def as_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"run_at": _iso(self.run_at), "dry_run": self.dry_run, "counts": self.counts()}
        if self.stopped_early:
            summary["stopped_early"] = self.stopped_early
        return {**summary, "decisions": [asdict(decision) for decision in self.decisions]}


@dataclass(frozen=True)
class ReportDelivery:
    """What `send_report` could not deliver; empty when the audit and the report both went out."""

    audit_entries_unwritten: int = 0
    audit_problem: str | None = None
    report_problem: str | None = None

    def problems(self) -> list[str]:
        found = []
        if self.audit_entries_unwritten:
            found.append(f"{self.audit_entries_unwritten} audit entries not written: {self.audit_problem}")
        if self.report_problem:
            found.append(f"SNS report not sent: {self.report_problem}")
        return found


@dataclass
class _Candidate:
    """An in-service endpoint old enough to judge; filled in as the run learns about it."""

    name: str
    arn: str
    mark: str | None = None
    variants: list[str] = field(default_factory=list)
    # The later of DescribeEndpoint's CreationTime and LastModifiedTime: a mark before it is stale.
    changed_at: datetime | None = None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_mark(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _log_acting(candidate: _Candidate, act: str, reason: str) -> None:
    logger.info("reaper acting", extra={"endpoint": candidate.name, "act": act, "reason": reason})


def _list_endpoints(sagemaker: Any) -> Iterator[dict[str, Any]]:
    for page in sagemaker.get_paginator("list_endpoints").paginate(PaginationConfig={"PageSize": 100}):
        yield from page["Endpoints"]


def _tag_scan(tagging: Any, tag_key: str) -> dict[str, str]:
    """Endpoint ARN -> the tag's value, for every endpoint carrying the tag, in one paged scan.

    The tagging API is eventually consistent: what it finds is a hint, confirmed by `ListTags` before
    anything changes.
    """
    found: dict[str, str] = {}
    pages = tagging.get_paginator("get_resources").paginate(
        TagFilters=[{"Key": tag_key}], ResourceTypeFilters=["sagemaker:endpoint"], ResourcesPerPage=100
    )
    for page in pages:
        for resource in page["ResourceTagMappingList"]:
            tags = {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}
            found[resource["ResourceARN"]] = tags.get(tag_key, "")
    return found


def _listed_variants(cloudwatch: Any, endpoint_names: set[str]) -> dict[str, list[str]]:
    """Endpoint name -> variant names that published `Invocations` in the last two weeks (ListMetrics' reach).

    Only a shortcut to find busy endpoints: an endpoint this misses is judged from DescribeEndpoint's variants.
    """
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


def _messages(messages: list[dict[str, Any]]) -> str:
    return "; ".join(f"{message.get('Code')}: {message.get('Value')}" for message in messages)


def _query_batch(
    cloudwatch: Any, batch: list[tuple[str, str]], window: timedelta, now: datetime
) -> tuple[dict[str, float], dict[str, str]]:
    """Query id -> Sum of `Invocations`, for the ids with a complete answer; query id -> why the others have none."""
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
                "Period": int(window.total_seconds()),
                "Stat": "Sum",
            },
            "ReturnData": True,
        }
        for index, (endpoint, variant) in enumerate(batch)
    ]
    expected = {f"q{index}" for index in range(len(batch))}
    sums: dict[str, float] = {}
    last_status: dict[str, str | None] = {}
    failed: dict[str, str] = {}
    request: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": now - window,
        "EndTime": now + METRIC_END_MARGIN,
    }
    # Pages by hand, not with the paginator: a NextToken left after the last page read must count as missing data.
    for _ in range(MAX_METRIC_PAGES):
        page = cloudwatch.get_metric_data(**request)
        if page.get("Messages"):
            # A message about the whole call (e.g. too many datapoints) makes every answer in it suspect.
            return {}, dict.fromkeys(expected, f"GetMetricData said {_messages(page['Messages'])}")
        for result in page.get("MetricDataResults", []):
            query_id = result.get("Id")
            if query_id not in expected:
                return {}, dict.fromkeys(expected, f"GetMetricData answered a query it was not asked: {query_id!r}")
            values = result.get("Values", [])
            if any(not math.isfinite(value) or value < 0 for value in values):
                failed[query_id] = f"Invocations values that cannot be counts: {values}"
            sums[query_id] = sums.get(query_id, 0.0) + sum(values)
            last_status[query_id] = result.get("StatusCode")
            if result.get("Messages"):
                failed[query_id] = f"Invocations query said {_messages(result['Messages'])}"
        token = page.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    else:
        return {}, dict.fromkeys(expected, f"GetMetricData still had a NextToken after {MAX_METRIC_PAGES} pages")
    for query_id in expected:
        if query_id not in last_status:
            failed.setdefault(query_id, "GetMetricData returned no result for the Invocations query")
        elif last_status[query_id] != "Complete":
            failed.setdefault(query_id, f"Invocations query status {last_status[query_id]}, not Complete")
    return {query_id: total for query_id, total in sums.items() if query_id not in failed}, failed


def invocations_by_endpoint(
    cloudwatch: Any, variants: dict[str, list[str]], window: timedelta, now: datetime
) -> tuple[dict[str, float], dict[str, str]]:
    """Sum of `Invocations` over the window per endpoint, summed over its variants, plus endpoints whose metrics failed.

    One `GetMetricData` call (and its pages) per 500 (endpoint, variant) queries. An endpoint with any
    variant whose query errored, is missing from the answer or is not `Complete` is reported as
    failed, never as idle.
    """
    pairs = [(endpoint, variant) for endpoint, names in sorted(variants.items()) for variant in names]
    totals: dict[str, float] = dict.fromkeys(variants, 0.0)
    failed: dict[str, str] = {}
    for batch in _batched(pairs, METRIC_QUERIES_PER_CALL):
        try:
            sums, problems = _query_batch(cloudwatch, batch, window, now)
        except Exception as error:  # fail closed: none of this batch's endpoints may be judged idle
            logger.exception("GetMetricData failed", extra={"queries": len(batch)})
            sums, problems = {}, {f"q{index}": f"GetMetricData failed: {error}" for index in range(len(batch))}
        for index, (endpoint, variant) in enumerate(batch):
            query_id = f"q{index}"
            if query_id in problems:
                failed.setdefault(endpoint, f"variant {variant}: {problems[query_id]}")
            else:
                totals[endpoint] += sums[query_id]
    if failed:
        logger.warning("incomplete Invocations answers", extra={"endpoints": sorted(failed)})
    return totals, failed


def _normalised_key(key: str) -> str:
    return key.strip().lower().replace("_", "-")


def _edit_distance(first: str, second: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    previous = list(range(len(second) + 1))
    for row, first_char in enumerate(first, start=1):
        current = [row]
        for column, second_char in enumerate(second, start=1):
            current.append(
                min(previous[column] + 1, current[column - 1] + 1, previous[column - 1] + (first_char != second_char))
            )
        previous = current
    return previous[-1]


def _name_part(normalised_key: str) -> str:
    """`mlops:reaper-opt-out` -> `reaper-opt-out`: the key without its prefix (`:` or `/` separated)."""
    return normalised_key.replace("/", ":").rsplit(":", 1)[-1].strip()


def opt_out_keys(tags: dict[str, str], settings: ReaperSettings) -> tuple[list[str], list[str]]:
    """The tag keys that are the opt-out tag once normalised, and those that only look like it (near-misses)."""
    wanted = _normalised_key(settings.opt_out_tag)
    own = {_normalised_key(settings.mark_tag), _normalised_key(settings.management_tag)}
    matches, near_misses = [], []
    for key in sorted(tags):
        normalised = _normalised_key(key)
        if normalised == wanted:
            matches.append(key)
        elif normalised not in own and (
            _edit_distance(normalised, wanted) <= NEAR_MISS_EDIT_DISTANCE
            or _name_part(normalised) == _name_part(wanted)
        ):
            near_misses.append(key)
    return matches, near_misses


def _in_scope(settings: ReaperSettings, management_value: str | None) -> bool:
    if settings.scope == "account":
        return True
    return management_value is not None and management_value.startswith(settings.managed_tag_value_prefix)


def _out_of_scope(settings: ReaperSettings, name: str) -> Decision:
    reason = (
        f"REAPER_SCOPE=managed: no {settings.management_tag} tag naming a model package under "
        f"{settings.managed_tag_value_prefix}"
    )
    return Decision(name, "kept", "out_of_scope", reason)


def _unmark(clients: ReaperClients, settings: ReaperSettings, candidate: _Candidate, busy_reason: str) -> Decision:
    if settings.dry_run:
        return Decision(candidate.name, "would_unmark", "traffic_returned", busy_reason)
    _log_acting(candidate, "unmark", busy_reason)
    clients.sagemaker.delete_tags(ResourceArn=candidate.arn, TagKeys=[settings.mark_tag])
    return Decision(candidate.name, "unmarked", "traffic_returned", busy_reason)


def _inspect(
    clients: ReaperClients, settings: ReaperSettings, candidate: _Candidate, config_cache: dict[str, dict[str, Any]]
) -> Decision | None:
    """Read the candidate's tags and configuration; a keep decision when a safety applies, else None."""
    tags: dict[str, str] = {}
    for page in clients.sagemaker.get_paginator("list_tags").paginate(ResourceArn=candidate.arn):
        tags.update({tag["Key"]: tag["Value"] for tag in page["Tags"]})
    # The endpoint's own tags are authoritative: the tagging-API scan is eventually consistent (a mark it
    # missed on a busy endpoint is removed by a later run).
    if not _in_scope(settings, tags.get(settings.management_tag)):
        return _out_of_scope(settings, candidate.name)
    matches, near_misses = opt_out_keys(tags, settings)
    if matches:
        written = ", ".join(f"{key!r}={tags[key]!r}" for key in matches)
        return Decision(candidate.name, "kept", "opt_out", f"tagged {written} (the opt-out tag {settings.opt_out_tag})")
    if near_misses:
        written = ", ".join(repr(key) for key in near_misses)
        reason = (
            f"tag {written} looks like the opt-out tag {settings.opt_out_tag!r} but is not it; kept as opted out: "
            f"rename the tag to {settings.opt_out_tag!r}, or remove it to let the reaper judge the endpoint"
        )
        return Decision(candidate.name, "kept", "opt_out_near_miss", reason)
    candidate.mark = tags.get(settings.mark_tag)
    description = clients.sagemaker.describe_endpoint(EndpointName=candidate.name)
    if description.get("EndpointStatus") != "InService":
        return Decision(candidate.name, "kept", "not_in_service", f"status {description.get('EndpointStatus')}")
    candidate.changed_at = max(description["CreationTime"], description["LastModifiedTime"])
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
    marked = "would be marked" if settings.dry_run else "marked"
    mark_action: Action = "would_mark" if settings.dry_run else "marked"
    if candidate.mark is None:
        return Decision(candidate.name, mark_action, "idle", f"{idle_reason}; {marked} {_iso(now)}")
    try:
        marked_at = _parse_mark(candidate.mark)
    except ValueError:
        return Decision(
            candidate.name,
            "error",
            "bad_mark",
            f"{settings.mark_tag}={candidate.mark!r} is not a time like 2024-01-31T12:00:00Z; remove the tag",
        )
    if candidate.changed_at is None or marked_at < candidate.changed_at:
        changed = "unknown" if candidate.changed_at is None else _iso(candidate.changed_at)
        reason = (
            f"{idle_reason}; the mark {candidate.mark} predates the endpoint's creation or last update ({changed}), "
            f"so it is no mark; {marked} {_iso(now)}"
        )
        return Decision(candidate.name, mark_action, "stale_mark", reason)
    if now - marked_at < window:
        return Decision(
            candidate.name,
            "kept",
            "mark_pending",
            f"{idle_reason}; marked {candidate.mark}, deletable after {_iso(marked_at + window)}",
        )
    return None


def reap(
    clients: ReaperClients, settings: ReaperSettings, now: datetime, report: ReaperReport | None = None
) -> ReaperReport:
    """Judge every endpoint, act within the safeties, and return the decisions (not yet reported).

    Decisions go into `report` as they are made, so a caller holding it still has them if the run raises.
    """
    report = report or ReaperReport(run_at=now, dry_run=settings.dry_run)
    min_age = timedelta(hours=settings.min_age_hours)
    window = timedelta(hours=settings.idle_window_hours)
    managed = _tag_scan(clients.tagging, settings.management_tag) if settings.scope == "managed" else {}
    candidates: dict[str, _Candidate] = {}
    for endpoint in _list_endpoints(clients.sagemaker):
        name, status = endpoint["EndpointName"], endpoint["EndpointStatus"]
        age = now - endpoint["CreationTime"]
        if settings.scope == "managed" and not _in_scope(settings, managed.get(endpoint["EndpointArn"])):
            report.record(_out_of_scope(settings, name))
        elif status != "InService":
            report.record(Decision(name, "kept", "not_in_service", f"status {status}"))
        elif age < min_age:
            hours = age.total_seconds() / 3600
            reason = f"created {hours:.1f} h ago, under MIN_AGE_HOURS={settings.min_age_hours}"
            report.record(Decision(name, "kept", "too_young", reason))
        else:
            candidates[name] = _Candidate(name, endpoint["EndpointArn"])
    marks = _tag_scan(clients.tagging, settings.mark_tag)
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
            report.record(decision)

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
            report.record(kept)
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
            report.record(decision)
    _delete_within_cap(clients, settings, due, report)
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
        _log_acting(candidate, "mark", decision.reason)
        clients.sagemaker.add_tags(ResourceArn=candidate.arn, Tags=[{"Key": settings.mark_tag, "Value": _iso(now)}])
    except Exception as error:
        logger.exception("could not mark endpoint", extra={"endpoint": candidate.name})
        return Decision(candidate.name, "error", "mark_failed", f"{decision.reason}; tagging failed: {error}")
    return decision


def _changed_since_inspected(clients: ReaperClients, candidate: _Candidate) -> str | None:
    """Why the endpoint must not be deleted after all (it changed since the run described it), or None."""
    description = clients.sagemaker.describe_endpoint(EndpointName=candidate.name)
    if description.get("EndpointStatus") != "InService":
        return f"status is now {description.get('EndpointStatus')}"
    changed_at = max(description["CreationTime"], description["LastModifiedTime"])
    if changed_at != candidate.changed_at:
        return f"it was recreated or updated during the run (at {_iso(changed_at)})"
    return None


def _delete_within_cap(
    clients: ReaperClients, settings: ReaperSettings, due: list[_Candidate], report: ReaperReport
) -> None:
    """Delete the endpoints that are due, oldest mark first, up to the per-run cap."""
    ordered = sorted(due, key=lambda candidate: (candidate.mark or "", candidate.name))
    for position, candidate in enumerate(ordered):
        reason = (
            f"no invocations in the last {settings.idle_window_hours} h; marked {candidate.mark}; "
            "endpoint config and model kept"
        )
        if position >= settings.max_deletions_per_run:
            cap = f"MAX_DELETIONS_PER_RUN={settings.max_deletions_per_run} reached"
            report.record(Decision(candidate.name, "deferred", "cap_reached", f"{reason}; {cap}"))
            continue
        if settings.dry_run:
            report.record(Decision(candidate.name, "would_delete", "idle", reason))
            continue
        try:
            changed = _changed_since_inspected(clients, candidate)
            if changed:
                report.record(
                    Decision(candidate.name, "kept", "changed_during_run", f"{reason}; not deleted: {changed}")
                )
                continue
            _log_acting(candidate, "delete", reason)
            clients.sagemaker.delete_endpoint(EndpointName=candidate.name)
        except Exception as error:
            logger.exception("could not delete endpoint", extra={"endpoint": candidate.name})
            report.record(Decision(candidate.name, "error", "delete_failed", f"{reason}; {error}"))
        else:
            report.record(Decision(candidate.name, "deleted", "idle", reason))


def _report_text(report: ReaperReport) -> str:
    """The SNS report: counts, then every decision except the quiet keeps, within SNS's size limit."""
    mode = "DRY RUN (nothing changed)" if report.dry_run else "live"
    lines = [f"Endpoint reaper run at {_iso(report.run_at)}, {mode}.", f"Counts: {json.dumps(report.counts())}", ""]
    if report.stopped_early:
        lines[2:2] = [f"THE RUN STOPPED EARLY: {report.stopped_early}; endpoints not listed were not judged."]
    listed = [decision for decision in report.decisions if decision.rule not in QUIET_RULES]
    budget = SNS_MESSAGE_BUDGET_BYTES - sum(len(line) + 1 for line in lines)
    for index, decision in enumerate(listed):
        line = f"{decision.action:<13} {decision.endpoint}: {decision.reason}"
        budget -= len(line.encode("utf-8")) + 1
        if budget < 0:
            lines.append(f"... and {len(listed) - index} more decisions in the audit events.")
            break
        lines.append(line)
    for rule, why in QUIET_RULES.items():
        quiet = sum(1 for decision in report.decisions if decision.rule == rule)
        if quiet or rule == "busy":
            lines.append(f"{quiet} endpoints kept because they {why} (listed in the audit events).")
    return "\n".join(lines)


def audit_events(report: ReaperReport, context: AuditContext) -> list[dict[str, Any]]:
    """One audit event per decision, in the order they were made (see the module docstring)."""
    run_at = _iso(report.run_at)
    events = []
    for sequence, decision in enumerate(report.decisions, start=1):
        details: dict[str, Any] = {
            "action": decision.action,
            "rule": decision.rule,
            "dry_run": report.dry_run,
            "run_at": run_at,
            "sequence": sequence,
            "events_in_run": len(report.decisions),
        }
        if report.stopped_early:
            details["stopped_early"] = report.stopped_early
        events.append(
            audit.audit_event(
                context,
                decision=AUDIT_DECISION_BY_ACTION.get(decision.action, "endpoint_kept"),
                # The run and the endpoint identify a decision: a retried PutEvents repeats its audit_id.
                key=f"{run_at}|{decision.endpoint}",
                subject={"endpoint_name": decision.endpoint},
                reason=decision.reason,
                time=report.run_at,
                details=details,
            )
        )
    return events


def send_report(
    clients: ReaperClients, settings: ReaperSettings, report: ReaperReport, sleep: Callable[[float], None] = time.sleep
) -> ReportDelivery:
    """Write the audit events (retrying refused entries), then publish the SNS report; say what did not go out.

    The audit goes first and does not depend on SNS: it is the record of what was deleted.
    """
    context = audit.AuditContext.from_env("endpoint_reaper", logger.get_correlation_id())
    written = audit.send(clients.events, settings.audit_event_bus_name, audit_events(report, context), sleep)
    report_problem = None
    try:
        counts = ", ".join(f"{key} {value}" for key, value in report.counts().items()) or "no endpoints"
        clients.sns.publish(
            TopicArn=settings.report_topic_arn,
            Subject=f"Endpoint reaper: {counts}"[:100],
            Message=_report_text(report),
        )
    except Exception as error:
        report_problem = f"{type(error).__name__}: {error}"
        logger.exception("SNS report not sent", extra={"counts": report.counts()})
    return ReportDelivery(written.unwritten, written.problem, report_problem)


def reap_and_report(
    clients: ReaperClients, settings: ReaperSettings, now: datetime, sleep: Callable[[float], None] = time.sleep
) -> tuple[ReaperReport, list[str]]:
    """One run: judge and act, then report what was decided even if the run stopped early; and what went wrong."""
    report = ReaperReport(run_at=now, dry_run=settings.dry_run)
    problems = []
    try:
        reap(clients, settings, now, report)
    except Exception as error:
        logger.exception("reaper run stopped early", extra={"decisions_so_far": len(report.decisions)})
        report.stopped_early = f"{type(error).__name__}: {error}"
        problems.append(f"the run stopped early: {report.stopped_early}")
    problems.extend(send_report(clients, settings, report, sleep).problems())
    return report, problems


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
    report, problems = reap_and_report(ReaperClients.default(), settings, now=datetime.now(UTC))
    count_decision("EndpointsJudged", len(report.decisions))
    for action, count in report.counts().items():
        # One metric per decision kind (EndpointsDeleted, EndpointsWouldMark, ...), summed over the run.
        count_decision(f"Endpoints{action.title().replace('_', '')}", count)
    logger.info("reaper run done", extra={"schedule_time": _iso(scheduled.time), "counts": report.counts()})
    if problems:
        count_decision("ReaperRunsFailed")
        raise ReaperRunFailed("; ".join(problems))
    return report.as_dict()
