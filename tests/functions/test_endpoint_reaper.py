"""endpoint_reaper: the decision table, the mark-then-delete sequence, fail-closed errors and the reports."""

from __future__ import annotations

import typing
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import boto3
import endpoint_reaper
import pytest
from botocore.exceptions import ClientError
from common import audit
from endpoint_reaper import Decision, ReaperClients, ReaperReport, reap, send_report
from lambda_test_support import (
    AUDIT_BUS,
    MARK,
    NOW,
    OPT_OUT,
    EndpointFleet,
    audit_details,
    load_event,
    mark_value,
    reaper_settings,
)


@pytest.fixture
def fleet(aws: None) -> EndpointFleet:
    return EndpointFleet()


@pytest.fixture
def topic(aws: None) -> str:
    return boto3.client("sns").create_topic(Name="mlops-notifications")["TopicArn"]


def _calls_to(client: Any, event_name: str) -> list[dict[str, Any]]:
    """Record the parameters of every call of one API on a client (a botocore event hook, at the boundary)."""
    seen: list[dict[str, Any]] = []

    def remember(params: dict[str, Any], **_: Any) -> None:
        seen.append(params)

    client.meta.events.register(f"before-parameter-build.{event_name}", remember)
    return seen


def _fail(client: Any, event_name: str, when: Callable[[dict[str, Any]], bool] = lambda params: True) -> None:
    """Make one API of a client fail with a service error, for the calls `when` picks."""

    def refuse(params: dict[str, Any], model: Any, **_: Any) -> None:
        if when(params):
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, model.name)

    client.meta.events.register(f"before-parameter-build.{event_name}", refuse)


def _decision_for(report: ReaperReport, name: str) -> Decision:
    [decision] = [decision for decision in report.decisions if decision.endpoint == name]
    return decision


MARKED_30H_AGO = {MARK: mark_value(30)}
DRY = {"dry_run": True}

# One endpoint per row; NOW is 48 h after creation unless the row says otherwise.
DECISION_TABLE = [
    # id, endpoint config, tags, invocations (hours before NOW), age (h), setting overrides, action, rule, still exists
    ("busy", "realtime", {}, [1], 48, {}, "kept", "busy", True),
    ("busy-on-one-of-two-variants", "two-variants", {}, [1], 48, {}, "kept", "busy", True),
    ("idle-unmarked-gets-marked", "realtime", {}, [], 48, {}, "marked", "idle", True),
    ("idle-unmarked-dry-run", "realtime", {}, [], 48, {"dry_run": True}, "would_mark", "idle", True),
    ("idle-marked-a-window-ago-deleted", "realtime", {MARK: mark_value(25)}, [], 48, {}, "deleted", "idle", False),
    (
        "idle-marked-dry-run",
        "realtime",
        {MARK: mark_value(25)},
        [],
        48,
        {"dry_run": True},
        "would_delete",
        "idle",
        True,
    ),
    ("idle-marked-recently-waits", "realtime", {MARK: mark_value(1)}, [], 48, {}, "kept", "mark_pending", True),
    ("traffic-only-before-window", "realtime", {MARK: mark_value(25)}, [30], 48, {}, "deleted", "idle", False),
    ("busy-marked-unmarked", "realtime", {MARK: mark_value(30)}, [2], 48, {}, "unmarked", "traffic_returned", True),
    (
        "busy-marked-dry-run",
        "realtime",
        {MARK: mark_value(30)},
        [2],
        48,
        {"dry_run": True},
        "would_unmark",
        "traffic_returned",
        True,
    ),
    ("opt-out-tag", "realtime", {OPT_OUT: "true", MARK: mark_value(30)}, [], 48, {}, "kept", "opt_out", True),
    ("under-minimum-age", "realtime", {MARK: mark_value(30)}, [], 2, {}, "kept", "too_young", True),
    ("async", "async", {MARK: mark_value(30)}, [], 48, {}, "kept", "async", True),
    ("serverless", "serverless", {MARK: mark_value(30)}, [], 48, {}, "kept", "serverless", True),
    (
        "cap-reached",
        "realtime",
        {MARK: mark_value(30)},
        [],
        48,
        {"max_deletions_per_run": 0},
        "deferred",
        "cap_reached",
        True,
    ),
    ("unreadable-mark", "realtime", {MARK: "last tuesday"}, [], 48, {}, "error", "bad_mark", True),
]


