"""Function settings, read from environment variables at call time into frozen dataclasses.

Reading at call time (not import time) keeps every module importable without the cloud's
settings, and lets tests set the environment per test. Every error names the variable, the bad
value and what to do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """An environment variable the function needs is missing or holds an unusable value."""


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set; set it in the function's Environment")
    return value


def _integer(env: Mapping[str, str], name: str, minimum: int, maximum: int | None = None) -> int:
    raw = _required(env, name)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"environment variable {name}={value} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"environment variable {name}={value} must be at most {maximum}")
    return value


_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE_WORDS:
        return True
    if raw in _FALSE_WORDS:
        return False
    raise SettingsError(f"environment variable {name}={raw!r} is not a boolean; use true or false")


def _s3_uri(env: Mapping[str, str], name: str) -> str:
    value = _required(env, name)
    if not value.startswith("s3://") or len(value) <= len("s3://"):
        raise SettingsError(f"environment variable {name}={value!r} is not an s3://bucket/prefix URI")
    return value


_STATE_MACHINE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):states:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):stateMachine:[A-Za-z0-9_-]+$"
)
# What may end a drift alarm prefix: the separator is part of the prefix, so `mlops-dev-drift-` cannot also
# claim `mlops-dev-drift2-...`.
PREFIX_SEPARATORS = ("-", "_", ".", "/", ":")


@dataclass(frozen=True)
class StackScope:
    """The partition, region and account the stack (so the function) runs in: events from elsewhere are not ours."""

    partition: str
    region: str
    account: str

    def arn(self, service: str, resource: str) -> str:
        """The ARN of a resource of `service` in this scope."""
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


def _state_machine(env: Mapping[str, str]) -> tuple[str, StackScope]:
    """TRAINING_STATE_MACHINE_ARN and its scope: the state machine is the stack's, in the function's account."""
    arn = _required(env, "TRAINING_STATE_MACHINE_ARN")
    match = _STATE_MACHINE_ARN.match(arn)
    if match is None:
        raise SettingsError(
            f"environment variable TRAINING_STATE_MACHINE_ARN={arn!r} is not a state machine ARN "
            "(arn:<partition>:states:<region>:<account>:stateMachine:<name>)"
        )
    return arn, StackScope(match["partition"], match["region"], match["account"])


def _prefix(env: Mapping[str, str], name: str) -> str:
    value = _required(env, name)
    if not value.endswith(PREFIX_SEPARATORS):
        raise SettingsError(
            f"environment variable {name}={value!r} must end with its separator "
            f"(one of {' '.join(PREFIX_SEPARATORS)}), e.g. {value}-, "
            "so that it does not also match names that merely start with the same letters"
        )
    return value


_RULE_ARN = re.compile(r"^arn:[a-z-]+:events:[a-z0-9-]+:\d{12}:rule/[A-Za-z0-9._-]+$")


def _rule_arn(env: Mapping[str, str], name: str, scope: StackScope) -> str | None:
    """An optional EventBridge rule ARN of the default bus, in the stack's own partition, region and account."""
    value = env.get(name, "").strip()
    if not value:
        return None
    if _RULE_ARN.match(value) is None or not value.startswith(scope.arn("events", "rule/")):
        raise SettingsError(
            f"environment variable {name}={value!r} is not a rule ARN of the stack's account and region "
            f"({scope.arn('events', 'rule/<name>')})"
        )
    return value


@dataclass(frozen=True)
class DriftSettings:
    """`retrain_on_drift`: which alarms count, which state machine to start, how long to wait between runs."""

    training_state_machine_arn: str
    scope: StackScope
    model_name: str
    drift_alarm_prefix: str
    cooldown_minutes: int
    training_data_uri: str
    idempotency_table_name: str
    # The rule whose Scheduled Event is the business retraining schedule, not the drift re-check; None when
    # the function serves no retraining schedule (every Scheduled Event is then a re-check).
    retraining_schedule_rule_arn: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DriftSettings:
        values = _environ(env)
        state_machine_arn, scope = _state_machine(values)
        return cls(
            training_state_machine_arn=state_machine_arn,
            scope=scope,
            model_name=_required(values, "MODEL_NAME"),
            drift_alarm_prefix=_prefix(values, "DRIFT_ALARM_PREFIX"),
            cooldown_minutes=_integer(values, "RETRAIN_COOLDOWN_MINUTES", minimum=0),
            training_data_uri=_s3_uri(values, "TRAINING_DATA_URI"),
            idempotency_table_name=_required(values, "IDEMPOTENCY_TABLE_NAME"),
            retraining_schedule_rule_arn=_rule_arn(values, "RETRAINING_SCHEDULE_RULE_ARN", scope),
        )


