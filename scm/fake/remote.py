"""Talking to a running fake GitHub from another process (the demo's simulated agents, the
human-reviewer command and the dashboard's demo-only approve button)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from scm.errors import ScmError

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def fake_root_url() -> str | None:
    """The fake GitHub's root when GITHUB_API_URL points at this machine (the demo)."""
    url = settings.GITHUB_API_URL or ""
    return url.rstrip("/") if (urlsplit(url).hostname or "") in LOOPBACK_HOSTS else None


def fake_control(
    path: str,
    payload: dict[str, Any] | None = None,
    *,
    root: str | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """POST to the fake's /_fake/ control API; raises ScmError(kind="transient") on failure."""
    root = root or fake_root_url()
    if root is None:
        raise ScmError("unrecognized_url", "GITHUB_API_URL does not point at a local fake GitHub.")
    request = urllib.request.Request(
        f"{root.rstrip('/')}/_fake/{path.lstrip('/')}",
        data=json.dumps(payload or {}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read() or b"{}")
    except (OSError, ValueError) as error:
        raise ScmError("transient", f"The fake GitHub at {root} refused: {error}") from None
    return answer if isinstance(answer, dict) else {}
