"""Least privilege as a bank's security reviewer reads the stack.

Each control is checked on template.yaml (and, where the SAM transform matters, on its deployed form) and on a
weakened copy, so that no check passes vacuously. Where a control is a product rule, the same reader is the
checkov check of mlops/checkov_checks/ that `mlops check --only checkov` runs.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stack_rules
import yaml
from samtranslator.yaml_helper import yaml_parse

from contract.project import PROJECT_ROOT
from mlops.checkov_checks import ecr_pull_pinned, invoke_endpoint_through_vpce, kms_key_separation, trust_policy_source
from mlops.iam_policy import sam_transformed_template

TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
STATEMACHINES = PROJECT_ROOT / "statemachines"
EXECUTION = "mlops-dev-train-20261201"
ARTIFACTS = f"arn:aws:s3:::{stack_rules.STAND_IN_BUCKETS['ArtifactBucket']}"
DATA = f"arn:aws:s3:::{stack_rules.STAND_IN_BUCKETS['DataBucket']}"
_FORMAT = re.compile(r"^States\.Format\('(?P<template>[^']*)', \$\$\.Execution\.Name\)$")
_SAGEMAKER_JOBS = ("createProcessingJob", "createTrainingJob", "createHyperParameterTuningJob")


@pytest.fixture(scope="module")
def declared_once() -> dict[str, Any]:
    return yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))


@pytest.fixture
def declared(declared_once: dict[str, Any]) -> dict[str, Any]:
    """template.yaml as written; a copy each test may mutate."""
    return copy.deepcopy(declared_once)


@pytest.fixture(scope="module")
def transformed_once() -> dict[str, Any]:
    return sam_transformed_template(TEMPLATE_PATH)


@pytest.fixture
def transformed(transformed_once: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(transformed_once)


def _definition(name: str) -> dict[str, Any]:
    return json.loads((STATEMACHINES / f"{name}.asl.json").read_text(encoding="utf-8"))


def _tasks(states: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for state in states.values():
        if state.get("Type") == "Task":
            yield state
        for branch in state.get("Branches", []):
            yield from _tasks(branch["States"])


def _s3_arn(uri_expression: str, key_suffix: str) -> str:
    """The ARN of an object under an ASL S3 location, as one execution (EXECUTION) fills it."""
    match = _FORMAT.match(uri_expression)
    uri = match["template"].replace("{}", EXECUTION) if match else uri_expression
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    bucket = {"${ArtifactBucket}": ARTIFACTS, "${DataBucket}": DATA}[bucket]
    return f"{bucket}/{key}{key_suffix}"


def _uri(holder: dict[str, Any], field: str) -> str:
    return holder.get(field) or holder[f"{field}.$"]


def _job_outputs(definition: dict[str, Any]) -> list[str]:
    """An object ARN under every S3 location a SageMaker job of the definition writes, for one execution."""
    outputs = []
    for task in _tasks(definition["States"]):
        if task["Resource"].split(":")[-1].split(".")[0] not in _SAGEMAKER_JOBS:
            continue
        parameters = task["Parameters"]
        job = parameters.get("TrainingJobDefinition", parameters)
        for output in parameters.get("ProcessingOutputConfig", {}).get("Outputs", []):
            outputs.append(_s3_arn(_uri(output["S3Output"], "S3Uri"), "part-0.csv"))
        if "OutputDataConfig" in job:
            # SageMaker writes under S3OutputPath + the job's name, which starts with the execution name.
            outputs.append(_s3_arn(job["OutputDataConfig"]["S3OutputPath"], f"{EXECUTION}-train/output/model.tar.gz"))
        if "CheckpointConfig" in job:
            outputs.append(_s3_arn(_uri(job["CheckpointConfig"], "S3Uri"), "checkpoint-1.json"))
    return outputs


def _job_inputs(definition: dict[str, Any]) -> list[str]:
    """An object ARN under every S3 location a SageMaker job of the definition reads (inputs from the state)."""
    stand_ins = {
        "$.data_uri": f"{DATA}/incoming/breast_cancer.csv",
        "${SourceDirUri}": f"{ARTIFACTS}/code/0123abcd/sourcedir.tar.gz",
        "$.training.ModelArtifacts.S3ModelArtifacts": f"{ARTIFACTS}/models/{EXECUTION}-train/output/model.tar.gz",
    }
    inputs = []
    for task in _tasks(definition["States"]):
        if task["Resource"].split(":")[-1].split(".")[0] not in _SAGEMAKER_JOBS:
            continue
        parameters = task["Parameters"]
        job = parameters.get("TrainingJobDefinition", parameters)
        sources = [entry["S3Input"] for entry in parameters.get("ProcessingInputs", [])]
        sources += [channel["DataSource"]["S3DataSource"] for channel in job.get("InputDataConfig", [])]
        for source in sources:
            uri = _uri(source, "S3Uri")
            inputs.append(stand_ins.get(uri) or _s3_arn(uri, "part-0.csv"))
    return inputs


def _data_capture_destination(definition: dict[str, Any]) -> str:
    for task in _tasks(definition["States"]):
        capture = task.get("Parameters", {}).get("DataCaptureConfig")
        if capture:
            return _s3_arn(capture["DestinationS3Uri"], "mlops-dev-endpoint/AllTraffic/2026/12/01/00/capture.jsonl")
    raise AssertionError("the deploy definition configures no data capture")


# Objects no job may write: the code every job runs, what the endpoint captures, the training data.
JOB_FORBIDDEN_WRITES = [
    f"{ARTIFACTS}/code/0123abcd/sourcedir.tar.gz",
    f"{ARTIFACTS}/data-capture/mlops-dev-endpoint/AllTraffic/capture.jsonl",
    f"{DATA}/incoming/breast_cancer.csv",
    f"{ARTIFACTS}/runs/{EXECUTION}/anything-else.json",
    f"{ARTIFACTS}/smoke-test/samples.csv",
]
MODEL_FORBIDDEN_READS = [
    f"{DATA}/incoming/breast_cancer.csv",
    f"{ARTIFACTS}/runs/{EXECUTION}/preprocess/train/part-0.csv",
    f"{ARTIFACTS}/code/0123abcd/sourcedir.tar.gz",
    f"{ARTIFACTS}/data-capture/mlops-dev-endpoint/AllTraffic/capture.jsonl",
    f"{ARTIFACTS}/models/{EXECUTION}-train/output/output.tar.gz",
]
MODEL_FORBIDDEN_WRITES = [
    f"{ARTIFACTS}/models/{EXECUTION}-train/output/model.tar.gz",
    f"{ARTIFACTS}/code/0123abcd/sourcedir.tar.gz",
    f"{ARTIFACTS}/runs/{EXECUTION}/evaluation/evaluation.json",
    f"{DATA}/incoming/breast_cancer.csv",
]


def _job_role_problems(template: dict[str, Any]) -> list[str]:
    training = _definition("training")
    return stack_rules.s3_access_problems(
        "SageMakerJobRole",
        template["Resources"]["SageMakerJobRole"],
        reads=_job_inputs(training),
        writes=_job_outputs(training),
        forbidden_reads=[],
        forbidden_writes=JOB_FORBIDDEN_WRITES,
    )


def _model_role_problems(template: dict[str, Any]) -> list[str]:
    return stack_rules.s3_access_problems(
        "SageMakerModelRole",
        template["Resources"]["SageMakerModelRole"],
        reads=[f"{ARTIFACTS}/models/{EXECUTION}-train/output/model.tar.gz"],
        writes=[_data_capture_destination(_definition("deploy"))],
        forbidden_reads=MODEL_FORBIDDEN_READS,
        forbidden_writes=MODEL_FORBIDDEN_WRITES,
    )


def _statement(role: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in stack_rules.role_policy_statements(role) if s.get("Sid") == sid)


# ---------------------------------------------------------------- 18. one role for jobs, one for the model


def test_the_training_definition_writes_runs_models_and_checkpoints() -> None:
    # Guards the readers above: the locations are the ones the training state machine builds per execution.
    outputs = _job_outputs(_definition("training"))

    assert f"{ARTIFACTS}/runs/{EXECUTION}/preprocess/train/part-0.csv" in outputs
    assert f"{ARTIFACTS}/runs/{EXECUTION}/evaluation/part-0.csv" in outputs
    assert f"{ARTIFACTS}/models/{EXECUTION}-train/output/model.tar.gz" in outputs
    assert f"{ARTIFACTS}/checkpoints/{EXECUTION}/checkpoint-1.json" in outputs
    assert f"{ARTIFACTS}/code/0123abcd/sourcedir.tar.gz" in _job_inputs(_definition("training"))


def test_jobs_read_their_inputs_and_write_only_their_run_outputs(declared: dict[str, Any]) -> None:
    assert _job_role_problems(declared) == []


@pytest.mark.parametrize(
    ("statement", "resource", "expected"),
    [
        (
            "WriteOnlyRunOutputs",
            "${ArtifactBucket.Arn}/*",
            "SageMakerJobRole may s3:PutObject arn:aws:s3:::artifacts/code/",
        ),
        ("WriteOnlyRunOutputs", "${DataBucket.Arn}/*", "SageMakerJobRole may s3:PutObject arn:aws:s3:::data/incoming/"),
    ],
    ids=["whole-artifact-bucket", "data-bucket"],
)
def test_a_job_role_writing_beyond_its_run_is_reported(
    declared: dict[str, Any], statement: str, resource: str, expected: str
) -> None:
    _statement(declared["Resources"]["SageMakerJobRole"], statement)["Resource"].append({"Fn::Sub": resource})

    assert any(problem.startswith(expected) for problem in _job_role_problems(declared))


def test_a_job_role_that_cannot_write_an_output_the_definition_names_is_reported(declared: dict[str, Any]) -> None:
    writes = _statement(declared["Resources"]["SageMakerJobRole"], "WriteOnlyRunOutputs")
    writes["Resource"] = [r for r in writes["Resource"] if "evaluation" not in r["Fn::Sub"]]

    assert _job_role_problems(declared) == [
        f"SageMakerJobRole cannot write {ARTIFACTS}/runs/{EXECUTION}/evaluation/part-0.csv"
    ]


def test_the_model_reads_only_model_artifacts_and_writes_only_data_capture(declared: dict[str, Any]) -> None:
    assert _model_role_problems(declared) == []


def test_a_model_role_reading_the_training_data_is_reported(declared: dict[str, Any]) -> None:
    reads = _statement(declared["Resources"]["SageMakerModelRole"], "ReadModelArtifactsOnly")
    reads["Resource"] = [reads["Resource"], {"Fn::Sub": "${DataBucket.Arn}/*"}]

    assert _model_role_problems(declared) == [f"SageMakerModelRole may read {DATA}/incoming/breast_cancer.csv"]


def _evaluation_uri() -> str:
    state = _definition("training")["States"]["EvaluationReport"]
    return _s3_arn(state["Parameters"]["Payload"]["evaluation_uri.$"], "")


@pytest.mark.parametrize(
    ("role_id", "needed"),
    [
        ("EvaluationReportFunctionRole", _evaluation_uri),
        ("SmokeTestFunctionRole", lambda: f"{ARTIFACTS}/runs/{EXECUTION}/preprocess/sample/sample.csv"),
    ],
)
def test_glue_functions_read_only_what_the_state_machines_hand_them(
    transformed: dict[str, Any], role_id: str, needed: Any
) -> None:
    others = [
        f"{DATA}/incoming/breast_cancer.csv",
        f"{ARTIFACTS}/code/0123abcd/sourcedir.tar.gz",
        f"{ARTIFACTS}/models/{EXECUTION}-train/output/model.tar.gz",
        f"{ARTIFACTS}/data-capture/mlops-dev-endpoint/AllTraffic/capture.jsonl",
    ]
    problems = stack_rules.s3_access_problems(
        role_id,
        transformed["Resources"][role_id],
        reads=[needed()],
        writes=[],
        forbidden_reads=others,
        forbidden_writes=others,
    )

    assert problems == []


def _code_writers(template: dict[str, Any]) -> list[str]:
    code_object = f"{ARTIFACTS}/code/0123abcd/sourcedir.tar.gz"
    return sorted(
        logical_id
        for logical_id, role in template["Resources"].items()
        if role["Type"] == "AWS::IAM::Role"
        and any(stack_rules.may(role, action, code_object) for action in ("s3:PutObject", "s3:DeleteObject"))
    )


def test_only_the_ml_code_publisher_may_write_code(transformed: dict[str, Any]) -> None:
    assert _code_writers(transformed) == ["MlCodePublisherFunctionRole"]


def test_another_role_writing_code_is_reported(transformed: dict[str, Any]) -> None:
    policy = transformed["Resources"]["SmokeTestFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy["Statement"].append(
        {"Effect": "Allow", "Action": "s3:*", "Resource": {"Fn::Sub": "${ArtifactBucket.Arn}/*"}}
    )

    assert _code_writers(transformed) == ["MlCodePublisherFunctionRole", "SmokeTestFunctionRole"]


def test_the_artifact_bucket_denies_code_writes_to_everyone_but_the_publisher(declared: dict[str, Any]) -> None:
    statements = declared["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    guard = next(s for s in statements if s.get("Sid") == "OnlyTheMlCodePublisherWritesCode")

    assert guard["Effect"] == "Deny"
    assert guard["Principal"] == "*"
    assert {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"} <= set(guard["Action"])
    assert stack_rules.resolve_arn(guard["Resource"]) == f"{ARTIFACTS}/code/*"
    assert guard["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": ["MlCodePublisherFunctionRole", "Arn"]}}
    }


def _passed_roles(template: dict[str, Any], state_machine: str) -> set[str]:
    """Logical ids of the roles a state machine's ASL passes to SageMaker, through its substitutions."""
    properties = template["Resources"][state_machine]["Properties"]
    text = (PROJECT_ROOT / properties["DefinitionUri"]).read_text(encoding="utf-8")
    substitutions = properties["DefinitionSubstitutions"]
    return {
        substitutions[name]["Fn::GetAtt"][0]
        for name in stack_rules.placeholders_in(text)
        if isinstance(substitutions.get(name), dict)
        and "Fn::GetAtt" in substitutions[name]
        and template["Resources"][substitutions[name]["Fn::GetAtt"][0]]["Type"] == "AWS::IAM::Role"
    }


