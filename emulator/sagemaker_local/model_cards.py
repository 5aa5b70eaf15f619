"""The local SageMaker's Model Cards API: versioned cards whose content must follow the model card JSON schema.

moto 5.2.5 stores any `Content` (no schema, no status vocabulary), makes a new version for a status-only update,
drops the content of an update that sends none, and reports the creation time as LastModifiedTime. Here, as
SageMaker does: `Content` must be a JSON object valid against the schema (`model_card_schema.json`, AWS's
published "Model card JSON schema" with the sections its current page adds: business_details, hyper_parameters,
model_package_details) and `ModelCardStatus` one of Draft, PendingReview, Approved, Archived, else
ValidationException; an update with content makes a new version, a status-only update changes the current one;
an archived card's content cannot change ("Model Card is in Archived state"); `SecurityConfig.KmsKeyId` is kept.
The model card export jobs (PDF) are refused: `REFUSED_OPERATIONS`.

The schema as AWS publishes it writes `training_details.objective_function`'s `function` and `notes` beside its
`description` rather than under `properties`, so JSON Schema does not constrain that object: it is kept so.
"""

from __future__ import annotations

import copy
import functools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema

from emulator.sagemaker_local.errors import SageMakerError, validation_error
from emulator.sagemaker_local.store import SageMakerStore, paginate

SCHEMA_FILE = Path(__file__).with_name("model_card_schema.json")
CARD_STATUSES = ("Draft", "PendingReview", "Approved", "Archived")
# CreateModelCard's and UpdateModelCard's Content: a string of at most 100,000 characters.
MAX_CONTENT_LENGTH = 100_000
# Problems named in one ValidationException; the rest are counted.
_PROBLEMS_SHOWN = 5
EXPORT_REFUSAL = (
    "The local twin does not export model cards (PDF export jobs are not emulated): read the card with "
    "DescribeModelCard, or export it on AWS"
)
# Actions of the Model Cards API the twin refuses rather than serve; backend.install() answers them with this error.
REFUSED_OPERATIONS = {
    "CreateModelCardExportJob": EXPORT_REFUSAL,
    "DescribeModelCardExportJob": EXPORT_REFUSAL,
    "ListModelCardExportJobs": EXPORT_REFUSAL,
}


@functools.cache
def model_card_validator() -> jsonschema.Draft7Validator:
    """The validator of the model card JSON schema (the schema declares draft-07)."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def content_problems(content: Any) -> list[str]:
    """What in a card's content breaks the schema, one `<path>: <why>` each; empty when it follows it."""
    errors = sorted(model_card_validator().iter_errors(content), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message}" for error in errors]


def check_content(content: Any) -> dict[str, Any]:
    """The parsed content of a request's `Content`, or SageMaker's ValidationException naming what is wrong."""
    if not isinstance(content, str):
        raise validation_error(f"Content must be a string holding the model card's JSON, not {type(content).__name__}")
    if len(content) > MAX_CONTENT_LENGTH:
        raise validation_error(
            f"1 validation error detected: Value at 'content' failed to satisfy constraint: Member must have length "
            f"less than or equal to {MAX_CONTENT_LENGTH}"
        )
    try:
        parsed = json.loads(content)
    except json.JSONDecodeError as error:
        raise validation_error(f"Content is not valid JSON: {error}") from None
    problems = content_problems(parsed)
    if problems:
        more = f" (and {len(problems) - _PROBLEMS_SHOWN} more)" if len(problems) > _PROBLEMS_SHOWN else ""
        raise validation_error(
            f"Content does not follow the model card JSON schema: {'; '.join(problems[:_PROBLEMS_SHOWN])}{more}"
        )
    if not isinstance(parsed, dict):
        raise validation_error("Content must be a JSON object")
    return parsed


def check_status(status: Any) -> str:
    if status not in CARD_STATUSES:
        raise validation_error(
            f"1 validation error detected: Value '{status}' at 'modelCardStatus' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(CARD_STATUSES)}]"
        )
    return str(status)


def _not_found(name: str, version: Any = None) -> SageMakerError:
    which = f"Modelcard {name}" + (f" with version {version}" if version is not None else "")
    return SageMakerError("ResourceNotFound", f"{which} does not exist.")


