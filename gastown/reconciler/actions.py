"""What the rules ask for. Plain data: planning never writes, so a dry run just lists these."""

from __future__ import annotations

from dataclasses import dataclass

from beads.models import bead_ref
from beads.sentences import plural


@dataclass(frozen=True)
class Action:
    rule: str

    @property
    def kind(self) -> str:
        return type(self).__name__

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class DispatchPolecat(Action):
    bead_id: int
    rig_id: int
    agent_id: int | None  # None: create a new polecat

    def describe(self) -> str:
        who = f"agent {self.agent_id}" if self.agent_id else "a new polecat"
        return f"dispatch {bead_ref(self.bead_id)} to {who}"


@dataclass(frozen=True)
class DispatchRefinery(Action):
    mr_id: int
    bead_id: int
    rig_id: int
    agent_id: int | None  # None: create the rig's refinery
    open_pr: bool

    def describe(self) -> str:
        extra = " and open its PR" if self.open_pr else ""
        return f"hand MR {bead_ref(self.bead_id)} to the refinery for review{extra}"


@dataclass(frozen=True)
class WatchMergeRequest(Action):
    mr_id: int
    bead_id: int
    open_pr: bool

    def describe(self) -> str:
        extra = " and open its PR" if self.open_pr else ""
        return f"watch MR {bead_ref(self.bead_id)} (no code review){extra}"


@dataclass(frozen=True)
class FailBead(Action):
    bead_id: int
    code: str
    message: str

    def describe(self) -> str:
        return f"fail {bead_ref(self.bead_id)} ({self.code}): {self.message}"


@dataclass(frozen=True)
class ReopenBead(Action):
    bead_id: int
    agent_id: int | None
    note: str

    def describe(self) -> str:
        return f"reopen {bead_ref(self.bead_id)}: {self.note}"


@dataclass(frozen=True)
class CloseBead(Action):
    bead_id: int
    note: str

    def describe(self) -> str:
        return f"close {bead_ref(self.bead_id)}: {self.note}"


@dataclass(frozen=True)
class UnhookAgent(Action):
    agent_id: int
    bead_id: int
    note: str

    def describe(self) -> str:
        return f"unhook agent {self.agent_id} from {bead_ref(self.bead_id)}: {self.note}"


@dataclass(frozen=True)
class RaiseEscalation(Action):
    key: str
    title: str
    body: str
    rig_id: int | None = None
    wait_mr_id: int | None = None  # W: remember the wait was escalated
    convoy_id: int | None = None

    def describe(self) -> str:
        return f"raise escalation: {self.title}"


@dataclass(frozen=True)
class RemoveAgent(Action):
    agent_id: int
    name: str

    def describe(self) -> str:
        return f"remove idle agent {self.name}"


@dataclass(frozen=True)
class RequestFeedbackCheck(Action):
    due: int

    def describe(self) -> str:
        return f"check {plural(self.due, 'pull request')} due for feedback"


# Convoy landing (domain.md §5).


@dataclass(frozen=True)
class ConvoyStart(Action):
    convoy_id: int

    def describe(self) -> str:
        return f"create the feature branch of convoy {self.convoy_id}"


@dataclass(frozen=True)
class ConvoyReadyToLand(Action):
    convoy_id: int

    def describe(self) -> str:
        return f"convoy {self.convoy_id} is ready to land"


@dataclass(frozen=True)
class CreateLandingMergeRequest(Action):
    convoy_id: int
    adopt_pr_url: str  # a suppressed PR that was approved: adopt it, count no attempt
    count_attempt: bool

    def describe(self) -> str:
        if self.adopt_pr_url:
            return f"new landing MR for convoy {self.convoy_id} adopting {self.adopt_pr_url}"
        return f"new landing MR for convoy {self.convoy_id} (attempt counted)"


@dataclass(frozen=True)
class ConvoyLand(Action):
    convoy_id: int
    note: str

    def describe(self) -> str:
        return f"convoy {self.convoy_id} lands: {self.note}"


@dataclass(frozen=True)
class ConvoyFail(Action):
    convoy_id: int
    reason: str
    message: str

    def describe(self) -> str:
        return f"convoy {self.convoy_id} fails ({self.reason})"


@dataclass(frozen=True)
class SuppressRespawn(Action):
    convoy_id: int
    mr_id: int
    pr_url: str
    attempt: int

    def describe(self) -> str:
        return (
            f"suppress landing respawn of convoy {self.convoy_id}: {self.pr_url} waits on a "
            f"human (attempt {self.attempt} not made)"
        )


@dataclass(frozen=True)
class EndSuppression(Action):
    convoy_id: int
    how: str  # merged, approved, closed

    def describe(self) -> str:
        return f"end the respawn suppression of convoy {self.convoy_id} ({self.how})"