@pytest.mark.parametrize(
    ("state_machine", "role"),
    [
        ("TrainingStateMachine", "SageMakerJobRole"),
        ("DeployStateMachine", "SageMakerModelRole"),
        ("MonitoringStateMachine", "SageMakerJobRole"),
    ],
)
def test_each_state_machine_passes_one_role_and_may_pass_only_it_to_sagemaker(
    declared: dict[str, Any], state_machine: str, role: str
) -> None:
    machine_role = declared["Resources"][declared["Resources"][state_machine]["Properties"]["Role"]["Fn::GetAtt"][0]]
    passes = [s for s in stack_rules.role_policy_statements(machine_role) if "iam:PassRole" in str(s["Action"])]

    assert _passed_roles(declared, state_machine) == {role}
    assert [(s["Resource"], s["Condition"]) for s in passes] == [
        ({"Fn::GetAtt": [role, "Arn"]}, {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}})
    ]


# ---------------------------------------------------------------- 19. image pulls pinned to the image accounts


def _image_registry_problems(template: dict[str, Any]) -> list[str]:
    table = json.loads((STATEMACHINES / "image-uris.json").read_text(encoding="utf-8"))["image_uris"]
    registry = template["Mappings"]["ImageRegistry"]
    problems = []
    for region, uri in sorted(table.items()):
        account, _, rest = uri.partition(".dkr.ecr.")
        repository = rest.split("/", 1)[1].split(":")[0]
        if registry.get(region, {}).get("Account") != account:
            problems.append(f"{region}: image account {account} of {uri} is not ImageRegistry's")
        for role_id in ("SageMakerJobRole", "SageMakerModelRole"):
            pull = _statement(template["Resources"][role_id], "PullTheFrameworkImage")
            arn, variables = pull["Resource"]["Fn::Sub"]
            if arn != f"arn:${{AWS::Partition}}:ecr:${{AWS::Region}}:${{ImageAccount}}:repository/{repository}":
                problems.append(f"{role_id}: pulls {arn}, not {repository} of the region's image account")
            if variables != {"ImageAccount": {"Fn::FindInMap": ["ImageRegistry", {"Ref": "AWS::Region"}, "Account"]}}:
                problems.append(f"{role_id}: the image account does not come from ImageRegistry")
    return problems


