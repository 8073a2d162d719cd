"""GitHub Enterprise Server: REST under https://HOST/api/v3, GraphQL at /api/graphql
(https://docs.github.com/en/enterprise-server@latest/rest/quickstart). The fake answers
under those prefixes too, so a whole check and merge runs as against a GHES host."""

import pytest

from scm.blocker import Blocker, derive_blocker
from scm.client import GitHubClient
from scm.credentials import resolve_token
from scm.types import PullRequestRef

REPO = "corp/app"


@pytest.mark.parametrize(
    ("api_url", "graphql_url"),
    [
        ("https://api.github.com", "https://api.github.com/graphql"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com/api/graphql"),
        ("https://ghe.example.com/api/v3/", "https://ghe.example.com/api/graphql"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765/graphql"),
    ],
)
def test_graphql_url_is_derived_from_the_api_url(fake_github, api_url, graphql_url):
    client = GitHubClient(resolve_token(None), api_url=api_url)
    assert client.graphql_url == graphql_url


def test_check_and_merge_through_an_enterprise_server_url(fake_github, settings):
    settings.GITHUB_WEB_URL = "https://ghe.example.com"
    fake_github.create_repo(REPO, required_checks={"ci"})
    pull = fake_github.create_pr(REPO)
    fake_github.set_check(REPO, pull.number, "ci", "success")
    ref = PullRequestRef(REPO, pull.number)
    client = GitHubClient(resolve_token(None), api_url=f"{fake_github.url}/api/v3", timeout=5)

    snapshot = client.fetch_snapshots([ref])[ref].snapshot
    assert derive_blocker(snapshot) == Blocker.READY
    outcome = client.merge(ref, head_sha=snapshot.head_sha, methods=["squash"])

    assert outcome.merged
    assert [r.url_path for r in fake_github.requests] == [
        "/api/graphql",
        f"/api/v3/repos/{REPO}/pulls/{pull.number}/merge",
    ]
    assert ref.url == f"https://ghe.example.com/{REPO}/pull/{pull.number}"


def test_github_app_on_an_enterprise_server(fake_github, settings):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from scm.credentials import GitHubAppCredential

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    fake_github.register_app(77, public)
    installation = fake_github.install_app(77, "corp")
    fake_github.create_repo(REPO)
    ref = PullRequestRef(REPO, fake_github.create_pr(REPO).number)
    credential = GitHubAppCredential(app_id="77", private_key=private, source="GITHUB_APP_ID")
    client = GitHubClient(credential, api_url=f"{fake_github.url}/api/v3", timeout=5)

    assert client.fetch_snapshots([ref])[ref].ok
    assert [r.url_path for r in fake_github.requests] == [
        f"/api/v3/repos/{REPO}/installation",
        f"/api/v3/app/installations/{installation}/access_tokens",
        "/api/graphql",
    ]
