"""The one format for times and durations (|when, |age, |duration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template

from gastown.dashboard.templatetags.gastown import duration_text

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0 s"),
        (0, "0 s"),
        (59.9, "59 s"),
        (119, "119 s"),
        (120, "2 min"),
        (119 * 60 + 59, "119 min"),
        (2 * 3600, "2 h"),
        (26 * 3600 + 5 * 60, "26 h 5 min"),
        (47 * 3600 + 59 * 60, "47 h 59 min"),
        (48 * 3600, "2 days"),
        (3 * 86400 + 4 * 3600 + 59, "3 days 4 h"),
    ],
)
def test_durations_show_seconds_while_they_matter_then_larger_units(seconds, text):
    assert duration_text(seconds) == text


def render(source: str, **context) -> str:
    return Template("{% load gastown %}" + source).render(Context(context))


def test_when_is_relative_with_the_exact_utc_time_on_hover():
    html = render("{{ t|when:now }}", t=NOW - timedelta(seconds=95), now=NOW)
    assert html == (
        '<time datetime="2026-11-30T11:58:25Z" title="2026-11-30 11:58:25 UTC">95 s ago</time>'
    )


def test_when_reads_a_future_moment_and_the_present():
    assert ">in 10 min</time>" in render("{{ t|when:now }}", t=NOW + timedelta(minutes=10), now=NOW)
    assert ">just now</time>" in render("{{ t|when:now }}", t=NOW, now=NOW)


def test_age_is_the_time_since_without_ago():
    html = render("{{ t|age:now }}", t=NOW - timedelta(hours=26), now=NOW)
    assert html.endswith(">26 h</time>")


def test_duration_reads_timedeltas_seconds_and_milliseconds():
    assert render("{{ d|duration }}", d=timedelta(minutes=3)) == "3 min"
    assert render("{{ d|duration }}", d=45) == "45 s"
    assert render('{{ d|duration:"ms" }}', d=353) == "353 ms"
    assert render('{{ d|duration:"ms" }}', d=1500) == "1 s"
    assert render('{{ d|duration:"ms" }}', d=2_820_000) == "47 min"


def test_missing_values_render_as_a_dash():
    assert render("{{ t|when }}{{ t|age }}{{ t|duration }}", t=None) == "———"


def test_prs_are_named_owner_repo_number_from_their_url():
    assert render("{{ u|pr_name }}", u="https://github.com/acme/api/pull/88") == "acme/api#88"
    assert render("{{ u|pr_name }}", u="https://github.com/acme/api/pull/88/files") == "acme/api#88"
    assert render("{{ u|pr_name }}", u="not a url") == "PR"
    assert render("{{ u|pr_name }}", u=None) == "PR"


@pytest.mark.django_db
def test_the_admin_writes_a_moment_as_the_dashboards_tooltip_does(admin_client):
    """One exact format (gastown/formats): Django's own for "en-us" drops the seconds."""
    from beads.models import MergeRequest
    from tests.factories import MergeRequestFactory

    mr = MergeRequestFactory(pr_url="https://github.com/acme/web/pull/3")
    MergeRequest.objects.filter(pk=mr.pk).update(
        blocker="human_review", waiting_since=NOW - timedelta(seconds=95)
    )
    page = admin_client.get(f"/admin/beads/mergerequest/{mr.pk}/change/").content.decode()
    assert "2026-11-30 11:58:25 UTC" in page
    assert "Nov. 30, 2026" not in page
