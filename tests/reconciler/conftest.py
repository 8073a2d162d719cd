import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from gastown.reconciler import reconcile_town


class Clock:
    """Explicit time for the reconciler: ticks get `now`, tests move it."""

    def __init__(self) -> None:
        self.now = timezone.now()

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def tick(clock):
    def run(town, **kwargs):
        town.refresh_from_db()
        return reconcile_town(town, now=clock.now, **kwargs)

    return run


class _Runtime(BaseHTTPRequestHandler):
    """A local agent runtime: records each signed dispatch and answers `status`."""

    status = 202
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def runtime(settings):
    _Runtime.received = []
    _Runtime.status = 202
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Runtime)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.AGENT_RUNTIME_URL = f"http://127.0.0.1:{server.server_port}/dispatch"
    settings.AGENT_RUNTIME_SECRET = "runtime-secret"
    yield _Runtime
    server.shutdown()
