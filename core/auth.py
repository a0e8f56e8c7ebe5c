"""The shared server's password: where it is configured, and a constant-time check.

The dashboard (app.py) asks for it when one is configured; with none, the local default
(localhost only) stays open. The password comes from the environment (CNN_STUDIO_PASSWORD)
or from `.streamlit/secrets.toml`:

    [studio]
    password = "pbkdf2_sha256$600000$<salt>$<hash>"   # or the password itself

With `[auth]` (Streamlit's st.login, OpenID Connect) the provider signs people in instead;
`[studio] allowed_accounts = ["ada@example.org", "@example.org"]` narrows who may enter.

Print the hashed form of a password (read without echo) with

    python -m core.auth
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import os
import secrets
import sys
from collections.abc import Mapping

PASSWORD_ENV = "CNN_STUDIO_PASSWORD"
HASH_SCHEME = "pbkdf2_sha256"
HASH_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256


class AuthConfigError(ValueError):
    """A configured password that cannot be used (a malformed hash, an empty password)."""


def configured_password(secrets_: Mapping | None = None,
                        environ: Mapping[str, str] | None = None) -> str | None:
    """The password (plain or hashed) the server asks for, or None for an open server.
    The environment wins over secrets.toml's `[studio] password`."""
    environ = os.environ if environ is None else environ
    value = environ.get(PASSWORD_ENV)
    if value is None and secrets_:
        section = secrets_.get("studio") or {}
        value = section.get("password") if isinstance(section, Mapping) else None
    if value is None:
        return None
    value = str(value)
    if not value.strip():
        raise AuthConfigError(
            f"The configured password is empty. Set {PASSWORD_ENV} (or [studio] password in "
            ".streamlit/secrets.toml) to a real password, or remove it to run unprotected "
            "on localhost.")
    return value


def allowed_accounts(secrets_: Mapping | None) -> list[str]:
    """`[studio] allowed_accounts` for sign-in through an identity provider: e-mail addresses
    and `@domain` entries; empty: anyone the provider signs in."""
    section = (secrets_ or {}).get("studio") or {}
    allowed = section.get("allowed_accounts", []) if isinstance(section, Mapping) else []
    if isinstance(allowed, str) or not all(isinstance(entry, str) for entry in allowed):
        raise AuthConfigError('[studio] allowed_accounts must be a list of e-mail addresses and '
                              '"@domain" entries, e.g. ["ada@example.org", "@example.org"].')
    return [entry.strip().lower() for entry in allowed if entry.strip()]


def account_allowed(claims: Mapping, allowed: list[str]) -> bool:
    """Whether the identity token's claims name an allowed account (a verified e-mail that is
    listed, or in a listed @domain); any account when nothing is listed."""
    if not allowed:
        return True
    email = str(claims.get("email") or "").strip().lower()
    if not email or claims.get("email_verified") is False:
        return False
    domain = "@" + email.rpartition("@")[2]
    return email in allowed or domain in allowed


def hash_password(password: str, *, salt: bytes | None = None,
                  iterations: int = HASH_ITERATIONS) -> str:
    """`pbkdf2_sha256$<iterations>$<salt>$<hash>` (salt and hash in unpadded base64)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join([HASH_SCHEME, str(iterations), b64(salt), b64(digest)])


def password_matches(given: str, expected: str) -> bool:
    """Whether `given` is the configured password `expected` (plain, or hashed as
    hash_password writes it), compared in constant time."""
    if expected.startswith(HASH_SCHEME + "$"):
        iterations, salt, digest = parse_hash(expected)
        attempt = hashlib.pbkdf2_hmac("sha256", given.encode(), salt, iterations)
        return hmac.compare_digest(attempt, digest)
    return hmac.compare_digest(given.encode(), expected.encode())


def parse_hash(hashed: str) -> tuple[int, bytes, bytes]:
    try:
        _, iterations, salt, digest = hashed.split("$")
        return int(iterations), unb64(salt), unb64(digest)
    except ValueError:  # wrong field count, a non-number, bad base64 (binascii.Error)
        raise AuthConfigError(
            f"The configured password looks hashed ({HASH_SCHEME}$…) but is malformed. "
            "Make it again with `python -m core.auth`.") from None


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def main() -> int:
    password = getpass.getpass("Password for the shared server: ")
    if not password or getpass.getpass("Again: ") != password:
        print("The two entries differ (or are empty); nothing printed.", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
