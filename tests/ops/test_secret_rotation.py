from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from gastown.models import Town
from gastown.secrets import SecretUnreadable
from gastown.services.secrets import secrets_rotate
from tests.factories import TownFactory

pytestmark = pytest.mark.django_db

OLD, NEW = "old-secret-key-" + "o" * 40, "new-secret-key-" + "n" * 40


def _town_with_token_under(key: str, token: str = "ghp_rotateme") -> Town:
    with override_settings(SECRET_KEY=key, SECRET_KEY_FALLBACKS=[]):
        town = TownFactory()
        town.set_github_token(token)
        town.save()
    return town


def _read(town: Town) -> str | None:
    return Town.objects.get(pk=town.pk).github_token()


def test_a_rotated_key_with_the_old_one_in_fallbacks_still_reads_the_token():
    town = _town_with_token_under(OLD)
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
        assert _read(town) == "ghp_rotateme"


def test_a_rotated_key_without_the_fallback_cannot_read_the_token():
    town = _town_with_token_under(OLD)
    with (
        override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]),
        pytest.raises(SecretUnreadable, match="SECRET_KEY_FALLBACKS"),
    ):
        _read(town)


def test_rotate_secrets_keeps_the_token_readable_once_the_fallback_is_dropped(capsys):
    town = _town_with_token_under(OLD)
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
        call_command("rotate_secrets")
    out = capsys.readouterr().out
    assert "1 secret(s) re-encrypted" in out
    assert "ghp_rotateme" not in out
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
        assert _read(town) == "ghp_rotateme"


def test_rotate_secrets_is_idempotent():
    town = _town_with_token_under(OLD)
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
        first = secrets_rotate()
        ciphertext = Town.objects.get(pk=town.pk).github_token_encrypted
        second = secrets_rotate()
    assert (first.rotated, first.current) == (1, 0)
    assert (second.rotated, second.current) == (0, 1)
    assert Town.objects.get(pk=town.pk).github_token_encrypted == ciphertext


def test_rotate_secrets_names_towns_no_key_decrypts_and_leaves_them_alone(capsys):
    lost = _town_with_token_under("a-key-nobody-kept-" + "x" * 40)
    kept = _town_with_token_under(OLD, token="ghp_kept")
    TownFactory()  # no token: nothing to do
    before = Town.objects.get(pk=lost.pk).github_token_encrypted
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
        with pytest.raises(CommandError) as raised:
            call_command("rotate_secrets")
        assert _read(kept) == "ghp_kept"
    assert lost.slug in str(raised.value)
    assert "1 secret(s) re-encrypted" in str(raised.value)
    assert Town.objects.get(pk=lost.pk).github_token_encrypted == before
    assert "ghp_" not in str(raised.value) + capsys.readouterr().out


def test_rotate_secrets_also_re_encrypts_the_github_app_key():
    pem = "-----BEGIN PRIVATE KEY-----\nMIIBrotate\n-----END PRIVATE KEY-----\n"
    with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
        town = TownFactory()
        town.set_github_token("ghp_rotateme")
        town.set_github_app_private_key(pem)
        town.save()
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD]):
        summary = secrets_rotate()
    assert summary.rotated == 2
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[]):
        fresh = Town.objects.get(pk=town.pk)
        assert fresh.github_app_private_key() == pem
        assert fresh.github_token() == "ghp_rotateme"