@pytest.mark.parametrize(
    ("config", "tags", "invoked_hours_ago", "age_hours", "overrides", "action", "rule", "exists"),
    [pytest.param(*row[1:], id=row[0]) for row in DECISION_TABLE],
)
def test_reaper_decision_table(
    fleet, topic, config, tags, invoked_hours_ago, age_hours, overrides, action, rule, exists
):
    fleet.add("endpoint", NOW - timedelta(hours=age_hours), config=config, tags=tags)
    variant = "Green" if config == "two-variants" else "AllTraffic"
    for hours in invoked_hours_ago:
        fleet.invoke("endpoint", NOW - timedelta(hours=hours), count=3, variant=variant)

    report = reap(ReaperClients.default(), reaper_settings(topic, **overrides), NOW)

    decision = _decision_for(report, "endpoint")
    assert (decision.action, decision.rule) == (action, rule), decision.reason
    assert ("endpoint" in fleet.names()) is exists
    if exists:
        expected_mark = {"marked": mark_value(0), "unmarked": None}.get(action, tags.get(MARK))
        assert fleet.tags("endpoint").get(MARK) == expected_mark


def test_mark_on_one_run_then_delete_on_a_later_run_keeping_config_and_model(fleet, topic):
    fleet.add("idle", NOW - timedelta(days=3))
    clients, settings = ReaperClients.default(), reaper_settings(topic)

    first = reap(clients, settings, NOW)
    an_hour_later = reap(clients, settings, NOW + timedelta(hours=1))
    a_window_later = reap(clients, settings, NOW + timedelta(hours=24))

    assert [_decision_for(run, "idle").action for run in (first, an_hour_later, a_window_later)] == [
        "marked",
        "kept",
        "deleted",
    ]
    assert fleet.names() == set()
    # What recreating the endpoint needs stays.
    assert fleet.sagemaker.describe_endpoint_config(EndpointConfigName="realtime")["EndpointConfigName"] == "realtime"
    assert fleet.sagemaker.describe_model(ModelName="model")["ModelName"] == "model"


def test_traffic_between_mark_and_deletion_unmarks_and_restarts_the_wait(fleet, topic):
    fleet.add("revived", NOW - timedelta(days=3))
    clients, settings = ReaperClients.default(), reaper_settings(topic)

    reap(clients, settings, NOW)
    fleet.invoke("revived", NOW + timedelta(hours=3))
    revived = reap(clients, settings, NOW + timedelta(hours=4))
    remarked = reap(clients, settings, NOW + timedelta(hours=28))
    waiting = reap(clients, settings, NOW + timedelta(hours=29))

    assert [_decision_for(run, "revived").action for run in (revived, remarked, waiting)] == [
        "unmarked",
        "marked",
        "kept",
    ]
    assert "revived" in fleet.names()


def test_deletion_cap_takes_the_oldest_marks_first_and_defers_the_rest(fleet, topic):
    for name, marked_hours_ago in [("newest", 26), ("oldest", 50), ("middle", 30)]:
        fleet.add(name, NOW - timedelta(days=5), tags={MARK: mark_value(marked_hours_ago)})

    report = reap(ReaperClients.default(), reaper_settings(topic, max_deletions_per_run=2), NOW)

    actions = {decision.endpoint: decision.action for decision in report.decisions}
    assert actions == {"oldest": "deleted", "middle": "deleted", "newest": "deferred"}
    assert fleet.names() == {"newest"}


def test_more_than_one_page_of_endpoints_is_judged(fleet, topic):
    names = {f"endpoint-{index:03d}" for index in range(101)}
    for name in names:
        fleet.add(name, NOW - timedelta(days=5))
    clients = ReaperClients.default()
    list_calls = _calls_to(clients.sagemaker, "sagemaker.ListEndpoints")

    report = reap(clients, reaper_settings(topic), NOW)

    assert {decision.endpoint for decision in report.decisions} == names
    assert {decision.action for decision in report.decisions} == {"marked"}
    assert len(list_calls) == 2


