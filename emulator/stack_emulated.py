"""The resource types moto's CloudFormation cannot create, served by the twin while the stack deploys (stack.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto.cloudformation import parsing as cfn_parsing
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.cloudformation.models import Stack as MotoStack

from contract.local_account import LOCAL_ACCOUNT_ID
from contract.project import IMAGE_URIS_FILE, PROJECT_ROOT
from contract.source_commit import source_commit
from emulator.moto_patches import MotoPatches
from emulator.stack_spec import ResourceNote, StackDeployError


class EmulatedResource:
    """A resource the twin created itself, answering `Ref` and `Fn::GetAtt` inside moto's stack like a moto model."""

    def __init__(self, physical_id: str, attributes: Mapping[str, Any]) -> None:
        self._physical_id = physical_id
        self.attributes = dict(attributes)

    @property
    def physical_resource_id(self) -> str:
        return self._physical_id

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name not in self.attributes:
            raise UnformattedGetAttTemplateException()
        return self.attributes[attribute_name]

    def is_created(self) -> bool:
        return True


# Resource types the twin creates itself while moto's CloudFormation deploys the stack (see _Deployment).
EMULATED_TYPES = frozenset(
    {
        "Custom::MlCode",
        "AWS::SageMaker::ModelPackageGroup",
        "AWS::StepFunctions::StateMachine",
        "AWS::Lambda::EventSourceMapping",
        "AWS::CloudWatch::Alarm",
        "AWS::SQS::QueuePolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::Events::EventBus",
        "AWS::Events::Archive",
    }
)

# Types moto could create but the twin leaves out on purpose, and why.
LEFT_OUT_TYPES = {
    "AWS::S3::BucketPolicy": (
        "not attached: moto 5.2.5 evaluates a Deny statement whose condition does not hold as a denial, so the "
        "TLS-only and KMS-only statements would refuse every in-process request"
    ),
}

Emulator = Callable[[str, str, dict[str, Any]], EmulatedResource]


@dataclass
class StateMachineRecord:
    logical_id: str
    name: str
    arn: str
    role_arn: str
    substitutions: dict[str, Any]
    definition_string: str | None


def emulated_model_class(emulator: Emulator) -> type:
    """The class moto's stack wants for a type; creating calls `emulator(logical_id, generated_name, properties)`."""

    class Emulated:
        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return True

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: dict[str, Any],
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> EmulatedResource:
            return emulator(kwargs["LogicalId"], resource_name, cloudformation_json.get("Properties") or {})

    return Emulated


def completed_model_class(model: type, complete: Callable[[str, Any, dict[str, Any]], None]) -> type:
    """moto's class for a type, followed by `complete(logical_id, created, properties)` for what it ignores."""

    class Completed(model):
        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: dict[str, Any],
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Any:
            created = model.create_from_cloudformation_json(  # type: ignore[attr-defined]
                resource_name, cloudformation_json, account_id, region_name, **kwargs
            )
            complete(kwargs["LogicalId"], created, cloudformation_json.get("Properties") or {})
            return created

    return Completed


