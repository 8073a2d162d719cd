"""Every merge refusal GitHub sends, classic protection and rulesets: the fake answers with
GitHub's words, scm reads each into a Refusal, and each Refusal holds the right blocker."""

import pytest

from scm.blocker import FINAL_REFUSALS, Blocker, refusal_blocker
from scm.github_errors import classify_refusal
from scm.types import REFUSAL_FAMILY, PullRequestRef, Refusal

REPO = "octo/app"


def _pr(fake, **repo_options):
    fake.create_repo(REPO, **repo_options)
    pull = fake.create_pr(REPO)
    return pull, PullRequestRef(REPO, pull.number)


def _merge(client, pull, ref, methods=("squash",)):
    return client.merge(ref, head_sha=pull.head_sha, methods=list(methods))


# (repo options, what to do to the PR, GitHub's message, refusal)
SCENARIOS = [
    (
        {"required_approvals": 2},
        {},
        "At least 2 approving reviews are required by reviewers with write access.",
        Refusal.REVIEW_REQUIRED,
    ),
    (
        {"required_approvals": 1, "require_code_owner_review": True, "code_owners": {"bob"}},
        {"approve": "alice"},
        "Waiting on code owner review from bob.",
        Refusal.CODE_OWNER_REVIEW,
    ),
    (
        {"required_approvals": 1},
        {"request_changes": "alice"},
        "Changes must be made before merging",
        Refusal.CHANGES_REQUESTED,
    ),
    (
        {"required_checks": {"ci"}},
        {},
        'Required status check "ci" is expected.',
        Refusal.CHECKS_EXPECTED,
    ),
    (
        {"required_checks": {"ci"}},
        {"check": ("ci", "failure")},
        'Required status check "ci" is failing.',
        Refusal.CHECKS_FAILING,
    ),
    (
        {"required_checks": {"ci", "lint"}},
        {},
        "2 of 2 required status checks are expected.",
        Refusal.CHECKS_EXPECTED,
    ),
    (
        {"required_checks": {"ci", "lint"}},
        {"check": ("ci", "failure")},
        "2 of 2 required status checks have not succeeded: 1 failing.",
        Refusal.CHECKS_FAILING,
    ),
    (
        {"require_conversation_resolution": True},
        {"thread": "Why?"},
        "A conversation must be resolved before this pull request can be merged.",
        Refusal.THREADS_UNRESOLVED,
    ),
    (
        {"require_signed_commits": True},
        {"set": {"signed": False}},
        "Commits must have verified signatures.",
        Refusal.SIGNED_COMMITS_REQUIRED,
    ),
    (
        {"require_merge_queue": True},
        {},
        "Changes must be made through the merge queue",
        Refusal.MERGE_QUEUE_REQUIRED,
    ),
    ({"lock_branch": True}, {}, "Cannot change this locked branch", Refusal.BRANCH_LOCKED),
]


def _prepare(fake, pull, actions):
    if "approve" in actions:
        fake.approve(REPO, pull.number, by=actions["approve"])
    if "request_changes" in actions:
        fake.request_changes(REPO, pull.number, by=actions["request_changes"], body="")
    if "check" in actions:
        fake.set_check(REPO, pull.number, *actions["check"])
    if "thread" in actions:
        fake.add_thread(REPO, pull.number, body=actions["thread"])
    if "set" in actions:
        fake.set_pr(REPO, pull.number, **actions["set"])


@pytest.mark.parametrize(
    ("options", "actions", "message", "refusal"), SCENARIOS, ids=[s[3] for s in SCENARIOS]
)
def test_classic_protection_refusal_is_read_from_githubs_message(
    fake_github, github_client, options, actions, message, refusal
):
    pull, ref = _pr(fake_github, **options)
    _prepare(fake_github, pull, actions)
    outcome = _merge(github_client, pull, ref)
    assert outcome.message == message
    assert outcome.refusal == refusal
    assert outcome.kind == REFUSAL_FAMILY[refusal]
    assert not fake_github.pull(REPO, pull.number).merged


