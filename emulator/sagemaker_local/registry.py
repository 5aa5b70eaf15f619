"""The local SageMaker's model registry: model package groups and versioned packages with their approval."""

from __future__ import annotations

import copy
from typing import Any

from emulator.sagemaker_local.errors import SageMakerError, not_found, validation_error
from emulator.sagemaker_local.request_shapes import check_request_member
from emulator.sagemaker_local.store import SageMakerStore, paginate, sort_summaries

_APPROVAL_STATUSES = {"Approved", "Rejected", "PendingManualApproval"}
# Members stored and returned by DescribeModelPackage as given, so checked against the API's shapes first: the
# monitoring of a deployed package reads its baseline from DriftCheckBaselines.
_CHECKED_PACKAGE_MEMBERS = ("ModelMetrics", "DriftCheckBaselines")
# Operations that record who called (`caller`: botocore's UserContext, `{"IamIdentity": {"Arn", "PrincipalId"}}`),
# as SageMaker records a package's CreatedBy and LastModifiedBy. The twin knows the caller only for credentials
# moto issued (callers.py); for any other it records nothing rather than an identity nobody used.
CALLER_RECORDING_OPERATIONS = frozenset({"CreateModelPackage", "UpdateModelPackage"})


class ModelRegistryAPIs(SageMakerStore):
    """Model package groups and packages; an approval change emits the registry's state-change event."""

    def _op_CreateModelPackageGroup(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name(params.get("ModelPackageGroupName"), "ModelPackageGroupName")
        with self._lock:
            if name in self._package_groups:
                raise validation_error(f"Model Package Group already exists: {self._arn('model-package-group', name)}")
            description = {
                "ModelPackageGroupName": name,
                "ModelPackageGroupArn": self._arn("model-package-group", name),
                "ModelPackageGroupDescription": params.get("ModelPackageGroupDescription", ""),
                "CreationTime": self.clock.now(),
                "ModelPackageGroupStatus": "Completed",
            }
            self._package_groups[name] = description
        self._record_tags(description["ModelPackageGroupArn"], params.get("Tags"))
        return {"ModelPackageGroupArn": description["ModelPackageGroupArn"]}

    def _package_group(self, name: str) -> dict[str, Any]:
        with self._lock:
            group = self._package_groups.get(name.rsplit("/", 1)[-1])
        if group is None:
            raise not_found("model package group", name)
        return group

    def _op_DescribeModelPackageGroup(self, params: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(self._package_group(params["ModelPackageGroupName"]))

    def _op_ListModelPackageGroups(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            groups = [copy.deepcopy(g) for g in self._package_groups.values()]
        if params.get("NameContains"):
            groups = [g for g in groups if params["NameContains"] in g["ModelPackageGroupName"]]
        return paginate(sort_summaries(groups, params, "ModelPackageGroupName"), params, "ModelPackageGroupSummaryList")

    def _op_DeleteModelPackageGroup(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._package_group(params["ModelPackageGroupName"])
        with self._lock:
            if any(p["ModelPackageGroupName"] == group["ModelPackageGroupName"] for p in self._packages.values()):
                raise SageMakerError(
                    "ConflictException",
                    f"Model package group {group['ModelPackageGroupName']} still holds model packages",
                )
            self._package_groups.pop(group["ModelPackageGroupName"], None)
        return {}

    def _op_CreateModelPackage(self, params: dict[str, Any], caller: dict[str, Any] | None = None) -> dict[str, Any]:
        group_name = params.get("ModelPackageGroupName")
        if not group_name:
            raise validation_error("Only versioned model packages (with ModelPackageGroupName) are supported locally")
        group = self._package_group(group_name)
        status = params.get("ModelApprovalStatus", "PendingManualApproval")
        if status not in _APPROVAL_STATUSES:
            raise validation_error(f"ModelApprovalStatus {status!r} is not one of {sorted(_APPROVAL_STATUSES)}")
        if not (params.get("InferenceSpecification") or {}).get("Containers"):
            raise validation_error("InferenceSpecification.Containers is required for a model package")
        for member in _CHECKED_PACKAGE_MEMBERS:
            check_request_member("CreateModelPackage", member, params)
        with self._lock:
            version = 1 + sum(
                1 for p in self._packages.values() if p["ModelPackageGroupName"] == group["ModelPackageGroupName"]
            )
            arn = self._arn("model-package", f"{group['ModelPackageGroupName'].lower()}/{version}")
            now = self.clock.now()
            description = {
                **{key: value for key, value in params.items() if key not in ("Tags", "ClientToken")},
                "ModelPackageName": group["ModelPackageGroupName"],
                "ModelPackageGroupName": group["ModelPackageGroupName"],
                "ModelPackageVersion": version,
                "ModelPackageArn": arn,
                "CreationTime": now,
                "LastModifiedTime": now,
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
                "CertifyForMarketplace": bool(params.get("CertifyForMarketplace", False)),
                "ModelApprovalStatus": status,
                **({"CreatedBy": caller, "LastModifiedBy": copy.deepcopy(caller)} if caller else {}),
            }
            self._packages[arn] = description
        self._record_tags(arn, params.get("Tags"))
        self._emit_package(description)
        return {"ModelPackageArn": arn}

    def _emit_package(self, description: dict[str, Any]) -> None:
        with self._lock:
            detail = copy.deepcopy(description)
        self._emit("SageMaker Model Package State Change", [detail["ModelPackageArn"]], detail)

    def _op_DescribeModelPackage(self, params: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(self._package(params["ModelPackageName"]))

    def _op_UpdateModelPackage(self, params: dict[str, Any], caller: dict[str, Any] | None = None) -> dict[str, Any]:
        package = self._package(params["ModelPackageArn"])
        status = params.get("ModelApprovalStatus")
        if status is not None and status not in _APPROVAL_STATUSES:
            raise validation_error(f"ModelApprovalStatus {status!r} is not one of {sorted(_APPROVAL_STATUSES)}")
        with self._lock:
            approval_changed = status is not None and status != package["ModelApprovalStatus"]
            if status is not None:
                package["ModelApprovalStatus"] = status
            if "ApprovalDescription" in params:
                package["ApprovalDescription"] = params["ApprovalDescription"]
            metadata = package.setdefault("CustomerMetadataProperties", {})
            metadata.update(params.get("CustomerMetadataProperties") or {})
            for key in params.get("CustomerMetadataPropertiesToRemove") or []:
                metadata.pop(key, None)
            package["LastModifiedTime"] = self.clock.now()
            # A caller the twin cannot name leaves no LastModifiedBy, not the previous modifier's: an approval
            # must never be attributed to someone who did not make it.
            if caller:
                package["LastModifiedBy"] = caller
            else:
                package.pop("LastModifiedBy", None)
        if approval_changed:
            self._emit_package(package)
        return {"ModelPackageArn": package["ModelPackageArn"]}

    def _op_ListModelPackages(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            packages = [copy.deepcopy(p) for p in self._packages.values()]
        if params.get("ModelPackageGroupName"):
            group = params["ModelPackageGroupName"].rsplit("/", 1)[-1]
            packages = [p for p in packages if p["ModelPackageGroupName"] == group]
        if params.get("ModelApprovalStatus"):
            packages = [p for p in packages if p["ModelApprovalStatus"] == params["ModelApprovalStatus"]]
        fields = [
            "ModelPackageName",
            "ModelPackageGroupName",
            "ModelPackageVersion",
            "ModelPackageArn",
            "ModelPackageDescription",
            "CreationTime",
            "ModelPackageStatus",
            "ModelApprovalStatus",
        ]
        summaries = [{field: p[field] for field in fields if field in p} for p in packages]
        return paginate(sort_summaries(summaries, params, "ModelPackageName"), params, "ModelPackageSummaryList")

    def _op_DeleteModelPackage(self, params: dict[str, Any]) -> dict[str, Any]:
        package = self._package(params["ModelPackageName"])
        with self._lock:
            self._packages.pop(package["ModelPackageArn"], None)
        return {}