def test_error_describing_one_endpoint_leaves_it_alone_and_the_rest_proceed(fleet, topic):
    for name in ("broken", "healthy"):
        fleet.add(name, NOW - timedelta(days=5), tags={MARK: mark_value(30)})
    clients = ReaperClients.default()
    _fail(clients.sagemaker, "sagemaker.DescribeEndpoint", when=lambda params: params["EndpointName"] == "broken")

    report = reap(clients, reaper_settings(topic), NOW)

    assert (_decision_for(report, "broken").action, _decision_for(report, "broken").rule) == ("error", "inspect_failed")
    assert _decision_for(report, "healthy").action == "deleted"
    assert fleet.names() == {"broken"}


def test_metrics_that_cannot_be_read_mean_no_endpoint_is_judged_idle(fleet, topic):
    fleet.add("marked", NOW - timedelta(days=5), tags={MARK: mark_value(30)})
    fleet.add("unmarked", NOW - timedelta(days=5))
    clients = ReaperClients.default()
    _fail(clients.cloudwatch, "cloudwatch.GetMetricData")

    report = reap(clients, reaper_settings(topic), NOW)

    assert {(decision.action, decision.rule) for decision in report.decisions} == {("error", "metrics_failed")}
    assert fleet.names() == {"marked", "unmarked"}
    assert MARK not in fleet.tags("unmarked")


def test_failed_deletion_is_reported_as_an_error(fleet, topic):
    fleet.add("stuck", NOW - timedelta(days=5), tags={MARK: mark_value(30)})
    clients = ReaperClients.default()
    _fail(clients.sagemaker, "sagemaker.DeleteEndpoint")

    report = reap(clients, reaper_settings(topic), NOW)

    assert (_decision_for(report, "stuck").action, _decision_for(report, "stuck").rule) == ("error", "delete_failed")


def test_failure_listing_endpoints_stops_the_run_before_any_change(fleet, topic):
    fleet.add("marked", NOW - timedelta(days=5), tags={MARK: mark_value(30)})
    clients = ReaperClients.default()
    _fail(clients.sagemaker, "sagemaker.ListEndpoints")

    with pytest.raises(ClientError):
        reap(clients, reaper_settings(topic), NOW)
    assert fleet.names() == {"marked"}


def test_one_sns_report_and_one_audit_event_per_decision_ten_per_put_events(aws, topic):
    decisions = [
        Decision(f"endpoint-{index}", "kept", "busy", "3 invocations in the last 24 h") for index in range(1234)
    ]
    decisions.append(Decision("old-idle", "deleted", "idle", "no invocations in the last 24 h; marked ..."))
    report = ReaperReport(run_at=NOW, dry_run=False, decisions=decisions)
    clients = ReaperClients.default()
    published = _calls_to(clients.sns, "sns.Publish")
    put_events = _calls_to(clients.events, "events.PutEvents")

    delivery = send_report(clients, reaper_settings(topic), report)

    assert delivery.problems() == []
    assert len(published) == 1
    assert "deleted       old-idle: no invocations" in published[0]["Message"]
    assert "1234 endpoints kept because they served requests" in published[0]["Message"]
    assert [len(call["Entries"]) for call in put_events] == [10] * 123 + [5]
    audited = audit_details(put_events)
    assert [event["subject"]["endpoint_name"] for event in audited] == [d.endpoint for d in decisions]
    assert all(audit.verify(event) is None for event in audited)
    last = audited[-1]
    assert (last["decision"], last["reason"]) == ("endpoint_deleted", "no invocations in the last 24 h; marked ...")
    assert last["details"] == {
        "action": "deleted",
        "rule": "idle",
        "dry_run": False,
        "run_at": "2030-01-10T12:00:00Z",
        "sequence": 1235,
        "events_in_run": 1235,
    }