@pytest.mark.parametrize(
    ("options", "actions", "message", "refusal"), SCENARIOS, ids=[s[3] for s in SCENARIOS]
)
def test_ruleset_refusal_is_read_the_same_way(
    fake_github, github_client, options, actions, message, refusal
):
    pull, ref = _pr(fake_github, rulesets=True, **options)
    _prepare(fake_github, pull, actions)
    outcome = _merge(github_client, pull, ref)
    assert outcome.message.startswith("Repository rule violations found\n\n")
    assert outcome.refusal == refusal


def test_ruleset_listing_several_rules_is_read_by_the_one_no_review_can_fix(
    fake_github, github_client
):
    pull, ref = _pr(
        fake_github,
        rulesets=True,
        required_approvals=1,
        required_checks={"ci"},
        require_signed_commits=True,
    )
    fake_github.set_pr(REPO, pull.number, signed=False)
    outcome = _merge(github_client, pull, ref)
    assert outcome.message == (
        "Repository rule violations found\n\n"
        "Commits must have verified signatures.\n\n"
        "At least 1 approving review is required by reviewers with write access.\n\n"
        'Required status check "ci" is expected.\n\n'
    )
    assert outcome.refusal == Refusal.SIGNED_COMMITS_REQUIRED
    assert refusal_blocker(outcome.refusal) is None
    assert outcome.refusal in FINAL_REFUSALS


def test_ruleset_with_failing_check_and_missing_review_waits_on_the_check(
    fake_github, github_client
):
    pull, ref = _pr(fake_github, rulesets=True, required_approvals=1, required_checks={"ci"})
    fake_github.set_check(REPO, pull.number, "ci", "failure")
    outcome = _merge(github_client, pull, ref)
    assert refusal_blocker(outcome.refusal) == Blocker.CHECKS_FAILING


def test_merge_queue_refusal_is_never_a_human_review(fake_github, github_client):
    pull, ref = _pr(fake_github, require_merge_queue=True, required_approvals=1)
    fake_github.approve(REPO, pull.number)
    outcome = _merge(github_client, pull, ref, methods=["squash", "merge"])
    assert outcome.refusal == Refusal.MERGE_QUEUE_REQUIRED
    assert outcome.kind == "merge_queue_required"
    assert refusal_blocker(outcome.refusal) == Blocker.MERGE_QUEUE
    assert len(fake_github.merge_calls(REPO, pull.number)) == 1  # no other method tried


def test_linear_history_refuses_a_merge_commit_and_the_next_method_merges(
    fake_github, github_client
):
    pull, ref = _pr(fake_github, require_linear_history=True)
    outcome = _merge(github_client, pull, ref, methods=["merge", "squash"])
    assert outcome.merged
    assert outcome.method == "squash"
    assert len(fake_github.merge_calls(REPO, pull.number)) == 2


def test_linear_history_with_only_merge_commits_configured_is_final(fake_github, github_client):
    pull, ref = _pr(fake_github, require_linear_history=True)
    outcome = _merge(github_client, pull, ref, methods=["merge"])
    assert outcome.refusal == Refusal.LINEAR_HISTORY_REQUIRED
    assert outcome.message == "This branch must not contain merge commits."
    assert outcome.kind == "permanent"
    assert outcome.refusal in FINAL_REFUSALS


def test_ruleset_locked_branch_says_protected_ref(fake_github, github_client):
    pull, ref = _pr(fake_github, rulesets=True, lock_branch=True)
    outcome = _merge(github_client, pull, ref)
    assert (
        outcome.message
        == "Repository rule violations found\n\nCannot update this protected ref.\n\n"
    )
    assert outcome.refusal == Refusal.BRANCH_LOCKED


def test_unprotected_base_merges_whatever_the_rules(fake_github, github_client):
    pull, ref = _pr(
        fake_github,
        protected_branches={"release"},
        require_merge_queue=True,
        lock_branch=True,
        require_signed_commits=True,
    )
    fake_github.set_pr(REPO, pull.number, signed=False)
    assert _merge(github_client, pull, ref).merged


