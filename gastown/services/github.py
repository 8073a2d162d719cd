"""The town's GitHub client: which credential a town's calls use (docs/domain.md §2, §4).

Shared by the reconciler's side effects, the feedback check and the demo; only scm/ talks to
GitHub itself.
"""

from __future__ import annotations

from django.conf import settings

from gastown.models import Town
from gastown.secrets import SecretUnreadable
from scm.client import GitHubClient
from scm.credentials import TOWN_TOKEN, resolve_token
from scm.errors import CredentialError


def town_token(town: Town) -> str | None:
    """The town's own token. One that cannot be decrypted (SECRET_KEY changed) is a credential
    problem of the town (domain.md §4), never a silent fall back to GITHUB_TOKEN: a team lead gave
    this town its own token for a reason."""
    try:
        return town.github_token()
    except SecretUnreadable as error:
        raise CredentialError("token_unreadable", str(error), source=TOWN_TOKEN) from None


def github_client_for(town: Town) -> GitHubClient:
    """Raises scm.errors.CredentialError when neither the town nor GITHUB_TOKEN has a usable
    token."""
    return GitHubClient(resolve_token(town_token(town)), api_url=settings.GITHUB_API_URL)