@pytest.mark.parametrize(
    ("action", "decision"),
    [
        ("deleted", "endpoint_deleted"),
        ("marked", "endpoint_marked"),
        ("would_delete", "endpoint_kept"),
        ("would_mark", "endpoint_kept"),
        ("unmarked", "endpoint_kept"),
        ("deferred", "endpoint_kept"),
        ("kept", "endpoint_kept"),
        ("error", "endpoint_kept"),
    ],
)
def test_each_reaper_action_is_audited_as_what_happened_to_the_endpoint(aws, topic, action, decision):
    report = ReaperReport(run_at=NOW, dry_run=action.startswith("would"), decisions=[Decision("e", action, "r", "why")])
    clients = ReaperClients.default()
    put_events = _calls_to(clients.events, "events.PutEvents")

    send_report(clients, reaper_settings(topic), report)

    [event] = audit_details(put_events)
    assert put_events[0]["Entries"][0]["Source"] == audit.AUDIT_SOURCE
    assert put_events[0]["Entries"][0]["DetailType"] == audit.AUDIT_DETAIL_TYPE
    assert (event["decision"], event["details"]["action"], event["actor"]) == (decision, action, "endpoint_reaper")


def test_handler_runs_on_the_schedule_event_and_defaults_to_dry_run(fleet, topic, lambda_context, monkeypatch):
    monkeypatch.setenv("IDLE_WINDOW_HOURS", "24")
    monkeypatch.setenv("MIN_AGE_HOURS", "0")
    monkeypatch.delenv("DRY_RUN", raising=False)
    monkeypatch.setenv("OPT_OUT_TAG", OPT_OUT)
    monkeypatch.setenv("MARK_TAG", MARK)
    monkeypatch.setenv("MAX_DELETIONS_PER_RUN", "5")
    monkeypatch.setenv("REPORT_TOPIC_ARN", topic)
    monkeypatch.setenv("AUDIT_EVENT_BUS_NAME", AUDIT_BUS)
    monkeypatch.setenv("REAPER_SCOPE", "account")
    monkeypatch.setenv("MANAGEMENT_TAG", "mlops:model-package-arn")
    created = datetime.now(tz=NOW.tzinfo) - timedelta(days=5)
    mark = (created + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fleet.add("idle", created, tags={MARK: mark})

    result = endpoint_reaper.handler(load_event("endpoint_reaper/schedule.json"), lambda_context)

    assert result["dry_run"] is True
    assert result["decisions"] == [
        {
            "endpoint": "idle",
            "action": "would_delete",
            "rule": "idle",
            "reason": f"no invocations in the last 24 h; marked {mark}; endpoint config and model kept",
        }
    ]
    assert fleet.names() == {"idle"}


def test_handler_rejects_an_event_that_is_not_a_schedule_with_one_logged_error(
    aws, lambda_context, monkeypatch, caplog
):
    for name, value in {
        "IDLE_WINDOW_HOURS": "24",
        "MIN_AGE_HOURS": "24",
        "OPT_OUT_TAG": OPT_OUT,
        "MARK_TAG": MARK,
        "MAX_DELETIONS_PER_RUN": "5",
        "REPORT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:topic",
        "AUDIT_EVENT_BUS_NAME": AUDIT_BUS,
        "REAPER_SCOPE": "account",
        "MANAGEMENT_TAG": "mlops:model-package-arn",
    }.items():
        monkeypatch.setenv(name, value)

    result = endpoint_reaper.handler(load_event("endpoint_reaper/not_a_schedule.json"), lambda_context)

    assert result == {"rejected": "not an EventBridge Scheduled Event: detail-type: Field required"}
    assert [record.levelname for record in caplog.records].count("ERROR") == 1


def test_report_subject_and_message_stay_within_the_sns_limits(aws, topic):
    every_action = typing.get_args(endpoint_reaper.Action)
    long_reason = "r" * 2000
    decisions = [Decision(f"e{index}", every_action[index % 9], "x", long_reason) for index in range(900)]
    clients = ReaperClients.default()
    published = _calls_to(clients.sns, "sns.Publish")

    send_report(clients, reaper_settings(topic), ReaperReport(run_at=NOW, dry_run=False, decisions=decisions))

    assert len(published[0]["Subject"]) <= 100
    assert len(published[0]["Message"].encode("utf-8")) <= 256 * 1024
    assert "more decisions in the audit events" in published[0]["Message"]
