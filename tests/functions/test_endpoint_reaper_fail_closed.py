"""endpoint_reaper under bad luck: incomplete metric answers, lost reports, stale marks, mistyped tags, scope.

Each test names the reaper defect it guards against; AWS is moto, with answers altered at the
client boundary (botocore event hooks and Stubber), never the code under test.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import boto3
import endpoint_reaper
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from common import audit
from common.settings import ReaperSettings, SettingsError
from endpoint_reaper import (
    Decision,
    ReaperClients,
    ReaperReport,
    ReaperRunFailed,
    invocations_by_endpoint,
    opt_out_keys,
    reap,
    reap_and_report,
    send_report,
)
from lambda_test_support import (
    ACCOUNT_ID,
    AUDIT_BUS,
    MANAGED_PREFIX,
    MANAGEMENT_TAG,
    MARK,
    NOW,
    OPT_OUT,
    EndpointFleet,
    alter_metric_answers,
    audit_details,
    load_event,
    mark_value,
    reaper_settings,
)
from moto.sagemaker.models import sagemaker_backends

WINDOW = timedelta(hours=24)


@pytest.fixture
def fleet(aws: None) -> EndpointFleet:
    return EndpointFleet()


@pytest.fixture
def topic(aws: None) -> str:
    return boto3.client("sns").create_topic(Name="mlops-notifications")["TopicArn"]


def _decision_for(report: ReaperReport, name: str) -> Decision:
    [decision] = [decision for decision in report.decisions if decision.endpoint == name]
    return decision


# --- 1. Fail closed on incomplete GetMetricData answers ---------------------------------------------------


def test_an_answer_leaving_out_a_busy_endpoints_result_keeps_it_as_metrics_failed(fleet, topic):
    # GIVEN a busy endpoint carrying an old mark, and a GetMetricData answer that leaves out its result
    fleet.add("busy", NOW - timedelta(days=5), tags={MARK: mark_value(30)})
    fleet.invoke("busy", NOW - timedelta(hours=1), count=50)
    clients = ReaperClients.default()

    def drop_busy(answer: dict[str, Any], asked: dict[str, str]) -> None:
        answer["MetricDataResults"] = [r for r in answer["MetricDataResults"] if asked[r["Id"]] != "busy"]

    alter_metric_answers(clients.cloudwatch, drop_busy)

    # WHEN the reaper runs
    report = reap(clients, reaper_settings(topic), NOW)

    # THEN the endpoint is not judged idle: kept, unmarked by nobody, reported
    decision = _decision_for(report, "busy")
    assert (decision.action, decision.rule) == ("error", "metrics_failed"), decision.reason
    assert "no result" in decision.reason
    assert fleet.names() == {"busy"}
    assert fleet.tags("busy")[MARK] == mark_value(30)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        pytest.param({"MetricDataResults": []}, "no result", id="result-missing"),
        pytest.param(
            {"MetricDataResults": [{"Id": "q0", "Values": [], "StatusCode": "PartialData"}]},
            "status PartialData",
            id="partial-status",
        ),
        pytest.param(
            {"MetricDataResults": [{"Id": "q0", "Values": [], "StatusCode": "InternalError"}]},
            "status InternalError",
            id="internal-error-status",
        ),
        pytest.param(
            {"MetricDataResults": [{"Id": "q0", "Values": [], "StatusCode": "Forbidden"}]},
            "status Forbidden",
            id="forbidden-status",
        ),
        pytest.param({"MetricDataResults": [{"Id": "q0", "Values": []}]}, "status None", id="status-missing"),
        pytest.param(
            {
                "MetricDataResults": [
                    {
                        "Id": "q0",
                        "Values": [],
                        "StatusCode": "Complete",
                        "Messages": [{"Code": "PartialData", "Value": "some data was not returned"}],
                    }
                ]
            },
            "PartialData: some data was not returned",
            id="result-message",
        ),
        pytest.param(
            {
                "MetricDataResults": [{"Id": "q0", "Values": [], "StatusCode": "Complete"}],
                "Messages": [{"Code": "MaxMetricsExceeded", "Value": "too many"}],
            },
            "MaxMetricsExceeded",
            id="call-message",
        ),
        pytest.param(
            {"MetricDataResults": [{"Id": "q7", "Values": [], "StatusCode": "Complete"}]},
            "not asked",
            id="unknown-query-id",
        ),
        pytest.param(
            {"MetricDataResults": [{"Id": "q0", "Values": [-3.0], "StatusCode": "Complete"}]},
            "cannot be counts",
            id="negative-count",
        ),
    ],
)
def test_an_incomplete_answer_is_no_evidence_of_idleness(answer, reason):
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    with Stubber(cloudwatch) as stubber:
        stubber.add_response("get_metric_data", answer)

        totals, failed = invocations_by_endpoint(cloudwatch, {"endpoint": ["AllTraffic"]}, WINDOW, NOW)

    assert totals == {"endpoint": 0.0}
    assert set(failed) == {"endpoint"}
    assert reason in failed["endpoint"]


def test_an_answer_still_paging_after_the_page_limit_is_no_evidence():
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    with Stubber(cloudwatch) as stubber:
        for _ in range(endpoint_reaper.MAX_METRIC_PAGES):
            stubber.add_response(
                "get_metric_data",
                {"MetricDataResults": [{"Id": "q0", "Values": [], "StatusCode": "PartialData"}], "NextToken": "more"},
            )

        _, failed = invocations_by_endpoint(cloudwatch, {"endpoint": ["AllTraffic"]}, WINDOW, NOW)
        stubber.assert_no_pending_responses()

    assert "NextToken" in failed["endpoint"]


def test_a_paged_answer_is_summed_over_its_pages_and_complete_only_on_the_last():
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    with Stubber(cloudwatch) as stubber:
        stubber.add_response(
            "get_metric_data",
            {"MetricDataResults": [{"Id": "q0", "Values": [2.0], "StatusCode": "PartialData"}], "NextToken": "page-2"},
        )
        stubber.add_response(
            "get_metric_data",
            {"MetricDataResults": [{"Id": "q0", "Values": [3.0], "StatusCode": "Complete"}]},
            expected_params={
                "MetricDataQueries": ANY,
                "StartTime": NOW - WINDOW,
                "EndTime": NOW + endpoint_reaper.METRIC_END_MARGIN,
                "NextToken": "page-2",
            },
        )

        totals, failed = invocations_by_endpoint(cloudwatch, {"endpoint": ["AllTraffic"]}, WINDOW, NOW)

    assert (totals, failed) == ({"endpoint": 5.0}, {})


def test_one_incomplete_variant_fails_the_whole_endpoint():
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    with Stubber(cloudwatch) as stubber:
        stubber.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    {"Id": "q0", "Values": [], "StatusCode": "Complete"},
                    {"Id": "q1", "Values": [], "StatusCode": "PartialData"},
                    {"Id": "q2", "Values": [], "StatusCode": "Complete"},
                ]
            },
        )

        totals, failed = invocations_by_endpoint(cloudwatch, {"a": ["Blue", "Green"], "b": ["AllTraffic"]}, WINDOW, NOW)

    assert set(failed) == {"a"}
    assert "variant Green" in failed["a"]
    assert totals["b"] == 0.0


# --- 2. Every decision recorded, whatever breaks -----------------------------------------------------------


def _audited_decisions(put_events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each audited decision as the reaper made it: endpoint, action and rule from its audit event."""
    return [
        {"endpoint": e["subject"]["endpoint_name"], "action": e["details"]["action"], "rule": e["details"]["rule"]}
        for e in audit_details(put_events)
    ]


