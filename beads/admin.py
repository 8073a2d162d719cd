"""Admin for beads, their dependencies, merge requests and audit trail.

A bead's status never changes through a form: the close action calls `bead_set_status`,
which audits the change and refuses terminal beads; failing an MR is the audited override.
Other edits save only the fields the form changed, so a reconciler write that lands between
loading and saving the page is not overwritten, and each edit is recorded as a bead event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import smart_split, unescape_string_literal

from beads.audit import Actor
from beads.merge_requests import merge_request_write
from beads.models import (
    Bead,
    BeadDependency,
    BeadEvent,
    BeadStatus,
    BeadType,
    MergeAttempt,
    MergeRequest,
    bead_ref,
)
from beads.sentences import merge_request_status, plural
from beads.services import (
    StaleBeadError,
    TerminalBeadError,
    bead_create,
    bead_dependency_problem,
    bead_edit,
    bead_set_status,
)
from gastown.admin import LargeTableAdmin, TownScoped, TownScopedAdmin
from gastown.dashboard.admin_actions import override_admin_action, override_admin_actions
from gastown.models import Agent
from gastown.services.merge_requests import wait_ended_event
from scm.errors import ScmError
from scm.urls import parse_pr_url

#: How many audit events a bead or MR change page lists; the rest are one link away.
RECENT_EVENTS = 20

# The PR's repository and number are its link ("owner/repo#N") at the top of the page.
MR_SNAPSHOT_FIELDS = (
    "pr_state",
    "review_decision",
    "merge_state_status",
    "mergeable",
    "is_draft",
    "checks_state",
    "failing_checks",
    "unresolved_threads",
    "blocking_threads",
    "requested_reviewers",
    "approvals_missing",
    "queue_position",
    "head_sha",
    "snapshot_at",
)
MR_DERIVED_FIELDS = (
    "blocker",
    "blocker_detail",
    "awaiting_approval",
    "changes_requested",
    "waiting_since",
    "wait_escalated_at",
    "review_status",
    "reviewed_at",
)
MR_BOOKKEEPING_FIELDS = (
    "state",
    "adopted",
    "check_requested_at",
    "last_checked_at",
    "last_successful_check_at",
    "consecutive_transient_failures",
    "consecutive_malformed_failures",
    "last_error",
    "last_error_kind",
    "last_rework_cause",
    "auto_merge_ready_since",
    "merge_requested_at",
    "merged_at",
    "merge_commit_sha",
    "created_at",
    "updated_at",
)
#: Shown, but read from another field of the row (MergeRequest's properties), never stored.
_READ_FROM_OTHER_FIELDS = ("awaiting_approval", "changes_requested")
MR_READONLY_FIELDS = MR_SNAPSHOT_FIELDS + MR_DERIVED_FIELDS + MR_BOOKKEEPING_FIELDS
#: What heads an MR's page and its inline on its bead's page (the rest is MR_GROUPS).
MR_HEAD_FIELDS = (
    "source",
    "landing_convoy",
    "branch",
    "target_branch",
    "pr_link",
    "pr_url",
    "status_text",
)
#: How an MR's read-only fields are grouped, on its own page and inline on its bead's.
MR_GROUPS: tuple[tuple[str, Any], ...] = (
    (
        "What GitHub said (the last PR snapshot)",
        {"fields": MR_SNAPSHOT_FIELDS, "classes": ("collapse",)},
    ),
    ("What gastown decided (blocker, review, merge)", {"fields": MR_DERIVED_FIELDS}),
    ("Polling and outcome", {"fields": MR_BOOKKEEPING_FIELDS, "classes": ("collapse",)}),
)
#: What belongs to one PR and must not survive a change of the MR's PR URL.
PR_STATE_FIELDS = (
    *(f for f in MR_SNAPSHOT_FIELDS if f not in _READ_FROM_OTHER_FIELDS),
    *(f for f in MR_DERIVED_FIELDS if f not in _READ_FROM_OTHER_FIELDS),
    "auto_merge_ready_since",
    "merge_requested_at",
    "merge_refusal",
    "merge_refusal_waits_on",
    "merge_hold_from",
    "consecutive_transient_failures",
    "consecutive_malformed_failures",
    "last_error",
    "last_error_kind",
)


def _save_changed_fields(obj: MergeRequest, changed: Iterable[str]) -> None:
    """Write only what the form changed, never a stale copy of the rest, through the merge
    request's one write path (a new version, so a feedback check holding the old row stores
    nothing over the edit)."""
    fields = list(changed)
    if not fields:
        return
    now = timezone.now()
    values = {name: getattr(obj, name) for name in fields}
    ended = None
    if "pr_url" in fields:
        # Nothing learnt about the old PR holds for the new one (its snapshot, wait, review,
        # auto-merge timer, merge request or refusal): reset, and the new PR is checked at
        # once. The old PR's wait (if any) ends here: its resolved event pairs the detected
        # one, with the values of the old PR (the form already holds the new URL).
        old = MergeRequest.objects.select_related("bead").filter(pk=obj.pk).first()
        # A terminal MR's wait already ended when it failed (mr_fail): never twice.
        if old is not None and old.waiting_since is not None and not old.bead.is_terminal:
            ended = wait_ended_event(
                old, how="cleared_by_user", started_at=old.waiting_since, now=now
            )
        fresh = MergeRequest()
        values.update({name: getattr(fresh, name) for name in PR_STATE_FIELDS})
        values["check_requested_at"] = now
    with transaction.atomic():
        merge_request_write(merge_request=obj, now=now, **values)
        if ended is not None:
            ended.save()


class MergeRequestForm(forms.ModelForm):
    """A PR URL typed in the admin is parsed like one an agent reports: a malformed one is a
    form error that says what to fix, and repository and number are kept in step."""

    # A plain text field: parse_pr_url is the validator, and says more than URLField would.
    pr_url = forms.CharField(max_length=500, required=False, label="PR URL")

    class Meta:
        model = MergeRequest
        fields = ("bead", "source", "landing_convoy", "branch", "target_branch", "pr_url")

    def clean_pr_url(self) -> str:
        url = (self.cleaned_data.get("pr_url") or "").strip()
        if not url:
            return ""
        try:
            ref = parse_pr_url(url)
        except ScmError as error:
            raise forms.ValidationError(error.message) from None
        return ref.url

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        bead = cleaned.get("bead") or (self.instance.bead if self.instance.bead_id else None)
        rig = bead.rig if bead is not None else None
        url = cleaned.get("pr_url")
        repo = parse_pr_url(url).repo if url else ""
        # As for an agent's report: a PR outside the rig's repository would be watched and
        # merged with this town's credentials. GitHub compares names case-insensitively.
        if url and rig is not None and repo.lower() != rig.repo.lower():
            self.add_error(
                "pr_url", f"The pull request is in {repo}, but the bead's rig is {rig.repo}."
            )
        return cleaned


def _events_link(bead_ref: int, label: str) -> SafeString:
    url = reverse("admin:beads_beadevent_changelist") + "?" + urlencode({"bead_ref": bead_ref})
    return format_html('<a href="{}">{}</a>', url, label)


def _recent_events_table(bead_id: int | None) -> SafeString:
    if bead_id is None:
        return format_html("{}", "-")
    events = BeadEvent.objects.filter(bead_ref=bead_id).order_by("-created_at", "-id")[
        :RECENT_EVENTS
    ]
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                date_format(timezone.localtime(e.created_at), "DATETIME_FORMAT"),
                e.get_kind_display(),
                f"{e.from_status} → {e.to_status}" if e.to_status else "",
                e.actor,
                e.note,
            )
            for e in events
        ),
    )
    return format_html(
        "<table><thead><tr><th>When</th><th>Kind</th><th>Status</th><th>Actor</th>"
        "<th>Note</th></tr></thead><tbody>{}</tbody></table><p>{}</p>",
        rows or format_html('<tr><td colspan="5">{}</td></tr>', "No events."),
        _events_link(bead_id, f"All events of {bead_ref(bead_id)}"),
    )


def _pr_link(url: str) -> SafeString | str:
    # Only http(s) becomes a link: the URL comes from outside and "javascript:" must not.
    if url.startswith(("https://", "http://")):
        try:
            ref = parse_pr_url(url)
            name = f"{ref.repo}#{ref.number}"
        except ScmError:
            name = url
        return format_html('<a href="{}" rel="noopener noreferrer">{}</a>', url, name)
    return url


def _merge_request_of(bead: Bead) -> MergeRequest | None:
    try:
        return bead.merge_request
    except MergeRequest.DoesNotExist:
        return None


def _status_text(mr: MergeRequest) -> str:
    """The same sentence as the dashboard's (beads.sentences), so they never disagree."""
    if mr.pk is None:
        return ""
    return str(merge_request_status(merge_request=mr))


