"""Pull request URLs: parse what people paste, build what we link to."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings

from scm.errors import ScmError
from scm.types import PullRequestRef, pr_web_url

__all__ = ["PullRequestRef", "parse_pr_url", "pr_web_url", "ref_problem"]

_NAME = r"[A-Za-z0-9_.-]+"
_NAME_ONLY = re.compile(rf"^{_NAME}$")
_PATH = re.compile(
    rf"^/(?P<owner>{_NAME})/(?P<name>{_NAME})/pull/(?P<number>[0-9]+)"
    r"(?:/(?:files|commits|checks|changes)(?:/[^/]*)?)?/?$"
)


# GitHub's GraphQL `Int` is 32-bit signed (https://spec.graphql.org/October2021/#sec-Int): a
# larger number is rejected for the whole document, i.e. for every PR in its batch.
MAX_PR_NUMBER = 2**31 - 1


def _accepted_hosts() -> set[str]:
    hosts = {"github.com", "www.github.com"}
    web_host = urlsplit(settings.GITHUB_WEB_URL).hostname
    if web_host:
        hosts.add(web_host.lower())
    return hosts


def parse_pr_url(url: object) -> PullRequestRef:
    """Read "https://github.com/owner/name/pull/123" (trailing slash, /files, /commits,
    query and fragment allowed; the host of settings.GITHUB_WEB_URL too, for GitHub
    Enterprise). Raises ScmError(kind="unrecognized_url") saying what is wrong."""
    example = f"{settings.GITHUB_WEB_URL.rstrip('/')}/owner/repo/pull/123"
    if url is not None and not isinstance(url, str):
        raise ScmError(
            "unrecognized_url",
            f"The pull request URL must be text, not {type(url).__name__}; expected {example}.",
        )
    text = (url or "").strip()
    if not text:
        raise ScmError("unrecognized_url", f"The pull request URL is empty; expected {example}.")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError as error:
        raise ScmError(
            "unrecognized_url",
            f"{text!r} is not a valid web address ({error}); expected {example}.",
        ) from None
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
    if {match["owner"], match["name"]} & {".", ".."}:
        raise ScmError(
            "unrecognized_url",
            f"{text!r} names no repository ('.' and '..' are not owner or repository names). "
            f"Expected {example}.",
        )
    number = int(match["number"])
    if not 1 <= number <= MAX_PR_NUMBER:
        raise ScmError(
            "unrecognized_url",
            f"{text!r} has no valid pull request number (1 to {MAX_PR_NUMBER}).",
        )
    return PullRequestRef(f"{match['owner']}/{match['name']}", number)


def ref_problem(ref: PullRequestRef) -> str | None:
    """What makes a ref unaskable (refs also come from stored fields, not only from
    parse_pr_url), or None. GitHub rejects a bad variable for the whole GraphQL document, so
    a bad ref is caught before it joins a batch."""
    parts = ref.repo.split("/") if isinstance(ref.repo, str) else []
    if len(parts) != 2 or not all(_NAME_ONLY.match(p) and p not in {".", ".."} for p in parts):
        return f"{ref.repo!r} is not a repository name like owner/repo."
    if isinstance(ref.number, bool) or not isinstance(ref.number, int):
        return f"{ref.number!r} is not a pull request number."
    if not 1 <= ref.number <= MAX_PR_NUMBER:
        return f"{ref.number} is not a pull request number (1 to {MAX_PR_NUMBER})."
    return None
