"""The admin respects town membership like the dashboard: a staff member of town A, with
every view, change and override permission, cannot list, open, change, choose or act on town
B's objects; a superuser sees everything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.admin import helpers, site
from django.contrib.auth.models import Permission
from django.db.models import Model
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from beads.models import Bead, BeadEvent, BeadStatus, Blocker, MergeRequest
from gastown.models import (
    ApiToken,
    Convoy,
    ConvoyStatus,
    IntentKind,
    NotificationSent,
    Rig,
    SideEffectIntent,
    TelemetryEvent,
    Town,
    WebhookDelivery,
    WebhookDeliveryStatus,
)
from tests.factories import (
    AgentFactory,
    BeadDependencyFactory,
    BeadEventFactory,
    BeadFactory,
    ConvoyFactory,
    GroupFactory,
    MergeRequestFactory,
    ReconcilerTickFactory,
    RigFactory,
    TelemetryEventFactory,
    TownFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@dataclass
class World:
    """One of everything the admin shows, all in one town."""

    objects: dict[str, Model]

    def __getitem__(self, label: str) -> Any:
        return self.objects[label]


def _world(slug: str) -> World:
    town = TownFactory(slug=slug, name=f"Town {slug}")
    rig = RigFactory(town=town, repo=f"{slug}/web")
    convoy = ConvoyFactory(town=town, rig=rig, title=f"convoy of {slug}")
    bead = BeadFactory(town=town, rig=rig, convoy=convoy, title=f"bead of {slug}")
    mr = MergeRequestFactory(
        bead__town=town,
        bead__rig=rig,
        bead__status=BeadStatus.IN_PROGRESS,
        pr_url=f"https://github.com/{slug}/web/pull/5",
        blocker=Blocker.HUMAN_REVIEW,
        waiting_since=timezone.now(),
    )
    from gastown.api.auth import api_token_create

    token, _ = api_token_create(town=town, name=f"token of {slug}")
    return World(
        {
            "gastown.town": town,
            "gastown.rig": rig,
            "gastown.agent": AgentFactory(town=town, rig=rig, name=f"agent-of-{slug}"),
            "gastown.convoy": convoy,
            "gastown.telemetryevent": TelemetryEventFactory(town=town, rig=rig, bead=bead),
            "gastown.reconcilertick": ReconcilerTickFactory(town=town),
            "gastown.apitoken": token,
            "gastown.webhookdelivery": WebhookDelivery.objects.create(
                delivery_id=f"d-{slug}",
                event="pull_request",
                action="opened",
                repo=f"{slug.upper()}/Web",  # GitHub's case, not the rig's
                status=WebhookDeliveryStatus.PROCESSED,
            ),
            "beads.bead": bead,
            "beads.mergerequest": mr,
            "beads.beaddependency": BeadDependencyFactory(
                bead=bead, depends_on=BeadFactory(town=town, rig=rig)
            ),
            "beads.beadevent": BeadEventFactory(bead=bead, note=f"event of {slug}"),
            "gastown.notificationsent": NotificationSent.objects.create(
                town=town, key=f"escalation:{slug}", channel="email"
            ),
            "gastown.sideeffectintent": SideEffectIntent.objects.create(
                town=town,
                kind=IntentKind.OPEN_PR,
                target_id=mr.pk,
                key=f"open_pr:mr:{mr.pk}:1",
                created_at=timezone.now(),
            ),
        }
    )


LABELS = [
    "gastown.town",
    "gastown.rig",
    "gastown.agent",
    "gastown.convoy",
    "gastown.telemetryevent",
    "gastown.reconcilertick",
    "gastown.apitoken",
    "gastown.webhookdelivery",
    "beads.bead",
    "beads.mergerequest",
    "beads.beaddependency",
    "beads.beadevent",
    "gastown.notificationsent",
    "gastown.sideeffectintent",
]


def test_every_admin_of_town_owned_data_is_town_scoped():
    from gastown.admin import TownScoped

    registered = {f"{m._meta.app_label}.{m._meta.model_name}" for m in site._registry}
    owned = {label for label in registered if label.split(".")[0] in ("gastown", "beads")}
    assert owned == set(LABELS)
    for label in LABELS:
        admin = next(a for m, a in site._registry.items() if m._meta.label_lower == label)
        assert isinstance(admin, TownScoped), label
        for inline in admin.inlines:
            assert issubclass(inline, TownScoped), inline


@pytest.fixture
def towns():
    return _world("a"), _world("b")


@pytest.fixture
def member(client, towns):
    """Staff, member of town A only, with every permission of both apps."""
    user = UserFactory(username="lead", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label__in=["gastown", "beads"])
    )
    towns[0]["gastown.town"].member_users.add(user)
    client.force_login(user)
    return client


def _url(label: str, view: str, *args: Any) -> str:
    app, model = label.split(".")
    return reverse(f"admin:{app}_{model}_{view}", args=args)


def _listed(client: Any, label: str, query: str = "") -> set[int]:
    response = client.get(_url(label, "changelist") + query)
    assert response.status_code == 200, label
    return {obj.pk for obj in response.context["cl"].result_list}


@pytest.mark.parametrize("label", LABELS)
def test_a_member_lists_and_opens_only_their_towns_objects(member, towns, label):
    mine, theirs = towns[0][label], towns[1][label]
    assert _listed(member, label) == {
        obj.pk for obj in type(mine)._default_manager.all() if _in_town_a(obj, towns)
    }
    assert mine.pk in _listed(member, label)
    assert theirs.pk not in _listed(member, label)
    assert member.get(_url(label, "change", mine.pk)).status_code == 200
    other = member.get(_url(label, "change", theirs.pk))
    assert other.status_code == 302  # the admin's "doesn't exist", as for a deleted object
    assert other.url == reverse("admin:index")
    assert member.get(_url(label, "history", theirs.pk)).status_code == 302
    # A view-only admin refuses deletion before it looks the object up.
    assert member.get(_url(label, "delete", theirs.pk)).status_code in (302, 403)


def _in_town_a(obj: Model, towns: tuple[World, World]) -> bool:
    town_a = towns[0]["gastown.town"]
    if isinstance(obj, Town):
        return obj == town_a
    if isinstance(obj, WebhookDelivery):
        return obj.repo.lower() == "a/web"
    if isinstance(obj, MergeRequest):
        return obj.bead.town_id == town_a.pk
    if hasattr(obj, "town_id"):
        return obj.town_id == town_a.pk
    return obj.bead.town_id == town_a.pk  # a dependency


@pytest.mark.parametrize("label", LABELS)
def test_a_superuser_sees_every_town(client, towns, label):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    listed = _listed(client, label)
    assert {towns[0][label].pk, towns[1][label].pk} <= listed
    assert client.get(_url(label, "change", towns[1][label].pk)).status_code == 200


def test_membership_through_a_group_counts(client, towns):
    user = UserFactory(username="grouped", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename="view_town"))
    group = GroupFactory()
    user.groups.add(group)
    towns[1]["gastown.town"].member_groups.add(group)
    client.force_login(user)
    assert _listed(client, "gastown.town") == {towns[1]["gastown.town"].pk}


def test_a_staff_user_of_no_town_sees_nothing(client, towns):
    user = UserFactory(username="nobody", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename="view_bead"))
    client.force_login(user)
    assert _listed(client, "beads.bead") == set()


def test_filtering_by_the_other_towns_id_finds_none_of_its_objects(member, towns):
    town_b = towns[1]["gastown.town"]
    listed = _listed(member, "beads.bead", f"?town__id__exact={town_b.pk}")
    assert not listed & set(Bead.objects.filter(town=town_b).values_list("pk", flat=True))


def test_the_list_filters_do_not_name_other_towns(member, towns):
    html = member.get(_url("beads.bead", "changelist")).content.decode()
    assert "Town a" in html
    assert "Town b" not in html
    html = member.get(_url("beads.mergerequest", "changelist")).content.decode()
    assert "Town b" not in html


def test_the_telemetry_name_filter_lists_only_the_members_towns_names(member, towns):
    TelemetryEventFactory(town=towns[0]["gastown.town"], name="seen.in_a")
    TelemetryEventFactory(town=towns[1]["gastown.town"], name="secret.in_b")
    html = member.get(_url("gastown.telemetryevent", "changelist")).content.decode()
    assert "seen.in_a" in html and "secret.in_b" not in html
    filtered = member.get(_url("gastown.telemetryevent", "changelist") + "?name=seen.in_a")
    assert filtered.status_code == 200
    assert [e.name for e in filtered.context["cl"].result_list] == ["seen.in_a"]


def test_a_member_cannot_change_another_towns_object(member, towns):
    rig = towns[1]["gastown.rig"]
    response = member.post(
        _url("gastown.rig", "change", rig.pk),
        {"town": rig.town_id, "name": "stolen", "repo": rig.repo, "default_branch": "main"},
    )
    assert response.status_code == 302
    rig.refresh_from_db()
    assert rig.name != "stolen"


def _rig_form(town: Town, **extra: Any) -> dict[str, Any]:
    return {"town": town.pk, "name": "new", "repo": "x/new", "default_branch": "main", **extra}


def test_a_member_cannot_create_an_object_in_another_town(member, towns):
    response = member.post(_url("gastown.rig", "add"), _rig_form(towns[1]["gastown.town"]))
    assert response.status_code == 200
    assert "town" in response.context["adminform"].form.errors
    assert not Rig.objects.filter(name="new").exists()
    response = member.post(_url("gastown.rig", "add"), _rig_form(towns[0]["gastown.town"]))
    assert response.status_code == 302
    assert Rig.objects.get(name="new").town == towns[0]["gastown.town"]


def test_a_member_cannot_move_their_object_into_another_town(member, towns):
    token_form = {"town": towns[1]["gastown.town"].pk, "name": "sneaky", "revoked_at": ""}
    response = member.post(_url("gastown.apitoken", "add"), token_form)
    assert response.status_code == 200
    assert not ApiToken.objects.filter(name="sneaky").exists()
    agent = towns[0]["gastown.agent"]
    response = member.post(
        _url("gastown.agent", "change", agent.pk),
        {
            "town": towns[1]["gastown.town"].pk,
            "rig": towns[1]["gastown.rig"].pk,
            "name": agent.name,
            "role": agent.role,
            "status": agent.status,
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert {"town", "rig"} <= set(errors)
    agent.refresh_from_db()
    assert agent.town == towns[0]["gastown.town"]


def test_a_member_cannot_point_a_bead_at_another_towns_convoy(member, towns):
    form = (
        member.get(_url("beads.bead", "change", towns[0]["beads.bead"].pk))
        .context["adminform"]
        .form
    )
    assert set(form.fields["convoy"].queryset) == {towns[0]["gastown.convoy"]}
    assert set(form.fields["town"].queryset) == {towns[0]["gastown.town"]}
    assert towns[1]["beads.bead"] not in form.fields["parent"].queryset


def test_autocomplete_offers_only_the_members_towns(member, towns):
    response = member.get(
        "/admin/autocomplete/",
        {"app_label": "gastown", "model_name": "rig", "field_name": "town", "term": "Town"},
    )
    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["Town a"]


def _act(client: Any, label: str, action: str, *pks: int) -> Any:
    return client.post(
        _url(label, "changelist"),
        {
            "action": action,
            helpers.ACTION_CHECKBOX_NAME: list(pks),
            "override_confirmed": "yes",
            "reason": "testing",
        },
        follow=True,
    )


def test_a_member_cannot_pause_another_town(member, towns):
    town_a, town_b = towns[0]["gastown.town"], towns[1]["gastown.town"]
    _act(member, "gastown.town", "override_town_pause", town_b.pk)
    town_b.refresh_from_db()
    assert not town_b.paused
    # Selecting both acts on the member's own town only.
    _act(member, "gastown.town", "override_town_pause", town_a.pk, town_b.pk)
    town_a.refresh_from_db()
    town_b.refresh_from_db()
    assert (town_a.paused, town_b.paused) == (True, False)


@pytest.mark.parametrize(
    ("label", "action"),
    [
        ("beads.mergerequest", "override_merge_request_clear_awaiting"),
        ("beads.mergerequest", "override_merge_request_fail"),
        ("beads.bead", "override_merge_request_fail"),
        ("beads.bead", "close_beads"),
        ("gastown.convoy", "override_convoy_close"),
        ("gastown.apitoken", "revoke_tokens"),
    ],
)
def test_no_action_reaches_another_towns_objects(member, towns, label, action):
    theirs = towns[1][label]
    if label == "beads.bead" and action == "override_merge_request_fail":
        theirs = towns[1]["beads.mergerequest"].bead
    before = _snapshot(towns[1])
    response = _act(member, label, action, theirs.pk)
    assert response.status_code == 200
    assert _snapshot(towns[1]) == before


def _snapshot(world: World) -> tuple[Any, ...]:
    mr = MergeRequest.objects.select_related("bead").get(pk=world["beads.mergerequest"].pk)
    return (
        mr.awaiting_approval,
        mr.bead.status,
        Bead.objects.get(pk=world["beads.bead"].pk).status,
        Convoy.objects.get(pk=world["gastown.convoy"].pk).status,
        ApiToken.objects.get(pk=world["gastown.apitoken"].pk).revoked_at,
        BeadEvent.objects.filter(town=world["gastown.town"], kind="override").count(),
        TelemetryEvent.objects.filter(town=world["gastown.town"]).count(),
    )


def test_the_same_actions_work_on_the_members_own_town(member, towns):
    mine = towns[0]
    _act(member, "gastown.convoy", "override_convoy_close", mine["gastown.convoy"].pk)
    _act(
        member,
        "beads.mergerequest",
        "override_merge_request_clear_awaiting",
        mine["beads.mergerequest"].pk,
    )
    assert Convoy.objects.get(pk=mine["gastown.convoy"].pk).status == ConvoyStatus.CLOSED
    assert not MergeRequest.objects.get(pk=mine["beads.mergerequest"].pk).awaiting_approval


def test_an_override_action_acts_only_in_the_users_towns_whatever_it_is_given(towns):
    # The action itself holds the rule too: handed every town (as an admin that forgot the
    # scoping would), it still acts on the member's towns only.
    user = UserFactory(username="lead2", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename="pause_town"))
    towns[0]["gastown.town"].member_users.add(user)
    request = RequestFactory().post("/", {"override_confirmed": "yes", "reason": "x"})
    request.user = user
    request._messages = _Messages()  # type: ignore[attr-defined]
    admin = site._registry[Town]
    admin.get_actions(request)["override_town_pause"][0](admin, request, Town.objects.all())
    assert list(Town.objects.filter(paused=True)) == [towns[0]["gastown.town"]]


class _Messages(list):
    def add(self, level: int, message: str, extra_tags: str = "") -> None:
        self.append(message)
