"""The `${Name}` placeholders the exported ASL may contain; template.yaml fills them (docs/interfaces.md)."""

from __future__ import annotations

# Exactly the table in docs/interfaces.md; a test keeps the two equal and checks each one is used.
PLACEHOLDER_NAMES: tuple[str, ...] = (
    "Partition",
    "ArtifactBucket",
    "DataBucket",
    "KmsKeyArn",
    "SageMakerJobRoleArn",
    "SageMakerModelRoleArn",
    "SubnetIds",
    "SecurityGroupIds",
    "ImageUri",
    "SourceDirUri",
    "NotificationTopicArn",
    "ModelPackageGroupName",
    "ModelApprovalStatus",
    "EvaluationReportFunctionArn",
    "ModelCardFunctionArn",
    "SnapshotTrainingDataFunctionArn",
    "LineageManifestFunctionArn",
    "GovernanceBucket",
    "SourceCommit",
    "SmokeTestFunctionArn",
    "MonitoringWindowFunctionArn",
    "PublishMonitoringMetricsFunctionArn",
    "DriftShareThreshold",
    "TrainingInstanceType",
    "ProcessingInstanceType",
    "EndpointInstanceType",
    "EndpointInstanceCount",
    "EndpointName",
    "RollbackAlarmName",
    "ProjectTag",
    "EnvironmentTag",
    "ApprovalMode",
    "ApproverSessionArnPrefix",
    "ApprovalTagsFunctionArn",
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
SAGEMAKER_JOB_ROLE_ARN = placeholder("SageMakerJobRoleArn")
SAGEMAKER_MODEL_ROLE_ARN = placeholder("SageMakerModelRoleArn")
SUBNET_IDS = placeholder("SubnetIds")
SECURITY_GROUP_IDS = placeholder("SecurityGroupIds")
IMAGE_URI = placeholder("ImageUri")
SOURCE_DIR_URI = placeholder("SourceDirUri")
NOTIFICATION_TOPIC_ARN = placeholder("NotificationTopicArn")
MODEL_PACKAGE_GROUP_NAME = placeholder("ModelPackageGroupName")
MODEL_APPROVAL_STATUS = placeholder("ModelApprovalStatus")
EVALUATION_REPORT_FUNCTION_ARN = placeholder("EvaluationReportFunctionArn")
MODEL_CARD_FUNCTION_ARN = placeholder("ModelCardFunctionArn")
SNAPSHOT_TRAINING_DATA_FUNCTION_ARN = placeholder("SnapshotTrainingDataFunctionArn")
LINEAGE_MANIFEST_FUNCTION_ARN = placeholder("LineageManifestFunctionArn")
GOVERNANCE_BUCKET = placeholder("GovernanceBucket")
SOURCE_COMMIT = placeholder("SourceCommit")
SMOKE_TEST_FUNCTION_ARN = placeholder("SmokeTestFunctionArn")
MONITORING_WINDOW_FUNCTION_ARN = placeholder("MonitoringWindowFunctionArn")
PUBLISH_MONITORING_METRICS_FUNCTION_ARN = placeholder("PublishMonitoringMetricsFunctionArn")
DRIFT_SHARE_THRESHOLD = placeholder("DriftShareThreshold")
TRAINING_INSTANCE_TYPE = placeholder("TrainingInstanceType")
PROCESSING_INSTANCE_TYPE = placeholder("ProcessingInstanceType")
ENDPOINT_INSTANCE_TYPE = placeholder("EndpointInstanceType")
ENDPOINT_INSTANCE_COUNT = placeholder("EndpointInstanceCount")
ENDPOINT_NAME = placeholder("EndpointName")
ROLLBACK_ALARM_NAME = placeholder("RollbackAlarmName")
PROJECT_TAG = placeholder("ProjectTag")
ENVIRONMENT_TAG = placeholder("EnvironmentTag")
APPROVAL_MODE = placeholder("ApprovalMode")
APPROVER_SESSION_ARN_PREFIX = placeholder("ApproverSessionArnPrefix")
APPROVAL_TAGS_FUNCTION_ARN = placeholder("ApprovalTagsFunctionArn")

# A representative value for every placeholder of docs/interfaces.md, shaped like what the template substitutes,
# so that ASL validators that insist on ARNs where ARNs go can read the exported files.
REPRESENTATIVE_PLACEHOLDER_VALUES: dict[str, str] = {
    "Partition": "aws",
    "ArtifactBucket": "mlops-dev-artifactbucket-1a2b3c4d5e6f",
    "DataBucket": "mlops-dev-databucket-1a2b3c4d5e6f",
    "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "SageMakerJobRoleArn": "arn:aws:iam::123456789012:role/mlops-dev-SageMakerJobRole-1A2B3C4D5E6F",
    "SageMakerModelRoleArn": "arn:aws:iam::123456789012:role/mlops-dev-SageMakerModelRole-1A2B3C4D5E6F",
    "SubnetIds": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
    "SecurityGroupIds": "sg-0123456789abcdef0",
    "ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5",
    "SourceDirUri": (
        "s3://mlops-dev-artifactbucket-1a2b3c4d5e6f/code/"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/sourcedir.tar.gz"
    ),
    "NotificationTopicArn": "arn:aws:sns:us-east-1:123456789012:mlops-dev-NotificationTopic-1A2B3C4D5E6F",
    "ModelPackageGroupName": "mlops-dev-breast-cancer",
    "ModelApprovalStatus": "PendingManualApproval",
    "EvaluationReportFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-EvaluationReport",
    "ModelCardFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-ModelCard",
    "SnapshotTrainingDataFunctionArn": (
        "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-SnapshotTrainingData"
    ),
    "LineageManifestFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-LineageManifest",
    "GovernanceBucket": "mlops-dev-governancebucket-1a2b3c4d5e6f",
    "SourceCommit": "0123456789abcdef0123456789abcdef01234567",
    "SmokeTestFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-SmokeTest",
    "MonitoringWindowFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-MonitoringWindow",
    "PublishMonitoringMetricsFunctionArn": (
        "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-PublishMonitoringMetrics"
    ),
    "DriftShareThreshold": "0.5",
    "TrainingInstanceType": "ml.m5.xlarge",
    "ProcessingInstanceType": "ml.m5.large",
    "EndpointInstanceType": "ml.m5.large",
    "EndpointInstanceCount": "2",
    "EndpointName": "mlops-dev-endpoint",
    "RollbackAlarmName": "mlops-dev-endpoint-5xx",
    "ProjectTag": "mlops",
    "EnvironmentTag": "dev",
    "ApprovalMode": "manual",
    "ApproverSessionArnPrefix": "arn:aws:sts::123456789012:assumed-role/mlops-dev-ApproverRole-1A2B3C4D5E6F/",
    "ApprovalTagsFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-ApprovalTags",
}
