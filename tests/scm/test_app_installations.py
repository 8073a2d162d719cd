"""Authenticating as a GitHub App: installation per owner, installation tokens cached and
refreshed before they expire, rate limits per installation, and every failure a
CredentialError like a bad token's. The RSA key is made at test time."""

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from scm.client import GitHubClient
from scm.credentials import ENV_APP, TOWN_APP, GitHubAppCredential, resolve_credential
from scm.errors import CredentialError
from scm.fake.apps import JWT_EXPIRED
from scm.fake.server import RATE_LIMIT
from scm.installations import AppInstallations
from scm.types import PullRequestRef

APP_ID = 4242


def _key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="module")
def key_pair():
    return _key_pair()


@pytest.fixture
def app(fake_github, key_pair):
    private, public = key_pair
    fake_github.register_app(APP_ID, public)
    return GitHubAppCredential(app_id=str(APP_ID), private_key=private, source=TOWN_APP)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _client(fake, credential, clock=None):
    installations = AppInstallations(credential, fake.url, timeout=5, clock=clock or Clock())
    return GitHubClient(credential, api_url=fake.url, timeout=5, installations=installations)


def _prs(fake, repo, count=2):
    fake.create_repo(repo)
    return [PullRequestRef(repo, fake.create_pr(repo).number) for _ in range(count)]


def test_app_reads_prs_with_its_installation_token(fake_github, app):
    installation = fake_github.install_app(APP_ID, "octo")
    refs = _prs(fake_github, "octo/app")
    client = _client(fake_github, app)

    results = client.fetch_snapshots(refs)

    assert all(r.ok for r in results.values())
    principals = [(r.method, r.path, r.principal) for r in fake_github.requests]
    assert principals == [
        ("GET", "/repos/octo/app/installation", f"app:{APP_ID}"),
        ("POST", f"/app/installations/{installation}/access_tokens", f"app:{APP_ID}"),
        ("POST", "/graphql", f"installation:{installation}"),
    ]


def test_installation_token_is_reused_until_shortly_before_it_expires(fake_github, app):
    fake_github.install_app(APP_ID, "octo")
    refs = _prs(fake_github, "octo/app")
    clock = Clock()
    client = _client(fake_github, app, clock)
    client.fetch_snapshots(refs)
    clock.now += timedelta(minutes=50)
    client.fetch_snapshots(refs)
    assert client.installations.tokens_issued == 1

    clock.now += timedelta(minutes=6)  # 4 minutes before the hour: refreshed first
    client.fetch_snapshots(refs)
    assert client.installations.tokens_issued == 2
    assert len([r for r in fake_github.requests if r.path.endswith("/installation")]) == 1


def test_each_owner_gets_its_installation_and_its_own_rate_limit(fake_github, app):
    octo = fake_github.install_app(APP_ID, "octo")
    acme = fake_github.install_app(APP_ID, "Acme")
    refs = _prs(fake_github, "octo/app") + _prs(fake_github, "acme/web")
    client = _client(fake_github, app)

    results = client.fetch_snapshots(refs)

    assert all(r.ok for r in results.values())
    graphql = fake_github.graphql_requests()
    assert sorted(r.principal for r in graphql) == sorted(
        [f"installation:{octo}", f"installation:{acme}"]
    )
    assert fake_github.installation_budget(octo)["graphql"] < RATE_LIMIT
    assert fake_github.installation_budget(acme)["graphql"] < RATE_LIMIT
    assert fake_github.graphql_remaining == RATE_LIMIT  # no personal token was used
    assert {octo, acme} <= set(client.rate_limits)
    assert client.rate_limits[octo].budget("graphql").remaining is not None


def test_spent_budget_of_one_installation_does_not_stop_another(fake_github, app):
    octo = fake_github.install_app(APP_ID, "octo")
    fake_github.install_app(APP_ID, "acme")
    octo_refs, acme_refs = _prs(fake_github, "octo/app"), _prs(fake_github, "acme/web")
    client = _client(fake_github, app)
    client.fetch_snapshots(octo_refs)
    fake_github.installation_budget(octo)["graphql"] = 1
    client.fetch_snapshots(octo_refs)  # spends octo's last point

    with pytest.raises(CredentialError) as caught:
        client.fetch_snapshots(octo_refs)
    assert caught.value.kind == "rate_limited"
    assert f"installation {octo} on octo" in caught.value.message
    assert all(r.ok for r in client.fetch_snapshots(acme_refs).values())


def test_app_merges_through_the_installation(fake_github, app):
    installation = fake_github.install_app(APP_ID, "octo")
    (ref,) = _prs(fake_github, "octo/app", count=1)
    pull = fake_github.pull("octo/app", ref.number)
    outcome = _client(fake_github, app).merge(ref, head_sha=pull.head_sha, methods=["squash"])
    assert outcome.merged
    (merge,) = fake_github.merge_calls("octo/app", ref.number)
    assert merge.principal == f"installation:{installation}"


def test_app_not_installed_on_the_owner_is_a_credential_error(fake_github, app):
    refs = _prs(fake_github, "octo/app")
    with pytest.raises(CredentialError) as caught:
        _client(fake_github, app).fetch_snapshots(refs)
    assert caught.value.kind == "forbidden"
    assert "not installed on octo" in caught.value.message
    assert caught.value.source == TOWN_APP