def _calls_to(client: Any, event_name: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    client.meta.events.register(f"before-parameter-build.{event_name}", lambda params, **_: seen.append(params))
    return seen


def _fail(client: Any, event_name: str) -> None:
    def refuse(model: Any, **_: Any) -> None:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, model.name)

    client.meta.events.register(f"before-parameter-build.{event_name}", refuse)


def test_a_failed_sns_publish_still_audits_the_deletion_and_fails_the_run(fleet, topic):
    fleet.add("idle", NOW - timedelta(days=5), tags={MARK: mark_value(30)})
    clients = ReaperClients.default()
    _fail(clients.sns, "sns.Publish")
    put_events = _calls_to(clients.events, "events.PutEvents")

    _, problems = reap_and_report(clients, reaper_settings(topic), NOW, sleep=lambda seconds: None)

    assert fleet.names() == set()
    assert [d["endpoint"] for d in _audited_decisions(put_events) if d["action"] == "deleted"] == ["idle"]
    assert len(problems) == 1
    assert problems[0].startswith("SNS report not sent: ClientError")


def test_the_handler_raises_when_the_report_could_not_be_delivered(fleet, topic, lambda_context, monkeypatch):
    for name, value in {
        "IDLE_WINDOW_HOURS": "24",
        "MIN_AGE_HOURS": "24",
        "OPT_OUT_TAG": OPT_OUT,
        "MARK_TAG": MARK,
        "MAX_DELETIONS_PER_RUN": "5",
        "REPORT_TOPIC_ARN": topic.replace("mlops-notifications", "no-such-topic"),
        "AUDIT_EVENT_BUS_NAME": AUDIT_BUS,
        "REAPER_SCOPE": "account",
        "MANAGEMENT_TAG": MANAGEMENT_TAG,
    }.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ReaperRunFailed, match="SNS report not sent"):
        endpoint_reaper.handler(load_event("endpoint_reaper/schedule.json"), lambda_context)


