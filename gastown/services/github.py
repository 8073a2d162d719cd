"""The town's GitHub client: which credential a town's calls use (docs/domain.md §2, §4).

Shared by the reconciler's side effects, the feedback check and the demo; only scm/ talks to
GitHub itself.
"""

from __future__ import annotations

from django.conf import settings

from gastown.models import Town
from gastown.secrets import SecretUnreadable
from scm.client import GitHubClient
from scm.credentials import TOWN_APP, TOWN_TOKEN, Credential, resolve_credential
from scm.errors import CredentialError


def town_token(town: Town) -> str | None:
    """The town's own token. One that cannot be decrypted (SECRET_KEY changed) is a credential
    problem of the town (domain.md §4), never a silent fall back to GITHUB_TOKEN: a team lead gave
    this town its own token for a reason."""
    try:
        return town.github_token()
    except SecretUnreadable as error:
        raise CredentialError("token_unreadable", str(error), source=TOWN_TOKEN) from None


def town_credential(town: Town) -> Credential:
    """The town's GitHub App, else its token, else the deployment's App, else GITHUB_TOKEN
    (scm.credentials.resolve_credential). A stored App key that cannot be decrypted is the
    town's credential problem, like its token's."""
    try:
        private_key = town.github_app_private_key()
    except SecretUnreadable as error:
        raise CredentialError("token_unreadable", str(error), source=TOWN_APP) from None
    return resolve_credential(
        town_token=town_token(town),
        town_app_id=town.github_app_id,
        town_app_private_key=private_key,
    )


def github_client_for(town: Town) -> GitHubClient:
    """Raises scm.errors.CredentialError when no credential is usable (none configured, a
    half-configured App, a stored secret that no longer decrypts)."""
    return GitHubClient(town_credential(town), api_url=settings.GITHUB_API_URL)
