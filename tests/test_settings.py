from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gastown.env import (
    ImproperlyConfiguredEnv,
    env_bind,
    env_bool,
    env_choice,
    env_database,
    env_github_app,
    env_int,
    env_origins,
    env_proxy_ssl_header,
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
    "SECURE_PROXY_SSL_HEADER",
    "CSRF_TRUSTED_ORIGINS",
    "USE_X_FORWARDED_HOST",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_REFERRER_POLICY",
    "STATIC_ROOT",
    "Q_BROKER",
    "REDIS_URL",
    "Q_WORKERS",
    "SECRET_KEY_FALLBACKS",
    "GASTOWN_TICK_STALE_SECONDS",
    "METRICS_TOKEN",
    "LOG_FORMAT",
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


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("X-Forwarded-Proto", ("HTTP_X_FORWARDED_PROTO", "https")),
        (" x-forwarded-ssl: on ", ("HTTP_X_FORWARDED_SSL", "on")),
        ("", None),
    ],
)
def test_proxy_ssl_header_is_a_header_name_and_value(monkeypatch, raw, expected):
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", raw)
    assert env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER") == expected


@pytest.mark.parametrize("raw", ["HTTP_X_FORWARDED_PROTO=https", "X Forwarded", ": https"])
def test_malformed_proxy_ssl_header_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", raw)
    with pytest.raises(ImproperlyConfiguredEnv, match="SECURE_PROXY_SSL_HEADER"):
        env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER")


def test_trusted_origins_are_origins(monkeypatch):
    monkeypatch.setenv(
        "CSRF_TRUSTED_ORIGINS", "https://a.example.com/, http://b:8080,https://*.c.io"
    )
    assert env_origins("CSRF_TRUSTED_ORIGINS") == [
        "https://a.example.com",
        "http://b:8080",
        "https://*.c.io",
    ]


@pytest.mark.parametrize(
    "raw", ["gastown.example.com", "https://a.example.com/path", "ftp://a.example.com", "https://"]
)
def test_trusted_origin_that_is_not_an_origin_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("CSRF_TRUSTED_ORIGINS", f"https://ok.example.com,{raw}")
    with pytest.raises(ImproperlyConfiguredEnv, match=f"CSRF_TRUSTED_ORIGINS has '{raw}'"):
        env_origins("CSRF_TRUSTED_ORIGINS")


@pytest.mark.parametrize("raw", ["127.0.0.1:8000", "[::1]:0", "0.0.0.0:80", "unix:/run/g.sock"])
def test_bind_addresses(monkeypatch, raw):
    monkeypatch.setenv("WEB_BIND", raw)
    assert env_bind("WEB_BIND", "127.0.0.1:8000") == raw


@pytest.mark.parametrize(
    "raw", ["8000", "localhost", ":8000", "127.0.0.1:http", "h:70000", "unix:"]
)
def test_malformed_bind_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("WEB_BIND", raw)
    with pytest.raises(ImproperlyConfiguredEnv, match="WEB_BIND"):
        env_bind("WEB_BIND", "127.0.0.1:8000")


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
        ("SECURE_HSTS_SECONDS", "a year"),
        ("SECURE_SSL_REDIRECT", "please"),
        ("SECURE_REFERRER_POLICY", "none"),
        ("CSRF_TRUSTED_ORIGINS", "gastown.example.com"),
        ("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto=https"),
        ("Q_BROKER", "rabbitmq"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("REDIS_URL", "redis://127.0.0.1:6379/zero"),
        ("Q_WORKERS", "0"),
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


def test_hsts_flags_without_a_max_age_stop_start_up(tmp_path):
    result = _start(tmp_path, DEBUG="1", SECURE_HSTS_PRELOAD="1")
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS" in result.stderr.splitlines()[-1]


def _production_env() -> dict[str, str]:
    lines = (REPO / "deploy" / "production.env").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key: value for key, value in pairs}


def _check_deploy(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "from django.core.management import call_command\n"
        "call_command('check', deploy=True, fail_level='WARNING')\n"
    )
    return _start(tmp_path, code, SECRET_KEY="k3y-" + "0123456789abcdef" * 4, **env)


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    result = _check_deploy(tmp_path, _production_env())
    assert result.returncode == 0, result.stderr


def test_check_deploy_warns_when_a_documented_setting_is_left_out(tmp_path):
    env = _production_env()
    del env["SECURE_HSTS_SECONDS"], env["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    del env["SECURE_HSTS_PRELOAD"]
    result = _check_deploy(tmp_path, env)
    assert result.returncode != 0
    assert "security.W004" in result.stderr


def test_a_malformed_redis_url_is_named_but_its_password_is_not_shown(tmp_path):
    result = _start(tmp_path, DEBUG="1", REDIS_URL="redis://:hunter2@127.0.0.1:port/0")
    assert result.returncode != 0
    assert "REDIS_URL is not a Redis URL" in result.stderr
    assert "hunter2" not in result.stderr


def test_q_broker_picks_the_broker_workers_and_tasks_use(tmp_path):
    code = (
        "from django_q.brokers import get_broker\n"
        "b = get_broker()\n"
        "print(type(b).__name__, b.connection.connection_pool.connection_kwargs['db'])\n"
    )
    result = _start(tmp_path, code, DEBUG="1", Q_BROKER="redis", REDIS_URL="redis://h:1/7")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["RedisBroker", "7"]
    result = _start(
        tmp_path,
        "from django_q.brokers import get_broker\nprint(type(get_broker()).__name__)",
        DEBUG="1",
    )
    assert result.stdout.split() == ["OrmBroker"]


PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"


def test_github_app_is_read_with_its_key_on_one_line(monkeypatch):
    monkeypatch.setenv("GITHUB_APP_ID", " 4242 ")
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", PEM.replace("\n", "\\n"))
    assert env_github_app("GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY") == ("4242", PEM)


def test_no_github_app_is_empty(monkeypatch):
    monkeypatch.delenv("GITHUB_APP_ID", raising=False)
    monkeypatch.delenv("GITHUB_APP_PRIVATE_KEY", raising=False)
    assert env_github_app("GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY") == ("", "")


@pytest.mark.parametrize(
    ("app_id", "key", "named"),
    [
        ("4242", "", "GITHUB_APP_PRIVATE_KEY"),
        ("", PEM, "GITHUB_APP_ID"),
        ("my-app", PEM, "GITHUB_APP_ID"),
        ("4242", "not a key", "GITHUB_APP_PRIVATE_KEY"),
    ],
)
def test_malformed_github_app_names_the_variable(monkeypatch, app_id, key, named):
    monkeypatch.setenv("GITHUB_APP_ID", app_id)
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", key)
    with pytest.raises(ImproperlyConfiguredEnv, match=named):
        env_github_app("GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY")
