"""The dashboard's overrides as Django admin actions (SPEC §8: the same overrides for admins).

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

from gastown.dashboard.forms import OverrideForm
from gastown.overrides import OVERRIDES, OverrideRefused, override_run

_RELATED = {
    "merge_request": ("bead", "bead__town", "bead__rig"),
    "bead": ("town",),
    "convoy": ("town",),
    "town": (),
}

AdminAction = Callable[[admin.ModelAdmin, HttpRequest, QuerySet[Any]], TemplateResponse | None]


def override_admin_action(name: str) -> AdminAction:
    chosen = OVERRIDES[name]

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
        targets = list(queryset.select_related(*_RELATED[chosen.target]))
        if request.POST.get("override_confirmed") != "yes":
            context = {
                **modeladmin.admin_site.each_context(request),
                "title": f"{chosen.label}?",
                "opts": modeladmin.model._meta,
                "override": chosen,
                "targets": targets,
                "action_name": action.__name__,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "form": OverrideForm(),
            }
            return TemplateResponse(request, "dashboard/admin_confirm.html", context)
        form = OverrideForm(request.POST)
        reason = form.cleaned_data["reason"] if form.is_valid() else ""
        done: list[str] = []
        refused: list[str] = []
        for target in targets:
            try:
                done.append(
                    override_run(override=chosen, target=target, user=request.user, reason=reason)
                )
            except OverrideRefused as error:
                refused.append(f"{target}: {error.message}")
        if done:
            modeladmin.message_user(
                request, f"{chosen.label}: {len(done)} done. " + " ".join(done), messages.SUCCESS
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