def _move_beads(
    request: HttpRequest,
    beads: Iterable[Bead],
    *,
    status: str,
    verb: str,
    failure_code: str = "",
) -> None:
    actor = Actor.for_user(request.user)
    moved: list[str] = []
    skipped: list[str] = []
    refused: list[str] = []
    for bead in beads:
        if bead.is_terminal:
            skipped.append(bead.ref)
            continue
        if bead.type == BeadType.MERGE_REQUEST and MergeRequest.objects.filter(bead=bead).exists():
            # Its status follows its merge request's state: it closes when its PR merges.
            refused.append(
                f"Bead {bead.ref} is a merge request's: it closes when its PR merges. Use "
                "Fail MR to stop it."
            )
            continue
        try:
            bead_set_status(
                bead=bead,
                status=status,
                actor=actor,
                note=f"{verb.capitalize()} in the admin.",
                failure_code=failure_code,
                failure_message=f"{verb.capitalize()} in the admin by {actor.label}."
                if failure_code
                else "",
            )
        except (TerminalBeadError, StaleBeadError) as exc:
            refused.append(str(exc))
        else:
            moved.append(bead.ref)
    if moved:
        messages.success(
            request, f"{verb.capitalize()} {plural(len(moved), 'bead')}: {', '.join(moved)}."
        )
    if skipped:
        messages.warning(
            request,
            f"Skipped {plural(len(skipped), 'terminal bead')}: {', '.join(skipped)}. A terminal "
            "bead never changes status; create a new bead to retry the work.",
        )
    for message in refused:
        messages.error(request, message)