@pytest.mark.parametrize(
    ("status", "message", "refusal"),
    [
        (405, "Merge commits are not allowed on this repository.", Refusal.METHOD_NOT_ALLOWED),
        (405, "Squash merges are not allowed on this repository.", Refusal.METHOD_NOT_ALLOWED),
        (405, "Rebase merges are not allowed on this repository.", Refusal.METHOD_NOT_ALLOWED),
        (
            405,
            "At least 1 approving review is required by reviewers with write access.",
            Refusal.REVIEW_REQUIRED,
        ),
        (405, "Review required", Refusal.REVIEW_REQUIRED),
        (
            405,
            "New changes require approval from someone other than the last pusher.",
            Refusal.REVIEW_REQUIRED,
        ),
        (405, "Waiting on code owner review from octo/core.", Refusal.CODE_OWNER_REVIEW),
        (405, "Changes must be made before merging", Refusal.CHANGES_REQUESTED),
        (405, "Changes must be made through the merge queue", Refusal.MERGE_QUEUE_REQUIRED),
        (
            405,
            "Repository rule violations found\n\nChanges must be made through the merge queue\n\n",
            Refusal.MERGE_QUEUE_REQUIRED,
        ),
        (405, 'Required status check "ci" is expected.', Refusal.CHECKS_EXPECTED),
        (405, 'Required status check "ci" is failing.', Refusal.CHECKS_FAILING),
        (405, "2 of 2 required status checks are expected.", Refusal.CHECKS_EXPECTED),
        (
            405,
            "2 of 3 required status checks have not succeeded: 1 failing.",
            Refusal.CHECKS_FAILING,
        ),
        (
            405,
            "A conversation must be resolved before this pull request can be merged.",
            Refusal.THREADS_UNRESOLVED,
        ),
        (405, "Commits must have verified signatures.", Refusal.SIGNED_COMMITS_REQUIRED),
        (405, "This branch must not contain merge commits.", Refusal.LINEAR_HISTORY_REQUIRED),
        (405, "Cannot change this locked branch", Refusal.BRANCH_LOCKED),
        (405, "Cannot update this protected ref.", Refusal.BRANCH_LOCKED),
        (405, "Pull Request is not mergeable", Refusal.NOT_MERGEABLE),
        (405, "Pull Request is still a draft", Refusal.DRAFT),
        (409, "Head branch was modified. Review and try the merge again.", Refusal.HEAD_MOVED),
        (405, "Base branch was modified. Review and try the merge again.", Refusal.HEAD_MOVED),
        (422, "Something GitHub never said before", Refusal.UNKNOWN),
    ],
)
def test_refusal_messages_are_classified(status, message, refusal):
    assert classify_refusal(status, message) == refusal


@pytest.mark.parametrize(
    ("refusal", "blocker"),
    [
        (Refusal.REVIEW_REQUIRED, Blocker.HUMAN_REVIEW),
        (Refusal.CODE_OWNER_REVIEW, Blocker.HUMAN_REVIEW),
        (Refusal.CHANGES_REQUESTED, Blocker.CHANGES_REQUESTED),
        (Refusal.CHECKS_EXPECTED, Blocker.CHECKS_PENDING),
        (Refusal.CHECKS_FAILING, Blocker.CHECKS_FAILING),
        (Refusal.THREADS_UNRESOLVED, Blocker.THREADS),
        (Refusal.MERGE_QUEUE_REQUIRED, Blocker.MERGE_QUEUE),
        (Refusal.DRAFT, Blocker.DRAFT),
        (Refusal.HEAD_MOVED, None),
    ],
)
def test_each_refusal_holds_its_blocker(refusal, blocker):
    assert refusal_blocker(refusal) == blocker
    assert refusal not in FINAL_REFUSALS


def test_every_refusal_has_a_family_and_either_a_blocker_or_is_final_or_head_moved():
    for refusal in Refusal:
        assert refusal in REFUSAL_FAMILY
        assert (refusal_blocker(refusal) is not None) + (refusal in FINAL_REFUSALS) + (
            refusal == Refusal.HEAD_MOVED
        ) == 1
    assert REFUSAL_FAMILY[Refusal.MERGE_QUEUE_REQUIRED] != "review_required"
