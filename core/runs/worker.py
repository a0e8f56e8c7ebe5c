"""`python -m core worker`: claim queued runs and train them, one at a time, until idle;
with CNN_STUDIO_EXECUTOR=ray, dispatch them over a Ray cluster instead."""

from __future__ import annotations

import logging
import os
import time

from core.runs.launch import execute
from core.runs.queue import executor, reconcile, starting_marker, worker_lock
from core.runs.ray_executor import dispatch
from core.store import Store
from core.workspace import this_host

log = logging.getLogger(__name__)


def work(*, idle_exit_s: float = 120.0, poll_s: float = 1.0, max_runs: int | None = None) -> int:
    """The worker loop: claim and train queued runs until idle for idle_exit_s. Returns how many
    runs it trained, or -1 if another worker already holds the workspace."""
    with worker_lock() as mine:
        if not mine:
            return -1
        starting_marker().unlink(missing_ok=True)
        store = Store()
        reconcile(store)
        if executor() == "ray":
            return dispatch(store, idle_exit_s=idle_exit_s, poll_s=poll_s, max_runs=max_runs)
        done, idle_since = 0, time.monotonic()
        while max_runs is None or done < max_runs:
            run = store.claim_next_run(os.getpid(), worker_host=this_host())
            if run is None:
                if time.monotonic() - idle_since > idle_exit_s:
                    break
                time.sleep(poll_s)
                continue
            log.info("training run %s (%s)", run["run_id"], run["name"])
            execute(run["run_id"], store)  # several GPUs: through a torchrun job
            done += 1
            idle_since = time.monotonic()
        return done
