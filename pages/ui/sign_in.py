"""Sign-in for a shared server, in front of every page (app.py asks `admitted` before it
runs the page the URL names, and shows `sign_in_page` instead when not).

- `[auth]` in .streamlit/secrets.toml: Streamlit's own st.login (OpenID Connect).
- Otherwise a password (CNN_STUDIO_PASSWORD, or `[studio] password`; see core.auth).
- Neither: the local default, open (the server binds to localhost only).
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from collections.abc import Mapping
from pathlib import Path

import streamlit as st

from core.auth import (
    AuthConfigError,
    account_allowed,
    allowed_accounts,
    configured_password,
    password_matches,
)
from pages.ui.common import plain

SIGNED_IN = "signed_in_with"  # session key: a fingerprint of the password the session gave
FAILED_SIGN_IN_DELAY = 1.0  # seconds: slows guessing in one session (a proxy limits the rest)


def sign_in_mode() -> tuple[str, str]:
    """("oidc", ""), ("password", the configured password) or ("open", "")."""
    try:
        secrets = read_secrets()
        if "auth" in secrets:
            return "oidc", ""
        password = configured_password(secrets)
    except AuthConfigError as error:
        st.error(f"Sign-in is misconfigured: {plain(error)}", icon=":material/lock:")
        st.stop()
    return ("open", "") if password is None else ("password", password)


def read_secrets() -> Mapping:
    """st.secrets, or {} when there is no secrets file; a file that exists but does not parse
    is an error (never silently an open server)."""
    if st.secrets.load_if_toml_exists():
        return st.secrets
    files = [Path(path).expanduser() for path in st.get_option("secrets.files")]
    if any(path.exists() for path in files):
        raise AuthConfigError("a secrets.toml file exists but could not be read. Check its TOML "
                              "syntax (streamlit's log names the line).")
    return {}


def admitted() -> bool:
    """Whether this session may see the pages."""
    mode, password = sign_in_mode()
    if mode == "oidc":
        return bool(st.user.get("is_logged_in")) and oidc_account_allowed()
    if mode == "password":
        return st.session_state.get(SIGNED_IN) == fingerprint(password)
    return True


def sign_out_control() -> None:
    """Who is signed in and a sign-out button, in the sidebar (nothing on an open server)."""
    mode, _ = sign_in_mode()
    if mode == "open":
        return
    if mode == "oidc":
        st.sidebar.caption(f"Signed in as {plain(signed_in_as())}")
    if st.sidebar.button("Sign out", key="sign_out", icon=":material/logout:"):
        if mode == "oidc":
            st.logout()
        st.session_state.pop(SIGNED_IN, None)
        st.rerun()


def sign_in_page() -> None:
    """What a session that is not admitted sees, whatever page it asked for."""
    st.title("CNN Studio")
    mode, password = sign_in_mode()
    if mode == "oidc":
        oidc_sign_in()
    else:
        password_sign_in(password)


def oidc_account_allowed() -> bool:
    try:
        return account_allowed(st.user, allowed_accounts(read_secrets()))
    except AuthConfigError as error:
        st.error(f"Sign-in is misconfigured: {plain(error)}", icon=":material/lock:")
        st.stop()


def signed_in_as() -> str:
    return str(st.user.get("email") or st.user.get("name") or "an unnamed user")


def authlib_installed() -> bool:
    return importlib.util.find_spec("authlib") is not None  # st.login needs it


def oidc_sign_in() -> None:
    if st.user.get("is_logged_in"):  # signed in at the provider, but not on the list
        st.error(f"{plain(signed_in_as())} may not use this server. Sign out and use an "
                 "allowed account, or ask the server's owner to add yours.",
                 icon=":material/lock:")
        if st.button("Sign out", key="sign_out_refused", icon=":material/logout:"):
            st.logout()
            st.rerun()
        return
    if not authlib_installed():
        st.error("Sign-in through an identity provider ([auth] in .streamlit/secrets.toml) "
                 "needs Authlib: run `.venv/bin/pip install 'Authlib>=1.3.2'` and restart "
                 "the server.", icon=":material/lock:")
        return
    st.info("This server is shared: sign in to continue.", icon=":material/lock:")
    if st.button("Sign in", type="primary", key="sign_in", icon=":material/login:"):
        st.login()


def fingerprint(password: str) -> str:
    """Changing the configured password signs every session out."""
    return hashlib.sha256(password.encode()).hexdigest()


def password_sign_in(password: str) -> None:
    with st.form("sign_in_form", clear_on_submit=True, enter_to_submit=True):
        given = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary", key="sign_in")
    if not submitted:
        st.caption("This server is shared: enter the password its owner gave you.")
        return
    if password and password_matches(given, password):
        st.session_state[SIGNED_IN] = fingerprint(password)
        st.rerun()
    time.sleep(FAILED_SIGN_IN_DELAY)
    st.error("Wrong password. Try again, or ask the server's owner for it.",
             icon=":material/lock:")
