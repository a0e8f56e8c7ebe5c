"""`serve`: one run's model over HTTP (core.serving.api), with uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from core.cli.common import Result, command

TOKEN_ENV = "CNN_STUDIO_API_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_token(args: argparse.Namespace) -> str | None:
    """--token, else CNN_STUDIO_API_TOKEN; refuses a non-loopback host without either."""
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(args.host):
        raise ValueError(f"Refusing to listen on {args.host} without a token: anyone who can "
                         "reach this machine could use the model. Give --token T (or set "
                         f"{TOKEN_ENV}), or keep the default --host 127.0.0.1.")
    return token


def serve(args: argparse.Namespace) -> Result | None:
    import uvicorn

    from core.serving.api import create_app, listening_socket  # torch, fastapi
    from core.serving.infer import load_model
    from core.store import Store

    token = serve_token(args)
    store = Store()
    loaded = load_model(args.run, store)
    app = create_app(loaded, store.get_run(loaded.run_id), token=token)
    sock = listening_socket(args.host, args.port)
    guard = "a bearer token" if token else "no token (loopback only)"
    print(f"serving run {loaded.run_id} at http://{args.host}:{args.port} with {guard}; "
          f"OpenAPI docs at http://{args.host}:{args.port}/docs", file=sys.stderr)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
    return None


def register(commands) -> None:
    sub = command(commands, "serve", serve, "serve a run's model over HTTP (FastAPI)")
    sub.add_argument("--run", required=True)
    sub.add_argument("--host", default="127.0.0.1",
                     help="address to listen on; anything but loopback needs a token")
    sub.add_argument("--port", type=int, default=8000)
    sub.add_argument("--token", help=f"bearer token clients must send (or set {TOKEN_ENV})")
