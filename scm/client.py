"""GitHubClient: everything the product asks of GitHub, as plain values and our own errors.

Why PyGithub is built the way it is below:

- `retry=None`: PyGithub's default `GithubRetry` repeats a request after a 5xx, the merge PUT
  included, and sleeps through rate-limit resets inside the call. A merge that timed out may
  have merged (https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api),
  so nothing is retried here: the caller looks at the PR again and decides.
- `seconds_between_requests=0`, `seconds_between_writes=0`: PyGithub waits between calls by
  default (GitHub's advice for bursts of content creation,
  https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api).
  Our callers make few writes and decide about waits themselves; a worker must not block.
- Rate limits (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api)
  are read from the X-RateLimit-* headers and GraphQL's `rateLimit`; when the budget is spent
  we raise CredentialError(rate_limited, reset_at) instead of sleeping.
- GraphQL goes through the requester at a lower level than `graphql_query`, which raises on
  any `errors` entry: GitHub answers per alias (one deleted PR in a batch of 50 is a NOT_FOUND
  entry whose path names its alias, https://docs.github.com/en/graphql/guides/forming-calls-with-graphql),
  so data and errors are read together.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from github import Auth, Github, GithubException

from scm import graphql as documents
from scm.credentials import Credential, GitHubAppCredential, GitHubCredential
from scm.errors import AnswerError, CredentialError, ScmError
from scm.github_errors import RateLimit, classify_refusal, translate
from scm.installations import AppInstallations, shared_installations
from scm.snapshots import parse_approvals, parse_snapshot, parse_threads, parse_time
from scm.types import (
    MERGE_METHODS,
    MERGE_QUEUE_ENTRY_STATES,
    AutoMergeRequest,
    LabelEvent,
    MergeOutcome,
    MergeQueueEntry,
    PullRequestRef,
    PullRequestSnapshot,
    QueueRemoval,
    Refusal,
    ReviewThread,
    SnapshotResult,
    WriteKind,
    WriteOutcome,
)
from scm.urls import ref_problem

logger = logging.getLogger(__name__)

ThreadClassifier = Callable[[ReviewThread], bool]  # True: the thread blocks the merge


#: Refusals of one merge method that another method may not get: a linear history refuses a
#: merge commit, not a squash or rebase.
_TRY_NEXT_METHOD = frozenset({Refusal.METHOD_NOT_ALLOWED, Refusal.LINEAR_HISTORY_REQUIRED})


def _no_data_error(errors: list[dict[str, Any]]) -> AnswerError:
    """GitHub answered a GraphQL document with errors only. Its own time-out ("Something went
    wrong while executing your query. This may be the result of a timeout...") is transient,
    like a 502: the same document usually goes through on the next poll."""
    first = str(errors[0].get("message") or "") if errors else "no data"
    lowered = first.lower()
    kind = "transient" if "timeout" in lowered or "something went wrong" in lowered else None
    return AnswerError(kind or "invalid_response", f"GitHub's GraphQL answer has no data: {first}")


class _SwitchedToken(Auth.Auth):
    """The Authorization of the next request: one installation's token or the other's, set
    by the client before each request; masked in PyGithub's debug log like any token."""

    def __init__(self, token: str) -> None:
        self.current = token

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        return self.current

    @property
    def _masked_token(self) -> str:
        return "token (removed)"


_REPO_PATH = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)")


