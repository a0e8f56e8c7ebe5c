"""Starting a recorded run: in this process, as rank 0 of the torchrun job this process belongs
to, or through a new `torchrun --standalone` job when the run's config asks for several GPUs
(the background worker and `train --gpus N` do that). `execute()` is how every run starts,
single-device ones too. The ranks' side of a torchrun job is core.training.ranks."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from core.config import TrainConfig
from core.data.cache import dataset_resize, default_image_size, load_cache
from core.data.dataset import load_dataset
from core.runs.execute import RunHeartbeat, execute_run
from core.runs.record import run_folder
from core.store import Store
from core.training.checkpoint import has_checkpoint
from core.training.hooks import Hooks
from core.training.loop import fit
from core.training.ranks import (
    check_world,
    init_process_group,
    is_main,
    joined,
    leave_process_group,
)
from core.training.run_files import TORCHRUN_LOG
from core.workspace import REPO_ROOT, home, runs_dir

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 120.0  # after a stop request, how long a torchrun job gets to end itself


PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)




# `python -m core train …` under torchrun.


def train_as_rank(args: argparse.Namespace, train: Callable[[argparse.Namespace], Any]) -> Any:
    """Run the `train` command as one rank: rank 0 runs it as on one device (its `execute()`
    call hands the run to the others); the others wait for the run and train it."""
    init_process_group()
    try:
        if is_main():
            try:
                return train(args)
            finally:
                announce(None)  # no run after all (an error, or --queue): release the others
        job = [None]
        dist.broadcast_object_list(job, src=0)
        if job[0] is not None:
            follow(job[0])
        return None  # only rank 0 prints
    finally:
        leave_process_group()


_announced = False


def announce(job: dict | None) -> None:
    """Rank 0: tell the other ranks which run to train (once per process)."""
    global _announced
    if _announced or not joined():
        return
    _announced = True
    dist.broadcast_object_list([job], src=0)


def follow(job: dict) -> None:
    """A rank other than 0: train the announced run, recording nothing."""

    fit(TrainConfig.from_dict(job["config"]), runs_dir() / job["run_id"], resume=job["resume"])


# Starting a recorded run.


def execute(run_id: str, store: Store, extra_hooks: list[Hooks] | None = None, *,
            may_launch: bool = True, record_host: bool = True) -> dict:
    """Train a recorded run and record its outcome, like core.runs.execute_run (which it calls
    where the run trains in this process): as rank 0 of this process's torchrun job; through a
    new torchrun job when the config asks for several GPUs (`may_launch`); else right here."""

    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"There is no run {run_id!r}; see `python -m core runs list`.")
    if joined():
        prepare_job(run_id, store)
        return execute_run(run_id, store, extra_hooks, record_host=record_host)
    if may_launch and wants_torchrun(run["config"]):
        return run_through_torchrun(run_id, store)
    return execute_run(run_id, store, extra_hooks, record_host=record_host)


def wants_torchrun(config: dict) -> bool:
    """Whether a run's config asks for several GPUs (so a torchrun job must train it)."""
    return config.get("gpus", 1) > 1


def prepare_job(run_id: str, store: Store) -> None:
    """Rank 0: record the world size on the run, check it can train on it, announce it."""

    run = store.get_run(run_id)
    ranks = dist.get_world_size()
    config = run["config"] | {"gpus": ranks}
    try:
        check_world(TrainConfig.from_dict(config), ranks)
        warm_cache(TrainConfig.from_dict(config))
    except Exception as error:  # recorded, or the run would sit `running` until it went stale
        store.update_run(run_id, status="failed", error=str(error), finished_at=time.time())
        raise
    if config != run["config"]:
        store.update_run(run_id, config=config)
    announce({"run_id": run_id, "config": config,
              "resume": has_checkpoint(run_folder(run_id), "last")})


def warm_cache(config: TrainConfig) -> None:
    """Rank 0 decodes the dataset's cache before the others start: they would otherwise all
    build it at once (and, on a shared folder, one node could delete another's half-built file
    as abandoned)."""

    dataset = load_dataset(config.data)
    load_cache(dataset, config.image_size or default_image_size(dataset),
               mode=dataset_resize(dataset, config.resize)[0])


