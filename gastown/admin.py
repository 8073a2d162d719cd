"""Admin for towns, rigs, agents, convoys and the reconciler's queues and records.

Every changelist selects its related rows up front and every foreign key on a change form is
an autocomplete (or read-only), so a page costs the same number of queries at any size.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import get_fields_from_path
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from gastown.dashboard.admin_actions import override_admin_actions
from gastown.dashboard.selectors import telemetry_names, town_list_for_user
from gastown.models import (
    Agent,
    ApiToken,
    Convoy,
    NotificationSent,
    ReconcilerTick,
    Rig,
    SideEffectIntent,
    TelemetryEvent,
    Town,
    WebhookDelivery,
)


class TownScoped:
    """Town-owned data in the admin, limited to the user's towns (the dashboard's rule,
    `town_list_for_user`) unless superuser: the changelist, change, delete and history pages
    (another town's object is "not found"), the actions (they run on this queryset), the
    choices of every foreign key to town-owned data (one cannot move an object into a town
    one is not a member of) and the related list filters (no other town's names).

    Used by every ModelAdmin and inline of town-owned data; a model that is not owned through
    a `town` foreign key names its path in `town_path` or overrides `town_scope`."""

    #: The lookup from the model to its town ("" for the town itself).
    town_path = "town"
    admin_site: admin.AdminSite
    model: type[Model]

    def town_scope(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        towns = _user_towns(request)
        if towns is None:
            return queryset
        return queryset.filter(**{f"{self.town_path or 'pk'}__in": towns})

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return self.town_scope(request, super().get_queryset(request))  # type: ignore[misc]

    def get_field_queryset(self, db: Any, db_field: Any, request: HttpRequest) -> Any:
        queryset = super().get_field_queryset(db, db_field, request)  # type: ignore[misc]
        related = self.admin_site._registry.get(db_field.remote_field.model)
        if isinstance(related, TownScoped) and not request.user.is_superuser:
            if queryset is None:
                queryset = db_field.remote_field.model._default_manager.using(db)
            queryset = related.town_scope(request, queryset)
        return queryset

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = super().get_list_filter(request)  # type: ignore[misc]
        if request.user.is_superuser:
            return filters
        # A plain related filter lists every town (or rig...) in the database.
        return tuple(
            (name, admin.RelatedOnlyFieldListFilter)
            if isinstance(name, str) and get_fields_from_path(self.model, name)[-1].is_relation
            else name
            for name in filters
        )


class EstimatedCountPaginator(Paginator):
    """An unfiltered changelist of a large table on PostgreSQL counts from the planner's
    statistics: COUNT(*) over 1M telemetry events took 140 ms a page (README,
    "Performance"). Filtered lists, small tables and SQLite count exactly."""

    EXACT_BELOW = 100_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if (
            connection.vendor == "postgresql"
            and isinstance(queryset, QuerySet)
            and not queryset.query.where
        ):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [queryset.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] >= self.EXACT_BELOW:
                return int(row[0])
        return super().count


class LargeTableAdmin:
    """A changelist over a table that grows without bound: estimated counts, no second
    count for "N total", no date hierarchy (its SELECT DISTINCT date_trunc reads every
    row)."""

    paginator: ClassVar[type] = EstimatedCountPaginator
    show_full_result_count = False


def _user_towns(request: HttpRequest) -> QuerySet[Any] | None:
    """The ids of the user's towns as a subquery; None for a superuser (every town)."""
    if request.user.is_superuser:
        return None
    return town_list_for_user(user=request.user).order_by().values("pk")


class TownScopedAdmin(TownScoped, admin.ModelAdmin):
    def action_checkbox(self, obj: Any) -> SafeString:
        """Django's row checkbox, written directly: rendering its widget template for each
        of a page's rows was a third of the bead list's time (README, "Performance")."""
        label = format_html(gettext("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            label,
        )


class ViewOnlyAdmin(TownScopedAdmin):
    """Append-only records: the admin may look, never write."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TownAdminForm(forms.ModelForm):
    """The token is write-only: entered here, stored encrypted, never rendered back."""

    github_token = forms.CharField(
        label="GitHub token",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Enter a token to replace the stored one; leave empty to keep it.",
    )
    notify_webhook_url = forms.URLField(
        label="Notification webhook",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Incoming webhook (Slack-compatible) that receives this town's escalations.",
    )
    clear_github_token = forms.BooleanField(
        label="Clear the stored token",
        required=False,
        help_text="The town then uses its environment variable, else GITHUB_TOKEN.",
    )
    github_app_private_key = forms.CharField(
        label="GitHub App private key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="The App's private key (PEM) to replace the stored one; leave empty to "
        "keep it. Stored encrypted, never shown.",
    )
    clear_github_app_private_key = forms.BooleanField(
        label="Clear the stored App private key", required=False
    )

    class Meta:
        model = Town
        # Never github_token_encrypted: the ciphertext is not editable nor shown.
        # Never paused either: pausing and resuming are the audited overrides (actions).
        fields = (
            "name",
            "slug",
            "member_users",
            "member_groups",
            "auto_merge",
            "auto_merge_delay_minutes",
            "merge_methods",
            "default_merge_mode",
            "code_review",
            "human_wait_escalation_hours",
            "poll_interval_seconds",
            "max_dispatch_attempts",
            "max_landing_attempts",
            "dispatch_backoff_seconds",
            "landing_cooldown_base_seconds",
            "landing_cooldown_max_seconds",
            "breaker_threshold",
            "breaker_window_minutes",
            "use_native_auto_merge",
            "hold_label",
            "require_label",
            "github_token_env",
            "notify_webhook_url",
            "github_app_id",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("github_token") and cleaned.get("clear_github_token"):
            raise forms.ValidationError("Enter a new token or clear the stored one, not both.")
        key = cleaned.get("github_app_private_key")
        if key and cleaned.get("clear_github_app_private_key"):
            raise forms.ValidationError("Enter a new App key or clear the stored one, not both.")
        if key and "PRIVATE KEY" not in key:
            self.add_error(
                "github_app_private_key", "A PEM private key (-----BEGIN RSA PRIVATE KEY-----)."
            )
        return cleaned

    def save(self, commit: bool = True) -> Town:
        town: Town = super().save(commit=False)
        if self.cleaned_data.get("clear_github_token"):
            town.set_github_token("")
        elif self.cleaned_data.get("github_token"):
            town.set_github_token(self.cleaned_data["github_token"])
        if self.cleaned_data.get("clear_github_app_private_key"):
            town.set_github_app_private_key("")
        elif self.cleaned_data.get("github_app_private_key"):
            town.set_github_app_private_key(self.cleaned_data["github_app_private_key"])
        if commit:
            town.save()
            self.save_m2m()
        return town


class RigInline(TownScoped, admin.TabularInline):
    model = Rig
    extra = 0
    fields = ("name", "repo", "default_branch", "allow_update_branch", "required_checks_only")
    show_change_link = True


@admin.register(Town)
class TownAdmin(TownScopedAdmin):
    form = TownAdminForm
    town_path = ""
    list_display = (
        "name",
        "slug",
        "paused",
        "auto_merge",
        "auto_merge_delay_minutes",
        "default_merge_mode",
        "code_review",
        "token_configured",
    )
    list_filter = ("paused", "auto_merge", "default_merge_mode", "code_review")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("member_users", "member_groups")
    readonly_fields = ("paused", "token_configured", "created_at", "updated_at")
    inlines = (RigInline,)
    actions = override_admin_actions("town")
    fieldsets = (
        (None, {"fields": ("name", "slug", "paused", "member_users", "member_groups")}),
        (
            "Merging",
            {
                "fields": (
                    "auto_merge",
                    "auto_merge_delay_minutes",
                    "merge_methods",
                    "default_merge_mode",
                    "code_review",
                    "human_wait_escalation_hours",
                    "use_native_auto_merge",
                    "hold_label",
                    "require_label",
                )
            },
        ),
        (
            "Polling and retries",
            {
                "fields": (
                    "poll_interval_seconds",
                    "max_dispatch_attempts",
                    "dispatch_backoff_seconds",
                    "max_landing_attempts",
                    "landing_cooldown_base_seconds",
                    "landing_cooldown_max_seconds",
                    "breaker_threshold",
                    "breaker_window_minutes",
                )
            },
        ),
        (
            "GitHub credential",
            {
                "fields": (
                    "token_configured",
                    "github_token",
                    "clear_github_token",
                    "github_token_env",
                    "github_app_id",
                    "github_app_private_key",
                    "clear_github_app_private_key",
                )
            },
        ),
        (
            "Notifications",
            {
                "fields": ("notify_webhook_url",),
                "description": "Waits past the threshold and escalations are sent once to "
                "the town's team leads by email and to this incoming webhook (Slack-"
                "compatible). Its URL holds a secret: it is never logged.",
            },
        ),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="token configured")
    def token_configured(self, obj: Town) -> str:
        if obj.github_token_encrypted:
            return "yes (stored encrypted)"
        if obj.github_token_env:
            return f"yes (from ${obj.github_token_env})"
        if obj.github_app_id and obj.github_app_private_key_encrypted:
            return f"GitHub App {obj.github_app_id} (key stored encrypted)"
        return "no (uses GITHUB_TOKEN)"


@admin.register(Rig)
class RigAdmin(TownScopedAdmin):
    list_display = (
        "name",
        "repo",
        "town",
        "default_branch",
        "allow_update_branch",
        "required_checks_only",
    )
    list_filter = ("town", "allow_update_branch", "required_checks_only")
    search_fields = ("name", "repo", "town__name")
    list_select_related = ("town",)
    autocomplete_fields = ("town",)
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "town",
                    "name",
                    "repo",
                    "default_branch",
                    "allow_update_branch",
                    "required_checks_only",
                    "delete_head_branch",
                )
            },
        ),
        (
            "Overrides of the town's settings (empty: use the town's)",
            {
                "fields": (
                    "auto_merge",
                    "auto_merge_delay_minutes",
                    "merge_methods",
                    "poll_interval_seconds",
                    "max_dispatch_attempts",
                    "max_landing_attempts",
                    "code_review",
                    "human_wait_escalation_hours",
                    "hold_label",
                )
            },
        ),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )


@admin.register(Agent)
class AgentAdmin(TownScopedAdmin):
    list_display = (
        "name",
        "role",
        "status",
        "town",
        "rig",
        "hooked_bead",
        "dispatch_attempts",
        "last_heartbeat_at",
    )
    list_filter = ("role", "status", "town", "rig")
    search_fields = ("name", "rig__repo", "town__name")
    list_select_related = ("town", "rig", "hooked_bead")
    autocomplete_fields = ("town", "rig")
    # The hook changes only through the dispatch service, which audits it on the bead.
    readonly_fields = (
        "hooked_bead",
        "dispatch_attempts",
        "last_dispatch_at",
        "last_heartbeat_at",
        "last_activity_at",
        "created_at",
        "updated_at",
    )


@admin.register(Convoy)
class ConvoyAdmin(TownScopedAdmin):
    list_display = (
        "title",
        "town",
        "rig",
        "merge_mode",
        "status",
        "landing_attempts",
        "suppressed",
        "created_at",
    )
    list_filter = ("status", "merge_mode", "town")
    search_fields = ("title", "feature_branch", "rig__repo", "suppressed_pr_url")
    date_hierarchy = "created_at"
    list_select_related = ("town", "rig")
    autocomplete_fields = ("town", "rig")
    actions = override_admin_actions("convoy")
    # Status, failure and suppression change only through the reconciler and the audited
    # overrides (close, retry a landing, end a suppression), never through this form.
    readonly_fields = (
        "status",
        "failure_reason",
        "failure_message",
        "respawn_suppressed_since",
        "suppressed_landing_mr",
        "suppressed_pr_url",
        "suppressed_attempt",
        "feature_branch_created_at",
        "landing_attempts",
        "last_landing_attempt_at",
        "landed_at",
        "closed_at",
        "created_at",
        "updated_at",
    )

    @admin.display(boolean=True, description="respawn suppressed")
    def suppressed(self, obj: Convoy) -> bool:
        return obj.is_suppressed


class TelemetryNameFilter(admin.SimpleListFilter):
    """The names of the user's towns' events, by index probes (telemetry_names) where the
    field filter's SELECT DISTINCT read every event (270 ms at 1M)."""

    title = "name"
    parameter_name = "name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        if request.user.is_superuser:
            names = set(telemetry_names(town=None))
        else:  # one probe per name of each of the user's towns: no other town's names
            towns = town_list_for_user(user=request.user)
            names = {name for town in towns for name in telemetry_names(town=town)}
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(name=self.value()) if self.value() else queryset


@admin.register(TelemetryEvent)
class TelemetryEventAdmin(LargeTableAdmin, ViewOnlyAdmin):
    list_display = (
        "name",
        "label",
        "town",
        "rig",
        "bead",
        "convoy",
        "value",
        "duration_ms",
        "created_at",
    )
    list_filter = (TelemetryNameFilter, "town")
    search_fields = ("name", "label", "reason")
    list_select_related = ("town", "rig", "bead", "convoy")


@admin.register(NotificationSent)
class NotificationSentAdmin(ViewOnlyAdmin):
    """What was sent (or tried) on each channel: written by the notification service only."""

    list_display = ("key", "channel", "town", "sent_at", "attempts", "short_error", "created_at")
    list_filter = ("channel", "town")
    search_fields = ("key", "error")
    date_hierarchy = "created_at"
    list_select_related = ("town",)

    @admin.display(description="error")
    def short_error(self, obj: NotificationSent) -> str:
        return obj.error.splitlines()[0][:120] if obj.error else ""


@admin.register(ReconcilerTick)
class ReconcilerTickAdmin(ViewOnlyAdmin):
    list_display = (
        "started_at",
        "town",
        "duration_ms",
        "planned",
        "action_total",
        "short_error",
    )
    list_filter = ("town",)
    search_fields = ("error",)
    date_hierarchy = "started_at"
    list_select_related = ("town",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # The list shows counts; a tick's plan (up to 100 actions) is read on its own page.
        return super().get_queryset(request).defer("plan")

    @admin.display(description="actions")
    def action_total(self, obj: ReconcilerTick) -> int:
        return obj.action_total

    @admin.display(description="error")
    def short_error(self, obj: ReconcilerTick) -> str:
        return obj.error.splitlines()[0][:120] if obj.error else ""


# --- API tokens and webhook deliveries (gastown.api, gastown.webhooks) --------------------


class ApiTokenAdminForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("town", "name", "revoked_at")


@admin.register(ApiToken)
class ApiTokenAdmin(TownScopedAdmin):
    """Tokens are created here and shown once in a message; only their hash is stored."""

    form = ApiTokenAdminForm
    list_display = ("name", "town", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("town",)
    search_fields = ("name", "prefix")
    list_select_related = ("town",)
    readonly_fields = ("prefix", "created_by", "created_at", "last_used_at")
    autocomplete_fields = ("town",)
    actions = ["revoke_tokens"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A token's town and name are fixed once issued; revoke and create a new one instead.
        return (*self.readonly_fields, "town", "name") if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        from django.contrib import messages

        from gastown.api.auth import api_token_create

        if change:
            super().save_model(request, obj, form, change)
            return
        row, token = api_token_create(town=obj.town, name=obj.name, created_by=request.user)
        obj.pk = row.pk
        obj.prefix, obj.token_hash, obj.created_at = row.prefix, row.token_hash, row.created_at
        messages.warning(
            request,
            f"API token for {obj.town}: {token} — copy it now, it will not be shown again.",
        )

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        from django.utils import timezone

        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).")


@admin.register(SideEffectIntent)
class SideEffectIntentAdmin(ViewOnlyAdmin):
    """What was sent, or is about to be, to GitHub and the agents (docs/architecture.md,
    "Side effects and crashes"): an unfinished row past its lease is re-run by the next tick."""

    list_display = ("key", "town", "kind", "created_at", "started_at", "finished_at", "outcome")
    list_select_related = ("town",)
    list_filter = ("kind", "outcome")
    search_fields = ("key",)
    date_hierarchy = "created_at"


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ViewOnlyAdmin):
    list_display = ("received_at", "event", "action", "repo", "status", "merge_requests")
    list_filter = ("event", "status")
    search_fields = ("delivery_id", "repo")
    date_hierarchy = "received_at"

    def town_scope(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # A delivery belongs to the towns with a rig of its repository (GitHub compares
        # names case-insensitively); one for no rig (a ping, another repository) to none.
        towns = _user_towns(request)
        if towns is None:
            return queryset
        rigs = Rig.objects.filter(town__in=towns, repo__iexact=OuterRef("repo"))
        return queryset.filter(Exists(rigs))