def test_revoked_token_is_unauthorized_once_then_a_new_one_is_asked_for(fake_github, app):
    installation = fake_github.install_app(APP_ID, "octo")
    refs = _prs(fake_github, "octo/app")
    client = _client(fake_github, app)
    client.fetch_snapshots(refs)
    fake_github.revoke_installation_tokens(installation)

    with pytest.raises(CredentialError) as caught:
        client.fetch_snapshots(refs)
    assert caught.value.kind == "unauthorized"
    assert "Bad credentials" in caught.value.message
    assert f"installation {installation} on octo" in caught.value.message

    assert all(r.ok for r in client.fetch_snapshots(refs).values())
    assert client.installations.tokens_issued == 2


def test_token_expired_at_github_is_unauthorized_once_then_replaced(fake_github, app):
    fake_github.install_app(APP_ID, "octo")
    refs = _prs(fake_github, "octo/app")
    client = _client(fake_github, app)
    client.fetch_snapshots(refs)
    # GitHub's clock two hours on: the token we hold expired there, not by our clock.
    fake_github.apps.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    with pytest.raises(CredentialError) as caught:
        client.fetch_snapshots(refs)
    assert caught.value.kind == "unauthorized"
    assert all(r.ok for r in client.fetch_snapshots(refs).values())
    assert client.installations.tokens_issued == 2


def test_suspended_installation_is_unauthorized(fake_github, app):
    installation = fake_github.install_app(APP_ID, "octo")
    refs = _prs(fake_github, "octo/app")
    fake_github.suspend_installation(installation)
    with pytest.raises(CredentialError) as caught:
        _client(fake_github, app).fetch_snapshots(refs)
    assert caught.value.kind == "unauthorized"
    assert "suspended or was removed" in caught.value.message


def test_jwt_signed_with_another_key_is_unauthorized(fake_github, app):
    fake_github.install_app(APP_ID, "octo")
    refs = _prs(fake_github, "octo/app")
    other_private, _ = _key_pair()
    impostor = GitHubAppCredential(app_id=str(APP_ID), private_key=other_private, source=TOWN_APP)
    with pytest.raises(CredentialError) as caught:
        _client(fake_github, impostor).fetch_snapshots(refs)
    assert caught.value.kind == "unauthorized"
    assert "A JSON web token could not be decoded" in caught.value.message


def test_fake_refuses_an_expired_jwt_with_githubs_message(fake_github, app):
    fake_github.install_app(APP_ID, "octo")
    fake_github.create_repo("octo/app")
    now = int(time.time())
    token = jwt.encode(
        {"iat": now - 700, "exp": now - 60, "iss": str(APP_ID)}, app.private_key, "RS256"
    )
    request = urllib.request.Request(
        f"{fake_github.url}/repos/octo/app/installation",
        headers={"Authorization": f"Bearer {token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["message"] == JWT_EXPIRED


def test_installation_token_cannot_act_as_the_app_nor_a_jwt_on_repositories(fake_github, app):
    fake_github.install_app(APP_ID, "octo")
    fake_github.create_repo("octo/app")
    now = int(time.time())
    token = jwt.encode(
        {"iat": now - 60, "exp": now + 500, "iss": str(APP_ID)}, app.private_key, "RS256"
    )
    request = urllib.request.Request(
        f"{fake_github.url}/repos/octo/app", headers={"Authorization": f"Bearer {token}"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 401


def test_private_key_never_shows(app):
    assert "PRIVATE KEY" not in repr(app) and "PRIVATE KEY" not in str(app)
    client = GitHubClient(app, api_url="http://127.0.0.1:9", installations=None)
    assert "PRIVATE KEY" not in repr(client)


def test_credential_order_town_app_then_town_token_then_deployment(settings, key_pair):
    private, _ = key_pair
    settings.GITHUB_TOKEN = "env-token"
    settings.GITHUB_APP_ID = ""
    settings.GITHUB_APP_PRIVATE_KEY = ""
    both = resolve_credential(town_token="t", town_app_id="7", town_app_private_key=private)
    assert isinstance(both, GitHubAppCredential) and both.source == TOWN_APP
    assert resolve_credential(town_token="t").source == "town token"
    assert resolve_credential().source == "GITHUB_TOKEN"
    settings.GITHUB_APP_ID = "9"
    settings.GITHUB_APP_PRIVATE_KEY = private
    env_app = resolve_credential()
    assert isinstance(env_app, GitHubAppCredential)
    assert (env_app.app_id, env_app.source) == ("9", ENV_APP)


@pytest.mark.parametrize(
    ("app_id", "key", "says"),
    [
        ("7", "", "private key is not set"),
        ("", "-----BEGIN RSA PRIVATE KEY-----", "app id is not set"),
        ("seven", "-----BEGIN RSA PRIVATE KEY-----", "must be a number"),
    ],
)
def test_half_configured_app_is_a_credential_error(settings, app_id, key, says):
    settings.GITHUB_TOKEN = "env-token"
    with pytest.raises(CredentialError) as caught:
        resolve_credential(town_app_id=app_id, town_app_private_key=key)
    assert caught.value.kind == "no_token"
    assert says in caught.value.message
