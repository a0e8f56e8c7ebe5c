"""AppTest runs pages in this process: a page that queues a run must not also start a detached
`python -m core worker`, which would outlive the test and train on the CPU the next tests need.
The browser lane (tests/e2e) starts real workers and ends them itself."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_detached_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.analysis import sweep
    from core.runs import queue

    monkeypatch.setattr(queue, "ensure_worker", lambda: False)
    monkeypatch.setattr(sweep, "ensure_worker", lambda: False)