def test_ecr_pulls_name_the_image_account_of_every_region_in_image_uris(declared: dict[str, Any]) -> None:
    table = json.loads((STATEMACHINES / "image-uris.json").read_text(encoding="utf-8"))["image_uris"]

    assert {"us-gov-west-1", "us-gov-east-1"} <= set(table)
    assert _image_registry_problems(declared) == []


def test_a_region_missing_from_the_image_registry_mapping_is_reported(declared: dict[str, Any]) -> None:
    del declared["Mappings"]["ImageRegistry"]["us-gov-west-1"]

    assert _image_registry_problems(declared) == [
        "us-gov-west-1: image account 414596584902 of "
        "414596584902.dkr.ecr.us-gov-west-1.amazonaws.com/sagemaker-xgboost:3.0-5 is not ImageRegistry's"
    ]


def _unpinned_pulls(template: dict[str, Any]) -> list[str]:
    return [
        f"{logical_id}: {problem}"
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
        for document in ecr_pull_pinned.identity_documents(resource["Properties"])
        for problem in ecr_pull_pinned.unpinned_pulls(document)
    ]


def test_no_role_pulls_images_from_any_account(transformed: dict[str, Any]) -> None:
    assert _unpinned_pulls(transformed) == []


def test_a_pull_from_any_account_is_reported(transformed: dict[str, Any]) -> None:
    pull = _statement(transformed["Resources"]["SageMakerJobRole"], "PullTheFrameworkImage")
    pull["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:ecr:${AWS::Region}:*:repository/*"}

    assert len(_unpinned_pulls(transformed)) == 1


