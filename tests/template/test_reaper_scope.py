"""The reaper's scope (`ReaperScope`) holds in IAM as in code: in `managed` scope its role cannot delete or tag an
endpoint that does not carry this stack's management tag, and the deploy workflow is what puts that tag on.
And a run that fails (it raises when it could not record itself) reaches an alarm.

Each rule passes on the template and fails on a mutated copy, so none can pass vacuously.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from contract.project import PROJECT_ROOT
from mlops.iam_policy import sam_transformed_template

TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
DEPLOY_ASL = json.loads((PROJECT_ROOT / "statemachines" / "deploy.asl.json").read_text(encoding="utf-8"))
REAPER_ROLE = "EndpointReaperFunctionRole"
SCOPE_CONDITION = "IsReaperScopeManaged"
# What could delete an endpoint or change the tags the reaper's decisions rest on.
LOGGING_AND_TRACING_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
GUARDED_ACTIONS = ("sagemaker:DeleteEndpoint", "sagemaker:AddTags", "sagemaker:DeleteTags")


@pytest.fixture(scope="module")
def transformed_once() -> dict[str, Any]:
    return sam_transformed_template(TEMPLATE_PATH)


@pytest.fixture
def transformed(transformed_once: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(transformed_once)


@pytest.fixture(scope="module")
def declared() -> dict[str, Any]:
    return yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))


def _choose(node: Any, managed: bool) -> Any:
    """The node as CloudFormation resolves it when `IsReaperScopeManaged` is `managed` (other intrinsics kept)."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"} and node["Fn::If"][0] == SCOPE_CONDITION:
            return _choose(node["Fn::If"][1 if managed else 2], managed)
        chosen = {key: _choose(value, managed) for key, value in node.items()}
        return {key: value for key, value in chosen.items() if value != {"Ref": "AWS::NoValue"}}
    if isinstance(node, list):
        return [_choose(item, managed) for item in node if item != {"Ref": "AWS::NoValue"}]
    return node


def _statements(template: dict[str, Any], managed: bool) -> Iterator[dict[str, Any]]:
    role = template["Resources"][REAPER_ROLE]["Properties"]
    for policy in role.get("Policies", []):
        yield from _choose(policy["PolicyDocument"]["Statement"], managed)
    for arn in role.get("ManagedPolicyArns", []):
        # SAM's logging and tracing policies grant no SageMaker action; any other could grant anything.
        if arn not in LOGGING_AND_TRACING_POLICIES:
            yield {"Effect": "Allow", "Action": "*", "Resource": "*", "Sid": f"managed policy {arn}"}


def _grants(statement: dict[str, Any], action: str) -> bool:
    actions = statement.get("Action", [])
    actions = [actions] if isinstance(actions, str) else actions
    return statement.get("Effect") == "Allow" and any(fnmatch.fnmatchcase(action, pattern) for pattern in actions)


def _deployed_package_tag() -> str:
    """The key the deploy workflow's TagEndpoint state gives the model package ARN (workflows/deploy.py)."""
    tags = DEPLOY_ASL["States"]["TagEndpoint"]["Parameters"]["Tags"]
    [key] = [tag["Key"] for tag in tags if tag.get("Value.$") == "$.ModelPackageArn"]
    return key


MODEL_PACKAGE_ARN_TAG = _deployed_package_tag()


def _reaper_environment(template: dict[str, Any]) -> dict[str, Any]:
    function = template["Resources"]["EndpointReaperFunction"]["Properties"]
    return function["Environment"]["Variables"]


def _managed_pattern(template: dict[str, Any]) -> Any:
    """The IAM StringLike pattern managed scope must use: the code's prefix with `*` after it."""
    prefix = copy.deepcopy(_reaper_environment(template)["MANAGED_TAG_VALUE_PREFIX"])
    prefix["Fn::Sub"][0] += "*"
    return prefix


def scope_problems(template: dict[str, Any]) -> list[str]:
    """Grants of the reaper's role that let it act outside the scope its code enforces."""
    environment = _reaper_environment(template)
    problems = []
    if environment.get("MANAGEMENT_TAG") != MODEL_PACKAGE_ARN_TAG:
        problems.append(f"MANAGEMENT_TAG={environment.get('MANAGEMENT_TAG')!r}, not {MODEL_PACKAGE_ARN_TAG!r}")
    wanted = {f"aws:ResourceTag/{MODEL_PACKAGE_ARN_TAG}": _managed_pattern(template)}
    for statement in _statements(template, managed=True):
        for action in GUARDED_ACTIONS:
            if _grants(statement, action) and statement.get("Condition", {}).get("StringLike") != wanted:
                problems.append(f"managed scope: {statement.get('Sid')} grants {action} without {wanted}")
    for managed in (True, False):
        for statement in _statements(template, managed):
            for action in ("sagemaker:AddTags", "sagemaker:DeleteTags"):
                condition = statement.get("Condition", {})
                keys = condition.get("ForAllValues:StringEquals", {}).get("aws:TagKeys")
                if _grants(statement, action) and (
                    keys != [{"Fn::FindInMap": ["Pipeline", "Reaper", "MarkTag"]}]
                    or condition.get("Null") != {"aws:TagKeys": "false"}
                ):
                    problems.append(f"{statement.get('Sid')} grants {action} for tags other than the mark tag")
    return problems


