"""Background training: a queue in the store, one worker process per workspace.

A run is a `queued` row first. `ensure_worker()` starts `python -m core worker`
in its own session (so it outlives the Streamlit server and any browser tab) if
none holds the workspace's worker lock. The worker claims queued runs one at a
time and trains each (a run asking for several GPUs as a torchrun job on them),
beating, until it has had nothing to do for a while. With CNN_STUDIO_EXECUTOR=ray that
worker is a Ray driver instead, submitting queued runs to a cluster (core.runs.ray_executor).

This module is torch-free: the pages and `runs list` queue and reconcile without loading it;
the worker loop itself is core.runs.worker.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from core.config import TrainConfig
from core.runs.record import new_run
from core.store import Store
from core.workspace import REPO_ROOT, home, logs_dir, process_alive, this_host

log = logging.getLogger(__name__)

STALE_SECONDS = 20.0  # a running run with no heartbeat for this long is interrupted


RESUMABLE = ("interrupted", "stopped", "failed")


STARTUP_SECONDS = 30.0  # how long a spawned worker may take to take the lock


EXECUTORS = ("local", "ray")


def executor() -> str:
    """Who trains queued runs (`CNN_STUDIO_EXECUTOR`): `local`, the default, one worker
    process on this machine; `ray`, that worker dispatching them over a Ray cluster
    (core.runs.ray_executor)."""
    name = os.environ.get("CNN_STUDIO_EXECUTOR", "").strip().lower() or "local"
    if name not in EXECUTORS:
        raise ValueError(f"CNN_STUDIO_EXECUTOR={name!r} is not an executor: set it to "
                         f"{' or '.join(EXECUTORS)} (or unset it for local).")
    if name == "ray" and importlib.util.find_spec("ray") is None:
        raise ValueError("CNN_STUDIO_EXECUTOR=ray needs Ray: pip install ray (on this machine "
                         "and every node of the cluster).")
    return name


def lock_path() -> Path:
    return home() / "worker.lock"


@contextmanager
def worker_lock(block: bool = False, path: Path | None = None):
    """Hold the workspace's worker lock (or the lock file `path`); yields False if another
    process holds it."""
    handle = open(path or lock_path(), "a+")  # noqa: SIM115 (held across the yield)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        handle.close()
        yield False
        return
    try:
        yield True
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def worker_alive(path: Path | None = None) -> bool:
    with worker_lock(path=path) as free:
        return not free


def reconcile(store: Store) -> list[str]:
    """Mark `running` runs whose worker died as interrupted: at once when it ran on this host
    (its pid is gone), else when its heartbeat is STALE_SECONDS old. Returns their ids."""
    dead = store.interrupt_dead_runs(this_host(), process_alive)
    return dead + store.mark_stale_runs(max_age_s=STALE_SECONDS)


def keep_queue_moving(store: Store) -> list[dict]:
    """What a page does on every render: mark runs whose worker died as interrupted, and start
    a worker when runs wait with none (after a reboot, say). Returns every run, newest first."""
    reconcile(store)
    runs = store.list_runs()
    if any(run["status"] == "queued" for run in runs):
        ensure_worker()  # no-op while a worker runs or is starting
    return runs


def submit(config: TrainConfig, store: Store | None = None, *, group: str | None = None,
           start_worker: bool = True) -> str:
    """Queue a run and make sure a worker will pick it up."""
    store = store or Store()
    run_id = new_run(config, store, status="queued", group=group)
    if start_worker:
        ensure_worker()
    return run_id


def resume(run_ref: str, store: Store | None = None, *, start_worker: bool = True) -> str:
    """Queue an interrupted, stopped or failed run again; it continues from its last checkpoint."""
    store = store or Store()
    run = resumable_run(run_ref, store)
    store.update_run(run["run_id"], status="queued", stop_requested=0, error=None,
                     finished_at=None)
    if start_worker:
        ensure_worker()
    return run["run_id"]


def resumable_run(run_ref: str, store: Store) -> dict:
    """The run `run_ref` (id or name) if it can be resumed now, else a ValueError saying why."""
    reconcile(store)
    run = store.get_run(run_ref)
    if run is None:
        raise ValueError(f"There is no run {run_ref!r}; see `python -m core runs list`.")
    if run["status"] not in RESUMABLE:
        raise ValueError(f"Run {run['name']} is {run['status']}; only "
                         f"{', '.join(RESUMABLE)} runs can be resumed.")
    return run


def stop(run_ref: str, store: Store | None = None) -> str:
    store = store or Store()
    run = store.get_run(run_ref)
    if run is None:
        raise ValueError(f"There is no run {run_ref!r}.")
    store.request_stop(run["run_id"])
    return run["run_id"]


def ensure_worker() -> bool:
    """Start a detached worker unless one is running or starting; True if one was started."""
    executor()  # a misspelt executor or a missing Ray is said here, not in the worker's log
    if worker_alive() or worker_starting():
        return False
    starting_marker().write_text(str(time.time()))
    with open(logs_dir() / "worker.log", "a") as log_file:
        subprocess.Popen(
            [sys.executable, "-m", "core", "worker"], stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO_ROOT,
            env=os.environ | {"CNN_STUDIO_HOME": str(home())},
        )
    return True


def starting_marker() -> Path:
    return home() / "worker.starting"


def worker_starting() -> bool:
    """True for a short while after a worker was spawned, before it holds the lock (importing
    torch takes seconds), so a second click does not spawn a second worker."""
    try:
        return time.time() - float(starting_marker().read_text()) < STARTUP_SECONDS
    except (OSError, ValueError):
        return False