# ---------------------------------------------------------------- 20. invocation through the VPC endpoint


def test_the_runtime_vpc_endpoint_is_an_option_off_by_default(declared: dict[str, Any]) -> None:
    endpoint = declared["Resources"]["EndpointInvocationVpcEndpoint"]
    properties = endpoint["Properties"]

    assert declared["Parameters"]["EndpointInvocationVpcEndpointEnabled"]["Default"] == "false"
    assert declared["Conditions"]["IsEndpointInvocationVpcEndpointEnabled"] == {
        "Fn::Equals": [{"Ref": "EndpointInvocationVpcEndpointEnabled"}, "true"]
    }
    assert endpoint["Condition"] == "IsEndpointInvocationVpcEndpointEnabled"
    assert properties["VpcEndpointType"] == "Interface"
    assert properties["ServiceName"] == {"Fn::Sub": "com.amazonaws.${AWS::Region}.sagemaker.runtime"}
    assert (properties["SubnetIds"], properties["SecurityGroupIds"]) == (
        {"Ref": "SubnetIds"},
        {"Ref": "SecurityGroupIds"},
    )
    assert properties["PrivateDnsEnabled"] is True
    assert "EndpointInvocationVpcEndpointNeedsTheVpc" in declared["Rules"]


def _invocations_without_source_vpce(template: dict[str, Any]) -> list[str]:
    return [
        f"{logical_id}: {sid}"
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
        for document in invoke_endpoint_through_vpce.identity_documents(resource["Properties"])
        for sid in invoke_endpoint_through_vpce.invocations_without_source_vpce(document)
    ]


