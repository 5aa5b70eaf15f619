"""SageMaker's own request validation for members the local backend stores as given, from botocore's service model.

A request that reaches the backend without passing through boto3 (the ASL engine's optimized `sagemaker:` tasks,
a direct `LocalSageMaker.call`) is checked as botocore would check it (unknown members, wrong types) and as the
service then does (required members, lengths, patterns), with the messages each of them gives, so the twin refuses
what AWS refuses instead of storing it.

It also refuses, at Create*, what AWS accepts but the twin cannot run as AWS would (`refuse_pipe_mode_inputs`),
rather than run it as something else.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from botocore.model import ServiceModel, Shape, StructureShape

from emulator.sagemaker_local.errors import validation_error
from emulator.service_lookups import shared_loader


@functools.cache
def _input_shape(operation: str) -> StructureShape:
    # Reading SageMaker's model takes a few tenths of a second: the process's one loader has read it for moto already.
    model = ServiceModel(shared_loader().load_service_model("sagemaker", "service-2"), "sagemaker")
    shape = model.operation_model(operation).input_shape
    assert shape is not None, operation
    return shape


def check_request_member(operation: str, member: str, params: dict[str, Any]) -> None:
    """Raises SageMaker's ValidationException when `params[member]` (if present) does not fit the API's shape."""
    if member not in params:
        return
    shape = _input_shape(operation).members[member]
    problems: list[str] = []
    _check(params[member], shape, [member], problems)
    if problems:
        count = "1 validation error" if len(problems) == 1 else f"{len(problems)} validation errors"
        raise validation_error(f"{count} detected: {'; '.join(problems)}")


def _check(value: Any, shape: Shape, path: list[str], problems: list[str]) -> None:
    if shape.type_name == "structure":
        assert isinstance(shape, StructureShape)
        _check_structure(value, shape, path, problems)
    elif shape.type_name == "string":
        _check_string(value, shape, path, problems)
    else:
        # Only the shapes of the members this module is asked to check are implemented; a new one must add its type.
        raise NotImplementedError(f"request_shapes does not check {shape.type_name} members ({'.'.join(path)})")


def _check_structure(value: Any, shape: StructureShape, path: list[str], problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(_invalid_type(path, value, dict))
        return
    for key in value:
        if key not in shape.members:
            problems.append(
                f'Unknown parameter in {".".join(path)}: "{key}", must be one of: {", ".join(shape.members)}'
            )
    for key in shape.required_members:
        if value.get(key) is None:
            where = _service_path([*path, key])
            problems.append(f"Value null at '{where}' failed to satisfy constraint: Member must not be null")
    for key, member_value in value.items():
        if key in shape.members and member_value is not None:
            _check(member_value, shape.members[key], [*path, key], problems)


def _check_string(value: Any, shape: Shape, path: list[str], problems: list[str]) -> None:
    if not isinstance(value, str):
        problems.append(_invalid_type(path, value, str))
        return
    where = f"Value '{value}' at '{_service_path(path)}' failed to satisfy constraint: Member must"
    metadata = shape.metadata
    if "min" in metadata and len(value) < metadata["min"]:
        problems.append(f"{where} have length greater than or equal to {metadata['min']}")
    if "max" in metadata and len(value) > metadata["max"]:
        problems.append(f"{where} have length less than or equal to {metadata['max']}")
    # The service matches the whole value (Java's Pattern.matches), not a part of it.
    if "pattern" in metadata and re.fullmatch(metadata["pattern"], value) is None:
        problems.append(f"{where} satisfy regular expression pattern: {metadata['pattern']}")


def _invalid_type(path: list[str], value: Any, valid: type) -> str:
    # botocore's wording: its client refuses such a request before sending it.
    return f"Invalid type for parameter {'.'.join(path)}, value: {value!r}, type: {type(value)}, valid types: {valid}"


def _service_path(path: list[str]) -> str:
    # The service names members in lowerCamelCase: driftCheckBaselines.modelDataQuality.statistics.s3Uri.
    return ".".join(part[:1].lower() + part[1:] for part in path)


# SageMaker streams a Pipe-mode input through a FIFO per channel and epoch (`/opt/ml/input/data/<channel>_<epoch>`);
# the twin stages files only, and a File-mode script would then pass here and fail on AWS.
_PIPE_MODE_REFUSAL = (
    "is not supported by the local twin: SageMaker streams such an input through a FIFO ({fifo}), which the twin "
    "does not emulate; use {instead} or run the job on AWS"
)


def refuse_pipe_mode_inputs(operation: str, params: dict[str, Any]) -> None:
    """Raises ValidationException naming the channel (or processing input) and the mode when a request asks for
    Pipe mode: CreateTrainingJob's TrainingInputMode or a channel's InputMode, a tuning job's TrainingJobDefinition,
    CreateProcessingJob's S3InputMode."""
    if operation == "CreateProcessingJob":
        for processing_input in params.get("ProcessingInputs") or []:
            mode = (processing_input.get("S3Input") or {}).get("S3InputMode", "File")
            if mode == "Pipe":
                name = processing_input.get("InputName")
                raise validation_error(
                    f"ProcessingInput {name!r}: S3InputMode 'Pipe' "
                    + _PIPE_MODE_REFUSAL.format(fifo="at the input's LocalPath", instead="File")
                )
        return
    training = params.get("TrainingJobDefinition") if operation == "CreateHyperParameterTuningJob" else params
    default_mode = ((training or {}).get("AlgorithmSpecification") or {}).get("TrainingInputMode", "File")
    for channel in (training or {}).get("InputDataConfig") or []:
        mode = channel.get("InputMode") or default_mode
        if mode == "Pipe":
            name = channel.get("ChannelName")
            setting = "InputMode" if channel.get("InputMode") else "AlgorithmSpecification.TrainingInputMode"
            raise validation_error(
                f"{operation}: channel {name!r} has {setting} 'Pipe', which "
                + _PIPE_MODE_REFUSAL.format(fifo=f"/opt/ml/input/data/{name}_<epoch>", instead="File (or FastFile)")
            )