def torchrun_command(run_id: str, nproc: int) -> list[str]:
    """The command that trains recorded run `run_id` on `nproc` local GPUs (or CPU processes)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", str(nproc), "-m", "core", "train", "--execute", run_id]


def launch_torchrun(run_id: str, nproc: int, log_path: Path | None = None) -> subprocess.Popen:
    """Start a queued (or claimed) run as a torchrun job on this machine; its output goes to
    `log_path` (default: `torchrun.log` in the run folder)."""

    log_path = log_path or run_folder(run_id) / TORCHRUN_LOG
    with open(log_path, "a") as output:
        return subprocess.Popen(
            torchrun_command(run_id, nproc), stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
            env=os.environ | {"CNN_STUDIO_HOME": str(home())},
            preexec_fn=die_with_parent if sys.platform == "linux" else None)


def die_with_parent() -> None:
    """Runs in the torchrun child before exec: ask Linux for a SIGTERM when the launching process
    dies, so a killed worker (or Ray task) does not leave the job training beside its retry.
    torchrun passes the SIGTERM on to its ranks."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def gpu_shortfall(config: dict) -> str | None:
    """Why this machine cannot start the run's torchrun job, or None when it can."""
    gpus, device = config.get("gpus", 1), config.get("device", "auto")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return None  # CPU processes (gloo): slow, but they run anywhere
    visible = torch.cuda.device_count()
    if visible < gpus:
        return (f"This run asks for {gpus} GPUs but this machine sees {visible}. Lower its GPU "
                "count, or start it with torchrun on the nodes that have them "
                "(see the README, \"Growing past one machine\").")
    return None


def run_through_torchrun(run_id: str, store: Store) -> dict:
    """Train a recorded run as a torchrun job on this machine, waiting for it. This process
    keeps the run's heartbeat while the ranks start (importing torch takes a while), and ends
    the job if a stop request goes unheeded for STOP_GRACE_SECONDS."""

    run = store.get_run(run_id)
    problem = gpu_shortfall(run["config"])
    if problem:
        store.update_run(run_id, status="failed", error=problem, finished_at=time.time())
        return {"run_id": run_id, "name": run["name"], "status": "failed", "error": problem}
    store.update_run(run_id, status="running", heartbeat_at=time.time(), stop_requested=0)
    heartbeat = RunHeartbeat(store, run_id)
    heartbeat.start()
    try:
        job = launch_torchrun(run_id, run["config"]["gpus"])
        code, stop_asked = wait_for_job(job, heartbeat, store, run_id)
    except OSError as error:  # torchrun could not start at all
        code, stop_asked = f"not started: {error}", False
    finally:
        heartbeat.done.set()
    run = store.get_run(run_id)
    if run["status"] == "running":  # the ranks died before rank 0 could record an outcome
        ended = "stopped" if stop_asked else "failed"
        error = None if ended == "stopped" else (
            f"The torchrun job ended (exit code {code}) before the run finished; its output is "
            f"in {run_folder(run_id) / TORCHRUN_LOG}. Resume the run to continue from its "
            "last checkpoint.")
        store.update_run(run_id, status=ended, error=error, finished_at=time.time())
        run = store.get_run(run_id)
    return {"run_id": run_id, "name": run["name"], **(run["summary"] or {}),
            "status": run["status"], "error": run["error"]}


def wait_for_job(job: subprocess.Popen, heartbeat, store: Store, run_id: str) -> tuple[int, bool]:
    """Wait for the torchrun job; return its exit code and whether a stop was requested. A stop
    asked for while the ranks start is asked again (rank 0 clears the flag as it begins), and a
    job still running STOP_GRACE_SECONDS after it is terminated."""
    asked_at: float | None = None
    while True:
        try:
            return job.wait(timeout=1.0), asked_at is not None
        except subprocess.TimeoutExpired:
            pass
        if asked_at is None:
            if heartbeat.stop_requested:
                asked_at = time.monotonic()
            continue
        if not heartbeat.stop_requested:
            store.request_stop(run_id)
        if time.monotonic() - asked_at > STOP_GRACE_SECONDS:
            log.warning("torchrun job %s ignored a stop request; terminating it", job.pid)
            job.terminate()  # torchrun passes SIGTERM on to its ranks
            asked_at = time.monotonic()  # and again after another grace period
