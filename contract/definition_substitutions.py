"""`${Name}` placeholders in an exported ASL file, filled the way Step Functions applies DefinitionSubstitutions.

Shared by the static checks (representative values) and the local twin (the stack's values); each says in its
own words what to do about a placeholder without a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def unfilled(text: str, values: Mapping[str, str]) -> list[str]:
    """The placeholder names in `text` that `values` has no value for, sorted."""
    return sorted({name for name in PLACEHOLDER.findall(text) if name not in values})


def substitute(text: str, values: Mapping[str, str]) -> str:
    """`text` with every `${Name}` replaced by `values[Name]`; call `unfilled` first to name what is missing."""
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)
