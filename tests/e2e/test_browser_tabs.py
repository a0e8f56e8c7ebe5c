"""Runs queued from two browser tabs at the same moment, with the store under a soak.

Two tabs of one `streamlit run app.py` press "Start training" at the same instant (a click
scheduled in each page for the same wall-clock millisecond), ROUNDS times, while SOAK_WRITERS
processes stream metric batches, heartbeats and updates into the same SQLite store and
SOAK_READERS processes poll it as pages do. Every click must queue exactly one run (the run
each tab was sent to), every run must finish, and no lock error, traceback or st.exception may
reach either tab or the soak processes.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import re
import sqlite3
import time
import traceback
from collections import Counter

import pytest
from live_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Server,
    assert_no_exception,
    integrity,
    kill_our_workers,
    open_page,
    wait_for,
    wait_idle,
)
from playwright.sync_api import sync_playwright

from core.config import TrainConfig
from core.store import Store

ROUNDS = 3
SOAK_WRITERS, SOAK_READERS = 3, 2
ERROR_TEXT = ("database is locked", "Traceback", "OperationalError", "Could not")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium"),
]


# The soak: processes writing and reading the store while the tabs queue runs ---------------

def soak_writer(seed: int, stop, results, ready) -> None:
    """Runs of its own (status `stopped`, so no worker claims them): metric batches, some
    repeated as a resumed run writes them, heartbeats, updates, and start-up reconciles."""
    store, rng, ops, errors = Store(), random.Random(seed), Counter(), []
    config = TrainConfig(data="shapes", epochs=1, device="cpu").to_dict()
    runs, step, announced = [], 0, False
    while not stop.is_set():
        try:
            if len(runs) < 3:
                runs.append(store.create_run(config, name=f"soak-{seed}-{len(runs)}",
                                             status="stopped"))
                ops["create"] += 1
            run_id = rng.choice(runs)
            rows = [(step + i, 0.5, name, rng.random())
                    for i in range(20) for name in ("train/loss", "train/lr")]
            store.add_metrics(run_id, rows)
            if rng.random() < 0.2:
                store.add_metrics(run_id, rows)
            store.heartbeat(run_id)
            store.update_run(run_id, best_val_acc=rng.random())
            if rng.random() < 0.1:
                store.mark_stale_runs(max_age_s=3600)
            ops["write"] += 1
            step += 20
        except Exception:  # noqa: BLE001 - counting every failure is the point
            errors.append(traceback.format_exc(limit=3))
        if not announced:  # Soak.start waits for every process's first try at the store
            ready.put(True)
            announced = True
        time.sleep(0.01)  # a busy store, not a CPU hog on a shared 2-core machine
    results.put(("writer", dict(ops), errors))


def soak_reader(seed: int, stop, results, ready) -> None:
    store, rng, ops, errors = Store(), random.Random(seed), Counter(), []
    announced = False
    while not stop.is_set():
        try:
            runs = store.list_runs()
            if runs:
                store.metrics(rng.choice(runs)["run_id"])
            store.list_runs(status=["running", "queued"])
            ops["read"] += 1
        except Exception:  # noqa: BLE001
            errors.append(traceback.format_exc(limit=3))
        if not announced:  # Soak.start waits for every process's first try at the store
            ready.put(True)
            announced = True
        time.sleep(0.01)
    results.put(("reader", dict(ops), errors))


class Soak:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # CNN_STUDIO_HOME goes with the env
        self.stop, self.results, self.ready = context.Event(), context.Queue(), context.Queue()
        queues = (self.stop, self.results, self.ready)
        self.processes = [context.Process(target=soak_writer, args=(seed, *queues))
                          for seed in range(SOAK_WRITERS)]
        self.processes += [context.Process(target=soak_reader, args=(100 + seed, *queues))
                           for seed in range(SOAK_READERS)]

    def start(self) -> None:
        """Start every soak process and wait until each has done its first store operation: a
        spawned process imports torch and the store first, which on a loaded CI machine once
        took longer than the whole test, so the tabs ran with no soak at all."""
        for process in self.processes:
            process.start()
        for started in range(len(self.processes)):
            try:
                self.ready.get(timeout=180)
            except queue.Empty:
                alive = sum(process.is_alive() for process in self.processes)
                raise AssertionError(f"only {started} of {len(self.processes)} soak processes "
                                     f"reached the store in 180 s ({alive} alive)") from None

    def finish(self) -> tuple[Counter, list[str]]:
        self.stop.set()
        reports = [self.results.get(timeout=120) for _ in self.processes]
        for process in self.processes:
            process.join(timeout=30)
        ops, errors = Counter(), []
        for _, counts, failures in reports:
            ops.update(counts)
            errors += failures
        return ops, errors

    def kill(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()


# The tabs ----------------------------------------------------------------------------------

CLICK_AT = """([label, at]) => {
  const button = [...document.querySelectorAll('button')]
    .find(b => b.innerText.includes(label) && !b.disabled);
  if (!button) return false;
  setTimeout(() => button.click(), Math.max(0, at - Date.now()));
  return true;
}"""


RUN_ID = re.compile(r"run id (\S+)")  # the Runs page's caption of the run shown
SENT_TO_A_RUN = r"() => location.pathname.endsWith('/runs') && /run id \S+/.test(" \
                r"document.querySelector('[data-testid=\"stMain\"]').innerText)"


def ready_to_start(tab, url: str) -> None:
    """The Train page with the defaults (shapes, tiny-cnn) and one epoch."""
    open_page(tab, f"{url}/train")
    epochs = tab.get_by_label("Epochs", exact=True)
    epochs.fill("1")
    epochs.press("Enter")
    wait_idle(tab, timeout=90)  # the other tab's run trains and the soak writes meanwhile
    assert_clean(tab)


def start_together(tabs: list) -> list[str]:
    """Press Start training in every tab at the same millisecond; the run id each was sent to."""
    at = int(time.time() * 1000) + 500
    for tab in tabs:
        assert tab.evaluate(CLICK_AT, ["Start training", at]), "no enabled Start button"
    run_ids = []
    for tab in tabs:
        tab.wait_for_function(SENT_TO_A_RUN, timeout=120_000)
        run_ids += RUN_ID.findall(tab.inner_text("[data-testid='stMain']"))[:1]
    return run_ids


def assert_clean(tab) -> None:
    assert_no_exception(tab)
    text = tab.inner_text("body")
    for bad in ERROR_TEXT:
        assert bad not in text, f"{bad!r} shown in a tab: {text[:2000]}"


@pytest.fixture
def server(shapes_dataset, studio_home, tmp_path):
    server = Server(studio_home, tmp_path / "streamlit.log")
    yield server
    server.stop()
    kill_our_workers(studio_home)


def test_two_tabs_queue_runs_at_once_under_a_store_soak(server, studio_home) -> None:
    store = Store()
    url = server.start()
    soak = Soak()
    try:
        soak.start()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=CHROMIUM_ARGS)
            tabs = [browser.new_page(viewport={"width": 1400, "height": 1000})
                    for _ in range(2)]
            for tab in tabs:
                tab.set_default_timeout(60_000)
            clicked = []
            for _ in range(ROUNDS):
                for tab in tabs:
                    ready_to_start(tab, url)
                clicked += start_together(tabs)
                for tab in tabs:
                    wait_idle(tab, timeout=60)
                    assert_clean(tab)  # the live view of the run, under the soak

            queued = [run for run in store.list_runs() if not run["name"].startswith("soak-")]
            assert len(clicked) == 2 * ROUNDS
            assert sorted(clicked) == sorted(run["run_id"] for run in queued)  # once each

            def all_finished() -> bool:
                return all(store.get_run(run_id)["status"] in ("completed", "failed",
                                                               "stopped", "interrupted")
                           for run_id in clicked)

            wait_for(all_finished, "every queued run to finish")
            for tab in tabs:
                open_page(tab, f"{url}/runs")
                assert_clean(tab)
            browser.close()
        ops, errors = soak.finish()
    finally:
        soak.kill()

    statuses = {run_id: store.get_run(run_id)["status"] for run_id in clicked}
    assert set(statuses.values()) == {"completed"}, [store.get_run(r)["error"] for r in clicked]
    assert errors == [], errors[:3]
    assert ops["write"] > 0 and ops["read"] > 0
    assert integrity(studio_home) == "ok"
    with sqlite3.connect(studio_home / "studio.db", timeout=30) as conn:
        duplicates = conn.execute("SELECT COUNT(*) FROM (SELECT 1 FROM metrics GROUP BY run_id, "
                                  "step, name HAVING COUNT(*) > 1)").fetchone()[0]
    assert duplicates == 0
    print(f"\ntwo tabs x {ROUNDS} simultaneous starts: {len(clicked)} runs queued once each and "
          f"completed; soak of {SOAK_WRITERS} writers + {SOAK_READERS} readers meanwhile: "
          f"{sum(ops.values())} operations, {len(errors)} errors; integrity ok")
