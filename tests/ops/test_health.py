from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from gastown.models import Town
from tests.factories import ReconcilerTickFactory, TownFactory

pytestmark = pytest.mark.django_db

REDIS_DOWN = "redis://:hunter2-redis-password@127.0.0.1:1/0"


def _ready(client):
    response = client.get("/readyz")
    return response.status_code, response.json()


def _town_ticked(seconds_ago: int, **kwargs) -> Town:
    town = TownFactory(**kwargs)
    ReconcilerTickFactory(town=town, started_at=timezone.now() - timedelta(seconds=seconds_ago))
    return town


def test_healthz_answers_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_is_ready_when_every_town_ticked_recently(client):
    _town_ticked(30)
    status, body = _ready(client)
    assert status == 200
    assert body["status"] == "ok"
    assert body["checks"] == {
        "database": {"ok": True},
        "migrations": {"ok": True},
        "broker": {"ok": True, "broker": "orm"},
        "reconciler": {"ok": True, "max_age_seconds": 180},
    }


def test_a_town_whose_last_tick_is_stale_fails_readiness(client):
    _town_ticked(30, slug="fresh")
    _town_ticked(181, slug="stale")
    status, body = _ready(client)
    assert status == 503
    assert body["status"] == "fail"
    reconciler = body["checks"]["reconciler"]
    assert reconciler["ok"] is False
    assert [town["town"] for town in reconciler["stale_towns"]] == ["stale"]
    assert reconciler["stale_towns"][0]["seconds_since"] >= 181
    assert body["checks"]["database"]["ok"] is True


def test_the_stale_threshold_comes_from_settings(client, settings):
    settings.GASTOWN_TICK_STALE_SECONDS = 600
    _town_ticked(300)
    assert _ready(client)[0] == 200
    settings.GASTOWN_TICK_STALE_SECONDS = 240
    assert _ready(client)[0] == 503


def test_a_new_town_without_ticks_fails_only_once_older_than_the_threshold(client):
    town = TownFactory()
    assert _ready(client)[0] == 200
    Town.objects.filter(pk=town.pk).update(created_at=timezone.now() - timedelta(seconds=200))
    status, body = _ready(client)
    assert status == 503
    [stale] = body["checks"]["reconciler"]["stale_towns"]
    assert stale["town"] == town.slug
    assert stale["last_tick"] is None


def test_an_unapplied_migration_fails_readiness_even_below_an_applied_one(client):
    MigrationRecorder(connection).record_unapplied("gastown", "0004_town_thresholds")
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["migrations"] == {
        "ok": False,
        "unapplied": ["gastown.0004_town_thresholds"],
        "unapplied_count": 1,
    }


def test_the_newest_migration_unapplied_fails_readiness(client):
    MigrationRecorder(connection).record_unapplied("gastown", "0006_health_feedback_check_runs")
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["migrations"]["unapplied"] == ["gastown.0006_health_feedback_check_runs"]


def test_an_unreadable_orm_broker_fails_readiness(client):
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE django_q_ormq RENAME TO django_q_ormq_gone")
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["error"] in {"OperationalError", "ProgrammingError"}


def test_an_unreachable_redis_broker_fails_readiness(client, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": REDIS_DOWN}
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["broker"] == {"ok": False, "error": "ConnectionError"}
    assert body["checks"]["database"]["ok"] is True


def test_a_reachable_redis_broker_passes(client, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": {"host": "127.0.0.1", "port": 6379}}
    status, body = _ready(client)
    assert body["checks"]["broker"] == {"ok": True, "broker": "redis"}
    assert status == 200


def test_readyz_shows_no_secret_even_when_failing(client, settings, monkeypatch):
    settings.GITHUB_TOKEN = "ghp_processwidesecret"
    settings.GITHUB_WEBHOOK_SECRET = "webhook-secret-value"
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": REDIS_DOWN}
    town = _town_ticked(999)
    town.set_github_token("ghp_towntokensecret")
    town.save()
    response = client.get("/readyz")
    assert response.status_code == 503
    text = response.content.decode()
    json.loads(text)
    for secret in (
        settings.SECRET_KEY,
        "ghp_processwidesecret",
        "ghp_towntokensecret",
        town.github_token_encrypted,
        "webhook-secret-value",
        "hunter2-redis-password",
    ):
        assert secret not in text


def test_readyz_needs_no_sign_in_and_refuses_writes(client):
    assert client.get("/readyz").status_code == 200
    assert client.post("/readyz").status_code == 405
    assert client.post("/healthz").status_code == 405
