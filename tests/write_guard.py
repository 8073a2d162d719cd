"""One write path per entity, checked while the suite runs (docs/architecture.md, "Layers").

Every insert or update of a guarded model is traced to the first frame of our own code that
asked for it; unless that frame is in the entity's services module (or in the tests, which
build rows directly as a fixture or the shell would), the test that ran it fails. Static
checks miss writes through a model instance or a queryset passed around; this sees every
write the suite exercises.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from django.db.models.query import QuerySet

#: model label -> the modules allowed to write it.
WRITERS: dict[str, tuple[str, ...]] = {
    "gastown.Convoy": ("gastown.services.convoys",),
    "beads.Bead": ("beads.services", "beads.merge_requests"),
    "beads.MergeRequest": ("beads.services", "beads.merge_requests", "gastown.feedback"),
}
#: Writers allowed only some fields: the feedback check stores what GitHub said (the PR
#: snapshot) and its own bookkeeping, never a decision (a state moves only by a transition).
FORBIDDEN_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("beads.MergeRequest", "gastown.feedback"): frozenset({"state"}),
}
_OURS = ("gastown.", "beads.", "scm.")
#: Modules that build rows directly, as a fixture or the shell would (the benchmark's seed).
_SEEDERS = ("gastown.management.bench_seed",)
_violations: list[str] = []


def _writer() -> tuple[str, int]:
    """The module and line of the first frame of our own code (or of the tests) on the
    stack."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name == "django.db.models.deletion":
            return "", 0  # a cascade of deleting another row, not a write of this entity
        if name != __name__ and (name.startswith(_OURS) or name.startswith("tests")):
            return name, frame.f_lineno
        frame = frame.f_back
    return "", 0


def _check(model: type, how: str, fields: tuple[str, ...] = ()) -> None:
    label = model._meta.label
    allowed = WRITERS.get(label)
    if allowed is None:
        return
    writer, line = _writer()
    if not writer or writer.startswith(("tests", *_SEEDERS)) or ".migrations." in writer:
        return
    if not writer.startswith(allowed):
        _violations.append(f"{writer}:{line} {how} {label} (only {', '.join(allowed)} may)")
        return
    for (guarded, prefix), forbidden in FORBIDDEN_FIELDS.items():
        if guarded == label and writer.startswith(prefix) and forbidden & set(fields):
            names = ", ".join(sorted(forbidden & set(fields)))
            _violations.append(f"{writer}:{line} {how} {label}.{names} (not its to write)")


def install() -> None:
    original_insert = QuerySet._insert
    original_update = QuerySet.update
    original_raw_update = QuerySet._update

    def _insert(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        _check(self.model, "inserts")
        return original_insert(self, *args, **kwargs)

    def update(self, **kwargs):  # type: ignore[no-untyped-def]
        _check(self.model, "updates", tuple(kwargs))
        return original_update(self, **kwargs)

    def _update(self, values):  # type: ignore[no-untyped-def]
        _check(self.model, "saves", tuple(field.name for field, _model, _value in values))
        return original_raw_update(self, values)

    QuerySet._insert = _insert  # type: ignore[method-assign]
    QuerySet.update = update  # type: ignore[method-assign]
    QuerySet._update = _update  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def one_write_path_per_entity() -> Iterator[None]:
    _violations.clear()
    yield
    found = sorted(set(_violations))
    _violations.clear()
    if os.environ.get("WRITE_GUARD_REPORT"):
        with open(os.environ["WRITE_GUARD_REPORT"], "a") as report:
            report.writelines(f"{line}\n" for line in found)
        return
    assert not found, "writes outside the entity's services:\n" + "\n".join(found)


install()
