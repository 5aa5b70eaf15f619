"""The project's policy for state machine definitions: security settings, error handling, no literals."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.placeholders import PLACEHOLDER_NAMES

RESOURCE_PREFIX = "arn:${Partition}:states:::"
NOTIFY_RESOURCE = RESOURCE_PREFIX + "sns:publish"
KMS_KEY = "${KmsKeyArn}"
REQUIRED_TAGS = {"Project": "${ProjectTag}", "Environment": "${EnvironmentTag}"}

_SAGEMAKER_RESOURCE = re.compile(
    r"^" + re.escape(RESOURCE_PREFIX) + r"(?:aws-sdk:)?sagemaker:(?P<action>[A-Za-z]+)(?:\.sync|\.waitForTaskToken)?$"
)
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")
# Literals that must come from DefinitionSubstitutions instead, so one file deploys to any account and region.
_LITERALS = (
    ("an ARN without ${Partition}", re.compile(r"arn:(?!\$\{Partition\})")),
    ("an account id", re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")),
    (
        "a region",
        re.compile(
            r"\b(?:us|eu|ap|sa|ca|me|af|il|mx|cn)(?:-gov|-iso[a-z]?)?"
            r"-(?:north|south|east|west|central|northeast|southeast|northwest|southwest)-[0-9]\b"
        ),
    ),
    ("a bucket name", re.compile(r"s3://(?!\$\{)")),
)


@dataclass(frozen=True)
class _Requirement:
    """One setting a SageMaker request must carry; `path` is a dotted path into its Parameters."""

    kind: str  # "kms" | "true" | "vpc" | "tags"
    path: str

    def describe(self) -> str:
        return {
            "kms": f"{self.path} = {KMS_KEY}",
            "true": f"{self.path} = true",
            "vpc": f"{self.path} with Subnets.$/SecurityGroupIds.$ split from ${{SubnetIds}}/${{SecurityGroupIds}}",
            "tags": f"{self.path} with Project=${{ProjectTag}} and Environment=${{EnvironmentTag}}",
        }[self.kind]


def _training_job(prefix: str) -> tuple[_Requirement, ...]:
    return (
        _Requirement("kms", f"{prefix}ResourceConfig.VolumeKmsKeyId"),
        _Requirement("kms", f"{prefix}OutputDataConfig.KmsKeyId"),
        _Requirement("true", f"{prefix}EnableNetworkIsolation"),
        _Requirement("true", f"{prefix}EnableInterContainerTrafficEncryption"),
        _Requirement("vpc", f"{prefix}VpcConfig"),
    )


_TAGS = _Requirement("tags", "Tags")
# What each SageMaker create call must set (those the API has). An action missing here is itself reported,
# so a new kind of job cannot slip through unchecked.
SAGEMAKER_REQUIREMENTS: dict[str, tuple[_Requirement, ...]] = {
    "createTrainingJob": (*_training_job(""), _TAGS),
    "createHyperParameterTuningJob": (*_training_job("TrainingJobDefinition."), _TAGS),
    "createProcessingJob": (
        _Requirement("kms", "ProcessingResources.ClusterConfig.VolumeKmsKeyId"),
        _Requirement("kms", "ProcessingOutputConfig.KmsKeyId"),
        _Requirement("true", "NetworkConfig.EnableNetworkIsolation"),
        _Requirement("true", "NetworkConfig.EnableInterContainerTrafficEncryption"),
        _Requirement("vpc", "NetworkConfig.VpcConfig"),
        _TAGS,
    ),
    "createTransformJob": (
        _Requirement("kms", "TransformResources.VolumeKmsKeyId"),
        _Requirement("kms", "TransformOutput.KmsKeyId"),
        _TAGS,
    ),
    "createModel": (_Requirement("true", "EnableNetworkIsolation"), _Requirement("vpc", "VpcConfig"), _TAGS),
    "createEndpointConfig": (
        _Requirement("kms", "KmsKeyId"),
        _Requirement("kms", "DataCaptureConfig.KmsKeyId"),
        _TAGS,
    ),
    "createEndpoint": (_TAGS,),
    "createModelPackage": (_TAGS,),
}


def find_asl_violations(definition: dict[str, Any], name: str) -> list[str]:
    """Every policy violation in a state machine definition, each naming the file and the state."""
    return list(_scope_violations(definition, f"{name}: "))


def check_statemachines(directory: Path) -> list[str]:
    """Policy violations of every `*.asl.json` under `directory`; an empty directory is itself a violation."""
    paths = sorted(Path(directory).glob("*.asl.json"))
    if not paths:
        return [f"{directory}: no *.asl.json files: run `mlops export`"]
    violations: list[str] = []
    for path in paths:
        try:
            definition = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            violations.append(f"{path.name}: not valid JSON: {exc}")
            continue
        violations.extend(find_asl_violations(definition, path.name))
    return violations


def _scope_violations(scope: dict[str, Any], where: str) -> Iterator[str]:
    """Checks one `{StartAt, States}` scope: the whole machine, a Parallel branch or a Map iterator."""
    states: dict[str, Any] = scope.get("States", {})
    if scope.get("QueryLanguage") == "JSONata":
        yield f"{where}QueryLanguage JSONata: the local engine runs JSONPath only"
    for state_name, state in states.items():
        at = f"{where}state {state_name}: "
        yield from _literal_violations(state, at)
        yield from _engine_violations(state, at)
        if state.get("Type") == "Task":
            yield from _task_violations(state, states, at)
        for index, branch in enumerate(state.get("Branches", [])):
            yield from _scope_violations(branch, f"{where}{state_name}/branch {index}: ")
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _scope_violations(state[key], f"{where}{state_name}/{key}: ")


def _task_violations(state: dict[str, Any], states: dict[str, Any], at: str) -> Iterator[str]:
    resource = state.get("Resource", "")
    if not resource.startswith(RESOURCE_PREFIX):
        yield f"{at}Resource {resource!r} must start with {RESOURCE_PREFIX}"
    if not state.get("Retry"):
        yield f"{at}Task without Retry for throttling and transient errors"
    catchers = state.get("Catch", [])
    if not catchers:
        yield f"{at}Task without Catch"
    elif not any("States.ALL" in catcher.get("ErrorEquals", []) for catcher in catchers):
        yield f"{at}no Catch for States.ALL: an uncaught error would end the execution without a notification"
    for catcher in catchers:
        yield from _catch_target_violations(resource, catcher.get("Next"), states, at)
    match = _SAGEMAKER_RESOURCE.match(resource)
    if match and match["action"].startswith("create"):
        requirements = SAGEMAKER_REQUIREMENTS.get(match["action"])
        if requirements is None:
            yield f"{at}SageMaker {match['action']} has no security policy in mlops/asl_policy.py: add one"
            return
        parameters = state.get("Parameters", {})
        for requirement in requirements:
            if not _meets(parameters, requirement):
                yield f"{at}SageMaker {match['action']} must set {requirement.describe()}"


def _catch_target_violations(resource: str, target: str | None, states: dict[str, Any], at: str) -> Iterator[str]:
    """A Catch leads to a notify Task and then a Fail; a notify Task's own Catch may go straight to a Fail."""
    target_state = states.get(target or "")
    if target_state is None:
        yield f"{at}Catch goes to {target!r}, which is not a state of this scope"
        return
    if resource == NOTIFY_RESOURCE:
        if target_state.get("Type") != "Fail":
            yield f"{at}a notification's Catch must go to a Fail, not to {target}"
        return
    for notify in sorted(_past_explaining_states(target or "", states)):
        notify_state = states.get(notify, {})
        if notify_state.get("Resource") != NOTIFY_RESOURCE:
            yield f"{at}Catch goes to {notify}, which is not a notify Task ({NOTIFY_RESOURCE})"
            continue
        after_notify = states.get(notify_state.get("Next", ""), {})
        if after_notify.get("Type") != "Fail":
            yield f"{at}Catch goes to {notify}, which must be followed by a Fail, not {notify_state.get('Next')!r}"


