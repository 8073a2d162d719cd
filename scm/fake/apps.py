"""GitHub Apps in the fake: registered apps (id and public key), their installations per
owner, the JWTs they sign and the installation tokens they get.

https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app
https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app

An installation token lasts `token_ttl` (an hour, as on GitHub); an expired one, one of a
suspended installation or one revoked is refused with 401 Bad credentials. Each installation
has its own rate-limit budget (scm/fake/server.py keys budgets by principal).
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from scm.fake.rest import DOCS, Reply

BAD_CREDENTIALS = "Bad credentials"
JWT_UNDECODABLE = "A JSON web token could not be decoded"
JWT_EXPIRED = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time at "
    "which the assertion expires"
)
APP_DOCS = "https://docs.github.com/rest/apps/apps"


@dataclass
class FakeApp:
    app_id: int
    public_key: str
    slug: str


@dataclass
class FakeInstallation:
    id: int
    app_id: int
    owner: str
    suspended: bool = False


@dataclass
class FakeInstallationToken:
    token: str
    installation_id: int
    expires_at: datetime
    revoked: bool = False


@dataclass
class Principal:
    """Who a request is from: "user" (a personal token), an installation, or an app (JWT)."""

    key: str
    installation_id: int | None = None
    app: FakeApp | None = None


USER = Principal("user")

_APP_PATHS = re.compile(
    r"^/(app(/.*)?|repos/[^/]+/[^/]+/installation|orgs/[^/]+/installation|users/[^/]+/installation)$"
)


def _refuse(status: int, message: str) -> Reply:
    return Reply(status, {"message": message, "documentation_url": APP_DOCS, "status": str(status)})


@dataclass
class FakeApps:
    apps: dict[int, FakeApp] = field(default_factory=dict)
    installations: dict[int, FakeInstallation] = field(default_factory=dict)
    tokens: dict[str, FakeInstallationToken] = field(default_factory=dict)
    token_ttl: timedelta = timedelta(hours=1)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _ids: Any = field(default_factory=lambda: itertools.count(40000))

    def reset(self) -> None:
        self.apps.clear()
        self.installations.clear()
        self.tokens.clear()
        self.token_ttl = timedelta(hours=1)
        self.clock = lambda: datetime.now(UTC)

    # --- set-up (the control API) -------------------------------------------------------

    def register(self, app_id: int, public_key: str, slug: str = "gastown") -> FakeApp:
        app = FakeApp(int(app_id), public_key, slug)
        self.apps[app.app_id] = app
        return app

    def install(self, app_id: int, owner: str) -> int:
        installation = FakeInstallation(next(self._ids), int(app_id), owner)
        self.installations[installation.id] = installation
        return installation.id

    def revoke_tokens(self, installation_id: int) -> None:
        for token in self.tokens.values():
            if token.installation_id == installation_id:
                token.revoked = True

    # --- authentication -----------------------------------------------------------------

    def authenticate(self, scheme: str, token: str, path: str) -> Principal | Reply:
        """The principal of an app JWT or installation token, or GitHub's 401."""
        if token.count(".") == 2 and scheme.lower() == "bearer":
            return self._app_jwt(token, path)
        if token.startswith("ghs_"):
            issued = self.tokens.get(token)
            installation = self.installations.get(issued.installation_id) if issued else None
            if (
                issued is None
                or installation is None
                or issued.revoked
                or installation.suspended
                or issued.expires_at <= self.clock()
            ):
                return _refuse(401, BAD_CREDENTIALS)
            if _APP_PATHS.match(path):
                return _refuse(401, JWT_UNDECODABLE)
            return Principal(f"installation:{installation.id}", installation_id=installation.id)
        return USER

    def _app_jwt(self, token: str, path: str) -> Principal | Reply:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            app = self.apps.get(int(str(claims.get("iss"))))
        except (jwt.PyJWTError, TypeError, ValueError):
            return _refuse(401, JWT_UNDECODABLE)
        if app is None:
            return _refuse(401, JWT_UNDECODABLE)
        try:
            # GitHub allows a little clock drift on iat; exp must be in the future.
            jwt.decode(token, app.public_key, algorithms=["RS256"], leeway=0)
        except jwt.ExpiredSignatureError:
            return _refuse(401, JWT_EXPIRED)
        except jwt.PyJWTError:
            return _refuse(401, JWT_UNDECODABLE)
        if not _APP_PATHS.match(path):
            return _refuse(401, BAD_CREDENTIALS)  # an app acts on repositories as an installation
        return Principal(f"app:{app.app_id}", app=app)

    # --- the App endpoints --------------------------------------------------------------

    def dispatch(self, method: str, path: str, principal: Principal, api_url: str) -> Reply | None:
        app = principal.app
        owner_match = re.fullmatch(
            r"/(?:repos/(?P<repo_owner>[^/]+)/[^/]+|orgs/(?P<org>[^/]+)|users/(?P<user>[^/]+))"
            r"/installation",
            path,
        )
        token_match = re.fullmatch(r"/app/installations/(?P<id>[0-9]+)/access_tokens", path)
        if owner_match is None and token_match is None:
            return None
        if app is None:
            return _refuse(401, JWT_UNDECODABLE)
        if owner_match and method == "GET":
            owner = next(v for v in owner_match.groupdict().values() if v)
            for installation in self.installations.values():
                if (
                    installation.app_id == app.app_id
                    and installation.owner.lower() == owner.lower()
                ):
                    return Reply(200, self._installation_json(installation, app, api_url))
            return Reply(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})
        if token_match and method == "POST":
            target = self.installations.get(int(token_match["id"]))
            if target is None or target.app_id != app.app_id:
                return Reply(
                    404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}
                )
            if target.suspended:
                return _refuse(403, "This installation has been suspended")
            issued = FakeInstallationToken(
                token=f"ghs_{secrets.token_hex(18)}",
                installation_id=target.id,
                expires_at=self.clock().replace(microsecond=0) + self.token_ttl,
            )
            self.tokens[issued.token] = issued
            return Reply(
                201,
                {
                    "token": issued.token,
                    "expires_at": issued.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "permissions": {
                        "pull_requests": "write",
                        "checks": "read",
                        "contents": "write",
                    },
                    "repository_selection": "all",
                },
            )
        return None

    def _installation_json(
        self, installation: FakeInstallation, app: FakeApp, api_url: str
    ) -> dict[str, Any]:
        return {
            "id": installation.id,
            "app_id": app.app_id,
            "app_slug": app.slug,
            "target_type": "Organization",
            "account": {"login": installation.owner, "id": 1, "type": "Organization"},
            "access_tokens_url": f"{api_url}/app/installations/{installation.id}/access_tokens",
            "repositories_url": f"{api_url}/installation/repositories",
            "html_url": f"https://github.com/organizations/{installation.owner}/settings/installations/{installation.id}",
            "permissions": {"pull_requests": "write", "checks": "read", "contents": "write"},
            "events": ["pull_request", "merge_group"],
            "repository_selection": "all",
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
            "suspended_at": None,
        }