class ChangedFieldsInlineFormSet(BaseInlineFormSet):
    def save_existing(self, form: forms.ModelForm, obj: Any, commit: bool = True) -> Any:
        instance = form.save(commit=False)
        if commit:
            _save_changed_fields(instance, form.changed_data)
        return instance


class MergeRequestInline(TownScoped, admin.StackedInline):
    model = MergeRequest
    town_path = "bead__town"
    form = MergeRequestForm
    fk_name = "bead"
    formset = ChangedFieldsInlineFormSet
    extra = 0
    max_num = 1
    can_delete = False
    show_change_link = True
    autocomplete_fields = ("source", "landing_convoy")
    fieldsets = ((None, {"fields": MR_HEAD_FIELDS}), *MR_GROUPS)
    readonly_fields = ("pr_link", "status_text", *MR_READONLY_FIELDS)

    @admin.display(description="pull request")
    def pr_link(self, obj: MergeRequest) -> SafeString | str:
        return _pr_link(obj.pr_url)

    @admin.display(description="status")
    def status_text(self, obj: MergeRequest) -> str:
        return _status_text(obj)


# --- bead search ------------------------------------------------------------------------

#: A term matching more beads than this is "common": the page walks the newest beads
#: instead of collecting the matches, and the count stops here (README, "Performance").
SEARCH_CAP = 1000
# A bead is bd-N (never #N, which reads as a PR number: docs/domain.md).
_BEAD_REF = re.compile(r"^bd-(\d{1,18})$", re.IGNORECASE)


def _at_most_cap(values: QuerySet[Any]) -> list[int] | None:
    rows = list(values.order_by()[: SEARCH_CAP + 1])
    return None if len(rows) > SEARCH_CAP else rows


