"""Django settings, read from environment variables (documented in the README)."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from gastown.env import (
    ImproperlyConfiguredEnv,
    env_bool,
    env_choice,
    env_database,
    env_github_app,
    env_int,
    env_list,
    env_origins,
    env_proxy_ssl_header,
    env_redis_url,
    env_str,
    env_url,
)
from gastown.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

try:
    DEBUG = env_bool("DEBUG", default=False)
    SECRET_KEY = env_str("SECRET_KEY")
    # Old keys, newest first: signatures and stored tokens made with them stay valid.
    SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
    DATABASES = {"default": env_database("DATABASE_URL", BASE_DIR / "db.sqlite3")}
    GITHUB_TOKEN = env_str("GITHUB_TOKEN")
    # The deployment's GitHub App, for towns with neither an App nor a token of their own.
    GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY = env_github_app(
        "GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY"
    )
    GITHUB_API_URL = env_url("GITHUB_API_URL", "https://api.github.com")
    GITHUB_WEB_URL = env_url("GITHUB_WEB_URL", "https://github.com")
    GITHUB_WEBHOOK_SECRET = env_str("GITHUB_WEBHOOK_SECRET")
    # A PR that waits on a person (a reviewer, a hold label, a push) is re-read this often
    # as a safety net; a webhook makes it due at once. Without webhooks, every PR is read
    # at its poll interval (0).
    GASTOWN_SAFETY_NET_SECONDS = env_int(
        "GASTOWN_SAFETY_NET_SECONDS", 600 if GITHUB_WEBHOOK_SECRET else 0, minimum=0
    )
    # GraphQL points per hour one GitHub token may spend on PR checks, shared by the towns
    # that use it (GitHub gives 5,000; the rest is kept for merges and other callers).
    GASTOWN_GITHUB_POINTS_PER_HOUR = env_int("GASTOWN_GITHUB_POINTS_PER_HOUR", 4500, minimum=1)
    AGENT_RUNTIME_URL = env_str("AGENT_RUNTIME_URL") and env_url("AGENT_RUNTIME_URL", "")
    AGENT_RUNTIME_SECRET = env_str("AGENT_RUNTIME_SECRET")
    # The built-in simulated agents answer dispatches (the demo turns this on).
    GASTOWN_SIMULATED_AGENTS = env_bool("GASTOWN_SIMULATED_AGENTS", default=False)
    # The demo app (gastown.demo): simulated agents, seed_demo, the fake-GitHub approval.
    GASTOWN_DEMO = env_bool("GASTOWN_DEMO", default=GASTOWN_SIMULATED_AGENTS)
    # Seconds between a tick of an active town and the next one it enqueues.
    GASTOWN_ACTIVE_TICK_SECONDS = env_int("GASTOWN_ACTIVE_TICK_SECONDS", 5, minimum=1)
    # /readyz fails for a town whose last reconciler tick is older than this (3 schedule
    # intervals: one missed visit is not an outage).
    GASTOWN_TICK_STALE_SECONDS = env_int("GASTOWN_TICK_STALE_SECONDS", 180, minimum=60)
    # /metrics is off (404) without it; with it, scrapers send "Authorization: Bearer <it>".
    METRICS_TOKEN = env_str("METRICS_TOKEN")
    LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
    # Escalations are emailed to each town's team leads when a mail server (or another
    # backend) is configured; Django reads the EMAIL_* settings below.
    EMAIL_HOST = env_str("EMAIL_HOST")
    EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
    EMAIL_TIMEOUT = 10
    EMAIL_BACKEND = env_str("EMAIL_BACKEND") or "django.core.mail.backends.smtp.EmailBackend"
    DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "gastown@localhost")
    GASTOWN_NOTIFY_EMAIL = bool(EMAIL_HOST or env_str("EMAIL_BACKEND"))
    # One line per record: logfmt key=value (kv), JSON, or plain text for a terminal.
    LOG_FORMAT = env_choice("LOG_FORMAT", "plain" if DEBUG else "kv", ("json", "kv", "plain"))
    # Off only in tests, which run ticks and checks explicitly.
    GASTOWN_ENQUEUE_TASKS = True
    # django-q2's queue: the database (nothing more to run) or Redis (README, "Deploying").
    Q_BROKER = env_choice("Q_BROKER", "orm", ("orm", "redis"))
    REDIS_URL = env_redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
    # Worker processes of one qcluster. SQLite allows one writer: one worker keeps it from
    # fighting itself.
    Q_WORKERS = env_int(
        "Q_WORKERS", 1 if DATABASES["default"]["ENGINE"].endswith("sqlite3") else 2, minimum=1
    )

    # Behind a TLS-terminating proxy (README, "Deploying"). Django trusts the proxy's header
    # only when told which one: a client could send it too, so the proxy must set or strip it.
    SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER")
    # Origins a POST may come from besides the request's own host; Django compares the
    # Origin header with these when the proxy's host or scheme differs from the app's.
    CSRF_TRUSTED_ORIGINS = env_origins("CSRF_TRUSTED_ORIGINS")
    USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", default=False)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=False)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
    SECURE_REFERRER_POLICY = env_choice(
        "SECURE_REFERRER_POLICY",
        "same-origin",
        (
            "no-referrer",
            "no-referrer-when-downgrade",
            "origin",
            "origin-when-cross-origin",
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin",
        ),
    )
    SECURE_COOKIES = env_bool("SECURE_COOKIES", default=False)
except ImproperlyConfiguredEnv as exc:
    raise ImproperlyConfigured(str(exc)) from None

if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it to a long random string, or set DEBUG=1 for a "
            "development key."
        )
    SECRET_KEY = "django-insecure-development-key-only-for-debug"

if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive: set one.")
if (SECURE_HSTS_INCLUDE_SUBDOMAINS or SECURE_HSTS_PRELOAD) and not SECURE_HSTS_SECONDS:
    raise ImproperlyConfigured(
        "SECURE_HSTS_INCLUDE_SUBDOMAINS and SECURE_HSTS_PRELOAD have no effect without "
        "SECURE_HSTS_SECONDS (for example 31536000, a year)."
    )

if AGENT_RUNTIME_URL and not AGENT_RUNTIME_SECRET:
    raise ImproperlyConfigured(
        "AGENT_RUNTIME_URL is set but AGENT_RUNTIME_SECRET is not: dispatch notifications "
        "must be signed."
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "template_partials",
    "gastown",
    "beads",
    "scm",
]
if GASTOWN_DEMO:
    # First: its ready() adds the fake-GitHub approval before the admin builds its actions.
    INSTALLED_APPS.insert(0, "gastown.demo")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from STATIC_ROOT (collectstatic), before anything that touches the session.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gastown.urls"
WSGI_APPLICATION = "gastown.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # Formatting filters shared by the dashboard and the admin (|when, |duration).
            "libraries": {"gastown": "gastown.dashboard.templatetags.gastown"},
        },
    },
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
# Moments read "2026-12-01 07:31:15 UTC" everywhere, the admin included (gastown/formats).
FORMAT_MODULE_PATH = ["gastown.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where collectstatic writes and WhiteNoise serves from.
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "var" / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names (cached for ever by browsers and proxies) and gzip copies, written by
    # collectstatic; with DEBUG on, {% static %} gives the plain names and needs no manifest.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Load balancers probe over plain HTTP inside the network: with SECURE_SSL_REDIRECT on they
# would get a redirect instead of the answer.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
if not DEBUG:
    SESSION_COOKIE_SECURE = SECURE_COOKIES
    CSRF_COOKIE_SECURE = SECURE_COOKIES

_BROKERS: dict[str, dict[str, str]] = {
    "orm": {"orm": "default", "broker_class": "gastown.broker.OrmBroker"},
    "redis": {"redis": REDIS_URL, "broker_class": "gastown.broker.RedisBroker"},
}

Q_CLUSTER = {
    "name": "gastown",
    **_BROKERS[Q_BROKER],
    "workers": Q_WORKERS,
    "timeout": 120,
    # With the ORM broker, retry must exceed the longest task or a task runs twice.
    "retry": 300,
    "catch_up": False,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": 500,
    "poll": 1,
    "label": "Tasks",
}

LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)

TESTING = "pytest" in sys.modules
