"""Background training: the queue, the worker and its lock, stop, stale heartbeats, resume."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from shapes import shapes_config

from core.runs import queue, worker
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.store import FINISHED, Store
from core.training.hooks import Hooks
from core.workspace import logs_dir, process_alive, runs_dir, this_host, zombie

WORKER_TIMEOUT = 120.0


@pytest.fixture
def store(shapes_dataset) -> Store:
    return Store()


@pytest.fixture
def any_store(store_url, shapes_dataset) -> Store:
    """The workspace's store on SQLite, then on PostgreSQL (conftest's store_url)."""
    return Store()


def test_submitted_run_stays_queued_until_a_worker_trains_it(any_store: Store) -> None:
    store = any_store
    run_id = queue.submit(shapes_config(), store, start_worker=False)
    assert store.get_run(run_id)["status"] == "queued"
    assert not queue.worker_alive()

    assert worker.work(idle_exit_s=0, max_runs=1) == 1
    run = store.get_run(run_id)
    assert run["status"] == "completed" and run["error"] is None
    assert run["epoch"] == 2 and run["finished_at"] >= run["started_at"]
    assert run["best_val_acc"] == run["summary"]["best_val_acc"]
    assert run["test_acc"] is not None
    assert len(store.metrics(run_id, names=["epoch/val_acc"])) == 2
    assert (runs_dir() / run_id / "best.safetensors").exists()


def test_worker_trains_queued_runs_oldest_first_then_exits_when_idle(store: Store) -> None:
    later = queue.submit(shapes_config(epochs=1, name="later"), store, start_worker=False)
    earlier = queue.submit(shapes_config(epochs=1, name="earlier"), store, start_worker=False)
    store.update_run(earlier, created_at=time.time() - 10)  # queued first, whatever its id
    assert worker.work(idle_exit_s=0, poll_s=0.01) == 2
    runs = {run["run_id"]: run for run in store.list_runs()}
    assert runs[earlier]["status"] == runs[later]["status"] == "completed"
    assert runs[earlier]["finished_at"] <= runs[later]["started_at"]


def test_a_second_worker_backs_off_while_one_holds_the_workspace(store: Store) -> None:
    run_id = queue.submit(shapes_config(), store, start_worker=False)
    with queue.worker_lock() as mine:
        assert mine
        assert queue.worker_alive()
        assert worker.work(idle_exit_s=0, max_runs=1) == -1
    assert store.get_run(run_id)["status"] == "queued"  # the refused worker took nothing
    assert not queue.worker_alive()


def test_a_worker_started_while_another_trains_returns_at_once(store, monkeypatch) -> None:
    queue.submit(shapes_config(epochs=1), store, start_worker=False)
    claimed, release = threading.Event(), threading.Event()
    real_execute = worker.execute

    def held_execute(*args, **kwargs):
        claimed.set()
        release.wait(timeout=60)  # keep the first worker busy until the second one has tried
        return real_execute(*args, **kwargs)

    monkeypatch.setattr(worker, "execute", held_execute)
    results: dict[str, int] = {}
    first = threading.Thread(target=lambda: results.update(first=worker.work(idle_exit_s=0)))
    first.start()
    try:
        assert claimed.wait(timeout=60), "the first worker never claimed the run"
        results["second"] = worker.work(idle_exit_s=0)
    finally:
        release.set()
        first.join(timeout=120)
    assert results == {"first": 1, "second": -1}


def test_submitting_an_unknown_model_is_refused_before_a_run_is_queued(store: Store) -> None:
    with pytest.raises(ValueError, match="Unknown model 'no-such-net'"):
        queue.submit(shapes_config(model="no-such-net"), store, start_worker=False)
    assert store.list_runs() == []


def test_stopping_a_queued_run_stops_it_before_any_worker_sees_it(store: Store) -> None:
    run_id = queue.submit(shapes_config(), store, start_worker=False)
    assert queue.stop(run_id, store) == run_id
    assert store.get_run(run_id)["status"] == "stopped"
    assert worker.work(idle_exit_s=0) == 0
    assert not (runs_dir() / run_id / "last.safetensors").exists()


class StopFromTheDashboard(Hooks):
    """After epoch 1, asks through the store (as the Runs page does) and waits until the run's
    heartbeat has read the flag, so the loop sees it at this epoch's end and not later."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store, self.run_id = store, run_id

    def on_epoch(self, step: int, epoch: int, metrics: dict) -> None:
        if epoch != 1:
            return
        asked = time.time()
        queue.stop(self.run_id, self.store)
        deadline = time.monotonic() + 30
        while self.store.get_run(self.run_id)["heartbeat_at"] <= asked:
            assert time.monotonic() < deadline, "no heartbeat after the stop request"
            time.sleep(0.01)


def test_stopping_a_running_run_ends_it_stopped_and_resumable(store, monkeypatch) -> None:
    monkeypatch.setattr("core.runs.execute.HEARTBEAT_SECONDS", 0.02)
    run_id = new_run(shapes_config(epochs=5), store, status="running")
    result = execute_run(run_id, store, [StopFromTheDashboard(store, run_id)])
    assert result["status"] == "stopped"
    run = store.get_run(run_id)
    assert run["status"] == "stopped" and run["epoch"] == 1 and run["error"] is None
    assert queue.resume(run_id, store, start_worker=False) == run_id
    assert store.get_run(run_id)["stop_requested"] == 0  # the old request does not stop it again


