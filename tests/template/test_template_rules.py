"""Static rules for template.yaml: tags, buckets, async triggers, substitutions, wildcard grants, the contract.

Each rule passes on the template and fails on a mutated copy, so none can pass vacuously.
"""

from __future__ import annotations

import copy
import re
import tomllib
from typing import Any

import pytest
import stack_rules

from contract.project import PROJECT_ROOT
from contract.template import read_template
from mlops.iam_policy import sam_transformed_template, wildcard_grants

TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
INTERFACES_PATH = PROJECT_ROOT / "docs" / "interfaces.md"
KMS_BUCKETS = {"ArtifactBucket", "DataBucket"}
COMMON_FUNCTION_VARIABLES = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"}


@pytest.fixture(scope="module")
def declared() -> dict[str, Any]:
    """template.yaml as written (SAM resources, local paths)."""
    return read_template(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def transformed_once() -> dict[str, Any]:
    return sam_transformed_template(TEMPLATE_PATH)


@pytest.fixture
def transformed(transformed_once: dict[str, Any]) -> dict[str, Any]:
    """A copy each test may mutate."""
    return copy.deepcopy(transformed_once)


def _contract_placeholders() -> set[str]:
    """Placeholder names of the table in docs/interfaces.md (rows like "| `A`, `B` | value |")."""
    text = INTERFACES_PATH.read_text(encoding="utf-8")
    section = text.split("## Placeholders", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Za-z]+)`", line.split("|")[1]))
    return names


def _contract_functions() -> dict[str, tuple[str, set[str]]]:
    """Logical id -> (handler, environment variable names) from the Lambda table of docs/interfaces.md."""
    text = INTERFACES_PATH.read_text(encoding="utf-8")
    section = text.split("## Lambda functions", 1)[1]
    functions = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0].endswith("Function`"):
            handler = re.findall(r"`([^`]+)`", cells[1])[0]
            functions[cells[0].strip("`")] = (handler, set(re.findall(r"`([A-Z_]+)`", cells[2])))
    return functions


# ---------------------------------------------------------------- tags


def test_every_taggable_resource_carries_project_and_environment_tags(
    declared: dict[str, Any], transformed: dict[str, Any]
) -> None:
    assert stack_rules.untagged_resources(transformed, set(declared["Resources"])) == []


def test_a_resource_without_tags_is_reported(declared: dict[str, Any], transformed: dict[str, Any]) -> None:
    del transformed["Resources"]["IdempotencyTable"]["Properties"]["Tags"]

    problems = stack_rules.untagged_resources(transformed, set(declared["Resources"]))

    assert problems == ["IdempotencyTable (AWS::DynamoDB::Table) lacks tags ['Environment', 'Project']"]


def test_stack_tags_in_samconfig_reach_what_sam_cannot_tag() -> None:
    samconfig = tomllib.loads((PROJECT_ROOT / "samconfig.toml").read_text(encoding="utf-8"))

    for environment in ("default", "prod"):
        tags = samconfig[environment]["deploy"]["parameters"]["tags"]
        assert "Project=" in tags
        assert "Environment=" in tags


def test_samconfig_overrides_name_template_parameters_and_prod_meets_its_rule(declared: dict[str, Any]) -> None:
    samconfig = tomllib.loads((PROJECT_ROOT / "samconfig.toml").read_text(encoding="utf-8"))

    for environment in ("default", "prod"):
        overrides = dict(
            item.split("=", 1) for item in samconfig[environment]["deploy"]["parameters"]["parameter_overrides"]
        )
        assert set(overrides) <= set(declared["Parameters"]), environment
        assert overrides["Environment"] == ("dev" if environment == "default" else "prod")
    prod = dict(item.split("=", 1) for item in samconfig["prod"]["deploy"]["parameters"]["parameter_overrides"])
    assert int(prod["EndpointInstanceCount"]) >= 2
    assert len(prod["SubnetIds"].split(",")) >= 2


# ---------------------------------------------------------------- buckets


