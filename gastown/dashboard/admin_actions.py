"""The dashboard's overrides as Django admin actions (domain.md §8: the same overrides for admins).

Each action asks for confirmation and a reason on an intermediate page (like the admin's own
delete action), needs the override's permission, and calls the same service as the dashboard,
one object at a time, so one refusal does not stop the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from beads.models import MergeRequest
from gastown.dashboard.forms import OverrideForm
from gastown.dashboard.selectors import town_list_for_user
from gastown.services.overrides import OVERRIDES, Override, OverrideRefused, override_run

_RELATED = {
    "merge_request": ("bead", "bead__town", "bead__rig"),
    "bead": ("town",),
    "convoy": ("town",),
    "town": (),
}

#: The lookup from each kind of target to its town.
_TOWN = {"merge_request": "bead__town", "bead": "town", "convoy": "town", "town": "pk"}

AdminAction = Callable[[admin.ModelAdmin, HttpRequest, QuerySet[Any]], TemplateResponse | None]


def _targets(
    chosen: Override, queryset: QuerySet[Any], on_beads: bool
) -> tuple[list[Any], list[str]]:
    """The objects the override acts on, and the selected rows it cannot act on."""
    if not on_beads:
        return list(queryset.select_related(*_RELATED[chosen.target])), []
    beads = list(queryset)
    by_bead = {
        mr.bead_id: mr
        for mr in MergeRequest.objects.filter(bead__in=beads).select_related(
            *_RELATED["merge_request"]
        )
    }
    targets = [by_bead[bead.pk] for bead in beads if bead.pk in by_bead]
    others = [f"{bead}: not a merge request." for bead in beads if bead.pk not in by_bead]
    return targets, others


def override_admin_action(name: str, *, on_beads: bool = False) -> AdminAction:
    """The override as an admin action; `on_beads` offers a merge request override on the
    bead list (it acts on the selected MR beads' merge requests and refuses other beads)."""
    chosen = OVERRIDES[name]
    assert not on_beads or chosen.target == "merge_request"

    def action(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
    ) -> TemplateResponse | None:
        if not request.user.has_perm(chosen.perm):
            modeladmin.message_user(
                request,
                f"{chosen.label}: you need the permission {chosen.perm!r}.",
                messages.ERROR,
            )
            return None
        if not request.user.is_superuser:
            # The admin's querysets are already limited to the user's towns (TownScoped);
            # an override never acts outside them even if one were not.
            towns = town_list_for_user(user=request.user).order_by().values("pk")
            lookup = _TOWN["bead" if on_beads else chosen.target]
            queryset = queryset.filter(**{f"{lookup}__in": towns})
        targets, not_applicable = _targets(chosen, queryset, on_beads)
        confirmed = request.POST.get("override_confirmed") == "yes"
        form = OverrideForm(
            request.POST if confirmed else None, reason_required=chosen.reason_required
        )
        if not confirmed or not form.is_valid():
            context = {
                **modeladmin.admin_site.each_context(request),
                "title": f"{chosen.label}?",
                "opts": modeladmin.model._meta,
                "override": chosen,
                # Each with why the service would refuse it now (the same table it asks).
                "targets": [(target, chosen.refusal_for(target)) for target in targets],
                # What the admin selected, posted back as is: on the bead list these are bead
                # ids, not the ids of the merge requests the override acts on.
                "selected": list(queryset.values_list("pk", flat=True)),
                "action_name": action.__name__,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "form": form,
            }
            return TemplateResponse(request, "dashboard/admin_confirm.html", context)
        reason = form.cleaned_data["reason"]
        done: list[str] = []
        refused: list[str] = list(not_applicable)
        for target in targets:
            try:
                done.append(
                    override_run(override=chosen, target=target, user=request.user, reason=reason)
                )
            except OverrideRefused as error:
                refused.append(f"{target}: {error.message}")
        if done:
            # Pausing a town or failing an MR is done, not good news (as on the dashboard).
            modeladmin.message_user(
                request,
                f"{chosen.label}: {len(done)} done. " + " ".join(done),
                messages.WARNING if chosen.danger else messages.SUCCESS,
            )
        if refused:
            modeladmin.message_user(
                request,
                f"{chosen.label}: {len(refused)} refused. " + " ".join(refused),
                messages.WARNING,
            )
        return None

    action.__name__ = f"override_{name}"
    return admin.action(description=f"{chosen.label} (override: confirm, audited)")(action)


def override_admin_actions(target: str) -> tuple[AdminAction, ...]:
    """Every override acting on `target` ("merge_request", "bead", "convoy" or "town")."""
    return tuple(override_admin_action(o.name) for o in OVERRIDES.values() if o.target == target)
