"""Train a recorded run in this process: heartbeat, metrics streamed into the store, the
outcome recorded, an out-of-memory error answered with a smaller batch."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import traceback
from pathlib import Path

import torch

from core.config import TrainConfig
from core.runs.record import run_folder
from core.store import Store
from core.training.checkpoint import checkpoint_state, has_checkpoint
from core.training.device import release_memory
from core.training.hooks import Hooks, LogFile
from core.training.loop import fit
from core.training.run_files import LOG
from core.workspace import this_host

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0


MIN_OOM_BATCH = 8


KEPT_ACROSS_RETRAINING = ("exports",)  # summary entries a resumed run must not lose


METRIC_BATCH_SECONDS = 1.0
STEPS_PER_EPOCH = "steps_per_epoch"  # the metric row the live page counts steps with


class StoreRecorder(Hooks):
    """Streams a run's metrics into the store, a batch about once a second."""

    def __init__(self, store: Store, run_id: str, heartbeat: RunHeartbeat | None = None) -> None:
        self.store, self.run_id, self.heartbeat = store, run_id, heartbeat
        self.pending: list[tuple[int, float, str, float]] = []
        self.last_write = 0.0

    def on_start(self, info: dict) -> None:
        """The run's steps per epoch, as a row at its first step: the live page counts steps
        with it, and the row's time starts the ETA before the first epoch ends."""
        if info.get("steps_per_epoch"):
            epoch = float(info.get("resumed_from_epoch", 0))
            self.pending.append((info.get("start_step", 0), epoch, STEPS_PER_EPOCH,
                                 float(info["steps_per_epoch"])))
            self.write_pending()

    def on_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self.pending += [(step, epoch, name, value) for name, value in metrics.items()]
        if time.monotonic() - self.last_write >= METRIC_BATCH_SECONDS:
            self.write_pending()

    def on_epoch(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self.pending += [(step, epoch, f"epoch/{name}", value) for name, value in metrics.items()]
        self.write_pending()
        fields = {"epoch": epoch}
        if "val_acc" in metrics:
            best = self.store.get_run(self.run_id)["best_val_acc"] or 0.0
            fields.update(last_val_acc=metrics["val_acc"],
                          best_val_acc=max(best, metrics["val_acc"]))
        self.store.update_run(self.run_id, **fields)

    def on_end(self, result: dict) -> None:
        self.write_pending()

    def should_stop(self) -> bool:
        return self.heartbeat is not None and self.heartbeat.stop_requested

    def write_pending(self) -> None:
        if self.pending:
            self.store.add_metrics(self.run_id, self.pending)
            self.pending = []
        self.last_write = time.monotonic()


class RunHeartbeat(threading.Thread):
    """Beats every few seconds while the run is alive (cache building included), and picks up
    stop requests; a killed process stops beating and the run is then marked interrupted."""

    def __init__(self, store: Store, run_id: str) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{run_id}")
        self.store, self.run_id = store, run_id
        self.stop_requested = False
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(HEARTBEAT_SECONDS):
            try:
                self.stop_requested = self.store.heartbeat(self.run_id)
            except Exception as error:  # a busy database must not kill the training thread
                log.warning("heartbeat failed: %s", error)


def execute_run(run_id: str, store: Store, extra_hooks: list[Hooks] | None = None, *,
                record_host: bool = True) -> dict:
    """Train a recorded run in this process (resuming from its last checkpoint if it has one)
    and record the outcome. Returns the result summary with `run_id` and `name`.

    `record_host=False` leaves the run's host unset, so no reader marks it interrupted when its
    pid is gone: for a supervisor that restarts its own processes (Ray); its heartbeat still
    tells a dead run."""

    run = store.get_run(run_id)
    config = TrainConfig.from_dict(run["config"])
    folder = run_folder(run_id)
    resume = has_checkpoint(folder, "last")
    store.update_run(run_id, status="running", started_at=run["started_at"] or time.time(),
                     heartbeat_at=time.time(), worker_pid=os.getpid(),
                     worker_host=this_host() if record_host else None, stop_requested=0,
                     error=None, finished_at=None)
    heartbeat = RunHeartbeat(store, run_id)
    heartbeat.start()
    hooks = [StoreRecorder(store, run_id, heartbeat), LogFile(folder / LOG),
             *(extra_hooks or [])]
    try:
        if resume:
            replay_last_epoch(hooks[0], folder)
        result = fit_shrinking_batch_on_oom(config, folder, hooks, resume, store, run_id)
    except Exception as error:  # a boundary: whatever went wrong, the run is recorded as failed
        result = failure(config, error, folder)
    except KeyboardInterrupt:  # Ctrl-C on `python -m core train`: resumable, and said so now
        store.update_run(run_id, status="interrupted", finished_at=time.time(),
                         error="Interrupted (Ctrl-C). Resume to continue from the last "
                               "checkpoint.")
        raise
    finally:
        heartbeat.done.set()
    kept = {key: run["summary"][key] for key in KEPT_ACROSS_RETRAINING if key in run["summary"]}
    store.update_run(run_id, status=result["status"], finished_at=time.time(),
                     error=result.get("error"), best_val_acc=result.get("best_val_acc"),
                     test_acc=result.get("test_acc"), summary=kept | result)
    return {"run_id": run_id, "name": run["name"], **result}


def replay_last_epoch(recorder: StoreRecorder, folder: Path) -> None:
    """Record the checkpointed epoch's metrics if the store lacks them: a kill after `last` was
    saved but before they were written would lose them for good, since the resumed run starts
    after that epoch. (Rows already there keep their original time.)"""

    last = checkpoint_state(folder, "last").get("progress", {}).get("last_epoch")
    if not last:
        return
    names = [f"epoch/{name}" for name in last["metrics"]]
    written = recorder.store.metrics(recorder.run_id, min_step=last["step"], names=names)
    if len([row for row in written if row["step"] == last["step"]]) < len(names):
        recorder.on_epoch(last["step"], last["epoch"], last["metrics"])


def fit_shrinking_batch_on_oom(config: TrainConfig, folder: Path, hooks: list[Hooks],
                               resume: bool, store: Store, run_id: str) -> dict:
    """Train; when the device runs out of memory, halve the batch and continue from the last
    checkpoint (noted on the run) rather than dying, down to MIN_OOM_BATCH."""
    notes = []
    while True:
        try:
            result = fit(config, folder, hooks, resume=resume)
            return result | ({"notes": notes} if notes else {})
        except torch.OutOfMemoryError:
            if config.batch_size // 2 < MIN_OOM_BATCH or config.gpus > 1:
                raise  # several ranks cannot change their batch without agreeing
            release_memory()
            notes.append(f"out of memory at batch size {config.batch_size}; "
                         f"continued at {config.batch_size // 2}")
            LogFile(folder / LOG).write(notes[-1])
            config.batch_size //= 2
            store.update_run(run_id, config=config.to_dict())
            resume = True


def failure(config: TrainConfig, error: Exception, folder: Path) -> dict:
    message = str(error) or error.__class__.__name__
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        message = (f"The disk holding the workspace is full ({error.strerror}). Free some space "
                   "(delete old runs, exports or datasets), then resume the run: it continues "
                   "from its last whole checkpoint.")
    elif "out of memory" in message.lower():
        message = ("The device ran out of memory. Lower the batch size or the image size, "
                   "or pick a smaller model.")
    LogFile(folder / LOG).write("failed: " + "".join(
        traceback.format_exception(type(error), error, error.__traceback__)))
    return {"status": "failed", "error": message, "model": config.model, "data": config.data,
            "device": config.device, "epochs": 0, "best_val_acc": None, "test_acc": None,
            "train_seconds": 0.0, "train_images_per_s": None}