class ModelCardAPIs(SageMakerStore):
    """Model cards and their versions, under the store's lock; see the module docstring."""

    @property
    def _card_versions(self) -> dict[str, list[dict[str, Any]]]:
        # Kept beside the store's records without widening SageMakerStore: card name -> versions, oldest first.
        versions: dict[str, list[dict[str, Any]]] = self.__dict__.setdefault("_model_card_versions", {})
        return versions

    def _card_name(self, name_or_arn: Any) -> str:
        if isinstance(name_or_arn, str) and name_or_arn.startswith("arn:"):
            return name_or_arn.rsplit("/", 1)[-1]
        return self._check_name(name_or_arn, "ModelCardName")

    def _versions(self, name_or_arn: Any) -> list[dict[str, Any]]:
        name = self._card_name(name_or_arn)
        versions = self._card_versions.get(name)
        if not versions:
            raise _not_found(name)
        return versions

    def _op_CreateModelCard(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name(params.get("ModelCardName"), "ModelCardName")
        status = check_status(params.get("ModelCardStatus"))
        check_content(params.get("Content"))
        security = params.get("SecurityConfig")
        if security is not None and not isinstance((security or {}).get("KmsKeyId"), str):
            raise validation_error("SecurityConfig.KmsKeyId must be the KMS key's id, ARN or alias")
        with self._lock:
            if name in self._card_versions:
                raise SageMakerError("ConflictException", f"Modelcard {name} already exists")
            now = self.clock.now()
            card = {
                "ModelCardArn": self._arn("model-card", name),
                "ModelCardName": name,
                "ModelCardVersion": 1,
                "Content": params["Content"],
                "ModelCardStatus": status,
                "CreationTime": now,
                "CreatedBy": {},
                "LastModifiedTime": now,
                "LastModifiedBy": {},
            }
            if security is not None:
                card["SecurityConfig"] = {"KmsKeyId": security["KmsKeyId"]}
            self._card_versions[name] = [card]
        self._record_tags(card["ModelCardArn"], params.get("Tags"))
        return {"ModelCardArn": card["ModelCardArn"]}

    def _op_DescribeModelCard(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            versions = self._versions(params.get("ModelCardName"))
            wanted = params.get("ModelCardVersion")
            if wanted is None:
                return copy.deepcopy(versions[-1])
            for card in versions:
                if card["ModelCardVersion"] == wanted:
                    return copy.deepcopy(card)
        raise _not_found(self._card_name(params.get("ModelCardName")), wanted)

    def _op_UpdateModelCard(self, params: dict[str, Any]) -> dict[str, Any]:
        status = check_status(params["ModelCardStatus"]) if params.get("ModelCardStatus") is not None else None
        content = params.get("Content")
        if content is not None:
            check_content(content)
        with self._lock:
            versions = self._versions(params.get("ModelCardName"))
            current = versions[-1]
            now = self.clock.now()
            if content is None:
                # A status change is not an edit: SageMaker keeps the version.
                if status is not None:
                    current["ModelCardStatus"] = status
                    current["LastModifiedTime"] = now
                return {"ModelCardArn": current["ModelCardArn"]}
            if current["ModelCardStatus"] == "Archived":
                raise validation_error("Model Card is in Archived state")
            versions.append(
                {
                    **copy.deepcopy(current),
                    "ModelCardVersion": current["ModelCardVersion"] + 1,
                    "Content": content,
                    "ModelCardStatus": status or current["ModelCardStatus"],
                    "LastModifiedTime": now,
                }
            )
            return {"ModelCardArn": current["ModelCardArn"]}

    def _op_ListModelCards(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            latest = [copy.deepcopy(versions[-1]) for versions in self._card_versions.values()]
        summaries = [
            {
                key: card[key]
                for key in ("ModelCardName", "ModelCardArn", "ModelCardStatus", "CreationTime", "LastModifiedTime")
            }
            for card in _filtered(latest, params)
            if not params.get("NameContains") or params["NameContains"] in card["ModelCardName"]
        ]
        sort_key = "ModelCardName" if params.get("SortBy") == "Name" else "CreationTime"
        summaries.sort(key=lambda s: s[sort_key], reverse=params.get("SortOrder", "Descending") == "Descending")
        return paginate(summaries, params, "ModelCardSummaries")

    def _op_ListModelCardVersions(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            versions = [copy.deepcopy(card) for card in self._versions(params.get("ModelCardName"))]
        summaries = [
            {
                key: card[key]
                for key in (
                    "ModelCardName",
                    "ModelCardArn",
                    "ModelCardStatus",
                    "ModelCardVersion",
                    "CreationTime",
                    "LastModifiedTime",
                )
            }
            for card in _filtered(versions, params)
        ]
        summaries.sort(
            key=lambda s: s["ModelCardVersion"], reverse=params.get("SortOrder", "Descending") == "Descending"
        )
        return paginate(summaries, params, "ModelCardVersionSummaryList")

    def _op_DeleteModelCard(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            versions = self._versions(params.get("ModelCardName"))
            arn = versions[-1]["ModelCardArn"]
            del self._card_versions[versions[-1]["ModelCardName"]]
            self._tags.pop(arn, None)
        return {}


def _filtered(cards: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Cards whose status and creation time pass a List* request's `ModelCardStatus` and `CreationTime*` filters."""
    after, before = _instant(params.get("CreationTimeAfter")), _instant(params.get("CreationTimeBefore"))
    return [
        card
        for card in cards
        if (not params.get("ModelCardStatus") or card["ModelCardStatus"] == params["ModelCardStatus"])
        and (after is None or card["CreationTime"] > after)
        and (before is None or card["CreationTime"] < before)
    ]


def _instant(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    return datetime.fromisoformat(str(value))
