from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command

from tests.factories import GroupFactory, TownFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_anonymous_user_is_sent_to_login_with_next(client, town):
    response = client.get("/towns/acme/awaiting/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/towns/acme/awaiting/"


def test_login_page_renders_a_form(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b"csrfmiddlewaretoken" in response.content


def test_login_follows_a_local_next(client, lead):
    response = client.post(
        "/accounts/login/", {"username": "lead", "password": "pw", "next": "/towns/acme/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/towns/acme/"


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/steal", "//evil.example/", "http:\\\\evil.example"]
)
def test_login_never_redirects_off_site(client, lead, next_url):
    response = client.post(
        "/accounts/login/", {"username": "lead", "password": "pw", "next": next_url}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_logout_is_a_post(lead_client):
    assert lead_client.get("/accounts/logout/").status_code == 405
    response = lead_client.post("/accounts/logout/")
    assert response.status_code == 302
    assert lead_client.get("/towns/acme/").status_code == 302


def test_user_without_view_permission_is_refused(client, town):
    user = UserFactory(username="nobody")
    town.member_users.add(user)
    client.force_login(user)
    response = client.get("/towns/acme/")
    assert response.status_code == 403
    assert b"Not allowed" in response.content


def test_town_of_another_team_is_not_found(lead_client):
    TownFactory(slug="other", name="Other team")
    assert lead_client.get("/towns/other/").status_code == 404
    assert lead_client.get("/towns/other/awaiting/").status_code == 404
    assert b"Other team" not in lead_client.get("/").content


def test_town_list_shows_member_towns_only(lead_client):
    TownFactory(slug="other", name="Other team")
    content = lead_client.get("/").content
    assert b"Acme" in content
    assert b"Other team" not in content


def test_group_membership_grants_a_town(client, team_lead_group):
    town = TownFactory(slug="grp", name="Group town")
    team = GroupFactory(name="platform")
    town.member_groups.add(team)
    user = UserFactory(username="member")
    user.groups.add(team, team_lead_group)
    client.force_login(user)
    assert client.get("/towns/grp/").status_code == 200
    assert b"Group town" in client.get("/").content


def test_superuser_sees_every_town(client, town):
    TownFactory(slug="other", name="Other team")
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    client.force_login(admin)
    content = client.get("/").content
    assert b"Acme" in content and b"Other team" in content
    assert client.get("/towns/other/").status_code == 200


def test_create_team_lead_group_is_idempotent(db):
    call_command("create_team_lead_group")
    call_command("create_team_lead_group")
    from django.contrib.auth.models import Group

    group = Group.objects.get(name="team lead")
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert "view_dashboard" in codenames
    assert {"recheck_pr", "merge_now", "pause_town", "close_convoy"} <= codenames
    assert (
        group.permissions.count()
        == Permission.objects.filter(
            content_type__app_label="gastown", codename__in=codenames
        ).count()
    )
    assert Group.objects.filter(name="team lead").count() == 1


ADMIN_LINK = b'href="/admin/">Admin</a>'


def test_staff_without_admin_permissions_sees_no_admin_link(client, lead):
    """Staff alone only gets the admin's "You don't have permission to view or edit
    anything": the link would lead nowhere."""
    lead.is_staff = True
    lead.save()
    client.force_login(lead)
    assert ADMIN_LINK not in client.get("/towns/acme/").content


def test_staff_who_may_view_something_in_the_admin_see_the_admin_link(client, lead):
    lead.is_staff = True
    lead.save()
    lead.user_permissions.add(Permission.objects.get(codename="view_bead"))
    client.force_login(lead)
    assert ADMIN_LINK in client.get("/towns/acme/").content


def test_a_member_who_is_not_staff_sees_no_admin_link_even_with_model_permissions(client, lead):
    lead.user_permissions.add(Permission.objects.get(codename="view_bead"))
    client.force_login(lead)
    assert ADMIN_LINK not in client.get("/towns/acme/").content


def test_superuser_sees_the_admin_link(client, town):
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    assert ADMIN_LINK in client.get("/towns/acme/").content
