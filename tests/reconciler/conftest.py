from datetime import timedelta

import pytest
from django.utils import timezone

from gastown.reconciler import reconcile_town


class Clock:
    """Explicit time for the reconciler: ticks get `now`, tests move it."""

    def __init__(self) -> None:
        self.now = timezone.now()

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def tick(clock):
    def run(town, **kwargs):
        town.refresh_from_db()
        return reconcile_town(town, now=clock.now, **kwargs)

    return run