def test_buckets_are_encrypted_versioned_private_and_tls_only(transformed: dict[str, Any]) -> None:
    assert stack_rules.bucket_problems(transformed, KMS_BUCKETS) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda bucket, _: bucket.pop("BucketEncryption"),
            "DataBucket: no default encryption",
        ),
        (
            lambda bucket, _: bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
                "ServerSideEncryptionByDefault"
            ].update(SSEAlgorithm="AES256"),
            "DataBucket: default encryption is not SSE-KMS with the stack key",
        ),
        (
            lambda bucket, _: bucket["VersioningConfiguration"].update(Status="Suspended"),
            "DataBucket: versioning not enabled",
        ),
        (
            lambda bucket, _: bucket["PublicAccessBlockConfiguration"].update(RestrictPublicBuckets=False),
            "DataBucket: public access not fully blocked",
        ),
        (
            lambda _, policy: policy["PolicyDocument"]["Statement"].pop(0),
            "DataBucket: no bucket policy denying requests without TLS",
        ),
    ],
    ids=["unencrypted", "not-kms", "unversioned", "public", "plain-http"],
)
def test_a_weakened_bucket_is_reported(transformed: dict[str, Any], mutate: Any, expected: str) -> None:
    resources = transformed["Resources"]
    mutate(resources["DataBucket"]["Properties"], resources["DataBucketPolicy"]["Properties"])

    assert stack_rules.bucket_problems(transformed, KMS_BUCKETS) == [expected]


# ---------------------------------------------------------------- async triggers


def test_every_async_trigger_has_a_dead_letter_queue_and_a_retry_policy(transformed: dict[str, Any]) -> None:
    assert stack_rules.async_trigger_problems(transformed) == []


def test_a_rule_target_without_dead_letter_queue_is_reported(transformed: dict[str, Any]) -> None:
    del transformed["Resources"]["ModelApprovedRule"]["Properties"]["Targets"][0]["DeadLetterConfig"]

    assert stack_rules.async_trigger_problems(transformed) == [
        "ModelApprovedRule target DeployStateMachine: no DeadLetterConfig"
    ]


def test_an_async_function_without_dead_letter_queue_or_retry_bound_is_reported(transformed: dict[str, Any]) -> None:
    del transformed["Resources"]["RetrainOnDriftFunction"]["Properties"]["DeadLetterConfig"]
    del transformed["Resources"]["MlCodePublisherFunctionEventInvokeConfig"]

    problems = stack_rules.async_trigger_problems(transformed)

    assert problems == [
        "MlCodePublisherFunction (invoked by custom resource MlCode): no EventInvokeConfig with MaximumRetryAttempts",
        # Its re-check schedule and its alarm rule both invoke it asynchronously; the first one found is named.
        "RetrainOnDriftFunction (invoked by RetrainOnDriftFunctionDriftRecheck target "
        "RetrainOnDriftFunctionDriftRecheckLambdaTarget): no DeadLetterConfig",
    ]


def test_a_queue_feeding_a_function_without_redrive_is_reported(transformed: dict[str, Any]) -> None:
    del transformed["Resources"]["NewDataQueue"]["Properties"]["RedrivePolicy"]

    assert stack_rules.async_trigger_problems(transformed) == [
        "RetrainOnNewDataFunctionNewData: source queue NewDataQueue has no redrive policy"
    ]


# ---------------------------------------------------------------- state machine substitutions


def test_every_placeholder_of_every_asl_file_is_substituted(declared: dict[str, Any]) -> None:
    assert stack_rules.missing_substitutions(declared, PROJECT_ROOT) == {}


def test_a_missing_substitution_is_reported(declared: dict[str, Any]) -> None:
    mutated = copy.deepcopy(declared)
    del mutated["Resources"]["DeployStateMachine"]["Properties"]["DefinitionSubstitutions"]["EndpointName"]

    assert stack_rules.missing_substitutions(mutated, PROJECT_ROOT) == {"DeployStateMachine": ["EndpointName"]}


@pytest.mark.parametrize("state_machine", ["TrainingStateMachine", "DeployStateMachine", "MonitoringStateMachine"])
def test_substitutions_are_exactly_the_contract_placeholders(declared: dict[str, Any], state_machine: str) -> None:
    substitutions = declared["Resources"][state_machine]["Properties"]["DefinitionSubstitutions"]

    assert set(substitutions) == _contract_placeholders()


def test_contract_table_parses_to_the_documented_placeholders() -> None:
    # Guards the parser above: the table lists 34 names, some rows holding several.
    names = _contract_placeholders()

    assert len(names) == 34
    assert {"Partition", "EndpointInstanceType", "EnvironmentTag"} <= names


# ---------------------------------------------------------------- state machine roles


def test_each_state_machine_role_allows_what_its_tasks_call(declared: dict[str, Any]) -> None:
    assert stack_rules.missing_state_machine_actions(declared, PROJECT_ROOT) == {}