class GitHubClient:
    """`credential` is a token or a GitHub App. With an App, every request goes out with the
    token of the installation covering its repository (scm.installations), GraphQL batches
    hold one owner's PRs each, and each installation's rate limit is tracked apart
    (`rate_limits`, by installation id; None for a token)."""

    def __init__(
        self,
        credential: Credential,
        *,
        api_url: str | None = None,
        timeout: float = 10,
        installations: AppInstallations | None = None,
    ) -> None:
        self.credential = credential
        self.api_url = (api_url or settings.GITHUB_API_URL).rstrip("/")
        self.installations: AppInstallations | None = None
        if isinstance(credential, GitHubAppCredential):
            self.installations = installations or shared_installations(credential, self.api_url)
        self._auth = _SwitchedToken(
            credential.token if isinstance(credential, GitHubCredential) else ""
        )
        options: dict[str, Any] = {
            "auth": self._auth,
            "base_url": self.api_url,
            "timeout": max(1, math.ceil(timeout)),
            "retry": None,
            "seconds_between_requests": 0,
            "seconds_between_writes": 0,
            "lazy": True,
            "per_page": 100,
        }
        self._github = Github(**options)
        self._requester = self._github.requester
        # PyGithub asserts an int timeout, but requests takes a float and sub-second
        # timeouts are useful (tests, a worker's tight budget): set it on the requester.
        if hasattr(self._requester, "_Requester__timeout"):
            self._requester._Requester__timeout = timeout
        self.rate_limits: dict[int | None, RateLimit] = {None: RateLimit()}
        self._installation_id: int | None = None
        self._source = credential.source
        self.requests_made = 0
        self.not_modified = 0  # conditional requests GitHub answered 304 (free)

    @property
    def graphql_url(self) -> str:
        """PyGithub's: /graphql beside https://api.github.com, /api/graphql beside a GitHub
        Enterprise Server's https://HOST/api/v3."""
        return str(self._requester.graphql_url)

    @property
    def rate_limit(self) -> RateLimit:
        """The budgets of the credential the last request used."""
        return self.rate_limits.setdefault(self._installation_id, RateLimit())

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r}, credential={self.credential!r})"

    def close(self) -> None:
        self._github.close()

    # --- transport ----------------------------------------------------------------------

    def _authenticate(self, repo: str | None) -> None:
        """Point the next request at `repo`'s installation (App) or the token."""
        if self.installations is None:
            return
        if repo is None:
            raise ScmError("invalid_response", "A GitHub App request must name its repository.")
        token = self.installations.token_for(repo)
        self._auth.current = token.token
        self._installation_id = token.installation_id
        self._source = token.source

    def _request(
        self,
        verb: str,
        url: str,
        *,
        input: Any = None,
        parameters: dict[str, Any] | None = None,
        repo: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], Any]:
        """One HTTP request; GitHub's errors come out as GithubException or ScmError.
        `repo` says whose installation answers (REST paths under /repos/ say it already)."""
        match = _REPO_PATH.match(url)
        self._authenticate(repo or (f"{match['owner']}/{match['name']}" if match else None))
        resource = "graphql" if url == self._requester.graphql_url else "core"
        limit = self.rate_limit
        limit.raise_if_spent(self._source, resource=resource)
        self.requests_made += 1
        try:
            answer_headers, data = self._requester.requestJsonAndCheck(
                verb, url, parameters=parameters, headers=headers, input=input
            )
        except GithubException as error:
            limit.update_from_headers(error.headers or {}, resource=resource)
            translated = translate(error, source=self._source)
            if isinstance(translated, CredentialError) and translated.reset_at is not None:
                limit.hold(resource, translated.reset_at, secondary=translated.secondary)
            if error.status == 401 and self.installations and self._installation_id:
                # Expired or revoked: the next request asks for the installation afresh.
                self.installations.forget(self._installation_id)
            raise
        except Exception as error:
            raise translate(error, source=self._source) from None
        limit.update_from_headers(answer_headers, resource=resource)
        return answer_headers, data

    def _call(self, verb: str, url: str, **kwargs: Any) -> tuple[dict[str, Any], Any]:
        """Like _request, with every GitHub error translated to ours."""
        try:
            return self._request(verb, url, **kwargs)
        except GithubException as error:
            raise translate(error, source=self._source) from None

    def _graphql(
        self, document: documents.Document, *, repo: str | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        data, errors = self._graphql_answer(document, repo=repo)
        if data is None:
            raise _no_data_error(errors)
        return data, errors

    def _graphql_answer(
        self, document: documents.Document, *, repo: str | None = None
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """GitHub's data (None when it answered with errors only) and error entries. `repo`
        (else the first PR's) says whose installation answers: a batch is one owner's."""
        if repo is None and document.aliases:
            repo = next(iter(document.aliases.values())).repo
        _, answer = self._call(
            "POST",
            self._requester.graphql_url,
            input={"query": document.query, "variables": document.variables},
            repo=repo,
        )
        if not isinstance(answer, dict):
            raise ScmError("invalid_response", "GitHub's GraphQL answer is not a JSON object.")
        data = answer.get("data")
        errors = [e for e in answer.get("errors") or [] if isinstance(e, dict)]
        if isinstance(data, dict):
            self.rate_limit.update_from_graphql(data.get("rateLimit"))
        for error in errors:
            if error.get("type") == "RATE_LIMITED":
                reset_at = self.rate_limit.budget("graphql").reset_at
                if reset_at is None or reset_at <= datetime.now(UTC):
                    reset_at = datetime.now(UTC) + timedelta(seconds=60)
                self.rate_limit.hold("graphql", reset_at)
                self.rate_limit.raise_if_spent(self._source, resource="graphql")
        return (data if isinstance(data, dict) else None), errors

    # --- snapshots ----------------------------------------------------------------------

    def fetch_snapshots(
        self,
        refs: Sequence[PullRequestRef],
        *,
        thread_classifier: ThreadClassifier | None = None,
    ) -> dict[PullRequestRef, SnapshotResult]:
        """One lean GraphQL document per batch of BATCH_SIZE pull requests. Errors that
        concern one PR are in its SnapshotResult; CredentialError concerns the town."""
        unique = list(dict.fromkeys(refs))
        results: dict[PullRequestRef, SnapshotResult] = {}
        askable = []
        for ref in unique:
            problem = ref_problem(ref)
            if problem is None:
                askable.append(ref)
            else:
                error = ScmError("unrecognized_url", f"{ref} cannot be asked about: {problem}")
                results[ref] = SnapshotResult(ref, error=error)
        for batch in self._batched(askable, documents.snapshot_document):
            self._fetch_batch(batch, results, retry=True)
        if thread_classifier is not None:
            self._classify_threads(results, thread_classifier)
        self._count_approvals(results)
        return results

    def pull_request_changed(self, ref: PullRequestRef, etag: str) -> tuple[bool, str]:
        """Whether the PR's REST representation changed since the answer tagged `etag`: a
        conditional GET of /pulls/{number} (If-None-Match). GitHub answers 304 when nothing
        changed, and a 304 to an authorised request does not count against the rate limit
        (https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate).
        Returns (False, etag) on a 304, else (True, the new ETag, "" when GitHub sent none);
        with no `etag`, an ordinary GET that only learns the tag. It sees a review, a
        requested reviewer, a label, a push, a draft flag and the mergeable state, not
        check runs themselves: the caller still reads the whole snapshot now and then."""
        conditional = {"If-None-Match": etag} if etag else None
        answer_headers, data = self._call(
            "GET", f"/repos/{ref.repo}/pulls/{ref.number}", headers=conditional
        )
        new = next((str(v) for k, v in (answer_headers or {}).items() if k.lower() == "etag"), "")
        if data is None and etag:
            self.not_modified += 1
            return False, new or etag
        return True, new

    def _batched(
        self, refs: Sequence[PullRequestRef], build: documents.DocumentBuilder
    ) -> Iterable[list[PullRequestRef]]:
        """Batches of the size that costs the fewest points per PR for this kind of document
        (documents.batch_size); with an App, one owner's PRs per batch (one installation
        token per request)."""
        size = documents.batch_size(build)
        if self.installations is None:
            yield from documents.batched(refs, size)
            return
        by_owner: dict[str, list[PullRequestRef]] = {}
        for ref in refs:
            by_owner.setdefault(ref.owner.lower(), []).append(ref)
        for group in by_owner.values():
            yield from documents.batched(group, size)

    def _fetch_batch(
        self,
        batch: list[PullRequestRef],
        results: dict[PullRequestRef, SnapshotResult],
        *,
        retry: bool,
    ) -> None:
        document = documents.snapshot_document(batch)
        try:
            data, errors = self._graphql_answer(document)
        except CredentialError:
            raise
        except ScmError as error:
            # A 5xx, a time-out, a truncated body: about no PR in particular. One such answer
            # is often GitHub's moment, not an outage: the read is asked again once before the
            # town backs off for it (a query changes nothing, so repeating it is safe).
            if retry and error.kind in ("transient", "invalid_response"):
                self._fetch_batch(batch, results, retry=False)
                return
            whole = AnswerError(error.kind, error.message)
            for ref in batch:
                results[ref] = SnapshotResult(ref, error=whole)
            return
        if data is None:
            # GitHub refused the whole document. An error that names one PR's variables
            # fails that PR only; the others are asked again, once.
            blamed: dict[str, str] = {}
            for entry in errors:
                message = str(entry.get("message") or "")
                for alias in documents.aliases_named_in(message, document):
                    blamed.setdefault(alias, message)
            rest = []
            for alias, ref in document.aliases.items():
                if alias in blamed:
                    rejected = ScmError(
                        "unrecognized_url", f"GitHub rejects {ref} as asked: {blamed[alias]}"
                    )
                    results[ref] = SnapshotResult(ref, error=rejected)
                elif blamed and retry:
                    rest.append(ref)
                else:
                    results[ref] = SnapshotResult(ref, error=_no_data_error(errors))
            if rest:
                self._fetch_batch(rest, results, retry=False)
            return
        fetched_at = datetime.now(UTC)
        for alias, ref in document.aliases.items():
            results[ref] = self._read_alias(ref, alias, data, errors, fetched_at)

    def _read_alias(
        self,
        ref: PullRequestRef,
        alias: str,
        data: dict[str, Any],
        errors: list[dict[str, Any]],
        fetched_at: datetime,
    ) -> SnapshotResult:
        mine = [e for e in errors if (e.get("path") or [None])[0] == alias]
        repository = data.get(alias)
        node = repository.get("pullRequest") if isinstance(repository, dict) else None
        if isinstance(node, dict):
            try:
                return SnapshotResult(
                    ref, snapshot=parse_snapshot(ref, node, fetched_at=fetched_at, url=ref.url)
                )
            except Exception as error:  # a shape we did not foresee: this PR only
                logger.warning("unreadable GitHub answer for %s: %r", ref, error)
                return SnapshotResult(
                    ref,
                    error=ScmError("invalid_response", f"GitHub's answer for {ref} is unreadable."),
                )
        if not mine:
            # No error names this PR: the answer as a whole is wrong, not this PR.
            message = f"GitHub's answer has nothing for {ref}."
            if errors:
                message += f" GitHub: {errors[0].get('message') or ''}"
            return SnapshotResult(ref, error=AnswerError("invalid_response", message))
        kind = mine[0].get("type")
        message = str(mine[0].get("message") or "")
        if kind == "NOT_FOUND":
            return SnapshotResult(
                ref,
                error=ScmError(
                    "not_found",
                    f"{ref.url} does not exist or this token cannot see it "
                    f"(GitHub: {message}). Check the URL, or the token's access to {ref.repo}.",
                ),
            )
        if kind == "FORBIDDEN":
            # A 403 concerns the credential (domain.md §4), e.g. an organization enforcing SAML
            # SSO that the token is not authorized for: the PR exists, the token is refused.
            source = self._source
            return SnapshotResult(
                ref,
                error=CredentialError(
                    "forbidden",
                    f"GitHub refused the {source or 'token'} access to {ref.url} "
                    f"(GitHub: {message}). Authorize the token for {ref.owner} (SAML SSO) or "
                    f"grant it access to {ref.repo}.",
                    source=source,
                    permission=message or None,
                ),
            )
        return SnapshotResult(
            ref, error=ScmError("transient", f"GitHub could not answer for {ref}: {message}")
        )

    def _classify_threads(
        self, results: dict[PullRequestRef, SnapshotResult], classifier: ThreadClassifier
    ) -> None:
        """Second, lean-enough document: thread text only for PRs with unresolved threads.
        Anything that goes wrong leaves every unresolved thread blocking (domain.md §4)."""
        wanted = [
            ref
            for ref, result in results.items()
            if result.snapshot is not None and result.snapshot.unresolved_threads > 0
        ]
        for ref, node in self._follow_up(wanted, documents.threads_document, "read threads"):
            snapshot = results[ref].snapshot
            if snapshot is not None:
                results[ref] = SnapshotResult(
                    ref, snapshot=_with_blocking(snapshot, node, classifier)
                )

    def _count_approvals(self, results: dict[PullRequestRef, SnapshotResult]) -> None:
        """Third document, only for PRs waiting on reviews whose count the snapshot does not
        settle (PullRequestSnapshot.approvals_count_open): approvals given, and a ruleset's
        required count. Anything that goes wrong leaves the count unknown, nothing else."""
        wanted = [
            ref
            for ref, result in results.items()
            if result.snapshot is not None and result.snapshot.approvals_count_open
        ]
        for ref, node in self._follow_up(wanted, documents.approvals_document, "count approvals"):
            snapshot = results[ref].snapshot
            if snapshot is None:
                continue
            by_rules, given = parse_approvals(node)
            required = max(
                (c for c in (snapshot.approvals_required, by_rules) if c is not None),
                default=None,
            )
            results[ref] = SnapshotResult(
                ref,
                snapshot=dataclasses.replace(
                    snapshot, approvals_required=required, approvals_given=given
                ),
            )

    def _follow_up(
        self, refs: Sequence[PullRequestRef], build: documents.DocumentBuilder, what: str
    ) -> Iterable[tuple[PullRequestRef, dict[str, Any]]]:
        """Each PR's node from a follow-up document about `refs` (in batches). A batch that
        fails is logged and skipped: a follow-up only refines a snapshot already read."""
        for batch in self._batched(refs, build):
            document = build(batch)
            try:
                data, _ = self._graphql(document)
            except CredentialError:
                raise
            except ScmError as error:
                logger.warning("could not %s: %s", what, error)
                continue
            for alias, ref in document.aliases.items():
                repository = data.get(alias)
                node = repository.get("pullRequest") if isinstance(repository, dict) else None
                if isinstance(node, dict):
                    yield ref, node

    # --- writes -------------------------------------------------------------------------

    def merge(self, ref: PullRequestRef, *, head_sha: str, methods: Sequence[str]) -> MergeOutcome:
        """Try each method in order, moving on only when GitHub refuses that method (not
        allowed on the repository, or a merge commit on a branch requiring a linear history).
        Sends the head SHA checked, so GitHub refuses (409) if the head moved. A refusal's
        `refusal` says why (scm.blocker.REFUSAL_BLOCKERS: what it waits on)."""
        outcome = MergeOutcome("permanent", None, "No merge method configured.")
        url = f"/repos/{ref.repo}/pulls/{ref.number}/merge"
        for method in methods:
            try:
                _, data = self._request("PUT", url, input={"sha": head_sha, "merge_method": method})
            except GithubException as error:
                translated = translate(error, source=self._source)
                if isinstance(translated, CredentialError):
                    raise translated from None
                message = _message(error)
                if translated.kind == "transient":
                    return MergeOutcome("transient", method, translated.message)
                refusal = classify_refusal(error.status, message)
                outcome = MergeOutcome.refused(refusal, method, message)
                logger.info("merge of %s with %s refused: %s (%s)", ref, method, refusal, message)
                if refusal in _TRY_NEXT_METHOD:
                    continue
                return outcome
            except ScmError as error:
                if isinstance(error, CredentialError):
                    raise
                # A timeout or dropped connection: it may have merged. Never retried here.
                return MergeOutcome("transient", method, error.message)
            data = data if isinstance(data, dict) else {}
            return MergeOutcome(
                "merged", method, str(data.get("message") or "merged"), data.get("sha")
            )
        return outcome

    # --- merge queue and native auto-merge (GraphQL writes) -------------------------------

    def enqueue(
        self, ref: PullRequestRef, *, expected_head_sha: str, node_id: str = ""
    ) -> WriteOutcome:
        """Add the PR to its base branch's merge queue (enqueuePullRequest), only while its
        head is `expected_head_sha`. `node_id` is the snapshot's (else one look-up first)."""
        return self._write(
            ref,
            documents.ENQUEUE,
            {"head": expected_head_sha},
            node_id=node_id,
        )

    def dequeue(self, ref: PullRequestRef, *, node_id: str = "") -> WriteOutcome:
        """Take the PR out of its merge queue (e.g. a hold label was added); "refused" when it
        is not in the queue."""
        return self._write(ref, documents.DEQUEUE, {}, node_id=node_id)

    def enable_auto_merge(
        self,
        ref: PullRequestRef,
        *,
        method: str,
        expected_head_sha: str,
        node_id: str = "",
    ) -> WriteOutcome:
        """Turn on GitHub's native auto-merge with `method` (merge, squash, rebase). GitHub
        refuses (kind "clean") when it could merge right now: merge it then."""
        return self._write(
            ref,
            documents.ENABLE_AUTO_MERGE,
            {"head": expected_head_sha, "method": method.upper()},
            node_id=node_id,
        )

    def disable_auto_merge(self, ref: PullRequestRef, *, node_id: str = "") -> WriteOutcome:
        return self._write(ref, documents.DISABLE_AUTO_MERGE, {}, node_id=node_id)

    def _node_id(self, ref: PullRequestRef) -> str:
        document = documents.single_document(
            documents.PULL_REQUEST_ID, {"owner": ref.owner, "name": ref.name, "number": ref.number}
        )
        data, errors = self._graphql(document, repo=ref.repo)
        repository = data.get("repository")
        node = repository.get("pullRequest") if isinstance(repository, dict) else None
        node_id = node.get("id") if isinstance(node, dict) else None
        if not isinstance(node_id, str) or not node_id:
            message = str(errors[0].get("message") or "") if errors else "no ID"
            raise ScmError("not_found", f"GitHub has no pull request {ref} ({message}).")
        return node_id

    def _write(
        self, ref: PullRequestRef, query: str, variables: dict[str, Any], *, node_id: str
    ) -> WriteOutcome:
        """One mutation; GitHub's refusals come back as a WriteOutcome, never retried."""
        try:
            node_id = node_id or self._node_id(ref)
            document = documents.single_document(query, {"id": node_id, **variables})
            data, errors = self._graphql_answer(document, repo=ref.repo)
        except CredentialError:
            raise
        except ScmError as error:
            if error.kind in {"transient", "invalid_response"}:
                return WriteOutcome("transient", error.message)
            return WriteOutcome("refused", error.message)
        for entry in errors:
            if entry.get("type") == "FORBIDDEN":
                raise CredentialError(
                    "forbidden",
                    f"GitHub refused the {self._source or 'token'} a write on "
                    f"{ref.url}: {entry.get('message')}",
                    source=self._source,
                    permission=str(entry.get("message") or "") or None,
                )
        if errors:
            message = str(errors[0].get("message") or "")
            logger.info("GitHub refused %s on %s: %s", document.operation, ref, message)
            return WriteOutcome(_write_refusal(message), message)
        answer = next(iter((data or {}).values()), None)
        payload: dict[str, Any] = answer if isinstance(answer, dict) else {}
        queued = payload.get("mergeQueueEntry")
        pull = payload.get("pullRequest")
        request = pull.get("autoMergeRequest") if isinstance(pull, dict) else None
        return WriteOutcome(
            "done",
            f"{document.operation} done for {ref}",
            queue_entry=_entry(queued) if isinstance(queued, dict) else None,
            auto_merge=_auto_merge_request(request) if isinstance(request, dict) else None,
        )

    # --- timeline look-ups (only for the PRs that need them) ----------------------------

    def label_events(
        self, refs: Sequence[PullRequestRef], label: str
    ) -> dict[PullRequestRef, LabelEvent | None]:
        """Who last added `label` to each PR (LabeledEvent), for the PRs that carry it; None
        when the timeline does not say (e.g. added over LABEL_EVENTS_LIMIT events ago)."""
        found: dict[PullRequestRef, LabelEvent | None] = {}
        for ref, nodes in self._timeline(refs, documents.LABELED_EVENTS).items():
            events = [
                LabelEvent(
                    label=label,
                    actor=(n.get("actor") or {}).get("login"),
                    at=parse_time(n.get("createdAt")),
                )
                for n in nodes
                if (n.get("label") or {}).get("name") == label
            ]
            found[ref] = events[-1] if events else None
        return found

    def queue_removals(
        self, refs: Sequence[PullRequestRef]
    ) -> dict[PullRequestRef, QueueRemoval | None]:
        """Why the merge queue last dropped each PR (None: it never did), for PRs gastown
        enqueued that left the queue unmerged."""
        found: dict[PullRequestRef, QueueRemoval | None] = {}
        for ref, nodes in self._timeline(refs, documents.QUEUE_REMOVALS).items():
            last = nodes[-1] if nodes else None
            found[ref] = (
                None
                if last is None
                else QueueRemoval(
                    reason=str(last.get("reason") or ""),
                    at=parse_time(last.get("createdAt")),
                    head_sha=(last.get("beforeCommit") or {}).get("oid"),
                )
            )
        return found

    def _timeline(
        self, refs: Sequence[PullRequestRef], kind: tuple[str, str, int]
    ) -> dict[PullRequestRef, list[dict[str, Any]]]:
        """Timeline nodes per PR; a PR GitHub could not answer for is left out."""
        found: dict[PullRequestRef, list[dict[str, Any]]] = {}
        askable = [ref for ref in dict.fromkeys(refs) if ref_problem(ref) is None]
        for batch in self._batched(askable, _TIMELINE_BUILDERS[kind]):
            document = documents.timeline_document(batch, kind)
            data, _ = self._graphql(document)
            for alias, ref in document.aliases.items():
                repository = data.get(alias)
                node = repository.get("pullRequest") if isinstance(repository, dict) else None
                if isinstance(node, dict):
                    found[ref] = _timeline_nodes(node)
        return found

    def open_pull_request(
        self, repo: str, *, head: str, base: str, title: str, body: str = ""
    ) -> PullRequestRef:
        """Idempotent: an open PR for the same head and base is returned, not duplicated."""
        existing = self._find_open_pull(repo, head=head, base=base)
        if existing is not None:
            return existing
        try:
            _, data = self._request(
                "POST",
                f"/repos/{repo}/pulls",
                input={"title": title, "head": head, "base": base, "body": body},
            )
        except GithubException as error:
            if error.status == 422 and "already exists" in str(error.data):
                found = self._find_open_pull(repo, head=head, base=base)
                if found is not None:
                    return found
            translated = translate(error, source=self._source)
            raise translated from None
        return PullRequestRef(repo, _pr_number(data, f"the pull request opened in {repo}"))

    def _find_open_pull(self, repo: str, *, head: str, base: str) -> PullRequestRef | None:
        owner = repo.split("/", 1)[0]
        _, pulls = self._call(
            "GET",
            f"/repos/{repo}/pulls",
            parameters={"state": "open", "head": f"{owner}:{head}", "base": base},
        )
        if not isinstance(pulls, list):
            raise ScmError(
                "invalid_response", f"GitHub's list of pull requests in {repo} is not a list."
            )
        for pull in pulls:
            if not isinstance(pull, dict):
                raise ScmError(
                    "invalid_response", f"GitHub listed a pull request in {repo} as {pull!r}."
                )
            if _ref_name(pull, "head") == head and _ref_name(pull, "base") == base:
                return PullRequestRef(
                    repo, _pr_number(pull, f"the open pull request for {head} in {repo}")
                )
        return None

    def create_branch(self, repo: str, *, branch: str, from_branch: str) -> bool:
        """Idempotent: True if created, False if it already existed."""
        if self._branch_sha(repo, branch) is not None:
            return False
        sha = self._branch_sha(repo, from_branch)
        if sha is None:
            raise ScmError("not_found", f"Branch {from_branch!r} does not exist in {repo}.")
        try:
            self._request(
                "POST", f"/repos/{repo}/git/refs", input={"ref": f"refs/heads/{branch}", "sha": sha}
            )
        except GithubException as error:
            if error.status == 422 and "already exists" in _message(error):
                return False
            raise translate(error, source=self._source) from None
        return True

    def _branch_sha(self, repo: str, branch: str) -> str | None:
        try:
            _, data = self._request("GET", f"/repos/{repo}/git/ref/heads/{branch}")
        except GithubException as error:
            if error.status == 404:
                return None
            raise translate(error, source=self._source) from None
        target = data.get("object") if isinstance(data, dict) else None
        sha = target.get("sha") if isinstance(target, dict) else None
        if not isinstance(sha, str) or not sha:
            raise ScmError(
                "invalid_response",
                f"GitHub's answer for branch {branch!r} of {repo} has no commit SHA.",
            )
        return sha

    def delete_branch(self, repo: str, branch: str) -> bool:
        """Delete a head branch after its merge: True if deleted, False if already gone.
        Never the default branch (ScmError "refused", nothing sent); GitHub's refusal of a
        protected branch is "refused" too. Whether a convoy still uses it is the caller's."""
        _, data = self._call("GET", f"/repos/{repo}")
        default = data.get("default_branch") if isinstance(data, dict) else None
        if not isinstance(default, str) or not default:
            raise ScmError(
                "invalid_response", f"GitHub's answer for {repo} names no default branch."
            )
        if branch == default:
            raise ScmError("refused", f"{branch!r} is the default branch of {repo}: never deleted.")
        try:
            self._request("DELETE", f"/repos/{repo}/git/refs/heads/{branch}")
        except GithubException as error:
            message = _message(error)
            if error.status in {404, 422} and "does not exist" in message.lower():
                return False
            if error.status == 422:
                raise ScmError(
                    "refused", f"GitHub refuses to delete {branch!r} of {repo}: {message}"
                ) from None
            raise translate(error, source=self._source) from None
        return True

    def update_branch(self, ref: PullRequestRef, *, head_sha: str) -> bool:
        """Merge the base into the PR's branch (GitHub's update-branch); False when GitHub
        declines (head moved, nothing to update)."""
        try:
            self._request(
                "PUT",
                f"/repos/{ref.repo}/pulls/{ref.number}/update-branch",
                input={"expected_head_sha": head_sha},
            )
        except GithubException as error:
            if error.status == 422:
                logger.info("update-branch of %s declined: %s", ref, _message(error))
                return False
            raise translate(error, source=self._source) from None
        return True


#: One builder per kind, made once: batch_size caches by builder.
_TIMELINE_BUILDERS: dict[tuple[str, str, int], documents.DocumentBuilder] = {
    kind: functools.partial(documents.timeline_document, kind=kind)
    for kind in (documents.LABELED_EVENTS, documents.QUEUE_REMOVALS)
}


def _timeline_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    items = node.get("timelineItems")
    nodes = items.get("nodes") if isinstance(items, dict) else None
    return [n for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []


def _write_refusal(message: str) -> WriteKind:
    """GitHub's refusal of a mutation, by its message (type UNPROCESSABLE)."""
    text = message.lower()
    # "Pull request Pull request is in clean status" (or unstable: only optional checks
    # fail): GitHub would merge it now, so it will not wait for it.
    if any(f"{status} status" in text for status in ("clean", "unstable", "has_hooks")):
        return "clean"
    if "head" in text and ("expected" in text or "match" in text or "changed" in text):
        return "head_moved"
    if "not allowed" in text or "not enabled" in text or "merge queue-enabled" in text:
        return "not_allowed"
    if "something went wrong" in text or "timeout" in text:
        return "transient"
    return "refused"


def _entry(node: dict[str, Any]) -> MergeQueueEntry:
    position = node.get("position")
    state = node.get("state")
    return MergeQueueEntry(
        position=position if isinstance(position, int) else 0,
        state=state if state in MERGE_QUEUE_ENTRY_STATES else "UNKNOWN",
    )


def _auto_merge_request(node: dict[str, Any]) -> AutoMergeRequest:
    by = node.get("enabledBy")
    login = by.get("login") if isinstance(by, dict) else None
    method = node.get("mergeMethod")
    return AutoMergeRequest(
        enabled_by=login if isinstance(login, str) else None,
        method=method if method in MERGE_METHODS else "UNKNOWN",
        enabled_at=parse_time(node.get("enabledAt")),
    )


def _pr_number(data: Any, what: str) -> int:
    number = data.get("number") if isinstance(data, dict) else None
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ScmError("invalid_response", f"GitHub's answer for {what} has no PR number.")
    return number


def _ref_name(pull: dict[str, Any], side: str) -> str | None:
    branch = pull.get(side)
    if not isinstance(branch, dict):
        raise ScmError("invalid_response", f"GitHub's pull request has no {side} branch.")
    name = branch.get("ref")
    return name if isinstance(name, str) else None


def _message(error: GithubException) -> str:
    data = error.data
    if isinstance(data, dict):
        return str(data.get("message") or "")
    return str(data or "")


def _with_blocking(
    snapshot: PullRequestSnapshot, node: dict[str, Any], classifier: ThreadClassifier
) -> PullRequestSnapshot:
    from dataclasses import replace

    threads = parse_threads(node)
    blocking = 0
    for thread in threads:
        try:
            blocking += 1 if classifier(thread) else 0
        except Exception:
            logger.warning("thread classifier failed on %s; counting it blocking", snapshot.ref)
            blocking += 1
    # Threads past the page asked for stay blocking.
    blocking += max(0, snapshot.unresolved_threads - len(threads))
    return replace(snapshot, blocking_threads=blocking)
