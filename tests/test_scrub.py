"""The one helper that takes secrets out of error texts."""

from __future__ import annotations

from pydantic import SecretStr

from dns_lifecycle.channels.email.smtp import auth_forms
from dns_lifecycle.core.secrets import MASK, scrub


def test_every_occurrence_of_every_secret_is_masked():
    """Each secret, plain or SecretStr, is replaced wherever it occurs."""
    text = "token abc and key XYZ, token abc again"
    assert (
        scrub(text, ["abc", SecretStr("XYZ")]) == f"token {MASK} and key {MASK}, token {MASK} again"
    )


def test_a_secret_containing_another_is_masked_whole():
    """The longer secret goes first, so no part of it is left beside a mask."""
    assert scrub("pass=hunter2-long", ["hunter2", "hunter2-long"]) == f"pass={MASK}"


def test_missing_and_empty_secrets_change_nothing():
    """An unset secret (None, "", an empty SecretStr) does not mask the empty string."""
    assert scrub("nothing to hide", [None, "", SecretStr("")]) == "nothing to hide"


def test_smtp_auth_forms_cover_plain_and_login():
    """The password as is, AUTH PLAIN's base64 and AUTH LOGIN's two base64 lines."""
    forms = auth_forms("mailer", SecretStr("pw"))
    assert forms == ["pw", "AG1haWxlcgBwdw==", "cHc=", "bWFpbGVy"]
    assert auth_forms("mailer", None) == []
