"""The Streamlit server SIGKILLed while a run trains.

A real `streamlit run app.py` (headless, a free port, its own workspace and process group)
is opened in Chromium, which makes the server start the detached training worker for a
queued run. Then the server's whole process group is SIGKILLed:

- alone: the worker (its own session) keeps training and the run completes; the store passes
  `PRAGMA integrity_check`; a restarted server shows the finished run.
- with the worker: the run is left `running`; a restarted server reconciles it to
  `interrupted`, and Resume in the browser continues it to completion, each epoch's metrics
  recorded once.

Only processes this test started are killed: the server, and the worker that server spawned
(checked by its parent pid and its command line).
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_app import (
    NEEDS_CHROMIUM,
    Server,
    assert_no_exception,
    integrity,
    is_worker,
    kill_our_workers,
    open_page,
    parent_pid,
    process_alive,
    wait_for,
)

from core.config import TrainConfig
from core.runs import queue
from core.store import Store

EPOCHS = 12  # long enough (several seconds even on a GPU) to be mid-training at the kill

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    NEEDS_CHROMIUM,
]


@pytest.fixture
def workspace(shapes_dataset, studio_home: Path) -> Iterator[Path]:
    yield studio_home
    kill_our_workers(studio_home)


@pytest.fixture
def server(workspace: Path, tmp_path: Path) -> Iterator[Server]:
    server = Server(workspace, tmp_path / "streamlit.log")
    yield server
    server.stop()


def tab(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    open_page(page, url)
    return page


def queue_run(name: str) -> str:
    """Queued through the core API with no worker: the server's page must start one."""
    config = TrainConfig(data="shapes", model="tiny-cnn", epochs=EPOCHS, device="cpu", name=name)
    run_id = queue.submit(config, Store(), start_worker=False)
    assert not queue.worker_alive()
    return run_id


def wait_until_trained_an_epoch(store: Store, run_id: str, server: Server) -> int:
    """Wait until the worker the server started is training `run_id` past its first epoch;
    returns the worker's pid."""
    def training():
        run = store.get_run(run_id)
        return run["status"] == "running" and run["epoch"] >= 1 and run["worker_pid"]

    pid = wait_for(training, "the server's worker to train the first epoch")
    assert parent_pid(pid) == server.process.pid, "the server itself started the worker"
    assert is_worker(pid)
    return pid


def assert_every_epoch_once(store: Store, run_id: str) -> None:
    rows = store.metrics(run_id)
    assert max(Counter((row["step"], row["name"]) for row in rows).values()) == 1
    val_acc = store.metrics(run_id, names=["epoch/val_acc"])
    assert [row["epoch"] for row in val_acc] == list(range(1, EPOCHS + 1))


def test_the_worker_outlives_a_killed_server_and_the_run_completes(server, browser, workspace):
    store = Store()
    run_id = queue_run("survivor")
    page = tab(browser, server.start())  # Home reconciles and starts a worker for the queue
    worker = wait_until_trained_an_epoch(store, run_id, server)

    page.close()
    server.kill_group()
    assert store.get_run(run_id)["status"] == "running"
    assert process_alive(worker), "the worker left with the server"

    wait_for(lambda: store.get_run(run_id)["status"] != "running", "the run to finish")
    run = store.get_run(run_id)
    assert run["status"] == "completed", run["error"]
    assert run["worker_pid"] == worker  # the same worker, never restarted
    assert integrity(workspace) == "ok"
    assert_every_epoch_once(store, run_id)

    page = tab(browser, f"{server.start()}/runs")  # restarted: the finished run is there
    page.get_by_text("survivor").first.wait_for()
    page.get_by_text("Test accuracy").first.wait_for()
    assert_no_exception(page)


def test_server_and_worker_killed_the_run_is_interrupted_and_resumes(server, browser,
                                                                     workspace):
    store = Store()
    run_id = queue_run("phoenix")
    page = tab(browser, server.start())
    worker = wait_until_trained_an_epoch(store, run_id, server)

    page.close()
    server.kill_group()
    os.kill(worker, signal.SIGKILL)  # ours: the worker the killed server had started
    wait_for(lambda: not process_alive(worker), "the worker to die")
    assert store.get_run(run_id)["status"] == "running"  # what SIGKILL leaves behind
    assert integrity(workspace) == "ok"
    with sqlite3.connect(workspace / "studio.db", timeout=30) as conn:  # a minute passes
        conn.execute("UPDATE runs SET heartbeat_at = heartbeat_at - 60 WHERE run_id = ?",
                     (run_id,))

    page = tab(browser, f"{server.start()}/runs")  # start-up reconciles the stale run
    assert store.get_run(run_id)["status"] == "interrupted"
    page.get_by_text("interrupted").first.wait_for()
    assert_no_exception(page)

    page.get_by_role("button", name="Resume", exact=True).click()  # the new server's worker
    wait_for(lambda: store.get_run(run_id)["status"] not in ("interrupted", "queued", "running"),
             "the resumed run to end")
    run = store.get_run(run_id)
    assert run["status"] == "completed", run["error"]
    assert run["worker_pid"] != worker
    assert integrity(workspace) == "ok"
    assert_every_epoch_once(store, run_id)
