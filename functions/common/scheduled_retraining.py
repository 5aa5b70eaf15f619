"""The business retraining schedule (`pipeline.toml` `[schedule]`): one training per firing, under the lease.

The rule `<stack>-scheduled-retraining` invokes `retrain_on_drift` with a Scheduled Event naming the
rule (`RETRAINING_SCHEDULE_RULE_ARN`). Each firing is identified by the event's `time` (the instant
EventBridge scheduled it; a redelivery carries the same `time` and a new `id`), and the execution
is `<model>-schedule-<digest of time>`, so a redelivered firing finds its own execution.

What a user can expect: a scheduled retraining that finds another training of the model running
(or holding the lease, common.single_flight) is skipped, not deferred. The running training
already trains on the data prefix, so the week has its training; the next firing runs as usual.
Deferring would instead start a second training right after the first, on nearly the same data.
The skip is logged with the training that holds the lease and counted (`ScheduledRetrainingSkipped`),
and stored as the firing's idempotent result, like a start: a redelivery of a skipped firing after
the other training ended does not start it late.

A start that failed and may be retried raises, so Lambda retries the invocation (Powertools deletes
the in-progress record on an exception, so the retry is not blocked); a firing whose start can never
succeed is `rejected` with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.utilities.idempotency import idempotent_function

from common.idempotency import SCHEDULED_FIRING_MEMORY_SECONDS, idempotency_config
from common.naming import execution_name
from common.training import start_training, training_input

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from common.settings import DriftSettings
    from common.single_flight import TrainingLease

ScheduleAction = Literal["started", "skipped_running", "rejected"]

METRIC_BY_SCHEDULE_ACTION = {
    "started": "ScheduledRetrainingStarted",
    "skipped_running": "ScheduledRetrainingSkipped",
    "rejected": "EventRejected",
}


@dataclass(frozen=True)
class ScheduleDecision:
    """What one firing of the retraining schedule did, and why."""

    action: ScheduleAction
    reason: str
    scheduled_time: str | None = None
    execution_name: str | None = None
    execution_arn: str | None = None
    # True when this delivery repeated a firing already decided: the first delivery's decision is returned.
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScheduledFiring:
    """One firing of the retraining schedule: its rule and the instant it was scheduled for."""

    rule_arn: str
    scheduled_at: datetime

    @property
    def key(self) -> str:
        """The firing's identity: its scheduled instant, UTC to the second (EventBridge's resolution)."""
        return self.scheduled_at.astimezone(UTC).isoformat(timespec="seconds")

    def detail(self) -> dict[str, str]:
        """The `training` input's `trigger.detail`."""
        return {"rule_arn": self.rule_arn, "scheduled_time": self.key}


def start_scheduled_training(
    firing: ScheduledFiring, settings: DriftSettings, sfn_client: Any, lease: TrainingLease, now: datetime
) -> ScheduleDecision:
    """Start the firing's training through the lease; skip it when another training of the model runs."""
    name = execution_name(f"{settings.model_name}-schedule", firing.key)
    execution_input = training_input(settings.training_data_uri, "schedule", firing.detail(), objects=[])
    started = start_training(sfn_client, lease, settings.training_state_machine_arn, name, execution_input, now)

    if started.exists:
        reason = f"scheduled retraining: {started.reason}"
        return ScheduleDecision("started", reason, firing.key, started.execution_name, started.execution_arn)
    # A skip or a rejection names no execution: none of that name exists; the reason names the one that runs.
    if started.status == "busy":
        reason = f"{started.reason}; it trains on the same data: this firing is skipped, the next one runs as usual"
        return ScheduleDecision("skipped_running", reason, firing.key)
    if started.status == "failed" and not started.retryable:
        return ScheduleDecision("rejected", started.reason, firing.key)
    # `failed` but retryable, or `unknown`: raised so Lambda retries the invocation, which resolves it.
    raise RuntimeError(f"could not start the scheduled training {name}: {started.reason}")


def handle_firing(
    firing: ScheduledFiring,
    settings: DriftSettings,
    sfn_client: Any,
    lease: TrainingLease,
    persistence: BasePersistenceLayer,
    context: LambdaContext | None,
    now: datetime,
) -> ScheduleDecision:
    """Decide one firing once: every decision is stored (a raise is not), so a redelivery returns the first one."""

    @idempotent_function(
        data_keyword_argument="firing_key",
        persistence_store=persistence,
        config=idempotency_config(context, SCHEDULED_FIRING_MEMORY_SECONDS),
        key_prefix=f"scheduled_retraining.{settings.model_name}",
    )
    def decide_once(firing_key: dict[str, str]) -> dict[str, Any]:
        return start_scheduled_training(firing, settings, sfn_client, lease, now).as_dict()

    return ScheduleDecision(**decide_once(firing_key={"rule_arn": firing.rule_arn, "scheduled_time": firing.key}))
