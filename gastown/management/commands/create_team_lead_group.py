"""Create (or bring up to date) the "team lead" group: the dashboard and every override."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand

from gastown.models import Town, TownPermission

GROUP_NAME = "team lead"


def team_lead_group_sync() -> tuple[Group, int]:
    """Idempotent: returns the group and how many permissions were added now."""
    content_type = ContentType.objects.get_for_model(Town)
    wanted = []
    for permission in TownPermission:
        obj, _ = Permission.objects.get_or_create(
            content_type=content_type,
            codename=permission.value,
            defaults={"name": permission.label},
        )
        wanted.append(obj)
    group, _ = Group.objects.get_or_create(name=GROUP_NAME)
    have = set(group.permissions.values_list("pk", flat=True))
    missing = [p for p in wanted if p.pk not in have]
    group.permissions.add(*missing)
    return group, len(missing)


class Command(BaseCommand):
    help = (
        'Create the "team lead" group with the permissions to view the dashboard and press '
        "every override (safe to run again). Add people with the admin; give them towns by "
        "making them (or the group) members of each town."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        group, added = team_lead_group_sync()
        total = group.permissions.count()
        self.stdout.write(
            f'Group "{group.name}": {total} permission(s), {added} added now.'
            if added
            else f'Group "{group.name}" is up to date ({total} permissions).'
        )