@dataclass(frozen=True)
class NewDataSettings:
    """`retrain_on_new_data`: which objects count as new training data and what to start for them."""

    training_state_machine_arn: str
    scope: StackScope
    model_name: str
    data_bucket: str
    data_prefix: str
    allowed_suffixes: tuple[str, ...]
    idempotency_table_name: str
    queue_url: str
    defer_seconds: int

    @property
    def data_uri(self) -> str:
        """The training input's `data_uri`: everything under the watched prefix."""
        return f"s3://{self.data_bucket}/{self.data_prefix}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NewDataSettings:
        values = _environ(env)
        raw_suffixes = _required(values, "ALLOWED_SUFFIXES")
        suffixes = tuple(suffix.strip().lower() for suffix in raw_suffixes.split(",") if suffix.strip())
        if not suffixes:
            raise SettingsError(f"environment variable ALLOWED_SUFFIXES={raw_suffixes!r} lists no suffix; e.g. .csv")
        state_machine_arn, scope = _state_machine(values)
        return cls(
            training_state_machine_arn=state_machine_arn,
            scope=scope,
            model_name=_required(values, "MODEL_NAME"),
            data_bucket=_required(values, "DATA_BUCKET"),
            # Required, not defaulted to "": an empty prefix would treat the whole bucket as training data.
            data_prefix=_required(values, "DATA_PREFIX"),
            allowed_suffixes=suffixes,
            idempotency_table_name=_required(values, "IDEMPOTENCY_TABLE_NAME"),
            queue_url=_required(values, "NEW_DATA_QUEUE_URL"),
            # SQS's longest visibility timeout is 12 hours.
            defer_seconds=_integer(values, "NEW_DATA_DEFER_SECONDS", minimum=1, maximum=43_200),
        )


REAPER_SCOPES = ("account", "managed")


@dataclass(frozen=True)
class ReaperSettings:
    """`endpoint_reaper`: the idleness rule and every safety around deleting endpoints."""

    idle_window_hours: int
    min_age_hours: int
    dry_run: bool
    opt_out_tag: str
    mark_tag: str
    max_deletions_per_run: int
    report_topic_arn: str
    audit_event_bus_name: str
    # `account`: every endpoint of the account and region, less the opted out. `managed`: only endpoints whose
    # `management_tag` value starts with `managed_tag_value_prefix` (the stack's IAM allows no other).
    scope: str
    management_tag: str
    managed_tag_value_prefix: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReaperSettings:
        values = _environ(env)
        scope = _required(values, "REAPER_SCOPE")
        if scope not in REAPER_SCOPES:
            raise SettingsError(f"environment variable REAPER_SCOPE={scope!r} is not one of {', '.join(REAPER_SCOPES)}")
        prefix = values.get("MANAGED_TAG_VALUE_PREFIX", "").strip()
        if scope == "managed" and not prefix:
            raise SettingsError(
                "environment variable MANAGED_TAG_VALUE_PREFIX is not set; REAPER_SCOPE=managed needs it"
            )
        if any(wildcard in prefix for wildcard in "*?"):
            # IAM matches the same prefix with StringLike; a wildcard would mean one thing there and another here.
            raise SettingsError(f"environment variable MANAGED_TAG_VALUE_PREFIX={prefix!r} must not contain * or ?")
        return cls(
            idle_window_hours=_integer(values, "IDLE_WINDOW_HOURS", minimum=1),
            min_age_hours=_integer(values, "MIN_AGE_HOURS", minimum=0),
            # Unset means dry run: deleting must be an explicit choice of the environment.
            dry_run=_boolean(values, "DRY_RUN", default=True),
            opt_out_tag=_required(values, "OPT_OUT_TAG"),
            mark_tag=_required(values, "MARK_TAG"),
            max_deletions_per_run=_integer(values, "MAX_DELETIONS_PER_RUN", minimum=0),
            report_topic_arn=_required(values, "REPORT_TOPIC_ARN"),
            audit_event_bus_name=_required(values, "AUDIT_EVENT_BUS_NAME"),
            scope=scope,
            management_tag=_required(values, "MANAGEMENT_TAG"),
            managed_tag_value_prefix=prefix,
        )


@dataclass(frozen=True)
class EvaluationReportSettings:
    """`evaluation_report`: where the champion model lives."""

    model_package_group_name: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EvaluationReportSettings:
        return cls(model_package_group_name=_required(_environ(env), "MODEL_PACKAGE_GROUP_NAME"))


@dataclass(frozen=True)
class ModelCardSettings:
    """`model_card`: the stack's model package group, the key its cards are encrypted with, the idempotency table."""

    model_package_group_name: str
    kms_key_id: str
    idempotency_table_name: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ModelCardSettings:
        values = _environ(env)
        return cls(
            model_package_group_name=_required(values, "MODEL_PACKAGE_GROUP_NAME"),
            kms_key_id=_required(values, "MODEL_CARD_KMS_KEY_ID"),
            idempotency_table_name=_required(values, "IDEMPOTENCY_TABLE_NAME"),
        )
