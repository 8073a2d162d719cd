"""Which credential to use: the town's own (a GitHub App, else a token), else the
deployment's (GITHUB_APP_ID with GITHUB_APP_PRIVATE_KEY, else GITHUB_TOKEN), in that order."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from scm.errors import CredentialError

TOWN_TOKEN = "town token"
ENV_TOKEN = "GITHUB_TOKEN"
TOWN_APP = "town GitHub App"
ENV_APP = "GITHUB_APP_ID"


@dataclass(frozen=True)
class GitHubCredential:
    """A token and where it came from. The token never shows in repr (nor in str)."""

    token: str = field(repr=False)
    source: str

    def __str__(self) -> str:
        return f"GitHub token from {self.source}"


@dataclass(frozen=True)
class GitHubAppCredential:
    """A GitHub App: its id and private key (PEM, never in repr or str). The client finds
    the App's installation for each repository owner and uses its installation tokens
    (scm.installations)."""

    app_id: str
    private_key: str = field(repr=False)
    source: str

    def __str__(self) -> str:
        return f"GitHub App {self.app_id} from {self.source}"


Credential = GitHubCredential | GitHubAppCredential


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


def _app(
    app_id: str | int | None, private_key: str | None, source: str
) -> GitHubAppCredential | None:
    app_id = str(app_id or "").strip()
    private_key = (private_key or "").strip()
    if not app_id and not private_key:
        return None
    if not app_id or not private_key:
        missing = "private key" if app_id else "app id"
        raise CredentialError(
            "no_token",
            f"The {source} is half configured: its {missing} is not set. Set both the app id "
            "and the private key (PEM), or neither.",
            source=source,
        )
    if not app_id.isdigit() or "PRIVATE KEY" not in private_key:
        raise CredentialError(
            "no_token",
            f"The {source} is not usable: the app id must be a number and the private key a "
            "PEM block (-----BEGIN RSA PRIVATE KEY----- ...).",
            source=source,
        )
    return GitHubAppCredential(app_id=app_id, private_key=private_key + "\n", source=source)


def resolve_credential(
    *,
    town_token: str | None = None,
    town_app_id: str | int | None = None,
    town_app_private_key: str | None = None,
) -> Credential:
    """The town's App, the town's token, the deployment's App (settings.GITHUB_APP_ID and
    GITHUB_APP_PRIVATE_KEY), the deployment's token (GITHUB_TOKEN): the first one set."""
    town_app = _app(town_app_id, town_app_private_key, TOWN_APP)
    if town_app is not None:
        return town_app
    if town_token and town_token.strip():
        return resolve_token(town_token)
    env_app = _app(
        getattr(settings, "GITHUB_APP_ID", ""),
        getattr(settings, "GITHUB_APP_PRIVATE_KEY", ""),
        ENV_APP,
    )
    if env_app is not None:
        return env_app
    return resolve_token(None)
