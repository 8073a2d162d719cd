"""Sign-in and a dashboard POST through a proxy that terminates TLS and says so in
X-Forwarded-Proto (README, "Deploying"), with the production security settings on."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from gastown.models import Town

pytestmark = pytest.mark.django_db

HOST = "gastown.example.com"
ORIGIN = f"https://{HOST}"


@pytest.fixture
def production(settings):
    settings.ALLOWED_HOSTS = [HOST]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    return settings


def _browser(*, forwarded_proto: str | None) -> Client:
    """A client as the proxy forwards a browser's requests: plain HTTP to the app, the public
    host, the browser's Origin on POSTs and CSRF checks enforced."""
    headers = {"Host": HOST}
    if forwarded_proto:
        headers["X-Forwarded-Proto"] = forwarded_proto
    return Client(enforce_csrf_checks=True, headers=headers)


def _csrf_token(response) -> str:
    return re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', response.content)[1].decode()


def _sign_in(browser: Client):
    form = browser.get("/accounts/login/")
    assert form.status_code == 200
    return browser.post(
        "/accounts/login/",
        {"username": "lead", "password": "pw", "csrfmiddlewaretoken": _csrf_token(form)},
        headers={"Origin": ORIGIN},
    )


def test_sign_in_and_an_override_work_behind_a_tls_proxy(production, lead, town):
    production.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    browser = _browser(forwarded_proto="https")

    signed_in = _sign_in(browser)
    assert signed_in.status_code == 302, signed_in.content[:300]
    assert signed_in["Location"] == "/"
    assert signed_in.cookies["sessionid"]["secure"]
    assert signed_in["Strict-Transport-Security"] == "max-age=31536000"

    form = browser.get("/towns/acme/overrides/town_pause/")
    assert form.status_code == 200
    paused = browser.post(
        "/towns/acme/overrides/town_pause/",
        {"reason": "incident", "csrfmiddlewaretoken": _csrf_token(form)},
        headers={"Origin": ORIGIN},
    )
    assert paused.status_code == 302
    assert Town.objects.get(pk=town.pk).paused


def test_without_the_proxy_header_setting_sign_in_is_refused(production, lead):
    """What the issue saw: the app thinks the request is plain HTTP, so the browser's https
    Origin does not match and CSRF refuses the sign-in."""
    production.SECURE_SSL_REDIRECT = False
    production.SECURE_PROXY_SSL_HEADER = None
    assert _sign_in(_browser(forwarded_proto="https")).status_code == 403


def test_plain_http_is_redirected_to_https(production):
    production.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = _browser(forwarded_proto="http").get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"] == f"https://{HOST}/accounts/login/"


def test_a_trusted_origin_on_another_host_may_post(production, lead):
    """A proxy on another public name (or port) than the Host it forwards."""
    production.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    def sign_in_from_ops() -> int:
        # A new client each time: the CSRF middleware reads the trusted origins once.
        browser = _browser(forwarded_proto="https")
        form = browser.get("/accounts/login/")
        data = {"username": "lead", "password": "pw", "csrfmiddlewaretoken": _csrf_token(form)}
        return browser.post(
            "/accounts/login/", data, headers={"Origin": "https://ops.example.com"}
        ).status_code

    assert sign_in_from_ops() == 403
    production.CSRF_TRUSTED_ORIGINS = ["https://ops.example.com"]
    assert sign_in_from_ops() == 302
