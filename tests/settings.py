"""Settings for the test suite: the production settings with a throwaway key.

Production refuses to start without SECRET_KEY unless DEBUG is on; the suite runs with DEBUG
off (as production does), so it supplies its own key before the settings are read.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")

from gastown.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Ticks and checks run explicitly in tests; a test that checks enqueueing turns this on.
GASTOWN_ENQUEUE_TASKS = False
# The suite covers the demo too (simulated agents, seed_demo, the fake-GitHub approval).
if "gastown.demo" not in INSTALLED_APPS:  # noqa: F405
    INSTALLED_APPS = ["gastown.demo", *INSTALLED_APPS]  # noqa: F405
# The suite renders templates without running collectstatic, so the manifest of hashed names
# does not exist here; the plain storage serves the same files under their own names. The
# production storage (hashed, compressed) is proven by tests/test_production.py, which runs
# collectstatic and gunicorn with gastown.settings.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# No collected files either: WhiteNoise serves the source folders, as with DEBUG on.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
