"""Issuing and revoking API tokens: the command, the admin."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command

from gastown.models import ApiToken, WebhookDelivery
from tests.factories import TownFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = UserFactory(username="admin", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def test_command_prints_a_working_token_once(client):
    TownFactory(slug="acme")
    out, err = StringIO(), StringIO()
    call_command("create_api_token", town="acme", name="runtime", stdout=out, stderr=err)
    token = out.getvalue().strip()
    assert token.startswith("gt_")
    assert "shown only now" in err.getvalue()
    row = ApiToken.objects.get(name="runtime")
    assert token not in (row.token_hash, row.prefix)
    response = client.get("/api/v1/awaiting-approval", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_command_refuses_an_unknown_town_and_a_duplicate_name():
    with pytest.raises(CommandError, match="No town"):
        call_command("create_api_token", town="nope", name="x", stdout=StringIO())
    TownFactory(slug="acme")
    call_command("create_api_token", town="acme", name="x", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="already has"):
        call_command("create_api_token", town="acme", name="x", stdout=StringIO())


def test_admin_creates_a_token_and_shows_it_once(admin_client):
    town = TownFactory(slug="acme")
    response = admin_client.post(
        "/admin/gastown/apitoken/add/", {"town": town.pk, "name": "runtime"}, follow=True
    )
    assert response.status_code == 200
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    shown = [m for m in messages if "copy it now" in m]
    assert len(shown) == 1
    token = re.search(r"gt_[A-Za-z0-9_-]+", shown[0]).group(0)
    row = ApiToken.objects.get()
    assert row.created_by.username == "admin"
    assert token.startswith(row.prefix)
    # The change page never shows it again.
    page = admin_client.get(f"/admin/gastown/apitoken/{row.pk}/change/").content.decode()
    assert token not in page
    assert row.token_hash not in page


def test_admin_revokes_tokens(admin_client, client):
    from gastown.api.auth import api_token_create

    row, token = api_token_create(town=TownFactory(slug="acme"), name="r")
    response = admin_client.post(
        "/admin/gastown/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [row.pk]},
        follow=True,
    )
    assert response.status_code == 200
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert (
        client.get(
            "/api/v1/awaiting-approval", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 401
    )


def test_admin_lists_webhook_deliveries_read_only(admin_client):
    WebhookDelivery.objects.create(delivery_id="d1", event="ping", status="ignored")
    response = admin_client.get("/admin/gastown/webhookdelivery/")
    assert response.status_code == 200
    assert "ping" in response.content.decode()
    assert admin_client.get("/admin/gastown/webhookdelivery/add/").status_code == 403