def test_every_invoke_endpoint_grant_checks_the_vpc_endpoint_when_it_is_on(transformed: dict[str, Any]) -> None:
    invoke = _statement(transformed["Resources"]["SmokeTestFunctionRole"], "InvokeTheStackEndpoint")

    assert _invocations_without_source_vpce(transformed) == []
    assert invoke["Condition"] == {
        "Fn::If": [
            "IsEndpointInvocationVpcEndpointEnabled",
            {"StringEquals": {"aws:SourceVpce": {"Ref": "EndpointInvocationVpcEndpoint"}}},
            {"Ref": "AWS::NoValue"},
        ]
    }


def test_an_invoke_endpoint_grant_without_source_vpce_is_reported(transformed: dict[str, Any]) -> None:
    del _statement(transformed["Resources"]["SmokeTestFunctionRole"], "InvokeTheStackEndpoint")["Condition"]

    assert _invocations_without_source_vpce(transformed) == ["SmokeTestFunctionRole: InvokeTheStackEndpoint"]


def test_the_smoke_test_runs_in_the_vpc_when_it_must_use_the_vpc_endpoint(declared: dict[str, Any]) -> None:
    vpc = declared["Resources"]["SmokeTestFunction"]["Properties"]["VpcConfig"]

    assert vpc == {
        "Fn::If": [
            "IsEndpointInvocationVpcEndpointEnabled",
            {"SubnetIds": {"Ref": "SubnetIds"}, "SecurityGroupIds": {"Ref": "SecurityGroupIds"}},
            {"Ref": "AWS::NoValue"},
        ]
    }


