"""A real dashboard for the end-to-end tests: `streamlit run app.py` on a free port in its own
process group and workspace, Debian's Chromium driven by Playwright, and the page helpers.

Playwright cannot download browsers here: Chromium comes from Debian (`apt-get install chromium`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT = 300.0  # seconds: generous bounds for a loaded 2-core machine, never a timing claim
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install "
                                  "chromium); playwright cannot download browsers")


DEPRECATION = re.compile(r"deprecat|will be removed|is no longer supported", re.IGNORECASE)


def deprecation_warnings(log: Path) -> list[str]:
    """The server log's lines that announce a deprecation (Streamlit logs each one, e.g.
    "`use_container_width` will be removed after 2025-12-31")."""
    if not log.exists():
        return []
    return [line for line in log.read_text(errors="replace").splitlines()
            if DEPRECATION.search(line)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("streamlit did not become healthy")


class Server:
    """`streamlit run app.py` in its own process group, restartable on the same workspace."""

    def __init__(self, home: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.home, self.log, self.env = home, log, env or {}
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> str:
        port = free_port()
        env = os.environ | {"CNN_STUDIO_HOME": str(self.home), "CUDA_VISIBLE_DEVICES": ""}
        env.pop("CNN_STUDIO_DB", None)
        env.pop("CNN_STUDIO_PASSWORD", None)
        env.update(self.env)
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                 "--server.headless", "true"], cwd=ROOT, env=env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.url = f"http://localhost:{port}"
        wait_healthy(self.url, self.process)
        return self.url

    def kill_group(self) -> None:
        """SIGKILL the server and every process in its group (a crash, an OOM kill)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server; fail if its log shows a deprecation warning, so a Streamlit
        release that deprecates an API the app uses cannot break the app unseen."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        warnings = deprecation_warnings(self.log)
        if warnings:
            pytest.fail("the server log shows a deprecation warning:\n" + "\n".join(warnings))


def open_page(page, url: str, timeout: float = 90) -> None:
    page.goto(url, timeout=timeout * 1000)
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout * 1000)
    wait_idle(page, timeout)


IDLE = "() => document.querySelector('[data-testid=\"stApp\"]')" \
       "?.dataset.testScriptState === 'notRunning'"


def wait_idle(page, timeout: float = 60) -> None:
    """Until the script run is over (the app root carries the script's state). The limits are
    wide because CI may share this 2-core machine with other work: a page waits, never fails,
    on a slow script run."""
    page.wait_for_timeout(300)
    page.wait_for_function(IDLE, timeout=timeout * 1000)


def uploader(page, label: str):
    """The file uploader whose label starts with `label`. Never the page's first one: uploaders
    draw a moment after the script run ends (their component loads lazily), and those of the
    other tabs can draw first, so a file given to `.first` on a page just opened could land in
    Classify's "Model card (.json)" uploader and never be classified."""
    return page.locator("[data-testid='stFileUploader']").filter(has_text=label)


def choose_file(page, label: str, path) -> None:
    uploader(page, label).locator("input[type=file]").set_input_files(path)


def screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to it."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(6000, max(1000, height + 50))})
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})


def assert_no_exception(page) -> None:
    errors = page.locator("[data-testid='stException']")
    assert errors.count() == 0, errors.first.inner_text()


def process_alive(pid: int) -> bool:
    """Alive and not a zombie (a killed child not yet reaped still has a /proc entry)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def is_worker(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"core" in command and b"worker" in command


def kill_our_workers(home: Path) -> None:
    """The workers our servers spawned for this workspace (pids in its store) idle for minutes
    after their run: end them."""
    db = home / "studio.db"
    if not db.exists():
        return
    with sqlite3.connect(db, timeout=30) as conn:
        pids = {row[0] for row in conn.execute("SELECT worker_pid FROM runs") if row[0]}
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "imports" in tables:  # the import worker (core.runs.imports)
            pids |= {row[0] for row in conn.execute("SELECT worker_pid FROM imports") if row[0]}
    for pid in pids:
        if is_worker(pid):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def served(home: Path, log: Path) -> Iterator[str]:
    """A dashboard on workspace `home` for the `with` block (its URL); then the server is
    stopped and the workers it started are ended."""
    server = Server(home, log)
    try:
        yield server.start()
    finally:
        server.stop()
        kill_our_workers(home)


def integrity(home: Path) -> str:
    with sqlite3.connect(home / "studio.db", timeout=30) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def wait_for(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")
