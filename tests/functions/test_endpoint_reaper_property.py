"""endpoint_reaper over random fleets: no busy, opted-out or young endpoint is ever deleted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from endpoint_reaper import ReaperClients, reap
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lambda_test_support import MARK, NOW, OPT_OUT, EndpointFleet, mark_value, reaper_settings
from moto import mock_aws
from moto.core.models import MockAWS

WINDOW = timedelta(hours=24)
MIN_AGE = timedelta(hours=24)


@pytest.fixture(scope="module")
def moto_session() -> Iterator[MockAWS]:
    """One moto for every example, reset between them: creating clients per example would dominate the run."""
    with mock_aws() as mock:
        yield mock


_endpoint_specs = st.fixed_dictionaries(
    {
        # Both sides of the minimum age, and marks on both sides of the idle window.
        "age_hours": st.integers(min_value=0, max_value=23) | st.integers(min_value=24, max_value=120),
        "config": st.sampled_from(["realtime", "realtime", "two-variants", "async", "serverless"]),
        "opt_out": st.booleans(),
        "mark_hours_ago": st.none() | st.integers(min_value=0, max_value=72),
        # Relative to NOW; negative values fall between the first run and the second, 30 h later.
        "invoked_hours_ago": st.lists(st.integers(min_value=-30, max_value=96), max_size=2),
    }
)


def _build(specs: list[dict[str, Any]]) -> None:
    fleet = EndpointFleet()
    for index, spec in enumerate(specs):
        tags = {OPT_OUT: "true"} if spec["opt_out"] else {}
        if spec["mark_hours_ago"] is not None:
            tags[MARK] = mark_value(spec["mark_hours_ago"])
        fleet.add(f"e{index}", NOW - timedelta(hours=spec["age_hours"]), config=spec["config"], tags=tags)
        variant = "Blue" if spec["config"] == "two-variants" else "AllTraffic"
        for hours in spec["invoked_hours_ago"]:
            fleet.invoke(f"e{index}", NOW - timedelta(hours=hours), variant=variant)


# Found by this test: traffic stamped exactly at the second run's moment fell outside an exclusive EndTime.
_TRAFFIC_AT_THE_RUNS_MOMENT = {
    "age_hours": 0,
    "config": "realtime",
    "opt_out": False,
    "mark_hours_ago": 0,
    "invoked_hours_ago": [-30],
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(specs=[_TRAFFIC_AT_THE_RUNS_MOMENT], dry_run=False, cap=1)
@given(
    specs=st.lists(_endpoint_specs, min_size=1, max_size=8),
    dry_run=st.sampled_from([False, False, True]),
    cap=st.integers(min_value=0, max_value=3),
)
def test_no_busy_opted_out_or_young_endpoint_is_ever_deleted(moto_session, specs, dry_run, cap):
    """Two runs 30 h apart; invocation times are fixed, so the second run sees traffic the first did not."""
    moto_session.reset()
    _build(specs)
    clients = ReaperClients.default()
    topic = clients.sns.create_topic(Name="reports")["TopicArn"]
    settings_under_test = reaper_settings(topic, dry_run=dry_run, max_deletions_per_run=cap)

    for now in (NOW, NOW + timedelta(hours=30)):
        before = _endpoint_names()
        report = reap(clients, settings_under_test, now)
        deleted = {decision.endpoint for decision in report.decisions if decision.action == "deleted"}
        assert deleted == before - _endpoint_names()
        assert len(deleted) <= (0 if dry_run else cap)
        for name in deleted:
            spec = specs[int(name.removeprefix("e"))]
            assert not spec["opt_out"], name
            assert spec["config"] in ("realtime", "two-variants"), name
            assert now - (NOW - timedelta(hours=spec["age_hours"])) >= MIN_AGE, name
            invoked = [NOW - timedelta(hours=hours) for hours in spec["invoked_hours_ago"]]
            assert not any(now - WINDOW <= moment <= now for moment in invoked), name


def _endpoint_names() -> set[str]:
    pages = boto3.client("sagemaker").get_paginator("list_endpoints").paginate()
    return {endpoint["EndpointName"] for page in pages for endpoint in page["Endpoints"]}