# ---------------------------------------------------------------- 21. key administration apart from key use


def _mixed_key_statements(template: dict[str, Any]) -> list[str]:
    policy = template["Resources"]["EncryptionKey"]["Properties"]["KeyPolicy"]
    return [
        str(statement.get("Sid"))
        for statement in kms_key_separation.statements(policy)
        if statement["Effect"] == "Allow" and kms_key_separation.grants_administration_and_use(statement)
    ]


def test_no_key_policy_statement_grants_both_administration_and_use(declared: dict[str, Any]) -> None:
    statements = {s["Sid"]: s for s in declared["Resources"]["EncryptionKey"]["Properties"]["KeyPolicy"]["Statement"]}

    assert _mixed_key_statements(declared) == []
    assert "kms:PutKeyPolicy" in statements["AccountAdministersTheKeyThroughIam"]["Action"]
    assert "kms:Decrypt" in statements["PrincipalsOfThisAccountUseTheKeyThroughIam"]["Action"]


def test_a_statement_granting_administration_and_use_is_reported(declared: dict[str, Any]) -> None:
    statements = declared["Resources"]["EncryptionKey"]["Properties"]["KeyPolicy"]["Statement"]
    next(s for s in statements if s["Sid"] == "AccountAdministersTheKeyThroughIam")["Action"].append("kms:Decrypt")

    assert _mixed_key_statements(declared) == ["AccountAdministersTheKeyThroughIam"]


# ---------------------------------------------------------------- 22. trust, logs, retention, env, trail


def _trust_problems(template: dict[str, Any]) -> list[str]:
    return [
        f"{logical_id}: {problem}"
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
        for problem in trust_policy_source.trust_problems(resource["Properties"]["AssumeRolePolicyDocument"])
    ]


def test_every_service_trust_checks_source_account_and_source_arn(transformed: dict[str, Any]) -> None:
    assert _trust_problems(transformed) == []


def test_a_trust_without_source_arn_is_reported(transformed: dict[str, Any]) -> None:
    trust = transformed["Resources"]["SageMakerJobRole"]["Properties"]["AssumeRolePolicyDocument"]
    del trust["Statement"][0]["Condition"]["ArnLike"]

    assert _trust_problems(transformed) == [
        "SageMakerJobRole: ['sagemaker.amazonaws.com'] may assume it without aws:sourcearn"
    ]


def _source_arn(template: dict[str, Any], role_id: str) -> str | None:
    condition = template["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    return stack_rules.resolve_arn(condition["ArnEquals"]["aws:SourceArn"])


@pytest.mark.parametrize(
    ("role_id", "resource_id", "arn_prefix"),
    [
        ("TrainingStateMachineRole", "TrainingStateMachine", "arn:aws:states:us-east-1:123456789012:stateMachine:"),
        ("DeployStateMachineRole", "DeployStateMachine", "arn:aws:states:us-east-1:123456789012:stateMachine:"),
        ("ModelApprovedRuleRole", "ModelApprovedRule", "arn:aws:events:us-east-1:123456789012:rule/"),
    ],
)
def test_a_workflow_or_rule_role_trusts_only_its_own_resource(
    declared: dict[str, Any], role_id: str, resource_id: str, arn_prefix: str
) -> None:
    properties = declared["Resources"][resource_id]["Properties"]
    name = stack_rules.resolve_arn(properties.get("Name"))

    assert name is not None
    assert name.startswith("mlops-dev-")
    assert _source_arn(declared, role_id) == f"{arn_prefix}{name}"


def test_execution_data_is_logged_in_dev_only(declared: dict[str, Any]) -> None:
    assert declared["Conditions"]["IsProd"] == {"Fn::Equals": [{"Ref": "Environment"}, "prod"]}
    for _, properties in stack_rules.resources_of_type(declared, "AWS::Serverless::StateMachine"):
        assert properties["Logging"]["Level"] == "ALL"
        assert properties["Logging"]["IncludeExecutionData"] == {"Fn::If": ["IsProd", False, True]}


def _retention_problems(template: dict[str, Any]) -> list[str]:
    problems = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] not in ("AWS::S3::Bucket", "AWS::KMS::Key", "AWS::DynamoDB::Table"):
            continue
        for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
            if resource.get(policy) != "Retain":
                problems.append(f"{logical_id}: {policy} is {resource.get(policy)!r}, not Retain")
    table = template["Resources"]["IdempotencyTable"]["Properties"]
    if table.get("DeletionProtectionEnabled") != {"Fn::If": ["IsProd", True, False]}:
        problems.append("IdempotencyTable: deletion protection is not on in prod")
    return problems


