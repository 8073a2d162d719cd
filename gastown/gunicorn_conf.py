"""gunicorn's settings for gastown's web processes, read from the environment (README,
"Deploying"): `gunicorn -c python:gastown.gunicorn_conf gastown.wsgi`, as scripts/serve runs it.

gunicorn's own FORWARDED_ALLOW_IPS (default 127.0.0.1,::1) says which proxies it believes
about the scheme; Django's SECURE_PROXY_SSL_HEADER says the same to Django.
"""

from __future__ import annotations

import sys

from gastown.env import ImproperlyConfiguredEnv, env_bind, env_int

try:
    bind = [env_bind("WEB_BIND", "127.0.0.1:8000")]
    # Processes, and threads in each: requests wait on the database and GitHub, not the CPU.
    workers = env_int("WEB_WORKERS", 2, minimum=1)
    threads = env_int("WEB_THREADS", 4, minimum=1)
    # A request running longer than this is killed with its worker (then restarted).
    timeout = env_int("WEB_TIMEOUT", 30, minimum=1)
except ImproperlyConfiguredEnv as exc:
    sys.exit(f"gunicorn: {exc}")

# On SIGTERM (scripts/serve's stop, a service manager) requests in flight get this long, then
# the workers are ended: inside the 10 s in which scripts/serve stops everything.
graceful_timeout = 5
# One line per request on stdout, for whatever collects the process's output.
accesslog = "-"
