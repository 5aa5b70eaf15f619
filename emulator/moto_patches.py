"""Patching moto in place and undoing it: `MotoPatches` replaces attributes and puts every one back, newest first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_ABSENT = object()


class MotoPatches:
    """What one component of the twin replaced in moto; `undo()` restores it all, and is safe to call twice.

    On a class the original is read from the class's own `__dict__`, so a `staticmethod` goes back as one and an
    attribute the class only inherited is removed again rather than copied down.
    """

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    @property
    def active(self) -> bool:
        """Whether anything is patched (so an `install()` can refuse or skip a second one)."""
        return bool(self._undo)

    def replace(self, owner: Any, attribute: str, replacement: Any) -> None:
        """Set `owner.attribute` to `replacement` (adding it if moto lacks it) until `undo()`."""
        original = owner.__dict__.get(attribute, _ABSENT) if isinstance(owner, type) else getattr(owner, attribute)
        setattr(owner, attribute, replacement)

        def restore() -> None:
            if original is _ABSENT:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)

        self._undo.append(restore)

    def on_undo(self, callback: Callable[[], None]) -> None:
        """Run `callback` on `undo()`, in order with the replacements (for state that is not an attribute)."""
        self._undo.append(callback)

    def undo(self) -> None:
        """Put back everything replaced, in the reverse order of replacing."""
        while self._undo:
            self._undo.pop()()
