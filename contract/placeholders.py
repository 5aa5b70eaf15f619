"""The `${Name}` placeholders the exported ASL may contain; template.yaml fills them (docs/interfaces.md)."""

from __future__ import annotations

# Exactly the table in docs/interfaces.md; a test keeps the two equal and checks each one is used.
PLACEHOLDER_NAMES: tuple[str, ...] = (
    "Partition",
    "ArtifactBucket",
    "DataBucket",
    "KmsKeyArn",
    "SageMakerExecutionRoleArn",
    "SubnetIds",
    "SecurityGroupIds",
    "ImageUri",
    "SourceDirUri",
    "NotificationTopicArn",
    "ModelPackageGroupName",
    "ModelApprovalStatus",
    "EvaluationReportFunctionArn",
    "SmokeTestFunctionArn",
    "TrainingInstanceType",
    "ProcessingInstanceType",
    "EndpointInstanceType",
    "EndpointInstanceCount",
    "EndpointName",
    "RollbackAlarmName",
    "ProjectTag",
    "EnvironmentTag",
)


def placeholder(name: str) -> str:
    """`${name}` for a placeholder of the contract; any other name is a bug in the authoring code."""
    if name not in PLACEHOLDER_NAMES:
        raise ValueError(
            f"unknown placeholder {name!r}: add it to docs/interfaces.md and PLACEHOLDER_NAMES, "
            "and to the state machines' DefinitionSubstitutions in template.yaml, before using it"
        )
    return "${" + name + "}"


PARTITION = placeholder("Partition")
ARTIFACT_BUCKET = placeholder("ArtifactBucket")
DATA_BUCKET = placeholder("DataBucket")
KMS_KEY_ARN = placeholder("KmsKeyArn")
SAGEMAKER_ROLE_ARN = placeholder("SageMakerExecutionRoleArn")
SUBNET_IDS = placeholder("SubnetIds")
SECURITY_GROUP_IDS = placeholder("SecurityGroupIds")
IMAGE_URI = placeholder("ImageUri")
SOURCE_DIR_URI = placeholder("SourceDirUri")
NOTIFICATION_TOPIC_ARN = placeholder("NotificationTopicArn")
MODEL_PACKAGE_GROUP_NAME = placeholder("ModelPackageGroupName")
MODEL_APPROVAL_STATUS = placeholder("ModelApprovalStatus")
EVALUATION_REPORT_FUNCTION_ARN = placeholder("EvaluationReportFunctionArn")
SMOKE_TEST_FUNCTION_ARN = placeholder("SmokeTestFunctionArn")
TRAINING_INSTANCE_TYPE = placeholder("TrainingInstanceType")
PROCESSING_INSTANCE_TYPE = placeholder("ProcessingInstanceType")
ENDPOINT_INSTANCE_TYPE = placeholder("EndpointInstanceType")
ENDPOINT_INSTANCE_COUNT = placeholder("EndpointInstanceCount")
ENDPOINT_NAME = placeholder("EndpointName")
ROLLBACK_ALARM_NAME = placeholder("RollbackAlarmName")
PROJECT_TAG = placeholder("ProjectTag")
ENVIRONMENT_TAG = placeholder("EnvironmentTag")
