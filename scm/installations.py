"""A GitHub App's installations and their tokens, shared by every client in the process.

https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app-installation

- The App signs a JWT (RS256, ten minutes at most) with its private key; with it, it asks which
  installation covers a repository (GET /repos/{owner}/{repo}/installation, one per owner) and
  for that installation's token (POST /app/installations/{id}/access_tokens).
- An installation token lasts an hour (its `expires_at`); it is reused until REFRESH_BEFORE
  that, then a new one is asked for, so no request goes out with a token about to expire.
- Each installation has its own rate limit; the client tracks them apart.
- An App not installed on an owner, a suspended or deleted installation, or a token GitHub no
  longer accepts are CredentialErrors, like a bad personal token.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from github import Auth, GithubException, GithubIntegration

from scm.credentials import GitHubAppCredential
from scm.errors import CredentialError, ScmError
from scm.github_errors import translate

REFRESH_BEFORE = timedelta(minutes=5)


@dataclass(frozen=True)
class InstallationToken:
    installation_id: int
    owner: str
    token: str = field(repr=False)
    expires_at: datetime

    @property
    def source(self) -> str:
        return f"GitHub App installation {self.installation_id} on {self.owner}"


class AppInstallations:
    def __init__(
        self,
        credential: GitHubAppCredential,
        api_url: str,
        *,
        timeout: float = 10,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.credential = credential
        self.api_url = api_url.rstrip("/")
        self.clock = clock
        self._integration = GithubIntegration(
            auth=Auth.AppAuth(credential.app_id, credential.private_key),
            base_url=self.api_url,
            timeout=max(1, round(timeout)),
            retry=None,
            lazy=True,
            # PyGithub's defaults would wait between calls (and a second before a POST); the
            # client's reasons for turning that off hold here too (scm/client.py).
            seconds_between_requests=0,
            seconds_between_writes=0,
        )
        self._lock = threading.Lock()
        self._installations: dict[str, int] = {}  # owner (lower case) -> installation id
        self._tokens: dict[int, InstallationToken] = {}
        self.tokens_issued = 0

    def token_for(self, repo: str) -> InstallationToken:
        """A live token of the installation covering `repo` ("owner/name")."""
        owner, name = repo.split("/", 1)
        with self._lock:
            installation_id = self._installations.get(owner.lower())
            if installation_id is None:
                installation_id = self._find(owner, name)
                self._installations[owner.lower()] = installation_id
            token = self._tokens.get(installation_id)
            if token is None or token.expires_at - REFRESH_BEFORE <= self.clock():
                token = self._issue(installation_id, owner)
                self._tokens[installation_id] = token
            return token

    def forget(self, installation_id: int) -> None:
        """GitHub refused this installation's token: ask again next time (where it is, and a
        new token), so a reinstalled App recovers by itself."""
        with self._lock:
            self._tokens.pop(installation_id, None)
            for owner, known in list(self._installations.items()):
                if known == installation_id:
                    del self._installations[owner]

    def _find(self, owner: str, name: str) -> int:
        try:
            installation = self._integration.get_repo_installation(owner, name)
        except GithubException as error:
            if error.status == 404:
                raise CredentialError(
                    "forbidden",
                    f"The {self.credential} is not installed on {owner} (or not on {owner}/"
                    f"{name}): install it there with read access to pull requests and checks.",
                    source=self.credential.source,
                    permission="installation",
                ) from None
            raise self._translate(error) from None
        return int(installation.id)

    def _issue(self, installation_id: int, owner: str) -> InstallationToken:
        try:
            authorization = self._integration.get_access_token(installation_id)
        except GithubException as error:
            if error.status in {403, 404}:
                # Suspended (403) or deleted (404): the installation is gone, not one PR.
                raise CredentialError(
                    "unauthorized",
                    f"GitHub refused a token for installation {installation_id} of the "
                    f"{self.credential} on {owner} ({error.status}): the installation is "
                    "suspended or was removed.",
                    source=self.credential.source,
                ) from None
            raise self._translate(error) from None
        except Exception as error:
            raise translate(error, source=self.credential.source) from None
        self.tokens_issued += 1
        expires_at = authorization.expires_at
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        return InstallationToken(installation_id, owner, authorization.token, expires_at)

    def _translate(self, error: GithubException) -> ScmError:
        return translate(error, source=str(self.credential))


_shared: dict[tuple[str, str, str], AppInstallations] = {}
_shared_lock = threading.Lock()


def shared_installations(credential: GitHubAppCredential, api_url: str) -> AppInstallations:
    """One cache per App, key and API URL for the whole process: every client of a town (and
    every town sharing the deployment's App) reuses its tokens."""
    digest = hashlib.sha256(credential.private_key.encode()).hexdigest()
    key = (api_url.rstrip("/"), credential.app_id, digest)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = AppInstallations(credential, api_url)
        return _shared[key]
