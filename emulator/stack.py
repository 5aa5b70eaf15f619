"""Deploy template.yaml into moto's CloudFormation; describe what the twin must run: functions, state machines, rules.

The same template `sam deploy` ships, not a second description of the stack:

1. Local `CodeUri`s are zipped (deterministically) into a staging bucket, as `sam deploy` uploads them to its
   managed bucket; local `DefinitionUri`s are uploaded the same way and the ASL file is remembered.
2. samtranslator runs the SAM transform offline, with a static managed-policy table instead of IAM's ListPolicies.
3. moto's CloudFormation creates the stack, so every `Ref`/`GetAtt`/`Sub`/`If` is resolved by one resolver. While
   it runs, resource types moto cannot create are served here (see `EMULATED_TYPES`): `Custom::MlCode` publishes
   the sourcedir tarball of `ml/`, the model package group goes to SageMaker, state machines and SQS event source
   mappings are recorded for the twin (moto would put the former on its non-executing engine and deliver the
   latter one message at a time, defeating the coalescing batch window); alarms and queue and topic policies go
   through their APIs; buckets get the versioning and EventBridge notifications moto's CloudFormation ignores.
   Bucket policies and any other type moto lacks are left out with a logged note and listed, with the reason, in
   `DeployedStack.skipped`; what was emulated is listed in `DeployedStack.emulated`.
4. Each state machine's `DefinitionSubstitutions`, as resolved by the stack, are applied to its ASL file; a
   placeholder left without a value is an error naming it.

Must run inside `moto.mock_aws()`: every call goes to moto's in-process backends.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import logging
import os
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto.cloudformation import parsing as cfn_parsing
from moto.cloudformation.models import cloudformation_backends
from moto.moto_api._internal import mock_random
from samtranslator.translator.transform import transform as sam_transform

from contract.definition_substitutions import substitute, unfilled
from contract.local_account import LOCAL_ACCOUNT_ID, LOCAL_REGION
from contract.project import ML_CODE_PUBLISHER_MODULE
from contract.sam_offline import StaticManagedPolicyLoader
from contract.template import read_template
from emulator.stack_emulated import EMULATED_TYPES, LEFT_OUT_TYPES, EmulatedTypes, StateMachineRecord
from emulator.stack_spec import (
    DeployedStack,
    FunctionSpec,
    QueueSource,
    ResourceNote,
    RuleSpec,
    RuleTarget,
    StackDeployError,
    StateMachineSpec,
)
from emulator.template_rules import TemplateRuleError, check_rules, parameter_values

logger = logging.getLogger(__name__)

DEFAULT_STACK_NAME = "mlops-local"
# What `sam deploy`'s managed bucket is on AWS: where packaged code and definitions wait for CloudFormation.
STAGING_BUCKET = "mlops-local-deployment-staging"
# Lambda zips and tarballs are byte-identical for identical sources: the timestamp zip format allows.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# The twin's network, in moto's EC2, whose ids the stack's VPC parameters name.
_LOCAL_VPC_CIDR = "10.42.0.0/16"
# Any constant: it fixes the ids the stack's deployment makes from one start to the next.
_STACK_IDS_SEED = 20261201
_LOCAL_SUBNETS = (("10.42.1.0/24", "a"), ("10.42.2.0/24", "b"))


def deploy_stack(
    template_path: Path,
    parameter_overrides: Mapping[str, str],
    *,
    stack_name: str = DEFAULT_STACK_NAME,
    statemachines_dir: Path | None = None,
    ml_dir: Path | None = None,
    region: str = LOCAL_REGION,
) -> DeployedStack:
    """Deploys `template_path` into moto (call inside `mock_aws`) and returns what the twin must run.

    `statemachines_dir` replaces the folder of every `DefinitionUri` (same file names), so a test can run a
    changed copy of the ASL; `ml_dir` is what `Custom::MlCode` publishes (default: `ml/` next to the template).
    """
    template_path = Path(template_path).resolve()
    if not template_path.is_file():
        raise StackDeployError(f"Template {template_path} does not exist; pass the path of the SAM template.")
    root = template_path.parent
    deployment = _Deployment(
        region=region,
        stack_name=stack_name,
        ml_dir=(ml_dir or root / "ml").resolve(),
        statemachines_dir=statemachines_dir.resolve() if statemachines_dir else None,
    )
    template = read_template(template_path)
    try:
        check_rules(
            template,
            parameter_values(template, parameter_overrides),
            {
                "AWS::AccountId": LOCAL_ACCOUNT_ID,
                "AWS::Region": region,
                "AWS::StackName": stack_name,
                "AWS::Partition": "aws",
            },
        )
    except TemplateRuleError as error:
        raise StackDeployError(f"CloudFormation refuses stack {stack_name}'s parameters: {error}") from None
    deployment.stage_local_artifacts(template, root)
    transformed = _transform(template, parameter_overrides, region)
    parameters = {key: str(value) for key, value in parameter_overrides.items()}
    with _quiet_about_unsupported_types():
        stack_id = deployment.create_stack(transformed, parameters)
        return deployment.describe(transformed, stack_id, parameters)


@contextmanager
def _quiet_about_unsupported_types() -> Iterator[None]:
    """moto warns about each type it lacks every time it reads the stack; `DeployedStack.skipped` says it once."""
    moto_logger = logging.getLogger("moto")
    previous_level = moto_logger.level
    moto_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Tried to parse", category=UserWarning)
            yield
    finally:
        moto_logger.setLevel(previous_level)


def _transform(template: dict[str, Any], parameter_overrides: Mapping[str, str], region: str) -> dict[str, Any]:
    # samtranslator reads the region from the environment for the pseudo parameters it resolves itself.
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region
    # The translator records usage metrics nobody publishes offline and warns about them at exit.
    logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)
    try:
        return sam_transform(template, dict(parameter_overrides), StaticManagedPolicyLoader())
    except Exception as error:
        raise StackDeployError(f"The SAM transform of the template failed: {error}") from error
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous


def deterministic_zip(directory: Path) -> bytes:
    """The files under `directory` as a zip whose bytes depend only on names and contents."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _archive_files()(directory):
            info = zipfile.ZipInfo(path.relative_to(directory).as_posix(), date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


@functools.cache
def _archive_files() -> Callable[[Path], list[Path]]:
    """The ML code publisher's `archive_files`: the project's one rule of what an archive of a code folder takes."""
    spec = importlib.util.spec_from_file_location("_twin_archive_rule", ML_CODE_PUBLISHER_MODULE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {ML_CODE_PUBLISHER_MODULE}")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it: dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    archive_files: Callable[[Path], list[Path]] = module.archive_files
    return archive_files


@dataclass
class _Deployment(EmulatedTypes):
    """One deploy: the staged artifacts, and what the emulated resource types recorded while moto created them."""

    region: str
    stack_name: str
    ml_dir: Path
    statemachines_dir: Path | None
    code_dirs: dict[str, Path] = field(default_factory=dict)
    definition_files: dict[str, Path] = field(default_factory=dict)
    state_machines: dict[str, StateMachineRecord] = field(default_factory=dict)
    event_source_mappings: dict[str, dict[str, Any]] = field(default_factory=dict)
    custom_resource_code: dict[str, tuple[Path, str]] = field(default_factory=dict)
    emulated: list[ResourceNote] = field(default_factory=list)
    clients: dict[str, Any] = field(default_factory=dict)

    # -- 1. packaging, as `sam deploy` does before CloudFormation sees the template

    def stage_local_artifacts(self, template: dict[str, Any], root: Path) -> None:
        s3 = self.client("s3")
        s3.create_bucket(**_bucket_args(STAGING_BUCKET, self.region))
        function_globals = template.get("Globals", {}).get("Function", {})
        if isinstance(function_globals.get("CodeUri"), str):
            function_globals["CodeUri"] = self._stage_code("Globals", function_globals["CodeUri"], root)
        for logical_id, resource in template.get("Resources", {}).items():
            properties = resource.get("Properties") or {}
            if resource.get("Type") == "AWS::Serverless::Function" and isinstance(properties.get("CodeUri"), str):
                properties["CodeUri"] = self._stage_code(logical_id, properties["CodeUri"], root)
            if resource.get("Type") == "AWS::Serverless::StateMachine" and isinstance(
                properties.get("DefinitionUri"), str
            ):
                properties["DefinitionUri"] = self._stage_definition(logical_id, properties["DefinitionUri"], root)

    def _stage_code(self, owner: str, code_uri: str, root: Path) -> dict[str, str]:
        if code_uri.startswith("s3://"):
            raise StackDeployError(f"{owner}: CodeUri {code_uri} is already in S3; the twin runs local code only.")
        code_dir = (root / code_uri).resolve()
        if not code_dir.is_dir():
            raise StackDeployError(f"{owner}: CodeUri {code_uri!r} is not a folder under {root}; create it or fix it.")
        payload = deterministic_zip(code_dir)
        key = f"code/{hashlib.sha256(payload).hexdigest()}.zip"
        self.client("s3").put_object(Bucket=STAGING_BUCKET, Key=key, Body=payload)
        self.code_dirs[key] = code_dir
        return {"Bucket": STAGING_BUCKET, "Key": key}

    def _stage_definition(self, logical_id: str, definition_uri: str, root: Path) -> dict[str, str]:
        if definition_uri.startswith("s3://"):
            raise StackDeployError(
                f"{logical_id}: DefinitionUri {definition_uri} is in S3; the twin reads the ASL from a local file."
            )
        path = (root / definition_uri).resolve()
        if self.statemachines_dir is not None:
            path = self.statemachines_dir / path.name
        if not path.is_file():
            raise StackDeployError(
                f"{logical_id}: definition {path} does not exist; run `mlops export` to write statemachines/."
            )
        key = f"statemachines/{path.name}"
        self.client("s3").put_object(Bucket=STAGING_BUCKET, Key=key, Body=path.read_bytes())
        self.definition_files[logical_id] = path
        return {"Bucket": STAGING_BUCKET, "Key": key}

    # -- 3. CloudFormation, with the types moto lacks served here

    def create_stack(self, transformed: dict[str, Any], parameters: Mapping[str, str]) -> str:
        cloudformation = self.client("cloudformation")
        _work_around_moto_property_bugs(transformed)
        self._find_custom_resource_code(transformed["Resources"])
        with self._emulating_unsupported_types():
            response = cloudformation.create_stack(
                StackName=self.stack_name,
                TemplateBody=json.dumps(transformed),
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
            )
        stack = cloudformation.describe_stacks(StackName=response["StackId"])["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise StackDeployError(
                f"Stack {self.stack_name} ended {stack['StackStatus']}: {stack.get('StackStatusReason', 'no reason')}"
            )
        return str(response["StackId"])

    def _find_custom_resource_code(self, resources: dict[str, Any]) -> None:
        """Custom resource -> (code dir, handler) of the function behind its ServiceToken.

        The token names the function (`Fn::GetAtt`/`Ref`), or, once SAM's AutoPublishAlias rewrote it, an alias or
        version whose FunctionName names the function.
        """
        for logical_id, resource in resources.items():
            if not resource["Type"].startswith("Custom::"):
                continue
            target = _referenced_id((resource.get("Properties") or {}).get("ServiceToken"))
            while target in resources and resources[target]["Type"] in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
                target = _referenced_id(resources[target]["Properties"].get("FunctionName"))
            function = resources.get(target) if target else None
            if function is not None and function["Type"] == "AWS::Lambda::Function":
                code_key = function["Properties"]["Code"]["S3Key"]
                self.custom_resource_code[logical_id] = (self.code_dirs[code_key], function["Properties"]["Handler"])

    # -- after creation: what the twin runs

    def describe(self, transformed: dict[str, Any], stack_id: str, parameters: dict[str, str]) -> DeployedStack:
        cloudformation = self.client("cloudformation")
        stack = cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]
        resources = {
            item["LogicalResourceId"]: item["PhysicalResourceId"]
            for item in cloudformation.describe_stack_resources(StackName=stack_id)["StackResources"]
            if item.get("PhysicalResourceId")
        }
        template_resources: dict[str, Any] = transformed["Resources"]
        functions = self._functions(template_resources, resources)
        return DeployedStack(
            stack_name=self.stack_name,
            stack_id=stack_id,
            parameters=parameters,
            resources=resources,
            outputs={output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])},
            state_machines={
                logical_id: self._state_machine(record) for logical_id, record in self.state_machines.items()
            },
            functions=functions,
            rules=self._rules(template_resources, resources),
            queue_sources=self._queue_sources(functions),
            emulated=list(self.emulated),
            skipped=self._skipped(template_resources, stack_id),
        )

    def _functions(self, template_resources: dict[str, Any], resources: dict[str, str]) -> dict[str, FunctionSpec]:
        client = self.client("lambda")
        functions = {}
        for logical_id, resource in template_resources.items():
            if resource["Type"] != "AWS::Lambda::Function" or logical_id not in resources:
                continue
            configuration = client.get_function(FunctionName=resources[logical_id])["Configuration"]
            code_key = resource["Properties"]["Code"]["S3Key"]
            functions[logical_id] = FunctionSpec(
                logical_id=logical_id,
                function_name=configuration["FunctionName"],
                function_arn=configuration["FunctionArn"],
                handler=configuration["Handler"],
                code_dir=self.code_dirs[code_key],
                environment={k: str(v) for k, v in configuration.get("Environment", {}).get("Variables", {}).items()},
                timeout=int(configuration.get("Timeout", 3)),
            )
        return functions

    def _state_machine(self, record: StateMachineRecord) -> StateMachineSpec:
        definition_file = self.definition_files.get(record.logical_id)
        if definition_file is not None:
            text = definition_file.read_text(encoding="utf-8")
        elif record.definition_string is not None:
            text = record.definition_string
        else:
            raise StackDeployError(f"{record.logical_id} has neither a DefinitionUri file nor a DefinitionString.")
        substitutions = {
            name: _substitution_text(record.logical_id, name, value) for name, value in record.substitutions.items()
        }
        definition = apply_substitutions(
            text, substitutions, where=f"{record.logical_id} ({definition_file or 'inline'})"
        )
        return StateMachineSpec(
            logical_id=record.logical_id,
            name=record.name,
            arn=record.arn,
            definition=definition,
            role_arn=record.role_arn,
            definition_file=definition_file,
            substitutions=substitutions,
        )

    def _rules(self, template_resources: dict[str, Any], resources: dict[str, str]) -> list[RuleSpec]:
        events = self.client("events")
        rules = []
        for logical_id, resource in template_resources.items():
            if resource["Type"] != "AWS::Events::Rule" or logical_id not in resources:
                continue
            bus = resource["Properties"].get("EventBusName", "default")
            if not isinstance(bus, str):
                # `!Ref` of a bus of the stack: its physical id, the bus's name.
                referenced = _referenced_id(bus)
                if referenced is None or referenced not in resources:
                    raise StackDeployError(f"{logical_id}: EventBusName {bus} names no event bus of the stack")
                bus = resources[referenced].rsplit("/", 1)[-1]
            description = events.describe_rule(Name=resources[logical_id], EventBusName=bus)
            targets = events.list_targets_by_rule(Rule=resources[logical_id], EventBusName=bus)["Targets"]
            rules.append(
                RuleSpec(
                    logical_id=logical_id,
                    name=description["Name"],
                    event_bus_name=bus,
                    enabled=description.get("State", "ENABLED") == "ENABLED",
                    event_pattern=json.loads(description["EventPattern"]) if description.get("EventPattern") else None,
                    schedule=description.get("ScheduleExpression"),
                    targets=tuple(
                        RuleTarget(
                            target_id=target["Id"],
                            arn=target["Arn"],
                            input=target.get("Input"),
                            input_path=target.get("InputPath"),
                            input_transformer=target.get("InputTransformer"),
                        )
                        for target in targets
                    ),
                )
            )
        return rules

    def _queue_sources(self, functions: dict[str, FunctionSpec]) -> dict[str, QueueSource]:
        sqs = self.client("sqs")
        sources = {}
        for logical_id, properties in self.event_source_mappings.items():
            source_arn = str(properties.get("EventSourceArn", ""))
            if ":sqs:" not in source_arn:
                raise StackDeployError(
                    f"{logical_id}: event source {source_arn or '(none)'} is not an SQS queue; "
                    "the twin delivers only SQS event source mappings."
                )
            function = _function_named(functions, str(properties.get("FunctionName", "")), logical_id)
            queue_url = sqs.get_queue_url(QueueName=source_arn.rsplit(":", 1)[1])["QueueUrl"]
            sources[queue_url] = QueueSource(
                logical_id=logical_id,
                queue_arn=source_arn,
                queue_url=queue_url,
                function_logical_id=function.logical_id,
                batch_size=int(properties.get("BatchSize", 10)),
                batching_window_seconds=int(properties.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
                enabled=str(properties.get("Enabled", "true")).lower() != "false",
            )
        return sources

    def _skipped(self, template_resources: dict[str, Any], stack_id: str) -> list[ResourceNote]:
        conditions = (
            cloudformation_backends[LOCAL_ACCOUNT_ID][self.region].get_stack(stack_id).resource_map.lazy_condition_map
        )
        modelled = cfn_parsing.get_model_map()
        skipped = []
        for logical_id, resource in template_resources.items():
            resource_type = resource["Type"]
            if resource_type in EMULATED_TYPES:
                continue
            if (
                resource_type in modelled
                and not resource_type.startswith("Custom::")
                and resource_type not in LEFT_OUT_TYPES
            ):
                continue
            condition = resource.get("Condition")
            if condition and not conditions[condition]:
                continue  # not created on AWS either
            note = LEFT_OUT_TYPES.get(
                resource_type, "moto's CloudFormation cannot create this type and the twin does not emulate it"
            )
            skipped.append(ResourceNote(logical_id, resource_type, note))
        if skipped:
            logger.info(
                "The local twin leaves out %s (DeployedStack.skipped says why)",
                ", ".join(f"{note.logical_id} ({note.resource_type})" for note in skipped),
            )
        return skipped


def _work_around_moto_property_bugs(transformed: dict[str, Any]) -> None:
    """Rewrites the few properties moto 5.2.5's CloudFormation reads in a shape AWS does not use."""
    for resource in transformed["Resources"].values():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::KMS::Key" and isinstance(properties.get("Tags"), list):
            # moto passes CloudFormation's {Key, Value} tags to the KMS API, which wants {TagKey, TagValue}.
            properties["Tags"] = [{"TagKey": tag["Key"], "TagValue": tag["Value"]} for tag in properties["Tags"]]


def _referenced_id(value: Any) -> str | None:
    """The logical id a `Ref` or `Fn::GetAtt` names, or None for anything else."""
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            return str(value["Ref"])
        attribute = value.get("Fn::GetAtt")
        if isinstance(attribute, list) and attribute:
            return str(attribute[0])
    return None


def _bucket_args(bucket: str, region: str) -> dict[str, Any]:
    if region == "us-east-1":
        return {"Bucket": bucket}
    return {"Bucket": bucket, "CreateBucketConfiguration": {"LocationConstraint": region}}


def _function_named(functions: dict[str, FunctionSpec], name: str, owner: str) -> FunctionSpec:
    for spec in functions.values():
        if name in (spec.function_name, spec.function_arn, spec.logical_id):
            return spec
    raise StackDeployError(f"{owner}: function {name!r} is not one of the stack's functions {sorted(functions)}")


def _substitution_text(owner: str, name: str, value: Any) -> str:
    """A resolved substitution as the text Step Functions pastes in; an unresolved one is an error."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise StackDeployError(
        f"{owner}: DefinitionSubstitutions {name!r} resolved to {value!r}, not a string; "
        "it must reference something the stack creates."
    )


def apply_substitutions(definition: str, substitutions: Mapping[str, str], *, where: str) -> str:
    """`${Name}` -> value, as Step Functions applies DefinitionSubstitutions; fails naming any placeholder left."""
    missing = unfilled(definition, substitutions)
    if missing:
        raise StackDeployError(
            f"{where}: placeholders {', '.join('${' + name + '}' for name in missing)} have no value in "
            f"DefinitionSubstitutions (it has {', '.join(sorted(substitutions)) or 'none'}). Add them to the "
            "template, or make sure the resources they reference are created."
        )
    applied = substitute(definition, substitutions)
    try:
        json.loads(applied)
    except ValueError as error:
        raise StackDeployError(f"{where}: the definition is not valid JSON once substituted: {error}") from error
    return applied


def create_local_network() -> tuple[list[str], list[str]]:
    """A VPC with two subnets in different Availability Zones and a security group, in moto's EC2."""
    ec2 = boto3.client("ec2")
    vpc_id = ec2.create_vpc(CidrBlock=_LOCAL_VPC_CIDR)["Vpc"]["VpcId"]
    subnet_ids = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=f"{LOCAL_REGION}{zone}")["Subnet"]["SubnetId"]
        for cidr, zone in _LOCAL_SUBNETS
    ]
    group_id = ec2.create_security_group(
        GroupName="mlops-local-jobs", Description="SageMaker jobs and endpoints of the local twin", VpcId=vpc_id
    )["GroupId"]
    return subnet_ids, [group_id]


@contextmanager
def same_ids_at_every_start() -> Iterator[None]:
    """moto's random source seeded for the block, then given its own state back.

    The ids and physical names made in the block (the local network, the stack's resources) reach the state
    machines' definitions through the stack's substitutions; made the same at every start, a definition is the same
    text as at the last start and is not parsed again at CreateStateMachine (`emulator/asl_verdicts.py`). Only the
    twin's start runs in the block: nothing else draws from moto's random source meanwhile.
    """
    saved = mock_random.getstate()
    mock_random.seed(_STACK_IDS_SEED)
    try:
        yield
    finally:
        mock_random.setstate(saved)
