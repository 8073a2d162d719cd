"""The team lead's pages (domain.md §8): function views over the selectors in selectors.py; the
override buttons call the services in gastown/services/overrides.py.

Lists re-render only their {% partialdef %} fragment when htmx asks (HX-Request header), so
they refresh every few seconds without a full reload; everything works without JavaScript.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from beads.models import Bead, MergeRequest
from gastown.dashboard import selectors
from gastown.dashboard.charts import Series, chart_card, wait_duration_charts
from gastown.dashboard.forms import AwaitingFilterForm, OverrideForm, TelemetryFilterForm
from gastown.models import Convoy, ConvoyStatus, Town, TownPermission
from gastown.services.overrides import OVERRIDES, Override, OverrideRefused, override_run

logger = logging.getLogger(__name__)

VIEW_PERMISSION = f"gastown.{TownPermission.VIEW_DASHBOARD.value}"
PAGE_SIZE = 50
REFRESH_SECONDS = 15

View = Callable[..., HttpResponse]


def dashboard_view(view: View) -> View:
    """Signed in (else the login page), allowed to view the dashboard (else 403)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm(VIEW_PERMISSION):
            raise PermissionDenied("You may not view the dashboard.")
        return view(request, *args, **kwargs)

    return wrapper


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _render(
    request: HttpRequest, template: str, context: dict[str, Any], *, partial: str = ""
) -> HttpResponse:
    """The page, or only its refreshable fragment when htmx asks for it."""
    name = f"{template}#{partial}" if partial and _is_htmx(request) else template
    response = render(request, name, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _town_context(request: HttpRequest, town: Town, section: str) -> dict[str, Any]:
    _buttons(request, "town", [town])
    return {
        "town": town,
        "towns": list(selectors.town_list_for_user(user=request.user).only("slug", "name")),
        "section": section,
        "now": timezone.now(),
        "refresh_seconds": REFRESH_SECONDS,
    }


def _page(request: HttpRequest, items: Any, size: int = PAGE_SIZE) -> Page:
    return Paginator(items, size).get_page(request.GET.get("page"))


class UncountedPage:
    """A page of a list too long to count on every load (a town's telemetry, up to a million
    events: README, "Performance"). One row past the page says whether an older page exists;
    the page shows Newer and Older, not "page N of M"."""

    def __init__(self, request: HttpRequest, items: Any, size: int = PAGE_SIZE) -> None:
        try:
            self.number = max(1, int(request.GET.get("page", 1)))
        except ValueError:
            self.number = 1
        start = (self.number - 1) * size
        rows = list(items[start : start + size + 1])
        self.object_list = rows[:size]
        self._more = len(rows) > size

    def has_next(self) -> bool:
        return self._more

    def has_previous(self) -> bool:
        return self.number > 1

    def next_page_number(self) -> int:
        return self.number + 1

    def previous_page_number(self) -> int:
        return self.number - 1


def _allowed_overrides(request: HttpRequest, target: str) -> list[Override]:
    return [o for o in OVERRIDES.values() if o.target == target and request.user.has_perm(o.perm)]


def _buttons(request: HttpRequest, target: str, objects: Iterable[Any]) -> None:
    """Attach `.buttons`, the overrides this user may press on each object now: the first
    harmless one in sight (`.primary_button`), the others in a menu (`.more_buttons`)."""
    allowed = _allowed_overrides(request, target)
    for obj in objects:
        obj.buttons = [o for o in allowed if o.available(obj)]
        safe = [o for o in obj.buttons if not o.danger]
        obj.primary_button = safe[0] if safe else None
        obj.more_buttons = [o for o in obj.buttons if o is not obj.primary_button]


# --- pages ------------------------------------------------------------------------------


@require_GET
@dashboard_view
def town_list(request: HttpRequest) -> HttpResponse:
    towns = list(selectors.town_list_for_user(user=request.user))
    return render(request, "dashboard/town_list.html", {"towns": towns, "section": "towns"})


@require_GET
@dashboard_view
def overview(request: HttpRequest, slug: str) -> HttpResponse:
    town = selectors.town_get_for_user(user=request.user, slug=slug)
    context = _town_context(request, town, "overview")
    context["o"] = selectors.town_overview(town=town, now=context["now"])
    _buttons(request, "convoy", context["o"].suppressed_now)
    return _render(request, "dashboard/overview.html", context, partial="body")


@require_GET
@dashboard_view
def awaiting_approval(request: HttpRequest, slug: str) -> HttpResponse:
    town = selectors.town_get_for_user(user=request.user, slug=slug)
    context = _town_context(request, town, "awaiting")
    form = AwaitingFilterForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    page = _page(
        request,
        selectors.awaiting_approval_list(
            town=town, rig=filters.get("rig"), convoy=filters.get("convoy")
        ),
    )
    _buttons(request, "merge_request", page.object_list)
    context.update(
        page=page,
        filters=filters,
        rigs=selectors.town_rigs(town=town),
        convoys=selectors.town_convoy_choices(town=town),
        query=_query_without_page(request),
    )
    return _render(request, "dashboard/awaiting.html", context, partial="rows")


@require_GET
@dashboard_view
def waiting_on(request: HttpRequest, slug: str) -> HttpResponse:
    """The PRs waiting on people, grouped by whom they wait on (issue 15: who waits on whom)."""
    town = selectors.town_get_for_user(user=request.user, slug=slug)
    context = _town_context(request, town, "waiting")
    groups = selectors.waits_by_reviewer(town=town, now=context["now"])
    context.update(groups=groups, limit=selectors.WAITS_LIMIT)
    return _render(request, "dashboard/waiting.html", context, partial="groups")


@require_GET
@dashboard_view
def convoy_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    town = selectors.town_get_for_user(user=request.user, slug=slug)
    context = _town_context(request, town, "convoys")
    convoy = selectors.convoy_get(town=town, pk=pk)
    _buttons(request, "convoy", [convoy])
    context.update(convoy=convoy, detail=selectors.convoy_detail(convoy=convoy, now=context["now"]))
    return _render(request, "dashboard/convoy.html", context, partial="live")


@require_GET
@dashboard_view
def convoy_list(request: HttpRequest, slug: str) -> HttpResponse:
    town = selectors.town_get_for_user(user=request.user, slug=slug)
    context = _town_context(request, town, "convoys")
    status = request.GET.get("status", "active")
    if status not in {"", "active", *ConvoyStatus.values}:
        status = "active"
    page = _page(request, selectors.convoy_list(town=town, status=status))
    selectors.convoy_list_counts(list(page.object_list))
    for convoy in page.object_list:
        convoy.landing_mr = convoy.active_landing[0] if convoy.active_landing else None
    _buttons(request, "convoy", page.object_list)
    context.update(
        page=page,
        status=status,
        statuses=[("active", "Active"), *ConvoyStatus.choices, ("", "All")],
        query=_query_without_page(request),
    )
    return _render(request, "dashboard/convoys.html", context, partial="rows")


@require_GET
@dashboard_view
def bead_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    town = selectors.town_get_for_user(user=request.user, slug=slug)
    context = _town_context(request, town, "beads")
    bead = selectors.bead_get(town=town, pk=pk)
    mr = selectors.bead_merge_request(bead=bead)
    _buttons(request, "bead", [bead])
    if mr is not None:
        mr.bead = bead
        _buttons(request, "merge_request", [mr])
    context.update(
        bead=bead,
        mr=mr,
        convoy=mr.convoy if mr is not None else bead.convoy,
        timeline=selectors.bead_timeline(bead=bead),
        children=selectors.bead_children(bead=bead),
    )
    return _render(request, "dashboard/bead.html", context, partial="live")


@require_GET
@dashboard_view
def telemetry(request: HttpRequest, slug: str) -> HttpResponse:
    town = selectors.town_get_for_user(user=request.user, slug=slug)
    context = _town_context(request, town, "telemetry")
    form = TelemetryFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    page = UncountedPage(request, selectors.telemetry_list(town=town, **filters))
    context.update(
        form=form,
        filters=filters,
        page=page,
        names=selectors.telemetry_names(town=town),
        rigs=selectors.town_rigs(town=town),
        query=_query_without_page(request),
    )
    if not _is_htmx(request):
        context["charts"] = _charts(town, context["now"])
    return _render(request, "dashboard/telemetry.html", context, partial="rows")


def _charts(town: Town, now: Any) -> list[dict[str, Any]]:
    data = selectors.telemetry_charts(town=town, now=now)
    labels = [d.strftime("%m-%d") for d in data.days]
    per_day = data.per_day
    return [
        chart_card(
            "Waits on a human, per day",
            labels,
            [
                Series("detected", per_day["pr.awaiting_approval_detected"], "s1"),
                Series("resolved", per_day["pr.awaiting_approval_resolved"], "s2"),
            ],
        ),
        chart_card(
            "How long PRs waited (resolved waits, last 14 days)",
            [label for label, _n in data.wait_buckets],
            [Series("waits", [n for _label, n in data.wait_buckets], "s3")],
            axis="Waited",
        ),
        *wait_duration_charts(town=town, now=now, days=data.data),
        chart_card(
            "Suppressed landing respawns, per day",
            labels,
            [Series("suppressed", per_day["reconciler.respawn_suppressed"], "s4")],
        ),
        chart_card(
            "Merges, per day",
            labels,
            [
                Series("merged", per_day["pr.merged"], "s2"),
                Series("refused", per_day["pr.merge_refused"], "s5"),
            ],
        ),
    ]


@require_GET
@dashboard_view
def reconciler(request: HttpRequest, slug: str) -> HttpResponse:
    town = selectors.town_get_for_user(user=request.user, slug=slug)
    context = _town_context(request, town, "reconciler")
    context["page"] = _page(request, selectors.tick_list(town=town), size=30)
    context["query"] = _query_without_page(request)
    if not _is_htmx(request):
        # The last tick's record says what the reconciler decided; the dry run re-reads the
        # whole town (about a second at 10k active beads), so it runs only when asked.
        context["last_tick"] = selectors.tick_last(town=town)
        if request.GET.get("dry_run"):
            context["dry_run"] = _dry_run(town)
    return _render(request, "dashboard/reconciler.html", context, partial="rows")


def _dry_run(town: Town) -> dict[str, Any]:
    """What the reconciler would do now; its module is optional so the page never breaks."""
    try:
        # Imported late: the reconciler is optional for the page (and written in parallel).
        dry_run = importlib.import_module("gastown.reconciler").dry_run
        actions = list(dry_run(town, now=None))
    except (ImportError, AttributeError):
        return {"available": False, "error": "Dry run unavailable in this build."}
    except Exception as error:  # the page must still show the ticks
        logger.exception("Dry run failed for town %s", town.slug)
        return {"available": False, "error": f"The dry run failed: {type(error).__name__}."}
    rows = []
    for action in actions:
        try:
            rows.append({"kind": str(action.kind), "text": str(action.describe())})
        except Exception:  # one odd action does not hide the others
            rows.append({"kind": str(getattr(action, "kind", "?")), "text": repr(action)})
    return {"available": True, "actions": rows}


# --- overrides --------------------------------------------------------------------------


def _override_target(override: Override, town: Town, pk: int | None) -> Any:
    if override.target == "town":
        return town
    if pk is None:
        raise Http404("Which object?")
    if override.target == "merge_request":
        target: Any = (
            MergeRequest.objects.select_related("bead", "bead__town", "bead__rig")
            .filter(pk=pk, bead__town=town)
            .first()
        )
    elif override.target == "convoy":
        target = Convoy.objects.select_related("town").filter(pk=pk, town=town).first()
    else:
        target = Bead.objects.select_related("town").filter(pk=pk, town=town).first()
    if target is None:
        raise Http404("No such object in this town.")
    return target


def _describe_target(override: Override, target: Any) -> str:
    if override.target == "merge_request":
        return f"{target.pr_name} · {target.bead.ref} {target.bead.title}"
    if override.target == "convoy":
        return f"Convoy {target.title} ({target.get_status_display()})"
    if override.target == "bead":
        return f"{target.ref} {target.title} ({target.get_status_display()})"
    return f"Town {target.name}"


def _default_next(town: Town, override: Override, target: Any) -> str:
    if override.target == "merge_request":
        return reverse("dashboard:bead", args=[town.slug, target.bead_id])
    if override.target == "bead":
        return reverse("dashboard:bead", args=[town.slug, target.pk])
    if override.target == "convoy":
        return reverse("dashboard:convoy", args=[town.slug, target.pk])
    return reverse("dashboard:overview", args=[town.slug])


def _safe_next(request: HttpRequest, fallback: str) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return fallback


@require_http_methods(["GET", "POST"])
@dashboard_view
def override(request: HttpRequest, slug: str, name: str, pk: int | None = None) -> HttpResponse:
    """GET: a confirmation page with a reason field. POST (CSRF-protected): run it."""
    town = selectors.town_get_for_user(user=request.user, slug=slug)
    chosen = OVERRIDES.get(name)
    if chosen is None:
        raise Http404("No such override.")
    if not request.user.has_perm(chosen.perm):
        raise PermissionDenied(f"You may not {chosen.label.lower()}.")
    target = _override_target(chosen, town, pk)
    next_url = _safe_next(request, _default_next(town, chosen, target))
    required = chosen.reason_required
    form = (
        OverrideForm(request.POST, reason_required=required)
        if request.method == "POST"
        else OverrideForm(reason_required=required)
    )
    if request.method == "POST" and form.is_valid():
        try:
            message = override_run(
                override=chosen,
                target=target,
                user=request.user,
                reason=form.cleaned_data["reason"],
            )
        except OverrideRefused as refused:
            messages.error(request, f"{chosen.label}: refused. {refused.message}")
        else:
            # Pausing a town or failing an MR is done, not good news.
            (messages.warning if chosen.danger else messages.success)(request, message)
        return HttpResponseRedirect(next_url)
    context = _town_context(request, town, "")
    context.update(
        override=chosen,
        target=target,
        target_text=_describe_target(chosen, target),
        applicable=chosen.available(target),
        form=form,
        next_url=next_url,
    )
    return render(request, "dashboard/override_confirm.html", context)


def _query_without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()