def _put_events_answer(entries: int, refused: set[int]) -> dict[str, Any]:
    results = [
        {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"} if i in refused else {"EventId": f"id-{i}"}
        for i in range(entries)
    ]
    return {"FailedEntryCount": len(refused), "Entries": results}


def _report_of(decisions: int) -> ReaperReport:
    return ReaperReport(
        run_at=NOW,
        dry_run=False,
        decisions=[Decision(f"e{index}", "kept", "busy", "3 invocations") for index in range(decisions)],
    )


def test_refused_audit_entries_are_sent_again_with_backoff(aws, topic):
    clients = ReaperClients.default()
    slept: list[float] = []
    # 3 decisions: three entries; EventBridge refuses the second, then accepts it.
    with Stubber(clients.events) as stubber:
        stubber.add_response("put_events", _put_events_answer(3, refused={1}))
        stubber.add_response("put_events", _put_events_answer(1, refused=set()))
        resent = _calls_to(clients.events, "events.PutEvents")

        delivery = send_report(clients, reaper_settings(topic), _report_of(3), sleep=slept.append)
        stubber.assert_no_pending_responses()

    assert delivery.problems() == []
    assert [json.loads(entry["Detail"])["details"]["sequence"] for entry in resent[1]["Entries"]] == [2]
    assert slept == [audit.PUT_EVENTS_FIRST_BACKOFF_SECONDS]


def test_audit_entries_refused_after_every_retry_fail_the_run_and_sns_is_still_sent(aws, topic):
    clients = ReaperClients.default()
    slept: list[float] = []
    published = _calls_to(clients.sns, "sns.Publish")
    with Stubber(clients.events) as stubber:
        for _ in range(audit.PUT_EVENTS_ATTEMPTS):
            stubber.add_response("put_events", _put_events_answer(1, refused={0}))

        delivery = send_report(clients, reaper_settings(topic), _report_of(1), sleep=slept.append)
        stubber.assert_no_pending_responses()

    assert delivery.audit_entries_unwritten == 1
    assert delivery.problems() == ["1 audit entries not written: ThrottlingException: slow down"]
    assert slept == [0.5, 1.0, 2.0]
    assert len(published) == 1


def test_a_put_events_call_that_fails_is_not_sent_again_by_the_reaper_and_fails_the_run(aws, topic):
    # botocore already retried it per its retry configuration; a second loop would only multiply the wait.
    clients = ReaperClients.default()
    slept: list[float] = []
    with Stubber(clients.events) as stubber:
        stubber.add_client_error("put_events", service_error_code="AccessDeniedException", service_message="no")

        delivery = send_report(clients, reaper_settings(topic), _report_of(1), sleep=slept.append)

    [problem] = delivery.problems()
    assert problem.startswith("1 audit entries not written: PutEvents failed: AccessDeniedException")
    assert slept == []


def test_audit_requests_stay_under_the_put_events_limit_however_long_the_reasons(aws, topic):
    clients = ReaperClients.default()
    put_events = _calls_to(clients.events, "events.PutEvents")
    decisions = [Decision(f"e{index}", "error", "delete_failed", "x" * 3000) for index in range(200)]

    delivery = send_report(
        clients, reaper_settings(topic), ReaperReport(run_at=NOW, dry_run=False, decisions=decisions)
    )

    assert delivery.problems() == []
    assert all(len(json.dumps(call["Entries"]).encode()) < 256 * 1024 for call in put_events)
    assert len(_audited_decisions(put_events)) == 200


def test_a_run_that_stops_early_reports_what_it_decided_and_fails(fleet, topic):
    fleet.add("young", NOW - timedelta(hours=1))
    fleet.add("old", NOW - timedelta(days=5))
    clients = ReaperClients.default()
    _fail(clients.cloudwatch, "cloudwatch.ListMetrics")
    put_events = _calls_to(clients.events, "events.PutEvents")

    report, problems = reap_and_report(clients, reaper_settings(topic), NOW, sleep=lambda seconds: None)

    assert problems == [f"the run stopped early: {report.stopped_early}"]
    [detail] = audit_details(put_events)
    assert detail["details"]["stopped_early"].startswith("ClientError")
    assert detail["subject"] == {"endpoint_name": "young"}
    assert fleet.names() == {"young", "old"}


def test_every_change_is_logged_before_the_call_that_makes_it(fleet, topic, caplog):
    fleet.add("to-delete", NOW - timedelta(days=5), tags={MARK: mark_value(30)})
    fleet.add("to-mark", NOW - timedelta(days=5))
    clients = ReaperClients.default()
    logged_before: dict[str, list[str]] = {}

    def snapshot(operation: str) -> Callable[..., None]:
        def take(params: dict[str, Any], **_: Any) -> None:
            acting = [r for r in caplog.records if r.getMessage() == "reaper acting"]
            logged_before[operation] = [f"{r.act} {r.endpoint}" for r in acting]

        return take

    clients.sagemaker.meta.events.register("before-parameter-build.sagemaker.DeleteEndpoint", snapshot("delete"))
    clients.sagemaker.meta.events.register("before-parameter-build.sagemaker.AddTags", snapshot("mark"))

    with caplog.at_level(logging.INFO):
        report = reap(clients, reaper_settings(topic), NOW)

    assert "delete to-delete" in logged_before["delete"]
    assert "mark to-mark" in logged_before["mark"]
    decided = [r.endpoint for r in caplog.records if r.getMessage() == "reaper decision"]
    assert sorted(decided) == sorted(decision.endpoint for decision in report.decisions)


# --- 3. A mark older than the endpoint is no mark ---------------------------------------------------------


@pytest.mark.parametrize(
    ("created_hours_ago", "modified_hours_ago", "dry_run", "action"),
    [
        pytest.param(28, None, False, "marked", id="recreated-with-copied-tags"),
        pytest.param(100, 26, False, "marked", id="updated-to-a-new-model"),
        pytest.param(100, 26, True, "would_mark", id="updated-dry-run"),
    ],
)
def test_a_mark_older_than_the_endpoint_is_no_mark(
    fleet, topic, created_hours_ago, modified_hours_ago, dry_run, action
):
    modified = None if modified_hours_ago is None else NOW - timedelta(hours=modified_hours_ago)
    fleet.add("endpoint", NOW - timedelta(hours=created_hours_ago), tags={MARK: mark_value(30)}, modified_at=modified)

    report = reap(ReaperClients.default(), reaper_settings(topic, dry_run=dry_run), NOW)

    decision = _decision_for(report, "endpoint")
    assert (decision.action, decision.rule) == (action, "stale_mark"), decision.reason
    assert fleet.names() == {"endpoint"}
    assert fleet.tags("endpoint")[MARK] == (mark_value(30) if dry_run else mark_value(0))


def test_an_endpoint_updated_during_the_run_is_not_deleted(fleet, topic):
    fleet.add("endpoint", NOW - timedelta(days=5), tags={MARK: mark_value(30)})
    clients = ReaperClients.default()
    described = []

    def someone_updates_it_after_the_first_describe(params: dict[str, Any], **_: Any) -> None:
        described.append(params["EndpointName"])
        if len(described) == 2:
            record = sagemaker_backends[ACCOUNT_ID]["us-east-1"].endpoints["endpoint"]
            record.last_modified_time = (NOW - timedelta(minutes=1)).replace(tzinfo=None)

    clients.sagemaker.meta.events.register(
        "before-parameter-build.sagemaker.DescribeEndpoint", someone_updates_it_after_the_first_describe
    )

    report = reap(clients, reaper_settings(topic), NOW)

    decision = _decision_for(report, "endpoint")
    assert (decision.action, decision.rule) == ("kept", "changed_during_run"), decision.reason
    assert fleet.names() == {"endpoint"}


# --- 4. The opt-out tag as humans write it ----------------------------------------------------------------


@pytest.mark.parametrize("key", ["MLOPS:Reaper-Opt-Out", " mlops:reaper-opt-out ", "mlops:reaper_opt_out"])
def test_an_opt_out_key_written_differently_still_protects(fleet, topic, key):
    fleet.add("endpoint", NOW - timedelta(days=5), tags={key: "yes", MARK: mark_value(30)})

    report = reap(ReaperClients.default(), reaper_settings(topic), NOW)

    assert (_decision_for(report, "endpoint").action, _decision_for(report, "endpoint").rule) == ("kept", "opt_out")
    assert fleet.names() == {"endpoint"}


@pytest.mark.parametrize(
    "key",
    ["mlops:reaper-optout", "mlops:raeper-opt-out", "mlops:reaper-opt-outs", "acme:reaper-opt-out", "reaper-opt-out"],
)
def test_a_near_miss_opt_out_key_protects_and_is_named_in_the_report(fleet, topic, key):
    fleet.add("endpoint", NOW - timedelta(days=5), tags={key: "true", MARK: mark_value(30)})
    clients = ReaperClients.default()
    published = _calls_to(clients.sns, "sns.Publish")

    report, problems = reap_and_report(clients, reaper_settings(topic), NOW, sleep=lambda seconds: None)

    decision = _decision_for(report, "endpoint")
    assert (decision.action, decision.rule) == ("kept", "opt_out_near_miss")
    assert fleet.names() == {"endpoint"}
    assert problems == []
    assert f"{key!r} looks like the opt-out tag" in published[0]["Message"]


def test_unrelated_tags_are_neither_opt_outs_nor_near_misses():
    settings = reaper_settings("arn:aws:sns:us-east-1:123456789012:t")
    tags = {key: "x" for key in (MARK, MANAGEMENT_TAG, "Project", "Environment", "owner", "mlops:reaper-opt-in-later")}

    assert opt_out_keys(tags, settings) == ([], [])


# --- 5. Scope ---------------------------------------------------------------------------------------------


def test_managed_scope_judges_only_endpoints_of_this_stacks_model_packages(fleet, topic):
    old_mark = {MARK: mark_value(30)}
    fleet.add("ours", NOW - timedelta(days=5), tags={**old_mark, MANAGEMENT_TAG: f"{MANAGED_PREFIX}3"})
    fleet.add("untagged", NOW - timedelta(days=5), tags=old_mark)
    other_group = MANAGED_PREFIX.replace("mlops-dev-breast-cancer", "mlops-prod-breast-cancer")
    fleet.add("other-stacks", NOW - timedelta(days=5), tags={**old_mark, MANAGEMENT_TAG: f"{other_group}3"})

    report = reap(ReaperClients.default(), reaper_settings(topic, scope="managed"), NOW)

    actions = {decision.endpoint: (decision.action, decision.rule) for decision in report.decisions}
    assert actions == {
        "ours": ("deleted", "idle"),
        "untagged": ("kept", "out_of_scope"),
        "other-stacks": ("kept", "out_of_scope"),
    }
    assert fleet.names() == {"untagged", "other-stacks"}
    assert fleet.tags("untagged")[MARK] == mark_value(30)


def test_managed_scope_trusts_the_endpoints_own_tags_over_the_tagging_scan(fleet, topic):
    # The tagging API is eventually consistent: a management tag removed a moment ago may still be listed.
    fleet.add("was-ours", NOW - timedelta(days=5), tags={MARK: mark_value(30), MANAGEMENT_TAG: f"{MANAGED_PREFIX}3"})
    clients = ReaperClients.default()
    arn = clients.sagemaker.describe_endpoint(EndpointName="was-ours")["EndpointArn"]

    scan = "after-call.resource-groups-tagging-api.GetResources"

    def tag_removed_after_the_scan(**_: Any) -> None:
        clients.tagging.meta.events.unregister(scan, tag_removed_after_the_scan)
        boto3.client("sagemaker").delete_tags(ResourceArn=arn, TagKeys=[MANAGEMENT_TAG])

    clients.tagging.meta.events.register(scan, tag_removed_after_the_scan)

    report = reap(clients, reaper_settings(topic, scope="managed"), NOW)

    assert (_decision_for(report, "was-ours").action, _decision_for(report, "was-ours").rule) == (
        "kept",
        "out_of_scope",
    )
    assert fleet.names() == {"was-ours"}


_REAPER_ENV = {
    "IDLE_WINDOW_HOURS": "24",
    "MIN_AGE_HOURS": "24",
    "OPT_OUT_TAG": OPT_OUT,
    "MARK_TAG": MARK,
    "MAX_DELETIONS_PER_RUN": "5",
    "REPORT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:t",
    "AUDIT_EVENT_BUS_NAME": AUDIT_BUS,
    "MANAGEMENT_TAG": MANAGEMENT_TAG,
}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({}, "REAPER_SCOPE is not set", id="scope-unset"),
        pytest.param({"REAPER_SCOPE": "everything"}, "REAPER_SCOPE='everything' is not one of", id="scope-unknown"),
        pytest.param({"REAPER_SCOPE": "managed"}, "MANAGED_TAG_VALUE_PREFIX is not set", id="managed-no-prefix"),
        pytest.param(
            {"REAPER_SCOPE": "managed", "MANAGED_TAG_VALUE_PREFIX": "arn:*"}, "must not contain", id="wildcard-prefix"
        ),
    ],
)
def test_a_scope_that_cannot_be_enforced_is_refused(overrides, message):
    with pytest.raises(SettingsError, match=message):
        ReaperSettings.from_env({**_REAPER_ENV, **overrides})


def test_managed_scope_settings_read_from_the_environment():
    settings = ReaperSettings.from_env(
        {**_REAPER_ENV, "REAPER_SCOPE": "managed", "MANAGED_TAG_VALUE_PREFIX": MANAGED_PREFIX}
    )

    assert (settings.scope, settings.management_tag, settings.managed_tag_value_prefix) == (
        "managed",
        MANAGEMENT_TAG,
        MANAGED_PREFIX,
    )