def _term_q(term: str) -> tuple[Q, bool]:
    """A bead matches a term by its title, its MR's PR URL or branch, or its assignee's name:
    three arms, each read on its own table's index (trigram indexes on PostgreSQL, migration
    beads.0013) with a LIMIT that stops a common one early. An arm with at most SEARCH_CAP
    beads becomes their ids; a longer one stays a condition (the term is common), for the
    newest-first walk of the `bead_created` index to test row by row."""
    mrs = MergeRequest.objects.filter(Q(pr_url__icontains=term) | Q(branch__icontains=term))
    agents = Agent.objects.filter(name__icontains=term).values("pk")
    arms = [
        (Bead.objects.filter(title__icontains=term).values_list("pk", flat=True), "title"),
        (mrs.values_list("bead_id", flat=True), "mr"),
        (Bead.objects.filter(assignee__in=agents).values_list("pk", flat=True), "assignee"),
    ]
    condition_of = {
        "title": Q(title__icontains=term),
        "mr": Q(pk__in=mrs.values("bead_id")),
        "assignee": Q(assignee__in=agents),
    }
    if len(term) < 3:
        # A trigram index cannot serve it: only the title (every bead's first rows) is read.
        arms, condition_of = arms[:1], {"title": condition_of["title"]}
    ids: set[int] = set()
    conditions: list[Q] = []
    for matches, arm in arms:
        found = _at_most_cap(matches)
        if found is None:
            conditions.append(condition_of[arm])
        else:
            ids.update(found)
    common = bool(conditions) or len(ids) > SEARCH_CAP
    if len(ids) > SEARCH_CAP:  # short arms, many beads in all: the walk tests them too
        conditions = list(condition_of.values())
        ids = set()
    q = Q(pk__in=sorted(ids))
    for condition in conditions:
        q |= condition
    return q, common


class CappedCountPaginator(Paginator):
    """Counts a common search's matches up to SEARCH_CAP (its exact count read every bead)."""

    @cached_property
    def count(self) -> int:
        matches: QuerySet[Any] = self.object_list  # type: ignore[assignment]
        return matches.order_by().values("pk")[:SEARCH_CAP].count()