class EmulatedTypes:
    """The deployment's handlers of `EMULATED_TYPES`; `_Deployment` in stack.py holds the state they record into."""

    region: str
    stack_name: str
    ml_dir: Path
    statemachines_dir: Path | None
    definition_files: dict[str, Path]
    state_machines: dict[str, StateMachineRecord]
    event_source_mappings: dict[str, dict[str, Any]]
    custom_resource_code: dict[str, tuple[Path, str]]
    emulated: list[ResourceNote]
    clients: dict[str, Any]

    @property
    def partition(self) -> str:
        return "aws-us-gov" if self.region.startswith("us-gov-") else "aws"

    def client(self, service: Any) -> Any:
        # `Any`, not `str`: boto3's stubs overload client() per literal service name. One client per service for the
        # deployment: making one costs tens of milliseconds, and a deploy asked for 33 of 12 services.
        if service not in self.clients:
            self.clients[service] = boto3.client(service, region_name=self.region)
        return self.clients[service]

    @contextmanager
    def _emulating_unsupported_types(self) -> Iterator[None]:
        emulators: dict[str, Emulator] = {
            "Custom::MlCode": self._publish_ml_code,
            "AWS::SageMaker::ModelPackageGroup": self._create_model_package_group,
            "AWS::StepFunctions::StateMachine": self._record_state_machine,
            "AWS::Lambda::EventSourceMapping": self._record_event_source_mapping,
            "AWS::CloudWatch::Alarm": self._create_alarm,
            "AWS::SQS::QueuePolicy": self._set_queue_policies,
            "AWS::SNS::TopicPolicy": self._set_topic_policies,
            "AWS::Events::EventBus": self._create_event_bus,
            "AWS::Events::Archive": self._create_archive,
        }
        classes = {resource_type: emulated_model_class(emulator) for resource_type, emulator in emulators.items()}
        original = cfn_parsing.resource_class_from_type
        classes["AWS::S3::Bucket"] = completed_model_class(original("AWS::S3::Bucket"), self._complete_bucket)

        def resource_class_from_type(resource_type: str) -> Any:
            if resource_type in classes:
                return classes[resource_type]
            if resource_type.startswith("Custom::") or resource_type in LEFT_OUT_TYPES:
                # moto would invoke a custom resource's ServiceToken Lambda and wait for a callback that never comes.
                return None
            return original(resource_type)

        moto_parse_template = MotoStack.parse_template

        def parse_template(template: str) -> dict[str, Any]:
            # CloudFormation reads a JSON body as JSON; moto reads every body with PyYAML's pure-Python loader first,
            # which takes over a second for this stack's transformed template.
            try:
                parsed = json.loads(template)
            except ValueError:
                return moto_parse_template(template)
            return parsed if isinstance(parsed, dict) else moto_parse_template(template)

        patches = MotoPatches()
        patches.replace(cfn_parsing, "resource_class_from_type", resource_class_from_type)
        patches.replace(MotoStack, "parse_template", staticmethod(parse_template))
        try:
            yield
        finally:
            patches.undo()

    def _note(self, logical_id: str, resource_type: str, note: str) -> None:
        self.emulated.append(ResourceNote(logical_id, resource_type, note))

    def _publish_ml_code(self, logical_id: str, _name: str, properties: dict[str, Any]) -> EmulatedResource:
        """Runs the custom resource's own publisher in-process, on ml/ and the exported image URI table.

        On AWS the publisher's bundle carries both (its makefile build copies them); here they are read where
        they live in the project, so a change to ml/ reaches the twin without a build.
        """
        publisher = self._custom_resource_publisher(logical_id)
        image_uris = self._image_uri_table(logical_id)
        try:
            published = publisher.publish_ml_code(
                self.client("s3"),
                properties,
                self.region,
                ml_dir=self.ml_dir,
                image_uris_file=image_uris,
                # What sam build writes into the bundle's build-info.json, read from the checkout the twin runs.
                source_commit=source_commit(PROJECT_ROOT),
            )
        except (ValueError, LookupError) as error:
            raise StackDeployError(f"{logical_id} (Custom::MlCode) could not publish ml/: {error}") from error
        self._note(logical_id, "Custom::MlCode", f"published {published.source_dir_uri} by its publisher, in-process")
        attributes = {
            "SourceDirUri": published.source_dir_uri,
            "ImageUri": published.image_uri,
            "SourceCommit": published.source_commit,
        }
        return EmulatedResource(published.source_dir_uri, attributes)

    def _custom_resource_publisher(self, logical_id: str) -> Any:
        """The module of the Lambda function behind the custom resource's ServiceToken, loaded from its code dir."""
        code_dir, handler = self.custom_resource_code.get(logical_id, (None, ""))
        module_name = handler.rpartition(".")[0]
        if code_dir is None or not (code_dir / f"{module_name}.py").is_file():
            raise StackDeployError(
                f"{logical_id}: its ServiceToken must name a function of this template (or its alias) whose handler "
                "module is a file in its CodeUri; the twin runs that module's publish_ml_code()."
            )
        spec = importlib.util.spec_from_file_location(
            f"_twin_custom_resource_{logical_id}", code_dir / f"{module_name}.py"
        )
        if spec is None or spec.loader is None:
            raise StackDeployError(f"{logical_id}: cannot load {code_dir / module_name}.py as a Python module.")
        module = importlib.util.module_from_spec(spec)
        # Registered before running it: dataclasses look their module up in sys.modules.
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        if not callable(getattr(module, "publish_ml_code", None)):
            raise StackDeployError(
                f"{logical_id}: {code_dir / module_name}.py has no publish_ml_code() to run locally."
            )
        return module

    def _image_uri_table(self, logical_id: str) -> Path:
        directories = [self.statemachines_dir] if self.statemachines_dir else []
        directories += sorted({path.parent for path in self.definition_files.values()} - set(directories))
        for directory in directories:
            if (directory / IMAGE_URIS_FILE).is_file():
                return directory / IMAGE_URIS_FILE
        raise StackDeployError(
            f"{logical_id}: no {IMAGE_URIS_FILE} next to the state machines ({', '.join(map(str, directories))}); "
            "run `mlops export`."
        )

    def _create_model_package_group(self, logical_id: str, name: str, properties: dict[str, Any]) -> EmulatedResource:
        group_name = properties.get("ModelPackageGroupName") or name
        arguments: dict[str, Any] = {"ModelPackageGroupName": group_name}
        if properties.get("ModelPackageGroupDescription"):
            arguments["ModelPackageGroupDescription"] = properties["ModelPackageGroupDescription"]
        if properties.get("Tags"):
            arguments["Tags"] = properties["Tags"]
        arn = self.client("sagemaker").create_model_package_group(**arguments)["ModelPackageGroupArn"]
        self._note(logical_id, "AWS::SageMaker::ModelPackageGroup", f"created {group_name} through the SageMaker API")
        return EmulatedResource(arn, {"ModelPackageGroupArn": arn, "ModelPackageGroupName": group_name})

    def _record_state_machine(self, logical_id: str, name: str, properties: dict[str, Any]) -> EmulatedResource:
        machine_name = properties.get("StateMachineName") or name
        arn = f"arn:{self.partition}:states:{self.region}:{LOCAL_ACCOUNT_ID}:stateMachine:{machine_name}"
        self.state_machines[logical_id] = StateMachineRecord(
            logical_id=logical_id,
            name=machine_name,
            arn=arn,
            role_arn=str(properties.get("RoleArn", "")),
            substitutions=dict(properties.get("DefinitionSubstitutions") or {}),
            definition_string=properties.get("DefinitionString"),
        )
        self._note(logical_id, "AWS::StepFunctions::StateMachine", "created by the twin on the executing engine")
        return EmulatedResource(arn, {"Arn": arn, "Name": machine_name})

    def _record_event_source_mapping(self, logical_id: str, _name: str, properties: dict[str, Any]) -> EmulatedResource:
        mapping_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.stack_name}/{logical_id}"))
        self.event_source_mappings[logical_id] = properties
        self._note(logical_id, "AWS::Lambda::EventSourceMapping", "delivered in batches by EventRouter.drain_queues()")
        return EmulatedResource(mapping_id, {"Id": mapping_id})

    def _create_alarm(self, logical_id: str, name: str, properties: dict[str, Any]) -> EmulatedResource:
        alarm_name = properties.get("AlarmName") or name
        arguments = {key: value for key, value in properties.items() if key not in ("AlarmName", "Tags")}
        arguments["Threshold"] = float(arguments.get("Threshold", 0))
        for integer in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if integer in arguments:
                arguments[integer] = int(arguments[integer])
        self.client("cloudwatch").put_metric_alarm(AlarmName=alarm_name, **arguments)
        arn = f"arn:{self.partition}:cloudwatch:{self.region}:{LOCAL_ACCOUNT_ID}:alarm:{alarm_name}"
        self._note(logical_id, "AWS::CloudWatch::Alarm", "created through the CloudWatch API")
        return EmulatedResource(alarm_name, {"Arn": arn})

    def _complete_bucket(self, logical_id: str, bucket: Any, properties: dict[str, Any]) -> None:
        """Applies what moto's CloudFormation ignores on a bucket: versioning, Object Lock, EventBridge events."""
        s3 = self.client("s3")
        applied = []
        versioning = (properties.get("VersioningConfiguration") or {}).get("Status")
        if versioning:
            s3.put_bucket_versioning(Bucket=bucket.name, VersioningConfiguration={"Status": versioning})
            applied.append(f"versioning {versioning}")
        lock = self._object_lock_configuration(logical_id, properties)
        if lock is not None:
            # moto then keeps each new version's retention and refuses to delete a locked version, as S3 does.
            s3.put_object_lock_configuration(Bucket=bucket.name, ObjectLockConfiguration=lock)
            rule = lock.get("Rule", {}).get("DefaultRetention", {})
            applied.append(f"Object Lock ({rule.get('Mode', 'no default')} {rule.get('Days', rule.get('Years', ''))})")
        notifications = properties.get("NotificationConfiguration") or {}
        if str((notifications.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled")).lower() == "true":
            s3.put_bucket_notification_configuration(
                Bucket=bucket.name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
            applied.append("EventBridge notifications")
        if applied:
            self._note(logical_id, "AWS::S3::Bucket", f"{' and '.join(applied)} applied through the S3 API")

    @staticmethod
    def _object_lock_configuration(logical_id: str, properties: dict[str, Any]) -> dict[str, Any] | None:
        """The bucket's ObjectLockConfiguration in the S3 API's shape, or None when Object Lock is off.

        A lock the twin could not apply as written is refused, never dropped: a bucket that would hold records
        under retention on AWS must not quietly accept their deletion here.
        """
        enabled = str(properties.get("ObjectLockEnabled", "")).lower() == "true"
        configuration = properties.get("ObjectLockConfiguration")
        if not enabled:
            if configuration:
                raise StackDeployError(
                    f"{logical_id}: ObjectLockConfiguration needs ObjectLockEnabled: true (CloudFormation refuses it)"
                )
            return None
        if str((properties.get("VersioningConfiguration") or {}).get("Status")) != "Enabled":
            raise StackDeployError(f"{logical_id}: Object Lock needs VersioningConfiguration Status Enabled")
        lock: dict[str, Any] = {"ObjectLockEnabled": "Enabled"}
        retention = ((configuration or {}).get("Rule") or {}).get("DefaultRetention")
        if retention:
            mode = retention.get("Mode")
            periods = {key: int(retention[key]) for key in ("Days", "Years") if key in retention}
            if mode not in ("GOVERNANCE", "COMPLIANCE") or len(periods) != 1:
                raise StackDeployError(
                    f"{logical_id}: DefaultRetention {retention!r} needs Mode GOVERNANCE or COMPLIANCE and exactly "
                    "one of Days or Years"
                )
            lock["Rule"] = {"DefaultRetention": {"Mode": mode, **periods}}
        return lock

    def _set_queue_policies(self, logical_id: str, name: str, properties: dict[str, Any]) -> EmulatedResource:
        for queue_url in properties.get("Queues", []):
            self.client("sqs").set_queue_attributes(
                QueueUrl=queue_url, Attributes={"Policy": json.dumps(properties["PolicyDocument"])}
            )
        self._note(logical_id, "AWS::SQS::QueuePolicy", "attached through the SQS API (moto does not enforce it)")
        return EmulatedResource(name, {})

    def _set_topic_policies(self, logical_id: str, name: str, properties: dict[str, Any]) -> EmulatedResource:
        for topic_arn in properties.get("Topics", []):
            self.client("sns").set_topic_attributes(
                TopicArn=topic_arn, AttributeName="Policy", AttributeValue=json.dumps(properties["PolicyDocument"])
            )
        self._note(logical_id, "AWS::SNS::TopicPolicy", "attached through the SNS API (moto does not enforce it)")
        return EmulatedResource(name, {})

    def _create_event_bus(self, logical_id: str, _name: str, properties: dict[str, Any]) -> EmulatedResource:
        # moto 5.2.5's EventBus model has no physical id, so its `Ref` resolves to the model object, not the name.
        name = str(properties["Name"])
        arn = self.client("events").create_event_bus(Name=name)["EventBusArn"]
        self._note(logical_id, "AWS::Events::EventBus", f"created {name} through the EventBridge API")
        return EmulatedResource(name, {"Arn": arn, "Name": name})

    def _create_archive(self, logical_id: str, _name: str, properties: dict[str, Any]) -> EmulatedResource:
        # moto 5.2.5's Archive model reads EventPattern as text and has no physical id; the API has neither problem.
        name = str(properties["ArchiveName"])
        request: dict[str, Any] = {"ArchiveName": name, "EventSourceArn": str(properties["SourceArn"])}
        if "RetentionDays" in properties:
            request["RetentionDays"] = int(properties["RetentionDays"])
        if "EventPattern" in properties:
            request["EventPattern"] = json.dumps(properties["EventPattern"])
        if "Description" in properties:
            request["Description"] = str(properties["Description"])
        arn = self.client("events").create_archive(**request)["ArchiveArn"]
        self._note(
            logical_id,
            "AWS::Events::Archive",
            f"created {name} through the EventBridge API; the twin's router archives no events and replays none",
        )
        return EmulatedResource(name, {"Arn": arn, "ArchiveName": name})
