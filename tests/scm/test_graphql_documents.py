"""The documents we send: valid against GitHub's published schema, cheap, batched."""

import pytest
from graphql import parse, validate

from scm.fake.graphql_exec import github_schema, validation_errors
from scm.graphql import (
    all_documents,
    batch_size,
    charged_points,
    graphql_cost,
    points_per_pr,
    snapshot_document,
    threads_document,
)
from scm.types import PullRequestRef


@pytest.mark.parametrize("document", all_documents(), ids=lambda d: d.operation)
def test_every_document_validates_against_the_published_schema(document):
    assert validate(github_schema(), parse(document.query)) == []


def test_a_misspelled_field_fails_validation():
    query = snapshot_document([PullRequestRef("octo/app", 1)]).query.replace(
        "mergeStateStatus", "mergeStatus"
    )
    errors = validation_errors(query)
    assert errors
    assert "mergeStatus" in errors[0].message


def test_fake_answers_an_invalid_document_with_github_like_errors(fake_github, github_client):
    from scm.fake.graphql_exec import execute_graphql

    answer, cost = execute_graphql(
        fake_github.state,
        "{ rateLimit { cots } }",
        {},
        web_url="https://github.com",
        remaining=5000,
        reset_at=fake_github.reset_at,
    )
    assert cost == 0
    assert "data" not in answer
    assert "cots" in answer["errors"][0]["message"]


def test_snapshot_batch_is_sized_to_githubs_rounding():
    # 4 requests per PR: 37 PRs are 148 requests = 1.48, charged 1 point; 38 would be 1.52,
    # charged 2. The old fixed 50 was 200 requests = 2 points.
    size = batch_size(snapshot_document)
    refs = [PullRequestRef("octo/app", n) for n in range(1, size + 2)]
    assert size == 37
    assert charged_points(graphql_cost(snapshot_document(refs[:size]).query)) == 1
    assert charged_points(graphql_cost(snapshot_document(refs).query)) == 2
    assert points_per_pr(snapshot_document) == pytest.approx(1 / 37)
    assert points_per_pr(snapshot_document) < 0.040


def test_thread_batches_are_sized_to_githubs_rounding_too():
    # 31 requests per PR (the threads, and 30 x the comments): 8 PRs = 2.48 -> 2 points,
    # where 50 PRs were 15.5 -> 16 points.
    assert batch_size(threads_document) == 8
    assert points_per_pr(threads_document) == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("estimate", "charged"), [(0.01, 1), (1.48, 1), (1.5, 2), (2.49, 2), (10.51, 11), (51.01, 51)]
)
def test_github_rounds_to_the_nearest_point_and_charges_at_least_one(estimate, charged):
    assert charged_points(estimate) == charged


def test_cost_follows_githubs_published_example():
    # docs.github.com: 100 repositories x 50 issues x 60 labels = 5,101 requests -> 51 points
    query = """query { viewer { login repositories(first: 100) { edges { node { id
      issues(first: 50) { edges { node { id labels(first: 60) { edges { node { id } } } } } }
    } } } } }"""
    assert graphql_cost(query) == pytest.approx(51.01)


def test_fake_charges_githubs_second_published_example(fake_github, github_client):
    # docs.github.com: 50 repositories x 20 PRs x 10 comments = 1 + 50 + 1,000 requests,
    # 10.51, charged 11 points.
    from scm.fake.graphql_exec import execute_graphql

    query = """query { viewer { repositories(first: 50) { edges { node { name
      pullRequests(first: 20) { edges { node { title
        comments(first: 10) { edges { node { bodyHTML } } } } } } } } } }
      rateLimit { cost } }"""
    _, cost = execute_graphql(
        fake_github.state,
        query,
        {},
        web_url="https://github.com",
        remaining=5000,
        reset_at=fake_github.reset_at,
    )
    assert graphql_cost(query) == pytest.approx(10.51)
    assert cost == 11


def test_500_prs_are_fetched_in_14_documents_of_one_point(fake_github, github_client):
    fake_github.create_repo("octo/big")
    refs = [
        PullRequestRef("octo/big", fake_github.create_pr("octo/big").number) for _ in range(500)
    ]
    results = github_client.fetch_snapshots(refs)
    assert all(result.ok for result in results.values())
    assert len(fake_github.requests) == 14  # ceil(500 / 37)
    assert sum(r.aliases for r in fake_github.graphql_requests()) == 500
    points = sum(r.cost for r in fake_github.graphql_requests())
    assert points == 14  # 13 x 37 PRs and one of 19 (0.76, charged 1)
