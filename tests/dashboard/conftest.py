from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from gastown.management.commands.create_team_lead_group import team_lead_group_sync
from tests.factories import RigFactory, TownFactory, UserFactory


@pytest.fixture
def team_lead_group(db) -> Group:
    group, _ = team_lead_group_sync()
    return group


@pytest.fixture
def town(db):
    return TownFactory(slug="acme", name="Acme")


@pytest.fixture
def rig(town):
    return RigFactory(town=town, name="web", repo="acme/web")


@pytest.fixture
def lead(team_lead_group, town):
    """A team lead: in the team lead group and a member of `town`."""
    user = UserFactory(username="lead")
    user.groups.add(team_lead_group)
    town.member_users.add(user)
    return user


@pytest.fixture
def lead_client(client, lead):
    client.force_login(lead)
    return client
