from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from io import StringIO

import pytest
from django.utils import timezone

from gastown.feedback.checks import check_prs
from gastown.logs import REDACTED, log_context, logging_config
from gastown.reconciler.tick import reconcile_town
from tests.factories import BeadFactory, RigFactory, TownFactory
from tests.feedback.conftest import make_mr

GHP = "ghp_" + "A1b2" * 9
PAT = "github_pat_11ABCDEFG0" + "x" * 60
GHO = "gho_" + "Z9" * 18
API = "gt_" + "k" * 43


class Captured:
    def __init__(self, stream: StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def json(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def capture_logs() -> Iterator:
    """The handler settings.LOGGING installed on the root logger (with its filters), writing
    to a buffer in the format asked for."""
    [handler] = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
    assert isinstance(handler, logging.StreamHandler)
    formatter, root_level = handler.formatter, logging.getLogger().level

    def start(log_format: str) -> Captured:
        config = logging_config(log_format=log_format, level="INFO")
        stream = StringIO()
        handler.setStream(stream)
        handler.setFormatter(config["formatters"]["line"]["()"]())
        logging.getLogger().setLevel(logging.INFO)
        return Captured(stream)

    stream = handler.stream
    yield start
    handler.setStream(stream)
    handler.setFormatter(formatter)
    logging.getLogger().setLevel(root_level)


def _raise_with(secret: str) -> None:
    raise RuntimeError(f"GitHub said no to {secret}")


@pytest.mark.parametrize("log_format", ["kv", "json", "plain"])
def test_tokens_and_configured_secrets_are_redacted(capture_logs, settings, log_format):
    settings.GITHUB_WEBHOOK_SECRET = "configured-webhook-secret"
    settings.METRICS_TOKEN = "configured-metrics-token"
    logs = capture_logs(log_format)
    log = logging.getLogger("gastown.test")
    log.warning("token %s and %s and %s", GHP, PAT, GHO)
    log.warning("headers: Authorization: Bearer abc.DEF-123_456 and token %s", "x" * 40)
    log.warning("api token %s, secret %s", API, settings.GITHUB_WEBHOOK_SECRET)
    log.info("scrape with %s; key %s", settings.METRICS_TOKEN, settings.SECRET_KEY)
    try:
        _raise_with(GHP)
    except RuntimeError:
        log.exception("call failed")
    text = logs.text
    for secret in (
        GHP,
        PAT,
        GHO,
        API,
        "abc.DEF-123_456",
        "x" * 40,
        "configured-webhook-secret",
        "configured-metrics-token",
        settings.SECRET_KEY,
    ):
        assert secret not in text
    assert text.count(REDACTED) >= 10
    assert "call failed" in text
    assert "RuntimeError: GitHub said no to" in text.replace("\\n", "\n")


def test_ordinary_words_are_not_redacted(capture_logs):
    logs = capture_logs("kv")
    logging.getLogger("gastown.test").info("the town token from GITHUB_TOKEN is used; ghp_ short")
    assert REDACTED not in logs.text


def test_json_lines_parse_and_carry_the_context(capture_logs):
    logs = capture_logs("json")
    log = logging.getLogger("gastown.test")
    with log_context(town="acme", tick="2026-11-30T22:00:00+00:00"):
        log.info("tick started")
        with log_context(bead=7, pr="https://github.com/o/r/pull/1"):
            try:
                _raise_with("nothing")
            except RuntimeError:
                log.exception("two\nlines")
        log.info("tick ended")
    log.info("outside")
    records = logs.json()
    assert len(records) == 4 == len(logs.lines)
    first, failed, ended, outside = records
    assert (first["town"], first["tick"], first["msg"]) == (
        "acme",
        "2026-11-30T22:00:00+00:00",
        "tick started",
    )
    assert "bead" not in first
    assert (failed["bead"], failed["pr"], failed["msg"], failed["level"]) == (
        7,
        "https://github.com/o/r/pull/1",
        "two\nlines",
        "ERROR",
    )
    assert "RuntimeError" in failed["exc"]
    assert "bead" not in ended and ended["town"] == "acme"
    assert not {"town", "bead", "pr", "tick"} & set(outside)
    assert {"ts", "level", "logger", "msg"} <= set(outside)


def test_key_value_lines_stay_on_one_line(capture_logs):
    logs = capture_logs("kv")
    log = logging.getLogger("gastown.test")
    with log_context(town="acme", bead=12):
        try:
            _raise_with("nothing")
        except RuntimeError:
            log.exception('a "quoted"\nmessage')
    [line] = logs.lines
    assert " level=ERROR logger=gastown.test town=acme bead=12 " in line
    assert 'msg="a \\"quoted\\"\\nmessage"' in line
    assert "exc=" in line and "RuntimeError" in line


@pytest.mark.django_db
def test_a_reconciler_tick_logs_its_town_tick_and_bead(capture_logs, settings):
    settings.AGENT_RUNTIME_URL = "http://127.0.0.1:9/dispatch"
    settings.AGENT_RUNTIME_SECRET = "runtime-secret"
    bead = BeadFactory(town=TownFactory(slug="acme"))
    now = timezone.now()
    logs = capture_logs("json")
    reconcile_town(bead.town, now=now)
    [failed] = [r for r in logs.json() if r["msg"].startswith("dispatch of bead")]
    assert (failed["town"], failed["tick"], failed["bead"]) == ("acme", now.isoformat(), bead.pk)
    assert "pr" not in failed


@pytest.mark.django_db
def test_a_feedback_check_logs_its_town_bead_and_pr(capture_logs, fake_github):
    town = TownFactory(slug="acme", code_review=False, auto_merge=True)
    rig = RigFactory(town=town, repo="octo/app")
    fake_github.create_repo("octo/app").allowed_merge_methods = set()
    mr = make_mr(fake_github, rig)
    logs = capture_logs("json")
    check_prs()
    refusals = [r for r in logs.json() if r["msg"].startswith("merge of")]
    assert len(refusals) == 4  # one per merge method, then the outcome
    for refused in refusals:
        assert (refused["town"], refused["bead"], refused["pr"]) == ("acme", mr.bead_id, mr.pr_url)
    assert "test-token" not in logs.text  # the fake GitHub's GITHUB_TOKEN
