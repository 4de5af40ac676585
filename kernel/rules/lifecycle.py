"""Status lifecycles of documents (work orders, purchase and sales orders, transfers): one rule for all."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

StatusT = TypeVar("StatusT", bound=Enum)
ActionT = TypeVar("ActionT", bound=Enum)

from kernel.rules.refusals import Conflict


class InvalidTransition(Conflict):
    """An action the document's current status does not allow, or no action at all."""


@dataclass(frozen=True, slots=True)
class Lifecycle(Generic[StatusT, ActionT]):
    """Which action takes a `document` from each status to which status."""

    document: str
    actions: type[ActionT]
    steps: Mapping[StatusT, Mapping[ActionT, StatusT]]

    def after(self, status: StatusT, action: ActionT | str) -> StatusT:
        """The status after `action` (given as member or its stored text); InvalidTransition says which
        actions the status allows instead."""
        try:
            action = self.actions(action)
        except ValueError:
            known = ", ".join(a.value for a in self.actions)
            raise InvalidTransition(f"unknown {self.document} action {action!r}: expected one of {known}") from None
        allowed = self.steps[status]
        if action not in allowed:
            instead = ", ".join(_spoken(a) for a in allowed) or "none, it is final"
            raise InvalidTransition(f"cannot {_spoken(action)} a {self.document} that is {_spoken(status)} (allowed: {instead})")
        return allowed[action]


def _spoken(member: Enum) -> str:
    value: str = member.value
    return value.replace("_", " ")
