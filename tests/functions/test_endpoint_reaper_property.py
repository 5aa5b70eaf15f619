"""endpoint_reaper over random fleets: an endpoint is deleted only on complete evidence that it may be.

The fleets mix busy and idle endpoints, young and old, marks fresh, due and stale (set before the
endpoint was recreated or updated), opt-out tags exact, written differently and nearly right,
endpoints in and out of the managed scope, and GetMetricData answers left incomplete for some.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from endpoint_reaper import ReaperClients, reap
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lambda_test_support import (
    MANAGED_PREFIX,
    MANAGEMENT_TAG,
    MARK,
    NOW,
    OPT_OUT,
    EndpointFleet,
    alter_metric_answers,
    mark_value,
    reaper_settings,
)
from moto import mock_aws
from moto.core.models import MockAWS

WINDOW = timedelta(hours=24)
MIN_AGE = timedelta(hours=24)


@pytest.fixture(scope="module")
def moto_session() -> Iterator[MockAWS]:
    """One moto for every example, reset between them: creating clients per example would dominate the run."""
    with mock_aws() as mock:
        yield mock


# Opt-out keys as people write them: every one of these must protect (the near-misses by the reaper's choice).
OPT_OUT_SPELLINGS = [
    OPT_OUT,
    OPT_OUT.upper(),
    f"  {OPT_OUT} ",
    OPT_OUT.replace("-", "_"),
    "mlops:reaper-optout",
    "mlops:reaper-opt-ot",
    "acme:reaper-opt-out",
    "reaper-opt-out",
]
# Ways a GetMetricData answer can leave an endpoint without evidence.
METRIC_FAULTS = ["missing", "partial", "message", "internal-error"]

_endpoint_specs = st.fixed_dictionaries(
    {
        # Both sides of the minimum age, and marks on both sides of the idle window.
        "age_hours": st.integers(min_value=0, max_value=23) | st.integers(min_value=24, max_value=120),
        # Hours after creation of the last update (a new model); None: never updated.
        "updated_after_hours": st.none() | st.integers(min_value=0, max_value=120),
        "config": st.sampled_from(["realtime", "realtime", "two-variants", "async", "serverless"]),
        "opt_out": st.none() | st.none() | st.sampled_from(OPT_OUT_SPELLINGS),
        "mark_hours_ago": st.none() | st.integers(min_value=0, max_value=72),
        # Relative to NOW; negative values fall between the first run and the second, 30 h later.
        "invoked_hours_ago": st.lists(st.integers(min_value=-30, max_value=96), max_size=2),
        "metric_fault": st.none() | st.none() | st.sampled_from(METRIC_FAULTS),
        "managed": st.booleans(),
    }
)


def _changed_at(spec: dict[str, Any]) -> datetime:
    created = NOW - timedelta(hours=spec["age_hours"])
    if spec["updated_after_hours"] is None:
        return created
    return min(created + timedelta(hours=spec["updated_after_hours"]), NOW)


def _build(specs: list[dict[str, Any]]) -> None:
    fleet = EndpointFleet()
    for index, spec in enumerate(specs):
        tags = {spec["opt_out"]: "true"} if spec["opt_out"] else {}
        if spec["mark_hours_ago"] is not None:
            tags[MARK] = mark_value(spec["mark_hours_ago"])
        if spec["managed"]:
            tags[MANAGEMENT_TAG] = f"{MANAGED_PREFIX}{index + 1}"
        created = NOW - timedelta(hours=spec["age_hours"])
        fleet.add(f"e{index}", created, config=spec["config"], tags=tags, modified_at=_changed_at(spec))
        variant = "Blue" if spec["config"] == "two-variants" else "AllTraffic"
        for hours in spec["invoked_hours_ago"]:
            fleet.invoke(f"e{index}", NOW - timedelta(hours=hours), variant=variant)


def _break_metric_answers(cloudwatch: Any, specs: list[dict[str, Any]]) -> None:
    """Spoil every GetMetricData answer for the endpoints whose spec draws a metric fault (at the client boundary)."""

    def spoil(parsed: dict[str, Any], asked: dict[str, str]) -> None:
        kept = []
        for result in parsed["MetricDataResults"]:
            fault = specs[int(asked[result["Id"]].removeprefix("e"))]["metric_fault"]
            if fault == "missing":
                continue
            if fault == "partial":
                result["StatusCode"] = "PartialData"
            elif fault == "internal-error":
                result["StatusCode"] = "InternalError"
            elif fault == "message":
                result["Messages"] = [{"Code": "PartialData", "Value": "not every datapoint was returned"}]
            kept.append(result)
        parsed["MetricDataResults"] = kept

    alter_metric_answers(cloudwatch, spoil)


# Found by this test: traffic stamped exactly at the second run's moment fell outside an exclusive EndTime.
_TRAFFIC_AT_THE_RUNS_MOMENT = {
    "age_hours": 0,
    "updated_after_hours": None,
    "config": "realtime",
    "opt_out": None,
    "mark_hours_ago": 0,
    "invoked_hours_ago": [-30],
    "metric_fault": None,
    "managed": False,
}
# A past defect: a busy endpoint whose result GetMetricData left out was judged idle.
_BUSY_BUT_LEFT_OUT = {**_TRAFFIC_AT_THE_RUNS_MOMENT, "age_hours": 48, "mark_hours_ago": 30, "invoked_hours_ago": [1]}
_BUSY_BUT_LEFT_OUT["metric_fault"] = "missing"
# A past defect: a mark copied onto a recreated endpoint deleted it on the first run that saw it.
_RECREATED_WITH_AN_OLD_MARK = {**_TRAFFIC_AT_THE_RUNS_MOMENT, "age_hours": 26, "mark_hours_ago": 40}
_RECREATED_WITH_AN_OLD_MARK["invoked_hours_ago"] = []


def _tags(sagemaker: Any, name: str) -> dict[str, str]:
    arn = sagemaker.describe_endpoint(EndpointName=name)["EndpointArn"]
    return {tag["Key"]: tag["Value"] for tag in sagemaker.list_tags(ResourceArn=arn)["Tags"]}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(specs=[_TRAFFIC_AT_THE_RUNS_MOMENT], dry_run=False, cap=1, scope="account")
@example(specs=[_BUSY_BUT_LEFT_OUT], dry_run=False, cap=1, scope="account")
@example(specs=[_RECREATED_WITH_AN_OLD_MARK], dry_run=False, cap=1, scope="account")
@given(
    specs=st.lists(_endpoint_specs, min_size=1, max_size=8),
    dry_run=st.sampled_from([False, False, True]),
    cap=st.integers(min_value=0, max_value=3),
    scope=st.sampled_from(["account", "managed"]),
)
def test_an_endpoint_is_deleted_only_on_complete_evidence(moto_session, specs, dry_run, cap, scope):
    """Two runs 30 h apart; invocation times are fixed, so the second run sees traffic the first did not."""
    moto_session.reset()
    _build(specs)
    clients = ReaperClients.default()
    _break_metric_answers(clients.cloudwatch, specs)
    topic = clients.sns.create_topic(Name="reports")["TopicArn"]
    settings_under_test = reaper_settings(topic, dry_run=dry_run, max_deletions_per_run=cap, scope=scope)

    for now in (NOW, NOW + timedelta(hours=30)):
        before = _endpoint_names()
        tags_before = {name: _tags(clients.sagemaker, name) for name in before}
        report = reap(clients, settings_under_test, now)
        actions = {decision.endpoint: decision.action for decision in report.decisions}
        deleted = {name for name, action in actions.items() if action == "deleted"}
        assert deleted == before - _endpoint_names()
        assert len(deleted) <= (0 if dry_run else cap)
        for name in before:
            spec = specs[int(name.removeprefix("e"))]
            if spec["metric_fault"]:
                # No evidence, no change: neither marked, unmarked nor deleted.
                assert actions[name] not in ("deleted", "marked", "unmarked"), name
            if scope == "managed" and not spec["managed"]:
                assert actions[name] == "kept", name
                assert _tags(clients.sagemaker, name) == tags_before[name], name
        for name in deleted:
            spec = specs[int(name.removeprefix("e"))]
            assert spec["metric_fault"] is None, name
            assert spec["opt_out"] is None, name
            assert scope == "account" or spec["managed"], name
            assert spec["config"] in ("realtime", "two-variants"), name
            assert now - (NOW - timedelta(hours=spec["age_hours"])) >= MIN_AGE, name
            invoked = [NOW - timedelta(hours=hours) for hours in spec["invoked_hours_ago"]]
            assert not any(now - WINDOW <= moment <= now for moment in invoked), name
            # The mark it was deleted on was set after the endpoint's last change, a whole window ago.
            marked_at = datetime.strptime(tags_before[name][MARK], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            assert _changed_at(spec) <= marked_at <= now - WINDOW, name


def _endpoint_names() -> set[str]:
    pages = boto3.client("sagemaker").get_paginator("list_endpoints").paginate()
    return {endpoint["EndpointName"] for page in pages for endpoint in page["Endpoints"]}
