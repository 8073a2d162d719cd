import logging

import pytest

from scm.credentials import resolve_token
from scm.errors import CredentialError, ScmError
from scm.types import PullRequestRef
from scm.urls import parse_pr_url, pr_web_url


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/octo/app/pull/42",
        "https://github.com/octo/app/pull/42/",
        "https://github.com/octo/app/pull/42/files",
        "https://github.com/octo/app/pull/42/commits",
        "https://github.com/octo/app/pull/42?diff=split#discussion_r1",
        "  https://github.com/octo/app/pull/42  ",
        "http://www.github.com/octo/app/pull/42",
    ],
)
def test_parse_pr_url_accepts_github_forms(url: str) -> None:
    assert parse_pr_url(url) == PullRequestRef("octo/app", 42)


def test_parse_pr_url_accepts_the_enterprise_host(settings) -> None:
    settings.GITHUB_WEB_URL = "https://git.example.com"
    ref = parse_pr_url("https://git.example.com/team/svc.api/pull/7")
    assert ref == PullRequestRef("team/svc.api", 7)
    assert ref.url == "https://git.example.com/team/svc.api/pull/7"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "empty"),
        ("octo/app#42", "not a web address"),
        ("https://gitlab.com/octo/app/pull/42", "not on GitHub"),
        ("https://github.com/octo/app/issues/42", "issue"),
        ("https://github.com/octo/app", "no /pull/"),
        ("https://github.com/octo/app/pull/abc", "not a pull request URL"),
    ],
)
def test_parse_pr_url_rejects_with_a_message_saying_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ScmError) as caught:
        parse_pr_url(url)
    assert caught.value.kind == "unrecognized_url"
    assert says in caught.value.message
    assert "/owner/repo/pull/123" in caught.value.message


def test_pr_web_url_uses_the_web_host(settings) -> None:
    settings.GITHUB_WEB_URL = "https://github.com"
    assert pr_web_url("octo/app", 3) == "https://github.com/octo/app/pull/3"


def test_town_token_wins_over_environment_token(settings) -> None:
    settings.GITHUB_TOKEN = "env-secret"
    credential = resolve_token("town-secret")
    assert credential.token == "town-secret"
    assert credential.source == "town token"


def test_environment_token_is_the_fallback(settings) -> None:
    settings.GITHUB_TOKEN = "env-secret"
    assert resolve_token(None).source == "GITHUB_TOKEN"
    assert resolve_token("  ").token == "env-secret"


def test_no_token_says_which_sources_were_tried(settings) -> None:
    settings.GITHUB_TOKEN = ""
    with pytest.raises(CredentialError) as caught:
        resolve_token(None)
    assert caught.value.kind == "no_token"
    assert "town's token" in caught.value.message
    assert "GITHUB_TOKEN" in caught.value.message


def test_credential_never_shows_its_token(settings, caplog) -> None:
    credential = resolve_token("ghp_supersecret")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("scm").info("using %s %r", credential, credential)
    assert "ghp_supersecret" not in repr(credential)
    assert "ghp_supersecret" not in str(credential)
    assert "ghp_supersecret" not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/octo/app/pull/2147483648",
        "https://github.com/octo/app/pull/99999999999999999999",
        "https://[github.com/acme/web/pull/7",
        "https://github.com:abc/octo/app/pull/7",
        "https://github.com/./app/pull/7",
        "https://github.com/octo/../pull/7",
        "https://github.com/../app/pull/7",
        "https://github.com/octo/./pull/7",
    ],
)
def test_parse_pr_url_rejects_what_github_would_not_answer(url: str) -> None:
    with pytest.raises(ScmError) as caught:
        parse_pr_url(url)
    assert caught.value.kind == "unrecognized_url"


def test_parse_pr_url_accepts_the_largest_graphql_int() -> None:
    assert parse_pr_url("https://github.com/octo/app/pull/2147483647").number == 2**31 - 1


@pytest.mark.parametrize("value", [None, 42, b"https://github.com/octo/app/pull/1", ["x"]])
def test_parse_pr_url_rejects_a_value_that_is_not_text(value) -> None:
    with pytest.raises(ScmError) as caught:
        parse_pr_url(value)
    assert caught.value.kind == "unrecognized_url"
