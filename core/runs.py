"""A run's life in the store: created, executed with its metrics recorded, finished.

torch, the training loop and the model registry are imported where a run trains, not here:
`python -m core runs list` and the job queue only need the store.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import threading
import time
import traceback
from pathlib import Path

from core.config import TrainConfig
from core.durable import write_json_atomic
from core.hooks import Hooks, LogFile
from core.store import Store
from core.workspace import runs_dir

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 2.0
MIN_OOM_BATCH = 8
KEPT_ACROSS_RETRAINING = ("exports",)  # summary entries a resumed run must not lose
METRIC_BATCH_SECONDS = 1.0


def run_folder(run_id: str) -> Path:
    path = runs_dir() / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_run(config: TrainConfig, store: Store, *, status: str = "queued",
            group: str | None = None) -> str:
    """Validate the config, record the run, and make its folder; returns the run id."""
    config.validate()
    attach_spec(config)
    if "spec" not in config.extra and not config.model.lower().endswith(".json"):
        from models import describe_model

        describe_model(config.model)  # an unknown name fails here, before a run row exists
    run_id = store.create_run(config.to_dict(), name=config.name, status=status, group=group)
    write_json_atomic(run_folder(run_id) / "config.json", config.to_dict())
    return run_id


def attach_spec(config: TrainConfig) -> None:
    """A model given as a JSON layer-spec file travels inside the config, so the run can be
    rebuilt after the file is gone."""
    if config.model.endswith(".json") and "spec" not in config.extra:
        path = Path(config.model)
        if not path.is_file():
            raise ValueError(f"The layer spec {config.model} does not exist.")
        try:
            config.extra["spec"] = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"The layer spec {config.model} is not valid JSON: {error}") from None


class StoreRecorder(Hooks):
    """Streams a run's metrics into the store, a batch about once a second."""

    def __init__(self, store: Store, run_id: str, heartbeat: RunHeartbeat | None = None) -> None:
        self.store, self.run_id, self.heartbeat = store, run_id, heartbeat
        self.pending: list[tuple[int, float, str, float]] = []
        self.last_write = 0.0

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


def execute_run(run_id: str, store: Store, extra_hooks: list[Hooks] | None = None) -> dict:
    """Train a recorded run in this process (resuming from its last checkpoint if it has one)
    and record the outcome. Returns the result summary with `run_id` and `name`."""
    from core.checkpoint import has_checkpoint

    run = store.get_run(run_id)
    config = TrainConfig.from_dict(run["config"])
    folder = run_folder(run_id)
    resume = has_checkpoint(folder, "last")
    store.update_run(run_id, status="running", started_at=run["started_at"] or time.time(),
                     heartbeat_at=time.time(), worker_pid=os.getpid(), stop_requested=0,
                     error=None, finished_at=None)
    heartbeat = RunHeartbeat(store, run_id)
    heartbeat.start()
    hooks = [StoreRecorder(store, run_id, heartbeat), LogFile(folder / "log.txt"),
             *(extra_hooks or [])]
    try:
        if resume:
            replay_last_epoch(hooks[0], folder)
        result = fit_shrinking_batch_on_oom(config, folder, hooks, resume, store, run_id)
    except Exception as error:  # a boundary: whatever went wrong, the run is recorded as failed
        result = failure(config, error, folder)
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
    from core.checkpoint import checkpoint_state

    last = checkpoint_state(folder, "last").get("progress", {}).get("last_epoch")
    if not last:
        return
    names = [f"epoch/{name}" for name in last["metrics"]]
    written = recorder.store.metrics(recorder.run_id, min_step=last["step"], names=names)
    if len([row for row in written if row["step"] == last["step"]]) < len(names):
        recorder.on_epoch(last["step"], last["epoch"], last["metrics"])


def fit(config: TrainConfig, run_dir: Path, hooks: list[Hooks], resume: bool) -> dict:
    from core.train import fit as train

    return train(config, run_dir, hooks, resume=resume)


def fit_shrinking_batch_on_oom(config: TrainConfig, folder: Path, hooks: list[Hooks],
                               resume: bool, store: Store, run_id: str) -> dict:
    """Train; when the device runs out of memory, halve the batch and continue from the last
    checkpoint (noted on the run) rather than dying, down to MIN_OOM_BATCH."""
    import torch

    from core.batch_size import release_memory

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
            LogFile(folder / "log.txt").write(notes[-1])
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
    LogFile(folder / "log.txt").write("failed: " + "".join(
        traceback.format_exception(type(error), error, error.__traceback__)))
    return {"status": "failed", "error": message, "model": config.model, "data": config.data,
            "device": config.device, "epochs": 0, "best_val_acc": None, "test_acc": None,
            "train_seconds": 0.0, "train_images_per_s": None}


def delete_run(run_id: str, store: Store) -> None:
    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"There is no run {run_id!r}.")
    if run["status"] in ("running", "queued"):
        raise ValueError("Stop the run before deleting it.")
    store.delete_run(run["run_id"])
    shutil.rmtree(runs_dir() / run["run_id"], ignore_errors=True)


def run_summary(run: dict) -> dict:
    """The compact JSON shape the CLI and pages list runs in."""
    summary = run.get("summary") or {}
    return {
        "run_id": run["run_id"], "name": run["name"], "status": run["status"],
        "model": run["model"], "data": run["data"], "group": run.get("group_name"),
        "epoch": run["epoch"], "epochs": run["config"].get("epochs"),
        "best_val_acc": run["best_val_acc"], "last_val_acc": run.get("last_val_acc"),
        "test_acc": run["test_acc"], "created_at": run["created_at"],
        "started_at": run["started_at"], "finished_at": run["finished_at"],
        "train_seconds": summary.get("train_seconds"), "error": run.get("error"),
    }