@admin.register(Bead)
class BeadAdmin(LargeTableAdmin, TownScopedAdmin):
    list_display = (
        "ref",
        "title",
        "type",
        "status_text",
        "priority",
        "town",
        "rig",
        "convoy",
        "assignee",
        "pr",
        "created_at",
    )
    list_display_links = ("ref", "title")
    list_filter = ("type", "status", "priority", "town", "rig")
    # Searched by get_search_results below (bd-N, then these by indexed subqueries); the
    # rig's repository is the rig filter.
    search_fields = ("title", "merge_request__pr_url", "merge_request__branch", "assignee__name")
    search_help_text = (
        "bd-N, or words of the title, PR URL, branch or assignee (words under three letters: "
        "of the title)."
    )
    list_select_related = ("town", "rig", "convoy", "assignee", "merge_request")
    autocomplete_fields = ("town", "rig", "convoy", "parent", "assignee")
    inlines = (MergeRequestInline,)
    # Failing goes through the audited override (its permission, a reason, the wait's
    # telemetry), and only for merge requests, as on the dashboard.
    actions = (
        "close_beads",
        override_admin_action("merge_request_fail", on_beads=True),
        *override_admin_actions("bead"),
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "town",
                    "rig",
                    "convoy",
                    "type",
                    "status",
                    "title",
                    "body",
                    "priority",
                    "labels",
                    "metadata",
                    "parent",
                    "assignee",
                )
            },
        ),
        (
            "Dispatch and outcome",
            {
                "fields": (
                    "dispatch_attempts",
                    "last_dispatch_attempt_at",
                    "failure_code",
                    "failure_message",
                    "created_by",
                    "created_at",
                    "updated_at",
                    "closed_at",
                )
            },
        ),
        ("Recent events", {"fields": ("recent_events",)}),
    )
    readonly_fields = (
        "status",
        "dispatch_attempts",
        "last_dispatch_attempt_at",
        "failure_code",
        "failure_message",
        "created_by",
        "created_at",
        "updated_at",
        "closed_at",
        "recent_events",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Every term must match (as Django's search does). `bd-N` is the bead's id
        (a bare number also matches its id); a rare term filters by the ids its indexed arms
        found; a common one (more than SEARCH_CAP beads) filters the newest-first walk of the
        `bead_created` index, which finds a page of matches in the first rows it reads."""
        common = False
        for bit in smart_split(search_term):
            if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
                bit = unescape_string_literal(bit)
            ref = _BEAD_REF.match(bit)
            if ref:
                queryset = queryset.filter(pk=int(ref[1]))
                continue
            term, is_common = _term_q(bit)
            if bit.isdigit() and len(bit) <= 18:  # a bare number is that bead too
                term |= Q(pk=int(bit))
            common = common or is_common
            queryset = queryset.filter(term)
        request.bead_search_common = common  # type: ignore[attr-defined]
        return queryset, False

    def get_paginator(self, request: HttpRequest, queryset: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(request, "bead_search_common", False):
            return CappedCountPaginator(queryset, *args, **kwargs)
        return super().get_paginator(request, queryset, *args, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        # A new bead is created by the service, which takes no assignee; assign it afterwards.
        return (*readonly, "assignee") if obj is None else readonly

    def get_inline_instances(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.type != "merge_request":
            return []
        return super().get_inline_instances(request, obj)

    def save_model(self, request: HttpRequest, obj: Bead, form: Any, change: bool) -> None:
        actor = Actor.for_user(request.user)
        if not change:
            created = bead_create(
                town=obj.town,
                title=obj.title,
                actor=actor,
                type=obj.type,
                rig=obj.rig,
                convoy=obj.convoy,
                body=obj.body,
                priority=obj.priority,
                labels=obj.labels,
                metadata=obj.metadata,
                parent=obj.parent,
                note="Created in the admin.",
            )
            obj.pk = created.pk
            obj._state.adding = False
            obj.refresh_from_db()
            return
        bead_edit(bead=obj, fields=list(form.changed_data), actor=actor, where="the admin")

    def get_actions(self, request: HttpRequest) -> Any:
        # No bulk delete: a bead's audit must outlive a careless selection (a terminal bead
        # is kept as history; one bead can still be deleted from its own page).
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Closed and failed beads never change (docs/domain.md §2): their page is read-only.
        if obj is not None and obj.is_terminal:
            return False
        return super().has_change_permission(request, obj)

    @admin.display(description="bead", ordering="id")
    def ref(self, obj: Bead) -> str:
        return obj.ref

    @admin.display(description="status", ordering="status")
    def status_text(self, obj: Bead) -> str:
        """An MR bead reads as its MR does everywhere else (beads.sentences)."""
        mr = _merge_request_of(obj)
        return _status_text(mr) if mr is not None else obj.get_status_display()

    @admin.display(description="PR")
    def pr(self, obj: Bead) -> SafeString | str:
        mr = _merge_request_of(obj)
        return _pr_link(mr.pr_url) if mr is not None else ""

    @admin.display(description="recent events")
    def recent_events(self, obj: Bead) -> SafeString:
        return _recent_events_table(obj.pk)

    @admin.action(description="Close the selected beads (audited)", permissions=["change"])
    def close_beads(self, request: HttpRequest, queryset: QuerySet[Bead]) -> None:
        _move_beads(request, queryset, status=BeadStatus.CLOSED, verb="closed")


@admin.register(MergeRequest)
class MergeRequestAdmin(TownScopedAdmin):
    form = MergeRequestForm
    town_path = "bead__town"
    list_display = (
        "branch",
        "target_branch",
        "bead",
        "pr",
        "status_text",
        "review_status",
        "waiting_since",
        "last_checked_at",
        "state",
    )
    list_filter = (
        "blocker",
        "review_status",
        "state",
        "bead__town",
    )
    search_fields = ("branch", "target_branch", "pr_url", "head_sha", "bead__title")
    date_hierarchy = "created_at"
    list_select_related = ("bead", "bead__town", "bead__rig")
    autocomplete_fields = ("bead", "source", "landing_convoy")
    actions = override_admin_actions("merge_request")
    fieldsets = (
        (None, {"fields": ("bead", *MR_HEAD_FIELDS)}),
        *MR_GROUPS,
        ("Audit: merge calls and bead events", {"fields": ("merge_attempts", "bead_events")}),
    )
    readonly_fields = (
        "pr_link",
        "status_text",
        "bead_events",
        "merge_attempts",
        *MR_READONLY_FIELDS,
    )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A merged or failed MR is history: its page is read-only (docs/domain.md §2).
        if obj is not None and obj.is_terminal:
            return False
        return super().has_change_permission(request, obj)

    @admin.display(description="status")
    def status_text(self, obj: MergeRequest) -> str:
        return _status_text(obj)

    def save_model(self, request: HttpRequest, obj: MergeRequest, form: Any, change: bool) -> None:
        if change:
            _save_changed_fields(obj, form.changed_data)
        else:
            super().save_model(request, obj, form, change)

    @admin.display(description="PR")
    def pr(self, obj: MergeRequest) -> SafeString | str:
        return _pr_link(obj.pr_url)

    @admin.display(description="pull request")
    def pr_link(self, obj: MergeRequest) -> SafeString | str:
        return _pr_link(obj.pr_url)

    @admin.display(description="merge attempts")
    def merge_attempts(self, obj: MergeRequest) -> SafeString:
        """Every merge call and GitHub's answer, newest first, as written."""
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (a.created_at, a.head_sha[:12], a.method, a.outcome, a.refusal_kind, a.message)
                for a in MergeAttempt.objects.filter(merge_request=obj)[:RECENT_EVENTS]
            ),
        )
        return format_html(
            "<table><thead><tr><th>When</th><th>Head</th><th>Method</th><th>GitHub said</th>"
            "<th>Refusal</th><th>Message</th></tr></thead><tbody>{}</tbody></table>",
            rows or format_html('<tr><td colspan="6">{}</td></tr>', "No merge call yet."),
        )

    @admin.display(description="events of the MR bead")
    def bead_events(self, obj: MergeRequest) -> SafeString:
        return _recent_events_table(obj.bead_id)