def _past_explaining_states(target: str, states: dict[str, Any]) -> set[str]:
    """The states a Catch reaches once past Pass and Choice states (which word the error for the notification)."""
    reached: set[str] = set()
    seen: set[str] = set()
    pending = [target]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states.get(name, {})
        if state.get("Type") == "Pass" and "Next" in state:
            pending.append(state["Next"])
        elif state.get("Type") == "Choice":
            pending.extend(rule["Next"] for rule in state.get("Choices", []))
            pending.extend([state["Default"]] if "Default" in state else [])
        else:
            reached.add(name)
    return reached


def _engine_violations(state: dict[str, Any], at: str) -> Iterator[str]:
    """ASL features the local twin's engine (moto 5.2.5) cannot run, so a definition would only work on AWS."""
    if "Assign" in state:
        yield f"{at}Assign: the local engine has no variables; pass values in the state's JSON"
    if state.get("QueryLanguage") == "JSONata":
        yield f"{at}QueryLanguage JSONata: the local engine runs JSONPath only"
    for rule in _choice_rules(state.get("Choices", [])):
        for key, value in rule.items():
            if (key == "Variable" or key.endswith("Path")) and isinstance(value, str) and value.startswith("$$"):
                yield f"{at}Choice on context path {value}: copy it into the state input first"


def _choice_rules(rules: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for rule in rules:
        yield rule
        yield from _choice_rules(rule.get("And", []) + rule.get("Or", []))
        if "Not" in rule:
            yield from _choice_rules([rule["Not"]])


def _literal_violations(state: dict[str, Any], at: str) -> Iterator[str]:
    """Account, region, bucket and ARN literals, and placeholders outside docs/interfaces.md's table."""
    for text in strings_in(state):
        for placeholder in _PLACEHOLDER.findall(text):
            if placeholder not in PLACEHOLDER_NAMES:
                yield f"{at}unknown placeholder ${{{placeholder}}}: template.yaml does not substitute it"
        for what, pattern in _LITERALS:
            if pattern.search(text):
                yield f"{at}{what} in {text!r}: use a ${{Placeholder}} filled by DefinitionSubstitutions"


def strings_in(value: Any) -> Iterator[str]:
    """Every key and string value in a JSON document, depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def _lookup(parameters: dict[str, Any], path: str) -> tuple[bool, Any]:
    """Follows a dotted path where each key may also be written `key.$` (a path or intrinsic)."""
    value: Any = parameters
    for key in path.split("."):
        if not isinstance(value, dict):
            return False, None
        if key in value:
            value = value[key]
        elif f"{key}.$" in value:
            value = value[f"{key}.$"]
        else:
            return False, None
    return True, value


def _meets(parameters: dict[str, Any], requirement: _Requirement) -> bool:
    found, value = _lookup(parameters, requirement.path)
    if not found:
        return False
    if requirement.kind == "kms":
        return bool(value == KMS_KEY)
    if requirement.kind == "true":
        return value is True
    if requirement.kind == "vpc":
        return (
            isinstance(value, dict)
            and "${SubnetIds}" in str(value.get("Subnets.$", ""))
            and "${SecurityGroupIds}" in str(value.get("SecurityGroupIds.$", ""))
        )
    tags = {tag.get("Key"): tag.get("Value") for tag in value} if isinstance(value, list) else {}
    return all(tags.get(key) == tag_value for key, tag_value in REQUIRED_TAGS.items())
