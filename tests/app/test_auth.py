"""Sign-in for a shared server: the password check (core.auth) and the gate in front of every
page (app.py + pages/ui/sign_in.py) under Streamlit's AppTest: a wrong password is refused with
a message, the right one admits, sign-out signs out, OIDC (st.login) when [auth] is
configured, and with nothing configured the local default stays open."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import pages.ui.sign_in
from core.auth import (
    PASSWORD_ENV,
    AuthConfigError,
    configured_password,
    hash_password,
    password_matches,
)
from pages.ui.common import PAGES

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PASSWORD = "correct horse battery staple"
OIDC = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s3cret",
        "client_id": "studio", "client_secret": "xyz",
        "server_metadata_url": "https://id.example.org/.well-known/openid-configuration"}


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


@pytest.fixture
def open_server(studio_home, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setattr(pages.ui.sign_in, "FAILED_SIGN_IN_DELAY", 0.0)
    return studio_home


def app(secrets: dict | None = None, user: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets.update(secrets or {})
    if user is not None:
        at.user = user
    return at.run()


def sign_in(at: AppTest, password: str) -> AppTest:
    at.text_input(key="sign_in_password").input(password)
    return at.button(key="sign_in").click().run()


def on_sign_in_page(at: AppTest) -> bool:
    return [title.value for title in at.title] == ["CNN Studio"] and not at.metric


# core.auth ----------------------------------------------------------------------------------

def test_plain_and_hashed_passwords_match_only_the_right_password() -> None:
    hashed = hash_password(PASSWORD, iterations=1000)
    assert hashed.startswith("pbkdf2_sha256$1000$") and PASSWORD not in hashed
    for expected in (PASSWORD, hashed):
        assert password_matches(PASSWORD, expected)
        assert not password_matches(PASSWORD + " ", expected)
        assert not password_matches("", expected)
    assert hash_password(PASSWORD, iterations=1000) != hashed  # a fresh salt every time


def test_a_malformed_hash_is_a_configuration_error_not_a_match() -> None:
    with pytest.raises(AuthConfigError, match="malformed.*python -m core.auth"):
        password_matches(PASSWORD, "pbkdf2_sha256$many$salt")


def test_the_environment_wins_over_secrets_and_an_empty_password_is_refused() -> None:
    secrets = {"studio": {"password": "from-secrets"}}
    assert configured_password({}, {}) is None
    assert configured_password(secrets, {}) == "from-secrets"
    assert configured_password(secrets, {PASSWORD_ENV: "from-env"}) == "from-env"
    with pytest.raises(AuthConfigError, match="empty"):
        configured_password({}, {PASSWORD_ENV: "  "})


# The gate in the dashboard ------------------------------------------------------------------

def test_with_nothing_configured_the_pages_are_open(open_server) -> None:
    at = app()
    assert not at.exception, at.exception
    assert at.metric, "the Home page shows its counts"
    assert not at.sidebar.button, "no sign-out button on an open server"


@pytest.mark.parametrize("configured", ["env", "secrets", "hashed secrets"])
def test_a_wrong_password_is_refused_and_the_right_one_admits(open_server, monkeypatch,
                                                              configured) -> None:
    secrets = {}
    if configured == "env":
        monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    else:
        stored = PASSWORD if configured == "secrets" else hash_password(PASSWORD, iterations=1000)
        secrets = {"studio": {"password": stored}}
    at = app(secrets)
    assert on_sign_in_page(at)

    sign_in(at, "letmein")
    assert not at.exception, at.exception
    assert "Wrong password" in texts(at.error)
    assert on_sign_in_page(at)

    sign_in(at, PASSWORD)
    assert not at.exception, at.exception
    assert not at.error
    assert at.metric, "admitted: the Home page shows its counts"
    assert at.sidebar.button(key="sign_out")


@pytest.mark.parametrize("key", sorted(PAGES))
def test_every_page_is_behind_the_password(open_server, monkeypatch, key) -> None:
    """A page file run by itself (as Streamlit runs one on a fresh server whose first request
    is that page's URL) shows the sign-in form and nothing of the page."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    at = AppTest.from_file(PAGES[key], default_timeout=60).run()
    assert not at.exception, at.exception
    assert on_sign_in_page(at)
    assert not at.file_uploader and not at.tabs and not at.selectbox, "nothing of the page"
    sign_in(at, PASSWORD)
    assert not at.exception, at.exception
    assert not on_sign_in_page(at), "signed in, the page opens"


def test_sign_out_shows_the_sign_in_page_again(open_server, monkeypatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    at = sign_in(app(), PASSWORD)
    assert at.metric
    at.sidebar.button(key="sign_out").click().run()
    assert on_sign_in_page(at)


def test_changing_the_password_signs_sessions_out(open_server, monkeypatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    at = sign_in(app(), PASSWORD)
    monkeypatch.setenv(PASSWORD_ENV, "a new one")
    at.run()
    assert on_sign_in_page(at)


def test_an_identity_provider_in_secrets_uses_st_login(open_server, monkeypatch) -> None:
    monkeypatch.setattr(pages.ui.sign_in, "authlib_installed", lambda: False)
    at = app({"auth": OIDC}, user={"is_logged_in": False})
    assert on_sign_in_page(at)
    assert "needs Authlib" in texts(at.error)

    monkeypatch.setattr(pages.ui.sign_in, "authlib_installed", lambda: True)
    at = app({"auth": OIDC}, user={"is_logged_in": False})
    assert on_sign_in_page(at)
    assert at.button(key="sign_in").label == "Sign in"

    at = app({"auth": OIDC}, user={"is_logged_in": True, "email": "ada<b>@example.org"})
    assert not at.exception, at.exception
    assert at.metric
    assert "Signed in as ada" in texts(at.sidebar.caption)
    at.sidebar.button(key="sign_out").click().run()  # st.logout
    assert on_sign_in_page(at)


def test_only_listed_accounts_pass_the_identity_provider(open_server, monkeypatch) -> None:
    monkeypatch.setattr(pages.ui.sign_in, "authlib_installed", lambda: True)
    secrets = {"auth": OIDC, "studio": {"allowed_accounts": ["ada@example.org", "@lab.org"]}}
    for email, verified, admitted in [("ada@example.org", True, True),
                                      ("Bob@Lab.org", True, True),
                                      ("bob@lab.org", False, False),
                                      ("eve@example.org", True, False)]:
        at = app(secrets, user={"is_logged_in": True, "email": email, "email_verified": verified})
        assert not at.exception, at.exception
        assert bool(at.metric) == admitted, email
        if not admitted:
            assert "may not use this server" in texts(at.error)
            at.button(key="sign_out_refused").click().run()
            assert not at.error and at.button(key="sign_in")


def test_an_unreadable_secrets_file_is_an_error_not_an_open_server(open_server, tmp_path,
                                                                  monkeypatch) -> None:
    broken = tmp_path / "secrets.toml"
    broken.write_text("[studio\npassword = ")
    real_get_option = pages.ui.sign_in.st.get_option
    monkeypatch.setattr(pages.ui.sign_in.st, "get_option", lambda name: [str(broken)]
                        if name == "secrets.files" else real_get_option(name))
    at = app()
    assert "misconfigured" in texts(at.error)
    assert not at.metric