class BeadDependencyForm(forms.ModelForm):
    class Meta:
        model = BeadDependency
        fields = ("bead", "depends_on", "kind")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        bead, depends_on = cleaned.get("bead"), cleaned.get("depends_on")
        if bead and depends_on:
            problem = bead_dependency_problem(
                bead=bead, blocker=depends_on, kind=cleaned.get("kind") or ""
            )
            if problem:
                raise forms.ValidationError(problem)
        return cleaned


@admin.register(BeadDependency)
class BeadDependencyAdmin(TownScopedAdmin):
    form = BeadDependencyForm
    town_path = "bead__town"
    list_display = ("bead", "kind", "depends_on", "created_at")
    list_filter = ("kind", "bead__town")
    search_fields = ("bead__title", "depends_on__title")
    list_select_related = ("bead", "depends_on")
    autocomplete_fields = ("bead", "depends_on")


@admin.register(BeadEvent)
class BeadEventAdmin(TownScopedAdmin):
    """The audit trail: append-only, so the admin may only look."""

    list_display = ("created_at", "kind", "bead_link", "status_change", "actor", "town", "note")
    list_filter = ("kind", "town")
    search_fields = ("bead_title", "actor", "note")
    date_hierarchy = "created_at"
    list_select_related = ("town",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def lookup_allowed(self, lookup: str, value: str, request: Any = None) -> bool:
        # The bead and MR pages link here filtered by bead_ref (it survives the bead).
        return lookup == "bead_ref" or super().lookup_allowed(lookup, value, request)

    @admin.display(description="bead", ordering="bead_ref")
    def bead_link(self, obj: BeadEvent) -> SafeString:
        if obj.bead_id is None:
            return format_html("{} {} (deleted)", bead_ref(obj.bead_ref), obj.bead_title)
        url = reverse("admin:beads_bead_change", args=[obj.bead_id])
        return format_html('<a href="{}">{} {}</a>', url, bead_ref(obj.bead_ref), obj.bead_title)

    @admin.display(description="status")
    def status_change(self, obj: BeadEvent) -> str:
        return f"{obj.from_status} → {obj.to_status}" if obj.to_status else ""