def test_a_role_missing_a_task_action_is_reported(declared: dict[str, Any]) -> None:
    mutated = copy.deepcopy(declared)
    statements = mutated["Resources"]["DeployStateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    for statement in statements["Statement"]:
        if isinstance(statement["Action"], list) and "sagemaker:UpdateEndpoint" in statement["Action"]:
            statement["Action"].remove("sagemaker:UpdateEndpoint")

    assert stack_rules.missing_state_machine_actions(mutated, PROJECT_ROOT) == {
        "DeployStateMachine": ["sagemaker:UpdateEndpoint"]
    }


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("arn:${Partition}:states:::lambda:invoke", {"lambda:InvokeFunction"}),
        (
            "arn:${Partition}:states:::aws-sdk:applicationautoscaling:registerScalableTarget",
            {"application-autoscaling:RegisterScalableTarget"},
        ),
        (
            "arn:${Partition}:states:::sagemaker:createProcessingJob.sync",
            {
                "sagemaker:CreateProcessingJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:StopProcessingJob",
                "events:DescribeRule",
                "events:PutRule",
                "events:PutTargets",
            },
        ),
        ("arn:${Partition}:states:::sns:publish", {"sns:Publish"}),
    ],
)
def test_task_integrations_map_to_their_iam_actions(resource: str, expected: set[str]) -> None:
    assert stack_rules.actions_for_task(resource) == expected


# ---------------------------------------------------------------- functions


def test_functions_match_the_contract_handlers_and_environment(declared: dict[str, Any]) -> None:
    for logical_id, (handler, variables) in _contract_functions().items():
        properties = declared["Resources"][logical_id]["Properties"]
        environment = set(properties.get("Environment", {}).get("Variables", {}))
        environment |= set(declared["Globals"]["Function"]["Environment"]["Variables"])
        assert properties["Handler"] == handler, logical_id
        assert environment == variables | COMMON_FUNCTION_VARIABLES, logical_id


def test_contract_lists_the_stacks_functions() -> None:
    assert set(_contract_functions()) == {
        "RetrainOnDriftFunction",
        "RetrainOnNewDataFunction",
        "EndpointReaperFunction",
        "EvaluationReportFunction",
        "SnapshotTrainingDataFunction",
        "LineageManifestFunction",
        "SmokeTestFunction",
        "MonitoringWindowFunction",
        "PublishMonitoringMetricsFunction",
        "ModelCardFunction",
        "AuditRecorderFunction",
        "ApprovalTagsFunction",
    }


# ---------------------------------------------------------------- wildcard grants


def test_no_statement_allows_a_wildcard_action(transformed: dict[str, Any]) -> None:
    assert wildcard_grants(transformed) == []


@pytest.mark.parametrize("action", ["*", "s3:*"])
def test_a_wildcard_grant_is_reported_with_its_resource_and_statement(transformed: dict[str, Any], action: str) -> None:
    policy = transformed["Resources"]["SmokeTestFunctionRole"]["Properties"]["Policies"][0]
    policy["PolicyDocument"]["Statement"].append(
        {"Sid": "TooBroad", "Effect": "Allow", "Action": action, "Resource": "*"}
    )

    grants = wildcard_grants(transformed)

    assert [(g.resource, g.statement, g.actions) for g in grants] == [("SmokeTestFunctionRole", "TooBroad", (action,))]
    assert "SmokeTestFunctionRole Policies[SmokeTestFunctionRolePolicy0] statement TooBroad" in str(grants[0])


def test_a_wildcard_in_a_resource_policy_or_behind_a_condition_is_reported(transformed: dict[str, Any]) -> None:
    key_policy = transformed["Resources"]["EncryptionKey"]["Properties"]["KeyPolicy"]
    key_policy["Statement"][0]["Action"] = "kms:*"
    role = transformed["Resources"]["SageMakerJobRole"]["Properties"]
    role["Policies"].append(
        {
            "Fn::If": [
                "IsProd",
                {"PolicyName": "ProdOnly", "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "*"}]}},
                {"Ref": "AWS::NoValue"},
            ]
        }
    )

    grants = {(g.resource, g.document, g.actions) for g in wildcard_grants(transformed)}

    assert grants == {
        ("EncryptionKey", "KeyPolicy", ("kms:*",)),
        ("SageMakerJobRole", "Policies[ProdOnly]", ("*",)),
    }


def test_deny_statements_with_wildcards_are_guards_not_grants(transformed: dict[str, Any]) -> None:
    statements = transformed["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]

    assert any(s["Effect"] == "Deny" and s["Action"] == "s3:*" for s in statements)
    assert wildcard_grants(transformed) == []


def test_not_action_in_an_allow_counts_as_a_wildcard(transformed: dict[str, Any]) -> None:
    policy = transformed["Resources"]["SmokeTestFunctionRole"]["Properties"]["Policies"][0]
    policy["PolicyDocument"]["Statement"].append({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})

    assert len(wildcard_grants(transformed)) == 1
