"""Which token to use: the town's own, else the GITHUB_TOKEN setting (in that order)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from scm.errors import CredentialError

TOWN_TOKEN = "town token"
ENV_TOKEN = "GITHUB_TOKEN"


@dataclass(frozen=True)
class GitHubCredential:
    """A token and where it came from. The token never shows in repr (nor in str)."""

    token: str = field(repr=False)
    source: str

    def __str__(self) -> str:
        return f"GitHub token from {self.source}"


def resolve_token(town_token: str | None) -> GitHubCredential:
    """The town's token if it has one, else settings.GITHUB_TOKEN; else CredentialError."""
    if town_token and town_token.strip():
        return GitHubCredential(token=town_token.strip(), source=TOWN_TOKEN)
    env_token = getattr(settings, "GITHUB_TOKEN", "") or ""
    if env_token.strip():
        return GitHubCredential(token=env_token.strip(), source=ENV_TOKEN)
    raise CredentialError(
        "no_token",
        "No GitHub token: tried the town's token (not set) and then the GITHUB_TOKEN "
        "environment variable (not set). Set one of them to a token that can read pull "
        "requests and checks (and write contents and pull requests to merge).",
    )
