"""What samtranslator needs to run offline: managed policy ARNs without calling IAM."""

from __future__ import annotations


class StaticManagedPolicyLoader:
    """Managed policy name -> ARN from the table samtranslator ships, so the transform never calls IAM."""

    def __init__(self, partition: str = "aws") -> None:
        self._partition = partition

    def load(self) -> dict[str, str]:
        from samtranslator.internal.managed_policies import get_bundled_managed_policy_map

        return dict(get_bundled_managed_policy_map(self._partition) or {})