def test_table_buckets_and_key_are_retained_and_the_table_protected_in_prod(declared: dict[str, Any]) -> None:
    assert _retention_problems(declared) == []


def test_a_table_without_retention_or_protection_is_reported(declared: dict[str, Any]) -> None:
    del declared["Resources"]["IdempotencyTable"]["DeletionPolicy"]
    del declared["Resources"]["IdempotencyTable"]["Properties"]["DeletionProtectionEnabled"]

    assert _retention_problems(declared) == [
        "IdempotencyTable: DeletionPolicy is None, not Retain",
        "IdempotencyTable: deletion protection is not on in prod",
    ]


def _environment_encryption_problems(template: dict[str, Any]) -> list[str]:
    problems = []
    for logical_id, properties in stack_rules.resources_of_type(template, "AWS::Lambda::Function"):
        if properties.get("KmsKeyArn") != {"Fn::GetAtt": ["EncryptionKey", "Arn"]}:
            problems.append(f"{logical_id}: environment not encrypted with the stack key")
        role = template["Resources"][properties["Role"]["Fn::GetAtt"][0]]
        if not any(
            r == {"Fn::GetAtt": ["EncryptionKey", "Arn"]}
            for s in stack_rules.role_policy_statements(role)
            if s["Effect"] == "Allow" and "kms:Decrypt" in s["Action"]
            for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
        ):
            problems.append(f"{logical_id}: its role cannot decrypt its environment")
    return problems


def test_every_function_environment_is_encrypted_with_the_stack_key(transformed: dict[str, Any]) -> None:
    assert _environment_encryption_problems(transformed) == []


def test_a_function_without_the_stack_key_is_reported() -> None:
    template = yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))
    del template["Globals"]["Function"]["KmsKeyArn"]
    functions = {logical_id for logical_id, _ in stack_rules.resources_of_type(template, "AWS::Serverless::Function")}

    transformed = _transform(template)

    assert sorted(_environment_encryption_problems(transformed)) == sorted(
        f"{logical_id}: environment not encrypted with the stack key" for logical_id in functions
    )


def _transform(template: dict[str, Any]) -> dict[str, Any]:
    """The SAM transform of a weakened copy of the template (it reads a file, with the ASL files next to it)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "template.yaml"
        path.write_text(yaml.safe_dump(template), encoding="utf-8")
        (Path(scratch) / "statemachines").symlink_to(STATEMACHINES)
        return sam_transformed_template(path)


def test_the_data_events_trail_is_an_option_off_by_default(declared: dict[str, Any]) -> None:
    trail = declared["Resources"]["DataEventsTrail"]
    properties = trail["Properties"]
    selectors = properties["AdvancedEventSelectors"][0]["FieldSelectors"]
    trail_bucket_policies = [
        logical_id
        for logical_id, policy in stack_rules.resources_of_type(declared, "AWS::S3::BucketPolicy")
        if policy["Bucket"] == {"Ref": "DataEventsTrailBucket"}
    ]

    assert declared["Parameters"]["DataEventsTrailEnabled"]["Default"] == "false"
    assert {trail["Condition"], declared["Resources"]["DataEventsTrailBucket"]["Condition"]} == {
        "IsDataEventsTrailEnabled"
    }
    assert properties["EnableLogFileValidation"] is True
    assert properties["KMSKeyId"] == {"Fn::GetAtt": ["EncryptionKey", "Arn"]}
    assert properties["S3BucketName"] == {"Ref": "DataEventsTrailBucket"}
    assert trail_bucket_policies == ["DataEventsTrailBucketPolicy"]
    assert {"Field": "eventCategory", "Equals": ["Data"]} in selectors
    assert [
        stack_rules.resolve_arn(arn) for s in selectors if s["Field"] == "resources.ARN" for arn in s["StartsWith"]
    ] == [
        f"{ARTIFACTS}/",
        f"{DATA}/",
    ]
