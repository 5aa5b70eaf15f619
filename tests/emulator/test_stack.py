"""template.yaml deploys into moto: every resource is created, emulated or listed as left out, and the state
machines get every DefinitionSubstitution resolved from the stack's own resources."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.s3.models import s3_backends

from contract.definition_substitutions import PLACEHOLDER
from contract.local_account import LOCAL_ACCOUNT_ID
from contract.pipeline_config import load_pipeline_config
from contract.project import PROJECT_ROOT
from contract.template import template_resources
from emulator.sagemaker_local.s3io import split_s3_uri
from emulator.stack import apply_substitutions, deploy_stack, deterministic_zip
from emulator.stack_spec import DeployedStack, StackDeployError

TEMPLATE = PROJECT_ROOT / "template.yaml"
STATEMACHINES = PROJECT_ROOT / "statemachines"
SUBNETS = "subnet-0aaa1111,subnet-0bbb2222"
SECURITY_GROUPS = "sg-0ccc3333"
OVERRIDES = {"SubnetIds": SUBNETS, "SecurityGroupIds": SECURITY_GROUPS, "ApprovalMode": "auto"}


@pytest.fixture(scope="module")
def stack() -> Iterator[DeployedStack]:
    with mock_aws():
        yield deploy_stack(TEMPLATE, OVERRIDES, statemachines_dir=STATEMACHINES)


def _template_resources() -> dict[str, dict]:
    return template_resources(TEMPLATE)


def test_the_stacks_buckets_topic_table_queues_and_key_exist_in_moto(stack: DeployedStack) -> None:
    s3 = boto3.client("s3")
    for bucket in ("ArtifactBucket", "DataBucket", "AccessLogBucket"):
        s3.head_bucket(Bucket=stack.resources[bucket])
    boto3.client("dynamodb").describe_table(TableName=stack.resources["IdempotencyTable"])
    boto3.client("sns").get_topic_attributes(TopicArn=stack.resources["NotificationTopic"])
    boto3.client("sqs").get_queue_attributes(QueueUrl=stack.resources["NewDataQueue"], AttributeNames=["QueueArn"])
    keys = {key["KeyArn"] for key in boto3.client("kms").list_keys()["Keys"]}
    assert stack.outputs["KmsKeyArn"] in keys
    assert stack.outputs["KmsKeyArn"].endswith(stack.resources["EncryptionKey"])


def test_the_data_bucket_is_versioned_and_sends_events_to_eventbridge(stack: DeployedStack) -> None:
    s3 = boto3.client("s3")
    bucket = stack.resources["DataBucket"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    # moto's GetBucketNotificationConfiguration leaves the EventBridge flag out: read what its S3 acts on.
    configuration = s3_backends[LOCAL_ACCOUNT_ID]["aws"].get_bucket(bucket).notification_configuration
    assert configuration is not None
    assert configuration.event_bridge is not None


def test_the_governance_bucket_is_versioned_and_locked_in_governance_mode(stack: DeployedStack) -> None:
    s3 = boto3.client("s3")
    bucket = stack.outputs["GovernanceBucketName"]

    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rule = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert (rule["Mode"], rule["Days"]) == ("GOVERNANCE", 2557)


def test_every_template_function_is_deployed_with_its_handler_and_resolved_environment(stack: DeployedStack) -> None:
    declared = {k for k, v in _template_resources().items() if v["Type"] == "AWS::Serverless::Function"}
    assert set(stack.functions) == declared
    new_data = stack.function("retrain_on_new_data")
    assert new_data.logical_id == "RetrainOnNewDataFunction"
    assert new_data.code_dir == PROJECT_ROOT / "functions"
    assert new_data.environment["TRAINING_STATE_MACHINE_ARN"] == stack.state_machines["TrainingStateMachine"].arn
    assert new_data.environment["DATA_BUCKET"] == stack.resources["DataBucket"]
    assert new_data.environment["IDEMPOTENCY_TABLE_NAME"] == stack.resources["IdempotencyTable"]
    assert new_data.timeout == 60


def test_state_machine_definitions_have_every_placeholder_resolved(stack: DeployedStack) -> None:
    assert set(stack.state_machines) == {"TrainingStateMachine", "DeployStateMachine", "MonitoringStateMachine"}
    for machine in stack.state_machines.values():
        assert "${" not in machine.definition, machine.logical_id
        json.loads(machine.definition)
        assert machine.definition_file is not None
        used = set(PLACEHOLDER.findall(machine.definition_file.read_text(encoding="utf-8")))
        assert used, f"{machine.definition_file} uses no placeholder: the test would prove nothing"
        assert used <= set(machine.substitutions)


def test_substitutions_come_from_the_stacks_own_resources_and_parameters(stack: DeployedStack) -> None:
    values = stack.state_machines["TrainingStateMachine"].substitutions
    assert values["Partition"] == "aws"
    assert values["ArtifactBucket"] == stack.resources["ArtifactBucket"]
    assert values["DataBucket"] == stack.resources["DataBucket"]
    assert values["KmsKeyArn"] == stack.outputs["KmsKeyArn"]
    assert values["SubnetIds"] == SUBNETS
    assert values["SecurityGroupIds"] == SECURITY_GROUPS
    assert values["NotificationTopicArn"] == stack.resources["NotificationTopic"]
    assert values["EvaluationReportFunctionArn"] == stack.functions["EvaluationReportFunction"].function_arn
    assert values["GovernanceBucket"] == stack.resources["GovernanceBucket"]
    assert values["SourceCommit"] == stack.outputs["SourceCommit"]
    assert values["LineageManifestFunctionArn"] == stack.functions["LineageManifestFunction"].function_arn
    assert values["ModelApprovalStatus"] == "Approved"
    assert values["ModelPackageGroupName"] == f"{stack.stack_name}-{load_pipeline_config().model.name}"
    assert values["EndpointInstanceCount"] == "1"


def test_ml_code_is_published_by_the_custom_resources_own_publisher(stack: DeployedStack) -> None:
    uri = stack.outputs["SourceDirUri"]
    bucket, key = split_s3_uri(uri)
    assert bucket == stack.resources["ArtifactBucket"]
    assert re.fullmatch(r"code/[0-9a-f]{64}/sourcedir\.tar\.gz", key), key
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert key.split("/")[1] == hashlib.sha256(body).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        members = archive.getmembers()
    names = [member.name for member in members]
    assert {"train.py", "preprocess.py", "evaluate.py", "inference.py"} <= set(names)
    assert {member.mtime for member in members} == {0}
    assert not any("__pycache__" in name for name in names)
    assert stack.state_machines["TrainingStateMachine"].substitutions["SourceDirUri"] == uri


def test_the_image_uri_comes_from_the_exported_table_for_the_region(stack: DeployedStack) -> None:
    table = json.loads((STATEMACHINES / "image-uris.json").read_text(encoding="utf-8"))
    assert stack.outputs["ImageUri"] == table["image_uris"]["us-east-1"]


def test_the_model_package_group_exists_in_sagemaker(stack: DeployedStack) -> None:
    name = stack.outputs["ModelPackageGroupName"]
    assert boto3.client("sagemaker").describe_model_package_group(ModelPackageGroupName=name)["ModelPackageGroupName"]


def test_rules_carry_resolved_patterns_targets_and_input_shaping(stack: DeployedStack) -> None:
    rules = {rule.logical_id: rule for rule in stack.rules}
    new_data = rules["NewDataRule"]
    assert new_data.event_pattern is not None
    assert new_data.event_pattern["detail"]["bucket"]["name"] == [stack.resources["DataBucket"]]
    assert [target.arn for target in new_data.targets] == [
        boto3.client("sqs").get_queue_attributes(QueueUrl=stack.resources["NewDataQueue"], AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
    ]
    approved = rules["ModelApprovedRule"]
    assert approved.targets[0].arn == stack.state_machines["DeployStateMachine"].arn
    assert approved.targets[0].input_transformer is not None
    assert approved.targets[0].input_transformer["InputPathsMap"] == {"model_package_arn": "$.detail.ModelPackageArn"}
    assert rules["EndpointReaperFunctionHourly"].schedule == "rate(1 hour)"
    assert rules["ScheduledRetrainingRule"].enabled is False


def test_the_new_data_queue_feeds_its_function_in_coalescing_batches(stack: DeployedStack) -> None:
    (source,) = stack.queue_sources.values()
    assert source.queue_url == stack.resources["NewDataQueue"]
    assert source.function_logical_id == "RetrainOnNewDataFunction"
    assert source.batch_size == 100
    assert source.batching_window_seconds == load_pipeline_config().new_data.coalesce_window_seconds
    assert source.report_batch_item_failures is True


def test_no_resource_is_dropped_silently(stack: DeployedStack) -> None:
    # Every resource after the SAM transform is created by moto, emulated by the twin, or listed as left out.
    accounted = set(stack.resources) | {note.logical_id for note in stack.emulated + stack.skipped}
    assert {"MlCode", "ModelPackageGroup", "TrainingStateMachine"} <= {n.logical_id for n in stack.emulated}
    assert {"DataBucketPolicy", "ArtifactBucketPolicy"} <= {n.logical_id for n in stack.skipped}
    declared = set(_template_resources())
    conditional = {k for k, v in _template_resources().items() if "Condition" in v}
    assert declared - conditional <= accounted


@pytest.mark.parametrize(("mode", "status"), [("manual", "PendingManualApproval"), ("auto", "Approved")])
def test_the_approval_mode_parameter_decides_the_registered_status(mode: str, status: str) -> None:
    with mock_aws():
        stack = deploy_stack(
            TEMPLATE,
            {**OVERRIDES, "ApprovalMode": mode},
            statemachines_dir=STATEMACHINES,
            stack_name=f"approval-{mode}",
        )
    assert stack.state_machines["TrainingStateMachine"].substitutions["ModelApprovalStatus"] == status


def test_a_placeholder_the_template_does_not_fill_fails_the_deploy_naming_it(tmp_path: Path) -> None:
    # GIVEN a copy of the exported ASL where the training workflow uses a placeholder the template lacks
    statemachines = tmp_path / "statemachines"
    shutil.copytree(STATEMACHINES, statemachines)
    training = statemachines / "training.asl.json"
    definition = json.loads(training.read_text(encoding="utf-8"))
    definition["Comment"] = "bucket ${UndeclaredBucket}"
    training.write_text(json.dumps(definition), encoding="utf-8")
    # WHEN it is deployed THEN the error names the placeholder and the state machine
    with mock_aws(), pytest.raises(StackDeployError, match=r"TrainingStateMachine .*\$\{UndeclaredBucket\}"):
        deploy_stack(TEMPLATE, OVERRIDES, statemachines_dir=statemachines, stack_name="undeclared-placeholder")


def test_applying_substitutions_replaces_each_placeholder_and_checks_the_json() -> None:
    applied = apply_substitutions('{"a": "${X}", "b": "arn:${P}:s3"}', {"X": "1", "P": "aws"}, where="here")
    assert json.loads(applied) == {"a": "1", "b": "arn:aws:s3"}
    with pytest.raises(StackDeployError, match="here: the definition is not valid JSON"):
        apply_substitutions('{"a": ${X}}', {"X": "not json"}, where="here")


def test_function_code_packages_depend_only_on_file_names_and_contents(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    for folder, order in ((first, ("b.py", "a.py")), (second, ("a.py", "b.py"))):
        (folder / "__pycache__").mkdir(parents=True)
        (folder / "__pycache__" / "a.cpython-311.pyc").write_bytes(folder.name.encode())
        for name in order:
            (folder / name).write_text(f"# {name}\n", encoding="utf-8")
    assert deterministic_zip(first) == deterministic_zip(second)
    (second / "a.py").write_text("# changed\n", encoding="utf-8")
    assert deterministic_zip(first) != deterministic_zip(second)


def test_function_code_packages_leave_out_what_the_ml_code_tarball_leaves_out(tmp_path: Path) -> None:
    # One rule of what an archive takes: the twin's Lambda zips and the publisher's sourcedir tarball.
    (tmp_path / "handler.py").write_text("# code\n", encoding="utf-8")
    for leftover in (".ruff_cache/x", ".mypy_cache/y", ".DS_Store", "stale.pyo", "__pycache__/h.cpython-311.pyc"):
        (tmp_path / leftover).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / leftover).write_bytes(b"left by a tool")
    with zipfile.ZipFile(io.BytesIO(deterministic_zip(tmp_path))) as archive:
        assert archive.namelist() == ["handler.py"]
