"""`mlops up`'s stack options are checked against template.yaml before anything starts, naming what was wrong."""

from __future__ import annotations

import pytest

from contract.project import TEMPLATE_PATH
from emulator.commands.up import UpUsageError, stack_overrides


def test_approval_and_overrides_become_stack_parameters() -> None:
    chosen = stack_overrides(TEMPLATE_PATH, "manual", {"ReaperDryRun": "false", "ReaperIdleWindowHours": "1"})
    assert chosen == {"ApprovalMode": "manual", "ReaperDryRun": "false", "ReaperIdleWindowHours": "1"}


@pytest.mark.parametrize(
    ("approval", "overrides", "message"),
    [
        ("manual", {"NoSuchParameter": "1"}, "NoSuchParameter is no parameter of template.yaml"),
        ("sometimes", {}, "--approval: 'sometimes' is not one of manual, auto"),
        ("manual", {"ReaperDryRun": "maybe"}, "--parameter-overrides ReaperDryRun: 'maybe' is not one of"),
        ("manual", {"ReaperIdleWindowHours": "0"}, "ReaperIdleWindowHours: 0 is below its MinValue 1"),
        ("manual", {"ReaperIdleWindowHours": "soon"}, "ReaperIdleWindowHours: 'soon' is not a number"),
    ],
)
def test_bad_options_are_refused_naming_them(approval: str, overrides: dict[str, str], message: str) -> None:
    with pytest.raises(UpUsageError) as refused:
        stack_overrides(TEMPLATE_PATH, approval, overrides)
    assert message in str(refused.value)
