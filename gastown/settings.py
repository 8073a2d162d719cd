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
    env_int,
    env_list,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

try:
    DEBUG = env_bool("DEBUG", default=False)
    SECRET_KEY = env_str("SECRET_KEY")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
    DATABASES = {"default": env_database("DATABASE_URL", BASE_DIR / "db.sqlite3")}
    GITHUB_TOKEN = env_str("GITHUB_TOKEN")
    GITHUB_API_URL = env_url("GITHUB_API_URL", "https://api.github.com")
    GITHUB_WEB_URL = env_url("GITHUB_WEB_URL", "https://github.com")
    GITHUB_WEBHOOK_SECRET = env_str("GITHUB_WEBHOOK_SECRET")
    AGENT_RUNTIME_URL = env_str("AGENT_RUNTIME_URL") and env_url("AGENT_RUNTIME_URL", "")
    AGENT_RUNTIME_SECRET = env_str("AGENT_RUNTIME_SECRET")
    # The built-in simulated agents answer dispatches (the demo turns this on).
    GASTOWN_SIMULATED_AGENTS = env_bool("GASTOWN_SIMULATED_AGENTS", default=False)
    # The demo app (gastown.demo): simulated agents, seed_demo, the fake-GitHub approval.
    GASTOWN_DEMO = env_bool("GASTOWN_DEMO", default=GASTOWN_SIMULATED_AGENTS)
    # Seconds between a tick of an active town and the next one it enqueues.
    GASTOWN_ACTIVE_TICK_SECONDS = env_int("GASTOWN_ACTIVE_TICK_SECONDS", 5, minimum=1)
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
    # Off only in tests, which run ticks and checks explicitly.
    GASTOWN_ENQUEUE_TASKS = True
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
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=False)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

_IS_SQLITE = DATABASES["default"]["ENGINE"].endswith("sqlite3")

Q_CLUSTER = {
    "name": "gastown",
    "orm": "default",
    # SQLite allows one writer: one worker process keeps it from fighting itself.
    "workers": 1 if _IS_SQLITE else 2,
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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django_q": {"level": "WARNING"}},
}

TESTING = "pytest" in sys.modules
