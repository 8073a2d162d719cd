"""A town that authenticates as a GitHub App (docs/domain.md §2, §4): its PRs are checked
with the installation's token, and an installation GitHub no longer accepts pauses the town
with one escalation, like a bad token; no merge request fails."""

from __future__ import annotations

import pytest

from beads.models import BeadStatus
from gastown.models import Town
from gastown.services.github import town_credential
from scm.credentials import ENV_APP, TOWN_APP, GitHubAppCredential
from scm.errors import CredentialError
from tests.feedback.conftest import REPO, escalations, make_mr, reload, run
from tests.scm.test_app_installations import APP_ID, _key_pair


@pytest.fixture(scope="module")
def key_pair():
    return _key_pair()


@pytest.fixture
def app_town(fake_github, key_pair, town):
    private, public = key_pair
    fake_github.register_app(APP_ID, public)
    town.github_app_id = str(APP_ID)
    town.set_github_app_private_key(private)
    town.save()
    return town


def test_a_town_with_an_app_checks_and_merges_as_its_installation(
    fake_github, repo, app_town, rig, clock
):
    installation = fake_github.install_app(APP_ID, "octo")
    mr = make_mr(fake_github, rig)
    fake_github.clear_requests()

    run(clock)

    assert reload(mr).bead.status == BeadStatus.CLOSED
    principals = {r.principal for r in fake_github.requests if r.path != "/app/installations"}
    assert f"installation:{installation}" in principals
    assert "user" not in principals  # never the GITHUB_TOKEN the fixture also sets


def test_a_suspended_installation_pauses_the_town_once(fake_github, repo, app_town, rig, clock):
    installation = fake_github.install_app(APP_ID, "octo")
    mr = make_mr(fake_github, rig)
    fake_github.set_check(REPO, mr.pr_number, "ci", None, status="in_progress")
    run(clock)
    fake_github.suspend_installation(installation)
    fake_github.revoke_installation_tokens(installation)

    for _ in range(3):
        clock.advance(minutes=10)
        run(clock)

    town = Town.objects.get(pk=app_town.pk)
    assert town.github_blocked_until is not None
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.OPEN and mr.consecutive_transient_failures == 0
    [escalation] = escalations("github:unauthorized")
    assert "GitHub App" in escalation.body


def test_the_app_key_is_write_only_and_encrypted(app_town, key_pair):
    assert key_pair[0] not in app_town.github_app_private_key_encrypted
    credential = town_credential(app_town)
    assert isinstance(credential, GitHubAppCredential) and credential.source == TOWN_APP
    assert key_pair[0].strip() not in repr(credential)


def test_a_deployment_app_serves_towns_without_a_credential(town, settings, key_pair):
    settings.GITHUB_APP_ID, settings.GITHUB_APP_PRIVATE_KEY = str(APP_ID), key_pair[0]
    credential = town_credential(town)
    assert credential.source == ENV_APP


def test_a_half_configured_town_app_is_a_credential_problem(town):
    town.github_app_id = str(APP_ID)
    town.save()
    with pytest.raises(CredentialError) as raised:
        town_credential(town)
    assert "private key" in raised.value.message
