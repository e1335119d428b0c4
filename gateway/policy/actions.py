"""The actions a rule grants and a token carries: pull, push, delete."""

from __future__ import annotations

from typing import Literal

Action = Literal["pull", "push", "delete"]
ACTIONS: tuple[Action, ...] = ("pull", "push", "delete")


def as_action(value: str) -> Action | None:
    """`value` as an Action, or None when it names none."""
    return next((a for a in ACTIONS if a == value), None)