def test_stop_of_an_unknown_run_says_so(store: Store) -> None:
    with pytest.raises(ValueError, match="no run 'nope'"):
        queue.stop("nope", store)


def test_reconcile_interrupts_running_runs_whose_heartbeat_went_stale(store: Store) -> None:
    stale = queue.submit(shapes_config(name="stale"), store, start_worker=False)
    alive = queue.submit(shapes_config(name="alive"), store, start_worker=False)
    store.update_run(stale, status="running", heartbeat_at=time.time() - 10 * queue.STALE_SECONDS)
    store.update_run(alive, status="running", heartbeat_at=time.time())
    assert queue.reconcile(store) == [stale]
    assert store.get_run(stale)["status"] == "interrupted"
    assert store.get_run(alive)["status"] == "running"


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_whose_worker_died_on_this_host_is_interrupted_at_once(store: Store) -> None:
    run_id = queue.submit(shapes_config(), store, start_worker=False)
    store.update_run(run_id, status="running", heartbeat_at=time.time(), worker_pid=dead_pid(),
                     worker_host=this_host())
    assert queue.reconcile(store) == [run_id]
    run = store.get_run(run_id)
    assert run["status"] == "interrupted" and "worker process is gone" in run["error"]


def test_a_run_on_another_host_waits_for_its_heartbeat_to_go_stale(store: Store) -> None:
    run_id = queue.submit(shapes_config(), store, start_worker=False)
    store.update_run(run_id, status="running", heartbeat_at=time.time(), worker_pid=dead_pid(),
                     worker_host="another-machine")
    assert queue.reconcile(store) == []
    store.update_run(run_id, heartbeat_at=time.time() - 10 * queue.STALE_SECONDS)
    assert queue.reconcile(store) == [run_id]


def test_a_zombie_worker_counts_as_dead(store: Store) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while not zombie(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # exited, not yet reaped: kill(pid, 0) still succeeds
    try:
        assert not process_alive(child.pid)
    finally:
        child.wait()


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing in the engine catches it, so nothing records an end."""


class KillAfterFirstEpoch(Hooks):
    def on_epoch(self, step: int, epoch: int, metrics: dict) -> None:
        if epoch == 1:
            raise WorkerKilled


@pytest.mark.slow  # make test only; make test-fast leaves it out
def test_interrupted_run_resumes_from_its_last_checkpoint_on_the_worker(store: Store) -> None:
    run_id = new_run(shapes_config(epochs=2), store, status="running")
    with pytest.raises(WorkerKilled):
        execute_run(run_id, store, [KillAfterFirstEpoch()])
    assert store.get_run(run_id)["status"] == "running"  # what a killed worker leaves behind
    store.update_run(run_id, heartbeat_at=time.time() - 10 * queue.STALE_SECONDS)
    assert queue.reconcile(store) == [run_id]
    assert store.get_run(run_id)["status"] == "interrupted"

    assert queue.resume(run_id, store, start_worker=False) == run_id
    run = store.get_run(run_id)
    assert run["status"] == "queued" and run["error"] is None
    assert worker.work(idle_exit_s=0, max_runs=1) == 1

    run = store.get_run(run_id)
    assert run["status"] == "completed" and run["epoch"] == 2
    log = (runs_dir() / run_id / "log.txt").read_text()
    assert "resumed_from_epoch=1" in log
    assert log.count("epoch 1:") == 1 and log.count("epoch 2:") == 1  # continued, not restarted
    val_acc = store.metrics(run_id, names=["epoch/val_acc"])
    assert [row["epoch"] for row in val_acc] == [1.0, 2.0]


def test_resume_refuses_runs_that_are_not_interrupted_stopped_or_failed(store: Store) -> None:
    run_id = queue.submit(shapes_config(), store, start_worker=False)
    with pytest.raises(ValueError, match="only interrupted, stopped, failed runs"):
        queue.resume(run_id, store, start_worker=False)
    with pytest.raises(ValueError, match="no run 'nope'"):
        queue.resume("nope", store, start_worker=False)


@pytest.mark.slow  # make test only; make test-fast leaves it out
def test_detached_worker_trains_a_submitted_run_and_exits_when_idle(any_store, monkeypatch) -> None:
    store = any_store
    # ensure_worker() has no idle setting, and the worker's default idle is 120 s; the real
    # launch is kept, with `--idle-exit 1` added so the test can wait for the exit.
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def popen(args, **kwargs):
        started.append(real_popen([*args, "--idle-exit", "1"], **kwargs))
        return started[-1]

    monkeypatch.setattr(queue.subprocess, "Popen", popen)
    try:
        run_id = queue.submit(shapes_config(epochs=2), store)
        assert len(started) == 1
        status = wait_for(store, run_id, lambda run: run["status"] != "queued")
        if status == "running":
            assert queue.ensure_worker() is False  # the running worker holds the lock
        status = wait_for(store, run_id, lambda run: run["status"] in FINISHED)
        assert status == "completed", worker_log()
        assert started[0].wait(timeout=60) == 0, worker_log()
        assert len(started) == 1
        assert store.get_run(run_id)["worker_pid"] == started[0].pid
        assert not queue.worker_alive()
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def wait_for(store: Store, run_id: str, done, timeout: float = WORKER_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while True:
        run = store.get_run(run_id)
        if done(run):
            return run["status"]
        assert time.monotonic() < deadline, f"run still {run['status']}: {worker_log()}"
        time.sleep(0.2)


def worker_log() -> str:
    path = logs_dir() / "worker.log"
    return path.read_text()[-3000:] if path.exists() else "(no worker log)"
