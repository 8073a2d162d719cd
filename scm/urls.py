"""Pull request URLs: parse what people paste, build what we link to."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings

from scm.errors import ScmError
from scm.types import PullRequestRef, pr_web_url

__all__ = ["PullRequestRef", "parse_pr_url", "pr_web_url"]

_NAME = r"[A-Za-z0-9_.-]+"
_PATH = re.compile(
    rf"^/(?P<owner>{_NAME})/(?P<name>{_NAME})/pull/(?P<number>[0-9]+)"
    r"(?:/(?:files|commits|checks|changes)(?:/[^/]*)?)?/?$"
)


def _accepted_hosts() -> set[str]:
    hosts = {"github.com", "www.github.com"}
    web_host = urlsplit(settings.GITHUB_WEB_URL).hostname
    if web_host:
        hosts.add(web_host.lower())
    return hosts


def parse_pr_url(url: str) -> PullRequestRef:
    """Read "https://github.com/owner/name/pull/123" (trailing slash, /files, /commits,
    query and fragment allowed; the host of settings.GITHUB_WEB_URL too, for GitHub
    Enterprise). Raises ScmError(kind="unrecognized_url") saying what is wrong."""
    example = f"{settings.GITHUB_WEB_URL.rstrip('/')}/owner/repo/pull/123"
    text = (url or "").strip()
    if not text:
        raise ScmError("unrecognized_url", f"The pull request URL is empty; expected {example}.")
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ScmError(
            "unrecognized_url",
            f"{text!r} is not a web address; expected a pull request URL like {example}.",
        )
    hosts = _accepted_hosts()
    if parts.hostname.lower() not in hosts:
        raise ScmError(
            "unrecognized_url",
            f"{text!r} is not on GitHub (host {parts.hostname!r}; accepted: "
            f"{', '.join(sorted(hosts))}); expected a pull request URL like {example}.",
        )
    match = _PATH.match(parts.path)
    if not match:
        hint = ""
        if "/issues/" in parts.path:
            hint = " It points at an issue, not a pull request."
        elif "/pull/" not in parts.path:
            hint = " It has no /pull/<number> part."
        raise ScmError(
            "unrecognized_url",
            f"{text!r} is not a pull request URL.{hint} Expected {example}.",
        )
    number = int(match["number"])
    if number < 1:
        raise ScmError("unrecognized_url", f"{text!r} has no valid pull request number.")
    return PullRequestRef(f"{match['owner']}/{match['name']}", number)
