"""Who did something: every audited change names its actor (domain.md §2, bead event)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gastown.models import Agent


@dataclass(frozen=True)
class Actor:
    label: str
    user: Any = None  # a django.contrib.auth user, when a person acted

    @classmethod
    def reconciler(cls) -> Actor:
        return cls("reconciler")

    @classmethod
    def webhook(cls) -> Actor:
        return cls("webhook")

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        return cls(f"user:{user.get_username()}", user)

    @classmethod
    def for_agent(cls, agent: Agent) -> Actor:
        return cls(f"agent:{agent.name}")

    def __str__(self) -> str:
        return self.label
