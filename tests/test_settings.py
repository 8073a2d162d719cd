from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gastown.env import (
    ImproperlyConfiguredEnv,
    env_bool,
    env_choice,
    env_database,
    env_int,
    env_url,
    sqlite_options,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DB = Path("/srv/gastown/db.sqlite3")

# Variables the settings read; the subprocesses start without any of them.
SETTINGS_VARIABLES = {
    "SECRET_KEY",
    "DEBUG",
    "DATABASE_URL",
    "ALLOWED_HOSTS",
    "GITHUB_TOKEN",
    "GITHUB_API_URL",
    "GITHUB_WEB_URL",
    "GITHUB_WEBHOOK_SECRET",
    "AGENT_RUNTIME_URL",
    "AGENT_RUNTIME_SECRET",
    "GASTOWN_SIMULATED_AGENTS",
    "GASTOWN_ACTIVE_TICK_SECONDS",
    "LOG_LEVEL",
    "SECURE_COOKIES",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS",
    "EMAIL_USE_SSL",
    "EMAIL_BACKEND",
    "DEFAULT_FROM_EMAIL",
}


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled"])
def test_malformed_boolean_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("DEBUG", raw)
    with pytest.raises(ImproperlyConfiguredEnv, match="DEBUG"):
        env_bool("DEBUG")


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("Yes", True), ("off", False)])
def test_boolean_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("DEBUG", raw)
    assert env_bool("DEBUG") is expected


def test_integer_below_minimum_names_the_variable(monkeypatch):
    monkeypatch.setenv("GASTOWN_ACTIVE_TICK_SECONDS", "0")
    with pytest.raises(ImproperlyConfiguredEnv, match="GASTOWN_ACTIVE_TICK_SECONDS"):
        env_int("GASTOWN_ACTIVE_TICK_SECONDS", 5, minimum=1)


@pytest.mark.parametrize(
    "raw",
    [
        "notaurl",
        "ftp://example.com",
        "https://",
        "http://[::1",
        "https://github.com:abc",
        "http://127.0.0.1:abc",
        "http://127.0.0.1:99999",
    ],
)
def test_github_api_url_that_is_not_a_url_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("GITHUB_API_URL", raw)
    with pytest.raises(ImproperlyConfiguredEnv, match="GITHUB_API_URL"):
        env_url("GITHUB_API_URL", "https://api.github.com")


@pytest.mark.parametrize(("raw", "expected"), [("debug", "DEBUG"), (" Warning ", "WARNING")])
def test_choice_is_read_case_insensitively(monkeypatch, raw, expected):
    monkeypatch.setenv("LOG_LEVEL", raw)
    assert env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING")) == expected


def test_choice_outside_the_set_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    with pytest.raises(ImproperlyConfiguredEnv, match=r"LOG_LEVEL='verbose'.*DEBUG, INFO"):
        env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING"))


def test_url_loses_its_trailing_slash(monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:8001/api/")
    assert env_url("GITHUB_API_URL", "https://api.github.com") == "http://127.0.0.1:8001/api"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@host/db",
        "postgres://u@host/",
        "postgres://u@host:99999/db",
        "postgres://u@host:port/db",
        "postgres://[x/db",
        "postgresql://u@[::1/db",
        "postgres:///db",
        "sqlite://",
        "sqlite://host/db.sqlite3",
    ],
)
def test_malformed_database_url_names_the_variable(monkeypatch, url):
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ImproperlyConfiguredEnv, match="DATABASE_URL"):
        env_database("DATABASE_URL", DEFAULT_DB)


def test_postgres_url_is_parsed(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://gas:p%40ss@db.internal:6543/gastown")
    db = env_database("DATABASE_URL", DEFAULT_DB)
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "gas",
        "p@ss",
        "db.internal",
        "6543",
        "gastown",
    )


def test_postgres_port_defaults_to_5432(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://gas@localhost/gastown")
    assert env_database("DATABASE_URL", DEFAULT_DB)["PORT"] == "5432"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("sqlite:///var/db.sqlite3", "var/db.sqlite3"),
        ("sqlite:////srv/data/db.sqlite3", "/srv/data/db.sqlite3"),
    ],
)
def test_sqlite_urls_relative_and_absolute(monkeypatch, url, name):
    monkeypatch.setenv("DATABASE_URL", url)
    db = env_database("DATABASE_URL", DEFAULT_DB)
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == name
    assert db["OPTIONS"] == sqlite_options()


def test_no_database_url_means_the_default_sqlite_file(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    db = env_database("DATABASE_URL", DEFAULT_DB)
    assert db["NAME"] == str(DEFAULT_DB)
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


# Start-up ---------------------------------------------------------------------------------


def _start(tmp_path: Path, code: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    clean.update(
        DJANGO_SETTINGS_MODULE="gastown.settings",
        DATABASE_URL=f"sqlite:///{tmp_path}/start.sqlite3",
    )
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup()\n{code}"],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_secret_key(tmp_path):
    result = _start(tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_starts_without_secret_key(tmp_path):
    result = _start(tmp_path, DEBUG="1")
    assert result.returncode == 0, result.stderr


def test_start_up_names_a_malformed_debug(tmp_path):
    result = _start(tmp_path, DEBUG="maybe", SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "DEBUG='maybe'" in result.stderr


def test_start_up_names_a_malformed_github_api_url(tmp_path):
    result = _start(tmp_path, DEBUG="1", GITHUB_API_URL="notaurl")
    assert result.returncode != 0
    assert "GITHUB_API_URL" in result.stderr


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("GITHUB_API_URL", "http://[::1"),
        ("GITHUB_API_URL", "http://127.0.0.1:abc"),
        ("GITHUB_WEB_URL", "https://github.com:abc"),
        ("DATABASE_URL", "postgres://[x/db"),
        ("LOG_LEVEL", "verbose"),
    ],
)
def test_start_up_names_a_malformed_variable(tmp_path, variable, raw):
    result = _start(tmp_path, DEBUG="1", **{variable: raw})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr.splitlines()[-1]


def test_sqlite_file_database_runs_in_wal_with_busy_timeout_and_immediate_transactions(tmp_path):
    code = (
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('PRAGMA journal_mode'); mode = c.fetchone()[0]\n"
        "    c.execute('PRAGMA busy_timeout'); timeout = c.fetchone()[0]\n"
        "print(mode, timeout, connection.transaction_mode)\n"
    )
    result = _start(tmp_path, code, DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["wal", "20000", "IMMEDIATE"]


PRINT_EMAIL = (
    "from django.conf import settings as s; "
    "print(s.GASTOWN_NOTIFY_EMAIL, s.EMAIL_BACKEND.rsplit('.', 2)[-2], s.EMAIL_PORT)"
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "False smtp 25"),
        ({"EMAIL_HOST": "mail.example.com", "EMAIL_PORT": "587"}, "True smtp 587"),
        ({"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}, "True console 25"),
    ],
)
def test_escalation_emails_go_out_only_with_a_mail_server_or_backend(tmp_path, env, expected):
    result = _start(tmp_path, DEBUG="1", **env, code=PRINT_EMAIL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_tls_and_ssl_together_stop_start_up(tmp_path):
    result = _start(tmp_path, DEBUG="1", EMAIL_USE_TLS="1", EMAIL_USE_SSL="1")
    assert result.returncode != 0
    assert "EMAIL_USE_TLS and EMAIL_USE_SSL" in result.stderr
