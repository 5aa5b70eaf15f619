"""Who signed a SageMaker request, as SageMaker records it (`CreatedBy`, `LastModifiedBy`): only what moto knows.

moto keeps the credentials it issued: an access key from `sts:AssumeRole` maps to its assumed-role session
(`arn:aws:sts::<account>:assumed-role/<role>/<session>`), an IAM user's access key to the user. Any other key
(the `testing` keys of tests and `mlops up` clients, the fixed key moto's Step Functions engine signs its
tasks with, the in-process Lambdas' environment keys) names nobody: `caller_identity` returns None and the
registry records no identity, rather than moto's stand-in `user/moto` (docs/local-twin.md).
"""

from __future__ import annotations

from typing import Any

from moto.iam.exceptions import NotFoundException
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from contract.local_account import LOCAL_ACCOUNT_ID

PARTITION = "aws"


def caller_identity(access_key_id: str | None) -> dict[str, Any] | None:
    """`{"IamIdentity": {"Arn", "PrincipalId"}}` (botocore's UserContext) of a key moto issued, else None."""
    if not access_key_id:
        return None
    for account_id in {LOCAL_ACCOUNT_ID, *sts_backends.keys()}:
        assumed = sts_backends[account_id][PARTITION].get_assumed_role_from_access_key(access_key_id)
        if assumed is not None:
            try:
                principal_id = assumed.user_id  # the role's id and the session name, as AWS gives it
            except NotFoundException:
                # moto lets anyone assume a role that does not exist; its session still names that role.
                principal_id = f"{assumed.role_arn}:{assumed.session_name}"
            return {"IamIdentity": {"Arn": assumed.arn, "PrincipalId": principal_id}}
    for account_id in {LOCAL_ACCOUNT_ID, *iam_backends.keys()}:
        user = iam_backends[account_id][PARTITION].get_user_from_access_key_id(access_key_id)
        if user is not None:
            return {"IamIdentity": {"Arn": user.arn, "PrincipalId": user.id}}
    return None
