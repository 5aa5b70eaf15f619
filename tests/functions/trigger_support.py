"""What the trigger tests share: the twin stack's drift prefix, and AWS clients that fail the way the network does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ReadTimeoutError

# The twin deploys the stack as mlops-local; the event files are that stack's.
DRIFT_PREFIX = "mlops-local-drift-"
# The rule template.yaml names `${AWS::StackName}-scheduled-retraining`, as that stack's function sees it.
RETRAINING_SCHEDULE_RULE_ARN = "arn:aws:events:us-east-1:123456789012:rule/mlops-local-scheduled-retraining"


class FailingAfter:
    """A boto3 client whose `operation` runs for real and then fails as if its answer were lost on the way back.

    With `land=False` the real call is not made: the request never reached AWS.
    """

    def __init__(self, client: Any, operation: str, *, land: bool = True, times: int = 1) -> None:
        self._client = client
        self._operation = operation
        self._land = land
        self._failures_left = times
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._operation:
            return real

        def call(**kwargs: Any) -> Any:
            self.calls += 1
            if self._failures_left <= 0:
                return real(**kwargs)
            self._failures_left -= 1
            if self._land:
                real(**kwargs)
            raise ReadTimeoutError(endpoint_url=f"https://{self._operation}.example")

        return call


class BeforeReturning:
    """A boto3 client that runs `interleave()` after `operation` answered and before the caller sees the answer."""

    def __init__(self, client: Any, operation: str, interleave: Callable[[], None]) -> None:
        self._client = client
        self._operation = operation
        self._interleave = interleave

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._operation:
            return real

        def call(**kwargs: Any) -> Any:
            answer = real(**kwargs)
            self._interleave()
            return answer

        return call