def test_the_reapers_role_acts_only_within_its_scope(transformed):
    assert scope_problems(transformed) == []


@pytest.mark.parametrize(
    "mutation",
    [
        "drop-delete-condition",
        "account-wide-branch-for-managed",
        "widen-prefix",
        "extra-grant",
        "any-tag-key",
        "managed-policy",
    ],
)
def test_scope_rule_fails_when_the_role_reaches_further(transformed, mutation):
    [policy] = [
        policy
        for policy in transformed["Resources"][REAPER_ROLE]["Properties"]["Policies"]
        if any(statement.get("Sid") == "DeleteEndpointsInScope" for statement in policy["PolicyDocument"]["Statement"])
    ]
    statements = policy["PolicyDocument"]["Statement"]
    by_sid = {statement.get("Sid"): statement for statement in statements}
    if mutation == "drop-delete-condition":
        del by_sid["DeleteEndpointsInScope"]["Condition"]
    elif mutation == "account-wide-branch-for-managed":
        branches = by_sid["DeleteEndpointsInScope"]["Condition"]["Fn::If"]
        branches[1] = branches[2]
    elif mutation == "widen-prefix":
        condition = by_sid["DeleteEndpointsInScope"]["Condition"]["Fn::If"][1]["StringLike"]
        [key] = condition
        condition[key] = "arn:aws:sagemaker:*"
    elif mutation == "extra-grant":
        statements.append({"Effect": "Allow", "Action": "sagemaker:Delete*", "Resource": "*", "Sid": "Extra"})
    elif mutation == "any-tag-key":
        del by_sid["MarkAndUnmarkEndpointsInScope"]["Condition"]["Fn::If"][2]["ForAllValues:StringEquals"]
    else:
        role = transformed["Resources"][REAPER_ROLE]["Properties"]
        role["ManagedPolicyArns"].append("arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")

    assert scope_problems(transformed) != []


def test_managed_prefix_names_this_stacks_model_package_group(declared):
    prefix = _reaper_environment(declared)["MANAGED_TAG_VALUE_PREFIX"]["Fn::Sub"]
    group = declared["Resources"]["ModelPackageGroup"]["Properties"]["ModelPackageGroupName"]["Fn::Sub"]

    assert prefix[0] == (
        "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:model-package/" + group[0] + "/"
    )
    assert prefix[1] == group[1]


def test_the_deploy_workflow_puts_the_management_tag_on_every_endpoint_it_deploys():
    tag_endpoint = DEPLOY_ASL["States"]["TagEndpoint"]
    # Every successful deploy, create or update, passes TagEndpoint: the endpoint ends tagged with its package.
    assert tag_endpoint["Resource"].endswith(":sagemaker:addTags")
    assert tag_endpoint["Parameters"]["ResourceArn.$"] == "$.endpoint.EndpointArn"
    assert MODEL_PACKAGE_ARN_TAG == "mlops:model-package-arn"


def test_prod_runs_managed_and_the_template_defaults_to_managed(declared):
    samconfig = tomllib.loads((PROJECT_ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    prod = samconfig["prod"]["deploy"]["parameters"]["parameter_overrides"]

    assert declared["Parameters"]["ReaperScope"]["Default"] == "managed"
    assert "ReaperScope=managed" in prod
    assert _reaper_environment(declared)["REAPER_SCOPE"] == {"Ref": "ReaperScope"}
    assert declared["Conditions"][SCOPE_CONDITION] == {"Fn::Equals": [{"Ref": "ReaperScope"}, "managed"]}


def test_the_readme_says_the_scope_is_enforced_in_iam_and_in_code():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")

    assert "`ReaperScope`" in readme
    assert f"`{MODEL_PACKAGE_ARN_TAG}`" in readme
    assert "IAM policy" in readme


def test_a_failed_reaper_run_reaches_an_alarm(declared):
    resources = declared["Resources"]
    function = resources["EndpointReaperFunction"]["Properties"]
    alarm = resources["FunctionFailureQueueAlarm"]["Properties"]

    # No Lambda retry (the next schedule is the retry), so a raising run goes straight to the DLQ.
    assert function["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    assert function["DeadLetterQueue"] == {"Type": "SQS", "TargetArn": {"Fn::GetAtt": ["FunctionFailureQueue", "Arn"]}}
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["FunctionFailureQueue", "QueueName"]}}
    ]
    assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}]
