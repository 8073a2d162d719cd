"""Conditional requests: GitHub's ETag / If-None-Match, modelled in the fake first.

https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate:
most REST answers carry an ETag; a GET that sends it back in If-None-Match is answered 304
Not Modified when nothing changed, and an authorised 304 does not count against the primary
rate limit.
"""

from __future__ import annotations

import pytest
import requests

from scm.types import PullRequestRef

REPO = "octo/app"


@pytest.fixture
def pull(fake_github):
    fake_github.create_repo(REPO, required_approvals=1)
    return fake_github.create_pr(REPO)


def _get(fake_github, path, **headers):
    return requests.get(
        f"{fake_github.url}{path}",
        headers={"Authorization": "token test-token", **headers},
        timeout=5,
    )


def test_fake_answers_304_to_an_unchanged_pull_and_does_not_count_it(fake_github, pull):
    path = f"/repos/{REPO}/pulls/{pull.number}"
    first = _get(fake_github, path)
    etag = first.headers["ETag"]
    assert first.status_code == 200
    assert etag.startswith('W/"')
    left = fake_github.core_remaining

    again = _get(fake_github, path, **{"If-None-Match": etag})

    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    assert again.headers["X-RateLimit-Remaining"] == str(left)
    assert fake_github.core_remaining == left  # not counted
    assert fake_github.requests[-1].status == 304


def test_fake_compares_etags_weakly_and_accepts_a_list_or_a_star(fake_github, pull):
    path = f"/repos/{REPO}/pulls/{pull.number}"
    etag = _get(fake_github, path).headers["ETag"]
    strong = etag.removeprefix("W/")
    assert _get(fake_github, path, **{"If-None-Match": strong}).status_code == 304
    assert _get(fake_github, path, **{"If-None-Match": f'"other", {etag}'}).status_code == 304
    assert _get(fake_github, path, **{"If-None-Match": "*"}).status_code == 304
    assert _get(fake_github, path, **{"If-None-Match": '"other"'}).status_code == 200


def test_fake_answers_200_with_a_new_etag_once_the_pull_changed(fake_github, pull):
    path = f"/repos/{REPO}/pulls/{pull.number}"
    etag = _get(fake_github, path).headers["ETag"]
    left = fake_github.core_remaining
    fake_github.approve(REPO, pull.number)

    changed = _get(fake_github, path, **{"If-None-Match": etag})

    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.json()["mergeable_state"] == "clean"
    assert fake_github.core_remaining == left - 1  # a 200 counts


def test_an_unauthorised_conditional_request_gets_no_304(fake_github, pull):
    path = f"/repos/{REPO}/pulls/{pull.number}"
    etag = _get(fake_github, path).headers["ETag"]
    answer = requests.get(f"{fake_github.url}{path}", headers={"If-None-Match": etag}, timeout=5)
    assert answer.status_code == 401


def test_client_learns_the_etag_then_is_told_nothing_changed_for_free(
    fake_github, github_client, pull
):
    ref = PullRequestRef(REPO, pull.number)
    changed, etag = github_client.pull_request_changed(ref, "")
    assert changed and etag
    left = fake_github.core_remaining

    assert github_client.pull_request_changed(ref, etag) == (False, etag)
    assert github_client.not_modified == 1
    assert fake_github.core_remaining == left

    fake_github.add_label(REPO, pull.number, "gastown:hold")
    changed, newer = github_client.pull_request_changed(ref, etag)
    assert changed and newer != etag
    assert github_client.not_modified == 1
